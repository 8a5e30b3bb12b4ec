#include "core/kv/kv_client.h"

#include <utility>

#include "core/service_node.h"
#include "core/status.h"

namespace parley {

void KvClient::Get(const std::string& key,
                   std::function<void(absl::StatusOr<std::optional<KvEntry>>)> done) {
  Request request;
  request.mutable_kv_get()->add_keys(key);
  rpc_->CallAddress(kKvAddress, request, options_, [done = std::move(done)](const Reply& reply) {
    absl::Status s = ReplyStatus(reply);
    if (!s.ok()) return done(s);
    if (reply.kv_get().entries_size() == 0) return done(std::optional<KvEntry>());
    done(std::optional<KvEntry>(reply.kv_get().entries(0)));
  });
}

void KvClient::Set(const KvWrite& write, std::function<void(absl::StatusOr<bool>)> done) {
  Request request;
  *request.mutable_kv_set()->add_writes() = write;
  rpc_->CallAddress(kKvAddress, request, options_, [done = std::move(done)](const Reply& reply) {
    absl::Status s = ReplyStatus(reply);
    if (!s.ok()) return done(s);
    if (reply.kv_set().applied_size() != 1) {
      return done(absl::InternalError("kv set reply without a result"));
    }
    done(reply.kv_set().applied(0));
  });
}

void KvClient::Lock(const std::string& key, const std::string& owner, absl::Duration lease,
                    std::function<void(absl::StatusOr<bool>)> done) {
  Request request;
  KvLockRequest* lock = request.mutable_kv_lock();
  lock->set_key(key);
  lock->set_owner(owner);
  lock->set_lease_ms(absl::ToInt64Milliseconds(lease));
  rpc_->CallAddress(kKvAddress, request, options_, [done = std::move(done)](const Reply& reply) {
    absl::Status s = ReplyStatus(reply);
    if (!s.ok()) return done(s);
    done(reply.kv_lock().acquired());
  });
}

void KvClient::Unlock(const std::string& key, const std::string& owner,
                      std::function<void(absl::StatusOr<bool>)> done) {
  Request request;
  request.mutable_kv_unlock()->set_key(key);
  request.mutable_kv_unlock()->set_owner(owner);
  rpc_->CallAddress(kKvAddress, request, options_, [done = std::move(done)](const Reply& reply) {
    absl::Status s = ReplyStatus(reply);
    if (!s.ok()) return done(s);
    done(reply.kv_unlock().released());
  });
}

}  // namespace parley
