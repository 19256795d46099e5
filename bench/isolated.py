#!/usr/bin/env python3
"""Isolated runs end to end through `taskboard run`, on a generated repository of about 10,000
files (generated as bench/worktree.sh does).

The board and taskboard.toml live in the repository, with two routes:
  iso      workspace = "worktree"; its executor edits 10 files, adds 5, deletes 2, commits the
           edits, leaves the new files and the deletions uncommitted, writes a result file
  default  the shared folder; its executor does nothing and exits 0
debounce_ms = 50, max_parallel = 4.

Each round appends a `ready` task on `iso` to the board, then (a separate save ~100 ms later) a
`ready` task on `default`, and times from each save (wall time just before the write) to the
events in events.jsonl (`ts`): for the iso task workspace_created, task_dispatched,
snapshot_saved, task_finished, approval_requested; then it writes `approved` and times that
save to `merged`, `done` written and `workspace_removed`. After each round it times a plain
`git worktree add` and `git worktree remove --force` of the same repository by hand (git's own
cost at that moment, for comparison). For the shared task: save to task_dispatched, and whether
it was dispatched before the iso task's worktree was ready (the loop was free meanwhile).
Before the rounds, baseline saves of a shared task alone on a quiet board (no worktree being
made). The repository is packed with `git gc` once generated, as a clone is, so that no
automatic gc runs in the background during the rounds.
"claimed" is the runtime's `writeback` of the iso task's `running:`; "`done` written" is its
`writeback` after `merged`.

Usage (from the repository root):
  python3 bench/isolated.py [--files 10000] [--rounds 5] [--bin PATH] [--dir PARENT] [--keep]
Builds the release binary with `cargo build --release --quiet` unless --bin is given.
"""
import argparse, json, os, random, shutil, statistics, subprocess, sys, tempfile, time
from datetime import datetime

GAP = 0.1  # seconds between the iso save and the shared save


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def git(repo, *args):
    subprocess.run(["git", "-C", repo, *args], check=True, stdout=subprocess.DEVNULL)


def generate(repo, n):
    """100 folders of n/100 text files of 1 to 4 KiB, one commit (as bench/worktree.sh)."""
    rng = random.Random(7)
    per = max(1, n // 100)
    for i in range(n):
        d = os.path.join(repo, "src", f"d{i // per:03d}")
        os.makedirs(d, exist_ok=True)
        lines = rng.randint(16, 64)
        name = f"f{i % per:03d}.txt" if per <= 1000 else f"f{i}.txt"
        with open(os.path.join(d, name), "w") as f:
            f.write("".join(f"line {j} of file {i}: {'x' * rng.randint(20, 60)}\n"
                            for j in range(lines)))


ISO_SH = r"""#!/bin/sh
# An agent's work: 10 files edited and committed, 5 new and 2 deleted left uncommitted.
set -e
n=${TASKBOARD_TASK_ID#ISO-}
for i in 0 1 2 3 4 5 6 7 8 9; do
  f=$(printf 'src/d%03d/f%03d.txt' $i $i)
  echo "an agent's line for $TASKBOARD_TASK_ID" >> "$f"
done
git -c user.name=agent -c user.email=agent@localhost commit -qam "edits for $TASKBOARD_TASK_ID"
for i in 0 1 2 3 4; do echo new > "new-$TASKBOARD_TASK_ID-$i.txt"; done
d=$((20 + n))
rm "$(printf 'src/d%03d/f000.txt' $d)" "$(printf 'src/d%03d/f001.txt' $d)"
printf '{"status": "done", "note": "10 edited, 5 added, 2 deleted"}\n' > "$TASKBOARD_RESULT"
"""


class Bench:
    def __init__(self, a, root):
        self.a = a
        self.repo = os.path.join(root, "repo")
        self.board = os.path.join(self.repo, "task-board.md")
        self.log = os.path.join(self.repo, "events.jsonl")
        self.pos = 0
        self.events = []

    def read_events(self):
        try:
            with open(self.log) as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind("\n") + 1
        self.pos += len(data[:end].encode())
        for line in data[:end].splitlines():
            if line.strip():
                self.events.append(json.loads(line))

    def find(self, task, event):
        for e in self.events:
            if e.get("task") == task and e["event"] == event:
                return e
        return None

    def wait_writeback(self, task, after, limit=180):
        """The first `writeback` naming `task` at or after `after` (a time.time())."""
        end = time.monotonic() + limit
        while True:
            self.read_events()
            for e in self.events:
                if (e["event"] == "writeback" and task in e.get("tasks", [])
                        and ts(e["ts"]) >= after - 0.001):
                    return e
            if time.monotonic() > end:
                self.dump(task)
                raise TimeoutError(f"{task}: no writeback within {limit} s")
            time.sleep(0.005)

    def wait_event(self, task, event, limit=180):
        end = time.monotonic() + limit
        while True:
            self.read_events()
            e = self.find(task, event)
            if e:
                return e
            if time.monotonic() > end:
                self.dump(task)
                raise TimeoutError(f"{task}: no {event} within {limit} s")
            time.sleep(0.005)

    def dump(self, task):
        print(f"events of {task}:", file=sys.stderr)
        for e in self.events:
            if e.get("task") == task or e["event"] == "error":
                print("  " + json.dumps(e), file=sys.stderr)
        print(f"board: {self.status(task)}", file=sys.stderr)

    def status(self, task):
        with open(self.board) as f:
            text = f.read()
        at = text.find(f"### {task}:")
        if at < 0:
            return None
        line = text[at:].split("- status: ", 1)[1]
        return line.split("\n", 1)[0]

    def wait_status(self, task, want, limit=180):
        """The board's mtime when `task` first shows status `want`."""
        end = time.monotonic() + limit
        while True:
            st = os.stat(self.board)
            if self.status(task) == want:
                return st.st_mtime_ns / 1e9
            if time.monotonic() > end:
                self.read_events()
                self.dump(task)
                raise TimeoutError(f"{task}: status never {want} within {limit} s")
            time.sleep(0.002)

    def append(self, task, route):
        """A person's save: one task appended in place. Returns the wall time before the write."""
        block = f"\n### {task}: bench task\n- status: ready\n- route: {route}\n"
        t = time.time()
        with open(self.board, "a") as f:
            f.write(block)
        return t

    def set_status(self, task, old, new):
        with open(self.board) as f:
            text = f.read()
        at = text.index(f"### {task}:")
        key = f"- status: {old}\n"
        i = text.index(key, at)
        text = text[:i] + f"- status: {new}\n" + text[i + len(key):]
        t = time.time()
        with open(self.board, "w") as f:
            f.write(text)
        return t

    def quiet(self):
        """Let the runtime's last write go through the watcher before the next save."""
        time.sleep(0.05 * 1.25 + 0.15 + random.uniform(0, 0.0125))


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt(xs):
    if not xs:
        return "n/a"
    return f"{med(xs):,.0f} ({min(xs):,.0f} to {max(xs):,.0f})"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--files", type=int, default=10000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--bin")
    p.add_argument("--dir", help="parent of the temporary folder (default: $TMPDIR or /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    a = p.parse_args()

    if a.bin:
        binary = os.path.abspath(a.bin)
    else:
        subprocess.run(["cargo", "build", "--release", "--quiet"], check=True)
        target = os.environ.get("CARGO_TARGET_DIR", "target")
        binary = os.path.abspath(os.path.join(target, "release", "taskboard"))

    load_before = loadavg()
    root = tempfile.mkdtemp(prefix="tb-isolated-", dir=a.dir)
    proc = None
    try:
        b = Bench(a, root)
        repo = b.repo
        os.makedirs(repo)
        t = time.time()
        generate(repo, a.files)
        iso_sh = os.path.join(root, "iso.sh")
        with open(iso_sh, "w") as f:
            f.write(ISO_SH)
        with open(os.path.join(repo, "taskboard.toml"), "w") as f:
            f.write('[runtime]\ndebounce_ms = 50\nmax_parallel = 4\n\n'
                    '[executors.default]\ncommand = ["true"]\n\n'
                    f'[executors.iso]\ncommand = ["sh", "{iso_sh}"]\n'
                    'workspace = "worktree"\n')
        with open(os.path.join(repo, ".gitignore"), "w") as f:
            f.write(".taskboard/\nevents.jsonl\nevents.jsonl.lock\nevents-*.jsonl\n"
                    "deadletter/\nhandoffs/\n")
        with open(b.board, "w") as f:
            f.write("# Isolated runs bench\n")
        git(repo, "init", "-q", "-b", "main")
        git(repo, "config", "user.name", "bench")
        git(repo, "config", "user.email", "bench@localhost")
        git(repo, "add", "-A")
        git(repo, "-c", "gc.auto=0", "commit", "-qm", "generated")
        # Packed, as a clone is, and so that no automatic gc runs in the background later.
        git(repo, "gc", "-q")
        files = len(subprocess.run(["git", "-C", repo, "ls-files"], check=True,
                                   capture_output=True, text=True).stdout.splitlines())
        print(f"repository: {files} files, generated, committed and packed in {time.time() - t:.1f} s",
              flush=True)

        proc = subprocess.Popen([binary, "run", "task-board.md"], cwd=repo,
                                stdout=subprocess.DEVNULL, stderr=open(f"{root}/stderr", "w"))
        while not b.find(None, "runtime_started"):
            b.read_events()
            time.sleep(0.01)
        time.sleep(0.3)

        # Baseline: a shared task saved on a quiet board, no worktree being made.
        base = []
        for r in range(1, a.rounds + 1):
            b.quiet()
            t1 = b.append(f"BASE-{r}", "default")
            e1 = b.wait_event(f"BASE-{r}", "task_dispatched")
            b.wait_status(f"BASE-{r}", "done")
            base.append((ts(e1["ts"]) - t1) * 1000)
            print(f"baseline {r}: shared task {base[-1]:.0f} ms", flush=True)

        steps = ["claimed", "workspace_created", "task_dispatched", "snapshot_saved", "task_finished",
                 "approval_requested"]
        after = ["merged", "done written", "workspace_removed"]
        plain_steps = ["plain `git worktree add`", "plain `git worktree remove`"]
        times = {s: [] for s in steps + after + plain_steps}
        shared, free, ahead, disk, snapshot_files, run_ms = [], 0, [], [], [], []
        for r in range(1, a.rounds + 1):
            iso, sh = f"ISO-{r}", f"SHARED-{r}"
            b.quiet()
            t_iso = b.append(iso, "iso")
            time.sleep(GAP)
            t_sh = b.append(sh, "default")
            e_sh = b.wait_event(sh, "task_dispatched")
            shared.append((ts(e_sh["ts"]) - t_sh) * 1000)
            got = {"claimed": b.wait_writeback(iso, t_iso)}
            got.update({s: b.wait_event(iso, s) for s in steps[1:]})
            for s in steps:
                times[s].append((ts(got[s]["ts"]) - t_iso) * 1000)
            if ts(e_sh["ts"]) < ts(got["workspace_created"]["ts"]):
                free += 1
            ahead.append((ts(got["workspace_created"]["ts"]) - ts(e_sh["ts"])) * 1000)
            snapshot_files.append(got["snapshot_saved"].get("files"))
            run_ms.append(got["task_finished"]["duration_ms"])
            wt = got["workspace_created"]["path"]
            du = subprocess.run(["du", "-sk", wt], capture_output=True, text=True).stdout
            disk.append(int(du.split()[0]) if du else 0)
            b.wait_status(iso, "awaiting-approval")
            b.wait_status(sh, "done")
            b.quiet()
            t_ap = b.set_status(iso, "awaiting-approval", "approved")
            merged = b.wait_event(iso, "merged")
            times["merged"].append((ts(merged["ts"]) - t_ap) * 1000)
            b.wait_status(iso, "done")
            done = b.wait_writeback(iso, ts(merged["ts"]))
            times["done written"].append((ts(done["ts"]) - t_ap) * 1000)
            times["workspace_removed"].append(
                (ts(b.wait_event(iso, "workspace_removed")["ts"]) - t_ap) * 1000)
            # Plain git beside it: the same worktree made and removed by hand, nothing running.
            b.quiet()
            plain = os.path.join(root, "plain")
            t = time.time()
            git(repo, "worktree", "add", "-q", "-b", f"plain-{r}", plain, "main")
            times["plain `git worktree add`"].append((time.time() - t) * 1000)
            t = time.time()
            git(repo, "worktree", "remove", "--force", plain)
            times["plain `git worktree remove`"].append((time.time() - t) * 1000)
            git(repo, "branch", "-q", "-D", f"plain-{r}")
            print(f"round {r}: " + ", ".join(f"{s} {times[s][-1]:.0f}" for s in steps + after + plain_steps)
                  + f" ms; shared task {shared[-1]:.0f} ms, {ahead[-1]:.0f} ms before the worktree", flush=True)

        # What landed: every round's 10 edits, 5 new files and 2 deletions on main.
        landed = subprocess.run(["git", "-C", repo, "log", "--oneline", "main"],
                                capture_output=True, text=True).stdout.count("\n") - 1
        errors = [e for e in b.events if e["event"] in ("error", "merge_refused",
                                                       "writeback_conflict", "status_reasserted")]
        load_after = loadavg()

        print()
        print(f"{a.rounds} rounds; ms, median (min to max)")
        print("| step | from | ms |")
        print("|---|---|---:|")
        names = {"claimed": "claimed (`running:` written)", "done written": "`done` written"}
        for s in steps:
            print(f"| {names.get(s, f'`{s}`')} | the iso task's save | {fmt(times[s])} |")
        for s in after:
            print(f"| {names.get(s, f'`{s}`')} | the `approved` save | {fmt(times[s])} |")
        for s in plain_steps:
            print(f"| {s}, after each round | (by hand) | {fmt(times[s])} |")
        print(f"| shared task `task_dispatched`, worktree being made | its save | {fmt(shared)} |")
        print(f"| shared task `task_dispatched`, baseline (no worktree) | its save | {fmt(base)} |")
        print()
        print(f"shared task dispatched before the worktree was ready: {free} of {a.rounds} "
              f"(by {fmt(ahead)} ms)")
        print(f"executor's own run (task_finished duration_ms): {fmt(run_ms)} ms")
        print(f"snapshot files per run: {snapshot_files}; commits landed on main: {landed}")
        print(f"disk of one worktree: {med(disk) / 1024:.1f} MiB (du -sk, {min(disk)} to "
              f"{max(disk)} KiB)")
        print(f"error / refused / conflict / reasserted events: {len(errors)}")
        for e in errors:
            print("  " + json.dumps(e))
        gv = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
        print(f"machine: {os.cpu_count()} cores, {cpu_model()}, {gv}, "
              f"load {load_before} before, {load_after} after")
    finally:
        if proc:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if a.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
