#!/usr/bin/env bash
# parley_sim's command line as a user types it under `bazel run`: a relative
# --scenario is read from the directory the command was typed in
# (BUILD_WORKING_DIRECTORY), so the replay command a failing scenario test
# prints works as printed; a missing or corrupt scenario file is a clear error.
set -uo pipefail
sim="$PWD/$1"
scenario="$PWD/$2"
work="$TEST_TMPDIR/typed-here"
mkdir -p "$work/scenarios"
cp "$scenario" "$work/scenarios/mine.textproto"
fail() { echo "FAIL: $*"; exit 1; }

out=$(cd / && BUILD_WORKING_DIRECTORY="$work" "$sim" run --seed=1 \
      --scenario=scenarios/mine.textproto --report_dir=reports 2>&1)
code=$?
[[ $code -eq 0 || $code -eq 1 ]] || fail "run exited $code: $out"
grep -q "scenario=smoke seed=1" <<<"$out" || fail "the scenario was not the file's: $out"

out=$(cd / && BUILD_WORKING_DIRECTORY="$work" "$sim" run --seed=1 --scenario=scenarios/none.textproto 2>&1)
[[ $? -eq 2 ]] || fail "a missing scenario should exit 2"
grep -q "cannot read scenario file $work/scenarios/none.textproto" <<<"$out" || fail "unclear error: $out"

echo "this is { not a scenario" > "$work/scenarios/bad.textproto"
out=$(cd / && BUILD_WORKING_DIRECTORY="$work" "$sim" run --seed=1 --scenario=scenarios/bad.textproto 2>&1)
[[ $? -eq 2 ]] || fail "a corrupt scenario should exit 2"

# A swarm lists its failures in seed order whatever order its threads finish
# in, and says what its determinism check did.
out=$(cd / && BUILD_WORKING_DIRECTORY="$work" "$sim" swarm --seeds=3 --jobs=2 --check_determinism \
      --bug=no_client_dedup --scenario=scenarios/mine.textproto --report_dir=reports 2>/dev/null)
seeds=$(sed -n 's/^FAIL checker=[a-z_]* seed=\([0-9]*\).*/\1/p' <<<"$out" | uniq | tr '\n' ' ')
[[ "$seeds" == "1 2 3 " ]] || fail "swarm failures not in seed order (got: $seeds): $out"
grep -q "^determinism: 3 seeds run twice, hashes equal$" <<<"$out" || fail "no determinism line: $out"
echo "PASS"
