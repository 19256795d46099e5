#!/usr/bin/env python3
"""Save-to-executor latency: how long after a person's save the runtime starts the work, with
watchexec started on the same saves in the same run for comparison.

Each save appends one `ready` task to a board. Two folders are set up, one served by
`taskboard run` and one watched by `watchexec` (same debounce, filtered on the board's name,
`--postpone`); both run the same command, `sh -c 'date +%s.%N >> starts'`, so "executor start"
is measured the same way for both: the time that command writes, minus the time of the save.
Saves alternate between the two folders (one taskboard save, one watchexec save, same style),
so both see the same machine load.

The time of the save is `time.time()` just after the save returns. For vim, a process that exits
some time after writing, it is the first inotify event naming the board (its rename to `board~`,
just before the write), seen by the same watch in both folders. Not the board's mtime: the
kernel stamps a new file with its coarse clock (up to a tick early) unless something read the
file's times since it was made, which watchexec does on each event and taskboard does not,
so the mtime favoured watchexec by up to a tick. For taskboard the script also reads the
`ts` of the first `file_changed` and of the task's `task_dispatched` from `events.jsonl`. Before
each save it waits for the previous start (and, for taskboard, the task's `done`), then
`--settle` ms (default 1.25 × the debounce + 150 ms) so that every save lands on a quiet
board, then a random 0 to `--jitter` ms (default a quarter of the debounce).

The raw inotify floor: a thread watches each folder with inotify (ctypes, no debounce) and
records when the first event naming the board arrives; `inotify_ms` is that time minus the time
just *before* the save began (so it includes the save itself; it is what any watcher sees
before its debounce).

The same watch gives how long each save's events went on (`*_save_spread_ms`: its last event
naming the board minus its first), taskboard's start after the save's *last* event, and
watchexec's start after the save's *first*: taskboard's quiet period runs from the last event
(a save still being written is never read), watchexec's debounce from the first, so a save
whose events spread (vim's `fsync` between its write and its close) widens the gap by the
spread.

Styles:
  inplace   open the board with truncation and write it (as most editors and `>` do)
  rename    write a temporary file beside it, then os.replace() it over the board
  sed       `sed -i '$a ...'` (a temporary file renamed over the board)
  recreate  remove the board, then create and write it again
  vim       `vim -u NONE -es` with `backupcopy=no`: the board is renamed to `board~` and
            written anew (the folders are made outside /tmp, where vim would write in place)

Usage: python3 bench/latency.py [--debounce 50] [--saves 200] [--seconds 0] [--jitter MS]
                                [--settle MS] [--style STYLE[,STYLE...]|all|both] [--seed 1]
                                [--bin PATH] [--watchexec PATH|none] [--dir PATH]
`--seconds S` stops a style after S seconds of saving even if fewer than --saves were made.
`--style both` is inplace,rename (the old default); `all` is every style.
"""
import argparse, ctypes, json, os, random, shutil, struct, subprocess, sys, tempfile, threading
import time
from datetime import datetime

STYLES = ["inplace", "rename", "sed", "recreate", "vim"]
BOARD = "task-board.md"


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


class Starts:
    """The executor's start times, one `date +%s.%N` line each."""

    def __init__(self, path):
        self.path, self.seen = path, 0

    def new(self):
        try:
            with open(self.path) as f:
                lines = [l for l in f.read().split("\n") if l.strip()]
        except FileNotFoundError:
            return []
        out = [float(l) for l in lines[self.seen:]]
        self.seen = len(lines)
        return out


class Inotify:
    """A raw inotify watch on a folder: the times events naming the board arrived."""

    # MODIFY ATTRIB CLOSE_WRITE MOVED_* CREATE DELETE: what both tools count as a change
    MASK = 0x2 | 0x4 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200

    def __init__(self, folder):
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(0)
        libc.inotify_add_watch(self.fd, folder.encode(), self.MASK)
        self.times, self.lock = [], threading.Lock()
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            now = time.time()
            i = 0
            while i < len(data):
                _wd, _mask, _cookie, n = struct.unpack_from("iIII", data, i)
                name = data[i + 16:i + 16 + n].rstrip(b"\0").decode(errors="replace")
                i += 16 + n
                if name == BOARD:
                    with self.lock:
                        self.times.append(now)

    def first_after(self, t):
        with self.lock:
            later = [x for x in self.times if x >= t]
        return min(later) if later else None

    def last_between(self, t, end):
        with self.lock:
            inside = [x for x in self.times if t <= x <= end]
        return max(inside) if inside else None


def pct(xs, p):
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(p / 100 * len(xs) + 0.5)) - 1))
    return xs[k]


def summary(xs):
    if not xs:
        return None
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


def save(style, board, addition):
    """Append `addition` to the board in the given style; the time the save was made (None for
    vim: the caller takes the save's first inotify event)."""
    if style == "sed":
        body = addition.strip("\n").replace("\n", "\\n")
        subprocess.run(["sed", "-i", f"$a \\\\n{body}", board], check=True)
        return time.time()
    if style == "vim":
        lines = addition.strip("\n").split("\n")
        cmds = ["set backup writebackup backupcopy=no", "$put =''"]
        cmds += [f"$put ='{l}'" for l in lines] + ["wq"]
        args = ["vim", "-u", "NONE", "-i", "NONE", "-n", "-N", "-es"]
        for c in cmds:
            args += ["-c", c]
        subprocess.run(args + [board], check=True, stdin=subprocess.DEVNULL)
        return None  # the caller takes its first inotify event
    with open(board) as f:
        text = f.read() + addition
    if style == "inplace":
        with open(board, "w") as f:
            f.write(text)
    elif style == "rename":
        with open(board + ".tmp", "w") as f:
            f.write(text)
        os.replace(board + ".tmp", board)
    elif style == "recreate":
        os.remove(board)
        with open(board, "w") as f:
            f.write(text)
    return time.time()


def start_cmd(folder):
    return ["sh", "-c", f"date +%s.%N >> {folder}/starts"]


class Taskboard:
    def __init__(self, a, root, style):
        self.d = tempfile.mkdtemp(prefix=f"tb-latency-{style}-", dir=root)
        self.board = os.path.join(self.d, BOARD)
        cmd = json.dumps(start_cmd(self.d))
        with open(f"{self.d}/taskboard.toml", "w") as f:
            f.write(f'[runtime]\ndebounce_ms = {a.debounce}\nmax_parallel = 8\n\n'
                    f'[executors.default]\ncommand = {cmd}\n')
        with open(self.board, "w") as f:
            f.write("# Latency\n\n## L-0: seed\n- status: done\n")
        self.ev, self.starts = Events(f"{self.d}/events.jsonl"), Starts(f"{self.d}/starts")
        self.ino = Inotify(self.d)
        self.p = subprocess.Popen([os.path.abspath(a.bin), "run", BOARD], cwd=self.d,
                                  stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        seen = []

        def first_pass():
            seen.extend(self.ev.new())
            return any(e["event"] == "pass" for e in seen)

        wait_for("first pass", first_pass)
        self.r = {"start": [], "file_changed": [], "dispatch": [], "inotify": [], "spread": [],
                  "after_last": []}

    def one(self, style, i, a):
        self.ev.new()
        self.starts.new()
        t0 = time.time()
        t = save(style, self.board, f"\n## L-{i}: save {i}\n- status: ready\n")
        got, started = {}, []

        def dispatched():
            for e in self.ev.new():
                if e["event"] == "file_changed" and "fc" not in got:
                    got["fc"] = e
                if e["event"] == "task_dispatched" and e.get("task") == f"L-{i}":
                    got["td"] = e
            started.extend(self.starts.new())
            return "td" in got and started

        wait_for(f"start of L-{i}", dispatched, limit=max(30, a.debounce / 100))
        t = t if t is not None else wait_for("vim's first event", lambda: self.ino.first_after(t0))
        self.r["start"].append((started[0] - t) * 1000)
        self.r["dispatch"].append((ts(got["td"]["ts"]) - t) * 1000)
        if "fc" in got:
            self.r["file_changed"].append((ts(got["fc"]["ts"]) - t) * 1000)
        ino = self.ino.first_after(t0)
        if ino is not None:
            self.r["inotify"].append((ino - t0) * 1000)
        if ino is not None and "fc" in got:
            # The save's events all come a debounce or more before `file_changed`, the
            # runtime's own write of the board after it.
            last = self.ino.last_between(t0, ts(got["fc"]["ts"]) - a.debounce / 2000)
            if last is not None:
                self.r["spread"].append((last - ino) * 1000)
                self.r["after_last"].append((started[0] - last) * 1000)

        def done():
            with open(self.board) as f:
                return f"## L-{i}: save {i}\n- status: done\n" in f.read()

        wait_for(f"L-{i} done", done)

    def close(self):
        self.p.terminate()
        self.p.wait()
        shutil.rmtree(self.d)


class Watchexec:
    def __init__(self, a, root, style):
        self.d = tempfile.mkdtemp(prefix=f"we-latency-{style}-", dir=root)
        self.board = os.path.join(self.d, BOARD)
        with open(self.board, "w") as f:
            f.write("# Latency\n\n## L-0: seed\n- status: done\n")
        self.starts = Starts(f"{self.d}/starts")
        self.ino = Inotify(self.d)
        self.p = subprocess.Popen(
            [a.watchexec, "--debounce", f"{a.debounce}ms", "--postpone", "--shell=none",
             "-w", self.d, "-f", f"**/{BOARD}", "--"] + start_cmd(self.d),
            cwd=self.d, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        time.sleep(1)  # watchexec says nothing when its watch is in place
        self.r = {"start": [], "spread": [], "after_first": []}

    def one(self, style, i, a):
        self.starts.new()
        t0 = time.time()
        t = save(style, self.board, f"\n## L-{i}: save {i}\n- status: ready\n")
        started = []

        def cond():
            started.extend(self.starts.new())
            return started

        wait_for(f"watchexec start {i}", cond, limit=max(30, a.debounce / 100))
        t = t if t is not None else wait_for("vim's first event", lambda: self.ino.first_after(t0))
        self.r["start"].append((started[0] - t) * 1000)
        first = self.ino.first_after(t0)
        last = self.ino.last_between(t0, started[0])
        if first is not None and last is not None:
            self.r["spread"].append((last - first) * 1000)
            self.r["after_first"].append((started[0] - first) * 1000)

    def close(self):
        self.p.terminate()
        self.p.wait()
        shutil.rmtree(self.d)


def run_style(style, a):
    tools = [Taskboard(a, a.dir, style)]
    if a.watchexec != "none":
        tools.append(Watchexec(a, a.dir, style))
    rng = random.Random(a.seed)
    began = time.monotonic()
    n = 0
    for i in range(1, a.saves + 1):
        if a.seconds and time.monotonic() - began > a.seconds:
            break
        for tool in tools:
            time.sleep(rng.uniform(0, a.jitter) / 1000)
            tool.one(style, i, a)
            time.sleep(a.settle / 1000)
        n = i
    for tool in tools:
        tool.close()
    tb = tools[0].r
    out = {"style": style, "debounce_ms": a.debounce, "jitter_ms": a.jitter,
           "settle_ms": a.settle, "saves": n, "seconds": round(time.monotonic() - began, 1),
           "load": os.getloadavg()[0],
           "taskboard_start_ms": summary(tb["start"]),
           "taskboard_to_file_changed_ms": summary(tb["file_changed"]),
           "taskboard_to_dispatch_ms": summary(tb["dispatch"]),
           "inotify_ms": summary(tb["inotify"]),
           "taskboard_save_spread_ms": summary(tb["spread"]),
           "taskboard_start_after_last_event_ms": summary(tb["after_last"])}
    if len(tools) > 1:
        we = tools[1].r
        out["watchexec_start_ms"] = summary(we["start"])
        out["watchexec_save_spread_ms"] = summary(we["spread"])
        out["watchexec_start_after_first_event_ms"] = summary(we["after_first"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--debounce", type=int, default=50)
    ap.add_argument("--saves", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=0)
    ap.add_argument("--style", default="all",
                    help="comma-separated of " + ", ".join(STYLES) + "; or all, or both")
    ap.add_argument("--jitter", type=float, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--settle", type=float, default=None)
    ap.add_argument("--bin", default=os.environ.get("TASKBOARD_BIN", "target/release/taskboard"))
    ap.add_argument("--watchexec", default=shutil.which("watchexec")
                    or os.path.expanduser("~/.cargo/bin/watchexec"),
                    help="the watchexec binary, or `none` to leave it out")
    ap.add_argument("--dir", default=os.getcwd(),
                    help="where the temporary folders go (not /tmp: vim writes in place there)")
    a = ap.parse_args()
    if a.jitter is None:
        a.jitter = a.debounce / 4
    if a.settle is None:
        a.settle = a.debounce * 1.25 + 150
    if a.watchexec != "none" and not os.access(a.watchexec, os.X_OK):
        sys.exit(f"{a.watchexec}: no watchexec (cargo install --locked watchexec-cli, "
                 "or --watchexec none)")
    if a.style == "all":
        styles = STYLES
    elif a.style == "both":
        styles = ["inplace", "rename"]
    else:
        styles = a.style.split(",")
    for s in styles:
        if s not in STYLES:
            sys.exit(f"unknown style {s}")
        print(json.dumps(run_style(s, a)), flush=True)


if __name__ == "__main__":
    main()
