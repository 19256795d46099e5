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

/// A Slurm route whose client tools are the sandbox's scripts, put first on PATH; `squeue`
/// exits with `squeue_exit`.
fn slurm_route(sb: &Sandbox, squeue_exit: i32, shared_dir: &str) -> std::ffi::OsString {
    std::fs::create_dir_all(sb.path("bin")).unwrap();
    sb.script("bin/sbatch", "echo 'Submitted batch job 1'");
    sb.script(
        "bin/squeue",
        &format!("echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2\n[ {squeue_exit} = 0 ] && echo 17\nexit {squeue_exit}"),
    );
    sb.script("bin/scancel", "exit 0");
    sb.config(
        "",
        &format!("[executors.default]\ncommand = [\"agent\"]\nrunner = \"slurm\"\nshared_dir = \"{shared_dir}\"\n"),
    );
    sb.write_board("# Board\n\n## A-1\n- status: done\n");
    let mut path = std::ffi::OsString::from(sb.path("bin"));
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    path
}

fn doctor_with_path(sb: &Sandbox, path: &std::ffi::OsStr) -> Output {
    sb.command(&["doctor"])
        .env("HOME", sb.path("home"))
        .env_remove("XDG_CONFIG_HOME")
        .env("PATH", path)
        .output()
        .unwrap()
}

fn slurm_lines(lines: &[String]) -> Vec<&String> {
    lines
        .iter()
        .filter(|l| l[6..].starts_with("slurm default: "))
        .collect()
}

#[test]
fn a_slurm_route_with_its_tools_a_cluster_and_a_shared_folder_passes() {
    let sb = Sandbox::new("doctor-slurm-ok");
    std::fs::create_dir_all(sb.path("shared")).unwrap();
    let path = slurm_route(&sb, 0, "shared");
    let out = doctor_with_path(&sb, &path);
    let lines = lines(&out);
    let slurm = slurm_lines(&lines);
    assert_eq!(slurm.len(), 3, "{lines:#?}");
    assert!(slurm.iter().all(|l| l.starts_with("ok")), "{lines:#?}");
    assert!(
        slurm[0].contains("sbatch, squeue, scancel found"),
        "{lines:#?}"
    );
    assert!(slurm[1].contains("answers squeue"), "{lines:#?}");
    assert!(slurm[2].contains("writable"), "{lines:#?}");
    // The probe file is gone again.
    assert_eq!(std::fs::read_dir(sb.path("shared")).unwrap().count(), 0);
    // The executor's command is on the far side: not looked for on this PATH.
    assert!(
        line(&lines, "executor default").starts_with("ok"),
        "{lines:#?}"
    );
}

#[test]
fn a_cluster_that_does_not_answer_is_a_failed_check() {
    let sb = Sandbox::new("doctor-slurm-down");
    std::fs::create_dir_all(sb.path("shared")).unwrap();
    let path = slurm_route(&sb, 1, "shared");
    let out = doctor_with_path(&sb, &path);
    let lines = lines(&out);
    assert_eq!(out.status.code(), Some(1), "{lines:#?}");
    let failed: Vec<_> = slurm_lines(&lines)
        .into_iter()
        .filter(|l| l.starts_with("FAIL"))
        .collect();
    assert_eq!(failed.len(), 1, "{lines:#?}");
    assert!(
        failed[0].contains("the cluster does not answer")
            && failed[0].contains("Unable to contact slurm controller"),
        "{lines:#?}"
    );
}

#[test]
fn a_missing_shared_dir_or_missing_tools_are_failed_checks() {
    let sb = Sandbox::new("doctor-slurm-dir");
    let path = slurm_route(&sb, 0, "nowhere");
    let out = doctor_with_path(&sb, &path);
    let first = lines(&out);
    assert_eq!(out.status.code(), Some(1), "{first:#?}");
    let dir = slurm_lines(&first)
        .into_iter()
        .find(|l| l.contains("shared_dir"))
        .unwrap_or_else(|| panic!("{first:#?}"));
    assert!(dir.starts_with("FAIL") && dir.contains("nowhere"), "{dir}");

    // A file where the folder should be.
    sb.write("afile", "x");
    slurm_route(&sb, 0, "afile");
    let second = lines(&doctor_with_path(&sb, &path));
    assert!(
        second
            .iter()
            .any(|l| l.starts_with("FAIL") && l.contains("is not a folder")),
        "{second:#?}"
    );

    // No Slurm tools on PATH (only where the machine has none of its own).
    if which("squeue").is_none() && which("scancel").is_none() {
        std::fs::remove_file(sb.path("bin/scancel")).unwrap();
        std::fs::remove_file(sb.path("bin/squeue")).unwrap();
        let third = lines(&doctor_with_path(&sb, &path));
        let tools = slurm_lines(&third)[0];
        assert!(
            tools.starts_with("FAIL") && tools.contains("squeue, scancel not found"),
            "{third:#?}"
        );
    }
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

#[test]
fn an_ssh_host_that_cannot_be_reached_fails_naming_it_within_seconds() {
    if which("ssh").is_none() {
        return support::skip("no ssh client on PATH");
    }
    let sb = Sandbox::new("doctor-ssh-down");
    sb.config(
        "",
        "[executors.default]\ncommand = [\"agent\"]\nrunner = \"ssh\"\nhosts = [\"ssh://root@127.0.0.1:1\"]\n",
    );
    sb.write_board("# Board\n\n## A-1\n- status: done\n");
    let started = std::time::Instant::now();
    let out = doctor(&sb, &[]);
    let took = started.elapsed();
    let lines = lines(&out);
    assert_eq!(out.status.code(), Some(1), "{lines:#?}");
    let host = lines
        .iter()
        .find(|l| l.starts_with("FAIL  ssh default: host ssh://root@127.0.0.1:1"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(
        host.contains("refused") || host.contains("not usable"),
        "{host}"
    );
    assert!(took < std::time::Duration::from_secs(15), "took {took:?}");
}
