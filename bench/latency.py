#!/usr/bin/env python3
"""Save-to-dispatch latency: how long after a person's save the runtime notices and dispatches.

Each save appends one `ready` task to the board (executor `true`). The time of the save is
`time.time()` taken just after the write returns; from `events.jsonl` the script reads the `ts`
of the first `file_changed` event after the save and of the new task's `task_dispatched`.
The next save is made only once the task is dispatched and its `done` is on the board, so
saves never overlap the runtime's own writes, then until the watcher has surely let the
event of the runtime's own last write through (`--settle`, default 1.25 × the debounce +
150 ms: the debounce, one tick of the debouncer, the runtime's quiet period of at most 100 ms
and a margin), so that each save lands on a quiet board, and after a random pause of 0 to `--jitter`
ms (default: a quarter of the debounce, one tick of the debouncer). Without it, every save
would come at the same moment of the debouncer's tick (the previous dispatch is aligned to a
tick), and the measured delay would be one fixed point of the tick rather than its spread.
Without the settle wait, a save made within one debounce of the runtime's own write is read
when that write's event comes through, sooner than its own would have (a person's save right
after the runtime wrote `done` is seen early); `--settle 0` measures that mix.

Styles:
  inplace  open the board with truncation and write it (as most editors and `>` do)
  rename   write a temporary file beside it, then os.replace() it over the board

Usage: python3 bench/latency.py [--debounce 50] [--saves 200] [--seconds 0] [--jitter MS]
                                [--settle MS]
                                [--style inplace|rename|both] [--seed 1] [--bin PATH]
`--seconds S` stops a style after S seconds of saving even if fewer than --saves were made.
"""
import argparse, json, os, random, shutil, subprocess, sys, tempfile, time
from datetime import datetime


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


class Events:
    """Reads events.jsonl incrementally (whole lines only)."""

    def __init__(self, path):
        self.path, self.offset, self.buf = path, 0, b""

    def new(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        return [json.loads(l) for l in lines if l.strip()]


def pct(xs, p):
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(p / 100 * len(xs) + 0.5)) - 1))
    return xs[k]


def summary(xs):
    return {"n": len(xs), "p50": round(pct(xs, 50), 1), "p95": round(pct(xs, 95), 1),
            "p99": round(pct(xs, 99), 1), "min": round(min(xs), 1), "max": round(max(xs), 1)}


def wait_for(what, cond, limit=30):
    end = time.monotonic() + limit
    while True:
        r = cond()
        if r:
            return r
        if time.monotonic() > end:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.002)


def run_style(style, a):
    d = tempfile.mkdtemp(prefix=f"tb-latency-{style}-")
    board = os.path.join(d, "task-board.md")
    with open(f"{d}/taskboard.toml", "w") as f:
        f.write(f'[runtime]\ndebounce_ms = {a.debounce}\nmax_parallel = 8\n\n'
                '[executors.default]\ncommand = ["true"]\n')
    with open(board, "w") as f:
        f.write("# Latency\n\n## L-0: seed\n- status: done\n")
    ev = Events(f"{d}/events.jsonl")
    p = subprocess.Popen([os.path.abspath(a.bin), "run", "task-board.md"], cwd=d,
                         stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    seen = []

    def first_pass():
        seen.extend(ev.new())
        return any(e["event"] == "pass" for e in seen)

    wait_for("first pass", first_pass)
    detect, dispatch, mtime_lat = [], [], []
    rng = random.Random(a.seed)
    began = time.monotonic()
    for i in range(1, a.saves + 1):
        if a.seconds and time.monotonic() - began > a.seconds:
            break
        time.sleep(rng.uniform(0, a.jitter) / 1000)
        ev.new()  # drop anything logged before this save
        with open(board) as f:
            text = f.read()
        text += f"\n## L-{i}: save {i}\n- status: ready\n"
        if style == "inplace":
            with open(board, "w") as f:
                f.write(text)
        else:
            tmp = board + ".tmp"
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, board)
        t_write = time.time()
        got = {}

        def dispatched():
            for e in ev.new():
                if e["event"] == "file_changed" and "fc" not in got:
                    got["fc"] = e
                if e["event"] == "task_dispatched" and e.get("task") == f"L-{i}":
                    got["td"] = e
            return "td" in got

        wait_for(f"dispatch of L-{i}", dispatched, limit=max(30, a.debounce / 100))
        if "fc" not in got:
            sys.exit(f"no file_changed before the dispatch of L-{i}")
        detect.append((ts(got["fc"]["ts"]) - t_write) * 1000)
        dispatch.append((ts(got["td"]["ts"]) - t_write) * 1000)
        if got["fc"].get("latency_ms") is not None:
            mtime_lat.append(got["fc"]["latency_ms"])

        def done():
            with open(board) as f:
                return f"## L-{i}: save {i}\n- status: done\n" in f.read()

        wait_for(f"L-{i} done", done)
        time.sleep(a.settle / 1000)
    p.terminate()
    p.wait()
    shutil.rmtree(d)
    return {"style": style, "debounce_ms": a.debounce, "jitter_ms": a.jitter,
            "settle_ms": a.settle,
            "saves": len(dispatch),
            "seconds": round(time.monotonic() - began, 1),
            "to_file_changed_ms": summary(detect), "to_dispatch_ms": summary(dispatch),
            "file_changed_latency_ms_field": summary(mtime_lat) if mtime_lat else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--debounce", type=int, default=50)
    ap.add_argument("--saves", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=0)
    ap.add_argument("--style", choices=["inplace", "rename", "both"], default="both")
    ap.add_argument("--jitter", type=float, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--settle", type=float, default=None)
    ap.add_argument("--bin", default=os.environ.get("TASKBOARD_BIN", "target/release/taskboard"))
    a = ap.parse_args()
    if a.jitter is None:
        a.jitter = a.debounce / 4
    if a.settle is None:
        a.settle = a.debounce * 1.25 + 150
    styles = ["inplace", "rename"] if a.style == "both" else [a.style]
    for s in styles:
        print(json.dumps(run_style(s, a)), flush=True)


if __name__ == "__main__":
    main()
