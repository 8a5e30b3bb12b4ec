// The client protocol's framing: a varint length, then that many bytes of an
// Envelope (see docs/protocol.md).
#ifndef PARLEY_SERVER_FRAME_H_
#define PARLEY_SERVER_FRAME_H_

#include <string>

#include "core/proto/rpc.pb.h"

namespace parley {

inline constexpr size_t kDefaultMaxFrameBytes = 64 * 1024;

std::string EncodeFrame(const Envelope& envelope);

enum class FrameResult { kNeedMore, kFrame, kTooLarge, kMalformed };

// Takes one frame off the front of `buffer` into `out` when a whole one is
// there. kTooLarge and kMalformed leave the buffer as it was: the connection
// is beyond repair.
FrameResult DecodeFrame(std::string* buffer, size_t max_bytes, Envelope* out);

}  // namespace parley

#endif  // PARLEY_SERVER_FRAME_H_
