#!/bin/sh
# A demo executor for taskboard: does visible, harmless work and writes out/<TASK-ID>.md
# beside the board.
#
# It reads the work packet on stdin (the task's Markdown block, then what it depends on and
# its earlier attempts: `taskboard packet ID` prints it). Two fields in the packet change what
# it does:
#   demo: needs-input   hands the task back: writes a blocked status to $TASKBOARD_RESULT
#   demo: flaky         fails on attempt 1, succeeds on attempt 2
#
# The title and the packet are data: they are printed and matched, never run.
set -eu

id=${TASKBOARD_TASK_ID:?TASKBOARD_TASK_ID is not set; taskboard sets it when it runs this}
title=${TASKBOARD_TASK_TITLE:-}
attempt=${TASKBOARD_ATTEMPT:-1}
board=${TASKBOARD_BOARD:-./task-board.md}

# The ID names the output file, so accept only the task ID grammar.
case $id in
  [A-Za-z]*-[0-9]*) ;;
  *) printf 'demo-executor: refusing unexpected task ID %s\n' "$id" >&2; exit 2 ;;
esac
case $id in
  *[!A-Za-z0-9_-]*) printf 'demo-executor: refusing unexpected task ID %s\n' "$id" >&2; exit 2 ;;
esac

packet=$(cat)

# A field line of the packet: "- demo: value", "* **demo**: value", value maybe in backticks.
has_field() {
  printf '%s\n' "$packet" | grep -Eq "^[[:space:]]*[-*+][[:space:]]+(\*\*)?demo(\*\*)?:(\*\*)?[[:space:]]*\`?$1\`?[[:space:]]*\$"
}

printf '[%s] attempt %s: %s\n' "$id" "$attempt" "$title"
printf '[%s] read a %s-line task packet\n' "$id" "$(printf '%s\n' "$packet" | wc -l | tr -d ' ')"

if has_field needs-input; then
  printf '[%s] this task needs input from a person; handing it back\n' "$id"
  if [ -n "${TASKBOARD_RESULT:-}" ]; then
    printf '%s\n' '{"status":"blocked:you:provide-the-input","note":"The demo executor needs input: write it in the task description, then set the status back to ready."}' >"$TASKBOARD_RESULT"
  fi
  exit 0
fi

if has_field flaky && [ "$attempt" -le 1 ]; then
  printf '[%s] simulating a failure on attempt %s; taskboard will retry\n' "$id" "$attempt" >&2
  exit 1
fi

# Sleep 1 to 3 seconds so the running state is visible on the board.
seconds=$(( $$ % 3 + 1 ))
printf '[%s] working for %s s\n' "$id" "$seconds"
sleep "$seconds"

if [ "${TASKBOARD_ROUTE:-}" = review ] && printf '%s\n' "$packet" | grep -q '^# Under review'; then
  # A review run: the packet carries the attempt's handoff; this demo accepts it.
  printf '[%s] reviewed the attempt: accepted\n' "$id"
  if [ -n "${TASKBOARD_RESULT:-}" ]; then
    printf '%s\n' '{"cost_usd": 0.002, "note": "The demo review accepts every attempt."}' >"$TASKBOARD_RESULT"
  fi
  exit 0
fi

# On a route with workspace = "worktree" it runs in a worktree of its own: its work goes there.
out_dir=${TASKBOARD_WORKTREE:-$(dirname -- "$board")}/out
mkdir -p -- "$out_dir"
{
  printf '# %s\n\n' "$id"
  printf 'Title: %s\n\n' "$title"
  printf 'Done by the demo executor on attempt %s at %s.\n' "$attempt" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$out_dir/$id.md"
printf '[%s] wrote %s\n' "$id" "$out_dir/$id.md"

# Say more than "exit 0": a (pretend) cost and a handoff for the next run or a person.
if [ -n "${TASKBOARD_RESULT:-}" ]; then
  printf '{"cost_usd": 0.01, "tokens_in": 420, "tokens_out": 64, "handoff": {"what": "Wrote out/%s.md", "evidence": {"changed": ["out/%s.md"], "validation": ["the file exists"]}, "next": "Read it and replace the demo executor with a real one"}}\n' "$id" "$id" >"$TASKBOARD_RESULT"
fi
