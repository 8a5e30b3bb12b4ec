#!/bin/bash
# parley_real's command line: a scenario it cannot honour is refused up front
# with exit status 2, naming each part; a missing --scenario is a usage error;
# a work dir that is not empty is refused.
set -u
REAL="$1"
SMOKE="$2"
CRASHES="$3"
out="$TEST_TMPDIR/cli"
fail=0
"$REAL" --scenario="$SMOKE" --out="$out" >"$TEST_TMPDIR/stdout" 2>"$TEST_TMPDIR/stderr"
code=$?
if [ "$code" != 2 ]; then echo "refusal: exit $code, want 2"; cat "$TEST_TMPDIR/stderr"; fail=1; fi
for name in faults.clock_skew_max_ms faults.loss_max topology.user_replicas --drop_unsupported; do
  grep -q -- "$name" "$TEST_TMPDIR/stderr" || { echo "refusal does not name $name"; fail=1; }
done
if [ -e "$out" ]; then echo "a refused run must start nothing, but $out exists"; fail=1; fi
"$REAL" >/dev/null 2>"$TEST_TMPDIR/stderr2"
code=$?
if [ "$code" != 2 ]; then echo "no --scenario: exit $code, want 2"; fail=1; fi
grep -q -- "--scenario is required" "$TEST_TMPDIR/stderr2" || { echo "no usage message"; fail=1; }
# A used work dir is refused before anything starts.
mkdir -p "$TEST_TMPDIR/used" && touch "$TEST_TMPDIR/used/leftover"
"$REAL" --scenario="$CRASHES" --out="$TEST_TMPDIR/used" >/dev/null 2>"$TEST_TMPDIR/stderr3"
code=$?
if [ "$code" != 2 ]; then echo "used --out: exit $code, want 2"; cat "$TEST_TMPDIR/stderr3"; fail=1; fi
grep -q "is not empty" "$TEST_TMPDIR/stderr3" || { echo "used --out: no explanation"; fail=1; }
[ -e "$TEST_TMPDIR/used/nats" ] && { echo "used --out: something was started"; fail=1; }
[ "$fail" = 0 ] && echo PASS
exit $fail
