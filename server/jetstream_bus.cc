#include "server/jetstream_bus.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/env.h"
#include "server/node_host.h"
#include "server/thread_name.h"

namespace parley {
namespace {

constexpr char kSubjectPrefix[] = "parley.evt.";

}  // namespace

absl::StatusOr<std::unique_ptr<JetStreamBus>> JetStreamBus::Create(natsConnection* conn,
                                                                  Options options) {
  jsCtx* js = nullptr;
  natsStatus s = natsConnection_JetStream(&js, conn, nullptr);
  if (s != NATS_OK) {
    return absl::UnavailableError(absl::StrCat("JetStream context: ", natsStatus_GetText(s)));
  }
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = options.stream.c_str();
  const char* subjects[] = {"parley.evt.>"};
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  cfg.Duplicates = absl::ToInt64Nanoseconds(options.duplicates_window);  // nanoseconds
  cfg.Replicas = options.replicas;
  jsErrCode err = static_cast<jsErrCode>(0);
  const absl::Time deadline = absl::Now() + options.create_timeout;
  for (;;) {
    jsStreamInfo* info = nullptr;
    err = static_cast<jsErrCode>(0);
    s = js_AddStream(&info, js, &cfg, nullptr, &err);
    if (info != nullptr) jsStreamInfo_Destroy(info);
    if (s == NATS_OK || err == JSStreamNameExistErr || absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(250));  // e.g. no JetStream leader elected yet
  }
  if (s != NATS_OK && err != JSStreamNameExistErr) {
    jsCtx_Destroy(js);
    return absl::UnavailableError(absl::StrCat("creating stream ", options.stream, ": ",
                                               natsStatus_GetText(s), " (", err, ")"));
  }
  if (s != NATS_OK) {
    // It exists with another configuration (nats-server answers an identical
    // one with OK): e.g. made with a shorter dedup window. Bring it to ours.
    jsStreamInfo* info = nullptr;
    err = static_cast<jsErrCode>(0);
    s = js_UpdateStream(&info, js, &cfg, nullptr, &err);
    if (info != nullptr) jsStreamInfo_Destroy(info);
    if (s != NATS_OK) {
      const char* detail = nats_GetLastError(nullptr);
      const std::string last = detail != nullptr ? detail : "";
      jsCtx_Destroy(js);
      return absl::FailedPreconditionError(absl::StrCat(
          "stream ", options.stream, " exists with a configuration that cannot be updated to "
          "parleyd's (file storage, ", options.replicas, " replicas, dedup window ",
          absl::FormatDuration(options.duplicates_window), "): ", natsStatus_GetText(s), " (",
          err, ") ", last, "; update or delete it with the nats CLI"));
    }
  }
  auto bus = std::unique_ptr<JetStreamBus>(new JetStreamBus(js, std::move(options)));
  bus->publisher_ = std::thread([b = bus.get()] {
    NameThisThread("js.publish");
    b->PublishLoop();
  });
  return bus;
}

JetStreamBus::~JetStreamBus() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (publisher_.joinable()) publisher_.join();
  for (auto& [name, group] : groups_) {
    if (group->fetcher.joinable()) group->fetcher.join();
    if (group->sub != nullptr) natsSubscription_Destroy(group->sub);
  }
  for (auto& [id, msg] : pending_) natsMsg_Destroy(msg);  // redelivered by the server later
  jsCtx_Destroy(js_);
}

void JetStreamBus::OnReconnected() {
  ++reconnects_;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [address, host] : hosts_) host->DeliverBusReconnected();
}

void JetStreamBus::Attach(Endpoint* host) {
  std::lock_guard<std::mutex> lock(mu_);
  hosts_[host->Self()] = host;
}

void JetStreamBus::Detach(const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  hosts_.erase(address);
}

void JetStreamBus::Publish(const std::string& from, const Event& event) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (to_publish_.size() >= options_.max_queued_publishes) {
      ++dropped_publishes_;  // the outbox publishes it again
      return;
    }
    to_publish_.emplace_back(from, event);
  }
  cv_.notify_all();
}

void JetStreamBus::PublishLoop() {
  for (;;) {
    std::pair<std::string, Event> item;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !to_publish_.empty(); });
      if (stopping_) return;
      item = std::move(to_publish_.front());
      to_publish_.pop_front();
    }
    const std::string data = item.second.SerializeAsString();
    const std::string subject = kSubjectPrefix + EventTopic(item.second);
    jsPubOptions opts;
    jsPubOptions_Init(&opts);
    opts.MsgId = item.second.event_id().c_str();  // the stream drops a duplicate id
    jsPubAck* ack = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    const natsStatus s = js_Publish(&ack, js_, subject.c_str(), data.data(),
                                    static_cast<int>(data.size()), &opts, &err);
    if (ack != nullptr) jsPubAck_Destroy(ack);
    if (s != NATS_OK) {
      ++publish_failures_;  // not acked: the outbox relay publishes again
      continue;
    }
    ++published_;
    std::lock_guard<std::mutex> lock(mu_);
    auto host = hosts_.find(item.first);
    if (host != hosts_.end()) host->second->DeliverPublishAck(item.second.event_id());
  }
}

void JetStreamBus::Subscribe(const std::string& address, const std::string& group_name,
                             const std::vector<std::string>& topics) {
  std::lock_guard<std::mutex> lock(mu_);
  std::unique_ptr<Group>& group = groups_[group_name];
  if (group == nullptr) {
    group = std::make_unique<Group>();
    group->name = group_name;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Config.AckWait = absl::ToInt64Nanoseconds(options_.ack_wait);  // nanoseconds
    so.Config.AckPolicy = js_AckExplicit;
    so.ManualAck = true;
    jsErrCode err = static_cast<jsErrCode>(0);
    const std::string durable = "parley_" + group_name;
    if (js_PullSubscribe(&group->sub, js_, "parley.evt.>", durable.c_str(), nullptr, &so, &err) !=
        NATS_OK) {
      group->sub = nullptr;
      return;  // the node's events stay in the stream until a member subscribes again
    }
    group->fetcher = std::thread([this, g = group.get(), group_name] {
      NameThisThread("js." + group_name);
      FetchLoop(g);
    });
  }
  group->topics.insert(topics.begin(), topics.end());
  if (std::find(group->members.begin(), group->members.end(), address) == group->members.end()) {
    group->members.push_back(address);
  }
}

void JetStreamBus::FetchLoop(Group* group) {
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    natsMsgList list = {nullptr, 0};
    jsErrCode err = static_cast<jsErrCode>(0);
    // Batch 1 (see the header); NATS_TIMEOUT just means nothing yet (or a
    // stale status): loop.
    const natsStatus s = natsSubscription_Fetch(&list, group->sub, 1, 500, &err);
    if (s != NATS_OK) {
      if (s != NATS_TIMEOUT) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    for (int i = 0; i < list.Count; ++i) {
      natsMsg* msg = list.Msgs[i];
      list.Msgs[i] = nullptr;
      Event event;
      if (!event.ParseFromArray(natsMsg_GetData(msg), natsMsg_GetDataLength(msg))) {
        natsMsg_Ack(msg, nullptr);  // garbage: nobody can ever apply it
        natsMsg_Destroy(msg);
        continue;
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (group->topics.count(EventTopic(event)) == 0) {
        natsMsg_Ack(msg, nullptr);  // not for this group
        natsMsg_Destroy(msg);
        continue;
      }
      Endpoint* target = nullptr;
      for (size_t k = 0; k < group->members.size() && target == nullptr; ++k) {
        auto host = hosts_.find(group->members[(group->next + k) % group->members.size()]);
        if (host != hosts_.end()) {
          target = host->second;
          group->next += k + 1;
        }
      }
      if (target == nullptr) {
        natsMsg_Nak(msg, nullptr);
        natsMsg_Destroy(msg);
        continue;
      }
      const uint64_t id = next_delivery_++;
      pending_[id] = msg;
      ++delivered_;
      target->DeliverEvent(std::move(event), id);
    }
    natsMsgList_Destroy(&list);
  }
}

void JetStreamBus::AckEvent(uint64_t delivery_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pending_.find(delivery_id);
  if (it == pending_.end()) return;
  natsMsg_Ack(it->second, nullptr);
  natsMsg_Destroy(it->second);
  pending_.erase(it);
}

}  // namespace parley
