#include "fakes/mem_store.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace parley {

absl::Status MemStore::Get(absl::string_view key, std::string* value) const {
  auto it = data_.find(key);
  if (it == data_.end()) return absl::NotFoundError(absl::StrCat("no key ", key));
  *value = it->second;
  return absl::OkStatus();
}

absl::Status MemStore::Scan(absl::string_view prefix, absl::string_view start_after,
                            size_t limit, std::vector<KeyValue>* out) const {
  auto it = start_after.empty() ? data_.lower_bound(prefix) : data_.upper_bound(start_after);
  if (!start_after.empty() && it != data_.end() && it->first < prefix) {
    it = data_.lower_bound(prefix);
  }
  for (size_t n = 0; it != data_.end() && n < limit; ++it, ++n) {
    if (!absl::StartsWith(it->first, prefix)) break;
    out->emplace_back(it->first, it->second);
  }
  return absl::OkStatus();
}

absl::Status MemStore::ScanBefore(absl::string_view prefix, absl::string_view start_after,
                                  absl::string_view end_before, size_t limit,
                                  std::vector<KeyValue>* out) const {
  auto it = start_after.empty() ? data_.lower_bound(prefix) : data_.upper_bound(start_after);
  if (!start_after.empty() && it != data_.end() && it->first < prefix) {
    it = data_.lower_bound(prefix);
  }
  for (size_t n = 0; it != data_.end() && n < limit; ++it, ++n) {
    if (!absl::StartsWith(it->first, prefix) || it->first >= end_before) break;
    out->emplace_back(it->first, it->second);
  }
  return absl::OkStatus();
}

absl::Status MemStore::Last(absl::string_view prefix, KeyValue* out) const {
  // The first key past every key that starts with `prefix`, then one back.
  const std::string end = PrefixEnd(prefix);
  auto it = end.empty() ? data_.end() : data_.lower_bound(end);
  if (it == data_.begin()) return absl::NotFoundError(absl::StrCat("no key under ", prefix));
  --it;
  if (!absl::StartsWith(it->first, prefix)) {
    return absl::NotFoundError(absl::StrCat("no key under ", prefix));
  }
  *out = *it;
  return absl::OkStatus();
}

absl::Status MemStore::Write(const WriteBatch& batch) {
  if (!fail_writes_.ok()) return fail_writes_;
  // Apply in place, remembering what each operation replaced; a crash in the
  // middle undoes them, as a log-structured store makes a batch visible only
  // once it is whole.
  std::vector<Undo> undo;
  undo.reserve(batch.size());
  int64_t applied = 0;
  for (const WriteBatch::Op& op : batch.ops()) {
    if (crash_after_ops_ >= 0 && applied == crash_after_ops_) {
      crash_after_ops_ = -1;
      for (auto u = undo.rbegin(); u != undo.rend(); ++u) {
        if (u->existed) {
          data_[u->key] = std::move(u->old_value);
        } else {
          data_.erase(u->key);
        }
      }
      return absl::UnavailableError(
          absl::StrCat("store crashed after ", applied, " of ", batch.size(), " operations"));
    }
    // One lookup per operation: the old value moves into the undo record, the
    // new one is assigned in place or inserted at the position found.
    auto it = data_.lower_bound(op.key);
    if (it == data_.end() || it->first != op.key) {
      undo.push_back({op.key, false, std::string()});
      if (op.kind == WriteBatch::Op::kPut) data_.emplace_hint(it, op.key, op.value);
    } else {
      undo.push_back({op.key, true, std::move(it->second)});
      if (op.kind == WriteBatch::Op::kPut) {
        it->second = op.value;
      } else {
        data_.erase(it);
      }
    }
    ++applied;
  }
  crash_after_ops_ = -1;
  ++batches_committed_;
  last_batch_undo_ = std::move(undo);
  have_last_batch_ = true;
  return absl::OkStatus();
}

bool MemStore::LoseLastBatch() {
  if (!have_last_batch_) return false;
  for (auto u = last_batch_undo_.rbegin(); u != last_batch_undo_.rend(); ++u) {
    if (u->existed) {
      data_[u->key] = std::move(u->old_value);
    } else {
      data_.erase(u->key);
    }
  }
  last_batch_undo_.clear();
  have_last_batch_ = false;
  --batches_committed_;
  return true;
}

}  // namespace parley
