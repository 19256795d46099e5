//! The real Slurm and sshd fixtures of `support::engines` work: jobs run on the node and write
//! into the shared folder, scancel and a node failure end them, ssh reaches both host names
//! with stdin, stdout and exit codes intact, an unreachable host fails fast, and no daemon
//! outlives a test process killed with SIGKILL.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::engines::{self, Slurm};
use crate::support::{DEADLINE, pid_alive, poll, skip_engine};

/// Submits `script` with `sbatch --parsable --wrap` from the shared folder; returns the job id.
fn submit(slurm: &Slurm, script: &str) -> String {
    let dir = slurm.shared_dir.display().to_string();
    let out = slurm.run("sbatch", &["--parsable", "-D", &dir, "--wrap", script]);
    // `--parsable` prints `id` or `id;cluster`.
    out.split(';').next().unwrap().to_string()
}

/// Waits for a file the job writes, returning its trimmed text.
fn wait_file(slurm: &Slurm, path: &Path) -> String {
    let mut text = String::new();
    let found = poll(DEADLINE, || {
        text = std::fs::read_to_string(path).unwrap_or_default();
        text.ends_with('\n')
    });
    assert!(
        found,
        "{} not written; jobs: {:?}\n{}",
        path.display(),
        slurm.run("squeue", &["-h", "-t", "all", "-o", "%i %T %r"]),
        slurm.logs()
    );
    text.trim().to_string()
}

fn wait_state(slurm: &Slurm, job: &str, what: &str, cond: impl Fn(Option<&str>) -> bool) {
    let ok = poll(DEADLINE, || cond(slurm.job_state(job).as_deref()));
    assert!(
        ok,
        "job {job} never {what} (state {:?})\n{}",
        slurm.job_state(job),
        slurm.logs()
    );
}

/// A job that writes its shell's pid to `<name>.pid` and then becomes `sleep 300`.
fn sleeper(slurm: &Slurm, name: &str) -> (String, i32) {
    let pid_file = slurm.shared_dir.join(format!("{name}.pid"));
    let job = submit(
        slurm,
        &format!("echo $$ > {}; exec sleep 300", pid_file.display()),
    );
    let pid: i32 = wait_file(slurm, &pid_file).parse().unwrap();
    wait_state(slurm, &job, "ran", |s| s == Some("RUNNING"));
    assert!(pid_alive(pid), "the job's sleep {pid} is not running");
    (job, pid)
}

#[test]
fn a_batch_job_runs_on_the_node_and_writes_into_the_shared_folder() {
    let slurm = match engines::slurm() {
        Ok(s) => s,
        Err(why) => return skip_engine("a Slurm cluster", &why),
    };
    let out = slurm.shared_dir.join("hi.txt");
    let job = submit(&slurm, &format!("echo hi > {}", out.display()));
    assert!(
        slurm.jobs().contains(&job),
        "squeue does not list job {job}"
    );
    assert_eq!(wait_file(&slurm, &out), "hi");
    wait_state(&slurm, &job, "completed", |s| s == Some("COMPLETED"));
    // Finished jobs stay listed (MinJobAge).
    assert!(slurm.jobs().contains(&job));
}

#[test]
fn scancel_ends_a_running_job_and_its_processes() {
    let slurm = match engines::slurm() {
        Ok(s) => s,
        Err(why) => return skip_engine("a Slurm cluster", &why),
    };
    let (job, pid) = sleeper(&slurm, "cancelled");
    slurm.run("scancel", &[&job]);
    wait_state(&slurm, &job, "left RUNNING", |s| {
        s.is_none_or(|s| s != "RUNNING")
    });
    assert!(
        poll(DEADLINE, || !pid_alive(pid)),
        "sleep {pid} outlived scancel"
    );
    wait_state(&slurm, &job, "was CANCELLED", |s| {
        s.is_none_or(|s| s == "CANCELLED")
    });
}

#[test]
fn a_failed_node_ends_its_job_and_comes_back() {
    let slurm = match engines::slurm() {
        Ok(s) => s,
        Err(why) => return skip_engine("a Slurm cluster", &why),
    };
    let (job, pid) = sleeper(&slurm, "node-fail");
    slurm.fail_node_and_recover();
    assert_eq!(slurm.job_state(&job).as_deref(), Some("NODE_FAIL"));
    assert!(
        poll(DEADLINE, || !pid_alive(pid)),
        "sleep {pid} outlived its node"
    );
    assert_eq!(slurm.node_state(), "idle");
    // The node takes work again.
    let out = slurm.shared_dir.join("after-node-fail.txt");
    submit(&slurm, &format!("echo again > {}", out.display()));
    assert_eq!(wait_file(&slurm, &out), "again");
}

#[test]
fn ssh_runs_commands_on_both_host_names() {
    let sshd = match engines::sshd() {
        Ok(s) => s,
        Err(why) => return skip_engine("an sshd", &why),
    };
    for host in &sshd.hosts {
        let out = sshd.ssh(host).arg("echo $((1+2))").output().unwrap();
        assert!(
            out.status.success(),
            "ssh {host}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            sshd.logs()
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "3\n");
    }
    // Piped stdin reaches the remote command.
    let mut child = sshd
        .ssh(&sshd.hosts[1])
        .arg("tr a-z A-Z")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped through\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "PIPED THROUGH\n");
    // The remote exit code comes back.
    let status = sshd.ssh(&sshd.hosts[0]).arg("exit 7").status().unwrap();
    assert_eq!(status.code(), Some(7));
}

#[test]
fn an_unreachable_host_fails_fast() {
    let sshd = match engines::sshd() {
        Ok(s) => s,
        Err(why) => return skip_engine("an sshd", &why),
    };
    let started = Instant::now();
    let out = sshd.ssh(&sshd.unreachable).arg("true").output().unwrap();
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

/// Pids of processes whose environment or command line names `dir`.
fn marked(dir: &Path) -> Vec<String> {
    let needle = dir.as_os_str().as_encoded_bytes();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.parse::<u32>().is_err() || name == std::process::id().to_string() {
            continue;
        }
        for file in ["environ", "cmdline"] {
            let bytes = std::fs::read(entry.path().join(file)).unwrap_or_default();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                found.push(format!("{name} {}", String::from_utf8_lossy(&cmd)));
                break;
            }
        }
    }
    found
}

/// Not a test of its own: `daemons_die_with_the_test_process` runs it in a child test process,
/// which starts both engines and a running job, prints `READY <folder>`, and blocks.
#[test]
#[ignore = "a helper: daemons_die_with_the_test_process runs it and kills it"]
fn hold_engines() {
    let slurm = engines::slurm().expect("the Slurm fixture");
    let sshd = engines::sshd().expect("the sshd fixture");
    sleeper(&slurm, "held");
    // A remote command still running, with its ssh client.
    let mut remote = sshd
        .ssh(&sshd.hosts[0])
        .arg("echo started; exec sleep 300")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(remote.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "started\n");
    // Never ends by itself: the test that runs this helper kills the process, and the
    // fixture's watchdog then kills this client and the remote sleep.
    std::mem::forget(remote);
    println!("READY {}", slurm.dir.display());
    loop {
        std::thread::park();
    }
}

#[test]
fn daemons_die_with_the_test_process() {
    // Only where both engines can run (the helper expects them).
    let dir = match engines::slurm().and_then(|s| engines::sshd().map(|_| s.dir.clone())) {
        Ok(dir) => dir,
        Err(why) => return skip_engine("a Slurm cluster and an sshd", &why),
    };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "engines::hold_engines",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(dir) = line.strip_prefix("READY ") {
                let _ = tx.send(dir.to_string());
            }
        }
    });
    let Ok(held) = rx.recv_timeout(Duration::from_secs(120)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the helper test process never got its engines ready");
    };
    let held = Path::new(&held).to_path_buf();
    assert_ne!(held, dir, "the helper must have a folder of its own");
    // munged, slurmctld, slurmd, sshd, slurmstepd, the job's sleep, the ssh client and its
    // remote sleep (and the watchdog, which names the folder in its arguments). The remote
    // sleep starts a moment after the client says it is connected: wait for all of them.
    let expected = [
        ("/munged\0", 1),
        ("/slurmctld\0", 1),
        ("/slurmd\0", 1),
        ("sshd: ", 1),
        ("slurmstepd: ", 1),
        ("/ssh\0", 1),
        ("sleep\u{0}300", 2),
    ];
    let missing_in = |procs: &[String]| -> Vec<(&str, usize)> {
        let seen = |what: &str| procs.iter().filter(|p| p.contains(what)).count();
        expected
            .iter()
            .filter(|(w, n)| seen(w) != *n)
            .copied()
            .collect()
    };
    let mut before = marked(&held);
    poll(DEADLINE, || {
        before = marked(&held);
        missing_in(&before).is_empty()
    });
    let missing = missing_in(&before);
    // Killed before any assertion, so a failure here leaves nothing behind either.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(missing.is_empty(), "missing {missing:?} in {before:#?}");
    let mut left = before;
    let gone = poll(DEADLINE, || {
        left = marked(&held);
        left.is_empty() && !held.exists()
    });
    assert!(
        gone,
        "left after the test process was killed: {left:#?} (folder exists: {})",
        held.exists()
    );
}
