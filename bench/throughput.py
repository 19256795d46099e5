#!/usr/bin/env python3
"""Throughput: N ready tasks, a no-op executor (`true`), max_parallel 8.

Reports the time from start until every task is done, the number of writeback events
(coalescing) and the runtime's own CPU time (utime+stime from /proc/<pid>/stat) as a fraction,
and how much of that CPU time its loop thread (the main thread) took: the rest is the threads
that supervise runs, read their output and write the log.

With `--git FILES`, the board's folder is a git repository holding FILES committed files, the
board and the `.gitignore` that `taskboard init` writes: a work tree of that size, where each
run's start and end take a snapshot of it (`git status`) to tell what the run changed. Its files
are dated a minute before the commit, as in a work tree nobody has just checked out: files
written in the same second as the index are "racily clean" to git, which then reads each one
again on every `git status` that may not write the index back (the runtime's do not), until
some git command rewrites it (`--racy` keeps them so, as right after a clone or a checkout).
`--no-ignore` leaves that `.gitignore` out, and `--rotated N` puts N rotated event logs of
16 MiB beside the board, as on a board that has run for a while. `--changed MIB` commits one
more file of that size and leaves it changed in the work tree, as a person's unfinished work.

`--threads` also prints each live thread's name and CPU at the end (the threads that start runs
are named after their executor; idle ones are kept a while, ended ones count in the total only).

Usage: python3 bench/throughput.py [--tasks 1000] [--bin PATH] [--threads]
                                   [--git FILES [--racy] [--no-ignore] [--changed MIB]] [--rotated N]
"""
import argparse, json, os, shutil, subprocess, sys, tempfile, time

TICK = os.sysconf("SC_CLK_TCK")


def cpu_split(pid, tid=None):
    """User and system CPU seconds of a process (all its threads, live or ended), or of one
    of its threads."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    with open(path) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) / TICK, int(rest[12]) / TICK


def cpu_seconds(pid, tid=None):
    return sum(cpu_split(pid, tid))


def threads(pid):
    """Each live thread of `pid`: its id, name and user and system CPU seconds."""
    out = []
    for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            user, system = cpu_split(pid, tid)
        except OSError:
            continue
        out.append({"tid": int(tid), "name": name, "user_s": user, "system_s": system})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--bin", default=os.environ.get("TASKBOARD_BIN", "target/release/taskboard"))
    ap.add_argument("--git", type=int, default=None, metavar="FILES")
    ap.add_argument("--racy", action="store_true",
                    help="with --git: leave the files as new as the index")
    ap.add_argument("--no-ignore", action="store_true",
                    help="with --git: no .gitignore for taskboard's files")
    ap.add_argument("--changed", type=int, default=0, metavar="MIB",
                    help="with --git: a committed file of MIB MiB, changed in the work tree")
    ap.add_argument("--rotated", type=int, default=0, metavar="N",
                    help="N rotated event logs of 16 MiB beside the board")
    ap.add_argument("--threads", action="store_true",
                    help="print each live thread's CPU at the end")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="tb-throughput-")
    with open(f"{d}/taskboard.toml", "w") as f:
        f.write('[runtime]\ndebounce_ms = 50\nmax_parallel = 8\n\n[executors.default]\ncommand = ["true"]\n')
    with open(f"{d}/task-board.md", "w") as f:
        f.write("# Bench\n")
        for i in range(1, a.tasks + 1):
            f.write(f"\n## T-{i}: task {i}\n- status: ready\n")
    line = b'{"ts":"2026-12-01T00:00:00.000Z","event":"pass","tasks":1}\n'
    for k in range(a.rotated):
        with open(f"{d}/events-202612{k + 1:02d}T000000Z.jsonl", "wb") as f:
            f.write(line * (16 * 1024 * 1024 // len(line)))
    if a.git is not None:
        make_repository(d, a.git, os.path.abspath(a.bin), a.racy, not a.no_ignore, a.changed)
    t0 = time.monotonic()
    p = subprocess.Popen([os.path.abspath(a.bin), "run", "task-board.md"], cwd=d,
                         stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    cpu = 0.0
    while True:
        cpu = cpu_seconds(p.pid)
        with open(f"{d}/task-board.md") as f:
            text = f.read()
        if text.count("- status: done") == a.tasks:
            break
        if time.monotonic() - t0 > 600:
            print("did not finish in 600 s", file=sys.stderr)
            break
        time.sleep(0.01)
    elapsed = time.monotonic() - t0
    user, system = cpu_split(p.pid)
    loop_user, loop_system = cpu_split(p.pid, p.pid)
    cpu, loop_cpu = user + system, loop_user + loop_system
    live = threads(p.pid) if a.threads else []
    p.terminate(); p.wait()
    events = [json.loads(l) for l in open(f"{d}/events.jsonl")]
    wb = sum(1 for e in events if e["event"] == "writeback")
    passes = [e for e in events if e["event"] == "pass"]
    print(json.dumps({"tasks": a.tasks, "seconds": round(elapsed, 3), "writebacks": wb,
                      "passes": len(passes), "runtime_cpu_s": round(cpu, 3),
                      "loop_cpu_s": round(loop_cpu, 3), "cpu_fraction": round(cpu / elapsed, 3),
                      "runtime_user_s": user, "runtime_system_s": system,
                      "loop_user_s": loop_user, "loop_system_s": loop_system}))
    for t in live:
        print(json.dumps(t))
    shutil.rmtree(d)


def make_repository(d, files, taskboard, racy, ignore, changed_mib):
    """A git repository in `d`: `files` files in folders of 100, the board, its configuration
    and, if `ignore`, the `.gitignore` of `taskboard init`, committed (rotated event logs are
    not); the files dated a minute back unless `racy`."""
    for i in range(files):
        sub = f"{d}/src/m{i // 100:04d}"
        os.makedirs(sub, exist_ok=True)
        with open(f"{sub}/f{i:05d}.txt", "w") as f:
            f.write(f"file {i}\n")
    committed = ["src", "task-board.md", "taskboard.toml"]
    if changed_mib:
        with open(f"{d}/data.bin", "wb") as f:
            f.write(b"0123456789abcdef" * (changed_mib * 65536))
        committed.append("data.bin")
    if ignore:
        starter = tempfile.mkdtemp(prefix="tb-init-")
        subprocess.run([taskboard, "init", starter], check=True, stdout=subprocess.DEVNULL)
        shutil.copy(f"{starter}/.gitignore", f"{d}/.gitignore")
        shutil.rmtree(starter)
        committed.append(".gitignore")
    if not racy:
        back = time.time() - 60
        for root, _, names in os.walk(d):
            for name in names:
                os.utime(os.path.join(root, name), (back, back))
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "-c",
           "commit.gpgsign=false"]
    subprocess.run(git + ["init", "-q"], cwd=d, check=True)
    subprocess.run(git + ["add", "--"] + committed, cwd=d, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "bench"], cwd=d, check=True)
    if changed_mib:
        with open(f"{d}/data.bin", "ab") as f:
            f.write(b"changed")
        back = time.time() - 60
        os.utime(f"{d}/data.bin", (back, back))


if __name__ == "__main__":
    main()
