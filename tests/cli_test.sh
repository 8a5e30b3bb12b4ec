#!/usr/bin/env bash
# The `parley` CLI as a user runs it: the real binary over TCP against a real
# parleyd. Every command, human and --json output, the
# server's errors at once with exit 1, input refused before sending with exit
# 2, no history outside sync, failover across --server, and chat through a
# parleyd restart.
set -uo pipefail
parley="$PWD/$1"
parleyd="$PWD/$2"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
export HOME="$tmp/home"
mkdir -p "$HOME"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pd_pid=
chat_pid=
cleanup() {
  [[ -n "$chat_pid" ]] && kill "$chat_pid" 2>/dev/null
  [[ -n "$pd_pid" ]] && kill "$pd_pid" 2>/dev/null && wait "$pd_pid" 2>/dev/null
  exec 7>&- 2>/dev/null
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; [[ -f "$tmp/parleyd.log" ]] && tail -20 "$tmp/parleyd.log"; exit 1; }
pass=0
ok() { pass=$((pass + 1)); }

start_parleyd() {
  "$parleyd" --data_dir="$tmp/data" --listen="127.0.0.1:$port" --minimal_password_cost \
      >>"$tmp/parleyd.log" 2>&1 &
  pd_pid=$!
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  fail "parleyd did not listen on $port"
}

S="--server=127.0.0.1:$port"
# run EXPECTED_RC ARGS...: runs parley, leaves stdout in $out, stderr in $err.
run() {
  local want=$1; shift
  "$parley" "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  out=$(cat "$tmp/out"); err=$(cat "$tmp/err")
  [[ $rc -eq $want ]] || fail "parley $* exited $rc, want $want; out: $out; err: $err"
}
has() { grep -qF -- "$2" <<<"$1" || fail "expected '$2' in: $1"; }
hasnt() { ! grep -qF -- "$2" <<<"$1" || fail "did not expect '$2' in: $1"; }
lines() { [[ $(grep -c '' <<<"$1") -eq $2 ]] || fail "expected $2 line(s), got: $1"; }
A=(--name=alice --password=alice-secret)
B=(--name=bob --password=bob-secret)
C=(--name=carol --password=carol-secret)

# ---- help and unknown commands: nothing is sent (the server is not even up) --------
run 0 --help;                    has "$out" "Account:"; has "$out" "Friends:"; has "$out" "Groups:"
has "$out" "Messages:"; has "$out" "change-password"; has "$out" "conversations"; ok
has "$out" "rename-group"; has "$out" "transfer-group"; has "$out" "history"; ok
run 0 help send;                 has "$out" "--to=USER_ID"; ok
run 0 send-group --help;         has "$out" "--group=ID --text=T"; ok
run 2 frobnicate "$S" "${A[@]}"; has "$err" "unknown command 'frobnicate'"; ok
run 2 help frobnicate;           has "$err" "unknown command"; ok

# ---- server down, bad address: at once, exit 1 ---------------------------------------
t0=$(date +%s%N)
run 1 login --server=127.0.0.1:$dead "${A[@]}"
has "$err" "UNAVAILABLE"; has "$err" "Connection refused"
(( ($(date +%s%N) - t0) / 1000000 < 2000 )) || fail "a refused connection took over 2 s"; ok
run 1 login --server=nohost-no-port "${A[@]}"; has "$err" "bad server address 'nohost-no-port'"; ok
run 1 login --server=no.such.host.invalid:7700 "${A[@]}"; has "$err" "bad server address"; ok

start_parleyd

# ---- register: success, name taken, invalid name, short password --------------------
run 0 register "$S" "${A[@]}" --nickname="Alice Ä"; has "$out" "registered alice as user 1"; ok
run 0 register "$S" "${B[@]}";   has "$out" "registered bob as user 2"; ok
run 0 register "$S" "${C[@]}" --json; has "$out" '"user_id":3'; has "$out" '"name":"carol"'; ok
run 1 register "$S" "${A[@]}";   has "$err" "ALREADY_EXISTS"; has "$err" "user name 'alice' is taken"
hasnt "$out" "registered"; ok
run 1 register "$S" --name=Bad-Name --password=good-secret; has "$err" "INVALID_ARGUMENT"; has "$err" "user name"; ok
run 1 register "$S" --name=dave --password=short;  has "$err" "INVALID_ARGUMENT"; has "$err" "password must be 8 to 128 bytes"; ok
t0=$(date +%s%N)
run 1 login "$S" --name=alice --password=wrong-password; has "$err" "UNAUTHENTICATED"
has "$err" "wrong user name or password"
(( ($(date +%s%N) - t0) / 1000000 < 5000 )) || fail "a wrong password took over 5 s"; ok
run 0 login "$S" "${A[@]}";      has "$out" "logged in as alice (Alice Ä), user 1"; ok
run 0 login "$S" "${A[@]}" --json; has "$out" '"user_id":1'; ok

# ---- input refused before sending: exit 2 --------------------------------------------
big=$(head -c 16385 /dev/zero | tr '\0' a)
run 2 send "$S" "${A[@]}" --to=2 --text="$big"; has "$err" "16385 bytes; at most 16384"; ok
run 2 update-profile "$S" "${A[@]}" --nickname="$(head -c 65 /dev/zero | tr '\0' n)"; has "$err" "--nickname is 65 bytes; at most 64"; ok
run 2 register "$S" --name="$(head -c 33 /dev/zero | tr '\0' x)" --password=good-secret; has "$err" "--name is 33 bytes; at most 32"; ok
run 2 create-group "$S" "${A[@]}" --group_name="$(head -c 65 /dev/zero | tr '\0' g)"; has "$err" "at most 64"; ok
run 2 create-group "$S" "${A[@]}" --group_name=x --users=2,bob; has "$err" "'bob' is not a user id"; ok
run 2 invite "$S" "${A[@]}" --group=1 --users=2,,3; has "$err" "is not a user id"; ok
run 2 send "$S" "${A[@]}" --to=2;  has "$err" "needs --text"; ok
run 2 add-friend "$S" "${A[@]}";   has "$err" "needs --user=ID"; ok

# ---- friends; add-friend and send print one line and no history ----------------------
run 0 add-friend "$S" "${A[@]}" --user=2; lines "$out" 1; has "$out" "bob (user 2) and you are friends now"; ok
run 0 send "$S" "${A[@]}" --to=2 --text="héllo 世界"; lines "$out" 1; has "$out" "sent to bob as p:1:2 #1"; ok
run 0 send "$S" "${A[@]}" --to=2 --text="second"; lines "$out" 1; hasnt "$out" "héllo"; ok
run 0 add-friend "$S" "${A[@]}" --user=3; lines "$out" 1; hasnt "$out" "héllo"; hasnt "$out" "second"; ok
run 0 add-friend "$S" "${B[@]}" --user=3; lines "$out" 1; hasnt "$out" "héllo"; ok
run 1 add-friend "$S" "${A[@]}" --user=2; has "$err" "ALREADY_EXISTS"; ok
run 1 add-friend "$S" "${A[@]}" --user=99; has "$err" "NOT_FOUND"; ok
run 1 send "$S" "${C[@]}" --to=99 --text=hi; has "$err" "PERMISSION_DENIED"; ok
run 0 remark "$S" "${A[@]}" --user=2 --remark="Bobby ☺"; has "$out" 'remark for bob set to "Bobby ☺"'; ok
run 0 friends "$S" "${A[@]}";     has "$out" "user 2: bob  remark: Bobby ☺"; has "$out" "user 3: carol"; ok
run 0 friends "$S" "${A[@]}" --json; has "$out" '"remark":"Bobby ☺"'; lines "$out" 1; ok
run 0 block "$S" "${B[@]}" --user=3; has "$out" "blocked carol (user 3)"; ok
run 0 friends "$S" "${B[@]}";     has "$out" "blocked: user 3: carol"; ok
run 1 send "$S" "${C[@]}" --to=2 --text=hi; has "$err" "PERMISSION_DENIED"; ok
run 0 unblock "$S" "${B[@]}" --user=3; has "$out" "unblocked carol"; ok
run 0 remove-friend "$S" "${B[@]}" --user=3; has "$out" "carol (user 3) is no longer your friend"; ok
run 1 remove-friend "$S" "${B[@]}" --user=3; has "$err" "NOT_FOUND"; ok

# ---- profiles ------------------------------------------------------------------------
run 0 profile "$S" "${B[@]}" --users=1; has "$out" "user 1: alice  nickname: Alice Ä"; ok
run 0 update-profile "$S" "${B[@]}" --nickname="Bob ✓" --avatar=https://x/b.png; has "$out" "nickname: Bob ✓"; ok
run 0 profile "$S" "${A[@]}" --users=2 --json; has "$out" '"nickname":"Bob ✓"'; ok
run 1 profile "$S" "${A[@]}" --users=2,77; has "$err" "no such user: 77"; ok
run 2 update-profile "$S" "${A[@]}"; has "$err" "needs --nickname or --avatar"; ok

# ---- find-user, devices, logout-device ----------------------------
run 0 find-user "$S" "${C[@]}" --user_name=bob; lines "$out" 1; has "$out" "user 2: bob  nickname: Bob ✓"; ok
run 0 find-user "$S" "${C[@]}" --user_name=alice --json; has "$out" '"user_id":"1"'; has "$out" '"nickname":"Alice Ä"'
hasnt "$out" "password"; ok
run 1 find-user "$S" "${C[@]}" --user_name=nobody; has "$err" "NOT_FOUND"; has "$err" "no user named nobody"; ok
run 1 find-user "$S" "${C[@]}" --user_name=Bad-Name; has "$err" "INVALID_ARGUMENT"; ok
run 2 find-user "$S" "${C[@]}"; has "$err" "needs --user_name=NAME"; ok
run 2 find-user "$S" "${C[@]}" --user_name="$(head -c 33 /dev/zero | tr '\0' x)"; has "$err" "at most 32"; ok
run 0 login "$S" "${C[@]}" --device=phone; ok
run 0 login "$S" "${B[@]}" --device=bobphone; ok
run 0 devices "$S" "${C[@]}"; has "$out" "cli (this command): online at gateway"; has "$out" "phone: offline, last login $(date +%Y-)"
hasnt "$out" "bobphone"; ok
run 0 devices "$S" "${C[@]}" --json; has "$out" '"device_id":"phone"'; has "$out" '"online":true'; ok
run 1 logout-device "$S" "${C[@]}" --device=watch; has "$err" "NOT_FOUND"; has "$err" "no device 'watch' of yours"; ok
run 1 logout-device "$S" "${C[@]}" --device=bobphone; has "$err" "NOT_FOUND"; ok  # bob's, not carol's
run 2 logout-device "$S" "${C[@]}"; has "$err" "needs --device=D"; ok
run 2 logout-device "$S" "${C[@]}" --device="$(head -c 65 /dev/zero | tr '\0' d)"; has "$err" "at most 64"; ok
# A live session of carol's tablet (chat) is closed by a logout from another device.
mkfifo "$tmp/tablet_in"
"$parley" chat "$S" "${C[@]}" --device=tablet <"$tmp/tablet_in" >"$tmp/tablet_out" 2>&1 &
chat_pid=$!
exec 8>"$tmp/tablet_in"
wait_tablet() {
  for _ in $(seq 1 200); do grep -qF -- "$1" "$tmp/tablet_out" && return 0; sleep 0.1; done
  fail "tablet chat never printed '$1': $(cat "$tmp/tablet_out")"
}
wait_tablet "-- online"
run 0 devices "$S" "${C[@]}"; has "$out" "tablet: online at gateway"; ok
run 0 logout-device "$S" "${C[@]}" --device=tablet; has "$out" "logged out device tablet"; ok
wait_tablet "-- disconnected from the server"; ok  # within the gateways' token check (5 s)
echo "/quit" >&8
exec 8>&-
wait "$chat_pid"; chat_pid=

# ---- sync: only what is new since the last run ---------------------------------------
run 0 sync "$S" "${B[@]}"; lines "$out" 2; has "$out" "alice (Alice Ä): héllo 世界"; has "$out" "p:1:2 #2"
has "$out" "$(date +%Y-)"; ok
run 0 sync "$S" "${B[@]}"; has "$out" "no new messages"; ok
run 0 send "$S" "${A[@]}" --to=2 --text=third; ok
run 0 sync "$S" "${B[@]}"; lines "$out" 1; has "$out" "third"; hasnt "$out" "second"; ok
run 0 sync "$S" "${B[@]}" --all --json; lines "$out" 3; has "$out" '"text":"héllo 世界"'; has "$out" '"sender":"alice"'; ok
run 0 sync "$S" "${A[@]}"; has "$out" "no new messages"; ok  # alice's own sends are not news to her

# ---- conversations, read, ack, recall ------------------------------------------------
run 0 conversations "$S" "${B[@]}"; has "$out" "p:1:2  with alice (Alice Ä): 3 messages, 3 unread"; ok
run 0 read "$S" "${B[@]}" --conversation=p:1:2 --seq=1; has "$out" "read p:1:2 up to #1; 2 unread"; ok
run 0 read "$S" "${B[@]}" --conversation=p:1:2; has "$out" "up to #3; 0 unread"; ok
run 0 conversations "$S" "${B[@]}" --json; has "$out" '"unread":"0"'; ok
run 0 ack "$S" "${B[@]}" --conversation=p:1:2 --seq=3; has "$out" "acked p:1:2 up to #3"; ok
run 1 read "$S" "${C[@]}" --conversation=p:1:2 --seq=1; has "$err" "PERMISSION_DENIED"; ok
run 1 recall "$S" "${B[@]}" --conversation=p:1:2 --seq=3; has "$err" "PERMISSION_DENIED"; ok
run 0 recall "$S" "${A[@]}" --conversation=p:1:2 --seq=3; has "$out" "recalled p:1:2 #3"; ok
run 0 sync "$S" "${B[@]}"; has "$out" "(recalled #3)"; ok

# ---- history: older messages, paging backwards ---------------------
run 0 history "$S" "${B[@]}" --to=1; lines "$out" 4; has "$out" "p:1:2 #1 [with alice (Alice Ä)] alice (Alice Ä): héllo 世界"
has "$out" "#3 [with alice (Alice Ä)] alice (Alice Ä): (recalled)"; has "$out" "(recalled #3)"; hasnt "$out" "third"; ok
run 0 history "$S" "${B[@]}" --to=1 --limit=2; lines "$out" 3; has "$out" "p:1:2 #3"; has "$out" "p:1:2 #4"
has "$out" "-- older messages remain: parley history --to=1 --before=3"; ok
run 0 history "$S" "${B[@]}" --to=1 --before=3 --limit=2; lines "$out" 2; has "$out" "héllo 世界"; has "$out" "#2"
hasnt "$out" "older messages remain"; ok
run 0 history "$S" "${A[@]}" --to=2 --limit=1 --json; lines "$out" 1; has "$out" '"conversation":"p:1:2"'
has "$out" '"seq":4'; has "$out" '"has_more":true'; has "$out" '"next_before_seq":4'; ok
run 0 history "$S" "${C[@]}" --to=1; has "$out" "no messages in p:1:3"; ok
run 0 sync "$S" "${B[@]}"; has "$out" "no new messages"; ok  # history moves no cursor
run 1 history "$S" "${C[@]}" --group=1; has "$err" "PERMISSION_DENIED"; ok  # no group yet
run 2 history "$S" "${B[@]}"; has "$err" "needs --to=USER_ID or --group=ID"; ok
run 2 history "$S" "${B[@]}" --to=1 --limit=201; has "$err" "at most 200"; ok

# ---- groups --------------------------------------------------------------------------
run 0 create-group "$S" "${A[@]}" --group_name="Team ✈" --users=2 --open
has "$out" 'created group 1 "Team ✈": open, 2 members, owner alice (Alice Ä)'; ok
run 0 send-group "$S" "${A[@]}" --group=1 --text="hello team"; has "$out" 'sent to group 1 "Team ✈" as g:1 #1'; ok
run 0 join "$S" "${C[@]}" --group=1; has "$out" "joined group 1"; has "$out" "3 members"; ok
run 1 join "$S" "${C[@]}" --group=1; has "$err" "ALREADY_EXISTS"; ok
run 0 group-info "$S" "${C[@]}" --group=1; has "$out" "user 1: alice (Alice Ä)  owner"; has "$out" "user 3: carol"; ok
run 0 members "$S" "${B[@]}" --group=1; lines "$out" 3; has "$out" "user 2: bob (Bob ✓)"; ok
run 0 members "$S" "${B[@]}" --group=1 --json; has "$out" '"member_ids":["1","2","3"]'; ok
run 0 groups "$S" "${B[@]}"; has "$out" 'group 1 "Team ✈"'; ok
run 0 close-group "$S" "${A[@]}" --group=1; has "$out" "closed group 1"; has "$out" "closed, 3 members"; ok
run 1 close-group "$S" "${B[@]}" --group=1; has "$err" "PERMISSION_DENIED"; ok
run 0 kick "$S" "${A[@]}" --group=1 --user=3; has "$out" "kicked carol"; ok
run 1 group-info "$S" "${C[@]}" --group=1; has "$err" "PERMISSION_DENIED"; ok
run 0 open-group "$S" "${A[@]}" --group=1; has "$out" "opened group 1"; ok
run 1 join "$S" "${C[@]}" --group=1; has "$err" "PERMISSION_DENIED"; ok  # kicked: invite first
run 0 invite "$S" "${A[@]}" --group=1 --users=3; has "$out" "invited carol"; ok
run 0 send-group "$S" "${A[@]}" --group=1 --text="carol is back"; has "$out" "as g:1 #2"; ok
run 0 leave "$S" "${C[@]}" --group=1; has "$out" "left group 1"; ok
run 1 leave "$S" "${A[@]}" --group=1; has "$err" "FAILED_PRECONDITION"; ok
run 0 send-group "$S" "${A[@]}" --group=1 --text="after carol left"; has "$out" "as g:1 #3"; ok
# A former member's history: what was sent while it was in, nothing after.
run 0 history "$S" "${C[@]}" --group=1; lines "$out" 1; has "$out" "carol is back"; hasnt "$out" "after carol left"
hasnt "$out" "hello team"; ok
run 0 history "$S" "${B[@]}" --group=1; lines "$out" 3; has "$out" "hello team"; has "$out" "after carol left"; ok
# rename-group, transfer-group: owner only.
run 0 rename-group "$S" "${A[@]}" --group=1 --group_name="Team ✈✈"; has "$out" 'renamed group 1 "Team ✈✈"'; ok
run 1 rename-group "$S" "${B[@]}" --group=1 --group_name=mine; has "$err" "PERMISSION_DENIED"; ok
run 2 rename-group "$S" "${A[@]}" --group=1; has "$err" "needs --group=ID --group_name=NAME"; ok
run 2 rename-group "$S" "${A[@]}" --group=1 --group_name="$(head -c 65 /dev/zero | tr '\0' g)"; has "$err" "at most 64"; ok
run 1 rename-group "$S" "${A[@]}" --group=99 --group_name=x; has "$err" "NOT_FOUND"; ok
run 1 transfer-group "$S" "${A[@]}" --group=1 --user=3; has "$err" "FAILED_PRECONDITION"; ok  # carol left
run 1 transfer-group "$S" "${A[@]}" --group=1 --user=1; has "$err" "INVALID_ARGUMENT"; ok
run 2 transfer-group "$S" "${A[@]}" --group=1; has "$err" "needs --group=ID --user=ID"; ok
run 0 transfer-group "$S" "${A[@]}" --group=1 --user=2; has "$out" "handed over to bob (Bob ✓)"
has "$out" "owner bob (Bob ✓)"; ok
run 0 group-info "$S" "${A[@]}" --group=1; has "$out" "user 2: bob (Bob ✓)  owner"; hasnt "$out" "Alice Ä)  owner"; ok
run 1 close-group "$S" "${A[@]}" --group=1; has "$err" "PERMISSION_DENIED"; ok  # not the owner now
run 1 transfer-group "$S" "${A[@]}" --group=1 --user=2; has "$err" "PERMISSION_DENIED"; ok
run 0 rename-group "$S" "${B[@]}" --group=1 --group_name="Team ✈"; has "$out" "owner bob"; ok
run 0 transfer-group "$S" "${B[@]}" --group=1 --user=1 --json; has "$out" '"owner_id":"1"'; ok
run 0 sync "$S" "${B[@]}"; has "$out" '[group 1 "Team ✈"] alice (Alice Ä): hello team'; ok
run 0 dissolve "$S" "${A[@]}" --group=1; has "$out" "dissolved group 1"; ok
run 1 send-group "$S" "${A[@]}" --group=1 --text=x; has "$err" "PERMISSION_DENIED"; ok
run 0 groups "$S" "${C[@]}"; has "$out" "you are in no group"; ok
run 1 group-info "$S" "${A[@]}" --group=1 --json; has "$out" '"code":"PERMISSION_DENIED"'; ok

# ---- failover: a dead server first in --server ---------------------------------------
run 0 login --server=127.0.0.1:$dead,127.0.0.1:$port "${A[@]}"; has "$out" "at 127.0.0.1:$port"; ok
run 0 send --server=127.0.0.1:$dead,127.0.0.1:$port "${A[@]}" --to=2 --text=via-failover; has "$out" "sent to bob"; ok

# ---- change-password -----------------------------------------------------------------
run 1 change-password "$S" --name=carol --password=carol-secret --new_password=short; has "$err" "INVALID_ARGUMENT"; ok
run 0 change-password "$S" "${C[@]}" --new_password=carol-secret-2; has "$out" "password changed"; ok
run 1 login "$S" "${C[@]}"; has "$err" "UNAUTHENTICATED"; ok
run 0 login "$S" --name=carol --password=carol-secret-2; ok

# ---- chat: new messages only, a restart shown, a send pending through it ------------
mkfifo "$tmp/chat_in"
"$parley" chat "$S" "${B[@]}" <"$tmp/chat_in" >"$tmp/chat_out" 2>&1 &
chat_pid=$!
exec 7>"$tmp/chat_in"
wait_chat() {
  for _ in $(seq 1 200); do grep -qF -- "$1" "$tmp/chat_out" && return 0; sleep 0.1; done
  fail "chat never printed '$1': $(cat "$tmp/chat_out")"
}
wait_chat "-- online"
run 0 send "$S" "${A[@]}" --to=2 --text="live one"
wait_chat "alice (Alice Ä): live one"
grep -qF "héllo" "$tmp/chat_out" && fail "chat printed old history: $(cat "$tmp/chat_out")"
grep -qF "via-failover" "$tmp/chat_out" || fail "chat missed what came since the last sync"
ok
echo "/to 1 from chat" >&7
wait_chat "-- sent as p:1:2"
kill "$pd_pid"; wait "$pd_pid" 2>/dev/null; pd_pid=
wait_chat "-- disconnected from the server"
echo "/to 1 while down" >&7
wait_chat "send(s) pending"
start_parleyd
wait_chat "-- reconnected"
for _ in $(seq 1 200); do [[ $(grep -c -- "-- sent as p:1:2" "$tmp/chat_out") -ge 2 ]] && break; sleep 0.1; done
[[ $(grep -c -- "-- sent as p:1:2" "$tmp/chat_out") -ge 2 ]] || fail "the pending send never went: $(cat "$tmp/chat_out")"
echo "/quit" >&7
exec 7>&-
wait "$chat_pid"; chat_rc=$?; chat_pid=
[[ $chat_rc -eq 0 ]] || fail "chat exited $chat_rc: $(cat "$tmp/chat_out")"
run 0 sync "$S" "${A[@]}"; has "$out" "bob (Bob ✓): while down"; has "$out" "bob (Bob ✓): from chat"; ok
run 0 sync "$S" "${B[@]}"; hasnt "$out" "live one"; ok  # seen in chat: not new
ok
echo "PASS ($pass checks)"
