#!/usr/bin/env python3
"""Crash recovery time: `kill -9` the runtime while N tasks run, restart it, and time the
restart until every claim has been reset (`stale_claim_reset` for each of the N tasks).

The time is from `time.time()` just before the restart's spawn to the `ts` of the last
`stale_claim_reset` event (and, for reference, to the restart's first `pass` event).

Executors (`--executor`):
  direct   `sleep 300`: the executor dies with the runtime (PR_SET_PDEATHSIG), no group is left
  orphan   `sh -c 'sleep 300 & wait'`: the shell dies with the runtime, its `sleep` child lives
           on in the executor's process group, which the restart stops (SIGTERM) before reset
  stubborn as orphan, but the child ignores SIGTERM: the restart waits `grace` for each group,
           then SIGKILLs it

Usage: python3 bench/recovery.py [--claims 1,8] [--executor direct,orphan,stubborn]
                                 [--grace 1s] [--repeat 5] [--bin PATH]
"""
import argparse, json, os, shutil, signal, subprocess, sys, tempfile, time
from datetime import datetime

COMMANDS = {
    "direct": '["sleep", "300"]',
    "orphan": '["sh", "-c", "sleep 300 & wait"]',
    "stubborn": '["sh", "-c", "trap \\"\\" TERM; sleep 300 & wait"]',
}


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def events(path):
    try:
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip() and l.endswith("\n")]
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
        time.sleep(0.002)


def one(n, executor, a):
    d = tempfile.mkdtemp(prefix=f"tb-recovery-{n}-")
    board = f"{d}/task-board.md"
    log = f"{d}/events.jsonl"
    with open(f"{d}/taskboard.toml", "w") as f:
        f.write(f'[runtime]\ndebounce_ms = 50\nmax_parallel = {n}\ngrace = "{a.grace}"\n\n'
                f'[executors.default]\ncommand = {COMMANDS[executor]}\n')
    with open(board, "w") as f:
        f.write("# Recovery\n")
        for i in range(1, n + 1):
            f.write(f"\n## R-{i}: task {i}\n- status: ready\n")
    binary = os.path.abspath(a.bin)
    p = subprocess.Popen([binary, "run", "task-board.md"], cwd=d,
                         stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    wait_for("all running", lambda: open(board).read().count("status: running:") == n)
    # Every executor spawned (its pid is in a task_dispatched event) before the kill.
    wait_for("all dispatched", lambda: sum(e["event"] == "task_dispatched" for e in events(log)) == n)
    p.send_signal(signal.SIGKILL)
    p.wait()
    before = len(events(log))
    t0 = time.time()
    q = subprocess.Popen([binary, "run", "task-board.md"], cwd=d,
                         stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    def resets():
        new = events(log)[before:]
        r = [e for e in new if e["event"] == "stale_claim_reset"]
        # The pass that made the resets logs its `pass` event after them.
        return new if len(r) >= n and any(e["event"] == "pass" for e in new) else None

    new = wait_for("all claims reset", resets)
    last_reset = max(ts(e["ts"]) for e in new if e["event"] == "stale_claim_reset")
    first_pass = next(ts(e["ts"]) for e in new if e["event"] == "pass")
    q.terminate()
    q.wait()
    # The restart runs the reset tasks again; SIGTERM makes it stop them before it exits.
    shutil.rmtree(d, ignore_errors=True)
    return (last_reset - t0) * 1000, (first_pass - t0) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--claims", default="1,8")
    ap.add_argument("--executor", default="direct,orphan,stubborn")
    ap.add_argument("--grace", default="1s")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--bin", default=os.environ.get("TASKBOARD_BIN", "target/release/taskboard"))
    a = ap.parse_args()
    for executor in a.executor.split(","):
        for n in [int(s) for s in a.claims.split(",")]:
            runs = [one(n, executor, a) for _ in range(a.repeat)]
            resets = sorted(r[0] for r in runs)
            passes = sorted(r[1] for r in runs)
            print(json.dumps({"executor": executor, "claims": n, "grace": a.grace,
                              "runs": a.repeat,
                              "to_all_resets_ms": {"min": round(resets[0]), "median":
                                                   round(resets[len(resets) // 2]),
                                                   "max": round(resets[-1])},
                              "to_first_pass_ms_median": round(passes[len(passes) // 2])}),
                  flush=True)


if __name__ == "__main__":
    main()
