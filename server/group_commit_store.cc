#include "server/group_commit_store.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

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
  // are enough to fill `limit` after the merge (saturating: a limit of
  // SIZE_MAX means all of them, and must not wrap to a few).
  std::vector<KeyValue> theirs;
  const size_t wanted = limit > SIZE_MAX - deletes ? SIZE_MAX : limit + deletes;
  absl::Status s = durable_scan(wanted, &theirs);
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

absl::Status GroupCommitStore::Last(absl::string_view prefix, KeyValue* out) const {
  // The overlay's entries under `prefix`, from the greatest down.
  const std::string end = PrefixEnd(prefix);
  auto top = end.empty() ? overlay_.end() : overlay_.lower_bound(end);
  const auto bottom = overlay_.lower_bound(prefix);
  if (top == bottom) return durable_->Last(prefix, out);
  KeyValue theirs;
  absl::Status s = durable_->Last(prefix, &theirs);
  if (!s.ok() && !absl::IsNotFound(s)) return s;
  const bool have_theirs = s.ok();
  for (auto it = top; it != bottom;) {
    --it;
    if (have_theirs && absl::string_view(theirs.first) > absl::string_view(it->first)) {
      *out = std::move(theirs);  // above every pending entry left: not shadowed
      return absl::OkStatus();
    }
    if (it->second.has_value()) {
      out->first = it->first;
      out->second = *it->second;
      return absl::OkStatus();
    }
    if (have_theirs && theirs.first == it->first) {
      // The durable store's last is deleted: what is below it needs the merge.
      std::vector<KeyValue> rows;
      s = Scan(prefix, "", SIZE_MAX, &rows);
      if (!s.ok()) return s;
      if (rows.empty()) return absl::NotFoundError(absl::StrCat("no key under ", prefix));
      *out = std::move(rows.back());
      return absl::OkStatus();
    }
  }
  if (have_theirs) {
    *out = std::move(theirs);
    return absl::OkStatus();
  }
  return absl::NotFoundError(absl::StrCat("no key under ", prefix));
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
