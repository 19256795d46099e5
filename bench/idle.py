#!/usr/bin/env python3
"""Idle: `taskboard run` on a 100-task board (nothing ready) left alone for --seconds.

Reports CPU time spent while idle, RSS and VmHWM, and voluntary context switches summed over
all threads (/proc/<pid>/task/*/status) as a count of wakeups.

Usage: python3 bench/idle.py [--seconds 60] [--bin PATH]
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--bin", default=os.environ.get("TASKBOARD_BIN", "target/release/taskboard"))
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="tb-idle-")
    with open(f"{d}/taskboard.toml", "w") as f:
        f.write('[runtime]\ndebounce_ms = 2000\n\n[executors.default]\ncommand = ["true"]\n')
    with open(f"{d}/task-board.md", "w") as f:
        f.write("# Idle\n")
        for i in range(1, 101):
            f.write(f"\n## T-{i}: task {i}\n- status: done\n\nSome description.\n")
    p = subprocess.Popen([os.path.abspath(a.bin), "run", "task-board.md"], cwd=d,
                         stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    time.sleep(2)  # let it start and make its first pass
    c0, s0 = cpu(p.pid), switches(p.pid)
    time.sleep(a.seconds)
    c1, s1 = cpu(p.pid), switches(p.pid)
    out = {"seconds": a.seconds, "idle_cpu_ms": round((c1 - c0) * 1000, 1),
           "rss_kib": status(p.pid, "VmRSS"), "hwm_kib": status(p.pid, "VmHWM"),
           "threads": len(glob.glob(f"/proc/{p.pid}/task/*")), "wakeups": s1 - s0}
    p.terminate(); p.wait()
    print(json.dumps(out))
    shutil.rmtree(d)


if __name__ == "__main__":
    main()
