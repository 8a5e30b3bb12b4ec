// Conversions between absl::Status (used inside nodes) and the wire Status.
#ifndef PARLEY_CORE_STATUS_H_
#define PARLEY_CORE_STATUS_H_

#include "absl/status/status.h"
#include "core/proto/common.pb.h"
#include "core/proto/rpc.pb.h"

namespace parley {

Status ToProto(const absl::Status& status);
absl::Status FromProto(const Status& status);

// A reply carrying only `status`.
Reply ErrorReply(const absl::Status& status);

// The status a reply carries.
inline absl::Status ReplyStatus(const Reply& reply) { return FromProto(reply.status()); }

}  // namespace parley

#endif  // PARLEY_CORE_STATUS_H_
