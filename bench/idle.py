#!/usr/bin/env python3
"""Idle: `taskboard run` on a 100-task board (nothing ready) left alone for --seconds.

With --ending-waits, one more task runs first and is deleted from the board while it runs, so
its ending waits (`ending_kept`, "the task is not on the board") all through the measurement:
nothing is due then either.

Reports CPU time spent while idle, RSS and VmHWM, voluntary context switches summed over all
threads (/proc/<pid>/task/*/status) as a count of wakeups, and the passes the runtime made.

Usage: python3 bench/idle.py [--seconds 60] [--ending-waits] [--bin PATH]
"""
import argparse, glob, json, os, shutil, subprocess, tempfile, time

TICK = os.sysconf("SC_CLK_TCK")


def cpu(pid):
    rest = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / TICK


def status(pid, key):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith(key + ":"):
            return int(l.split()[1])


def switches(pid):
    n = 0
    for s in glob.glob(f"/proc/{pid}/task/*/status"):
        for l in open(s):
            if l.startswith("voluntary_ctxt_switches:"):
                n += int(l.split()[1])
    return n


def count(d, event):
    """Lines of the event log that hold `"event":"<event>`."""
    try:
        with open(f"{d}/events.jsonl") as f:
            return sum(1 for l in f if f'"event":"{event}' in l)
    except FileNotFoundError:
        return 0


def wait_for(d, event, seconds=30):
    end = time.monotonic() + seconds
    while count(d, event) == 0:
        if time.monotonic() > end:
            raise SystemExit(f"no {event} event in {seconds} s")
        time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--ending-waits", action="store_true")
    ap.add_argument("--bin", default=os.environ.get("TASKBOARD_BIN", "target/release/taskboard"))
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="tb-idle-")
    # The executor waits for its gate file, so the task can be deleted while it runs.
    with open(f"{d}/gated.sh", "w") as f:
        f.write("#!/bin/sh\ncat > /dev/null\nwhile [ ! -e gate ]; do sleep 0.05; done\n")
    os.chmod(f"{d}/gated.sh", 0o755)
    with open(f"{d}/taskboard.toml", "w") as f:
        f.write('[runtime]\ndebounce_ms = 2000\n\n[executors.default]\ncommand = ["./gated.sh"]\n')
    board = "# Idle\n"
    for i in range(1, 101):
        board += f"\n## T-{i}: task {i}\n- status: done\n\nSome description.\n"
    gone = "\n## G-1: deleted while it runs\n- status: ready\n"
    with open(f"{d}/task-board.md", "w") as f:
        f.write(board + (gone if a.ending_waits else ""))
    p = subprocess.Popen([os.path.abspath(a.bin), "run", "task-board.md"], cwd=d,
                         stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    if a.ending_waits:
        wait_for(d, "task_dispatched")
        with open(f"{d}/.task-board.md.tmp", "w") as f:
            f.write(board)
        os.rename(f"{d}/.task-board.md.tmp", f"{d}/task-board.md")
        wait_for(d, 'pass","tasks":100,')  # a pass read the board without it
        open(f"{d}/gate", "w").close()
        wait_for(d, "ending_kept")
        # The run's threads are kept idle for the next run for 10 s, then end: an ending
        # thread takes its counts with it.
        time.sleep(12)
    time.sleep(2)  # let it start (or take the ending) and make its pass
    # The log is read outside the window: opening a file in the watched folder wakes the
    # watcher's inotify thread.
    p0 = count(d, "pass")
    c0, s0 = cpu(p.pid), switches(p.pid)
    time.sleep(a.seconds)
    c1, s1 = cpu(p.pid), switches(p.pid)
    p1 = count(d, "pass")
    out = {"seconds": a.seconds, "ending_waits": a.ending_waits,
           "idle_cpu_ms": round((c1 - c0) * 1000, 1),
           "rss_kib": status(p.pid, "VmRSS"), "hwm_kib": status(p.pid, "VmHWM"),
           "threads": len(glob.glob(f"/proc/{p.pid}/task/*")), "wakeups": s1 - s0,
           "passes": p1 - p0}
    p.terminate(); p.wait()
    print(json.dumps(out))
    shutil.rmtree(d)


if __name__ == "__main__":
    main()
