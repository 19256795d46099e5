"""Helpers shared by the scaling measurements: load, percentiles, a start barrier, free ports.

Standard library only. Every script that starts a server starts it by pid and stops that pid.
"""
import json, os, socket, subprocess, sys, time


def uptime():
    """The load line of `uptime`, to print beside every figure (the machine is shared)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        with open("/proc/loadavg") as f:
            return "loadavg " + f.read().strip()


def pct(values, p):
    """Nearest-rank percentile of a list of numbers (p in 0..100)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def summary_ms(lat_s):
    """p50/p99/max of latencies given in seconds, in milliseconds."""
    return {
        "n": len(lat_s),
        "p50_ms": round(pct(lat_s, 50) * 1000, 3),
        "p99_ms": round(pct(lat_s, 99) * 1000, 3),
        "max_ms": round(max(lat_s) * 1000, 3) if lat_s else None,
    }


def wait_until(t_wall):
    """Sleep until a wall-clock instant: every claimer starts its race at the same moment."""
    d = t_wall - time.time()
    if d > 0:
        time.sleep(d)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def spawn_claimers(argv_for, n):
    """Start n claimer processes (argv_for(i) gives each argv); return their parsed JSON output."""
    procs = [subprocess.Popen(argv_for(i), stdout=subprocess.PIPE, text=True) for i in range(n)]
    out = []
    for p in procs:
        data, _ = p.communicate()
        if p.returncode != 0:
            sys.exit(f"claimer exited {p.returncode}")
        out.append(json.loads(data))
    return out


def count_winners(results):
    """How many claimers won each task, from each claimer's `won` list."""
    winners = {}
    for r in results:
        for t in r["won"]:
            winners[t] = winners.get(t, 0) + 1
    return winners


def save(name, result):
    """Write a result next to the scripts, in results/<name>.json, and print it."""
    d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name + ".json"), "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")
    print(json.dumps(result, indent=1, sort_keys=True))
