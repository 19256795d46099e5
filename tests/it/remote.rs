//! Remote runners against real engines: an sshd on loopback and a one-node Slurm cluster,
//! both started by `support::engines` for this test process. Each test states the promise
//! ("this task ran exactly once", "nothing of the run is left running") and counts the bad
//! outcome directly: every executor appends a line to `starts.log` (the far side is this
//! machine, so it can), and leaves the pid of a grandchild where the test can look for it.

use std::path::Path;

use crate::support::engines::{self, Slurm, Sshd};
use crate::support::{DEADLINE, Sandbox, pid_alive, poll, read_pid, skip_engine};

/// An executor that records each start, leaves a grandchild in the background, then does what
/// the task's `- mode:` line says: `ok` (a result file with a note), `fail` (exit 3), or `hang`.
/// A hang outlives its grandchild: a job torn down may kill the grandchild first, and a shell
/// that went on from there would report the work done before it is killed too.
fn executor(sb: &Sandbox) {
    let dir = sb.dir.display().to_string();
    sb.script(
        "agent.sh",
        &format!(
            r#"echo "$TASKBOARD_TASK_ID $TASKBOARD_ATTEMPT $(hostname)" >> {dir}/starts.log
packet=$(cat)
sleep 300 &
echo $! > {dir}/$TASKBOARD_TASK_ID-$TASKBOARD_ATTEMPT.child
echo "working on $TASKBOARD_TASK_ID in $PWD"
case "$packet" in
  *"mode: fail"*) echo "it broke" >&2; exit 3 ;;
  *"mode: hang"*) wait; sleep 300 ;;
  *"mode: slow"*) sleep 4 ;;
esac
echo '{{"status":"done","note":"ran remotely"}}' > "$TASKBOARD_RESULT"
kill $! 2>/dev/null
exit 0"#
        ),
    );
}

fn board(tasks: &[(&str, &str)]) -> String {
    let mut text = String::from("# Remote board\n\nNotes the person keeps.\n");
    for (id, mode) in tasks {
        text.push_str(&format!(
            "\n## {id} A task\n- status: ready\n- mode: {mode}\n\nBody of {id}.\n"
        ));
    }
    text
}

/// How many times each task started, from `starts.log`.
fn starts(sb: &Sandbox, id: &str) -> usize {
    std::fs::read_to_string(sb.path("starts.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(id))
        .count()
}

/// Waits until the grandchild attempt `attempt` of `id` left is gone (the whole remote tree
/// was stopped); fails when it outlives the deadline.
fn tree_gone(sb: &Sandbox, id: &str, attempt: u32) {
    let file = sb.path(&format!("{id}-{attempt}.child"));
    assert!(
        poll(DEADLINE, || file.exists()),
        "the executor never started"
    );
    let pid = read_pid(&file).expect("child pid");
    assert!(
        poll(DEADLINE, || !pid_alive(pid)),
        "{id} attempt {attempt} left pid {pid} running on the far side"
    );
}

fn ssh_route(sb: &Sandbox, sshd: &Sshd, hosts: &[&str], timeout: &str, runtime: &str) {
    executor(sb);
    let list = |v: &[&str]| {
        v.iter()
            .map(|h| format!("\"{h}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let args: Vec<&str> = sshd.ssh_args.iter().map(String::as_str).collect();
    sb.config(
        runtime,
        &format!(
            "[executors.default]\ncommand = [\"{}\"]\nrunner = \"ssh\"\nhosts = [{}]\nssh_args = [{}]\nremote_dir = \"{}\"\ntimeout = \"{timeout}\"\n",
            sb.path("agent.sh").display(),
            list(hosts),
            list(&args),
            sb.path("far").display(),
        ),
    );
}

fn slurm_route(sb: &mut Sandbox, slurm: &Slurm, timeout: &str, runtime: &str) {
    slurm_routes(sb, slurm, &[("default", timeout)], runtime);
}

/// One Slurm executor per `(route, timeout)`, all running `agent.sh`.
fn slurm_routes(sb: &mut Sandbox, slurm: &Slurm, routes: &[(&str, &str)], runtime: &str) {
    executor(sb);
    for (k, v) in slurm.env() {
        sb.set_env(&k, &v);
    }
    let executors: String = routes
        .iter()
        .map(|(route, timeout)| {
            format!(
                "[executors.{route}]\ncommand = [\"{}\"]\nrunner = \"slurm\"\nshared_dir = \"{}\"\ntimeout = \"{timeout}\"\n\n",
                sb.path("agent.sh").display(),
                slurm.shared_dir.display(),
            )
        })
        .collect();
    sb.config(runtime, &executors);
}

fn sshd() -> Option<&'static Sshd> {
    match engines::sshd() {
        Ok(s) => Some(s),
        Err(why) => {
            skip_engine("an sshd", &why);
            None
        }
    }
}

fn finished_reasons(sb: &Sandbox, id: &str) -> Vec<String> {
    sb.events_named("task_finished")
        .iter()
        .filter(|e| e["task"] == id)
        .map(|e| e["note"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Nothing of a run is left in the far folder once its files are back.
fn far_folder_empty(root: &Path) -> bool {
    walk_files(root).is_empty()
}

fn walk_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[test]
fn ssh_tasks_run_once_each_on_the_least_busy_host_and_come_back_whole() {
    let Some(sshd) = sshd() else { return };
    let mut sb = Sandbox::new("ssh-done");
    ssh_route(&sb, sshd, &[&sshd.hosts[0], &sshd.hosts[1]], "60s", "");
    sb.write_board(&board(&[("S-1", "slow"), ("S-2", "slow")]));
    sb.start_run();
    sb.wait_until("both done", |s| {
        s.status_of("S-1") == "done" && s.status_of("S-2") == "done"
    });
    assert_eq!((starts(&sb, "S-1"), starts(&sb, "S-2")), (1, 1));
    // Both ran at once: one on each host.
    let hosts: std::collections::BTreeSet<String> = sb
        .events_named("task_dispatched")
        .iter()
        .map(|e| e["remote"]["host"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(hosts.len(), 2, "{hosts:?}");
    for id in ["S-1", "S-2"] {
        let dir = sb.run_dir(id, 1);
        let out = std::fs::read_to_string(dir.join("stdout.log")).unwrap();
        assert!(out.contains(&format!("working on {id}")), "{out}");
        let result = std::fs::read_to_string(dir.join("result.json")).unwrap();
        assert!(result.contains("ran remotely"));
        let packet = std::fs::read_to_string(dir.join("packet.md")).unwrap();
        assert!(packet.contains(&format!("Body of {id}.")));
        tree_gone(&sb, id, 1);
    }
    let handoff = std::fs::read_to_string(sb.path("handoffs/S-1.md")).unwrap();
    assert!(handoff.contains("ran remotely"), "{handoff}");
    sb.wait_until("far folders removed", |s| far_folder_empty(&s.path("far")));
    assert!(sb.board_text().contains("Notes the person keeps."));
}

#[test]
fn an_ssh_failure_is_retried_then_dead_lettered() {
    let Some(sshd) = sshd() else { return };
    let mut sb = Sandbox::new("ssh-fail");
    ssh_route(&sb, sshd, &[&sshd.hosts[0]], "60s", "max_attempts = 2");
    sb.write_board(&board(&[("F-1", "fail")]));
    sb.start_run();
    sb.wait_until("dead-lettered", |s| s.count("task_deadlettered") == 1);
    assert_eq!(sb.status_of("F-1"), "failed:exhausted_retries");
    assert_eq!(starts(&sb, "F-1"), 2);
    let stderr = std::fs::read_to_string(sb.run_dir("F-1", 2).join("stderr.log")).unwrap();
    assert!(stderr.contains("it broke"), "{stderr}");
    assert!(sb.path("deadletter/F-1.json").exists());
}

#[test]
fn an_ssh_timeout_stops_the_whole_remote_tree() {
    let Some(sshd) = sshd() else { return };
    let mut sb = Sandbox::new("ssh-timeout");
    ssh_route(&sb, sshd, &[&sshd.hosts[0]], "2s", "max_attempts = 1");
    sb.write_board(&board(&[("T-1", "hang")]));
    sb.start_run();
    sb.wait_until("timed out", |s| s.status_of("T-1").starts_with("failed"));
    let ev = &sb.events_named("task_finished")[0];
    assert_eq!(ev["stopped"], "timeout", "{ev}");
    tree_gone(&sb, "T-1", 1);
    assert_eq!(starts(&sb, "T-1"), 1);
}

#[test]
fn a_persons_cancel_stops_the_remote_run() {
    let Some(sshd) = sshd() else { return };
    let mut sb = Sandbox::new("ssh-cancel");
    ssh_route(&sb, sshd, &[&sshd.hosts[0]], "120s", "");
    sb.write_board(&board(&[("C-1", "hang")]));
    sb.start_run();
    sb.wait_until("dispatched", |s| s.count("task_dispatched") == 1);
    let text = sb.board_text();
    let running = sb.status_of("C-1");
    sb.write_board(&text.replace(
        &format!("- status: {running}"),
        "- status: blocked:me:not now",
    ));
    sb.wait_until("cancelled", |s| s.count("task_cancelled") == 1);
    tree_gone(&sb, "C-1", 1);
    assert_eq!(sb.status_of("C-1"), "blocked:me:not now");
    assert_eq!(starts(&sb, "C-1"), 1);
}

#[test]
fn sigterm_of_the_runtime_stops_its_remote_runs() {
    let Some(sshd) = sshd() else { return };
    let mut sb = Sandbox::new("ssh-sigterm");
    ssh_route(&sb, sshd, &[&sshd.hosts[0]], "120s", "");
    sb.write_board(&board(&[("G-1", "hang")]));
    let pid = sb.start_run();
    sb.wait_until("dispatched", |s| s.count("task_dispatched") == 1);
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
    tree_gone(&sb, "G-1", 1);
}

#[test]
fn kill9_of_the_runtime_mid_run_then_a_restart_follows_the_run_to_its_end_once() {
    let Some(sshd) = sshd() else { return };
    let mut sb = Sandbox::new("ssh-adopt");
    ssh_route(&sb, sshd, &[&sshd.hosts[0]], "120s", "");
    sb.write_board(&board(&[("K-1", "slow")]));
    let pid = sb.start_run();
    sb.wait_until("dispatched", |s| s.count("task_dispatched") == 1);
    sb.kill9(pid);
    // The run goes on over there without its runtime.
    let child = sb.path("K-1-1.child");
    assert!(poll(DEADLINE, || child.exists()));
    assert!(pid_alive(read_pid(&child).unwrap()));
    sb.start_run();
    sb.wait_until("done", |s| s.status_of("K-1") == "done");
    assert_eq!(starts(&sb, "K-1"), 1, "the task ran twice");
    assert_eq!(sb.count_for("run_adopted", "K-1"), 1);
    assert_eq!(sb.count_for("task_dispatched", "K-1"), 1);
    tree_gone(&sb, "K-1", 1);
}

#[test]
fn an_unreachable_host_fails_the_attempt_is_marked_down_and_the_next_host_serves() {
    let Some(sshd) = sshd() else { return };
    let mut sb = Sandbox::new("ssh-unreachable");
    ssh_route(
        &sb,
        sshd,
        &[&sshd.unreachable, &sshd.hosts[0]],
        "60s",
        "max_attempts = 3",
    );
    sb.write_board(&board(&[("U-1", "ok")]));
    sb.start_run();
    sb.wait_until("done", |s| s.status_of("U-1") == "done");
    assert_eq!(finished_reasons(&sb, "U-1")[0], "host_unreachable");
    let down = sb.events_named("host_down");
    assert_eq!(down.len(), 1);
    assert_eq!(down[0]["host"], sshd.unreachable.as_str());
    assert_eq!(starts(&sb, "U-1"), 1);
}

/// The jobs Slurm still has queued or running (finished ones stay listed for a while).
fn live_jobs(slurm: &Slurm) -> Vec<String> {
    slurm
        .jobs()
        .into_iter()
        .filter(|id| {
            slurm.job_state(id).is_some_and(|s| {
                matches!(
                    s.as_str(),
                    "PENDING" | "CONFIGURING" | "RUNNING" | "COMPLETING" | "SUSPENDED"
                )
            })
        })
        .collect()
}

fn slurm() -> Option<engines::SlurmGuard> {
    match engines::slurm() {
        Ok(s) => Some(s),
        Err(why) => {
            skip_engine("a Slurm cluster", &why);
            None
        }
    }
}

#[test]
fn a_slurm_task_runs_once_on_the_node_and_comes_back_whole() {
    let Some(slurm) = slurm() else { return };
    let mut sb = Sandbox::new("slurm-done");
    slurm_route(&mut sb, &slurm, "60s", "");
    sb.write_board(&board(&[("L-1", "ok")]));
    sb.start_run();
    sb.wait_until("done", |s| s.status_of("L-1") == "done");
    assert_eq!(starts(&sb, "L-1"), 1);
    let dispatched = &sb.events_named("task_dispatched")[0];
    let job = dispatched["remote"]["job_id"].as_str().unwrap().to_string();
    assert!(!job.is_empty());
    let running = sb.events_named("remote_running");
    assert_eq!(running.len(), 1);
    assert_eq!(running[0]["remote"]["node"], slurm.node.as_str());
    let dir = sb.run_dir("L-1", 1);
    let out = std::fs::read_to_string(dir.join("stdout.log")).unwrap();
    assert!(out.contains("working on L-1"), "{out}");
    assert!(
        std::fs::read_to_string(dir.join("result.json"))
            .unwrap()
            .contains("ran remotely")
    );
    tree_gone(&sb, "L-1", 1);
    // The run's far folder, and its task's, are gone once the files are here.
    let far = Path::new(dispatched["remote"]["dir"].as_str().unwrap()).to_path_buf();
    assert!(far.starts_with(&slurm.shared_dir), "{far:?}");
    sb.wait_until("far folder removed", |_| !far.parent().unwrap().exists());
}

#[test]
fn a_failing_slurm_task_is_retried_then_dead_lettered() {
    let Some(slurm) = slurm() else { return };
    let mut sb = Sandbox::new("slurm-fail");
    slurm_route(&mut sb, &slurm, "60s", "max_attempts = 2");
    sb.write_board(&board(&[("M-1", "fail")]));
    sb.start_run();
    sb.wait_until("dead-lettered", |s| s.count("task_deadlettered") == 1);
    assert_eq!(starts(&sb, "M-1"), 2);
    assert_eq!(finished_reasons(&sb, "M-1"), ["exit_3", "exit_3"]);
}

#[test]
fn a_slurm_timeout_and_a_cancel_stop_the_whole_job() {
    let Some(slurm) = slurm() else { return };
    let mut sb = Sandbox::new("slurm-stop");
    // The cancel goes through a route whose timeout cannot come first: Slurm may keep a job
    // pending for seconds after the last one was killed, and that wait is the run's time too.
    slurm_routes(
        &mut sb,
        &slurm,
        &[("default", "3s"), ("patient", "120s")],
        "max_attempts = 1",
    );
    sb.write_board(&board(&[("N-1", "hang")]));
    sb.start_run();
    sb.wait_until("timed out", |s| s.status_of("N-1").starts_with("failed"));
    assert_eq!(sb.events_named("task_finished")[0]["stopped"], "timeout");
    tree_gone(&sb, "N-1", 1);
    assert!(
        poll(DEADLINE, || live_jobs(&slurm).is_empty()),
        "{:?}",
        live_jobs(&slurm)
    );

    // A person's cancel of a second task.
    let text = sb.board_text();
    sb.write_board(&format!(
        "{text}\n## N-2 Another\n- status: ready\n- route: patient\n- mode: hang\n"
    ));
    sb.wait_until("running", |s| s.count_for("remote_running", "N-2") == 1);
    let text = sb.board_text();
    let running = sb.status_of("N-2");
    sb.write_board(&text.replace(&format!("- status: {running}"), "- status: done"));
    sb.wait_until("cancelled", |s| s.count_for("task_cancelled", "N-2") == 1);
    tree_gone(&sb, "N-2", 1);
    assert!(
        poll(DEADLINE, || live_jobs(&slurm).is_empty()),
        "{:?}",
        live_jobs(&slurm)
    );
}

#[test]
fn kill9_during_a_slurm_job_then_a_restart_takes_its_result_without_a_second_job() {
    let Some(slurm) = slurm() else { return };
    let mut sb = Sandbox::new("slurm-adopt");
    slurm_route(&mut sb, &slurm, "120s", "");
    sb.write_board(&board(&[("P-1", "slow")]));
    let pid = sb.start_run();
    sb.wait_until("running", |s| s.count_for("remote_running", "P-1") == 1);
    sb.kill9(pid);
    let jobs = live_jobs(&slurm);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    sb.start_run();
    sb.wait_until("done", |s| s.status_of("P-1") == "done");
    assert_eq!(starts(&sb, "P-1"), 1, "the task ran twice");
    assert_eq!(sb.count_for("run_adopted", "P-1"), 1);
    assert!(
        poll(DEADLINE, || live_jobs(&slurm).is_empty()),
        "{:?}",
        live_jobs(&slurm)
    );
}

#[test]
fn sigterm_of_the_runtime_cancels_its_slurm_job() {
    let Some(slurm) = slurm() else { return };
    let mut sb = Sandbox::new("slurm-sigterm");
    slurm_route(&mut sb, &slurm, "120s", "");
    sb.write_board(&board(&[("Q-1", "hang")]));
    let pid = sb.start_run();
    sb.wait_until("running", |s| s.count_for("remote_running", "Q-1") == 1);
    assert_eq!(sb.stop(pid, libc::SIGTERM), Some(0));
    tree_gone(&sb, "Q-1", 1);
    assert!(
        poll(DEADLINE, || live_jobs(&slurm).is_empty()),
        "{:?}",
        live_jobs(&slurm)
    );
}

#[test]
fn a_node_that_loses_the_job_fails_the_attempt_and_the_retry_runs() {
    let Some(slurm) = slurm() else { return };
    let mut sb = Sandbox::new("slurm-node-fail");
    slurm_route(&mut sb, &slurm, "120s", "max_attempts = 2");
    sb.write_board(&board(&[("Z-1", "hang")]));
    sb.start_run();
    sb.wait_until("running", |s| s.count_for("remote_running", "Z-1") == 1);
    // Once the node is back, the retry must be able to finish: no longer a hang.
    let text = sb.board_text();
    sb.write_board(&text.replace("- mode: hang", "- mode: ok"));
    slurm.fail_node_and_recover();
    sb.wait_until("done after a retry", |s| s.status_of("Z-1") == "done");
    let reasons = finished_reasons(&sb, "Z-1");
    eprintln!(
        "{}",
        std::fs::read_to_string(sb.path("events.jsonl")).unwrap()
    );
    assert_eq!(reasons[0], "slurm_node_fail", "{reasons:?}");
    assert_eq!(starts(&sb, "Z-1"), 2);
    tree_gone(&sb, "Z-1", 1);
}

#[test]
fn doctor_reaches_each_ssh_host_through_the_runtimes_own_command_line() {
    let Some(sshd) = sshd() else { return };
    let sb = Sandbox::new("ssh-doctor");
    ssh_route(&sb, sshd, &[&sshd.hosts[0], &sshd.hosts[1]], "60s", "");
    sb.write_board(&board(&[("D-1", "ok")]));
    let out = sb.command(&["doctor"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for host in &sshd.hosts {
        let line = format!("ok    ssh default: host {host} reachable, ");
        assert!(text.contains(&line), "{text}");
    }
    // It made the remote folder it checked.
    assert!(sb.path("far").is_dir(), "{text}");
}
