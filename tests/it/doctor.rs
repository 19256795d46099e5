//! `taskboard doctor` against real folders: a healthy setup passes with a live `run` and an
//! installed service found, and each kind of breakage is one FAIL line with exit 1.

use crate::support;

use std::process::Output;

use support::Sandbox;

fn doctor(sb: &Sandbox, extra: &[&str]) -> Output {
    let mut args = vec!["doctor"];
    args.extend_from_slice(extra);
    sb.command(&args)
        .env("HOME", sb.path("home"))
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap()
}

/// The lines, checked for the `ok|warn|FAIL  <check>: <finding>` shape.
fn lines(out: &Output) -> Vec<String> {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<String> = stdout.lines().map(str::to_string).collect();
    assert!(!lines.is_empty());
    for l in &lines {
        let rest = l
            .strip_prefix("ok    ")
            .or_else(|| l.strip_prefix("warn  "))
            .or_else(|| l.strip_prefix("FAIL  "))
            .unwrap_or_else(|| panic!("bad line shape: {l:?}"));
        assert!(rest.contains(": "), "bad line shape: {l:?}");
        if !l.starts_with("ok") {
            assert!(
                rest.contains(" — "),
                "a warn or FAIL says what to do: {l:?}"
            );
        }
    }
    lines
}

fn line<'a>(lines: &'a [String], check: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l[6..].starts_with(&format!("{check}: ")))
        .unwrap_or_else(|| panic!("no {check} line in {lines:#?}"))
}

fn healthy(sb: &Sandbox) {
    sb.script("exec.sh", "cat > /dev/null\nexit 0");
    sb.config("", "[executors.default]\ncommand = [\"./exec.sh\"]\n\n[executors.shell]\ncommand = [\"sh\", \"-c\", \"true\"]\n");
    sb.write_board("# Board\n\n## A-1\n- status: done\n\n## B-1\n- status: blocked:me:later\n");
}

#[test]
fn a_healthy_setup_has_no_fail_and_exits_0() {
    let mut sb = Sandbox::new("doctor-healthy");
    healthy(&sb);
    let installed = sb
        .command(&["service", "install", "--systemd", "task-board.md"])
        .env("HOME", sb.path("home"))
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap();
    assert_eq!(installed.status.code(), Some(0));
    let pid = sb.start_run();

    let out = doctor(&sb, &[]);
    let lines = lines(&out);
    assert_eq!(out.status.code(), Some(0), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.starts_with("FAIL")), "{lines:#?}");
    assert!(line(&lines, "config").starts_with("ok"));
    let board = line(&lines, "board");
    assert!(
        board.starts_with("ok") && board.contains("lint-clean"),
        "{board}"
    );
    assert!(line(&lines, "executor default").starts_with("ok"));
    let shell = line(&lines, "executor shell");
    assert!(shell.starts_with("ok") && shell.contains("/sh"), "{shell}");
    assert!(line(&lines, "state").starts_with("ok"));
    let run = line(&lines, "run");
    assert!(
        run.starts_with("ok") && run.contains(&format!("pid {pid}")),
        "{run}"
    );
    // Installed; whether it is loaded depends on a user manager this machine may not have.
    let service = line(&lines, "service");
    assert!(service.contains("installed in"), "{service}");
    assert!(line(&lines, "clock").starts_with("ok"));
    // The probe file is gone, and the run still holds its lock.
    let leftovers: Vec<_> = std::fs::read_dir(sb.path(".taskboard"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".doctor-probe"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let again = doctor(&sb, &[]);
    assert!(line(&self::lines(&again), "run").starts_with("ok"));
}

#[test]
fn warnings_alone_do_not_fail() {
    let sb = Sandbox::new("doctor-warn");
    sb.write_board("# Board\n\n## A-1\n- status: done\n");
    let out = doctor(&sb, &[]);
    let lines = lines(&out);
    assert_eq!(out.status.code(), Some(0), "{lines:#?}");
    assert!(line(&lines, "executors").starts_with("warn"));
    assert!(line(&lines, "executors").contains("nothing will run"));
    assert!(line(&lines, "run").starts_with("warn"));
    assert!(line(&lines, "service").starts_with("warn"));
    assert!(line(&lines, "service").contains("not installed"));
}

#[test]
fn an_invalid_config_fails() {
    let sb = Sandbox::new("doctor-config");
    sb.write_board("# Board\n");
    sb.write("taskboard.toml", "[runtime]\nmax_parallel = 0\n");
    let out = doctor(&sb, &[]);
    let lines = lines(&out);
    assert_eq!(out.status.code(), Some(1));
    let config = line(&lines, "config");
    assert!(
        config.starts_with("FAIL") && config.contains("taskboard.toml"),
        "{config}"
    );

    // --config names another file.
    sb.write("good.toml", "[runtime]\nmax_parallel = 1\n");
    let out = doctor(&sb, &["--config", "good.toml"]);
    let lines_ok = self::lines(&out);
    assert!(line(&lines_ok, "config").starts_with("ok"), "{lines_ok:#?}");
}

#[test]
fn missing_executors_fail() {
    let sb = Sandbox::new("doctor-exec");
    sb.write("not-exec.sh", "#!/bin/sh\n");
    sb.config(
        "",
        "[executors.default]\ncommand = [\"no-such-program-taskboard-test\"]\n\n[executors.local]\ncommand = [\"./missing.sh\"]\n\n[executors.plain]\ncommand = [\"./not-exec.sh\"]\n",
    );
    sb.write_board("# Board\n");
    let out = doctor(&sb, &[]);
    let lines = lines(&out);
    assert_eq!(out.status.code(), Some(1));
    let default = line(&lines, "executor default");
    assert!(
        default.starts_with("FAIL") && default.contains("not found on PATH"),
        "{default}"
    );
    let local = line(&lines, "executor local");
    assert!(
        local.starts_with("FAIL") && local.contains("does not exist"),
        "{local}"
    );
    let plain = line(&lines, "executor plain");
    assert!(
        plain.starts_with("FAIL") && plain.contains("chmod +x"),
        "{plain}"
    );
}

#[test]
fn a_broken_board_and_state_folder_fail() {
    let sb = Sandbox::new("doctor-board");
    healthy(&sb);
    // Lint errors: a duplicate ID.
    sb.write_board("# Board\n\n## A-1\n- status: done\n\n## A-1\n- status: done\n");
    // A file where the state folder should be.
    sb.write(".taskboard", "not a folder\n");
    let out = doctor(&sb, &[]);
    let lines = lines(&out);
    assert_eq!(out.status.code(), Some(1));
    let board = line(&lines, "board");
    assert!(
        board.starts_with("FAIL") && board.contains("1 error"),
        "{board}"
    );
    assert!(board.contains("taskboard lint"), "{board}");
    assert!(line(&lines, "state").starts_with("FAIL"));

    // A missing board.
    std::fs::remove_file(&sb.board).unwrap();
    let out = doctor(&sb, &[]);
    let lines = self::lines(&out);
    let board = line(&lines, "board");
    assert!(
        board.starts_with("FAIL") && board.contains("no such file"),
        "{board}"
    );
}

#[test]
fn a_claim_in_the_future_fails_the_clock() {
    let sb = Sandbox::new("doctor-clock");
    healthy(&sb);
    let future = (chrono::Utc::now() + chrono::Duration::days(2)).format("%Y-%m-%dT%H:%MZ");
    sb.write_board(&format!(
        "# Board\n\n## A-1\n- status: running:someone:{future}\n"
    ));
    let out = doctor(&sb, &[]);
    let lines = lines(&out);
    assert_eq!(out.status.code(), Some(1));
    let clock = line(&lines, "clock");
    assert!(
        clock.starts_with("FAIL") && clock.contains("A-1"),
        "{clock}"
    );
}

#[test]
fn a_partial_service_install_warns() {
    let sb = Sandbox::new("doctor-partial");
    healthy(&sb);
    let installed = sb
        .command(&["service", "install", "--systemd", "task-board.md"])
        .env("HOME", sb.path("home"))
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap();
    assert_eq!(installed.status.code(), Some(0));
    let dir = sb.path("home/.config/systemd/user");
    let timer = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "timer"))
        .unwrap();
    std::fs::remove_file(timer).unwrap();
    let out = doctor(&sb, &[]);
    let lines = lines(&out);
    let service = line(&lines, "service");
    assert!(
        service.starts_with("warn") && service.contains("2 of 3"),
        "{service}"
    );
}
