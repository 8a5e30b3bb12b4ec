// Core CPU per message: send -> commit -> dispatch through a message shard,
// the group service (membership) and kv (presence), all in one process on the
// in-memory fakes with zero network latency. Also sync of 1,000 messages and
// applying one profile event.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "core/message/conversation.h"
#include "core/message/message_keys.h"
#include "core/services.h"
#include "core/status.h"
#include "fakes/core_cluster.h"

namespace parley {
namespace {

CoreClusterOptions BenchOptions() {
  CoreClusterOptions o;
  o.cluster.latency = absl::ZeroDuration();
  o.shards = 1;
  o.gateways = 1;
  o.message.open_private = false;
  o.group.max_members = 5000;
  o.group.max_ids_per_request = 5000;
  o.friends.max_check_ids = 5000;
  return o;
}

// A cluster with `members` users who are all friends of user 1, all in one
// group with presence on gw.1 (so each message is pushed once).
struct Fixture {
  explicit Fixture(int members) : c(BenchOptions()) {
    owner = c.Register("owner");
    Request create;
    create.mutable_create_group()->set_name("bench");
    for (int i = 0; i < members; ++i) {
      const uint64_t id = c.Register(absl::StrCat("member", i));
      if (!c.Befriend(owner, id).ok()) abort();
      create.mutable_create_group()->add_member_ids(id);
      if (i == 0) friend_id = id;
    }
    Reply reply = c.Call(CoreCluster::Address(kGroupService), create, owner);
    if (reply.status().code() != CODE_OK) abort();
    group = reply.create_group().group().group_id();
    Request presence;
    for (uint64_t u = 1; u <= owner + members; ++u) {
      PresenceRecord p;
      p.set_user_id(u);
      p.set_device_id("d1");
      p.set_gateway_id("1");
      p.set_epoch(1);
      KvWrite* w = presence.mutable_kv_set()->add_writes();
      w->set_key(message_keys::Presence(u, "d1"));
      w->set_value(p.SerializeAsString());
      w->set_version(1);
      w->set_mode(KvWrite::ALWAYS);
    }
    if (c.Call(kKvAddress, presence).status().code() != CODE_OK) abort();
    c.Settle();
  }

  // Sends one message and runs until it is committed and dispatched.
  void Send(const Request& request) {
    const uint64_t id = c.net().Send(ShardAddress(0), request, owner);
    c.net().RunUntilIdle();
    if (!c.net().TakeReply(id).has_value()) abort();
  }

  CoreCluster c;
  uint64_t owner = 0;
  uint64_t friend_id = 0;
  uint64_t group = 0;
};

void BM_SendPrivate(benchmark::State& state) {
  Fixture f(1);
  uint64_t n = 0;
  for (auto _ : state) {
    Request r;
    r.mutable_send_private()->set_to_user_id(f.friend_id);
    r.mutable_send_private()->set_client_msg_id(absl::StrCat("m", ++n));
    r.mutable_send_private()->set_body(std::string(128, 'x'));
    f.Send(r);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["pushes_per_msg"] = benchmark::Counter(
      static_cast<double>(f.c.shard(0)->stats().pushes) / state.iterations());
}
BENCHMARK(BM_SendPrivate)->Unit(benchmark::kMicrosecond);

void BM_SendGroup(benchmark::State& state) {
  Fixture f(static_cast<int>(state.range(0)));
  uint64_t n = 0;
  const uint64_t pushes_before = f.c.shard(0)->stats().pushes;
  for (auto _ : state) {
    Request r;
    r.mutable_send_group()->set_group_id(f.group);
    r.mutable_send_group()->set_client_msg_id(absl::StrCat("m", ++n));
    r.mutable_send_group()->set_body(std::string(128, 'x'));
    f.Send(r);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["pushes_per_msg"] = benchmark::Counter(
      static_cast<double>(f.c.shard(0)->stats().pushes - pushes_before) / state.iterations());
  state.counters["targets_per_msg"] = benchmark::Counter(
      static_cast<double>(f.c.shard(0)->stats().push_targets) / state.iterations());
}
BENCHMARK(BM_SendGroup)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

void BM_Sync1000(benchmark::State& state) {
  Fixture f(1);
  for (int i = 0; i < 1000; ++i) {
    Request r;
    r.mutable_send_private()->set_to_user_id(f.friend_id);
    r.mutable_send_private()->set_client_msg_id(absl::StrCat("m", i));
    r.mutable_send_private()->set_body(std::string(128, 'x'));
    f.Send(r);
  }
  Request sync;
  sync.mutable_shard_sync()->set_user_id(f.friend_id);
  sync.mutable_shard_sync()->set_max_messages(1000);
  for (auto _ : state) {
    const uint64_t id = f.c.net().Send(ShardAddress(0), sync);
    f.c.net().RunUntilIdle();
    std::optional<Reply> reply = f.c.net().TakeReply(id);
    if (!reply.has_value() || reply->sync().conversations(0).messages_size() != 1000) abort();
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_Sync1000)->Unit(benchmark::kMicrosecond);

void BM_ApplyProfileEvent(benchmark::State& state) {
  Fixture f(10);
  const std::string group = CoreCluster::Address(kGroupService);
  uint64_t version = 100;
  for (auto _ : state) {
    Event e;
    e.set_event_id(absl::StrCat("bench/", version));
    e.set_version(++version);
    e.mutable_user_profile_changed()->set_user_id(f.friend_id);
    e.mutable_user_profile_changed()->set_version(version);
    e.mutable_user_profile_changed()->set_nickname(absl::StrCat("n", version));
    f.c.net().InjectEvent(group, e);
    f.c.net().RunUntilIdle();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ApplyProfileEvent)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace parley
