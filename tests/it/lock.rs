use crate::support;

use std::fs;
use std::io::ErrorKind;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, SystemTime};

use chrono::Utc;
use taskboard::shell::lock::{
    Liveness, LockState, Locks, Owner, RunLock, WriteLock, instance_id, is_stale, liveness,
    process_start_time,
};
use taskboard::shell::process::group_alive;

use support::TempDir;

/// The lock folders of a board in `dir`.
fn locks(dir: &TempDir) -> Locks {
    Locks::new(dir.join(".taskboard").join("locks"))
}

fn owner(instance: &str) -> Owner {
    Owner::current(instance, Utc::now())
}

/// An owner whose process has exited and been reaped.
fn dead_owner() -> Owner {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    // Until it is reaped the child stays in /proc (as a zombie), so its start time is readable.
    let start = process_start_time(pid);
    child.wait().unwrap();
    Owner {
        pid,
        start_time: start,
        ..owner("dead-instance")
    }
}

fn set_mtime(path: &std::path::Path, ago: Duration) {
    let dir = fs::File::open(path).unwrap();
    dir.set_modified(SystemTime::now() - ago).unwrap();
}

#[test]
fn second_acquire_is_refused_and_release_needs_the_owner() {
    let tmp = TempDir::new("acquire");
    let locks = locks(&tmp);
    assert!(locks.read("t1").is_none());
    assert!(
        locks.list().unwrap().is_empty(),
        "missing root means no locks"
    );

    let me = owner(&instance_id());
    let got = locks
        .try_acquire("t1", &me)
        .unwrap()
        .expect("first acquire wins");
    assert_eq!(got.id, "t1");
    assert_eq!(got.owner, me);
    assert!(got.path.join("owner.json").is_file());
    assert!(locks.try_acquire("t1", &owner("other")).unwrap().is_none());
    assert!(
        locks.try_acquire("t1", &me).unwrap().is_none(),
        "not re-entrant"
    );

    assert!(
        !locks.release("t1", "other").unwrap(),
        "another instance may not release"
    );
    assert_eq!(locks.read("t1"), Some(LockState::Held(me.clone())));
    assert!(locks.release("t1", &me.instance).unwrap());
    assert!(locks.read("t1").is_none());
    assert!(!locks.release("t1", &me.instance).unwrap(), "already free");

    assert!(locks.try_acquire("t1", &owner("next")).unwrap().is_some());
    let listed: Vec<String> = locks
        .list()
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(listed, ["t1"], "gate file and debris are not locks");
}

#[test]
fn invalid_ids_are_rejected() {
    let tmp = TempDir::new("ids");
    let locks = locks(&tmp);
    for id in ["", "../escape", "a/b", ".gate", ".broken-x"] {
        let err = locks.try_acquire(id, &owner("x")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{id:?}");
        assert!(locks.read(id).is_none());
    }
}

#[test]
fn owner_record_round_trips_and_pgid_is_set_only_by_the_owner() {
    let full = Owner {
        executor_pgid: Some(4321),
        ..owner("abc")
    };
    let json = serde_json::to_string(&full).unwrap();
    assert_eq!(serde_json::from_str::<Owner>(&json).unwrap(), full);

    let tmp = TempDir::new("owner");
    let locks = locks(&tmp);
    let me = owner("mine");
    locks.try_acquire("t", &me).unwrap().unwrap();
    let on_disk: Owner =
        serde_json::from_slice(&fs::read(locks.root().join("t/owner.json")).unwrap()).unwrap();
    assert_eq!(on_disk, me);

    let err = locks.set_executor_pgid("t", "intruder", 7).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    let err = locks.set_executor_pgid("free", "mine", 7).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);

    locks.set_executor_pgid("t", "mine", 777).unwrap();
    let expected = Owner {
        executor_pgid: Some(777),
        ..me
    };
    assert_eq!(locks.read("t"), Some(LockState::Held(expected)));
    // No temp files left behind in the lock folder.
    let names: Vec<_> = fs::read_dir(locks.root().join("t"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["owner.json"]);
}

#[test]
fn current_process_is_alive() {
    let me = owner("me");
    assert_eq!(me.pid, std::process::id());
    assert!(!me.host.is_empty());
    if cfg!(target_os = "linux") {
        assert!(me.start_time.is_some());
        assert!(me.boot_id.is_some());
    }
    assert_eq!(liveness(&me), Liveness::Alive);
    assert_eq!(is_stale(&LockState::Held(me), Duration::ZERO), None);
}

#[test]
fn reaped_child_is_dead() {
    let dead = dead_owner();
    match liveness(&dead) {
        Liveness::Dead(why) => assert!(
            why.contains("not running") || why.contains("reused"),
            "{why}"
        ),
        other => panic!("expected dead, got {other:?}"),
    }
    assert!(is_stale(&LockState::Held(dead), Duration::from_secs(3600)).is_some());
}

#[test]
fn same_pid_with_another_start_time_is_a_reused_pid() {
    let me = owner("me");
    let Some(start) = me.start_time else {
        support::skip("this platform gives no process start times");
        return;
    };
    let ghost = Owner {
        start_time: Some(start + 1),
        ..me
    };
    assert_eq!(
        liveness(&ghost),
        Liveness::Dead("pid reused (start time differs)".into())
    );
}

#[test]
fn another_boot_is_dead_and_another_host_is_not_judged() {
    let me = owner("me");
    if me.boot_id.is_some() {
        let before_reboot = Owner {
            boot_id: Some("00000000-0000-0000-0000-000000000000".into()),
            ..me.clone()
        };
        assert_eq!(
            liveness(&before_reboot),
            Liveness::Dead("host rebooted".into())
        );
    }
    let elsewhere = Owner {
        host: "elsewhere.invalid".into(),
        pid: 1,
        ..me
    };
    assert_eq!(liveness(&elsewhere), Liveness::OtherHost);
    assert_eq!(is_stale(&LockState::Held(elsewhere), Duration::ZERO), None);
}

#[test]
fn process_groups() {
    use std::os::unix::process::CommandExt;
    // A live group exists. (Not this test's own group: in a container whose session began
    // outside its PID namespace, that group's id reads as 0 here.)
    let mut live = Command::new("sleep")
        .arg("30")
        .process_group(0)
        .spawn()
        .unwrap();
    assert!(group_alive(live.id()));
    live.kill().unwrap();
    live.wait().unwrap();
    assert!(!group_alive(live.id()));
    assert!(!group_alive(0));
    // Out of the kernel's range of process ids (what a negative id becomes as a `u32`).
    assert!(!group_alive(-5i32 as u32));
    // A reaped child leader's group is gone (it has no other members).
    let mut child = Command::new("true").process_group(0).spawn().unwrap();
    let pgid = child.id();
    child.wait().unwrap();
    assert!(!group_alive(pgid));
}

#[test]
fn instance_ids_are_distinct() {
    let ids: std::collections::HashSet<String> = (0..100).map(|_| instance_id()).collect();
    assert_eq!(ids.len(), 100);
    assert!(
        ids.iter()
            .all(|id| id.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
    );
}

#[test]
fn unreadable_lock_is_stale_only_after_grace() {
    let tmp = TempDir::new("unreadable");
    let locks = locks(&tmp);
    let dir = locks.root().join("t");
    fs::create_dir_all(&dir).unwrap();
    let grace = Duration::from_secs(3600);
    let state = locks.read("t").unwrap();
    let LockState::Unreadable { age } = state else {
        panic!("bare folder must be unreadable, got {state:?}")
    };
    assert!(age < grace);
    assert_eq!(is_stale(&state, grace), None);
    // A corrupt record is just as unreadable.
    fs::write(dir.join("owner.json"), b"{\"pid\":").unwrap();
    assert!(matches!(
        locks.read("t"),
        Some(LockState::Unreadable { .. })
    ));

    set_mtime(&dir, Duration::from_secs(2 * 3600));
    let state = locks.read("t").unwrap();
    let LockState::Unreadable { age } = state else {
        panic!("{state:?}")
    };
    assert!(age > grace, "{age:?}");
    assert_eq!(
        is_stale(&state, grace).as_deref(),
        Some("owner record missing")
    );
    assert!(locks.break_stale("t", &state).unwrap());
    assert!(locks.read("t").is_none());
}

#[test]
fn breaking_a_dead_owners_lock_frees_it() {
    let tmp = TempDir::new("break");
    let locks = locks(&tmp);
    let dead = dead_owner();
    locks.try_acquire("t", &dead).unwrap().unwrap();
    let seen = locks.read("t").unwrap();
    assert!(is_stale(&seen, Duration::ZERO).is_some());

    // A view that is not the lock on disk breaks nothing.
    let other_view = LockState::Held(Owner {
        instance: "someone-else".into(),
        ..dead.clone()
    });
    assert!(!locks.break_stale("t", &other_view).unwrap());
    assert!(
        !locks
            .break_stale("t", &LockState::Unreadable { age: Duration::MAX })
            .unwrap()
    );
    assert_eq!(locks.read("t"), Some(seen.clone()));

    assert!(locks.break_stale("t", &seen).unwrap());
    assert!(locks.read("t").is_none());
    assert!(!locks.break_stale("t", &seen).unwrap(), "already broken");
    let me = owner("me");
    assert!(locks.try_acquire("t", &me).unwrap().is_some());
    assert!(
        !locks.break_stale("t", &seen).unwrap(),
        "a fresh lock is not the stale one"
    );
    assert_eq!(locks.read("t"), Some(LockState::Held(me)));
    let debris: Vec<_> = fs::read_dir(locks.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".broken") || n.starts_with(".released"))
        .collect();
    assert!(debris.is_empty(), "{debris:?}");
}

/// A released lock leaves nothing behind, also when its folder holds more than its record (the
/// temporary file of an update cut short by a crash).
#[test]
fn a_release_removes_the_lock_folder_whatever_it_holds() {
    let tmp = TempDir::new("release-whole");
    let locks = locks(&tmp);
    let me = owner("me");
    let left = |locks: &Locks| -> Vec<String> {
        fs::read_dir(locks.root())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != ".gate")
            .collect()
    };
    assert!(locks.try_acquire("t", &me).unwrap().is_some());
    assert!(locks.release("t", &me.instance).unwrap());
    assert!(left(&locks).is_empty(), "{:?}", left(&locks));
    assert!(locks.try_acquire("t", &me).unwrap().is_some());
    fs::write(locks.root().join("t").join(".owner.json.00ff.tmp"), "{").unwrap();
    assert!(locks.release("t", &me.instance).unwrap());
    assert!(locks.read("t").is_none());
    assert!(left(&locks).is_empty(), "{:?}", left(&locks));
}

const THREADS: usize = 8;

#[test]
fn concurrent_acquire_has_exactly_one_winner() {
    let tmp = TempDir::new("race-acquire");
    let locks = Arc::new(locks(&tmp));
    for round in 0..20 {
        let id = format!("t{round}");
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let (locks, barrier, id) = (locks.clone(), barrier.clone(), id.clone());
                thread::spawn(move || {
                    let me = owner(&format!("inst-{i}"));
                    barrier.wait();
                    locks.try_acquire(&id, &me).unwrap().map(|g| g.owner)
                })
            })
            .collect();
        let winners: Vec<Owner> = handles
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect();
        assert_eq!(winners.len(), 1, "round {round}");
        assert_eq!(locks.read(&id), Some(LockState::Held(winners[0].clone())));
    }
}

/// Many threads each judge the lock, break it if stale, then try to take it. Exactly one must end
/// up holding it, and the lock it holds must still be there afterwards.
fn break_then_acquire_race(stale: impl Fn(&Locks, &str), grace: Duration) {
    let tmp = TempDir::new("race-break");
    let locks = Arc::new(locks(&tmp));
    for round in 0..20 {
        let id = format!("t{round}");
        stale(&locks, &id);
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let (locks, barrier, id) = (locks.clone(), barrier.clone(), id.clone());
                thread::spawn(move || {
                    let me = owner(&format!("inst-{round}-{i}"));
                    barrier.wait();
                    let mut broke = 0;
                    let mut won = None;
                    // Two tries each, so late readers see (and must not break) the fresh lock.
                    for _ in 0..2 {
                        if let Some(seen) = locks.read(&id)
                            && is_stale(&seen, grace).is_some()
                            && locks.break_stale(&id, &seen).unwrap()
                        {
                            broke += 1;
                        }
                        if won.is_none() {
                            won = locks.try_acquire(&id, &me).unwrap().map(|g| g.owner);
                        }
                    }
                    (broke, won)
                })
            })
            .collect();
        let results: Vec<(usize, Option<Owner>)> =
            handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<&Owner> = results.iter().filter_map(|(_, w)| w.as_ref()).collect();
        let breaks: usize = results.iter().map(|(b, _)| b).sum();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        assert_eq!(breaks, 1, "round {round}: only the stale lock is broken");
        assert_eq!(
            locks.read(&id),
            Some(LockState::Held(winners[0].clone())),
            "round {round}: the fresh lock survives"
        );
    }
}

#[test]
fn concurrent_breakers_of_a_dead_owners_lock_never_remove_a_fresh_one() {
    let dead = dead_owner();
    break_then_acquire_race(
        |locks, id| {
            locks.try_acquire(id, &dead).unwrap().unwrap();
        },
        Duration::from_secs(3600),
    );
}

#[test]
fn concurrent_breakers_of_an_unreadable_lock_never_remove_a_fresh_one() {
    // Zero grace: a breaker may even see a fresh lock between its mkdir and its owner record;
    // the gate must keep it from breaking that one.
    break_then_acquire_race(
        |locks, id| {
            let dir = locks.root().join(id);
            fs::create_dir_all(&dir).unwrap();
            set_mtime(&dir, Duration::from_secs(60));
        },
        Duration::ZERO,
    );
}

#[test]
fn run_lock_excludes_a_second_holder_until_dropped() {
    let tmp = TempDir::new("runlock");
    let path = tmp.join(".taskboard").join("run.lock");
    let held = RunLock::try_acquire(tmp.path(), &path)
        .unwrap()
        .expect("first holder");
    assert_eq!(
        fs::read_to_string(&path).unwrap().trim(),
        std::process::id().to_string()
    );
    match RunLock::try_acquire(tmp.path(), &path).unwrap() {
        Err(holder) => assert_eq!(holder, Some(std::process::id())),
        Ok(_) => panic!("second holder on the same file"),
    }
    drop(held);
    // Released once no process holds the folder's descriptor: a child another test is starting
    // holds a copy of every descriptor from its fork until its exec closes them.
    let mut again = None;
    let released = support::poll(Duration::from_secs(5), || {
        again = RunLock::try_acquire(tmp.path(), &path).unwrap().ok();
        again.is_some()
    });
    assert!(released, "released on drop");
}

const PROBE_ENV: &str = "TASKBOARD_RUN_LOCK_PROBE";

#[test]
fn run_lock_excludes_another_process() {
    let tmp = TempDir::new("runlock-proc");
    let path = tmp.join("run.lock");
    let _held = RunLock::try_acquire(tmp.path(), &path)
        .unwrap()
        .expect("first holder");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lock::run_lock_probe",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PROBE_ENV, &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("probe: held by {}", std::process::id())),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run by `run_lock_excludes_another_process` in a child process.
#[test]
#[ignore]
fn run_lock_probe() {
    let Some(path) = std::env::var_os(PROBE_ENV) else {
        return;
    };
    let path = std::path::Path::new(&path);
    match RunLock::try_acquire(path.parent().unwrap(), path).unwrap() {
        Ok(_) => println!("probe: acquired"),
        Err(Some(pid)) => println!("probe: held by {pid}"),
        Err(None) => println!("probe: held by unknown"),
    }
}

#[test]
fn sweep_removes_only_crash_debris() {
    let tmp = TempDir::new("sweep");
    let locks = locks(&tmp);
    assert_eq!(locks.sweep_debris().unwrap(), 0, "missing root");
    let me = owner("me");
    locks.try_acquire("t", &me).unwrap().unwrap();
    for name in [".broken-t-00ff", ".released-u-0a0a"] {
        let dir = locks.root().join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("owner.json"), b"{}").unwrap();
    }
    assert_eq!(locks.sweep_debris().unwrap(), 2);
    let mut names: Vec<String> = fs::read_dir(locks.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [".gate", "t"]);
    assert_eq!(locks.read("t"), Some(LockState::Held(me)));
}

#[test]
fn the_write_lock_puts_back_the_state_folder_but_never_the_boards_folder() {
    let dir = TempDir::new("writelock-home");
    // A cleaned-away `.taskboard` is made again.
    let state = dir.join("proj").join(".taskboard");
    fs::create_dir(dir.join("proj")).unwrap();
    drop(WriteLock::acquire(&state).unwrap());
    assert!(state.join("write.lock").is_file());
    // The board's folder was renamed away under a runtime that still names its old path: the
    // lock fails, and no folder appears there to take an ending nobody would read.
    fs::rename(dir.join("proj"), dir.join("moved")).unwrap();
    let err = WriteLock::acquire(&state).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(!dir.join("proj").exists());
    assert!(dir.join("moved/.taskboard/write.lock").is_file());
}

/// Replaces `owner.json` in `dir` with `bytes` of the same length, written in place with its
/// modification time put back: to a reader that goes by the file's identity, the same record.
fn rewrite_keeping_identity(dir: &std::path::Path, bytes: &[u8]) {
    let path = dir.join("owner.json");
    let before = fs::metadata(&path).unwrap();
    assert_eq!(bytes.len() as u64, before.len());
    fs::write(&path, bytes).unwrap();
    let f = fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(before.modified().unwrap()).unwrap();
}

/// An owner, the locks folder and the locks of that owner's instance, as a runtime has them.
fn own_locks(tmp: &TempDir) -> (Owner, std::path::PathBuf, Locks) {
    let me = owner(&instance_id());
    let root = tmp.join(".taskboard").join("locks");
    let mine = Locks::of_instance(root.clone(), &me.instance);
    (me, root, mine)
}

/// The owner `locks` lists for lock `id`, when it has a readable one.
fn held(locks: &Locks, id: &str) -> Option<Owner> {
    match locks.list().unwrap().into_iter().find(|(n, _)| n == id) {
        Some((_, LockState::Held(o))) => Some(o),
        _ => None,
    }
}

#[test]
fn the_record_a_runtime_wrote_is_its_own_until_its_file_is_another() {
    let tmp = TempDir::new("written");
    let (me, root, mine) = own_locks(&tmp);
    let junk = |id: &str| {
        let len = fs::metadata(root.join(id).join("owner.json"))
            .unwrap()
            .len();
        rewrite_keeping_identity(&root.join(id), &vec![b' '; len as usize]);
    };
    // What it wrote is known without reading it back: on taking the lock, and on an update.
    mine.try_acquire("t1", &me).unwrap().unwrap();
    junk("t1");
    assert_eq!(held(&mine, "t1"), Some(me.clone()));
    mine.set_executor("t1", &me.instance, 4242, Some("run-1"))
        .unwrap();
    junk("t1");
    assert_eq!(held(&mine, "t1").unwrap().executor_pgid, Some(4242));
    assert!(mine.release("t1", &me.instance).unwrap());
    // Replaced under it by another writer: neither an update nor a release takes it for its own.
    mine.try_acquire("t2", &me).unwrap().unwrap();
    let other = owner("another-instance");
    let theirs = root.join("t2").join("owner.json.theirs");
    fs::write(&theirs, serde_json::to_vec_pretty(&other).unwrap()).unwrap();
    fs::rename(&theirs, root.join("t2").join("owner.json")).unwrap();
    let update = mine.set_executor("t2", &me.instance, 4242, None);
    assert_eq!(
        update.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::PermissionDenied)
    );
    assert!(!mine.release("t2", &me.instance).unwrap());
    assert_eq!(held(&mine, "t2"), Some(other));
}

#[test]
fn a_listing_reads_again_every_record_that_changed_and_every_record_of_another_owner() {
    let tmp = TempDir::new("listing");
    let (me, root, mine) = own_locks(&tmp);
    mine.try_acquire("t1", &me).unwrap().unwrap();
    assert_eq!(held(&mine, "t1"), Some(me.clone()));
    // Changed by its owner: read again.
    mine.set_executor("t1", &me.instance, 4242, Some("run-1"))
        .unwrap();
    assert_eq!(held(&mine, "t1").unwrap().executor_pgid, Some(4242));
    // Released, then taken by another owner: the other owner.
    assert!(mine.release("t1", &me.instance).unwrap());
    let other = owner("another-instance");
    mine.try_acquire("t1", &other).unwrap().unwrap();
    assert_eq!(held(&mine, "t1"), Some(other.clone()));
    // Another owner's record is read afresh each time, even with the file's identity kept.
    let text = fs::read(root.join("t1/owner.json")).unwrap();
    let twin = String::from_utf8(text.clone())
        .unwrap()
        .replace("another-instance", "anotherXinstance");
    rewrite_keeping_identity(&root.join("t1"), twin.as_bytes());
    assert_eq!(held(&mine, "t1").unwrap().instance, "anotherXinstance");
    // A record of ours is parsed again only once its file is another one.
    mine.try_acquire("t2", &me).unwrap().unwrap();
    assert_eq!(held(&mine, "t2"), Some(me.clone()));
    let junk = vec![b' '; fs::metadata(root.join("t2/owner.json")).unwrap().len() as usize];
    rewrite_keeping_identity(&root.join("t2"), &junk);
    assert_eq!(held(&mine, "t2"), Some(me.clone()));
    // A reader without an instance reads every record afresh.
    assert!(matches!(
        locks(&tmp)
            .list()
            .unwrap()
            .into_iter()
            .find(|(n, _)| n == "t2"),
        Some((_, LockState::Unreadable { .. }))
    ));
}
