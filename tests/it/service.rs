//! `taskboard service install|uninstall`, run as the built binary with a temporary HOME: the
//! files land where the managers look, with absolute paths, never replace a person's file
//! without `--force`, pass `systemd-analyze verify`, and the plists parse as plists.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A temporary folder with a HOME and a board folder (with a space in its name) inside.
struct Env {
    root: PathBuf,
    _temp: support::TempDir,
}

impl Env {
    fn new(label: &str) -> Env {
        let temp = support::TempDir::new(&format!("service-{label}"));
        let root = temp.to_path_buf();
        std::fs::create_dir_all(root.join("home")).unwrap();
        std::fs::create_dir_all(root.join("my board")).unwrap();
        std::fs::write(
            root.join("my board/task-board.md"),
            "# Board\n\n## A-1\n- status: ready\n",
        )
        .unwrap();
        Env { root, _temp: temp }
    }

    fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    fn board_dir(&self) -> PathBuf {
        std::fs::canonicalize(self.root.join("my board")).unwrap()
    }

    fn board(&self) -> PathBuf {
        self.board_dir().join("task-board.md")
    }

    fn systemd_dir(&self) -> PathBuf {
        self.home().join(".config/systemd/user")
    }

    fn launchd_dir(&self) -> PathBuf {
        self.home().join("Library/LaunchAgents")
    }

    /// Runs the binary from the root folder with HOME set and XDG_CONFIG_HOME unset.
    fn taskboard(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = support::bin();
        cmd.args(args)
            .current_dir(&self.root)
            .env("HOME", self.home())
            .env_remove("XDG_CONFIG_HOME")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    fn files_in(&self, dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

fn binary() -> PathBuf {
    std::fs::canonicalize(env!("CARGO_BIN_EXE_taskboard")).unwrap()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

#[test]
fn systemd_install_writes_absolute_paths_then_is_unchanged() {
    let env = Env::new("systemd");
    let out = env.taskboard(&["service", "install", "--systemd", "my board/task-board.md"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let files = env.files_in(&env.systemd_dir());
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let run = names
        .iter()
        .find(|n| n.starts_with("taskboard-my-board-") && n.ends_with(".service"))
        .expect("run unit");
    let slug = run
        .strip_prefix("taskboard-")
        .unwrap()
        .strip_suffix(".service")
        .unwrap();
    assert!(names.contains(&format!("taskboard-once-{slug}.service")));
    assert!(names.contains(&format!("taskboard-once-{slug}.timer")));

    let unit = read(&env.systemd_dir().join(run));
    let exec = format!(
        "ExecStart=\"{}\" run \"{}\"",
        binary().display(),
        env.board().display()
    );
    assert!(unit.contains(&exec), "{unit}");
    assert!(unit.contains(&format!("WorkingDirectory={}\n", env.board_dir().display())));
    assert!(unit.contains("Environment=\"PATH="), "{unit}");
    assert!(unit.contains("KillMode=mixed\n"));
    assert!(unit.contains("Restart=on-failure\n"));
    // grace defaults to 10 s: the stop timeout must be longer.
    let timeout: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(timeout > 10, "{timeout}");
    let timer = read(
        &env.systemd_dir()
            .join(format!("taskboard-once-{slug}.timer")),
    );
    assert!(timer.contains("OnCalendar=hourly\n") && timer.contains("Persistent=true\n"));
    assert!(timer.contains(&format!("Unit=taskboard-once-{slug}.service\n")));
    assert!(env.board_dir().join(".taskboard/logs").is_dir());
    assert!(
        stdout.contains(&format!(
            "systemctl --user daemon-reload && systemctl --user enable --now taskboard-{slug}.service taskboard-once-{slug}.timer"
        )),
        "{stdout}"
    );

    let before: Vec<String> = files.iter().map(|p| read(p)).collect();
    let again = env.taskboard(&["service", "install", "--systemd", "my board/task-board.md"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!(text(&again.stdout).matches("unchanged ").count(), 3);
    let after: Vec<String> = files.iter().map(|p| read(p)).collect();
    assert_eq!(before, after);
}

#[test]
fn grace_from_the_config_sets_the_stop_timeouts() {
    let env = Env::new("grace");
    std::fs::write(
        env.board_dir().join("taskboard.toml"),
        "[runtime]\ngrace = \"2m\"\n",
    )
    .unwrap();
    let out = env.taskboard(&["service", "install", "--print", "my board/task-board.md"]);
    let out2 = env.taskboard(&[
        "service",
        "install",
        "--print",
        "--launchd",
        "my board/task-board.md",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout) + &text(&out2.stdout);
    for line in stdout.lines().filter(|l| l.starts_with("TimeoutStopSec=")) {
        let secs: u64 = line["TimeoutStopSec=".len()..].parse().unwrap();
        assert!(secs > 120, "{line}");
    }
    let exit_timeouts: Vec<&str> = stdout
        .split("<key>ExitTimeOut</key>")
        .skip(1)
        .map(|rest| rest.trim_start())
        .collect();
    assert_eq!(exit_timeouts.len(), 2, "{stdout}");
    for rest in exit_timeouts {
        let n: u64 = rest
            .strip_prefix("<integer>")
            .and_then(|r| r.split('<').next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(n > 120, "{n}");
    }
}

#[test]
fn a_different_file_is_refused_unless_forced() {
    let env = Env::new("refuse");
    let out = env.taskboard(&["service", "install", "--systemd", "my board/task-board.md"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let files = env.files_in(&env.systemd_dir());
    let generated: Vec<String> = files.iter().map(|p| read(p)).collect();
    // A person edits the timer; another file of the set is missing.
    let timer = files
        .iter()
        .find(|p| p.extension().unwrap() == "timer")
        .unwrap();
    std::fs::write(timer, "[Timer]\nOnCalendar=daily\n").unwrap();
    std::fs::remove_file(&files[0]).unwrap();

    let refused = env.taskboard(&["service", "install", "--systemd", "my board/task-board.md"]);
    assert_eq!(refused.status.code(), Some(5));
    assert!(
        text(&refused.stderr).contains("--force"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(read(timer), "[Timer]\nOnCalendar=daily\n");
    assert!(!files[0].exists(), "nothing may be written after a refusal");

    let forced = env.taskboard(&[
        "service",
        "install",
        "--systemd",
        "--force",
        "my board/task-board.md",
    ]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced.stderr));
    assert!(text(&forced.stdout).contains("replaced "));
    let now: Vec<String> = files.iter().map(|p| read(p)).collect();
    assert_eq!(now, generated);
}

#[test]
fn uninstall_removes_exactly_ours() {
    let env = Env::new("uninstall");
    let out = env.taskboard(&["service", "install", "--systemd", "my board/task-board.md"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let unrelated = env.systemd_dir().join("other.service");
    std::fs::write(&unrelated, "[Service]\nExecStart=/bin/true\n").unwrap();
    let files = env.files_in(&env.systemd_dir());
    assert_eq!(files.len(), 4);

    let un = env.taskboard(&[
        "service",
        "uninstall",
        "--systemd",
        "my board/task-board.md",
    ]);
    assert_eq!(un.status.code(), Some(0), "{}", text(&un.stderr));
    let stdout = text(&un.stdout);
    assert_eq!(stdout.matches("removed ").count(), 3, "{stdout}");
    assert!(
        stdout.contains("systemctl --user disable --now"),
        "{stdout}"
    );
    assert_eq!(env.files_in(&env.systemd_dir()), vec![unrelated.clone()]);

    // A file at our name that we did not write is left alone.
    let out = env.taskboard(&["service", "install", "--systemd", "my board/task-board.md"]);
    assert_eq!(out.status.code(), Some(0));
    let run_unit = env
        .files_in(&env.systemd_dir())
        .into_iter()
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("taskboard-my-board") && n.ends_with(".service")
        })
        .unwrap();
    std::fs::write(&run_unit, "[Service]\nExecStart=/bin/true\n").unwrap();
    let un = env.taskboard(&[
        "service",
        "uninstall",
        "--systemd",
        "my board/task-board.md",
    ]);
    assert_eq!(un.status.code(), Some(5));
    assert!(run_unit.exists());
    assert_eq!(env.files_in(&env.systemd_dir()).len(), 2);

    let none = env.taskboard(&[
        "service",
        "uninstall",
        "--launchd",
        "my board/task-board.md",
    ]);
    assert_eq!(none.status.code(), Some(0));
    assert!(text(&none.stdout).contains("nothing installed"));
}

#[test]
fn xdg_config_home_is_honoured_and_boards_sit_side_by_side() {
    let env = Env::new("xdg");
    std::fs::create_dir_all(env.root.join("other")).unwrap();
    std::fs::write(env.root.join("other/task-board.md"), "# B\n").unwrap();
    let xdg = env.root.join("xdg");
    for board in ["my board/task-board.md", "other/task-board.md"] {
        let out = env
            .command(&["service", "install", "--systemd", board])
            .env("XDG_CONFIG_HOME", &xdg)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    assert!(env.files_in(&env.systemd_dir()).is_empty());
    assert_eq!(env.files_in(&xdg.join("systemd/user")).len(), 6);
}

#[test]
fn invalid_config_exits_3_and_writes_nothing() {
    let env = Env::new("badconfig");
    std::fs::write(
        env.board_dir().join("taskboard.toml"),
        "[runtime]\ngrace = 10\n",
    )
    .unwrap();
    let out = env.taskboard(&["service", "install", "my board/task-board.md"]);
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("taskboard.toml"), "{err}");
    assert!(!env.home().join(".config").exists());
    assert!(!env.home().join("Library").exists());
}

#[test]
fn print_writes_nothing() {
    let env = Env::new("print");
    let out = env.taskboard(&[
        "service",
        "install",
        "--systemd",
        "--print",
        "my board/task-board.md",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let headers: Vec<&str> = stdout.lines().filter(|l| l.starts_with("# /")).collect();
    assert_eq!(headers.len(), 3, "{stdout}");
    assert!(
        headers
            .iter()
            .all(|h| h.contains("/home/.config/systemd/user/taskboard-"))
    );
    assert!(stdout.contains("[Service]"));
    assert!(!env.home().join(".config").exists());
}

/// `systemd-analyze verify` on the generated units, whose ExecStart is the built binary. The
/// tool exits 0 on a misspelt key and only says so on stderr, so any stderr line fails.
///
/// It is run in system mode (`--user` needs a user manager's runtime folder, which a container
/// running as root does not have); unit syntax is the same. Generators are skipped and the man
/// page check is off, so it runs offline and without a booted systemd.
#[test]
fn systemd_analyze_verify_passes() {
    let Some(analyze) = find_on_path("systemd-analyze") else {
        support::skip("systemd-analyze is not on PATH (apt-get install systemd; .ci/run does)");
        return;
    };
    let env = Env::new("analyze");
    let out = env.taskboard(&["service", "install", "--systemd", "my board/task-board.md"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let units = env.files_in(&env.systemd_dir());
    assert_eq!(units.len(), 3);
    let out = Command::new(analyze)
        .arg("verify")
        .arg("--man=no")
        .arg("--generators=no")
        .args(&units)
        .env("SYSTEMD_LOG_LEVEL", "info")
        .env("SYSTEMD_COLORS", "0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify complained (exit {:?}):\n{stderr}\n{}",
        out.status.code(),
        units
            .iter()
            .map(|u| format!("--- {}\n{}", u.display(), read(u)))
            .collect::<String>()
    );
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Parses a plist with python3's plistlib into JSON where every value is `[type, value]`.
fn parse_plist(path: &Path) -> Value {
    const SCRIPT: &str = r#"
import json, plistlib, sys
def typed(v):
    if isinstance(v, bool): return ["bool", v]
    if isinstance(v, int): return ["integer", v]
    if isinstance(v, str): return ["string", v]
    if isinstance(v, list): return ["array", [typed(x) for x in v]]
    if isinstance(v, dict): return ["dict", {k: typed(x) for k, x in v.items()}]
    return [type(v).__name__, repr(v)]
with open(sys.argv[1], "rb") as f:
    print(json.dumps(typed(plistlib.load(f, fmt=plistlib.FMT_XML))))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{} is not a valid plist: {}",
        path.display(),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn key<'a>(dict: &'a Value, k: &str, ty: &str) -> &'a Value {
    let v = &dict[1][k];
    assert_eq!(v[0], ty, "{k} should be a {ty}: {v}");
    &v[1]
}

#[test]
fn launchd_plists_have_the_keys_and_types() {
    let env = Env::new("launchd");
    let out = env.taskboard(&["service", "install", "--launchd", "my board/task-board.md"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let files = env.files_in(&env.launchd_dir());
    assert_eq!(files.len(), 2, "{files:?}");
    let stdout = text(&out.stdout);
    let load = format!(
        "launchctl bootstrap gui/$(id -u) {} {}",
        files[1].display(),
        files[0].display()
    );
    assert!(stdout.contains(&load), "{stdout}");

    let board = env.board().display().to_string();
    let bin = binary().display().to_string();
    let logs = env.board_dir().join(".taskboard/logs");
    for (mode, label_prefix) in [
        ("run", "com.taskboard.run."),
        ("once", "com.taskboard.once."),
    ] {
        let path = files
            .iter()
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(label_prefix)
            })
            .unwrap();
        let plist = parse_plist(path);
        assert_eq!(plist[0], "dict");
        let label = key(&plist, "Label", "string").as_str().unwrap();
        assert_eq!(
            path.file_name().unwrap().to_string_lossy(),
            format!("{label}.plist")
        );
        let args: Vec<&str> = key(&plist, "ProgramArguments", "array")
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                assert_eq!(a[0], "string");
                a[1].as_str().unwrap()
            })
            .collect();
        assert_eq!(args, [bin.as_str(), mode, board.as_str()]);
        assert_eq!(
            key(&plist, "WorkingDirectory", "string"),
            &env.board_dir().display().to_string()
        );
        let envs = key(&plist, "EnvironmentVariables", "dict");
        assert_eq!(envs["PATH"][0], "string");
        assert!(!envs["PATH"][1].as_str().unwrap().is_empty());
        let exit_timeout = key(&plist, "ExitTimeOut", "integer").as_u64().unwrap();
        assert!(exit_timeout > 10, "{exit_timeout}");
        for k in ["StandardOutPath", "StandardErrorPath"] {
            let p = PathBuf::from(key(&plist, k, "string").as_str().unwrap());
            assert_eq!(p.parent().unwrap(), logs, "{k}");
        }
        if mode == "run" {
            assert_eq!(key(&plist, "RunAtLoad", "bool"), true);
            let keep = key(&plist, "KeepAlive", "dict");
            assert_eq!(keep["SuccessfulExit"], serde_json::json!(["bool", false]));
            assert!(key(&plist, "ThrottleInterval", "integer").as_u64().unwrap() >= 10);
        } else {
            assert_eq!(key(&plist, "StartInterval", "integer"), 3600);
            assert!(plist[1].get("KeepAlive").is_none());
        }
    }

    let un = env.taskboard(&[
        "service",
        "uninstall",
        "--launchd",
        "my board/task-board.md",
    ]);
    assert_eq!(un.status.code(), Some(0), "{}", text(&un.stderr));
    assert!(text(&un.stdout).contains("launchctl bootout gui/$(id -u)/com.taskboard.run."));
    assert!(env.files_in(&env.launchd_dir()).is_empty());
}

/// The example files committed under `launchd/` and `systemd/` are exactly what the generator
/// makes for the example board described in those folders' README.
#[test]
fn committed_examples_match_the_generator() {
    use taskboard::core::service_files::{self, Spec};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = |board: &str| Spec {
        binary: PathBuf::from("/usr/local/bin/taskboard"),
        board: PathBuf::from(board),
        path_env: "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin".into(),
        grace: std::time::Duration::from_secs(10),
    };
    let sets = [
        (
            "launchd",
            service_files::launchd_files(&example("/Users/me/my project/task-board.md")),
        ),
        (
            "systemd",
            service_files::systemd_files(&example("/home/me/my project/task-board.md")),
        ),
    ];
    for (dir, files) in sets {
        for f in files {
            let path = root.join(dir).join(&f.name);
            if std::env::var_os("TASKBOARD_BLESS").is_some() {
                std::fs::write(&path, &f.contents).unwrap();
            }
            let committed = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (TASKBOARD_BLESS=1 rewrites)", path.display()));
            assert_eq!(
                committed,
                f.contents,
                "{} differs from the generator",
                path.display()
            );
        }
    }
}
