//! The configuration file: shape, defaults, validation and positions of errors.

use std::collections::BTreeMap;
use std::time::Duration;

use taskboard::core::config::{
    self, Config, ConfigError, ExecutorConfig, Runner, SlurmConfig, SshHost, Workspace, parse,
    parse_duration,
};

const SAMPLE: &str = r#"[runtime]
debounce_ms = 2000
max_parallel = 2
max_attempts = 3
retry_backoff = "30s"   # doubles each attempt
stale_after = "2h"
rescan_every = "1h"
grace = "10s"           # SIGTERM to SIGKILL
output_cap = "1MiB"     # per stream per attempt kept on disk
agent = "taskboard"     # the agent name written into running:<agent>:<time>

[executors.default]
command = ["claude", "-p"]
timeout = "30m"
# env = { KEY = "value" }   optional extra environment

[executors.review]
command = ["./scripts/review.sh"]
timeout = "5m"
"#;

fn err(text: &str) -> ConfigError {
    match parse(text) {
        Ok(c) => panic!("expected an error for {text:?}, got {c:?}"),
        Err(e) => e,
    }
}

/// Asserts the error is at `line` and its message mentions `needle`.
fn assert_err(text: &str, line: usize, needle: &str) {
    let e = err(text);
    assert_eq!(e.line, Some(line), "line of {e} for {text:?}");
    assert!(e.column.is_some(), "column of {e}");
    assert!(
        e.message.contains(needle),
        "message {:?} should mention {needle:?}",
        e.message
    );
    assert!(!e.to_string().contains('\n'), "one line: {e}");
}

#[test]
fn sample_parses_to_expected_values() {
    let c = parse(SAMPLE).unwrap();
    let r = &c.runtime;
    assert_eq!(r.debounce, Duration::from_millis(2000));
    assert_eq!(r.max_parallel, 2);
    assert_eq!(r.max_attempts, 3);
    assert_eq!(r.retry_backoff, Duration::from_secs(30));
    assert_eq!(r.stale_after, Duration::from_secs(7200));
    assert_eq!(r.rescan_every, Duration::from_secs(3600));
    assert_eq!(r.grace, Duration::from_secs(10));
    assert_eq!(r.output_cap, 1 << 20);
    assert_eq!(r.agent, "taskboard");
    assert_eq!(c.executors.len(), 2);
    assert_eq!(
        c.executors["default"],
        ExecutorConfig {
            command: vec!["claude".into(), "-p".into()],
            timeout: Some(Duration::from_secs(1800)),
            env: BTreeMap::new(),
            max_cost_usd: None,
            daily_budget_usd: None,
            review: None,
            workspace: Workspace::Shared,
            runner: Runner::Local,
        }
    );
    assert_eq!(c.executors["review"].command, ["./scripts/review.sh"]);
    assert_eq!(
        c.executors["review"].timeout,
        Some(Duration::from_secs(300))
    );
    // The sample's runtime table is exactly the defaults.
    assert_eq!(c.runtime, Config::default().runtime);
}

#[test]
fn defaults_have_no_executors() {
    let d = Config::default();
    assert!(d.executors.is_empty());
    assert!(d.executor_for(None).is_none());
    assert_eq!(parse("").unwrap(), d);
    assert_eq!(parse("[runtime]\n").unwrap(), d);
}

#[test]
fn partial_runtime_keeps_other_defaults() {
    let c = parse("[runtime]\nmax_parallel = 5\n").unwrap();
    assert_eq!(c.runtime.max_parallel, 5);
    assert_eq!(c.runtime.max_attempts, 3);
    assert_eq!(c.runtime.debounce, Duration::from_secs(2));
}

#[test]
fn env_and_no_timeout() {
    let c = parse(
        "[executors.x]\ncommand = [\"sh\", \"-c\", \"true\"]\nenv = { KEY = \"value\", B = \"\" }\n",
    )
    .unwrap();
    let x = &c.executors["x"];
    assert_eq!(x.timeout, None);
    assert_eq!(x.env["KEY"], "value");
    assert_eq!(x.env["B"], "");
}

#[test]
fn executor_for_routes() {
    let c = parse(SAMPLE).unwrap();
    let (name, e) = c.executor_for(None).unwrap();
    assert_eq!(name, "default");
    assert_eq!(e.command[0], "claude");
    assert_eq!(c.executor_for(Some("review")).unwrap().0, "review");
    assert!(c.executor_for(Some("nope")).is_none());
}

#[test]
fn unknown_keys_are_errors_with_their_line() {
    assert_err(
        "[runtime]\nmax_parallel = 2\nmax_paralel = 3\n",
        3,
        "max_paralel",
    );
    assert_err("[runtim]\n", 1, "runtim");
    assert_err(
        "[executors.default]\ncommand = [\"a\"]\n\ntimeout = \"1m\"\nretries = 2\n",
        5,
        "retries",
    );
}

#[test]
fn wrong_types_are_errors() {
    assert_err("[runtime]\nmax_parallel = \"2\"\n", 2, "");
    assert_err("[runtime]\nagent = 3\n", 2, "");
    assert_err("[runtime]\ndebounce_ms = \"2s\"\n", 2, "milliseconds");
    assert_err("[executors.x]\ncommand = \"claude -p\"\n", 2, "array");
    assert_err("[executors.x]\ncommand = [\"a\", 1]\n", 2, "");
    assert_err("[executors.x]\ncommand = [\"a\"]\nenv = { A = 1 }\n", 3, "");
    assert_err("runtime = 1\n", 1, "a [runtime] table");
    assert_err("[runtime\n", 1, "");
}

#[test]
fn validation_errors() {
    assert_err(
        "[runtime]\nmax_parallel = 0\n",
        2,
        "max_parallel must be at least 1",
    );
    assert_err(
        "[runtime]\nmax_attempts = 0\n",
        2,
        "max_attempts must be at least 1",
    );
    assert_err("[runtime]\nmax_attempts = -1\n", 2, "at least 1");
    assert_err("[runtime]\nmax_attempts = 99999999999\n", 2, "too large");
    assert_err("[runtime]\ndebounce_ms = 60001\n", 2, "between 1 and 60000");
    assert_err("[runtime]\ndebounce_ms = 0\n", 2, "between 1 and 60000");
    assert_err("[runtime]\nstale_after = \"0s\"\n", 2, "longer than zero");
    assert_err("[runtime]\nrescan_every = \"0m\"\n", 2, "longer than zero");
    assert_err("[runtime]\nretry_backoff = 30\n", 2, "\"30s\"");
    assert_err("[runtime]\ngrace = \"10 sec\"\n", 2, "");
    assert_err("[runtime]\noutput_cap = 0\n", 2, "larger than zero");
    assert_err("[runtime]\noutput_cap = \"1 TiB\"\n", 2, "invalid size");
    assert_err("[runtime]\noutput_cap = -5\n", 2, "negative");
    assert_err("[runtime]\nagent = \"\"\n", 2, "agent name");
    assert_err("[runtime]\nagent = \"-x\"\n", 2, "agent name");
    assert_err("[runtime]\nagent = \"a:b\"\n", 2, "agent name");
    assert_err("[executors.x]\ncommand = []\n", 2, "command is empty");
    assert_err(
        "[executors.x]\ncommand = [\"a\", \"\"]\n",
        2,
        "element 2 is an empty string",
    );
    assert_err("[executors.x]\ntimeout = \"1m\"\n", 1, "command");
    assert_err(
        "[executors.x]\ncommand = [\"a\"]\ntimeout = \"0s\"\n",
        3,
        "longer than zero",
    );
    assert_err(
        "[executors.x]\ncommand = [\"a\"]\ntimeout = 60\n",
        3,
        "unit",
    );
    assert_err(
        "[executors.\"a b\"]\ncommand = [\"a\"]\n",
        1,
        "invalid executor name",
    );
    assert_err(
        "[executors.\"a.b\"]\ncommand = [\"a\"]\n",
        1,
        "invalid executor name",
    );
    assert_err(
        "[executors.x]\ncommand = [\"a\"]\nenv = { \"A=B\" = \"1\" }\n",
        3,
        "environment variable name",
    );
}

#[test]
fn zero_backoff_and_grace_are_allowed() {
    let c = parse("[runtime]\nretry_backoff = \"0s\"\ngrace = \"0s\"\n").unwrap();
    assert!(c.runtime.retry_backoff.is_zero());
    assert!(c.runtime.grace.is_zero());
}

#[test]
fn valid_names() {
    let c =
        parse("[runtime]\nagent = \"host-1.worker_2\"\n[executors.Re_view-2]\ncommand = [\"a\"]\n")
            .unwrap();
    assert_eq!(c.runtime.agent, "host-1.worker_2");
    assert!(c.executors.contains_key("Re_view-2"));
}

#[test]
fn durations_table() {
    let ok: &[(&str, u64)] = &[
        ("500ms", 500),
        ("30s", 30_000),
        ("5m", 300_000),
        ("2h", 7_200_000),
        ("1d", 86_400_000),
        ("1h30m", 5_400_000),
        ("1d2h3m4s5ms", 93_784_005),
        ("0s", 0),
        (" 10s ", 10_000),
    ];
    for (s, ms) in ok {
        assert_eq!(parse_duration(s), Ok(Duration::from_millis(*ms)), "{s}");
    }
    let bad: &[(&str, &str)] = &[
        ("30", "no unit"),
        ("", "empty"),
        ("s", "invalid"),
        ("1.5h", "invalid"),
        ("10sec", "unknown unit"),
        ("30m1h", "largest to smallest"),
        ("1m1m", "largest to smallest"),
        ("-1s", "invalid"),
        ("1h 30m", "invalid"),
        ("99999999999999999999s", "too large"),
        ("999999999999999d", "too large"),
    ];
    for (s, needle) in bad {
        let e = parse_duration(s).unwrap_err();
        assert!(e.contains(needle), "{s:?}: {e}");
    }
}

#[test]
fn sizes() {
    for (s, n) in [
        ("100", 100u64),
        ("100B", 100),
        ("512KiB", 512 * 1024),
        ("1MiB", 1 << 20),
        ("10MB", 10_000_000),
        ("1kb", 1000),
        ("2GiB", 2 << 30),
    ] {
        assert_eq!(config::parse_size(s), Ok(n), "{s}");
    }
    assert_eq!(
        parse("[runtime]\noutput_cap = 4096\n")
            .unwrap()
            .runtime
            .output_cap,
        4096
    );
    assert!(config::parse_size("1.5MiB").is_err());
    assert!(config::parse_size("MiB").is_err());
}

#[test]
fn error_display_formats() {
    let mut e = err("[runtime]\n  max_parallel = 0\n");
    assert_eq!((e.line, e.column), (Some(2), Some(18)));
    assert!(e.to_string().starts_with("line 2, column 18: "), "{e}");
    e.path = Some("dir/taskboard.toml".into());
    assert!(
        e.to_string().starts_with("dir/taskboard.toml:2:18: "),
        "{e}"
    );
}

mod load {
    use super::*;
    use std::fs;
    use taskboard::shell::config_file::load;

    fn dir(name: &str) -> crate::support::TempDir {
        crate::support::TempDir::new(&format!("config-{name}"))
    }

    #[test]
    fn absent_file_gives_defaults() {
        let d = dir("absent");
        let l = load(None, &d).unwrap();
        assert_eq!(l.path, None);
        assert_eq!(l.config, Config::default());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn file_beside_board_is_used() {
        let d = dir("beside");
        fs::write(d.join("taskboard.toml"), SAMPLE).unwrap();
        let l = load(None, &d).unwrap();
        assert_eq!(l.path, Some(d.join("taskboard.toml")));
        assert_eq!(l.config, parse(SAMPLE).unwrap());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn explicit_path_must_exist() {
        let d = dir("explicit");
        let p = d.join("other.toml");
        let e = load(Some(&p), &d).unwrap_err();
        assert_eq!(e.path.as_deref(), Some(p.as_path()));
        assert!(e.to_string().ends_with(": no such file"), "{e}");
        fs::write(&p, "[runtime]\nmax_parallel = 7\n").unwrap();
        // The default file beside the board is ignored when a path is given.
        fs::write(d.join("taskboard.toml"), "bad = 1\n").unwrap();
        assert_eq!(load(Some(&p), &d).unwrap().config.runtime.max_parallel, 7);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn errors_carry_the_path() {
        let d = dir("errors");
        let p = d.join("taskboard.toml");
        fs::write(&p, "[runtime]\nmax_parallel = 0\n").unwrap();
        let e = load(None, &d).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}:2:16: max_parallel must be at least 1, not 0",
                p.display()
            )
        );
        fs::write(&p, b"agent = \"\xff\"\n").unwrap();
        let e = load(None, &d).unwrap_err();
        assert!(
            e.to_string()
                .contains("not valid UTF-8 (first invalid byte at offset 9)"),
            "{e}"
        );
        fs::remove_file(&p).unwrap();
        fs::create_dir(&p).unwrap();
        let e = load(None, &d).unwrap_err();
        assert!(e.to_string().contains("is a folder"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }
}

mod props {
    use proptest::prelude::*;
    use std::time::Duration;
    use taskboard::core::config::parse_duration;

    proptest! {
        #[test]
        fn combined_durations_add_up(d in 0u64..400, h in 0u64..100, m in 0u64..100, s in 0u64..100, ms in 0u64..2000, mask in 1u8..32) {
            let parts = [(d, "d", 86_400_000u64), (h, "h", 3_600_000), (m, "m", 60_000), (s, "s", 1_000), (ms, "ms", 1)];
            let mut text = String::new();
            let mut total = 0;
            for (i, (n, unit, scale)) in parts.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    text.push_str(&format!("{n}{unit}"));
                    total += n * scale;
                }
            }
            prop_assert_eq!(parse_duration(&text), Ok(Duration::from_millis(total)));
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,20}") {
            let _ = parse_duration(&text);
            let _ = taskboard::core::config::parse_size(&text);
        }
    }
}

#[test]
fn routes_with_cost_caps_budgets_and_reviews() {
    let c = parse(
        r#"
[executors.implementation]
command = ["claude", "-p"]
max_cost_usd = 0.75
daily_budget_usd = 10
review = "review"

[executors.review]
command = ["claude", "-p", "--model", "haiku"]
max_cost_usd = 0.10
"#,
    )
    .unwrap();
    let imp = &c.executors["implementation"];
    assert_eq!(imp.max_cost_usd, Some(0.75));
    assert_eq!(imp.daily_budget_usd, Some(10.0));
    assert_eq!(imp.review.as_deref(), Some("review"));
    assert_eq!(c.executors["review"].review, None);
    assert_eq!(c.runtime.packet_budget, 64 * 1024);

    for (text, needle) in [
        (
            "[executors.a]\ncommand = [\"x\"]\nreview = \"nope\"\n",
            "names no executor",
        ),
        (
            "[executors.a]\ncommand = [\"x\"]\nreview = \"a\"\n",
            "cannot review itself",
        ),
        (
            "[executors.a]\ncommand = [\"x\"]\nreview = \"b\"\n[executors.b]\ncommand = [\"x\"]\nreview = \"a\"\n",
            "has a review of its own",
        ),
        (
            "[executors.a]\ncommand = [\"x\"]\nmax_cost_usd = -1\n",
            "zero or more",
        ),
        (
            "[executors.a]\ncommand = [\"x\"]\ndaily_budget_usd = \"ten\"\n",
            "invalid type",
        ),
    ] {
        let e = parse(text).unwrap_err();
        assert!(e.to_string().contains(needle), "{text}: {e}");
    }
}

#[test]
fn worktree_routes_and_repositories() {
    let c = parse(
        r#"
[executors.default]
command = ["claude", "-p"]

[executors.isolated]
command = ["claude", "-p"]
workspace = "worktree"
base_branch = "main"
worktree_include = [".env"]
setup = ["npm", "ci"]
merge = "merge"
keep_worktrees = "7d"

[repos.api]
path = "../api"
base_branch = "develop"

[repos.web]
path = "../web"
"#,
    )
    .unwrap();
    assert_eq!(c.executors["default"].workspace, Workspace::Shared);
    let Workspace::Worktree(w) = &c.executors["isolated"].workspace else {
        panic!("isolated is a worktree route");
    };
    assert_eq!(w.repo, None);
    assert_eq!(w.base_branch.as_deref(), Some("main"));
    assert_eq!(w.include, [".env"]);
    assert_eq!(
        w.setup.as_deref(),
        Some(&["npm".to_string(), "ci".to_string()][..])
    );
    assert_eq!(w.merge, config::MergeStrategy::Merge);
    assert_eq!(w.keep, Duration::from_secs(7 * 86_400));
    assert_eq!(
        c.repos.keys().map(String::as_str).collect::<Vec<_>>(),
        ["api", "web"]
    );
    assert_eq!(c.repos["api"].base_branch.as_deref(), Some("develop"));
    assert_eq!(c.repos["web"].path, std::path::PathBuf::from("../web"));
}

#[test]
fn worktree_keys_on_a_shared_route_are_errors_at_the_key() {
    assert_err(
        "[executors.default]\ncommand = [\"a\"]\nsetup = [\"make\"]\n",
        3,
        "[executors.default] setup only applies",
    );
    assert_err(
        "[executors.default]\ncommand = [\"a\"]\nworkspace = \"worktree\"\nbase_branch = \"no..dots\"\n",
        4,
        "invalid branch name",
    );
    assert_err(
        "[repos.api]\npath = \"../api\"\nbase_branch = \"a b\"\n",
        3,
        "invalid branch name",
    );
    assert_err(
        "[repos.\"../x\"]\npath = \"x\"\n",
        1,
        "invalid repository name",
    );
}

#[test]
fn a_worktree_key_on_a_shared_route_exits_3_naming_it() {
    let sb = crate::support::Sandbox::new("config-worktree-key");
    sb.write_board("# Board\n");
    sb.write(
        "taskboard.toml",
        "[executors.default]\ncommand = [\"true\"]\nmerge = \"rebase\"\n",
    );
    let out = sb.command(&["run", "task-board.md"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("taskboard.toml:3:9: [executors.default] merge only applies"),
        "{err}"
    );
}

#[test]
fn lint_checks_repos_against_the_configuration() {
    let sb = crate::support::Sandbox::new("config-lint-repos");
    sb.write_board(
        "## A-1: Both\n- status: ready\n- route: iso\n- repos: api, mobile\n\n## A-2: Shared\n- status: ready\n- repos: api\n- base_branch: a b\n",
    );
    sb.write(
        "taskboard.toml",
        "[executors.default]\ncommand = [\"true\"]\n[executors.iso]\ncommand = [\"true\"]\nworkspace = \"worktree\"\n[repos.api]\npath = \".\"\n",
    );
    let out = sb.command(&["lint"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(":4:15: error[unknown-repo]"), "{text}");
    assert!(
        text.contains(":8:3: error[repos-on-shared-route]"),
        "{text}"
    );
    assert!(text.contains(":9:16: error[bad-base-branch]"), "{text}");
    assert_eq!(text.lines().last(), Some("3 errors, 0 warnings"), "{text}");
}

#[test]
fn remote_runners_parse_with_their_defaults() {
    let c = parse(
        r#"
[executors.gpu]
command = ["agent"]
runner = "slurm"
sbatch_args = ["--partition=gpu", "--gres=gpu:1"]
shared_dir = "/scratch/tb"

[executors.farm]
command = ["agent"]
runner = "ssh"
hosts = ["gpu1", { host = "ssh://me@gpu2:2222", max_parallel = 2 }]
ssh_args = ["-i", "/k"]

[executors.here]
command = ["agent"]
runner = "local"
"#,
    )
    .unwrap();
    assert_eq!(
        c.executors["gpu"].runner,
        Runner::Slurm(SlurmConfig {
            sbatch_args: vec!["--partition=gpu".into(), "--gres=gpu:1".into()],
            shared_dir: "/scratch/tb".into(),
        })
    );
    let Runner::Ssh(ssh) = &c.executors["farm"].runner else {
        panic!("not ssh: {:?}", c.executors["farm"].runner);
    };
    assert_eq!(
        ssh.hosts,
        vec![
            SshHost {
                destination: "gpu1".into(),
                max_parallel: None
            },
            SshHost {
                destination: "ssh://me@gpu2:2222".into(),
                max_parallel: Some(2)
            },
        ]
    );
    assert_eq!(ssh.ssh_args, ["-i", "/k"]);
    assert_eq!(ssh.remote_dir, taskboard::core::config::DEFAULT_REMOTE_DIR);
    assert_eq!(ssh.host_down_for, Duration::from_secs(60));
    assert_eq!(c.executors["here"].runner, Runner::Local);
}

#[test]
fn remote_runner_mistakes_are_errors_at_the_key() {
    let route = "[executors.default]\ncommand = [\"a\"]\n";
    let cases: &[(&str, usize, &str)] = &[
        (
            "shared_dir = \"/s\"\n",
            3,
            "shared_dir only applies to runner = \"slurm\"",
        ),
        (
            "runner = \"ssh\"\nhosts = [\"h\"]\nsbatch_args = [\"-p\"]\n",
            5,
            "sbatch_args only applies",
        ),
        (
            "hosts = [\"h\"]\n",
            3,
            "hosts only applies to runner = \"ssh\"",
        ),
        ("runner = \"slurm\"\n", 3, "needs shared_dir"),
        ("runner = \"ssh\"\n", 3, "needs hosts"),
        ("runner = \"ssh\"\nhosts = []\n", 4, "at least one host"),
        (
            "runner = \"ssh\"\nhosts = [\"-oProxyCommand=x\"]\n",
            4,
            "not an ssh destination",
        ),
        (
            "runner = \"ssh\"\nhosts = [\"a\", \"a\"]\n",
            4,
            "listed twice",
        ),
        (
            "runner = \"ssh\"\nhosts = [{ host = \"a\", max_parallel = 0 }]\n",
            4,
            "at least 1",
        ),
        (
            "runner = \"ssh\"\nhosts = [\"a\"]\nremote_dir = \"a b\"\n",
            5,
            "remote_dir",
        ),
        ("runner = \"cloud\"\n", 3, "runner"),
        (
            "runner = \"slurm\"\nshared_dir = \"/s\"\nworkspace = \"worktree\"\n",
            3,
            "runs on this machine only",
        ),
        (
            "runner = \"slurm\"\nshared_dir = \"/s\"\nsbatch_args = [\"\"]\n",
            5,
            "non-empty",
        ),
    ];
    for (extra, line, needle) in cases {
        assert_err(&format!("{route}{extra}"), *line, needle);
    }
}
