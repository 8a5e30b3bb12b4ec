#include "server/group_commit_store.h"

#include <algorithm>

#include "absl/strings/match.h"

namespace parley {

absl::Status GroupCommitStore::Get(absl::string_view key, std::string* value) const {
  auto it = overlay_.find(key);
  if (it == overlay_.end()) return durable_->Get(key, value);
  if (!it->second.has_value()) return absl::NotFoundError("deleted");
  *value = *it->second;
  return absl::OkStatus();
}

absl::Status GroupCommitStore::Scan(absl::string_view prefix, absl::string_view start_after,
                                    size_t limit, std::vector<KeyValue>* out) const {
  return ScanRange(prefix, start_after, std::nullopt, limit, out);
}

absl::Status GroupCommitStore::ScanBefore(absl::string_view prefix, absl::string_view start_after,
                                          absl::string_view end_before, size_t limit,
                                          std::vector<KeyValue>* out) const {
  return ScanRange(prefix, start_after, end_before, limit, out);
}

absl::Status GroupCommitStore::ScanRange(absl::string_view prefix, absl::string_view start_after,
                                         std::optional<absl::string_view> end_before, size_t limit,
                                         std::vector<KeyValue>* out) const {
  if (limit == 0) return absl::OkStatus();
  // What the durable store holds in the same range.
  auto durable_scan = [&](size_t n, std::vector<KeyValue>* rows) {
    return end_before.has_value() ? durable_->ScanBefore(prefix, start_after, *end_before, n, rows)
                                  : durable_->Scan(prefix, start_after, n, rows);
  };
  // The overlay's entries in range: first key > max(start_after, prefix-1).
  auto first = overlay_.lower_bound(prefix);
  if (!start_after.empty() && start_after >= prefix) first = overlay_.upper_bound(start_after);
  std::vector<std::pair<absl::string_view, const std::optional<std::string>*>> mine;
  size_t deletes = 0;
  for (auto it = first; it != overlay_.end() && absl::StartsWith(it->first, prefix) &&
                        (!end_before.has_value() || absl::string_view(it->first) < *end_before);
       ++it) {
    mine.emplace_back(it->first, &it->second);
    if (!it->second.has_value()) ++deletes;
  }
  if (mine.empty()) return durable_scan(limit, out);
  // At most `deletes` durable entries are hidden, so limit + deletes of them
  // are enough to fill `limit` after the merge.
  std::vector<KeyValue> theirs;
  absl::Status s = durable_scan(limit + deletes, &theirs);
  if (!s.ok()) return s;
  size_t i = 0, j = 0, n = 0;
  while (n < limit && (i < theirs.size() || j < mine.size())) {
    const bool take_mine =
        j < mine.size() && (i == theirs.size() || mine[j].first <= absl::string_view(theirs[i].first));
    if (!take_mine) {
      out->push_back(std::move(theirs[i++]));
      ++n;
      continue;
    }
    if (i < theirs.size() && mine[j].first == absl::string_view(theirs[i].first)) ++i;  // shadowed
    const std::optional<std::string>& v = *mine[j].second;
    if (v.has_value()) {
      out->emplace_back(std::string(mine[j].first), *v);
      ++n;
    }
    ++j;
  }
  return absl::OkStatus();
}

absl::Status GroupCommitStore::Write(const WriteBatch& batch) {
  ++batches_;
  for (const WriteBatch::Op& op : batch.ops()) {
    if (op.kind == WriteBatch::Op::kPut) {
      overlay_.insert_or_assign(op.key, op.value);
    } else {
      overlay_.insert_or_assign(op.key, std::nullopt);
    }
  }
  return absl::OkStatus();
}

absl::Status GroupCommitStore::Commit() {
  if (overlay_.empty()) return absl::OkStatus();
  // The overlay holds each key's last state, which is all the group needs.
  WriteBatch group;
  for (const auto& [key, value] : overlay_) {
    if (value.has_value()) {
      group.Put(key, *value);
    } else {
      group.Delete(key);
    }
  }
  absl::Status s = durable_->Write(group);
  if (!s.ok()) return s;
  ++commits_;
  overlay_.clear();
  return absl::OkStatus();
}

}  // namespace parley
