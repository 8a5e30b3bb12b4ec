// parley: the command-line client of a parleyd. One-shot commands open one
// connection (CliConnection), log in, make their requests and print what the
// server answered: names and local times for people, `--json` for scripts,
// the server's own code and message on an error (exit 1). They print no
// history: only `sync` prints messages, those new since its last run, from
// cursors kept in a small state file per user and server. `chat` runs the
// reference client (core/client) and stays online.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/client/client.h"
#include "core/status.h"
#include "fakes/mem_store.h"
#include "google/protobuf/util/json_util.h"
#include "server/cli_connection.h"
#include "server/client_driver.h"
#include "server/tcp_client_host.h"

ABSL_FLAG(std::string, server, "127.0.0.1:7700",
          "HOST:PORT of a parleyd, or several comma-separated (tried in turn: failover)");
ABSL_FLAG(std::string, name, "", "your user name");
ABSL_FLAG(std::string, password, "", "your password");
ABSL_FLAG(std::string, nickname, "", "register/update-profile: nickname");
ABSL_FLAG(std::string, avatar, "", "update-profile: avatar");
ABSL_FLAG(std::string, new_password, "", "change-password: the new password");
ABSL_FLAG(std::string, user_name, "", "find-user: the exact user name to look up");
ABSL_FLAG(std::string, device, "", "device id (default: cli, and cli-chat for chat)");
ABSL_FLAG(uint64_t, to, 0, "send: recipient user id");
ABSL_FLAG(uint64_t, group, 0, "group id");
ABSL_FLAG(std::string, text, "", "send/send-group: the message ('-': read it from stdin)");
ABSL_FLAG(std::string, group_name, "", "create-group: its name");
ABSL_FLAG(bool, open, false, "create-group: anyone may join");
ABSL_FLAG(std::string, users, "", "comma-separated user ids");
ABSL_FLAG(uint64_t, user, 0, "a user id");
ABSL_FLAG(std::string, remark, "", "remark: the remark (empty clears it)");
ABSL_FLAG(std::string, conversation, "", "conversation id (p:LOW:HIGH or g:GROUP)");
ABSL_FLAG(uint64_t, seq, 0, "a message's seq in its conversation");
ABSL_FLAG(uint64_t, before, 0, "history: only messages before this seq (default: from the newest)");
ABSL_FLAG(uint32_t, limit, 0, "history: at most this many messages (default 50, at most 200)");
ABSL_FLAG(bool, all, false, "sync: print every message, not only the new ones");
ABSL_FLAG(bool, json, false, "print one JSON object per result (for scripts)");
ABSL_FLAG(std::string, state_dir, "",
          "where cursors are kept (default ~/.parley/<server>); one <name>.state per user");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10), "how long to wait for one reply");

namespace parley {
namespace {

// ---- limits (docs/policy.md), checked before anything is sent ------------------------
constexpr size_t kMaxBody = 16 * 1024;
constexpr size_t kMaxUserName = 32;
constexpr size_t kMaxPassword = 128;
constexpr size_t kMaxNickname = 64;
constexpr size_t kMaxAvatar = 256;
constexpr size_t kMaxRemark = 64;
constexpr size_t kMaxGroupName = 64;
constexpr size_t kMaxIds = 500;
constexpr size_t kMaxDeviceId = 64;

// ---- commands ---------------------------------------------------------------------------
struct Command {
  const char* name;
  const char* area;
  const char* flags;
  const char* summary;
};

const Command kCommands[] = {
    {"register", "Account", "[--nickname=X]", "create the user --name with --password"},
    {"login", "Account", "", "check that --name and --password log in"},
    {"change-password", "Account", "--new_password=P", "change your password (ends your other sessions)"},
    {"profile", "Account", "[--users=ID,...]", "show profiles (default: yours)"},
    {"find-user", "Account", "--user_name=NAME", "look a user up by exact name (id and nickname)"},
    {"devices", "Account", "", "your devices: online where, last login"},
    {"logout-device", "Account", "--device=D", "log one of your devices out (ends its tokens and session)"},
    {"update-profile", "Account", "[--nickname=X] [--avatar=URL]", "change your nickname or avatar"},
    {"friends", "Friends", "", "list your friends and the users you blocked"},
    {"add-friend", "Friends", "--user=ID", "befriend a user (immediate and mutual)"},
    {"remove-friend", "Friends", "--user=ID", "end a friendship (both ways)"},
    {"remark", "Friends", "--user=ID --remark=TEXT", "set your private remark about a friend"},
    {"block", "Friends", "--user=ID", "block a user (no messages either way)"},
    {"unblock", "Friends", "--user=ID", "lift a block"},
    {"create-group", "Groups", "--group_name=X [--users=ID,...] [--open]", "create a group with friends"},
    {"invite", "Groups", "--group=ID --users=ID,...", "invite friends into a group"},
    {"join", "Groups", "--group=ID", "join an open group"},
    {"leave", "Groups", "--group=ID", "leave a group (the owner dissolves instead)"},
    {"kick", "Groups", "--group=ID --user=ID", "remove a member (owner only; bars rejoining)"},
    {"dissolve", "Groups", "--group=ID", "end a group (owner only)"},
    {"open-group", "Groups", "--group=ID", "let anyone join (owner only)"},
    {"close-group", "Groups", "--group=ID", "invitation only (owner only)"},
    {"rename-group", "Groups", "--group=ID --group_name=X", "give a group a new name (owner only)"},
    {"transfer-group", "Groups", "--group=ID --user=ID", "make a member the owner (owner only; you stay a member)"},
    {"group-info", "Groups", "--group=ID", "a group and its members"},
    {"members", "Groups", "--group=ID", "a group's member list"},
    {"groups", "Groups", "", "the groups you are in"},
    {"send", "Messages", "--to=USER_ID --text=T  (or --group=ID)", "send a private message"},
    {"send-group", "Messages", "--group=ID --text=T", "send a group message"},
    {"recall", "Messages", "--conversation=C --seq=N", "withdraw one of your messages (within 2 min)"},
    {"sync", "Messages", "[--all]", "print messages new since the last sync (and ack them)"},
    {"read", "Messages", "--conversation=C [--seq=N]", "mark read up to N (default: the latest)"},
    {"ack", "Messages", "--conversation=C --seq=N", "mark delivered up to N on this device"},
    {"conversations", "Messages", "", "your conversations with unread counts"},
    {"history", "Messages", "--to=USER_ID|--group=ID [--before=SEQ] [--limit=N]", "older messages of a conversation, paging backwards"},
    {"chat", "Messages", "", "stay online: messages as they arrive; /to ID text, /group ID text, /quit"},
};

const Command* FindCommand(const std::string& name) {
  for (const Command& c : kCommands) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

std::string Usage() {
  std::string out =
      "usage: parley COMMAND --name=N --password=P [--server=HOST:PORT[,HOST:PORT...]] [--json] "
      "[flags]\n";
  std::string area;
  for (const Command& c : kCommands) {
    if (area != c.area) {
      area = c.area;
      absl::StrAppend(&out, "\n", area, ":\n");
    }
    absl::StrAppend(&out, "  ", c.name, std::string(18 - std::min<size_t>(17, strlen(c.name)), ' '),
                    c.summary, "\n");
  }
  absl::StrAppend(&out,
                  "\n`parley help COMMAND` or `parley COMMAND --help` shows its flags.\n"
                  "Exit status: 0 done; 1 the server refused or could not be reached (its code and "
                  "message are printed); 2 usage or input refused before sending.\n");
  return out;
}

std::string CommandHelp(const Command& c) {
  return absl::StrCat(
      "usage: parley ", c.name, " --name=N --password=P ", c.flags, "\n  ", c.summary, "\n",
      "common flags: --server=HOST:PORT[,...] (failover in turn), --json, --device=ID,\n"
      "  --state_dir=DIR (cursors; default ~/.parley/<server>), --timeout=10s\n");
}

// ---- output -----------------------------------------------------------------------------
bool g_json = false;
std::mutex print_mu;

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);  // UTF-8 passes through
        }
    }
  }
  return out + "\"";
}

std::string ToJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

void PrintLine(const std::string& line) {
  std::lock_guard<std::mutex> lock(print_mu);
  std::cout << line << std::endl;
}

std::string LocalTime(int64_t us) {
  if (us == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMicros(us), absl::LocalTimeZone());
}

std::string CodeName(ErrorCode code) {
  std::string n = ErrorCode_Name(code);
  return n.rfind("CODE_", 0) == 0 ? n.substr(5) : n;
}

// The server refused, or could not be reached: its code and message, exit 1.
int ServerError(const Reply& r, const std::string& what = "") {
  const std::string msg = r.status().message();
  if (g_json) {
    PrintLine(absl::StrCat("{\"error\":{\"code\":", JsonString(CodeName(r.status().code())),
                           ",\"message\":", JsonString(msg), "}}"));
  }
  std::cerr << "parley: " << (what.empty() ? "" : what + ": ") << CodeName(r.status().code())
            << ": " << msg << std::endl;
  return 1;
}

// Refused before sending: exit 2.
int UsageError(const std::string& why) {
  std::cerr << "parley: " << why << std::endl;
  return 2;
}

bool Ok(const Reply& r) { return r.status().code() == CODE_OK; }

// ---- per-user state: login epoch and sync cursors ---------------------------------------
struct State {
  std::string path;
  uint64_t epoch = 0;
  std::map<std::string, uint64_t> cursors;

  void Load() {
    std::ifstream in(path);
    std::string key, a;
    uint64_t n = 0;
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream l(line);
      l >> key;
      if (key == "epoch") {
        l >> epoch;
      } else if (key == "cursor" && (l >> a >> n)) {
        cursors[a] = n;
      }
    }
  }
  bool Save() const {
    const std::string dir = path.substr(0, path.rfind('/'));
    std::string sofar;
    for (absl::string_view part : absl::StrSplit(dir, '/')) {
      sofar += std::string(part) + "/";
      mkdir(sofar.c_str(), 0700);
    }
    const std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << "epoch " << epoch << "\n";
      for (const auto& [c, s] : cursors) out << "cursor " << c << " " << s << "\n";
      if (!out) return false;
    }
    return rename(tmp.c_str(), path.c_str()) == 0;
  }
};

std::string StatePath(const std::vector<std::string>& servers, const std::string& name) {
  std::string dir = absl::GetFlag(FLAGS_state_dir);
  if (dir.empty()) {
    std::string server = servers.empty() ? "default" : servers[0];
    for (char& c : server) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') c = '_';
    }
    const char* home = getenv("HOME");
    dir = absl::StrCat(home != nullptr && *home != '\0' ? home : ".", "/.parley/", server);
  }
  return absl::StrCat(dir, "/", name, ".state");
}

// ---- a logged-in session ----------------------------------------------------------------
class Session {
 public:
  Session(std::vector<std::string> servers, std::string name, std::string password,
          std::string device, State* state)
      : servers_(std::move(servers)),
        name_(std::move(name)),
        password_(std::move(password)),
        device_(std::move(device)),
        state_(state) {}

  uint64_t me() const { return me_; }
  const std::string& server() const { return conn_.server(); }
  absl::Duration timeout() const { return absl::GetFlag(FLAGS_timeout); }

  // Connects to the first server that answers (no login). Bad addresses and
  // refused connections fall through to the next at once.
  Reply Dial() {
    std::vector<std::string> why;
    bool all_bad_addresses = true;
    for (size_t i = 0; i < servers_.size(); ++i) {
      const std::string& s = servers_[(next_ + i) % servers_.size()];
      absl::Status st = conn_.Dial(s);
      if (st.ok()) {
        next_ = (next_ + i) % servers_.size();
        return Reply();
      }
      if (st.code() != absl::StatusCode::kInvalidArgument) all_bad_addresses = false;
      why.push_back(std::string(st.message()));
    }
    Reply r;
    r.mutable_status()->set_code(all_bad_addresses ? CODE_INVALID_ARGUMENT : CODE_UNAVAILABLE);
    r.mutable_status()->set_message(absl::StrJoin(why, "; "));
    return r;
  }

  // Dials, logs in with the password and opens a gateway session. A server
  // that is unreachable or UNAVAILABLE is skipped for the next; any other
  // answer is final.
  Reply Open() {
    Reply last;
    for (size_t attempt = 0; attempt < servers_.size(); ++attempt) {
      Reply d = Dial();
      if (!Ok(d)) return d;  // every server tried
      last = LoginHere();
      if (Ok(last)) return last;
      if (last.status().code() != CODE_UNAVAILABLE &&
          last.status().code() != CODE_DEADLINE_EXCEEDED) {
        return last;
      }
      last.mutable_status()->set_message(
          absl::StrCat(conn_.server(), ": ", last.status().message()));
      conn_.Close();
      next_ = (next_ + 1) % servers_.size();
    }
    return last;
  }

  // One request in the session; if the connection broke, once more (same
  // request id: the server answers a retry from its log) on the next server.
  Reply Call(const Request& request) {
    const std::string id = CliConnection::NewId(absl::StrCat("cli-", name_));
    Reply r = conn_.Call(request, timeout(), id);
    if (r.status().code() == CODE_UNAVAILABLE && !conn_.connected() && servers_.size() > 1) {
      next_ = (next_ + 1) % servers_.size();
      Reply o = Open();
      if (!Ok(o)) return o;
      r = conn_.Call(request, timeout(), id);
    }
    return r;
  }

  CliConnection& connection() { return conn_; }

 private:
  Reply LoginHere() {
    Request login;
    login.mutable_login()->set_name(name_);
    login.mutable_login()->set_password(password_);
    login.mutable_login()->set_device_id(device_);
    Reply r = conn_.Call(login, timeout());
    if (!Ok(r)) return r;
    me_ = r.login().user_id();
    const std::string token = r.login().token();
    uint64_t epoch = state_->epoch + 1;
    for (int tries = 0; tries < 3; ++tries) {
      Request gl;
      gl.mutable_gateway_login()->set_token(token);
      gl.mutable_gateway_login()->set_device_id(device_);
      gl.mutable_gateway_login()->set_epoch(epoch);
      r = conn_.Call(gl, timeout());
      const ErrorCode code = r.status().code();
      if (code == CODE_FAILED_PRECONDITION || code == CODE_OUT_OF_RANGE) {
        epoch = r.gateway_login().device_epoch() + 1;  // a newer login exists: go past it
        continue;
      }
      if (Ok(r)) state_->epoch = epoch;
      return r;
    }
    return r;
  }

  std::vector<std::string> servers_;
  std::string name_, password_, device_;
  State* state_;
  CliConnection conn_;
  size_t next_ = 0;
  uint64_t me_ = 0;
};

// ---- names --------------------------------------------------------------------------------
class Names {
 public:
  explicit Names(Session* s) : s_(s) {}
  // Looks up the profiles of `ids` not yet known (get_users).
  void Fetch(const std::vector<uint64_t>& ids) {
    std::vector<uint64_t> missing;
    for (uint64_t id : ids) {
      if (id != 0 && !profiles_.count(id) && !unknown_.count(id)) missing.push_back(id);
    }
    for (size_t i = 0; i < missing.size(); i += 100) {
      Request r;
      for (size_t j = i; j < std::min(missing.size(), i + 100); ++j) {
        r.mutable_get_users()->add_user_ids(missing[j]);
      }
      Reply reply = s_->Call(r);
      if (!Ok(reply)) return;
      for (const Profile& p : reply.get_users().profiles()) profiles_[p.user_id()] = p;
      for (uint64_t id : reply.get_users().unknown_ids()) unknown_.insert(id);
    }
  }
  std::string Label(uint64_t id) {
    Fetch({id});
    auto it = profiles_.find(id);
    if (it == profiles_.end()) return absl::StrCat("user ", id);
    const Profile& p = it->second;
    return p.nickname().empty() || p.nickname() == p.name()
               ? p.name()
               : absl::StrCat(p.name(), " (", p.nickname(), ")");
  }
  std::string Name(uint64_t id) {
    Fetch({id});
    auto it = profiles_.find(id);
    return it == profiles_.end() ? "" : it->second.name();
  }
  bool Unknown(uint64_t id) { return unknown_.count(id) > 0; }
  const Profile* Get(uint64_t id) {
    Fetch({id});
    auto it = profiles_.find(id);
    return it == profiles_.end() ? nullptr : &it->second;
  }
  std::string GroupLabel(uint64_t group_id) {
    auto it = groups_.find(group_id);
    if (it == groups_.end()) {
      Request r;
      r.mutable_group_info()->set_group_id(group_id);
      Reply reply = s_->Call(r);
      it = groups_.emplace(group_id, Ok(reply) ? reply.group_info().group().name() : "").first;
    }
    return it->second.empty() ? absl::StrCat("group ", group_id)
                              : absl::StrCat("group ", group_id, " \"", it->second, "\"");
  }
  std::string ConversationLabel(const std::string& c) {
    std::vector<std::string> parts = absl::StrSplit(c, ':');
    uint64_t a = 0, b = 0;
    if (parts.size() == 3 && parts[0] == "p" && absl::SimpleAtoi(parts[1], &a) &&
        absl::SimpleAtoi(parts[2], &b)) {
      return absl::StrCat("with ", Label(a == s_->me() ? b : a));
    }
    if (parts.size() == 2 && parts[0] == "g" && absl::SimpleAtoi(parts[1], &a)) {
      return GroupLabel(a);
    }
    return c;
  }

 private:
  Session* s_;
  std::map<uint64_t, Profile> profiles_;
  std::set<uint64_t> unknown_;
  std::map<uint64_t, std::string> groups_;
};

std::string MessageText(const Message& m) {
  if (m.kind() == Message::RECALL) return absl::StrCat("(recalled #", m.recalled_seq(), ")");
  if (m.recalled()) return "(recalled)";
  return m.body();
}

std::string MessageJson(const Message& m, const std::string& sender_name) {
  return absl::StrCat("{\"conversation\":", JsonString(m.conversation()), ",\"seq\":", m.seq(),
                      ",\"sender_id\":", m.sender_id(), ",\"sender\":", JsonString(sender_name),
                      ",\"time_us\":", m.time_us(), ",\"time\":", JsonString(LocalTime(m.time_us())),
                      ",\"kind\":", JsonString(Message::Kind_Name(m.kind())),
                      ",\"recalled\":", m.recalled() ? "true" : "false",
                      ",\"recalled_seq\":", m.recalled_seq(), ",\"text\":", JsonString(m.body()),
                      "}");
}

// ---- input checks -----------------------------------------------------------------------
// Strict: every entry a positive integer.
bool ParseIds(const std::string& csv, std::vector<uint64_t>* out, std::string* bad) {
  for (absl::string_view s : absl::StrSplit(csv, ',')) {
    s = absl::StripAsciiWhitespace(s);
    uint64_t id = 0;
    if (!absl::SimpleAtoi(s, &id) || id == 0) {
      *bad = std::string(s);
      return false;
    }
    out->push_back(id);
  }
  return true;
}

std::string TooLong(const char* what, size_t got, size_t limit) {
  return absl::StrCat(what, " is ", got, " bytes; at most ", limit, " allowed (nothing was sent)");
}

// ---- the commands -------------------------------------------------------------------------
struct Ctx {
  std::string command;
  std::vector<std::string> servers;
  std::string name, password, device;
  State state;
  std::set<std::string> given;  // flags named on the command line
};

int RunChat(Ctx& ctx, Session& s, Names& names);

int Run(Ctx& ctx) {
  const std::string& cmd = ctx.command;
  // Input checks before anything is sent.
  if (ctx.name.empty() || ctx.password.empty()) {
    return UsageError(absl::StrCat(cmd, " needs --name and --password (parley help ", cmd, ")"));
  }
  if (ctx.name.size() > kMaxUserName) return UsageError(TooLong("--name", ctx.name.size(), kMaxUserName));
  if (ctx.password.size() > kMaxPassword) {
    return UsageError(TooLong("--password", ctx.password.size(), kMaxPassword));
  }
  const std::string nickname = absl::GetFlag(FLAGS_nickname);
  if (nickname.size() > kMaxNickname) return UsageError(TooLong("--nickname", nickname.size(), kMaxNickname));
  const std::string avatar = absl::GetFlag(FLAGS_avatar);
  if (avatar.size() > kMaxAvatar) return UsageError(TooLong("--avatar", avatar.size(), kMaxAvatar));
  const std::string remark = absl::GetFlag(FLAGS_remark);
  if (remark.size() > kMaxRemark) return UsageError(TooLong("--remark", remark.size(), kMaxRemark));
  const std::string group_name = absl::GetFlag(FLAGS_group_name);
  if (group_name.size() > kMaxGroupName) {
    return UsageError(TooLong("--group_name", group_name.size(), kMaxGroupName));
  }
  if (absl::GetFlag(FLAGS_new_password).size() > kMaxPassword) {
    return UsageError(TooLong("--new_password", absl::GetFlag(FLAGS_new_password).size(), kMaxPassword));
  }
  std::vector<uint64_t> users;
  if (ctx.given.count("users")) {
    std::string bad;
    if (!ParseIds(absl::GetFlag(FLAGS_users), &users, &bad)) {
      return UsageError(absl::StrCat("--users: '", bad, "' is not a user id (want IDs like 2,3)"));
    }
    if (users.size() > kMaxIds) {
      return UsageError(absl::StrCat("--users names ", users.size(), " users; at most ", kMaxIds));
    }
  }
  std::string text = absl::GetFlag(FLAGS_text);
  const bool sending = cmd == "send" || cmd == "send-group";
  if (sending && text == "-") {
    std::stringstream in;
    in << std::cin.rdbuf();
    text = in.str();
    while (!text.empty() && text.back() == '\n') text.pop_back();
  }
  if (sending && text.size() > kMaxBody) {
    return UsageError(TooLong("the message", text.size(), kMaxBody));
  }
  if (sending && text.empty()) return UsageError(cmd + " needs --text (the message)");
  const uint64_t group = absl::GetFlag(FLAGS_group);
  const uint64_t user = absl::GetFlag(FLAGS_user);
  const std::string conversation = absl::GetFlag(FLAGS_conversation);
  auto need = [&](bool ok, const std::string& what) {
    return ok ? 0 : UsageError(absl::StrCat(cmd, " needs ", what, " (parley help ", cmd, ")"));
  };
  int bad = 0;
  if (cmd == "add-friend" || cmd == "remove-friend" || cmd == "remark" || cmd == "block" ||
      cmd == "unblock") {
    bad = need(user != 0, "--user=ID");
  } else if (cmd == "kick") {
    bad = need(group != 0 && user != 0, "--group=ID --user=ID");
  } else if (cmd == "rename-group") {
    bad = need(group != 0 && !group_name.empty(), "--group=ID --group_name=NAME");
  } else if (cmd == "transfer-group") {
    bad = need(group != 0 && user != 0, "--group=ID --user=ID (the new owner)");
  } else if (cmd == "history") {
    bad = need((absl::GetFlag(FLAGS_to) != 0) != (group != 0), "--to=USER_ID or --group=ID");
    if (bad == 0 && absl::GetFlag(FLAGS_limit) > 200) {
      return UsageError(absl::StrCat("--limit is ", absl::GetFlag(FLAGS_limit), "; at most 200"));
    }
  } else if (cmd == "invite") {
    bad = need(group != 0 && !users.empty(), "--group=ID --users=ID,...");
  } else if (cmd == "join" || cmd == "leave" || cmd == "dissolve" || cmd == "open-group" ||
             cmd == "close-group" || cmd == "group-info" || cmd == "members" || cmd == "send-group") {
    bad = need(group != 0, "--group=ID");
  } else if (cmd == "send") {
    bad = need((absl::GetFlag(FLAGS_to) != 0) != (group != 0), "--to=USER_ID or --group=ID");
  } else if (cmd == "create-group") {
    bad = need(!group_name.empty(), "--group_name=NAME");
  } else if (cmd == "recall" || cmd == "ack") {
    bad = need(!conversation.empty() && absl::GetFlag(FLAGS_seq) != 0, "--conversation=C --seq=N");
  } else if (cmd == "read") {
    bad = need(!conversation.empty(), "--conversation=C");
  } else if (cmd == "change-password") {
    bad = need(!absl::GetFlag(FLAGS_new_password).empty(), "--new_password=P");
  } else if (cmd == "find-user") {
    const std::string who = absl::GetFlag(FLAGS_user_name);
    if (who.size() > kMaxUserName) return UsageError(TooLong("--user_name", who.size(), kMaxUserName));
    bad = need(!who.empty(), "--user_name=NAME");
  } else if (cmd == "logout-device") {
    const std::string target = absl::GetFlag(FLAGS_device);
    if (target.size() > kMaxDeviceId) return UsageError(TooLong("--device", target.size(), kMaxDeviceId));
    bad = need(!target.empty(), "--device=D (the device to log out)");
  } else if (cmd == "update-profile") {
    bad = need(ctx.given.count("nickname") || ctx.given.count("avatar"), "--nickname or --avatar");
  }
  if (bad != 0) return bad;

  ctx.state.path = StatePath(ctx.servers, ctx.name);
  ctx.state.Load();
  Session s(ctx.servers, ctx.name, ctx.password, ctx.device, &ctx.state);

  if (cmd == "register") {
    Reply d = s.Dial();
    if (!Ok(d)) return ServerError(d, "cannot reach the server");
    Request r;
    r.mutable_register_()->set_name(ctx.name);
    r.mutable_register_()->set_password(ctx.password);
    r.mutable_register_()->set_nickname(nickname.empty() ? ctx.name : nickname);
    Reply reply = s.connection().Call(r, s.timeout());
    if (!Ok(reply)) return ServerError(reply, "register");
    if (g_json) {
      PrintLine(absl::StrCat("{\"user_id\":", reply.register_().user_id(), ",\"name\":",
                             JsonString(ctx.name), "}"));
    } else {
      PrintLine(absl::StrCat("registered ", ctx.name, " as user ", reply.register_().user_id()));
    }
    return 0;
  }

  Reply opened = s.Open();
  if (!Ok(opened)) return ServerError(opened, "login");
  ctx.state.Save();  // the epoch moved
  Names names(&s);
  const uint64_t me = s.me();

  auto call = [&](const Request& r, Reply* out) {
    *out = s.Call(r);
    return Ok(*out);
  };
  auto print_json_or = [&](const google::protobuf::Message& m, const std::string& human) {
    PrintLine(g_json ? ToJson(m) : human);
  };
  Request r;
  Reply reply;

  if (cmd == "login") {
    if (g_json) {
      PrintLine(absl::StrCat("{\"user_id\":", me, ",\"name\":", JsonString(ctx.name),
                             ",\"server\":", JsonString(s.server()), "}"));
    } else {
      PrintLine(absl::StrCat("logged in as ", names.Label(me), ", user ", me, ", at ", s.server()));
    }
    return 0;
  }
  if (cmd == "change-password") {
    r.mutable_change_password()->set_old_password(ctx.password);
    r.mutable_change_password()->set_new_password(absl::GetFlag(FLAGS_new_password));
    r.mutable_change_password()->set_device_id(ctx.device);
    if (!call(r, &reply)) return ServerError(reply, "change-password");
    print_json_or(reply.change_password(),
                  "password changed; your other sessions and tokens have ended");
    return 0;
  }
  if (cmd == "profile") {
    if (users.empty()) users.push_back(me);
    for (uint64_t id : users) r.mutable_get_users()->add_user_ids(id);
    if (!call(r, &reply)) return ServerError(reply, "profile");
    if (g_json) {
      PrintLine(ToJson(reply.get_users()));
    } else {
      for (const Profile& p : reply.get_users().profiles()) {
        PrintLine(absl::StrCat("user ", p.user_id(), ": ", p.name(), "  nickname: ", p.nickname(),
                               p.avatar().empty() ? "" : "  avatar: " + p.avatar(),
                               "  (version ", p.version(), ")"));
      }
    }
    if (reply.get_users().unknown_ids_size() > 0) {
      std::cerr << "parley: NOT_FOUND: no such user: "
                << absl::StrJoin(reply.get_users().unknown_ids(), ", ") << std::endl;
      return 1;
    }
    return 0;
  }
  if (cmd == "find-user") {
    r.mutable_find_user()->set_name(absl::GetFlag(FLAGS_user_name));
    if (!call(r, &reply)) return ServerError(reply, cmd);
    const Profile& p = reply.find_user().profile();
    print_json_or(p, absl::StrCat("user ", p.user_id(), ": ", p.name(), "  nickname: ", p.nickname(),
                                  p.avatar().empty() ? "" : "  avatar: " + p.avatar()));
    return 0;
  }
  if (cmd == "devices") {
    r.mutable_list_devices();
    if (!call(r, &reply)) return ServerError(reply, cmd);
    if (g_json) {
      PrintLine(ToJson(reply.list_devices()));
      return 0;
    }
    if (reply.list_devices().devices().empty()) PrintLine("no devices");
    for (const DeviceInfo& d : reply.list_devices().devices()) {
      PrintLine(absl::StrCat(
          d.device_id(), d.device_id() == ctx.device ? " (this command)" : "", ": ",
          d.online() ? absl::StrCat("online at gateway ", d.gateway_id(), " (epoch ", d.epoch(), ")")
                     : std::string("offline"),
          d.last_login_us() > 0 ? ", last login " + LocalTime(d.last_login_us()) : ""));
    }
    return 0;
  }
  if (cmd == "logout-device") {
    const std::string target = absl::GetFlag(FLAGS_device);
    r.mutable_logout_device()->set_device_id(target);
    if (!call(r, &reply)) return ServerError(reply, cmd);
    print_json_or(reply.logout_device(),
                  absl::StrCat("logged out device ", target,
                               ": its tokens have ended; a session of it closes within 5 s"));
    return 0;
  }
  if (cmd == "update-profile") {
    if (ctx.given.count("nickname")) r.mutable_update_profile()->set_nickname(nickname);
    if (ctx.given.count("avatar")) r.mutable_update_profile()->set_avatar(avatar);
    if (!call(r, &reply)) return ServerError(reply, "update-profile");
    const Profile& p = reply.update_profile().profile();
    print_json_or(reply.update_profile(),
                  absl::StrCat("profile updated: ", p.name(), "  nickname: ", p.nickname(),
                               p.avatar().empty() ? "" : "  avatar: " + p.avatar()));
    return 0;
  }
  if (cmd == "friends") {
    r.mutable_list_friends();
    if (!call(r, &reply)) return ServerError(reply, "friends");
    const FriendList& list = reply.list_friends().list();
    if (g_json) {
      PrintLine(ToJson(list));
      return 0;
    }
    std::vector<uint64_t> ids(list.blocked_ids().begin(), list.blocked_ids().end());
    for (const FriendEntry& f : list.friends()) ids.push_back(f.friend_id());
    names.Fetch(ids);
    if (list.friends().empty()) PrintLine("no friends yet");
    for (const FriendEntry& f : list.friends()) {
      PrintLine(absl::StrCat("user ", f.friend_id(), ": ", names.Label(f.friend_id()),
                             f.remark().empty() ? "" : "  remark: " + f.remark(),
                             "  friends since ", LocalTime(f.since_us())));
    }
    for (uint64_t id : list.blocked_ids()) {
      PrintLine(absl::StrCat("blocked: user ", id, ": ", names.Label(id)));
    }
    return 0;
  }
  if (cmd == "add-friend" || cmd == "remove-friend" || cmd == "remark" || cmd == "block" ||
      cmd == "unblock") {
    std::string done;
    if (cmd == "add-friend") {
      r.mutable_add_friend()->set_friend_id(user);
    } else if (cmd == "remove-friend") {
      r.mutable_remove_friend()->set_friend_id(user);
    } else if (cmd == "remark") {
      r.mutable_set_remark()->set_friend_id(user);
      r.mutable_set_remark()->set_remark(remark);
    } else {
      r.mutable_block()->set_target_id(user);
      r.mutable_block()->set_blocked(cmd == "block");
    }
    if (!call(r, &reply)) return ServerError(reply, cmd);
    const std::string who = names.Label(user);
    if (cmd == "add-friend") done = absl::StrCat(who, " (user ", user, ") and you are friends now");
    if (cmd == "remove-friend") done = absl::StrCat(who, " (user ", user, ") is no longer your friend");
    if (cmd == "remark") done = absl::StrCat("remark for ", who, " set to \"", remark, "\"");
    if (cmd == "block") done = absl::StrCat("blocked ", who, " (user ", user, ")");
    if (cmd == "unblock") done = absl::StrCat("unblocked ", who, " (user ", user, ")");
    print_json_or(reply, done);
    return 0;
  }
  auto group_line = [&](const Group& g) {
    return absl::StrCat("group ", g.group_id(), " \"", g.name(), "\": ", g.open() ? "open" : "closed",
                        ", ", g.member_count(), " member", g.member_count() == 1 ? "" : "s",
                        ", owner ", names.Label(g.owner_id()), g.dissolved() ? ", dissolved" : "",
                        ", created ", LocalTime(g.created_us()));
  };
  if (cmd == "create-group") {
    r.mutable_create_group()->set_name(group_name);
    for (uint64_t id : users) r.mutable_create_group()->add_member_ids(id);
    r.mutable_create_group()->set_open(absl::GetFlag(FLAGS_open));
    if (!call(r, &reply)) return ServerError(reply, cmd);
    print_json_or(reply.create_group(), "created " + group_line(reply.create_group().group()));
    return 0;
  }
  if (cmd == "invite" || cmd == "join" || cmd == "leave" || cmd == "kick" || cmd == "dissolve" ||
      cmd == "open-group" || cmd == "close-group") {
    std::string done;
    if (cmd == "invite") {
      r.mutable_invite()->set_group_id(group);
      for (uint64_t id : users) r.mutable_invite()->add_user_ids(id);
      std::vector<std::string> who;
      names.Fetch(users);
      for (uint64_t id : users) who.push_back(names.Label(id));
      done = absl::StrCat("invited ", absl::StrJoin(who, ", "), ": ");
    } else if (cmd == "join") {
      r.mutable_join_group()->set_group_id(group);
      done = "joined ";
    } else if (cmd == "leave") {
      r.mutable_leave_group()->set_group_id(group);
      done = absl::StrCat("left group ", group);
    } else if (cmd == "kick") {
      r.mutable_kick()->set_group_id(group);
      r.mutable_kick()->set_user_id(user);
      done = absl::StrCat("kicked ", names.Label(user), ": ");
    } else if (cmd == "dissolve") {
      r.mutable_dissolve()->set_group_id(group);
      done = absl::StrCat("dissolved group ", group);
    } else {
      r.mutable_set_group_open()->set_group_id(group);
      r.mutable_set_group_open()->set_open(cmd == "open-group");
      done = cmd == "open-group" ? "opened " : "closed ";
    }
    if (!call(r, &reply)) return ServerError(reply, cmd);
    if (reply.has_membership() && cmd != "leave" && cmd != "dissolve") {
      done += group_line(reply.membership().group());
    }
    print_json_or(reply, done);
    return 0;
  }
  if (cmd == "rename-group" || cmd == "transfer-group") {
    std::string done;
    if (cmd == "rename-group") {
      r.mutable_rename_group()->set_group_id(group);
      r.mutable_rename_group()->set_name(group_name);
      done = "renamed ";
    } else {
      r.mutable_transfer_ownership()->set_group_id(group);
      r.mutable_transfer_ownership()->set_new_owner_id(user);
      done = absl::StrCat("handed over to ", names.Label(user), ": ");
    }
    if (!call(r, &reply)) return ServerError(reply, cmd);
    print_json_or(reply, done + group_line(reply.membership().group()));
    return 0;
  }
  if (cmd == "group-info") {
    r.mutable_group_info()->set_group_id(group);
    if (!call(r, &reply)) return ServerError(reply, cmd);
    if (g_json) {
      PrintLine(ToJson(reply.group_info()));
      return 0;
    }
    PrintLine(group_line(reply.group_info().group()));
    std::vector<uint64_t> ids;
    for (const Member& m : reply.group_info().members()) ids.push_back(m.user_id());
    names.Fetch(ids);
    for (const Member& m : reply.group_info().members()) {
      PrintLine(absl::StrCat("  user ", m.user_id(), ": ", names.Label(m.user_id()),
                             m.is_owner() ? "  owner" : "", "  joined ", LocalTime(m.joined_us())));
    }
    return 0;
  }
  if (cmd == "members") {
    r.mutable_member_ids()->set_group_id(group);
    if (!call(r, &reply)) return ServerError(reply, cmd);
    if (g_json) {
      PrintLine(ToJson(reply.member_ids()));
      return 0;
    }
    std::vector<uint64_t> ids(reply.member_ids().member_ids().begin(),
                              reply.member_ids().member_ids().end());
    names.Fetch(ids);
    for (uint64_t id : ids) PrintLine(absl::StrCat("user ", id, ": ", names.Label(id)));
    return 0;
  }
  if (cmd == "groups") {
    r.mutable_user_groups();
    if (!call(r, &reply)) return ServerError(reply, cmd);
    if (g_json) {
      PrintLine(ToJson(reply.user_groups()));
      return 0;
    }
    if (reply.user_groups().group_ids().empty()) PrintLine("you are in no group");
    for (uint64_t id : reply.user_groups().group_ids()) {
      Request info;
      info.mutable_group_info()->set_group_id(id);
      Reply ir = s.Call(info);
      PrintLine(Ok(ir) ? group_line(ir.group_info().group()) : absl::StrCat("group ", id));
    }
    return 0;
  }
  if (cmd == "send" || cmd == "send-group") {
    const std::string msg_id = CliConnection::NewId("cli-msg");
    if (group != 0) {
      r.mutable_send_group()->set_group_id(group);
      r.mutable_send_group()->set_client_msg_id(msg_id);
      r.mutable_send_group()->set_body(text);
    } else {
      r.mutable_send_private()->set_to_user_id(absl::GetFlag(FLAGS_to));
      r.mutable_send_private()->set_client_msg_id(msg_id);
      r.mutable_send_private()->set_body(text);
    }
    // UNAVAILABLE leaves the outcome unknown: retry with the same client_msg_id
    // (the server answers a repeat with the first send's reply).
    for (int attempt = 0;; ++attempt) {
      reply = s.Call(r);
      const ErrorCode code = reply.status().code();
      if (Ok(reply) || attempt >= 2 ||
          (code != CODE_UNAVAILABLE && code != CODE_DEADLINE_EXCEEDED)) {
        break;
      }
      absl::SleepFor(absl::Milliseconds(300));
      if (!s.connection().connected()) {
        Reply o = s.Open();
        if (!Ok(o)) return ServerError(o, "send (outcome unknown; not retried further)");
      }
    }
    if (!Ok(reply)) return ServerError(reply, cmd);
    const SendReply& ack = reply.send();
    // One's own message is not news for the next sync.
    auto& cursor = ctx.state.cursors[ack.conversation()];
    if (cursor + 1 == ack.seq()) cursor = ack.seq();
    if (cursor == 0) ctx.state.cursors.erase(ack.conversation());
    ctx.state.Save();
    const std::string where = group != 0 ? names.GroupLabel(group)
                                         : names.Label(absl::GetFlag(FLAGS_to));
    print_json_or(ack, absl::StrCat("sent to ", where, " as ", ack.conversation(), " #", ack.seq(),
                                    " at ", LocalTime(ack.time_us())));
    return 0;
  }
  if (cmd == "recall") {
    r.mutable_recall()->set_conversation(conversation);
    r.mutable_recall()->set_seq(absl::GetFlag(FLAGS_seq));
    r.mutable_recall()->set_client_msg_id(CliConnection::NewId("cli-recall"));
    if (!call(r, &reply)) return ServerError(reply, cmd);
    auto& cursor = ctx.state.cursors[conversation];  // one's own recall is not news either
    if (cursor + 1 == reply.send().seq()) cursor = reply.send().seq();
    if (cursor == 0) ctx.state.cursors.erase(conversation);
    ctx.state.Save();
    print_json_or(reply.send(), absl::StrCat("recalled ", conversation, " #", absl::GetFlag(FLAGS_seq),
                                             " (the recall is #", reply.send().seq(), ")"));
    return 0;
  }
  if (cmd == "history") {
    // Older messages, newest page first; cursors and acks stay as they are.
    const uint64_t to = absl::GetFlag(FLAGS_to);
    const std::string conv = group != 0 ? absl::StrCat("g:", group)
                                        : absl::StrCat("p:", std::min(me, to), ":", std::max(me, to));
    r.mutable_history()->set_conversation(conv);
    r.mutable_history()->set_before_seq(absl::GetFlag(FLAGS_before));
    r.mutable_history()->set_limit(absl::GetFlag(FLAGS_limit));
    if (!call(r, &reply)) return ServerError(reply, cmd);
    const HistoryReply& h = reply.history();
    std::vector<uint64_t> senders;
    for (const Message& m : h.messages()) senders.push_back(m.sender_id());
    names.Fetch(senders);
    if (g_json) {
      std::vector<std::string> messages;
      for (const Message& m : h.messages()) messages.push_back(MessageJson(m, names.Name(m.sender_id())));
      PrintLine(absl::StrCat("{\"conversation\":", JsonString(conv), ",\"messages\":[",
                             absl::StrJoin(messages, ","), "],\"has_more\":",
                             h.has_more() ? "true" : "false", ",\"next_before_seq\":",
                             h.next_before_seq(), "}"));
      return 0;
    }
    if (h.messages().empty()) PrintLine(absl::StrCat("no messages in ", conv, " before that"));
    for (const Message& m : h.messages()) {
      PrintLine(absl::StrCat(LocalTime(m.time_us()), "  ", m.conversation(), " #", m.seq(), " [",
                             names.ConversationLabel(m.conversation()), "] ",
                             m.sender_id() == me ? "you" : names.Label(m.sender_id()), ": ",
                             MessageText(m)));
    }
    if (h.has_more()) {
      PrintLine(absl::StrCat("-- older messages remain: parley history ",
                             group != 0 ? absl::StrCat("--group=", group) : absl::StrCat("--to=", to),
                             " --before=", h.next_before_seq()));
    }
    return 0;
  }
  if (cmd == "conversations" || ((cmd == "read" || cmd == "ack") && absl::GetFlag(FLAGS_seq) == 0)) {
    r.mutable_list_conversations();
    if (!call(r, &reply)) return ServerError(reply, "list_conversations");
    if (cmd == "conversations") {
      if (g_json) {
        PrintLine(ToJson(reply.list_conversations()));
        return 0;
      }
      if (reply.list_conversations().conversations().empty()) PrintLine("no conversations yet");
      for (const ConversationState& c : reply.list_conversations().conversations()) {
        PrintLine(absl::StrCat(c.conversation(), "  ", names.ConversationLabel(c.conversation()),
                               ": ", c.max_seq(), " message", c.max_seq() == 1 ? "" : "s", ", ",
                               c.unread(), " unread (read up to #", c.read_seq(), ")"));
      }
      return 0;
    }
    uint64_t latest = 0;
    for (const ConversationState& c : reply.list_conversations().conversations()) {
      if (c.conversation() == conversation) latest = c.max_seq();
    }
    if (latest == 0) {
      Reply nf;
      nf.mutable_status()->set_code(CODE_NOT_FOUND);
      nf.mutable_status()->set_message(absl::StrCat("no conversation ", conversation, " of yours"));
      return ServerError(nf, cmd);
    }
    absl::SetFlag(&FLAGS_seq, latest);
    r.Clear();
  }
  if (cmd == "read" || cmd == "ack") {
    if (cmd == "read") {
      r.mutable_read()->set_conversation(conversation);
      r.mutable_read()->set_seq(absl::GetFlag(FLAGS_seq));
    } else {
      r.mutable_ack()->set_conversation(conversation);
      r.mutable_ack()->set_seq(absl::GetFlag(FLAGS_seq));
    }
    if (!call(r, &reply)) return ServerError(reply, cmd);
    const CursorReply& c = reply.cursor();
    print_json_or(c, cmd == "read"
                         ? absl::StrCat("read ", conversation, " up to #", c.read_seq(), "; ",
                                        c.unread(), " unread")
                         : absl::StrCat("acked ", conversation, " up to #", c.delivered_seq()));
    return 0;
  }
  if (cmd == "sync") {
    std::map<std::string, uint64_t> cursors =
        absl::GetFlag(FLAGS_all) ? std::map<std::string, uint64_t>() : ctx.state.cursors;
    std::map<std::string, uint64_t> moved;
    size_t printed = 0;
    for (int round = 0;; ++round) {
      Request sync;
      sync.mutable_sync()->set_max_messages(200);
      for (const auto& [c, seq] : cursors) {
        Cursor* k = sync.mutable_sync()->add_cursors();
        k->set_conversation(c);
        k->set_seq(seq);
      }
      if (!call(sync, &reply)) return ServerError(reply, "sync");
      std::vector<uint64_t> senders;
      for (const ConversationPage& p : reply.sync().conversations()) {
        for (const Message& m : p.messages()) senders.push_back(m.sender_id());
      }
      names.Fetch(senders);
      for (const ConversationPage& p : reply.sync().conversations()) {
        for (const Message& m : p.messages()) {
          ++printed;
          if (g_json) {
            PrintLine(MessageJson(m, names.Name(m.sender_id())));
          } else {
            PrintLine(absl::StrCat(LocalTime(m.time_us()), "  ", m.conversation(), " #", m.seq(),
                                   " [", names.ConversationLabel(m.conversation()), "] ",
                                   m.sender_id() == me ? "you" : names.Label(m.sender_id()), ": ",
                                   MessageText(m)));
          }
        }
        uint64_t through = p.through_seq();
        if (through == 0 && p.messages_size() > 0) through = p.messages().rbegin()->seq();
        if (through > cursors[p.conversation()]) {
          cursors[p.conversation()] = through;
          moved[p.conversation()] = through;
        }
      }
      if (!reply.sync().has_more() || round > 10000) break;
    }
    for (const auto& [c, seq] : cursors) {
      if (seq > ctx.state.cursors[c]) ctx.state.cursors[c] = seq;
    }
    ctx.state.Save();
    for (const auto& [c, seq] : moved) {  // delivered on this device
      Request ack;
      ack.mutable_ack()->set_conversation(c);
      ack.mutable_ack()->set_seq(seq);
      s.Call(ack);  // best effort: a refused ack (a group left since) changes nothing here
    }
    if (!g_json && printed == 0) PrintLine("no new messages");
    return 0;
  }
  if (cmd == "chat") return RunChat(ctx, s, names);
  return UsageError("unknown command '" + cmd + "'");
}

// ---- chat: the reference client, online until /quit or end of input ---------------------
class ChatPrinter : public ClientObserver {
 public:
  ChatPrinter(std::map<uint64_t, std::string> labels, uint64_t me)
      : labels_(std::move(labels)), me_(me) {}
  void OnDelivered(const std::string&, const Message& m) override {
    if (g_json) return PrintLine(MessageJson(m, ""));
    PrintLine(absl::StrCat(LocalTime(m.time_us()), "  ", m.conversation(), " #", m.seq(), " ",
                           Who(m.sender_id()), ": ", MessageText(m)));
  }
  void OnSendAcked(const std::string&, const std::string&, const SendReply& ack) override {
    if (g_json) return PrintLine(ToJson(ack));
    PrintLine(absl::StrCat("-- sent as ", ack.conversation(), " #", ack.seq(), " at ",
                           LocalTime(ack.time_us())));
  }
  void OnSendFailed(const std::string&, const std::string& id, const absl::Status& s) override {
    PrintLine(absl::StrCat("-- not sent: ", absl::StatusCodeToString(s.code()), ": ", s.message()));
  }

 private:
  std::string Who(uint64_t id) {
    if (id == me_) return "you";
    auto it = labels_.find(id);
    return it == labels_.end() ? absl::StrCat("user ", id) : it->second;
  }
  std::map<uint64_t, std::string> labels_;
  uint64_t me_;
};

int RunChat(Ctx& ctx, Session& s, Names& names) {
  // Names of the people one is likely to hear from: friends and group members.
  std::map<uint64_t, std::string> labels;
  std::vector<uint64_t> ids;
  Request r;
  Reply reply;
  r.mutable_list_friends();
  reply = s.Call(r);
  for (const FriendEntry& f : reply.list_friends().list().friends()) ids.push_back(f.friend_id());
  r.Clear();
  r.mutable_user_groups();
  reply = s.Call(r);
  for (uint64_t g : reply.user_groups().group_ids()) {
    Request m;
    m.mutable_member_ids()->set_group_id(g);
    Reply mr = s.Call(m);
    for (uint64_t id : mr.member_ids().member_ids()) ids.push_back(id);
  }
  names.Fetch(ids);
  for (uint64_t id : ids) labels[id] = names.Label(id);
  const uint64_t me = s.me();
  const std::string server = s.server();
  s.connection().Close();  // the reference client logs in on its own

  // Start from the cursors of the last sync or chat: no old history.
  auto store = std::make_unique<MemStore>();
  {
    WriteBatch batch;
    batch.Put("c/epoch", absl::StrCat(ctx.state.epoch));
    for (const auto& [c, seq] : ctx.state.cursors) batch.Put("c/cursor/" + c, absl::StrCat(seq));
    (void)store->Write(batch);
  }
  ChatPrinter printer(labels, me);
  ClientOptions o;
  o.name = ctx.name;
  o.password = ctx.password;
  o.device_id = ctx.device;
  o.fixed_gateway = "gw";
  o.auto_register = false;
  o.observer = &printer;
  // Servers in turn, starting with the one that just answered.
  std::vector<std::string> servers = {server};
  for (const std::string& x : ctx.servers) {
    if (x != server) servers.push_back(x);
  }
  TcpClientHost host("client." + ctx.name, servers, std::move(store),
                     static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())));
  host.Start([o](Env* e) { return std::make_unique<Client>(e, o); });
  if (!g_json) {
    PrintLine(absl::StrCat("chatting as ", names.Label(me), " (user ", me, ") at ", server,
                           "; /to USER_ID text, /group GROUP_ID text, /quit"));
  }
  std::atomic<bool> quit{false};
  std::thread watcher([&] {
    Client::State last = Client::State::kConnecting;
    bool ever_online = false;
    size_t last_pending = 0;
    while (!quit) {
      Client::State st;
      size_t pending = 0;
      host.RunOnLoop([&](Node* n) {
        auto* c = dynamic_cast<Client*>(n);
        st = c->state();
        pending = c->pending_sends();
      });
      if (st != last) {
        if (st == Client::State::kOnline) {
          PrintLine(ever_online ? absl::StrCat("-- reconnected", pending > 0 ? absl::StrCat("; ", pending,
                                                                         " pending send(s) going out")
                                                                   : std::string())
                                : "-- online");
          ever_online = true;
        } else if (last == Client::State::kOnline) {
          PrintLine(absl::StrCat("-- disconnected from the server; reconnecting",
                                 pending > 0 ? absl::StrCat(" (", pending, " pending)") : "",
                                 " ..."));
        }
        last = st;
      } else if (st != Client::State::kOnline && pending != last_pending && pending > 0) {
        PrintLine(absl::StrCat("-- offline: ", pending, " send(s) pending"));
      }
      last_pending = pending;
      absl::SleepFor(absl::Milliseconds(100));
    }
  });
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string verb;
    uint64_t id = 0;
    in >> verb >> id;
    std::string text;
    std::getline(in, text);
    if (!text.empty() && text[0] == ' ') text.erase(0, 1);
    if (verb == "/quit") break;
    if ((verb != "/to" && verb != "/group") || id == 0 || text.empty()) {
      PrintLine("? /to USER_ID text | /group GROUP_ID text | /quit");
      continue;
    }
    if (text.size() > kMaxBody) {
      PrintLine(absl::StrCat("-- not sent: ", TooLong("the message", text.size(), kMaxBody)));
      continue;
    }
    host.RunOnLoop([&](Node* n) {
      auto* c = dynamic_cast<Client*>(n);
      verb == "/to" ? c->SendPrivate(id, text) : c->SendGroup(id, text);
    });
  }
  // Let queued sends go out (briefly), then keep where we are for next time.
  WaitForClient(host, [](Client* c) { return c->pending_sends() == 0; }, absl::Seconds(5));
  size_t pending = 0;
  host.RunOnLoop([&](Node* n) {
    auto* c = dynamic_cast<Client*>(n);
    pending = c->pending_sends();
    for (const Message& m : c->delivered()) ctx.state.cursors[m.conversation()];
    for (auto& [conv, seq] : ctx.state.cursors) seq = std::max(seq, c->cursor(conv));
    std::string epoch;
    uint64_t e = 0;
    if (host.Store().Get("c/epoch", &epoch).ok() && absl::SimpleAtoi(epoch, &e)) {
      ctx.state.epoch = std::max(ctx.state.epoch, e);
    }
  });
  quit = true;
  watcher.join();
  host.Stop();
  ctx.state.Save();
  if (pending > 0) {
    std::cerr << "parley: " << pending << " message(s) were not sent (no connection)" << std::endl;
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace parley

int main(int argc, char** argv) {
  using parley::FindCommand;
  // Help and the command come first: nothing is parsed or sent for them.
  std::vector<std::string> positional;
  bool help = false;
  std::set<std::string> given;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h" || a == "-help" || a == "--helpfull") {
      help = true;
    } else if (a.rfind("-", 0) == 0) {
      a = a.substr(a.find_first_not_of('-'));
      given.insert(a.substr(0, a.find('=')));
    } else {
      positional.push_back(a);
    }
  }
  if (positional.empty()) {
    std::cout << parley::Usage();
    return help ? 0 : 2;
  }
  if (positional[0] == "help") {
    if (positional.size() < 2) {
      std::cout << parley::Usage();
      return 0;
    }
    const parley::Command* c = FindCommand(positional[1]);
    if (c == nullptr) {
      std::cerr << "parley: unknown command '" << positional[1] << "'\n" << parley::Usage();
      return 2;
    }
    std::cout << parley::CommandHelp(*c);
    return 0;
  }
  const parley::Command* c = FindCommand(positional[0]);
  if (c == nullptr) {
    std::cerr << "parley: unknown command '" << positional[0] << "'\n" << parley::Usage();
    return 2;
  }
  if (help) {
    std::cout << parley::CommandHelp(*c);
    return 0;
  }
  absl::SetProgramUsageMessage(parley::Usage());
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2) {
    std::cerr << "parley: one command at a time\n" << parley::Usage();
    return 2;
  }
  parley::Ctx ctx;
  ctx.command = args[1];
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_server), ',', absl::SkipWhitespace())) {
    ctx.servers.emplace_back(absl::StripAsciiWhitespace(s));
  }
  if (ctx.servers.empty()) return parley::UsageError("--server is empty");
  ctx.name = absl::GetFlag(FLAGS_name);
  ctx.password = absl::GetFlag(FLAGS_password);
  ctx.device = absl::GetFlag(FLAGS_device);
  // logout-device's --device names the device to log out; it logs in as cli.
  if (ctx.device.empty() || ctx.command == "logout-device") {
    ctx.device = ctx.command == "chat" ? "cli-chat" : "cli";
  }
  ctx.given = std::move(given);
  parley::g_json = absl::GetFlag(FLAGS_json);
  return parley::Run(ctx);
}
