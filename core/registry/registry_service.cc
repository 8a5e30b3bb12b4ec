#include "core/registry/registry_service.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace parley {
namespace {

constexpr size_t kMaxNameLength = 128;

absl::Status ValidateName(const std::string& what, const std::string& value) {
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  if (value.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is longer than ", kMaxNameLength, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

RegistryService::RegistryService(Env* env, RegistryOptions options)
    : ServiceNode(env, ServiceOptions()), options_(options) {}

absl::Status RegistryService::OnStart() {
  timers().After(options_.sweep_interval, [this] { Sweep(); });
  return absl::OkStatus();
}

void RegistryService::HandleRequest(const Envelope& envelope) {
  const Request& request = envelope.request();
  Reply reply;
  switch (request.op_case()) {
    case Request::kRegisterInstance:
      reply = Register(request.register_instance());
      break;
    case Request::kDeregisterInstance:
      reply = Deregister(request.deregister_instance());
      break;
    case Request::kDiscover: {
      absl::Status s = ValidateName("service", request.discover().service());
      if (!s.ok()) {
        reply = ErrorReply(s);
        break;
      }
      *reply.mutable_discover() = Healthy(request.discover().service());
      break;
    }
    case Request::kWatch:
      reply = Watch(envelope);
      break;
    default:
      reply = ErrorReply(absl::UnimplementedError("the registry does not serve this request"));
  }
  Respond(envelope, std::move(reply));
}

Reply RegistryService::Register(const RegisterInstanceRequest& request) {
  const Instance& instance = request.instance();
  for (const auto& [what, value] : {std::make_pair("service", instance.service()),
                                    std::make_pair("instance_id", instance.instance_id()),
                                    std::make_pair("address", instance.address())}) {
    absl::Status s = ValidateName(what, value);
    if (!s.ok()) return ErrorReply(s);
  }
  const Key key(instance.service(), instance.instance_id());
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    if (entries_.size() >= options_.max_instances) {
      return ErrorReply(absl::ResourceExhaustedError(
          absl::StrCat("registry holds its limit of ", options_.max_instances, " instances")));
    }
    entries_[key] = Entry{instance, env().Now()};
    ++stats_.registered;
    Changed(instance.service());
  } else {
    it->second.last_heartbeat = env().Now();
    if (it->second.instance.SerializeAsString() != instance.SerializeAsString()) {
      it->second.instance = instance;
      Changed(instance.service());
    }
  }
  Reply reply;
  reply.mutable_register_instance()->set_revision(revision_);
  return reply;
}

Reply RegistryService::Deregister(const DeregisterInstanceRequest& request) {
  Reply reply;
  const bool removed = entries_.erase(Key(request.service(), request.instance_id())) > 0;
  reply.mutable_deregister_instance()->set_removed(removed);
  if (removed) {
    ++stats_.deregistered;
    Changed(request.service());
  }
  return reply;
}

Reply RegistryService::Watch(const Envelope& envelope) {
  const WatchRequest& request = envelope.request().watch();
  absl::Status s = ValidateName("service", request.service());
  if (s.ok() && envelope.from().empty()) {
    s = absl::InvalidArgumentError("a watch needs a sender address to notify");
  }
  if (s.ok() && request.lease_ms() <= 0) {
    s = absl::InvalidArgumentError("watch lease_ms must be positive");
  }
  if (!s.ok()) return ErrorReply(s);
  auto& watchers = watchers_[request.service()];
  if (watchers.count(envelope.from()) == 0 &&
      watchers.size() >= options_.max_watchers_per_service) {
    return ErrorReply(absl::ResourceExhaustedError("too many watchers for this service"));
  }
  const absl::Duration lease =
      std::min(absl::Milliseconds(request.lease_ms()), options_.max_watch_lease);
  watchers[envelope.from()] = env().Now() + lease;
  Reply reply;
  *reply.mutable_watch()->mutable_current() = Healthy(request.service());
  return reply;
}

DiscoverReply RegistryService::Healthy(const std::string& service) {
  DiscoverReply out;
  out.set_revision(revision_);
  const absl::Time now = env().Now();
  for (auto it = entries_.lower_bound(Key(service, "")); it != entries_.end(); ++it) {
    if (it->first.first != service) break;
    if (now - it->second.last_heartbeat >= options_.ttl) continue;
    *out.add_instances() = it->second.instance;
  }
  return out;
}

void RegistryService::Changed(const std::string& service) {
  ++revision_;
  auto w = watchers_.find(service);
  if (w == watchers_.end()) return;
  const absl::Time now = env().Now();
  Envelope envelope;
  envelope.set_from(env().Self());
  RegistryUpdate* update = envelope.mutable_registry_update();
  update->set_service(service);
  *update->mutable_current() = Healthy(service);
  for (auto it = w->second.begin(); it != w->second.end();) {
    if (it->second <= now) {
      it = w->second.erase(it);  // lease ran out
      continue;
    }
    env().Send(it->first, envelope);
    ++stats_.updates_sent;
    ++it;
  }
}

void RegistryService::Sweep() {
  const absl::Time now = env().Now();
  std::vector<std::string> changed;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (now - it->second.last_heartbeat >= options_.ttl) {
      if (changed.empty() || changed.back() != it->first.first) changed.push_back(it->first.first);
      it = entries_.erase(it);
      ++stats_.expired;
    } else {
      ++it;
    }
  }
  for (const std::string& service : changed) Changed(service);
  timers().After(options_.sweep_interval, [this] { Sweep(); });
}

}  // namespace parley
