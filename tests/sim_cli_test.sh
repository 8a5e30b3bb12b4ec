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

# A failing swarm groups its failures by checker: per checker one line with
# how many seeds failed it and which, the first failure's explanation and
# entry, and one replay and one shrink command (the first seed's); the
# machine-readable FAIL lines stay, one per (checker, seed).
out=$(cd / && BUILD_WORKING_DIRECTORY="$work" "$sim" swarm --seeds=4 --jobs=2 \
      --bug=ack_before_commit --scenario=scenarios/mine.textproto --report_dir=reports 2>/dev/null)
[[ $? -eq 1 ]] || fail "a failing swarm should exit 1: $out"
checkers=$(sed -n 's/^FAIL checker=\([a-z_]*\) seed=[0-9]*$/\1/p' <<<"$out" | sort -u)
[[ -n "$checkers" ]] || fail "no FAIL lines: $out"
[[ $(grep -c "^FAIL checker=" <<<"$out") -eq \
   $(sed -n 's/^FAIL checker=\([a-z_]*\) seed=\([0-9]*\)$/\1 \2/p' <<<"$out" | sort -u | wc -l) ]] ||
  fail "a (checker, seed) printed twice: $out"
for c in $checkers; do
  first=$(sed -n "s/^FAIL checker=$c seed=\([0-9]*\)$/\1/p" <<<"$out" | head -1)
  n=$(grep -c "^FAIL checker=$c seed=" <<<"$out")
  [[ $(grep -c "^$c: " <<<"$out") -eq 1 ]] || fail "$c: not one group: $out"
  grep -q "^$c: $n of 4 seeds failed (seeds\? [0-9 ]*)$" <<<"$out" || fail "$c: no count of $n: $out"
  grep -A4 "^$c: " <<<"$out" | grep -q "^  first, seed $first: ." || fail "$c: no explanation: $out"
  grep -A4 "^$c: " <<<"$out" | grep -q "^  shrink: .* shrink --seed=$first " ||
    fail "$c: no shrink command for seed $first: $out"
done
[[ $(grep -c "^  shrink: " <<<"$out") -eq $(wc -w <<<"$checkers") ]] ||
  fail "not one shrink command per checker: $out"
[[ $(grep -c "^  replay: " <<<"$out") -eq $(wc -w <<<"$checkers") ]] ||
  fail "not one replay command per checker: $out"
grep -q "^  entry: #[0-9]* t=[0-9]*ms [A-Z_]* client\.user[0-9]*\.d[0-9] (user [0-9]*) " <<<"$out" ||
  fail "no offending entry naming its client as the checkers do: $out"

# Strict scenarios: every bad input is refused before anything runs, exit 2,
# with the field (and what is allowed) in the message.
refused() {  # refused <label> <file> <words...>
  local label=$1 file=$2; shift 2
  local out code
  out=$(cd / && BUILD_WORKING_DIRECTORY="$work" "$sim" run --seed=1 --scenario="$file" \
        --report_dir=reports 2>&1)
  code=$?
  [[ $code -eq 2 ]] || fail "$label: exited $code, not 2: $out"
  for w in "$@"; do grep -qF -- "$w" <<<"$out" || fail "$label: no '$w' in: $out"; done
  ! grep -q "^config:" <<<"$out" || fail "$label: it ran: $out"
}
variant() {  # variant <name> <sed expression>: a copy of the smoke scenario, changed
  sed "$2" "$work/scenarios/mine.textproto" > "$work/scenarios/$1.textproto"
  grep -q . <(diff "$work/scenarios/mine.textproto" "$work/scenarios/$1.textproto") ||
    fail "variant $1 changed nothing"
}
script() {  # script <name> <ScriptedFault text>: the smoke scenario with that fault
  variant "$1" "s/random: true/random: true script { $2 }/"
}
script no_gw7 'at_s: 1 kind: CRASH target: "gw.7" duration_s: 2'
refused "gw.7 with 2 gateways" scenarios/no_gw7.textproto 'faults.script[0].target "gw.7"' gw.2
script no_svc 'at_s: 1 kind: PARTITION_NODE target: "svc.nosuch.9" duration_s: 2'
refused "svc.nosuch.9" scenarios/no_svc.textproto 'faults.script[0].target "svc.nosuch.9"'
script no_target 'at_s: 1 kind: CRASH duration_s: 2'
refused "CRASH without a target" scenarios/no_target.textproto 'faults.script[0]: CRASH needs a target'
script no_client 'at_s: 1 kind: CLIENT_OFFLINE target: "client.user30.d1" duration_s: 2'
refused "a client past the users" scenarios/no_client.textproto 'client.user30.d1' 'N < 30'
script too_late 'at_s: 500 kind: BUS_STORM'
refused "a fault after the end" scenarios/too_late.textproto 'faults.script[0].at_s is 500, must be in [0, 20)'
variant gateways0 's/gateways: 2/gateways: 0/'
refused "gateways: 0" scenarios/gateways0.textproto 'topology.gateways is 0, must be in [1, 1000]'
variant shards0 's/ shards: 2/ shards: 0/'
refused "shards: 0" scenarios/shards0.textproto 'topology.shards is 0, must be in [1, 1000]'
variant replicas0 's/user_replicas: 2/user_replicas: 0/'
refused "user_replicas: 0" scenarios/replicas0.textproto 'topology.user_replicas is 0'
variant latency 's/latency_ms: 1/latency_ms: -50/'
refused "latency_ms: -50" scenarios/latency.textproto 'network.latency_ms is -50, must be in [0, 60000]'
variant settle 's/settle_s: 30/settle_s: -10/'
refused "settle_s: -10" scenarios/settle.textproto 'settle_s is -10, must be in [0, 86400]'
variant loss 's/loss_max: 0.05/loss_max: 1.5/'
refused "loss_max: 1.5" scenarios/loss.textproto 'faults.loss_max is 1.5, must be in [0, 1]'
variant private 's/private_fraction: 0.5/private_fraction: 3/'
refused "private_fraction: 3" scenarios/private.textproto 'workload.private_fraction is 3, must be in [0, 1]'
variant checker '$a checkers: "no_such_checker"'
refused "an unknown checker" scenarios/checker.textproto 'checkers[0] "no_such_checker" is no checker' no_lost_ack
variant bug '$a bug: "no_such_bug"'
refused "an unknown bug" scenarios/bug.textproto 'no_such_bug'
echo 'workload { duration_s: 5 }' > "$work/scenarios/partial.textproto"
refused "a partial scenario" scenarios/partial.textproto 'workload.users is 0' 'base: "default"'
echo 'base: "nosuch" workload { users: 3 }' > "$work/scenarios/orphan.textproto"
refused "an unknown base" scenarios/orphan.textproto 'base "nosuch"'

# Usage errors exit 2, help exits 0.
usage() {  # usage <label> <expected exit> <words> <args...>
  local label=$1 want=$2 words=$3; shift 3
  local out code
  out=$(cd "$work" && "$sim" "$@" 2>&1)
  code=$?
  [[ $code -eq $want ]] || fail "$label: exited $code, not $want: $out"
  grep -qF -- "$words" <<<"$out" || fail "$label: no '$words' in: $out"
}
usage "--help" 0 "parley_sim <command>" --help
usage "help" 0 "exit status: 0 passed, 1 a seed failed, 2 usage or scenario error" help
usage "an unknown flag" 2 "nosuchflag" run --nosuchflag
usage "a bad flag value" 2 "seed" run --seed=x
usage "no command" 2 "no command"
usage "an unknown command" 2 "unknown command 'walk'" walk
usage "swarm --seeds=0" 2 "--seeds is 0" swarm --seeds=0
usage "shrink without --seed" 2 "shrink needs --seed" shrink --bug=no_client_dedup
[[ ! -e "$work/parley-reports" ]] || fail "a usage error wrote a report"

# A scenario built on another (base: a file beside it) runs; reports never
# overwrite each other: the planted bug is in the folder's name, and a folder
# that exists gets -2, -3, ...
echo 'base: "mine" name: "small" workload { users: 6 duration_s: 2 } settle_s: 5' \
  > "$work/scenarios/small.textproto"
reports=()
for bug in "" "" no_client_dedup ignore_gap; do
  out=$(cd / && BUILD_WORKING_DIRECTORY="$work" "$sim" run --seed=1 ${bug:+--bug=$bug} \
        --scenario=scenarios/small.textproto --report_dir=reports 2>&1)
  code=$?
  [[ $code -eq 0 || $code -eq 1 ]] || fail "small run exited $code: $out"
  grep -q "scenario=small seed=1" <<<"$out" || fail "small: not the based scenario: $out"
  reports+=("$(sed -n 's/^report: //p' <<<"$out")")
done
[[ "${reports[0]}" == "$work/reports/run-small-1/report.html" ]] || fail "first report: ${reports[*]}"
[[ "${reports[1]}" == "$work/reports/run-small-1-2/report.html" ]] || fail "second report: ${reports[*]}"
[[ "${reports[2]}" == "$work/reports/run-small-1-no_client_dedup/report.html" ]] || fail "bug report: ${reports[*]}"
[[ "${reports[3]}" == "$work/reports/run-small-1-ignore_gap/report.html" ]] || fail "bug report: ${reports[*]}"
for r in "${reports[@]}"; do [[ -s "$r" ]] || fail "no report at $r"; done
# --event_kinds lists where the events went, most first, and leaves the run as it was.
plain=$(cd / && BUILD_WORKING_DIRECTORY="$work" "$sim" run --seed=1 \
        --scenario=scenarios/small.textproto --report_dir=reports 2>/dev/null | grep "^RUN")
out=$(cd / && BUILD_WORKING_DIRECTORY="$work" "$sim" run --seed=1 --event_kinds \
      --scenario=scenarios/small.textproto --report_dir=reports 2>/dev/null)
grep -q "^events by kind ([0-9]* kinds, [0-9]* events):$" <<<"$out" || fail "no events by kind: $out"
grep -q "%  message ->gw request " <<<"$out" || fail "no message kinds: $out"
[[ "$(grep "^RUN" <<<"$out" | sed 's/ wall_s=[0-9.]*//')" == "$(sed 's/ wall_s=[0-9.]*//' <<<"$plain")" ]] ||
  fail "--event_kinds changed the run: $plain vs $(grep "^RUN" <<<"$out")"
events=$(sed -n 's/^RUN .* events=\([0-9]*\) .*/\1/p' <<<"$out")
sum=$(sed -n '/^events by kind/,/^[^ ]/p' <<<"$out" | awk '/^ +[0-9]+ /{s+=$1} END{print s}')
[[ "$sum" == "$events" ]] || fail "event kinds sum to $sum, not $events"
# Two shrinks of the same failure: two folders.
for n in 1 2; do
  out=$(cd / && BUILD_WORKING_DIRECTORY="$work" "$sim" shrink --seed=1 --bug=no_client_dedup \
        --max_runs=2 --scenario=scenarios/mine.textproto --report_dir=reports 2>/dev/null)
  [[ $? -eq 1 ]] || fail "shrink $n did not reproduce: $out"
done
[[ -s "$work/reports/shrink-smoke-1-no_client_dedup/shrunk.textproto" &&
   -s "$work/reports/shrink-smoke-1-no_client_dedup-2/shrunk.textproto" ]] ||
  fail "two shrinks, not two folders: $(ls "$work/reports")"
# A shrink's report times the shrunk run it shows (not a wall time of zero).
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["wallSeconds"] > 0, r.get("wallSeconds")' \
  "$work/reports/shrink-smoke-1-no_client_dedup/report.json" || fail "a shrink report without wall time"
# A shrink says per accepted step what it removed, its runs and seconds, and
# at the end what is left and the totals; within its budget; and what it
# writes loads again and fails the same checker when replayed.
out=$(cd / && BUILD_WORKING_DIRECTORY="$work" "$sim" shrink --seed=1 --bug=no_client_dedup \
      --max_runs=6 --scenario=scenarios/mine.textproto --out=shrunk.textproto --report_dir=reports 2>&1)
[[ $? -eq 1 ]] || fail "shrink did not reproduce: $out"
grep -qE "^step 1: removed .+: size [0-9]+ -> [0-9]+ \([0-9]+ runs?, [0-9.]+ s\)$" <<<"$out" ||
  fail "no step line saying what it removed: $out"
grep -qE "^left: users=[0-9]+ groups=[0-9]+ faults=[0-9]+ sends=" <<<"$out" || fail "no left line: $out"
grep -qE "^SHRINK checker=no_duplicates size=[0-9]+->[0-9]+ \([0-9.]+%\) steps=[1-9][0-9]* runs=6 wall_s=[0-9.]+$" \
  <<<"$out" || fail "no SHRINK totals line (runs=6): $out"
out=$(cd / && BUILD_WORKING_DIRECTORY="$work" "$sim" replay --seed=1 --scenario=shrunk.textproto \
      --report_dir=reports 2>&1)
[[ $? -eq 1 ]] || fail "the shrunk scenario does not fail: $out"
grep -q "^FAIL checker=no_duplicates " <<<"$out" || fail "the shrunk scenario fails otherwise: $out"
# A send filter out of order is refused, naming the field and the range.
echo 'base: "mine" workload { send_filter { keep: [4, 2] } }' > "$work/scenarios/cut.textproto"
usage "a send filter out of order" 2 \
  "workload.send_filter.keep[1] is 2, must be in [5, 1000000000] (send numbers, strictly increasing)" \
  shrink --seed=1 --scenario=scenarios/cut.textproto --report_dir=reports
# Outputs for CI: --junit writes valid JUnit XML, one testcase per seed and a
# <failure> per failing seed with its checker and replay command; report.json
# holds a record per seed with its numbers as JSON numbers, and the
# determinism re-check.
cat > "$work/seeds.txt" <<'SEEDS'
# seeds to re-run
5

3   # a comment after a seed
1
SEEDS
out=$(cd / && BUILD_WORKING_DIRECTORY="$work" "$sim" swarm --seeds_file=seeds.txt --jobs=2 \
      --recheck_every=3 --bug=no_client_dedup --scenario=scenarios/mine.textproto \
      --report_dir=ci --junit=ci.xml 2>/dev/null)
code=$?
[[ $code -eq 1 ]] || fail "failing seeds_file swarm exited $code: $out"
seeds=$(sed -n 's/^FAIL checker=[a-z_]* seed=\([0-9]*\).*/\1/p' <<<"$out" | uniq | tr '\n' ' ')
[[ "$seeds" == "5 3 1 " ]] || fail "seeds_file order not kept (got: $seeds): $out"
grep -q "^junit: $work/ci.xml$" <<<"$out" || fail "no junit line: $out"
python3 - "$work/ci.xml" "$work"/ci/swarm-*/report.json <<'PY' || fail "junit or report.json: $out"
import json, sys, xml.etree.ElementTree as ET
suite = ET.parse(sys.argv[1]).getroot()
assert suite.tag == "testsuite", suite.tag
cases = suite.findall("testcase")
assert [c.get("name") for c in cases] == ["seed 5", "seed 3", "seed 1"], cases
assert suite.get("tests") == "3" and suite.get("failures") == "3", suite.attrib
for c in cases:
    f = c.findall("failure")
    assert len(f) == 1, c.get("name")
    assert "no_duplicates" in f[0].get("message"), f[0].attrib
    assert "replay --seed=" + c.get("name").split()[1] in f[0].text, f[0].text
    float(c.get("time"))
r = json.load(open(sys.argv[2]))
recs = r["seedRecords"]
assert [x["seed"] for x in recs] == [5, 3, 1], recs
for x in recs:
    assert isinstance(x["events"], int) and x["events"] > 0, x
    assert x["verdict"] == "failed" and x["checkers"] == ["no_duplicates"], x
    assert len(x["hash"]) == 16, x
    mix = {m["name"]: m["value"] for m in x["faultMix"]}
    assert isinstance(mix["loss_ppm"], int) and isinstance(mix["duration_max_us"], int), mix
    assert 0 <= x["startedS"] < 3600 and x["wallSeconds"] > 0, x
assert [x["runTwice"] for x in recs] == [False, True, False], recs
assert isinstance(r["seeds"], int) and r["seeds"] == 3 and r["failed"] == 3, r["seeds"]
assert isinstance(r["events"], int), r["events"]
d = r["determinism"]
assert d["seedsRunTwice"] == 1 and d["differing"] == 0 and d["result"] == "hashes equal", d
t = r["failures"][0]["window"][0]["timeUs"]
assert isinstance(t, int) and 0 <= t < 3600 * 10**6, t  # from the run's start
PY
# A passing run's JUnit file: one testcase, no failure.
out=$(cd / && BUILD_WORKING_DIRECTORY="$work" "$sim" run --seed=1 --scenario=scenarios/mine.textproto \
      --report_dir=ci --junit=run.xml 2>&1)
code=$?
python3 - "$work/run.xml" $code <<'PY' || fail "run junit: $out"
import sys, xml.etree.ElementTree as ET
suite = ET.parse(sys.argv[1]).getroot()
cases = suite.findall("testcase")
assert [c.get("name") for c in cases] == ["seed 1"], cases
assert len(cases[0].findall("failure")) == (0 if sys.argv[2] == "0" else 1)
PY
# A bad line in a seeds file is a usage error naming the line.
printf '1\n2\nthree\n' > "$work/bad_seeds.txt"
usage "a bad seeds_file line" 2 "bad_seeds.txt line 3: 'three' is not a seed" \
  swarm --seeds_file=bad_seeds.txt
printf '# nothing\n\n' > "$work/no_seeds.txt"
usage "an empty seeds_file" 2 "lists no seeds" swarm --seeds_file=no_seeds.txt
usage "a missing seeds_file" 2 "cannot read --seeds_file" swarm --seeds_file=none.txt
usage "fail_fast with run" 2 "--fail_fast is for swarm" run --fail_fast
# --fail_fast: one job, every seed fails, so only the first runs; exit 1.
out=$(cd / && BUILD_WORKING_DIRECTORY="$work" "$sim" swarm --seeds=4 --jobs=1 --fail_fast \
      --bug=no_client_dedup --scenario=scenarios/mine.textproto --report_dir=ci \
      --junit=ff.xml 2>/dev/null)
code=$?
[[ $code -eq 1 ]] || fail "fail_fast exited $code: $out"
grep -q "^fail_fast: 3 of 4 seeds skipped after the first failure$" <<<"$out" ||
  fail "fail_fast did not stop after one seed: $out"
grep -q "^SWARM seeds=1 passed=0 failed=1 skipped=3 " <<<"$out" || fail "fail_fast summary: $out"
python3 - "$work/ff.xml" <<'PY' || fail "fail_fast junit: $out"
import sys, xml.etree.ElementTree as ET
suite = ET.parse(sys.argv[1]).getroot()
cases = suite.findall("testcase")
assert len(cases) == 4 and suite.get("failures") == "1" and suite.get("skipped") == "3"
assert [len(c.findall("skipped")) for c in cases] == [0, 1, 1, 1]
PY
# replay: the entries a violation points to are marked '>>' with the checker
# at the end, the summary lists each violation with its entry, and filters
# (combinable; FAULT entries pass all but the time filter) print a few lines.
replay() {  # replay <args...>: a failing replay of the smoke scenario
  cd / && BUILD_WORKING_DIRECTORY="$work" "$sim" replay --seed=1 --bug=no_client_dedup \
    --scenario=scenarios/mine.textproto --report_dir=replays "$@" 2>/dev/null
}
entries() { grep -E '^(  |>> )#[0-9]+ t=' <<<"$1"; }
out=$(replay)
[[ $? -eq 1 ]] || fail "a failing replay should exit 1: $out"
fail_line=$(grep -m1 "^FAIL checker=" <<<"$out")
checker=$(sed -n 's/^FAIL checker=\([a-z_]*\) .*/\1/p' <<<"$fail_line")
n=$(sed -n 's/.* entry=#\([0-9]*\) .*/\1/p' <<<"$fail_line")
at=' entry=#[0-9]* t=[0-9]*ms [A-Z_]* '
client=$(sed -n "s/.*$at\\(client\\.user[0-9]*\\.d[0-9]*\\) .*/\\1/p" <<<"$fail_line")
user=$(sed -n "s/.*${at}client[^ ]* (user \\([0-9]*\\)).*/\\1/p" <<<"$fail_line")
conv=$(sed -n "s/.*${at}client[^ ]* (user [0-9]*) \\([pg]:[0-9:]*\\)#.*/\\1/p" <<<"$fail_line")
[[ -n "$checker" && -n "$n" && -n "$client" && -n "$user" && -n "$conv" ]] ||
  fail "cannot read the FAIL line: $fail_line"
total=$(entries "$out" | wc -l)
grep -q "^shown: $total of $total entries and [0-9]* of [0-9]* network steps (filters: none)$" <<<"$out" || fail "no shown line: $out"
grep -q "^>> #$n t=.* <<< .*$checker" <<<"$out" || fail "entry #$n not marked: $out"
grep -q "^violation: checker=$checker entry=#$n$" <<<"$out" || fail "no violation summary: $out"

# The history explains itself: every delivered copy names how it came (push,
# sync or its send's ack) and from which gateway, and what the network did
# to envelopes carrying a conversation's message prints between the entries.
[[ $(entries "$out" | grep " DELIVERED " | grep -Evc " via (push|sync|ack) from gw\.[0-9]+( |$)") -eq 0 ]] ||
  fail "a DELIVERED entry without its origin: $out"
net() { grep -E '^  ~[0-9]+ t=[0-9]+ms NETWORK (LOST|BLOCKED|DUPLICATED|DELAYED|RECEIVER_DOWN) ' <<<"$1"; }
[[ $(net "$out" | wc -l) -ge 1 ]] || fail "no network steps: $out"
[[ $(net "$out" | wc -l) -eq $(grep -c ' NETWORK ' <<<"$out") ]] || fail "a malformed network step: $out"
grep -q "^shown: $total of $total entries and $(net "$out" | wc -l) of $(net "$out" | wc -l) network steps" \
  <<<"$out" || fail "network steps not counted: $out"
if [[ $checker == no_duplicates ]]; then
  # The duplicate: a second copy on the wire, or two copies by different ways.
  one=$(replay --conversation=$conv --client=$client)
  seq=$(sed -n 's/.* DELIVERED [^ ]* (user [0-9]*) [^#]*#\([0-9]*\) .*/\1/p' <<<"$fail_line")
  origins=$(entries "$one" | grep " DELIVERED $client .* $conv#$seq " | sed 's/.* via //' | sort -u | wc -l)
  net "$one" | grep -q "DUPLICATED .* -> $client (user $user) $conv#$seq:" || [[ $origins -ge 2 ]] ||
    fail "nothing explains the duplicate of $conv#$seq at $client: $one"
fi

out=$(replay --around=$n:3)
lines=$(entries "$out" | grep -vc " FAULT ")
[[ $lines -le 7 && $lines -ge 4 ]] || fail "--around=$n:3 printed $lines entries: $out"
grep -q "^>> #$n t=.* <<< .*$checker" <<<"$out" || fail "--around: entry #$n not marked: $out"
grep -q "^shown: [0-9]* of $total entries and [0-9]* of [0-9]* network steps (filters: around=$n:3)$" <<<"$out" || fail "--around: $out"
out=$(replay --around=$n)
lines=$(entries "$out" | grep -vc " FAULT ")
[[ $lines -le 41 && $lines -ge 21 ]] || fail "--around=$n printed $lines entries: $out"

out=$(replay --client=$client)
[[ $(entries "$out" | grep -v " FAULT " | grep -Evc " $client( |$)") -eq 0 ]] ||
  fail "--client=$client: $out"
[[ $(entries "$out" | grep -Ec " $client( |$)") -ge 1 ]] || fail "--client=$client: none: $out"
grep -q "^>> #$n " <<<"$out" || fail "--client: entry #$n not marked: $out"
[[ $(entries "$out" | grep -c " FAULT ") -eq $(entries "$(replay)" | grep -c " FAULT ") ]] ||
  fail "--client dropped FAULT entries: $out"
prefix=${client%.d*}
out=$(replay --client=$prefix)
[[ $(entries "$out" | grep -v " FAULT " | grep -Evc " $prefix\.d[0-9]+( |$)") -eq 0 ]] ||
  fail "--client=$prefix: $out"
out=$(replay --client=$user)
[[ $(entries "$out" | grep -v " FAULT " | grep -Evc " \(user $user\)( |$)") -eq 0 ]] ||
  fail "--client=$user: $out"
grep -q "^shown: [0-9]* of $total entries and [0-9]* of [0-9]* network steps (filters: client=$user)$" <<<"$out" || fail "--client: $out"

out=$(replay --conversation=$conv --client=$client)
[[ $(net "$out" | grep -vc " $client ") -eq 0 && $(net "$out" | grep -Evc " $conv(#| )") -eq 0 ]] ||
  fail "--conversation=$conv --client=$client: another's network step: $out"
[[ $(entries "$out" | grep -v " FAULT " | grep -vc " $conv#") -eq 0 &&
   $(entries "$out" | grep -v " FAULT " | grep -Evc " $client( |$)") -eq 0 ]] ||
  fail "--conversation=$conv --client=$client: $out"
grep -q "^>> #$n " <<<"$out" || fail "--conversation: entry #$n not marked: $out"
grep -q "(filters: client=$client conversation=$conv)$" <<<"$out" || fail "--conversation: $out"

out=$(replay --from_ms=9000 --to_ms=12000)
times=$(entries "$out" | sed 's/^[ >]*#[0-9]* t=\([0-9]*\)ms.*/\1/')
[[ -n "$times" ]] || fail "--from_ms/--to_ms: nothing shown: $out"
for t in $times; do [[ $t -ge 9000 && $t -le 12000 ]] || fail "t=$t outside 9000..12000: $out"; done
for t in $(net "$out" | sed 's/^  ~[0-9]* t=\([0-9]*\)ms.*/\1/'); do
  [[ $t -ge 9000 && $t -le 12000 ]] || fail "network step t=$t outside 9000..12000: $out"
done
[[ $(entries "$out" | wc -l) -lt $total ]] || fail "--from_ms/--to_ms filtered nothing"

# A passing seed's replay prints its whole history too.
out=$(cd / && BUILD_WORKING_DIRECTORY="$work" "$sim" replay --seed=2 \
      --scenario=scenarios/mine.textproto --report_dir=replays 2>/dev/null)
[[ $? -eq 0 ]] || fail "seed 2 of the smoke scenario should pass: $out"
all=$(sed -n 's/^history: .* entries=\([0-9]*\)$/\1/p' <<<"$out")
[[ -n "$all" && $all -gt 100 && $(entries "$out" | wc -l) -eq $all ]] ||
  fail "a passing replay did not print its $all entries: $out"
grep -q "^RUN seed=2 passed " <<<"$out" || fail "no verdict: $out"

usage "a bad --around" 2 "--around=x: must be N or N:K" replay --around=x
usage "a bad --around K" 2 "--around=3:y" replay --around=3:y
usage "a bad --from_ms" 2 "--from_ms=soon" replay --from_ms=soon
usage "--from_ms after --to_ms" 2 "is after --to_ms" replay --from_ms=5 --to_ms=4
usage "--around past the end" 2 "--around=99999999: the history has entries #0 to #" \
  replay --around=99999999 --report_dir=replays
usage "--client with run" 2 "are for replay" run --client=168
# Progress: a run tells on stderr where it is in simulated time with an ETA,
# a swarm how many seeds are done with an ETA; stdout is the same without it.
run_smoke() {  # run_smoke <args...>: stdout, stderr to $work/err
  cd / && BUILD_WORKING_DIRECTORY="$work" "$sim" --scenario=scenarios/mine.textproto \
    --report_dir=progress "$@" 2>"$work/err"
}
quiet=$(run_smoke run --seed=2 --progress_every_s=0)
[[ ! -s "$work/err" ]] || fail "progress printed with --progress_every_s=0: $(cat "$work/err")"
loud=$(run_smoke run --seed=2 --progress_every_s=0.000001)
err=$(cat "$work/err")
grep -Eq "^progress: seed 2 at t=[0-9]+\.[0-9]s of 63s simulated \([0-9]+%\), [0-9]+ events, [0-9]+s wall, ETA [0-9]+s$" \
  <<<"$err" || fail "no run progress line: $err"
[[ $(grep -c "^progress: " <<<"$err") -ge 10 ]] || fail "too few progress lines: $err"
strip() { sed -e 's/ wall_s=[0-9.]*//' -e '/^report: /d' <<<"$1"; }
[[ "$(strip "$quiet")" == "$(strip "$loud")" ]] || fail "progress changed stdout: $quiet VS $loud"
out=$(run_smoke swarm --seeds=2 --jobs=1 --recheck_every=0 --progress_every_s=0.000001)
grep -Eq "^progress: 1/2 seeds, 0 failed, [0-9.]+ seeds/s, ETA [0-9]+s$" "$work/err" ||
  fail "no swarm progress with an ETA: $(cat "$work/err")"

# A huge topology is estimated before it is built, and refused above
# --max_memory_mb (exit 2, naming the field and the estimate); the flag raises it.
printf 'base: "default"\nname: "huge"\nworkload { users: 100000 }\n' > "$work/scenarios/huge.textproto"
out=$(cd / && BUILD_WORKING_DIRECTORY="$work" "$sim" run --seed=1 --scenario=scenarios/huge.textproto 2>&1)
[[ $? -eq 2 ]] || fail "100,000 users should be refused by default: $out"
grep -Eq "^parley_sim: scenario huge needs about [0-9]{4,} MB per run \(workload.users=100000\), above --max_memory_mb=4096: lower workload.users, or raise --max_memory_mb$" \
  <<<"$out" || fail "unclear refusal: $out"
out=$(run_smoke run --seed=1 --max_memory_mb=1)
[[ $? -eq 2 ]] && grep -q "above --max_memory_mb=1:" "$work/err" || fail "--max_memory_mb=1 ran: $out"
out=$(run_smoke swarm --seeds=4 --jobs=4 --max_memory_mb=40)
[[ $? -eq 2 ]] && grep -q " MB for 4 jobs, above --max_memory_mb=40: lower workload.users or --jobs" \
  "$work/err" || fail "a swarm's jobs not counted: $(cat "$work/err")"

echo "PASS"
