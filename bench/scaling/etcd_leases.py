#!/usr/bin/env python3
"""etcd leases: a claim is a key created only if absent, attached to the claimer's lease.

Starts a throw-away single-member etcd 3.4 on loopback (data in a temp dir), measures, and
stops that pid at the end. A claim on task T is the transaction
    compare: create("claims/T") = "0"     (the key does not exist)
    success: put claims/T <claimer> --lease=<the claimer's lease>
The lease is kept alive by `etcdctl lease keep-alive`; when that stops, etcd deletes the key
after the TTL by its own clock.

1. Race, by `etcdctl txn` (a process start per claim, as a shell executor would do it): for each
   NxM in --runs, N claimers try tasks 1..M in the same order. Winners per task must be 1.
2. The same race through etcd's JSON gateway (POST /v3/kv/txn on one kept-open HTTP connection
   per claimer), for the round trip without the process start.
3. Expiry: A claims K tasks under a 3 s lease with keep-alive running; B polls for 6 s and
   gets nothing; A's keep-alive is killed (a crashed host); the time until B holds every task.
4. Fencing: A claims K tasks (token: the claim key's create_revision), its keep-alive is
   SIGSTOPped (a paused host), the lease runs out, B claims them; A's keep-alive is resumed and
   A writes its results with `compare create_revision(claims/T) = <A's token>`: refused.

Usage: python3 bench/scaling/etcd_leases.py [--runs 4x100,8x200] [--tasks 20]
Needs: etcd-server and etcd-client (Debian 12: apt-get install -y etcd-server etcd-client).
"""
import argparse, base64, http.client, json, os, shutil, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import uptime, summary_ms, wait_until, free_port, save, spawn_claimers, count_winners  # noqa: E402

ENV = dict(os.environ, ETCDCTL_API="3")


def ctl(ep, *args, stdin=None):
    return subprocess.run(["etcdctl", f"--endpoints={ep}", *args], input=stdin,
                          capture_output=True, text=True, env=ENV)


def grant(ep, ttl):
    return ctl(ep, "lease", "grant", str(ttl)).stdout.split()[1]  # "lease <hex> granted ..."


def txn_claim(ep, key, val, lease):
    r = ctl(ep, "txn", stdin=f'create("{key}") = "0"\n\nput {key} {val} --lease={lease}\n\n\n')
    return r.stdout.startswith("SUCCESS")


def create_rev(ep, key):
    kvs = json.loads(ctl(ep, "get", key, "-w", "json").stdout).get("kvs") or []
    return int(kvs[0]["create_revision"]) if kvs else 0


def b64(s):
    return base64.b64encode(s.encode()).decode()


def role_claimer(ep, name, m, start_at, mode, prefix):
    lease = grant(ep, 60)
    conn = None
    if mode == "http":
        host, port = ep.split(":")
        conn = http.client.HTTPConnection(host, int(port))
    wait_until(start_at)
    won, lat = [], []
    for t in range(1, m + 1):
        key = f"{prefix}/{t}"
        a = time.monotonic()
        if mode == "ctl":
            ok = txn_claim(ep, key, name, lease)
        else:
            body = json.dumps({"compare": [{"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
                               "success": [{"request_put": {"key": b64(key), "value": b64(name), "lease": str(int(lease, 16))}}]})
            conn.request("POST", "/v3/kv/txn", body, {"Content-Type": "application/json"})
            ok = bool(json.loads(conn.getresponse().read()).get("succeeded"))
        lat.append(time.monotonic() - a)
        if ok:
            won.append(t)
    json.dump({"name": name, "won": won, "lat": lat}, sys.stdout)


def race(ep, n, m, mode):
    prefix = f"claims-{mode}-{n}x{m}"
    start_at = time.time() + 1.5
    me = os.path.abspath(__file__)
    t0 = time.time()
    res = spawn_claimers(
        lambda i: [sys.executable, me, "--role", ep, f"c{i}", str(m), str(start_at), mode, prefix], n)
    wall = time.time() - max(t0, start_at)
    winners = count_winners(res)
    lat = [x for r in res for x in r["lat"]]
    stored = sum(1 for line in ctl(ep, "get", "--prefix", prefix + "/", "--keys-only").stdout.splitlines() if line.strip())
    return {"mode": mode, "claimers": n, "tasks": m, "txns": len(lat),
            "tasks_with_one_winner": sum(1 for c in winners.values() if c == 1),
            "tasks_with_two_or_more_winners": sum(1 for c in winners.values() if c > 1),
            "tasks_with_no_winner": m - len(winners), "claim_keys_stored": stored,
            "per_claimer_wins": [len(r["won"]) for r in res],
            "claims_per_s": round(m / wall, 1), "txn_latency": summary_ms(lat)}


def expiry(ep, k):
    lease = grant(ep, 3)
    keys = [f"exp/{t}" for t in range(1, k + 1)]
    for key in keys:
        assert txn_claim(ep, key, "A", lease)
    ka = subprocess.Popen(["etcdctl", f"--endpoints={ep}", "lease", "keep-alive", lease],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    b_lease = grant(ep, 60)
    polls = taken_while_alive = 0
    end = time.monotonic() + 6
    while time.monotonic() < end:
        polls += 1
        if txn_claim(ep, keys[0], "B", b_lease):
            taken_while_alive += 1
        time.sleep(0.1)
    ka.kill()
    ka.wait()
    killed = time.monotonic()
    first = None
    while time.monotonic() - killed < 15:
        if txn_claim(ep, keys[0], "B", b_lease):
            first = time.monotonic() - killed
            break
        time.sleep(0.05)
    rest = sum(txn_claim(ep, key, "B", b_lease) for key in keys[1:])
    return {"lease_ttl_s": 3, "tasks": k, "polls_while_keepalive_ran": polls,
            "claims_by_B_while_keepalive_ran": taken_while_alive,
            "s_from_keepalive_killed_to_B_claim": round(first, 2) if first is not None else None,
            "B_claims_after_expiry": (1 if first is not None else 0) + rest}


def fencing(ep, k):
    lease = grant(ep, 3)
    keys = [f"fence/{t}" for t in range(1, k + 1)]
    tokens = {}
    for key in keys:
        assert txn_claim(ep, key, "A", lease)
        tokens[key] = create_rev(ep, key)
    ka = subprocess.Popen(["etcdctl", f"--endpoints={ep}", "lease", "keep-alive", lease],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    time.sleep(1)
    os.kill(ka.pid, signal.SIGSTOP)  # A's host pauses: no keep-alive reaches etcd
    b_lease = grant(ep, 60)
    deadline = time.monotonic() + 15
    b_claims = 0
    for key in keys:
        while not txn_claim(ep, key, "B", b_lease):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        else:
            b_claims += 1
    os.kill(ka.pid, signal.SIGCONT)
    time.sleep(0.5)
    refused = accepted = unfenced_accepted = 0
    for key in keys:
        t = key.split("/")[1]
        r = ctl(ep, "txn", stdin=f'create("{key}") = "{tokens[key]}"\n\nput result/{t} A-stale\n\n\n')
        if r.stdout.startswith("SUCCESS"):
            accepted += 1
        else:
            refused += 1
    # Control: the same write without the compare lands whatever the claim says.
    for key in keys:
        t = key.split("/")[1]
        if ctl(ep, "put", f"result-unfenced/{t}", "A-stale").returncode == 0:
            unfenced_accepted += 1
    ka.kill()
    ka.wait()
    return {"lease_ttl_s": 3, "tasks": k, "B_claims_after_A_paused": b_claims,
            "A_fenced_writes_refused": refused, "A_fenced_writes_accepted": accepted,
            "A_unfenced_writes_accepted": unfenced_accepted}


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--role":
        a = sys.argv[2:]
        return role_claimer(a[0], a[1], int(a[2]), float(a[3]), a[4], a[5])
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="4x100,8x200")
    ap.add_argument("--tasks", type=int, default=20)
    args = ap.parse_args()
    if not shutil.which("etcd") or not shutil.which("etcdctl"):
        sys.exit("etcd not found: apt-get install -y etcd-server etcd-client")
    tmp = tempfile.mkdtemp(prefix="tb-etcd-")
    cport, pport = free_port(), free_port()
    ep = f"127.0.0.1:{cport}"
    log = open(os.path.join(tmp, "etcd.log"), "w")
    srv = subprocess.Popen(["etcd", "--name", "default", "--data-dir", os.path.join(tmp, "data"),
                            "--listen-client-urls", f"http://{ep}", "--advertise-client-urls", f"http://{ep}",
                            "--listen-peer-urls", f"http://127.0.0.1:{pport}",
                            "--initial-advertise-peer-urls", f"http://127.0.0.1:{pport}",
                            "--initial-cluster", f"default=http://127.0.0.1:{pport}"],
                           stdout=log, stderr=log)
    out = {"load_before": uptime(), "etcd": "etcd 3.4.23, one member, loopback, defaults (fsync on)"}
    try:
        for _ in range(100):
            if ctl(ep, "endpoint", "health").returncode == 0:
                break
            time.sleep(0.1)
        else:
            sys.exit("etcd did not start; see " + log.name)
        out["races"] = []
        for mode in ("ctl", "http"):
            for spec in args.runs.split(","):
                n, m = map(int, spec.split("x"))
                r = race(ep, n, m, mode)
                r["load"] = uptime()
                out["races"].append(r)
                print(f"race {mode} {n}x{m}: {r}", file=sys.stderr)
        out["expiry"] = expiry(ep, args.tasks)
        out["fencing"] = fencing(ep, args.tasks)
        out["load_after"] = uptime()
    finally:
        srv.terminate()
        try:
            srv.wait(20)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    save("etcd_leases", out)


if __name__ == "__main__":
    main()
