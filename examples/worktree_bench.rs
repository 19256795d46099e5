//! Times the git layer for isolated runs on a repository given on the command line (made by
//! `bench/worktree.sh`): creating a worktree, a snapshot with nothing changed and one after an
//! agent's edits, writing the patch, a conflict preview, landing (on a branch checked out nowhere
//! and on the checked-out `main`), and removing the worktree.
//! Prints one line per step: median, fastest and slowest of the rounds, in milliseconds.
//!
//! Usage: `worktree_bench <repo> <folder for worktrees> [rounds]`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use taskboard::core::workspace::attempt_names;
use taskboard::shell::workspace::{
    LandRequest, Strategy, conflicts, create_worktree, land, remove_worktree, resolve_branch,
    snapshot, write_patch,
};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What an agent leaves: 10 files edited, 5 added, 2 deleted, one commit of part of it.
fn agent_edits(wt: &Path) {
    for i in 0..10 {
        let p = wt.join(format!("src/d{i:03}/f{i:03}.txt"));
        let mut text = std::fs::read_to_string(&p).expect("a file of the generated tree");
        text.push_str("an agent's line\n");
        std::fs::write(&p, text).unwrap();
    }
    git(wt, &["commit", "-qam", "agent"]);
    for i in 0..5 {
        std::fs::write(wt.join(format!("new-{i}.txt")), "new\n").unwrap();
    }
    std::fs::remove_file(wt.join("src/d050/f050.txt")).unwrap();
    std::fs::remove_file(wt.join("src/d051/f051.txt")).unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let repo = PathBuf::from(&args[1]);
    let trees = PathBuf::from(&args[2]);
    let rounds: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let base = resolve_branch(&repo, "main").expect("a main branch");
    git(&repo, &["branch", "-f", "bench-target", &base]);
    let mut times: Vec<(&str, Vec<Duration>)> = Vec::new();
    let mut record = |name: &'static str, d: Duration| match times.iter_mut().find(|t| t.0 == name)
    {
        Some(t) => t.1.push(d),
        None => times.push((name, vec![d])),
    };
    for round in 0..rounds {
        let names = attempt_names("BENCH-1", round as u32 + 1);
        let wt = trees.join(&names.folder);
        let t = Instant::now();
        create_worktree(&repo, &wt, &names.branch, &base).expect("create");
        record("create_worktree", t.elapsed());
        let t = Instant::now();
        snapshot(&wt, &base, &names.snapshot_ref).expect("snapshot");
        record("snapshot, nothing changed", t.elapsed());
        agent_edits(&wt);
        let t = Instant::now();
        let snap = snapshot(&wt, &base, &names.snapshot_ref).expect("snapshot");
        record("snapshot, 17 files changed", t.elapsed());
        assert_eq!(snap.files.len(), 17, "{:?}", snap.files);
        let t = Instant::now();
        write_patch(&repo, &base, &snap.commit, &trees.join("run.patch")).expect("patch");
        record("write_patch", t.elapsed());
        let t = Instant::now();
        conflicts(&repo, &base, &snap.commit, &base).expect("conflicts");
        record("conflicts (merge-tree)", t.elapsed());
        git(&repo, &["update-ref", "refs/heads/bench-target", &base]);
        let req = LandRequest {
            branch: "bench-target",
            expected_tip: &base,
            snapshot: &snap.commit,
            strategy: Strategy::Squash,
            message: "bench",
            onto_latest: false,
        };
        let t = Instant::now();
        land(&repo, &req).expect("land");
        record("land (squash, no checkout)", t.elapsed());
        // Onto `main`, checked out in the repository: its 10,000-file checkout follows.
        let req = LandRequest {
            branch: "main",
            ..req
        };
        let t = Instant::now();
        land(&repo, &req).expect("land on the checkout");
        record("land (squash, checked out)", t.elapsed());
        git(&repo, &["reset", "-q", "--hard", &base]);
        let t = Instant::now();
        remove_worktree(&repo, &wt, &names.branch, &names.snapshot_ref).expect("remove");
        record("remove_worktree", t.elapsed());
    }
    git(&repo, &["branch", "-D", "bench-target"]);
    for (name, mut d) in times {
        d.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{name:<28} median {:>8.1} ms  fastest {:>8.1}  slowest {:>8.1}  ({} rounds)",
            ms(d[d.len() / 2]),
            ms(d[0]),
            ms(d[d.len() - 1]),
            d.len()
        );
    }
}
