#include "core/kv/kv_service.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/kv/kv_keys.h"
#include "core/proto/records.pb.h"
#include "core/status.h"
#include "core/testing/bugs.h"

namespace parley {

// Probes counted here (core/probe.h).
const DeclaredProbe kLeaseExpiry("lease_expiry",
                         "a read found an expired entry (a lease ran out)");
const DeclaredProbe kStaleSetRefused("stale_set_refused",
                         "an IF_NEWER write not newer than the entry was refused");
const DeclaredProbe kOlderSetRefused("older_set_refused",
                         "an IF_NEWER write strictly older than the entry was refused");
const DeclaredProbe kOlderOverwrite("older_overwrite",
                         "an ALWAYS write replaced a newer version");
const DeclaredProbe kKvEvicted("kv_evicted",
                         "entries kv evicted under (simulated) memory pressure");

KvService::KvService(Env* env, KvOptions options)
    : ServiceNode(env, ServiceOptions()), options_(options) {}

absl::Status KvService::OnStart() {
  timers().After(options_.sweep_interval, [this] { Sweep(); });
  return absl::OkStatus();
}

void KvService::HandleRequest(const Envelope& envelope) {
  const Request& request = envelope.request();
  Reply reply;
  switch (request.op_case()) {
    case Request::kKvGet:
      reply = Get(request.kv_get());
      break;
    case Request::kKvSet:
      reply = Set(request.kv_set());
      break;
    case Request::kKvDelete:
      reply = Delete(request.kv_delete());
      break;
    case Request::kKvLock:
      reply = Lock(request.kv_lock());
      break;
    case Request::kKvUnlock:
      reply = Unlock(request.kv_unlock());
      break;
    default:
      reply = ErrorReply(absl::UnimplementedError("the kv node does not serve this request"));
  }
  Respond(envelope, std::move(reply));
}

absl::Status KvService::ValidateKey(const std::string& key) const {
  if (key.empty()) return absl::InvalidArgumentError("kv key is empty");
  if (key.size() > options_.max_key_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv key is longer than ", options_.max_key_bytes, " bytes"));
  }
  return absl::OkStatus();
}

// A failed read answers false and taints the callback (see
// ServiceNode::store()): the reply becomes UNAVAILABLE, Commit refuses.
template <typename Record>
bool KvService::ReadLive(const std::string& store_key, Record* record) {
  std::string value;
  if (!store().Get(store_key, &value).ok()) return false;
  if (!record->ParseFromString(value)) return false;
  if (record->expires_us() != 0 && record->expires_us() <= absl::ToUnixMicros(env().Now())) {
    ++stats_.expired_seen;
    probes().Count(kLeaseExpiry);
    return false;
  }
  return true;
}

Reply KvService::Get(const KvGetRequest& request) {
  if (request.keys_size() + request.prefixes_size() >
      static_cast<int>(options_.max_keys_per_request)) {
    return ErrorReply(absl::InvalidArgumentError(
        absl::StrCat("at most ", options_.max_keys_per_request, " keys per get")));
  }
  Reply reply;
  KvGetReply* out = reply.mutable_kv_get();
  for (const std::string& key : request.keys()) {
    absl::Status s = ValidateKey(key);
    if (!s.ok()) return ErrorReply(s);
    ++stats_.gets;
    KvRecord record;
    if (!ReadLive(kv_keys::Entry(key), &record) || record.evicted()) {
      out->add_missing(key);
      continue;
    }
    ++stats_.hits;
    KvEntry* entry = out->add_entries();
    entry->set_key(key);
    entry->set_value(record.value());
    entry->set_version(record.version());
    entry->set_expires_us(record.expires_us());
  }
  size_t budget = options_.max_keys_per_request;
  const int64_t now_us = absl::ToUnixMicros(env().Now());
  std::vector<KeyValue> rows;
  KvRecord record;
  for (const std::string& prefix : request.prefixes()) {
    absl::Status s = ValidateKey(prefix);
    if (!s.ok()) return ErrorReply(s);
    rows.clear();
    s = store().Scan(kv_keys::Entry(prefix), "", budget, &rows);
    // Entries that could not be read are not missing ones.
    if (!s.ok()) {
      return ErrorReply(absl::UnavailableError(absl::StrCat("store read failed: ", s.message())));
    }
    if (rows.size() >= budget) {
      return ErrorReply(absl::ResourceExhaustedError(absl::StrCat(
          "prefix reads match more than ", options_.max_keys_per_request, " keys")));
    }
    budget -= rows.size();
    for (KeyValue& row : rows) {
      ++stats_.gets;
      if (!record.ParseFromString(row.second)) continue;
      if (record.expires_us() != 0 && record.expires_us() <= now_us) {
        ++stats_.expired_seen;
        probes().Count(kLeaseExpiry);
        continue;
      }
      if (record.evicted()) continue;
      ++stats_.hits;
      KvEntry* entry = out->add_entries();
      entry->set_key(row.first.substr(sizeof("kv/") - 1));
      entry->set_value(std::move(*record.mutable_value()));
      entry->set_version(record.version());
      entry->set_expires_us(record.expires_us());
    }
  }
  return reply;
}

Reply KvService::Set(const KvSetRequest& request) {
  if (request.writes_size() == 0) return ErrorReply(absl::InvalidArgumentError("no writes"));
  if (request.writes_size() > static_cast<int>(options_.max_keys_per_request)) {
    return ErrorReply(absl::InvalidArgumentError(
        absl::StrCat("at most ", options_.max_keys_per_request, " writes per set")));
  }
  const int64_t now_us = absl::ToUnixMicros(env().Now());
  for (const KvWrite& write : request.writes()) {
    absl::Status s = ValidateKey(write.key());
    if (s.ok() && write.value().size() > options_.max_value_bytes) {
      s = absl::InvalidArgumentError(
          absl::StrCat("kv value is larger than ", options_.max_value_bytes, " bytes"));
    }
    if (s.ok() && write.ttl_ms() < 0) s = absl::InvalidArgumentError("ttl_ms is negative");
    if (!s.ok()) return ErrorReply(s);
  }
  Reply reply;
  KvSetReply* out = reply.mutable_kv_set();
  WriteBatch batch;
  // Later writes of one request see earlier ones.
  std::map<std::string, KvRecord> written;
  for (const KvWrite& write : request.writes()) {
    const std::string store_key = kv_keys::Entry(write.key());
    KvRecord current;
    bool exists;
    auto w = written.find(write.key());
    if (w != written.end()) {
      current = w->second;
      exists = true;
    } else {
      exists = ReadLive(store_key, &current);
    }
    // An evicted entry still holds its version as a floor for IF_NEWER.
    const uint64_t held = exists ? current.version() : 0;
    const bool too_far = write.max_step() != 0 && write.version() > held &&
                         write.version() - held > write.max_step();
    const bool apply = !too_far && (write.mode() == KvWrite::ALWAYS || !exists ||
                                    current.version() < write.version() ||
                                    (write.mode() == KvWrite::IF_NOT_OLDER &&
                                     current.version() == write.version()));
    if (!apply) {
      ++stats_.stale_sets_refused;
      probes().Count(kStaleSetRefused);
      if (write.version() < current.version()) {
        ++stats_.older_sets_refused;
        probes().Count(kOlderSetRefused);
      }
      out->add_applied(false);
      out->add_current_versions(current.version());
      continue;
    }
    if (exists && write.version() < current.version()) {
      ++stats_.older_overwrites;
      probes().Count(kOlderOverwrite);
    }
    KvRecord record;
    record.set_value(write.value());
    record.set_version(write.version());
    record.set_expires_us(write.ttl_ms() > 0 && !BugPlanted(Bug::kLeaseNeverExpires)
                              ? now_us + write.ttl_ms() * 1000
                              : 0);
    batch.Put(store_key, record.SerializeAsString());
    if (record.expires_us() != 0) batch.Put(kv_keys::Expiry(record.expires_us(), store_key), "");
    ++stats_.sets_applied;
    out->add_applied(true);
    out->add_current_versions(record.version());
    written[write.key()] = std::move(record);
  }
  if (!batch.empty()) {
    absl::Status s = Commit(batch);
    if (!s.ok()) return ErrorReply(absl::UnavailableError(s.message()));
  }
  return reply;
}

Reply KvService::Delete(const KvDeleteRequest& request) {
  absl::Status s = ValidateKey(request.key());
  if (!s.ok()) return ErrorReply(s);
  Reply reply;
  KvRecord current;
  const std::string store_key = kv_keys::Entry(request.key());
  const bool exists = ReadLive(store_key, &current) && !current.evicted();
  const bool allowed = request.version_at_most() == 0 ||
                       current.version() <= request.version_at_most();
  if (exists && allowed) {
    WriteBatch batch;
    batch.Delete(store_key);
    s = Commit(batch);
    if (!s.ok()) return ErrorReply(absl::UnavailableError(s.message()));
  }
  reply.mutable_kv_delete()->set_deleted(exists && allowed);
  return reply;
}

Reply KvService::Lock(const KvLockRequest& request) {
  absl::Status s = ValidateKey(request.key());
  if (s.ok() && request.owner().empty()) s = absl::InvalidArgumentError("lock owner is empty");
  if (s.ok() && (request.lease_ms() <= 0 ||
                 absl::Milliseconds(request.lease_ms()) > options_.max_lease)) {
    s = absl::InvalidArgumentError(absl::StrCat("lock lease_ms must be in (0, ",
                                                absl::ToInt64Milliseconds(options_.max_lease),
                                                "]"));
  }
  if (!s.ok()) return ErrorReply(s);
  Reply reply;
  KvLockReply* out = reply.mutable_kv_lock();
  const std::string store_key = kv_keys::Lock(request.key());
  LockRecord current;
  if (ReadLive(store_key, &current) && current.owner() != request.owner()) {
    ++stats_.locks_refused;
    out->set_acquired(false);
    out->set_holder(current.owner());
    out->set_expires_us(current.expires_us());
    return reply;
  }
  // Free, expired, or already ours (a retry or a renewal): grant.
  LockRecord record;
  record.set_owner(request.owner());
  record.set_expires_us(absl::ToUnixMicros(env().Now()) + request.lease_ms() * 1000);
  WriteBatch batch;
  batch.Put(store_key, record.SerializeAsString());
  batch.Put(kv_keys::Expiry(record.expires_us(), store_key), "");
  s = Commit(batch);
  if (!s.ok()) return ErrorReply(absl::UnavailableError(s.message()));
  ++stats_.locks_granted;
  out->set_acquired(true);
  out->set_holder(record.owner());
  out->set_expires_us(record.expires_us());
  return reply;
}

Reply KvService::Unlock(const KvUnlockRequest& request) {
  absl::Status s = ValidateKey(request.key());
  if (!s.ok()) return ErrorReply(s);
  Reply reply;
  const std::string store_key = kv_keys::Lock(request.key());
  LockRecord current;
  const bool ours = ReadLive(store_key, &current) && current.owner() == request.owner();
  if (ours) {
    WriteBatch batch;
    batch.Delete(store_key);
    s = Commit(batch);
    if (!s.ok()) return ErrorReply(absl::UnavailableError(s.message()));
  }
  reply.mutable_kv_unlock()->set_released(ours);
  return reply;
}

size_t KvService::Evict(absl::string_view prefix, SeededRng& rng, double fraction) {
  std::vector<KeyValue> rows;
  if (!store().Scan(kv_keys::Entry(prefix), "", SIZE_MAX, &rows).ok()) return 0;
  WriteBatch batch;
  size_t n = 0;
  for (const KeyValue& row : rows) {
    if (!rng.Bernoulli(fraction)) continue;
    KvRecord record;
    if (!record.ParseFromString(row.second) || record.evicted()) continue;
    record.clear_value();
    record.set_evicted(true);
    batch.Put(row.first, record.SerializeAsString());
    ++n;
  }
  if (!batch.empty() && Commit(batch).ok()) {
    stats_.evicted += n;
    probes().Count(kKvEvicted, n);
  }
  return n;
}

void KvService::Sweep() {
  const int64_t now_us = absl::ToUnixMicros(env().Now());
  // Only the entries due by now, the soonest first: the scan stops at the
  // first expiry index key past now.
  const std::string end_before =
      now_us < 0 ? std::string(kv_keys::kExpiryPrefix)
                 : absl::StrCat(kv_keys::kExpiryPrefix, PadId(static_cast<uint64_t>(now_us) + 1));
  std::vector<KeyValue> due;
  // A failed read or write sweeps nothing this round (a failed read taints
  // the callback and Commit refuses); the next round tries again.
  if (!store().ScanBefore(kv_keys::kExpiryPrefix, "", end_before, options_.max_sweep_deletes,
                          &due)
           .ok()) {
    due.clear();
  }
  WriteBatch batch;
  uint64_t swept = 0;
  for (const KeyValue& kv : due) {
    const uint64_t expires_us = kv_keys::ExpiryTime(kv.first);
    if (static_cast<int64_t>(expires_us) > now_us) break;  // the index is in expiry order
    batch.Delete(kv.first);
    // Delete the target only if it still carries this expiry: it may have
    // been rewritten since.
    const std::string target = kv_keys::ExpiryTarget(kv.first);
    std::string value;
    if (!store().Get(target, &value).ok()) continue;
    int64_t target_expires_us = 0;
    if (target.rfind("lock/", 0) == 0) {
      LockRecord lock;
      if (lock.ParseFromString(value)) target_expires_us = lock.expires_us();
    } else {
      KvRecord record;
      if (record.ParseFromString(value)) target_expires_us = record.expires_us();
    }
    if (static_cast<uint64_t>(target_expires_us) == expires_us) {
      batch.Delete(target);
      ++swept;
    }
  }
  if (!batch.empty() && Commit(batch).ok()) stats_.swept += swept;
  timers().After(options_.sweep_interval, [this] { Sweep(); });
}

}  // namespace parley
