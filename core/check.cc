#include "core/check.h"

#include <cstdio>
#include <cstdlib>

namespace parley {
namespace {

void DefaultHandler(const char* file, int line, const char* condition,
                    const std::string& message) {
  std::fprintf(stderr, "%s:%d: check failed: %s %s\n", file, line, condition, message.c_str());
  std::fflush(stderr);
  std::abort();
}

// Per thread: seeds run in parallel, each with the handler its runner set.
thread_local CheckFailureHandler current = nullptr;

}  // namespace

CheckFailureHandler SetCheckFailureHandler(CheckFailureHandler handler) {
  CheckFailureHandler previous = current;
  current = handler;
  return previous;
}

namespace check_internal {

CheckFailure::~CheckFailure() noexcept(false) {
  CheckFailureHandler handler = current != nullptr ? current : &DefaultHandler;
  handler(file_, line_, condition_.c_str(), stream_.str());
}

}  // namespace check_internal
}  // namespace parley
