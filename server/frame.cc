#include "server/frame.h"

namespace parley {

std::string EncodeFrame(const Envelope& envelope) {
  const std::string body = envelope.SerializeAsString();
  std::string out;
  uint64_t n = body.size();
  do {
    uint8_t byte = n & 0x7f;
    n >>= 7;
    if (n != 0) byte |= 0x80;
    out.push_back(static_cast<char>(byte));
  } while (n != 0);
  return out + body;
}

FrameResult DecodeFrame(std::string* buffer, size_t max_bytes, Envelope* out) {
  uint64_t length = 0;
  size_t i = 0;
  for (int shift = 0;; shift += 7) {
    if (i >= buffer->size()) return FrameResult::kNeedMore;
    if (shift > 28) return FrameResult::kMalformed;  // no sane frame needs more
    const uint8_t byte = static_cast<uint8_t>((*buffer)[i++]);
    length |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) break;
  }
  if (length > max_bytes) return FrameResult::kTooLarge;
  if (buffer->size() - i < length) return FrameResult::kNeedMore;
  if (!out->ParseFromArray(buffer->data() + i, static_cast<int>(length))) {
    return FrameResult::kMalformed;
  }
  buffer->erase(0, i + length);
  return FrameResult::kFrame;
}

}  // namespace parley
