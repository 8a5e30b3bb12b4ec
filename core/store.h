// OrderedStore: a node's durable, ordered key-value store. Only what a
// committed WriteBatch wrote survives a crash.
#ifndef PARLEY_CORE_STORE_H_
#define PARLEY_CORE_STORE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace parley {

// An ordered list of puts and deletes, applied all-or-nothing by Write.
class WriteBatch {
 public:
  struct Op {
    enum Kind { kPut, kDelete };
    Kind kind;
    std::string key;
    std::string value;
  };

  void Put(absl::string_view key, absl::string_view value) {
    ops_.push_back({Op::kPut, std::string(key), std::string(value)});
  }
  void Delete(absl::string_view key) {
    ops_.push_back({Op::kDelete, std::string(key), std::string()});
  }
  void Append(const WriteBatch& other) {
    ops_.insert(ops_.end(), other.ops_.begin(), other.ops_.end());
  }

  // Room for `n` operations, so a batch built in a loop grows once.
  void Reserve(size_t n) { ops_.reserve(n); }

  const std::vector<Op>& ops() const { return ops_; }
  bool empty() const { return ops_.empty(); }
  size_t size() const { return ops_.size(); }

 private:
  std::vector<Op> ops_;
};

using KeyValue = std::pair<std::string, std::string>;

// The least key greater than every key that starts with `prefix`: `prefix`
// with its trailing 0xff bytes dropped and its last byte incremented. Empty
// if there is none (an empty prefix, or one of 0xff bytes only).
inline std::string PrefixEnd(absl::string_view prefix) {
  std::string end(prefix);
  while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) end.pop_back();
  if (!end.empty()) end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
  return end;
}

class OrderedStore {
 public:
  virtual ~OrderedStore() = default;

  // Stores the value of `key` in *value and returns OK, or returns NotFound.
  // Other errors mean the store failed.
  virtual absl::Status Get(absl::string_view key, std::string* value) const = 0;

  // Appends to *out, in key order, up to `limit` entries whose key starts
  // with `prefix` and is greater than `start_after` (empty: from the start).
  virtual absl::Status Scan(absl::string_view prefix, absl::string_view start_after,
                            size_t limit, std::vector<KeyValue>* out) const = 0;

  // As Scan, but stops at the first key not less than `end_before`: appends
  // to *out, in key order, up to `limit` entries whose key starts with
  // `prefix`, is greater than `start_after` (empty: from the start) and is
  // less than `end_before`. For a caller that wants only the first entries of
  // a long range, such as the old end of a time index: a store that can stop
  // early overrides it. It is one read, failing where Scan would. The
  // default is Scan, filtered.
  virtual absl::Status ScanBefore(absl::string_view prefix, absl::string_view start_after,
                                  absl::string_view end_before, size_t limit,
                                  std::vector<KeyValue>* out) const {
    std::vector<KeyValue> rows;
    absl::Status s = Scan(prefix, start_after, limit, &rows);
    if (!s.ok()) return s;
    for (KeyValue& row : rows) {
      if (absl::string_view(row.first) >= end_before) break;
      out->push_back(std::move(row));
    }
    return absl::OkStatus();
  }

  // Stores in *out the entry with the greatest key that starts with `prefix`
  // and returns OK, or returns NotFound if there is none: the end of an
  // ordered range (a conversation's last message) without reading it all.
  // It is one read, failing where Scan would. The default is Scan of the
  // whole prefix; a store that can seek backwards overrides it.
  virtual absl::Status Last(absl::string_view prefix, KeyValue* out) const {
    std::vector<KeyValue> rows;
    absl::Status s = Scan(prefix, "", SIZE_MAX, &rows);
    if (!s.ok()) return s;
    if (rows.empty()) return absl::NotFoundError(absl::StrCat("no key under ", prefix));
    *out = std::move(rows.back());
    return absl::OkStatus();
  }
  // Applies every operation of `batch` or none of them. Once it returns OK the
  // batch survives a crash.
  virtual absl::Status Write(const WriteBatch& batch) = 0;
};

}  // namespace parley

#endif  // PARLEY_CORE_STORE_H_
