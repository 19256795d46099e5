#!/usr/bin/env python3
"""Postgres leases: claim by `FOR UPDATE SKIP LOCKED`, lease renewed by heartbeat, attempt as fencing token.

Starts a throw-away PostgreSQL 15 (initdb in a temp dir, `postgres` run as user postgres on a
Unix socket only, no TCP), measures, and stops that pid at the end. Talks to it through `psql`
kept open as a coprocess per claimer (one connection each, like a runtime's pool of one), so a
latency is one statement's round trip, not a process start.

1. Race: for each NxM in --runs, N claimer processes loop claim -> write `done` (fenced) until
   no task is left. Reports duplicates (a task claimed more than once), claims per second and
   claim latency p50/p99.
2. Heartbeat: one holder renews a 2 s lease every 0.5 s for 6 s while another claimer polls
   every 0.1 s: it must get nothing.
3. Fencing: claimer A claims K tasks with a 2 s lease and is SIGSTOPped; after the lease runs
   out B claims them (attempt 2) and writes `done`; A is SIGCONTinued, finishes its work and
   writes its result. With the fence (`WHERE id=$1 AND attempt=$2`) every stale write is
   refused; the control run without it counts the results A overwrote.

Usage: python3 bench/scaling/pg_leases.py [--runs 4x200,8x1000] [--fence-tasks 20]
Needs: postgresql-15 (apt-get install -y postgresql), run as root (it drops to user postgres).
"""
import argparse, json, os, pwd, shutil, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import uptime, summary_ms, wait_until, save, spawn_claimers  # noqa: E402

PGBIN = "/usr/lib/postgresql/15/bin"
PORT = 54329  # Unix socket only (listen_addresses=''), so no TCP port is taken


class Psql:
    """One psql process on one connection; q() sends a statement and reads its rows."""

    def __init__(self, sock):
        self.p = subprocess.Popen(
            ["psql", "-X", "-q", "-A", "-t", "-h", sock, "-p", str(PORT), "-U", "postgres", "-d", "postgres"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def q(self, sql):
        self.p.stdin.write(sql.strip().rstrip(";") + ";\n\\echo __END__\n")
        self.p.stdin.flush()
        rows = []
        while True:
            line = self.p.stdout.readline()
            if line == "":
                raise RuntimeError("psql ended")
            line = line.rstrip("\n")
            if line == "__END__":
                return [r.split("|") for r in rows if r != ""]
            rows.append(line)

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def claim_sql(owner, lease_s):
    # state='claimed' AND lease_until<now(): an expired claim is claimable again; a `done` task
    # is not (the bare `OR lease_until<now()` would hand finished tasks out again).
    return f"""UPDATE tasks SET state='claimed', owner='{owner}',
        lease_until=now()+make_interval(secs=>{lease_s}), attempt=attempt+1
      WHERE id = (SELECT id FROM tasks
                  WHERE state='ready' OR (state='claimed' AND lease_until<now())
                  ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1)
      RETURNING id, attempt"""


def write_sql(tid, attempt, owner, fence=True):
    cond = f"id={tid} AND attempt={attempt}" if fence else f"id={tid}"
    return f"UPDATE tasks SET state='done', result='{owner}' WHERE {cond} RETURNING id"


def renew_sql(tid, attempt, lease_s):
    return (f"UPDATE tasks SET lease_until=now()+make_interval(secs=>{lease_s}) "
            f"WHERE id={tid} AND attempt={attempt} AND state='claimed' RETURNING id")


def reset(db, m):
    db.q("SET client_min_messages=warning")  # no NOTICE for the first DROP
    db.q("DROP TABLE IF EXISTS tasks")
    db.q("""CREATE TABLE tasks(id int PRIMARY KEY, state text NOT NULL DEFAULT 'ready',
            owner text, lease_until timestamptz, attempt int NOT NULL DEFAULT 0, result text)""")
    db.q(f"INSERT INTO tasks(id) SELECT g FROM generate_series(1,{m}) g")


# ---- child roles -------------------------------------------------------------------------

def role_claimer(sock, name, start_at):
    db = Psql(sock)
    db.q("SELECT 1")  # connected before the race starts
    wait_until(start_at)
    claims, lat, refused = [], [], 0
    t0 = time.monotonic()
    while True:
        a = time.monotonic()
        rows = db.q(claim_sql(name, 30))
        b = time.monotonic()
        if not rows:
            break
        tid, att = int(rows[0][0]), int(rows[0][1])
        lat.append(b - a)
        claims.append([tid, att])
        if not db.q(write_sql(tid, att, name)):
            refused += 1
    elapsed = time.monotonic() - t0
    db.close()
    json.dump({"name": name, "claims": claims, "lat": lat, "refused": refused, "elapsed": elapsed}, sys.stdout)


def role_stale(sock, k, lease_s, fence):
    """Claim k tasks, print them, then 'work' 3 s with a heartbeat every 0.5 s, then write."""
    db = Psql(sock)
    held = []
    for _ in range(k):
        r = db.q(claim_sql("A", lease_s))
        held.append((int(r[0][0]), int(r[0][1])))
    print(json.dumps(held), flush=True)
    renew_refused = renew_ok = 0
    end = time.monotonic() + 3.0
    next_beat = time.monotonic() + 0.5
    while time.monotonic() < end:  # a SIGSTOP lands somewhere in here
        time.sleep(0.05)
        if time.monotonic() >= next_beat:
            next_beat = time.monotonic() + 0.5
            for tid, att in held:
                if db.q(renew_sql(tid, att, lease_s)):
                    renew_ok += 1
                else:
                    renew_refused += 1
    accepted = refused = 0
    for tid, att in held:
        if db.q(write_sql(tid, att, "A", fence)):
            accepted += 1
        else:
            refused += 1
    db.close()
    print(json.dumps({"renew_ok": renew_ok, "renew_refused": renew_refused,
                      "writes_accepted": accepted, "writes_refused": refused}), flush=True)


# ---- server ------------------------------------------------------------------------------

def start_server(tmp):
    pg = pwd.getpwnam("postgres")
    data = os.path.join(tmp, "data")
    os.chown(tmp, pg.pw_uid, pg.pw_gid)
    subprocess.run([f"{PGBIN}/initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync"],
                   user="postgres", check=True, stdout=subprocess.DEVNULL)
    log = open(os.path.join(tmp, "server.log"), "w")
    srv = subprocess.Popen([f"{PGBIN}/postgres", "-D", data, "-k", tmp, "-p", str(PORT),
                            "-c", "listen_addresses=", "-c", "max_connections=50"],
                           user="postgres", stdout=log, stderr=log)
    for _ in range(200):
        if subprocess.run(["psql", "-X", "-h", tmp, "-p", str(PORT), "-U", "postgres", "-c", "select 1"],
                          capture_output=True).returncode == 0:
            return srv
        time.sleep(0.1)
    srv.kill()
    sys.exit("postgres did not start; see " + log.name)


def stop_server(srv):
    srv.send_signal(signal.SIGINT)  # fast shutdown
    try:
        srv.wait(30)
    except subprocess.TimeoutExpired:
        srv.kill()
        srv.wait()


def race(sock, n, m):
    db = Psql(sock)
    reset(db, m)
    start_at = time.time() + 1.5
    me = os.path.abspath(__file__)
    res = spawn_claimers(lambda i: [sys.executable, me, "--role", "claimer", sock, f"c{i}", str(start_at)], n)
    per_task = {}
    for r in res:
        for tid, att in r["claims"]:
            per_task[tid] = per_task.get(tid, 0) + 1
    lat = [x for r in res for x in r["lat"]]
    total = sum(len(r["claims"]) for r in res)
    wall = max(r["elapsed"] for r in res)
    dbrows = db.q("SELECT count(*) FILTER (WHERE state='done'), count(*) FILTER (WHERE attempt<>1) FROM tasks")
    db.close()
    return {
        "claimers": n, "tasks": m, "claims": total,
        "duplicates": sum(c - 1 for c in per_task.values() if c > 1),
        "tasks_never_claimed": m - len(per_task),
        "done_in_db": int(dbrows[0][0]), "attempt_not_1_in_db": int(dbrows[0][1]),
        "fenced_writes_refused": sum(r["refused"] for r in res),
        "claims_per_s": round(total / wall, 1),
        "per_claimer": [len(r["claims"]) for r in res],
        "claim_latency": summary_ms(lat),
    }


def heartbeat_check(sock):
    holder, other = Psql(sock), Psql(sock)
    reset(holder, 1)
    tid, att = map(int, holder.q(claim_sql("H", 2))[0])
    stolen = polls = renewals = 0
    end = time.monotonic() + 6.0
    next_beat = time.monotonic() + 0.5
    while time.monotonic() < end:
        if time.monotonic() >= next_beat:
            next_beat += 0.5
            renewals += len(holder.q(renew_sql(tid, att, 2)))
        polls += 1
        if other.q(claim_sql("O", 2)):
            stolen += 1
        time.sleep(0.1)
    holder.close(), other.close()
    return {"lease_s": 2, "held_s": 6, "renewals": renewals, "polls_by_other": polls, "claims_by_other": stolen}


def fencing_check(sock, k, fence):
    b = Psql(sock)
    reset(b, k)
    me = os.path.abspath(__file__)
    a = subprocess.Popen([sys.executable, me, "--role", "stale", sock, str(k), "2", "1" if fence else "0"],
                         stdout=subprocess.PIPE, text=True)
    held = json.loads(a.stdout.readline())
    os.kill(a.pid, signal.SIGSTOP)
    time.sleep(3.0)  # past A's 2 s lease
    b_claims = 0
    while True:
        r = b.q(claim_sql("B", 30))
        if not r:
            break
        tid, att = int(r[0][0]), int(r[0][1])
        b_claims += 1
        b.q(write_sql(tid, att, "B"))
    os.kill(a.pid, signal.SIGCONT)
    a_res = json.loads(a.stdout.readline())
    a.wait()
    final = b.q("SELECT count(*) FILTER (WHERE result='B'), count(*) FILTER (WHERE result='A') FROM tasks")
    b.close()
    return {"fence": fence, "tasks": k, "a_claims": len(held), "b_claims_after_expiry": b_claims,
            **{"a_" + x: y for x, y in a_res.items()},
            "final_result_B": int(final[0][0]), "final_result_A_stale_overwrote": int(final[0][1])}


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--role":
        if sys.argv[2] == "claimer":
            return role_claimer(sys.argv[3], sys.argv[4], float(sys.argv[5]))
        return role_stale(sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "1")
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="4x200,8x1000")
    ap.add_argument("--fence-tasks", type=int, default=20)
    args = ap.parse_args()
    if not os.path.exists(f"{PGBIN}/postgres"):
        sys.exit("PostgreSQL 15 not found: apt-get install -y postgresql")
    tmp = tempfile.mkdtemp(prefix="tb-pg-")
    srv = start_server(tmp)
    out = {"load_before": uptime(), "server": "PostgreSQL 15, Unix socket, defaults (fsync on)"}
    try:
        out["races"] = []
        for spec in args.runs.split(","):
            n, m = map(int, spec.split("x"))
            r = race(tmp, n, m)
            r["load"] = uptime()
            out["races"].append(r)
            print(f"race {n}x{m}: {r}", file=sys.stderr)
        out["heartbeat"] = heartbeat_check(tmp)
        out["fencing"] = fencing_check(tmp, args.fence_tasks, True)
        out["no_fencing_control"] = fencing_check(tmp, args.fence_tasks, False)
        out["load_after"] = uptime()
    finally:
        stop_server(srv)
        shutil.rmtree(tmp, ignore_errors=True)
    save("pg_leases", out)


if __name__ == "__main__":
    main()
