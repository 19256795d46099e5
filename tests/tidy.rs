//! Tidy checks: rules about the source tree itself, so the core/shell split stays physical and
//! the code stays readable (every module headed and on the map, short functions, one meaning
//! per type name).
//!
//! `src/core/` decides and `src/shell/` acts: a core file that reads a file, a clock or the
//! environment, spawns a process or calls libc would make its decisions untestable in process.

use std::path::{Path, PathBuf};

/// What no file under `src/core/` may name, with why.
const FORBIDDEN_IN_CORE: &[(&str, &str)] = &[
    ("std::fs", "files are read and written by the shell"),
    ("fs::", "files are read and written by the shell"),
    ("File::", "files are read and written by the shell"),
    ("std::process", "processes are the shell's"),
    ("Command::", "processes are the shell's"),
    ("std::net", "the network is the shell's"),
    ("std::env", "the environment is read by the shell"),
    ("Utc::now", "the clock is passed in by the shell"),
    ("Local::now", "the clock is passed in by the shell"),
    ("SystemTime", "the clock is passed in by the shell"),
    ("Instant::now", "the clock is passed in by the shell"),
    ("libc", "system calls are the shell's"),
    ("rustix", "system calls are the shell's"),
    ("std::thread", "threads are the shell's"),
    ("std::io::stdin", "standard streams are the shell's"),
    ("crate::shell", "the core never calls into the shell"),
    ("crate::cmd", "the core never calls into the commands"),
];

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The code of a line without its `//` comment (doc comments may mention what the shell does).
fn code_of(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn core_does_no_io_reads_no_clock_and_spawns_nothing() {
    let files = rust_files(&src().join("core"));
    assert!(files.len() > 10, "src/core/ holds the core's modules");
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = code_of(line);
            for (name, why) in FORBIDDEN_IN_CORE {
                if code.contains(name) {
                    found.push(format!(
                        "{}:{}: names `{name}` ({why})",
                        file.strip_prefix(src()).unwrap().display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "the core must stay pure:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_a_forbidden_name() {
    // The rule above must be able to fail: a line like this one would be reported.
    let line = "    let now = chrono::Utc::now(); // when";
    assert!(
        FORBIDDEN_IN_CORE
            .iter()
            .any(|(name, _)| code_of(line).contains(name))
    );
    assert!(!code_of("/// the shell passes Utc::now() in").contains("Utc::now"));
}

#[test]
fn every_module_says_what_it_owns() {
    let mut missing = Vec::new();
    for file in rust_files(&src()) {
        let text = std::fs::read_to_string(&file).unwrap();
        if file.ends_with("main.rs") {
            continue;
        }
        if !text.trim_start().starts_with("//!") {
            missing.push(file.strip_prefix(src()).unwrap().display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "modules without a `//!` header: {}",
        missing.join(", ")
    );
}

/// A reader takes in a function of this many lines at most; past it, the function has parts
/// that deserve names.
const LONGEST_FUNCTION: usize = 100;

/// `line` with string and character literals emptied, and without its `//` comment, so that
/// braces inside them are not counted.
fn braces_of(line: &str) -> (usize, usize) {
    let (mut open, mut close) = (0, 0);
    let mut chars = line.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_str => {
                chars.next();
            }
            '"' => in_str = !in_str,
            '/' if !in_str && chars.peek() == Some(&'/') => break,
            '\'' if !in_str => {
                // A character literal ('{', '\'', '\\'); a lifetime has no closing quote.
                let rest: String = chars.clone().take(3).collect();
                let len = if rest.starts_with('\\') { 3 } else { 2 };
                if rest.chars().nth(len - 1) == Some('\'') {
                    for _ in 0..len {
                        chars.next();
                    }
                }
            }
            '{' if !in_str => open += 1,
            '}' if !in_str => close += 1,
            _ => {}
        }
    }
    (open, close)
}

/// The functions of `text` outside its test module: (first line, name, length in lines).
fn functions(text: &str) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_start();
        if line.starts_with("#[cfg(test)]") {
            break;
        }
        let head = [
            "pub(crate) fn ",
            "pub(super) fn ",
            "pub fn ",
            "const fn ",
            "fn ",
        ]
        .iter()
        .find_map(|p| line.strip_prefix(p));
        let Some(head) = head else {
            i += 1;
            continue;
        };
        let name: String = head
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let (mut depth, mut started, mut j) = (0i64, false, i);
        while j < lines.len() {
            let (open, close) = braces_of(lines[j]);
            depth += open as i64 - close as i64;
            started |= open > 0;
            if (started && depth <= 0) || (!started && lines[j].trim_end().ends_with(';')) {
                break;
            }
            j += 1;
        }
        found.push((i + 1, name, j - i + 1));
        i = j + 1;
    }
    found
}

#[test]
fn no_function_is_longer_than_a_reader_takes_in() {
    let mut long = Vec::new();
    for file in rust_files(&src()) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, name, len) in functions(&text) {
            if len > LONGEST_FUNCTION {
                long.push(format!(
                    "{}:{line}: fn {name} is {len} lines",
                    file.strip_prefix(src()).unwrap().display()
                ));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {LONGEST_FUNCTION} lines (split them into named steps):\n{}",
        long.join("\n")
    );
}

#[test]
fn the_length_check_measures_what_it_should() {
    let text = "fn a() {\n    let s = \"}\";\n    let c = '{';\n    // }\n}\nfn b<'x>(v: &'x str) -> &'x str {\n    v\n}\n";
    assert_eq!(
        functions(text),
        vec![(1, "a".to_string(), 5), (6, "b".to_string(), 3)]
    );
    let long = format!("fn c() {{\n{}}}\n", "    x();\n".repeat(LONGEST_FUNCTION));
    assert_eq!(functions(&long)[0].2, LONGEST_FUNCTION + 2);
}

#[test]
fn the_map_names_every_module() {
    let map =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .unwrap();
    let mut missing = Vec::new();
    for file in rust_files(&src()) {
        let stem = file.file_stem().unwrap().to_string_lossy().to_string();
        if stem == "mod" || stem == "lib" || file.starts_with(src().join("cmd")) {
            continue;
        }
        if !map.contains(&stem) {
            missing.push(file.strip_prefix(src()).unwrap().display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name these modules: {}",
        missing.join(", ")
    );
}

/// `code` (a line, indent trimmed) without its visibility.
fn unqualified(code: &str) -> &str {
    ["pub(crate) ", "pub(super) ", "pub "]
        .iter()
        .find_map(|p| code.strip_prefix(p))
        .unwrap_or(code)
}

/// The name of the `struct`, `enum`, `type` or `trait` that `code` (a line, indent trimmed)
/// declares, if it declares one.
fn type_declared(code: &str) -> Option<String> {
    let rest = ["struct ", "enum ", "type ", "trait ", "unsafe trait "]
        .iter()
        .find_map(|k| unqualified(code).strip_prefix(k))?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// The types `text` declares at item level (in the file's module and its inline modules; not
/// in a function, an `impl` or a trait, nor in a `#[cfg(test)]` item): (line, name).
fn type_names(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    // Open braces before this line, and the depth inside each enclosing inline module.
    let (mut depth, mut modules) = (0usize, Vec::<usize>::new());
    // While skipping a `#[cfg(test)]` item: the depth it started at, and whether its body began.
    let mut test_item: Option<(usize, bool)> = None;
    for (n, line) in text.lines().enumerate() {
        let code = code_of(line).trim_start();
        let item_level = depth == modules.len() && test_item.is_none();
        let (open, close) = braces_of(line);
        if item_level && code.starts_with("#[cfg(test)]") {
            test_item = Some((depth, false));
            continue;
        }
        if item_level {
            if let Some(name) = type_declared(code) {
                found.push((n + 1, name));
            }
            if unqualified(code).starts_with("mod ") && open > 0 {
                modules.push(depth + 1);
            }
        }
        depth = (depth + open).saturating_sub(close);
        while modules.last().is_some_and(|&inside| depth < inside) {
            modules.pop();
        }
        if let Some((start, began)) = test_item.as_mut() {
            *began |= open > 0;
            if (*began && depth <= *start) || (!*began && code.ends_with(';')) {
                test_item = None;
            }
        }
    }
    found
}

/// Each type name declared more than once among `files` (path, text), with where.
fn shared_type_names(files: &[(String, String)]) -> Vec<String> {
    let mut seen: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (path, text) in files {
        for (line, name) in type_names(text) {
            seen.entry(name).or_default().push(format!("{path}:{line}"));
        }
    }
    seen.into_iter()
        .filter(|(_, places)| places.len() > 1)
        .map(|(name, places)| format!("{name}: {}", places.join(", ")))
        .collect()
}

#[test]
fn no_two_types_share_a_name() {
    let files: Vec<(String, String)> = rust_files(&src())
        .iter()
        .map(|file| {
            let path = file.strip_prefix(src()).unwrap().display().to_string();
            (path, std::fs::read_to_string(file).unwrap())
        })
        .collect();
    let declared: usize = files.iter().map(|(_, text)| type_names(text).len()).sum();
    assert!(declared > 100, "src/ declares its types at item level");
    let shared = shared_type_names(&files);
    assert!(
        shared.is_empty(),
        "names say one thing each; these types share a name (rename one to what it is, or \
         merge them if they are one thing):\n{}",
        shared.join("\n")
    );
}

#[test]
fn the_name_check_sees_a_duplicate() {
    // Two files each declaring `Outcome` are reported; what an `impl`, a trait, a function or a
    // test module declares is not an item of the module, so `Target`, `V`, `Item` and `Case`
    // are not.
    let a = "pub struct Outcome {\n    text: String,\n}\nimpl Deref for Outcome {\n    type Target = str;\n}\nfn f() {\n    struct V;\n}\n";
    let b = "pub mod files {\n    pub(crate) enum Outcome {}\n}\nfn f() {\n    struct V;\n}\ntrait T {\n    type Item;\n}\n#[cfg(test)]\nmod tests {\n    struct Case;\n}\npub type After = u8;\n";
    let names = |text| -> Vec<String> { type_names(text).into_iter().map(|(_, n)| n).collect() };
    assert_eq!(names(a), ["Outcome"]);
    assert_eq!(names(b), ["Outcome", "T", "After"]);
    let files = [("a.rs", a), ("b.rs", b)].map(|(p, t)| (p.to_string(), t.to_string()));
    assert_eq!(shared_type_names(&files), ["Outcome: a.rs:1, b.rs:2"]);
    assert!(shared_type_names(&files[..1]).is_empty());
}
