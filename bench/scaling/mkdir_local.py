#!/usr/bin/env python3
"""The baseline today's per-task locks give on one host: a claim is `mkdir locks/T`, then an owner
record (pid, host, boot id, process start time) written beside it by write-and-rename.

N claimer processes try tasks 1..M in the same order (the most contention); a claim is won by
the one whose mkdir succeeds. Counts winners per task (must be exactly 1) and the latency of
mkdir plus the owner record. Local file system only: no NFS server was available here, so the
shared-file-system case is argued in docs/SCALING.md, not measured.

Usage: python3 bench/scaling/mkdir_local.py [--runs 4x200,8x1000] [--dir /path/on/the/fs/to/test]
"""
import argparse, json, os, shutil, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import uptime, summary_ms, wait_until, save, spawn_claimers, count_winners  # noqa: E402


def owner_record():
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot = f.read().strip()
    with open(f"/proc/{os.getpid()}/stat") as f:
        start = int(f.read().rsplit(")", 1)[1].split()[19])
    return {"pid": os.getpid(), "host": socket.gethostname(), "boot_id": boot, "start_time": start}


def role_claimer(locks, m, start_at):
    rec = json.dumps(owner_record())
    wait_until(start_at)
    won, lat, win_lat = [], [], []
    for t in range(1, m + 1):
        d = os.path.join(locks, str(t))
        a = time.monotonic()
        try:
            os.mkdir(d)
        except FileExistsError:
            lat.append(time.monotonic() - a)
            continue
        tmp = os.path.join(d, f".owner.{os.getpid()}")
        with open(tmp, "w") as f:
            f.write(rec)
        os.rename(tmp, os.path.join(d, "owner.json"))
        lat.append(time.monotonic() - a)
        win_lat.append(lat[-1])
        won.append(t)
    json.dump({"won": won, "lat": lat, "win_lat": win_lat}, sys.stdout)


def race(base, n, m):
    locks = os.path.join(base, f"locks-{n}x{m}")
    os.mkdir(locks)
    start_at = time.time() + 1.0
    me = os.path.abspath(__file__)
    t0 = time.time()
    res = spawn_claimers(lambda _: [sys.executable, me, "--role", locks, str(m), str(start_at)], n)
    wall = time.time() - max(t0, start_at)
    winners = count_winners(res)
    lat = [x for r in res for x in r["lat"]]
    records = sum(1 for t in range(1, m + 1) if os.path.exists(os.path.join(locks, str(t), "owner.json")))
    return {"claimers": n, "tasks": m, "attempts": len(lat),
            "tasks_with_one_winner": sum(1 for c in winners.values() if c == 1),
            "tasks_with_two_or_more_winners": sum(1 for c in winners.values() if c > 1),
            "tasks_with_no_winner": m - len(winners), "owner_records": records,
            "per_claimer_wins": [len(r["won"]) for r in res],
            "claims_per_s": round(m / wall, 1), "attempt_latency": summary_ms(lat),
            "claim_latency_mkdir_plus_owner_record": summary_ms([x for r in res for x in r["win_lat"]])}


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--role":
        return role_claimer(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="4x200,8x1000")
    ap.add_argument("--dir", default=None, help="folder on the file system to test (default: a temp dir)")
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="tb-mkdir-", dir=args.dir)
    fs = subprocess.run(["stat", "-f", "-c", "%T", base], capture_output=True, text=True).stdout.strip()
    out = {"load_before": uptime(), "filesystem": fs, "races": []}
    try:
        for spec in args.runs.split(","):
            n, m = map(int, spec.split("x"))
            r = race(base, n, m)
            r["load"] = uptime()
            out["races"].append(r)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    save("mkdir_local", out)


if __name__ == "__main__":
    main()
