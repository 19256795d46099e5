//! Tidy checks: rules about the source tree itself, so the core/shell split stays physical.
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
