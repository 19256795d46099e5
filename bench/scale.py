#!/usr/bin/env python3
"""Scale: pass time and peak memory of `taskboard run` on large boards.

For each size, writes a board of N tasks (mostly `done`, every 50th `blocked:<who>:<reason>`,
with a section every 100 tasks and a one-line description per task), starts `run`, reads the
first `pass` event's `duration_us`, then appends a line to the board (a save with nothing to
dispatch) and reads that pass's `duration_us` too. Peak memory is `VmHWM` from
/proc/<pid>/status, read after the second pass.

With `--saves N` (N > 1), it saves N times, each once the pass of the one before is logged,
and reports the median `duration_us` of those passes and the runtime's CPU time per pass
(utime + stime of the whole process, every thread, from /proc/<pid>/stat; the clock tick is
10 ms, so take 100 saves or more).

Usage: python3 bench/scale.py [--sizes 1000,10000,50000] [--saves N] [--bin PATH]
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time

TICK = os.sysconf("SC_CLK_TCK")


def events(path):
    try:
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        return []


def wait_for(what, cond, limit=120):
    end = time.monotonic() + limit
    while True:
        r = cond()
        if r:
            return r
        if time.monotonic() > end:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.01)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / TICK


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for l in f:
            if l.startswith(key + ":"):
                return int(l.split()[1])


def one(n, a):
    d = tempfile.mkdtemp(prefix=f"tb-scale-{n}-")
    board = f"{d}/task-board.md"
    with open(f"{d}/taskboard.toml", "w") as f:
        f.write(f'[runtime]\ndebounce_ms = {a.debounce}\n\n'
                '[executors.default]\ncommand = ["true"]\n')
    with open(board, "w") as f:
        f.write("# Scale\n")
        for i in range(1, n + 1):
            if i % 100 == 1:
                f.write(f"\n## Section {i // 100}\n")
            st = "blocked:ops:waiting-for-access" if i % 50 == 0 else "done"
            f.write(f"\n### T-{i}: task number {i}\n- status: {st}\n- owner: someone\n\n"
                    f"A description with `code` and **bold** for task {i}.\n")
    size = os.path.getsize(board)
    log = f"{d}/events.jsonl"
    p = subprocess.Popen([os.path.abspath(a.bin), "run", "task-board.md"], cwd=d,
                         stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    passes = lambda: [e for e in events(log) if e["event"] == "pass"]
    first = wait_for("first pass", lambda: passes())[0]
    cpu_before = cpu_seconds(p.pid)
    after = []
    for k in range(a.saves):
        with open(board, "a") as f:
            f.write(f"\nA line appended by the benchmark ({k + 1}).\n")
        after.append(wait_for("pass after the save",
                              lambda: passes()[k + 1] if len(passes()) > k + 1 else None))
    cpu = cpu_seconds(p.pid) - cpu_before
    hwm, rss = status(p.pid, "VmHWM"), status(p.pid, "VmRSS")
    p.terminate()
    p.wait()
    shutil.rmtree(d)
    out = {"tasks": n, "board_bytes": size, "tasks_in_pass": first["tasks"],
           "first_pass_us": first["duration_us"], "save_pass_us": after[0]["duration_us"],
           "save_pass_dispatched": after[0]["dispatched"], "vmhwm_kib": hwm, "vmrss_kib": rss}
    if a.saves > 1:
        out["saves"] = a.saves
        out["save_pass_us_median"] = statistics.median(e["duration_us"] for e in after)
        out["cpu_ms_per_save_pass"] = round(cpu / a.saves * 1e3, 2)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--debounce", type=int, default=50)
    ap.add_argument("--saves", type=int, default=1,
                    help="saves after the first pass; more than one reports medians and CPU")
    ap.add_argument("--bin", default=os.environ.get("TASKBOARD_BIN", "target/release/taskboard"))
    a = ap.parse_args()
    for n in [int(s) for s in a.sizes.split(",")]:
        print(json.dumps(one(n, a)), flush=True)


if __name__ == "__main__":
    main()
