#!/usr/bin/env python3
"""Throughput: N ready tasks, a no-op executor (`true`), max_parallel 8.

Reports the time from start until every task is done, the number of writeback events
(coalescing) and the runtime's own CPU time (utime+stime from /proc/<pid>/stat) as a fraction,
and how much of that CPU time its loop thread (the main thread) took: the rest is the threads
that supervise runs, read their output and write the log.

Usage: python3 bench/throughput.py [--tasks 1000] [--bin PATH]
"""
import argparse, json, os, shutil, subprocess, sys, tempfile, time

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid, tid=None):
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    with open(path) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / TICK


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--bin", default=os.environ.get("TASKBOARD_BIN", "target/release/taskboard"))
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="tb-throughput-")
    with open(f"{d}/taskboard.toml", "w") as f:
        f.write('[runtime]\ndebounce_ms = 50\nmax_parallel = 8\n\n[executors.default]\ncommand = ["true"]\n')
    with open(f"{d}/task-board.md", "w") as f:
        f.write("# Bench\n")
        for i in range(1, a.tasks + 1):
            f.write(f"\n## T-{i}: task {i}\n- status: ready\n")
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
    cpu = cpu_seconds(p.pid)
    loop_cpu = cpu_seconds(p.pid, p.pid)
    p.terminate(); p.wait()
    events = [json.loads(l) for l in open(f"{d}/events.jsonl")]
    wb = sum(1 for e in events if e["event"] == "writeback")
    passes = [e for e in events if e["event"] == "pass"]
    print(json.dumps({"tasks": a.tasks, "seconds": round(elapsed, 3), "writebacks": wb,
                      "passes": len(passes), "runtime_cpu_s": round(cpu, 3),
                      "loop_cpu_s": round(loop_cpu, 3), "cpu_fraction": round(cpu / elapsed, 3)}))
    shutil.rmtree(d)


if __name__ == "__main__":
    main()
