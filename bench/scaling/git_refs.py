#!/usr/bin/env python3
"""Claims as git refs in a shared bare repository, taken with `git push --force-with-lease`.

A claim on task T is the ref refs/claims/T. Claiming is
    git push --force-with-lease=refs/claims/T: ORIGIN <commit>:refs/claims/T
(an empty expected value: the ref must not exist yet), so the server's ref lock decides.

1. Race: for each NxM in --runs, N claimer processes, each with its own repository and its own
   claim commit, all try to claim tasks 1..M in the same order (the most contention). Counts
   winners per task (must be exactly 1) from the pushers' exit codes and checks the ref on the
   server names that winner; claim latency is one `git push` (a process start and a local
   receive-pack included, as a runtime would run it).
2. Steals: for --steal-tasks claimed tasks, a thief pushes without the lease: `--force`, and a
   plain push of a commit whose parent is the claim (a fast-forward). Each accepted push
   replaced a live claim and nobody was told. A plain non-fast-forward push is the control.
3. Fencing by value: the claimer renews with a child commit under --force-with-lease=ref:<its
   own claim>; after a thief replaced the claim, that renewal is refused.

Usage: python3 bench/scaling/git_refs.py [--runs 4x100,8x200] [--steal-tasks 20]
The server is a bare repository on a local path (the same code would push over ssh://).
"""
import argparse, json, os, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import uptime, summary_ms, wait_until, save, spawn_claimers  # noqa: E402

ENV = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@localhost",
           GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@localhost",
           GIT_CONFIG_NOSYSTEM="1", HOME=tempfile.gettempdir())


def git(repo, *args, check=True):
    r = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True, env=ENV)
    if check and r.returncode != 0:
        raise RuntimeError(f"git {args}: {r.stderr}")
    return r


def new_repo(path, msg, parent=None):
    """A repository holding one commit (empty tree) with message msg; returns the commit id."""
    if not os.path.isdir(path):
        git(tempfile.gettempdir(), "init", "-q", path)
    tree = git(path, "hash-object", "-t", "tree", "-w", "/dev/null").stdout.strip()
    args = ["commit-tree", tree, "-m", msg] + (["-p", parent] if parent else [])
    return git(path, *args).stdout.strip()


def push(repo, origin, commit, ref, lease=None, force=False):
    args = ["push", "-q"]
    if lease is not None:
        args.append(f"--force-with-lease={ref}:{lease}")
    if force:
        args.append("--force")
    args += [origin, f"{commit}:{ref}"]
    return git(repo, *args, check=False).returncode == 0


def role_claimer(origin, work, name, m, start_at):
    commit = new_repo(work, f"claim by {name}")
    wait_until(start_at)
    won, lat = [], []
    for t in range(1, m + 1):
        a = time.monotonic()
        ok = push(work, origin, commit, f"refs/claims/{t}", lease="")
        lat.append(time.monotonic() - a)
        if ok:
            won.append(t)
    json.dump({"name": name, "commit": commit, "won": won, "lat": lat}, sys.stdout)


def race(tmp, n, m):
    origin = os.path.join(tmp, f"origin-{n}x{m}.git")
    git(tmp, "init", "-q", "--bare", origin)
    start_at = time.time() + 1.5
    me = os.path.abspath(__file__)
    t0 = time.time()
    res = spawn_claimers(lambda i: [sys.executable, me, "--role", "claimer", origin,
                                    os.path.join(tmp, f"w-{n}x{m}-{i}"), f"c{i}", str(m), str(start_at)], n)
    wall = time.time() - max(t0, start_at)
    winners = {}
    for r in res:
        for t in r["won"]:
            winners.setdefault(t, []).append(r["commit"])
    refs = dict(reversed(line.split()) for line in
                git(origin, "for-each-ref", "--format=%(objectname) %(refname)", "refs/claims/").stdout.splitlines())
    mismatch = sum(1 for t, w in winners.items() if len(w) == 1 and refs.get(f"refs/claims/{t}") != w[0])
    lat = [x for r in res for x in r["lat"]]
    return {
        "claimers": n, "tasks": m, "pushes": len(lat),
        "tasks_with_one_winner": sum(1 for w in winners.values() if len(w) == 1),
        "tasks_with_two_or_more_winners": sum(1 for w in winners.values() if len(w) > 1),
        "tasks_with_no_winner": m - len(winners),
        "server_ref_differs_from_winner": mismatch,
        "per_claimer_wins": [len(r["won"]) for r in res],
        "claims_per_s": round(m / wall, 1),
        "push_latency": summary_ms(lat),
    }


def steals(tmp, k):
    origin = os.path.join(tmp, "origin-steal.git")
    git(tmp, "init", "-q", "--bare", origin)
    owner, thief = os.path.join(tmp, "owner"), os.path.join(tmp, "thief")
    out = {"tasks": k, "force_push_accepted": 0, "fast_forward_push_accepted": 0,
           "plain_non_ff_push_accepted": 0, "owner_renewal_refused_after_steal": 0,
           "owner_renewal_accepted_before_steal": 0}
    for t in range(1, k + 1):
        ref = f"refs/claims/{t}"
        claim = new_repo(owner, f"claim {t} by owner")
        assert push(owner, origin, claim, ref, lease="")
        # Renewal (heartbeat) by the owner: a child commit, compare-and-swap on its own claim.
        beat = new_repo(owner, f"heartbeat {t}", parent=claim)
        if push(owner, origin, beat, ref, lease=claim):
            out["owner_renewal_accepted_before_steal"] += 1
        claim = beat
        # Control: an unrelated commit, plain push, no force: refused as non-fast-forward.
        other = new_repo(thief, f"unrelated {t}")
        if push(thief, origin, other, ref):
            out["plain_non_ff_push_accepted"] += 1
        # Fast-forward: the thief fetched the claim and built on it (e.g. its own "heartbeat").
        git(thief, "fetch", "-q", origin, f"{ref}:refs/seen/{t}")
        ff = new_repo(thief, f"thief builds on claim {t}", parent=claim)
        if push(thief, origin, ff, ref):
            out["fast_forward_push_accepted"] += 1
        # --force: replaces whatever is there.
        forced = new_repo(thief, f"thief forces {t}")
        if push(thief, origin, forced, ref, force=True):
            out["force_push_accepted"] += 1
        # The owner's next heartbeat, still fenced on the value it last wrote: refused.
        beat2 = new_repo(owner, f"heartbeat 2 {t}", parent=claim)
        if not push(owner, origin, beat2, ref, lease=claim):
            out["owner_renewal_refused_after_steal"] += 1
    return out


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--role":
        return role_claimer(sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]), float(sys.argv[7]))
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="4x100,8x200")
    ap.add_argument("--steal-tasks", type=int, default=20)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tb-git-")
    out = {"load_before": uptime(), "git": subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()}
    try:
        out["races"] = []
        for spec in args.runs.split(","):
            n, m = map(int, spec.split("x"))
            r = race(tmp, n, m)
            r["load"] = uptime()
            out["races"].append(r)
            print(f"race {n}x{m}: {r}", file=sys.stderr)
        out["steals"] = steals(tmp, args.steal_tasks)
        out["load_after"] = uptime()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    save("git_refs", out)


if __name__ == "__main__":
    main()
