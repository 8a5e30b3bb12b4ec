#include "core/status.h"

#include <string>

namespace parley {

Status ToProto(const absl::Status& status) {
  Status out;
  out.set_code(static_cast<ErrorCode>(status.code()));
  out.set_message(std::string(status.message()));
  return out;
}

absl::Status FromProto(const Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.code()), status.message());
}

Reply ErrorReply(const absl::Status& status) {
  Reply reply;
  *reply.mutable_status() = ToProto(status);
  return reply;
}

}  // namespace parley
