//! Where remote runs ran, as people read it: `show`, `status`, `tail` and `stats` fed an event
//! log with Slurm and SSH dispatches, a node starting, an adoption and a host down; and the
//! same commands on a local-only log saying nothing new.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use taskboard::cmd::tail::render_line;
use taskboard::core::event::{Event, EventKind};
use taskboard::core::remote::{Placement, RunnerKind};

use crate::support::TempDir as Dir;

fn slurm(node: Option<&str>) -> Placement {
    Placement {
        runner: RunnerKind::Slurm,
        host: None,
        job_id: Some("17".into()),
        node: node.map(str::to_string),
        pgid: None,
        dir: "shared/G-1-1".into(),
    }
}

fn ssh() -> Placement {
    Placement {
        runner: RunnerKind::Ssh,
        host: Some("gpu1".into()),
        job_id: None,
        node: None,
        pgid: Some(4242),
        dir: ".taskboard-runs/G-1-2".into(),
    }
}

fn dispatched(attempt: u32, route: &str, remote: Option<Placement>) -> EventKind {
    EventKind::TaskDispatched {
        attempt,
        route: route.into(),
        pid: if remote.is_some() { None } else { Some(99) },
        agent: "taskboard".into(),
        phase: None,
        remote,
    }
}

fn finished(attempt: u32, exit_code: Option<i32>, outcome: &str) -> EventKind {
    EventKind::TaskFinished {
        attempt,
        exit_code,
        signal: None,
        duration_ms: 1500,
        outcome: outcome.into(),
        note: None,
        stopped: None,
        phase: None,
        cost_usd: None,
        tokens_in: None,
        tokens_out: None,
        handoff: None,
        changed: None,
    }
}

fn host_down() -> EventKind {
    EventKind::HostDown {
        route: "gpu".into(),
        host: "gpu2".into(),
        until: "2026-11-30T12:01:00Z".parse().unwrap(),
        reason: "host_unreachable".into(),
    }
}

/// The claim time of the running tasks, a minute-precision status time an hour ago.
fn claim(now: DateTime<Utc>) -> (DateTime<Utc>, String) {
    let at = now - Duration::hours(1);
    (at, at.format("%Y-%m-%dT%H:%MZ").to_string())
}

/// G-1: attempt 1 a Slurm job that started on node1 and was lost with it, attempt 2 on SSH
/// host gpu1, taken over after a restart and still running; gpu2 was down. L-1: a local run,
/// done; L-2: a local run under way.
fn remote_board(dir: &Dir) {
    let now = Utc::now();
    let (at, since) = claim(now);
    let ts = |m: i64| at + Duration::minutes(m) + Duration::seconds(1);
    let events: Vec<Event> = vec![
        Event::new(ts(1), Some("L-1"), dispatched(1, "default", None)),
        Event::new(ts(2), Some("L-1"), finished(1, Some(0), "done")),
        Event::new(ts(3), Some("G-1"), dispatched(1, "gpu", Some(slurm(None)))),
        Event::new(
            ts(4),
            Some("G-1"),
            EventKind::RemoteRunning {
                attempt: 1,
                remote: slurm(Some("node1")),
            },
        ),
        Event::new(
            ts(5),
            Some("G-1"),
            finished(1, None, "blocked:retry:2026-11-30T12:00:00Z"),
        ),
        Event::new(ts(6), None, host_down()),
        Event::new(ts(7), Some("G-1"), dispatched(2, "gpu", Some(ssh()))),
        Event::new(
            ts(8),
            Some("G-1"),
            EventKind::RunAdopted {
                attempt: 2,
                remote: ssh(),
                finished: false,
            },
        ),
        Event::new(ts(9), Some("L-2"), dispatched(1, "default", None)),
    ];
    let text: String = events.iter().map(|e| e.to_line() + "\n").collect();
    std::fs::write(dir.join("events.jsonl"), text).unwrap();
    std::fs::write(
        dir.join("task-board.md"),
        format!(
            "# Board\n\n## G-1: train\n- status: running:taskboard:{since}\n- route: gpu\n\n## L-1: local\n- status: done\n\n## L-2: here\n- status: running:taskboard:{since}\n"
        ),
    )
    .unwrap();
}

fn taskboard(dir: &Dir, args: &[&str]) -> String {
    let out = crate::support::finish(
        crate::support::bin()
            .args(args)
            .current_dir(dir.path())
            .env("NO_COLOR", "1"),
    );
    assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
    out.stdout
}

#[test]
fn show_says_where_each_attempt_ran_and_where_the_run_is() {
    let dir = Dir::new("remote-show");
    remote_board(&dir);
    let out = taskboard(&dir, &["show", "G-1"]);
    assert!(
        out.contains("attempt 2 on `gpu` · ssh gpu1 (pgid 4242)"),
        "{out}"
    );
    assert!(out.contains(" no exit "), "a lost run had no exit: {out}");
    assert!(
        out.contains("     ran on: slurm job 17 on node1\n"),
        "{out}"
    );
    assert!(out.contains("running  on ssh gpu1 (pgid 4242)"), "{out}");
    assert!(
        out.contains("(slurm job 17)"),
        "the dispatch's history line: {out}"
    );
    assert!(
        out.contains("remote_running         attempt 1 started: slurm job 17 on node1"),
        "{out}"
    );
    assert!(
        out.contains("run_adopted            attempt 2 taken over after a restart: ssh gpu1 (pgid 4242) (still running)"),
        "{out}"
    );

    let v: Value = serde_json::from_str(&taskboard(&dir, &["show", "G-1", "--json"])).unwrap();
    assert_eq!(
        v["attempts"][0]["remote"],
        json!({"runner": "slurm", "job_id": "17", "node": "node1", "dir": "shared/G-1-1"})
    );
    assert_eq!(v["running"]["remote"]["host"], "gpu1");
    assert_eq!(v["running"]["remote"]["pgid"], 4242);

    // A local task's JSON has no `remote` anywhere.
    for id in ["L-1", "L-2"] {
        let out = taskboard(&dir, &["show", id, "--json"]);
        assert!(!out.contains("\"remote\""), "{out}");
        let text = taskboard(&dir, &["show", id]);
        assert!(
            !text.contains("ran on") && !text.contains("slurm"),
            "{text}"
        );
    }
}

#[test]
fn status_says_where_a_running_task_runs() {
    let dir = Dir::new("remote-status");
    remote_board(&dir);
    let out = taskboard(&dir, &["status"]);
    let g = out.lines().find(|l| l.contains("G-1")).unwrap();
    assert!(g.contains(" on ssh gpu1 (pgid 4242)"), "{out}");
    let l = out.lines().find(|l| l.contains("L-2")).unwrap();
    assert!(!l.contains(" on "), "{out}");

    let v: Value = serde_json::from_str(&taskboard(&dir, &["status", "--json"])).unwrap();
    let tasks = v["tasks"].as_array().unwrap();
    assert_eq!(tasks[0]["remote"]["runner"], "ssh");
    assert_eq!(tasks[0]["remote"]["host"], "gpu1");
    assert!(tasks[2].get("remote").is_none(), "{v}");
}

#[test]
fn a_slurm_run_shows_its_node_once_it_started() {
    let dir = Dir::new("remote-status-slurm");
    let now = Utc::now();
    let (at, since) = claim(now);
    let lines = [
        Event::new(
            at + Duration::minutes(1),
            Some("G-1"),
            dispatched(1, "gpu", Some(slurm(None))),
        ),
        Event::new(
            at + Duration::minutes(2),
            Some("G-1"),
            EventKind::RemoteRunning {
                attempt: 1,
                remote: slurm(Some("node7")),
            },
        ),
    ];
    let board = format!("# Board\n\n## G-1: train\n- status: running:taskboard:{since}\n");
    std::fs::write(dir.join("task-board.md"), board).unwrap();
    std::fs::write(dir.join("events.jsonl"), lines[0].to_line() + "\n").unwrap();
    let out = taskboard(&dir, &["status"]);
    assert!(
        out.contains(" on slurm job 17\n") || out.contains(" on slurm job 17 "),
        "{out}"
    );
    assert!(!out.contains("node7"), "{out}");
    let both: String = lines.iter().map(|e| e.to_line() + "\n").collect();
    std::fs::write(dir.join("events.jsonl"), both).unwrap();
    let out = taskboard(&dir, &["status"]);
    assert!(out.contains(" on slurm job 17 on node7"), "{out}");
}

#[test]
fn tail_renders_remote_events_as_key_values() {
    let ts: DateTime<Utc> = "2026-11-30T12:00:00.123Z".parse().unwrap();
    let line = |task: Option<&str>, kind: EventKind| {
        render_line(&Event::new(ts, task, kind).to_line()).unwrap()
    };
    assert_eq!(
        line(Some("G-1"), dispatched(1, "gpu", Some(slurm(None)))),
        "12:00:00.123 task_dispatched      G-1 attempt=1 route=gpu agent=taskboard on=slurm:17"
    );
    assert_eq!(
        line(Some("G-1"), dispatched(2, "gpu", Some(ssh()))),
        "12:00:00.123 task_dispatched      G-1 attempt=2 route=gpu agent=taskboard on=ssh:gpu1 pgid=4242"
    );
    assert_eq!(
        line(
            Some("G-1"),
            EventKind::RemoteRunning {
                attempt: 1,
                remote: slurm(Some("node1"))
            }
        ),
        "12:00:00.123 remote_running       G-1 attempt=1 on=slurm:17 node=node1"
    );
    assert_eq!(
        line(
            Some("G-1"),
            EventKind::RunAdopted {
                attempt: 2,
                remote: ssh(),
                finished: true
            }
        ),
        "12:00:00.123 run_adopted          G-1 attempt=2 on=ssh:gpu1 pgid=4242 -> already finished"
    );
    assert_eq!(
        line(None, host_down()),
        "12:00:00.123 host_down            route=gpu host=gpu2 -> down until 2026-11-30T12:01:00Z reason=host_unreachable"
    );
    // A local dispatch reads as it always did.
    assert_eq!(
        line(Some("L-1"), dispatched(1, "default", None)),
        "12:00:00.123 task_dispatched      L-1 attempt=1 route=default agent=taskboard pid=99"
    );
}

#[test]
fn stats_counts_runs_by_where_they_ran() {
    let dir = Dir::new("remote-stats");
    remote_board(&dir);
    let board = dir.join("task-board.md").display().to_string();
    let out = taskboard(&dir, &["stats", &board]);
    let runners = out
        .lines()
        .find(|l| l.starts_with("Runners "))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(
        runners,
        "Runners      2 here   ssh gpu1 1   ssh gpu2 0 (down 1)   slurm 1 (node1 1)   1 adopted after a restart   host down 1×"
    );
    let v: Value = serde_json::from_str(&taskboard(&dir, &["stats", &board, "--json"])).unwrap();
    assert_eq!(
        v["runners"],
        json!({
            "local": 2,
            "ssh": [{"host": "gpu1", "runs": 1, "down": 0}, {"host": "gpu2", "runs": 0, "down": 1}],
            "slurm": {"runs": 1, "nodes": [{"node": "node1", "runs": 1}]},
            "adopted": 1,
            "host_down": 1
        })
    );
    let html = dir.join("stats.html").display().to_string();
    taskboard(&dir, &["stats", &board, "--html", &html]);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("id=\"runners\"") && page.contains("node1"),
        "{page}"
    );
}

#[test]
fn a_local_only_log_has_no_runners_line_key_or_table() {
    let dir = Dir::new("local-stats");
    let at = Utc::now() - Duration::hours(1);
    let text = [
        Event::new(at, Some("L-1"), dispatched(1, "default", None)),
        Event::new(
            at + Duration::seconds(2),
            Some("L-1"),
            finished(1, Some(0), "done"),
        ),
    ]
    .iter()
    .map(|e| e.to_line() + "\n")
    .collect::<String>();
    std::fs::write(dir.join("events.jsonl"), text).unwrap();
    std::fs::write(
        dir.join("task-board.md"),
        "# Board\n\n## L-1: x\n- status: done\n",
    )
    .unwrap();
    let board = dir.join("task-board.md").display().to_string();
    let out = taskboard(&dir, &["stats", &board]);
    assert!(!out.contains("Runners"), "{out}");
    let json = taskboard(&dir, &["stats", &board, "--json"]);
    assert!(!json.contains("runners"), "{json}");
    let html = dir.join("stats.html").display().to_string();
    taskboard(&dir, &["stats", &board, "--html", &html]);
    assert!(
        !std::fs::read_to_string(&html)
            .unwrap()
            .contains("id=\"runners\"")
    );
}
