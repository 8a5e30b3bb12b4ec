// parley: the command-line client. Every command logs in (or registers) as
// --name over TCP with the reference client, does its work and exits; `chat`
// stays connected and shows messages as they arrive.
#include <atomic>
#include <chrono>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "core/client/client.h"
#include "core/status.h"
#include "fakes/mem_store.h"
#include "server/client_driver.h"
#include "server/tcp_client_host.h"

ABSL_FLAG(std::string, server, "127.0.0.1:7700", "HOST:PORT of a parleyd");
ABSL_FLAG(std::string, name, "", "user name");
ABSL_FLAG(std::string, password, "", "password");
ABSL_FLAG(std::string, nickname, "", "register: nickname");
ABSL_FLAG(std::string, device, "cli", "device id");
ABSL_FLAG(uint64_t, to, 0, "send: recipient user id");
ABSL_FLAG(uint64_t, group, 0, "send/invite: group id");
ABSL_FLAG(std::string, text, "", "send: the message");
ABSL_FLAG(std::string, group_name, "", "create-group: its name");
ABSL_FLAG(std::string, users, "", "create-group/invite: comma-separated user ids");
ABSL_FLAG(uint64_t, user, 0, "add-friend: user id");
ABSL_FLAG(std::string, conversation, "", "recall: conversation id");
ABSL_FLAG(uint64_t, seq, 0, "recall: seq");

namespace parley {
namespace {

constexpr const char* kUsage =
    "parley <command> --name=N --password=P [--server=HOST:PORT] [flags]\n"
    "  register [--nickname=X]          create the user (then log in)\n"
    "  add-friend --user=ID\n"
    "  send --to=USER_ID --text=T       a private message\n"
    "  send --group=GROUP_ID --text=T   a group message\n"
    "  create-group --group_name=X [--users=1,2]\n"
    "  invite --group=ID --users=1,2\n"
    "  recall --conversation=C --seq=N\n"
    "  sync                             print every message since the beginning\n"
    "  chat                             stay online; type '/to ID text', '/group ID text', '/quit'\n";

std::mutex print_mu;

class Printer : public ClientObserver {
 public:
  void OnDelivered(const std::string&, const Message& m) override {
    std::lock_guard<std::mutex> lock(print_mu);
    std::cout << m.conversation() << "#" << m.seq() << " from " << m.sender_id() << ": "
              << (m.kind() == Message::RECALL ? "(recalled #" + std::to_string(m.recalled_seq()) + ")"
                                              : m.body())
              << std::endl;
  }
  void OnSendAcked(const std::string&, const std::string& id, const SendReply& ack) override {
    std::lock_guard<std::mutex> lock(print_mu);
    std::cout << "sent " << id << " as " << ack.conversation() << "#" << ack.seq() << std::endl;
    ++acked;
  }
  void OnSendFailed(const std::string&, const std::string& id, const absl::Status& s) override {
    std::lock_guard<std::mutex> lock(print_mu);
    std::cout << "failed " << id << ": " << s.message() << std::endl;
    ++failed;
  }
  std::atomic<int> acked{0}, failed{0};
};

int Report(const Reply& r) {
  if (r.status().code() != CODE_OK) {
    std::cerr << "parley: " << ErrorCode_Name(r.status().code()) << ": " << r.status().message() << "\n";
    return 1;
  }
  std::cout << r.ShortDebugString() << "\n";
  return 0;
}

std::vector<uint64_t> Ids(const std::string& csv) {
  std::vector<uint64_t> out;
  for (absl::string_view s : absl::StrSplit(csv, ',', absl::SkipEmpty())) {
    uint64_t id = 0;
    if (absl::SimpleAtoi(s, &id)) out.push_back(id);
  }
  return out;
}

int Main(const std::string& command) {
  if (absl::GetFlag(FLAGS_name).empty() || absl::GetFlag(FLAGS_password).empty()) {
    std::cerr << kUsage;
    return 2;
  }
  Printer printer;
  ClientOptions o;
  o.name = absl::GetFlag(FLAGS_name);
  o.password = absl::GetFlag(FLAGS_password);
  o.nickname = absl::GetFlag(FLAGS_nickname);
  o.device_id = absl::GetFlag(FLAGS_device);
  o.fixed_gateway = "gw";
  o.auto_register = command == "register";
  o.observer = &printer;
  TcpClientHost host("client." + o.name, {absl::GetFlag(FLAGS_server)}, std::make_unique<MemStore>(),
                     std::chrono::steady_clock::now().time_since_epoch().count());
  host.Start([o](Env* e) { return std::make_unique<Client>(e, o); });
  if (!WaitForClient(host, [](Client* c) { return c->state() == Client::State::kOnline; },
                     absl::Seconds(10))) {
    std::cerr << "parley: could not log in at " << absl::GetFlag(FLAGS_server)
              << " (is parleyd running? are name and password right?)\n";
    return 1;
  }
  uint64_t me = 0;
  host.RunOnLoop([&](Node* n) { me = dynamic_cast<Client*>(n)->user_id(); });
  if (command == "register") {
    std::cout << "user " << o.name << " has id " << me << "\n";
    return 0;
  }
  Request r;
  if (command == "add-friend") {
    r.mutable_add_friend()->set_friend_id(absl::GetFlag(FLAGS_user));
    return Report(CallClient(host, r));
  }
  if (command == "create-group") {
    r.mutable_create_group()->set_name(absl::GetFlag(FLAGS_group_name));
    for (uint64_t id : Ids(absl::GetFlag(FLAGS_users))) r.mutable_create_group()->add_member_ids(id);
    return Report(CallClient(host, r));
  }
  if (command == "invite") {
    r.mutable_invite()->set_group_id(absl::GetFlag(FLAGS_group));
    for (uint64_t id : Ids(absl::GetFlag(FLAGS_users))) r.mutable_invite()->add_user_ids(id);
    return Report(CallClient(host, r));
  }
  if (command == "recall") {
    r.mutable_recall()->set_conversation(absl::GetFlag(FLAGS_conversation));
    r.mutable_recall()->set_seq(absl::GetFlag(FLAGS_seq));
    r.mutable_recall()->set_client_msg_id("cli-recall-" + std::to_string(absl::GetFlag(FLAGS_seq)));
    return Report(CallClient(host, r));
  }
  if (command == "send") {
    host.RunOnLoop([&](Node* n) {
      auto* c = dynamic_cast<Client*>(n);
      if (absl::GetFlag(FLAGS_group) != 0) {
        c->SendGroup(absl::GetFlag(FLAGS_group), absl::GetFlag(FLAGS_text));
      } else {
        c->SendPrivate(absl::GetFlag(FLAGS_to), absl::GetFlag(FLAGS_text));
      }
    });
    WaitForClient(host, [](Client* c) { return c->pending_sends() == 0; }, absl::Seconds(10));
    return printer.acked > 0 ? 0 : 1;
  }
  if (command == "sync") {
    // Delivered messages print as they arrive; stop once nothing new comes.
    size_t last = SIZE_MAX, n = 0;
    for (int quiet = 0; quiet < 10;) {
      host.RunOnLoop([&](Node* node) { n = dynamic_cast<Client*>(node)->delivered().size(); });
      quiet = n == last ? quiet + 1 : 0;
      last = n;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return 0;
  }
  if (command == "chat") {
    std::cout << "logged in as " << o.name << " (user " << me << "); /to ID text, /group ID text, /quit\n";
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
        std::lock_guard<std::mutex> lock(print_mu);
        std::cout << "? /to ID text | /group ID text | /quit\n";
        continue;
      }
      host.RunOnLoop([&](Node* n) {
        auto* c = dynamic_cast<Client*>(n);
        verb == "/to" ? c->SendPrivate(id, text) : c->SendGroup(id, text);
      });
    }
    return 0;
  }
  std::cerr << "parley: unknown command '" << command << "'\n" << kUsage;
  return 2;
}

}  // namespace
}  // namespace parley

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(parley::kUsage);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2) {
    std::cerr << parley::kUsage;
    return 2;
  }
  return parley::Main(args[1]);
}
