// Invariants that hold in every build mode. PARLEY_CHECK(cond) is not assert:
// it is compiled in with -c opt too, where the simulator's swarms run, since
// that is where a broken invariant is most likely to be met.
//
// A failed check calls the current thread's failure handler with the file,
// line, the condition's text and a message. The default handler prints them
// to stderr and aborts. SetCheckFailureHandler installs another for the
// calling thread only (the simulator runs seeds on parallel threads, each
// with its own handler) and returns the previous one.
//
// A handler may throw: the simulator installs one that throws so a run that
// breaks an invariant ends as a failure named "invariant" instead of killing
// the process. Code of the core is therefore written exception-neutral where
// checks sit: state is held by RAII owners, and a check comes before the
// state it guards is changed, so unwinding out of a check leaves no half-done
// change behind. A handler that returns lets execution continue after the
// check (useful only to tests that count failures).
//
//   PARLEY_CHECK(seq == last + 1) << "conversation " << conv;
//   PARLEY_CHECK_EQ(seq, last + 1);
//
// The message after << is built only when the check fails.
#ifndef PARLEY_CORE_CHECK_H_
#define PARLEY_CORE_CHECK_H_

#include <memory>
#include <sstream>
#include <string>
#include <utility>

namespace parley {

using CheckFailureHandler = void (*)(const char* file, int line, const char* condition,
                                     const std::string& message);

// Installs `handler` for the calling thread (nullptr: the default) and
// returns the previous one (nullptr if it was the default).
CheckFailureHandler SetCheckFailureHandler(CheckFailureHandler handler);

// Installs a handler for the scope's lifetime, then puts the previous back.
class ScopedCheckFailureHandler {
 public:
  explicit ScopedCheckFailureHandler(CheckFailureHandler handler)
      : previous_(SetCheckFailureHandler(handler)) {}
  ~ScopedCheckFailureHandler() { SetCheckFailureHandler(previous_); }
  ScopedCheckFailureHandler(const ScopedCheckFailureHandler&) = delete;
  ScopedCheckFailureHandler& operator=(const ScopedCheckFailureHandler&) = delete;

 private:
  CheckFailureHandler previous_;
};

namespace check_internal {

// Collects the streamed message of a failed check and calls the handler from
// its destructor, so the whole message is there. The destructor may throw
// (the handler may), hence noexcept(false).
class CheckFailure {
 public:
  CheckFailure(const char* file, int line, std::string condition)
      : file_(file), line_(line), condition_(std::move(condition)) {}
  ~CheckFailure() noexcept(false);
  CheckFailure(const CheckFailure&) = delete;
  CheckFailure& operator=(const CheckFailure&) = delete;

  std::ostream& stream() { return stream_; }

 private:
  const char* file_;
  int line_;
  std::string condition_;
  std::ostringstream stream_;
};

// Null if `holds(a, b)`; else the comparison's text with both values.
template <typename A, typename B, typename Op>
std::unique_ptr<std::string> Compare(const A& a, const B& b, Op holds, const char* text) {
  if (holds(a, b)) return nullptr;
  std::ostringstream out;
  out << text << " (" << a << " vs " << b << ")";
  return std::make_unique<std::string>(out.str());
}

}  // namespace check_internal
}  // namespace parley

// The `if (...) {} else` shape makes the macro one statement that an
// enclosing if/else cannot capture, and lets a message be streamed after it.
#define PARLEY_CHECK(condition) \
  if (condition) {              \
  } else                        \
    ::parley::check_internal::CheckFailure(__FILE__, __LINE__, #condition).stream()

// Comparisons that report both values. Each operand is evaluated once.
#define PARLEY_CHECK_OP_(a, op, b)                                                   \
  if (std::unique_ptr<std::string> parley_check_failed_ =                             \
          ::parley::check_internal::Compare(                                          \
              (a), (b), [](const auto& x, const auto& y) { return x op y; },          \
              #a " " #op " " #b);                                                     \
      !parley_check_failed_) {                                                        \
  } else                                                                              \
    ::parley::check_internal::CheckFailure(__FILE__, __LINE__, *parley_check_failed_) \
        .stream()

#define PARLEY_CHECK_EQ(a, b) PARLEY_CHECK_OP_(a, ==, b)
#define PARLEY_CHECK_NE(a, b) PARLEY_CHECK_OP_(a, !=, b)
#define PARLEY_CHECK_LT(a, b) PARLEY_CHECK_OP_(a, <, b)
#define PARLEY_CHECK_LE(a, b) PARLEY_CHECK_OP_(a, <=, b)
#define PARLEY_CHECK_GT(a, b) PARLEY_CHECK_OP_(a, >, b)
#define PARLEY_CHECK_GE(a, b) PARLEY_CHECK_OP_(a, >=, b)

#endif  // PARLEY_CORE_CHECK_H_
