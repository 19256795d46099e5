#!/bin/sh
# Reruns every scaling measurement in turn (a few minutes on 2 cores); each writes
# bench/scaling/results/<name>.json and stops any server it started.
# Needs: postgresql-15, etcd-server, etcd-client, git, python3; run as root (Postgres runs as user postgres).
set -e
cd "$(dirname "$0")"
python3 mkdir_local.py --runs 4x200,8x1000 >/dev/null
python3 pg_leases.py --runs 4x200,8x1000 --fence-tasks 20 >/dev/null
python3 git_refs.py --runs 4x100,8x200 --steal-tasks 20 >/dev/null
python3 etcd_leases.py --runs 4x100,8x200 --tasks 20 >/dev/null
echo "results in $(pwd)/results"
