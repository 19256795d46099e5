#!/bin/sh
# Times the git layer for isolated runs on a generated repository of about 10,000 files:
# creating a worktree, snapshots, the patch, a conflict preview, landing, removal (the
# `worktree_bench` example), and plain `git worktree add` beside it for comparison.
#
# Usage: bench/worktree.sh [files] [rounds]   (defaults 10000 and 5; run from the repository root)
set -eu
files=${1:-10000}
rounds=${2:-5}
dir=$(mktemp -d "${TMPDIR:-/tmp}/taskboard-bench-worktree-XXXXXX")
trap 'rm -rf "$dir"' EXIT
repo="$dir/repo"
mkdir -p "$repo" "$dir/trees"

# 100 folders of $files/100 text files, 1 to 4 KiB each (about 25 MB), one commit.
python3 - "$repo" "$files" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
per = max(1, n // 100)
for i in range(n):
    d = os.path.join(root, "src", f"d{i // per:03d}")
    os.makedirs(d, exist_ok=True)
    lines = rng.randint(16, 64)
    with open(os.path.join(d, f"f{i % per:03d}.txt" if per <= 1000 else f"f{i}.txt"), "w") as f:
        f.write("".join(f"line {j} of file {i}: {'x' * rng.randint(20, 60)}\n" for j in range(lines)))
PY
git -C "$repo" init -q -b main
git -C "$repo" config user.name bench
git -C "$repo" config user.email bench@localhost
git -C "$repo" add -A
git -C "$repo" commit -qm "generated"
echo "repository: $(git -C "$repo" ls-files | wc -l) files, $(du -sh "$repo" --exclude=.git | cut -f1) checked out"

cargo build --release --quiet --example worktree_bench
"${CARGO_TARGET_DIR:-target}/release/examples/worktree_bench" "$repo" "$dir/trees" "$rounds"

# Plain git for comparison, and what one worktree costs on disk.
start=$(date +%s%N)
git -C "$repo" worktree add -q -b plain "$dir/trees/plain" main
end=$(date +%s%N)
echo "plain git worktree add:      $(( (end - start) / 1000000 )) ms, $(du -sh "$dir/trees/plain" | cut -f1) on disk"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(git --version), load $(cut -d' ' -f1-3 /proc/loadavg)"
