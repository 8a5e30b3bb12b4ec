// KvClient: typed calls to the kv node over a node's RpcClient.
#ifndef PARLEY_CORE_KV_KV_CLIENT_H_
#define PARLEY_CORE_KV_KV_CLIENT_H_

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/rpc/rpc_client.h"

namespace parley {

class KvClient {
 public:
  explicit KvClient(RpcClient* rpc, CallOptions options = CallOptions())
      : rpc_(rpc), options_(options) {}

  // The live entry at `key`, or nullopt if there is none.
  void Get(const std::string& key,
           std::function<void(absl::StatusOr<std::optional<KvEntry>>)> done);
  // Writes one entry; yields whether it was applied (IF_NEWER may refuse).
  void Set(const KvWrite& write, std::function<void(absl::StatusOr<bool>)> done);
  // Yields whether `owner` now holds the lock on `key`.
  void Lock(const std::string& key, const std::string& owner, absl::Duration lease,
            std::function<void(absl::StatusOr<bool>)> done);
  void Unlock(const std::string& key, const std::string& owner,
              std::function<void(absl::StatusOr<bool>)> done);

 private:
  RpcClient* rpc_;
  CallOptions options_;
};

}  // namespace parley

#endif  // PARLEY_CORE_KV_KV_CLIENT_H_
