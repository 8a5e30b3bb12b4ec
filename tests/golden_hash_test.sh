#!/usr/bin/env bash
# Determinism across builds: the simulator built in fastbuild (as tests build)
# and in opt (as `bazel run` builds, so as a printed replay runs) prints the
# same event hash for the same scenario and seed, and both match
# tests/golden_hashes.txt.
#
#   golden_hash_test.sh FASTBUILD_SIM OPT_SIM GOLDEN SMOKE DEFAULT   the test
#   golden_hash_test.sh --update SIM SMOKE DEFAULT                   rewrites the golden file
#                                     (bazel run //tests:update_golden_hashes)
set -uo pipefail

fail() { echo "FAIL: $*"; exit 1; }

# hashes SIM SMOKE DEFAULT: one line "<scenario> <seed> <hash>" per run.
hashes() {
  local sim=$1 smoke=$2 default=$3 reports=$4 seed out
  for seed in 1 2 3; do
    out=$("$sim" run --seed="$seed" --scenario="$smoke" --report_dir="$reports" 2>&1)
    sed -n "s/^RUN seed=\([0-9]*\) .* hash=\([0-9a-f]*\)$/smoke \1 \2/p" <<<"$out" | grep . ||
      { echo "no RUN line from $sim (smoke seed $seed): $out" >&2; return 1; }
  done
  out=$("$sim" run --seed=1 --scenario="$default" --report_dir="$reports" 2>&1)
  sed -n "s/^RUN seed=\([0-9]*\) .* hash=\([0-9a-f]*\)$/default \1 \2/p" <<<"$out" | grep . ||
    { echo "no RUN line from $sim (default seed 1): $out" >&2; return 1; }
}

if [[ "${1:-}" == "--update" ]]; then
  [[ -n "${BUILD_WORKSPACE_DIRECTORY:-}" ]] || fail "run it as: bazel run //tests:update_golden_hashes"
  golden="$BUILD_WORKSPACE_DIRECTORY/tests/golden_hashes.txt"
  tmp=$(mktemp -d)
  lines=$(hashes "$PWD/$2" "$PWD/$3" "$PWD/$4" "$tmp/reports") || fail "the simulator did not run"
  rm -rf "$tmp"
  {
    sed -n '/^#/p' "$golden"
    echo "$lines"
  } > "$golden.new" && mv "$golden.new" "$golden"
  echo "wrote $golden:"
  echo "$lines"
  exit 0
fi

fast="$PWD/$1" opt="$PWD/$2" golden="$PWD/$3" smoke="$PWD/$4" default="$PWD/$5"
fast_lines=$(hashes "$fast" "$smoke" "$default" "$TEST_TMPDIR/fastbuild") || fail "the fastbuild simulator did not run"
opt_lines=$(hashes "$opt" "$smoke" "$default" "$TEST_TMPDIR/opt") || fail "the opt simulator did not run"
echo "fastbuild:"; echo "$fast_lines"
echo "opt:"; echo "$opt_lines"
if [[ "$fast_lines" != "$opt_lines" ]]; then
  diff <(echo "$fast_lines") <(echo "$opt_lines")
  fail "fastbuild and opt builds of //sim:parley_sim disagree (lines above: < fastbuild, > opt):" \
       "something in sim/ or core/ depends on the compilation mode (floating point, undefined" \
       "behaviour, uninitialised memory, hash or pointer order)"
fi
expected=$(grep -v '^#' "$golden")
if [[ "$fast_lines" != "$expected" ]]; then
  diff <(echo "$expected") <(echo "$fast_lines")
  fail "the hashes differ from tests/golden_hashes.txt (< golden, > now). If the simulation" \
       "changed on purpose, regenerate the file with 'bazel run //tests:update_golden_hashes'" \
       "and commit it with the change; if not, the change broke determinism."
fi
echo "PASS: fastbuild and opt agree with tests/golden_hashes.txt"
