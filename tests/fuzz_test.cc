// Fuzzing without libFuzzer: seeded random-input tests that mutate
// valid inputs — bit flips, truncation, insertion, splices, and field-level
// protobuf mutations through reflection — and assert no crash, no hang, and
// a clear answer to bad input. Three targets:
//   - the frame decoder (server/frame.*), on streams of mutated frames;
//   - everything a gateway does with a decoded envelope, before and after
//     login (every Request op, mutated), through a cluster of the real core;
//   - scenario files (sim ParseScenario, and RunConfig on what parses).
// Every run is deterministic (fixed seeds; PARLEY_FUZZ_SEED picks another,
// PARLEY_FUZZ_SCALE multiplies the counts). An input that crashed or hung is
// kept below as a regression test.
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/message/conversation.h"
#include "core/services.h"
#include "core/status.h"
#include "fakes/core_cluster.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/reflection.h"
#include "gtest/gtest.h"
#include "server/frame.h"
#include "sim/simulation.h"

namespace parley {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Reflection;

uint64_t Seed() {
  const char* s = std::getenv("PARLEY_FUZZ_SEED");
  return s != nullptr ? std::strtoull(s, nullptr, 10) : 17;
}
double Scale() {
  const char* s = std::getenv("PARLEY_FUZZ_SCALE");
  return s != nullptr ? std::atof(s) : 1.0;
}
size_t Count(size_t n) { return static_cast<size_t>(n * Scale()); }

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}
  uint64_t Next() { return rng_(); }
  size_t Below(size_t n) { return n == 0 ? 0 : rng_() % n; }
  bool OneIn(size_t n) { return Below(n) == 0; }

  uint64_t Interesting() {
    static const uint64_t kValues[] = {0, 1, 2, 7, 127, 128, 255, 256, 1000, 65535, 65536,
                                       0x7fffffff, 0x80000000ull, 0xffffffffull,
                                       0x7fffffffffffffffull, 0x8000000000000000ull,
                                       0xffffffffffffffffull, 0xfffffffffffffffeull};
    if (OneIn(3)) return rng_();
    return kValues[Below(sizeof(kValues) / sizeof(kValues[0]))];
  }
  std::string String() {
    static const char* kValues[] = {"", "a", "alice", "bob", "p:1:2", "p:2:1", "g:1", "g:0",
                                    "p:", "g:", "g:-1", "p:18446744073709551615:0", "p:1:1",
                                    "x:1", "gw.1", "svc.message.0", "svc.user.1", "\xff\xfe",
                                    "password-alice", "d1", "%s%n", "../../etc/passwd"};
    switch (Below(5)) {
      case 0:
        return kValues[Below(sizeof(kValues) / sizeof(kValues[0]))];
      case 1: {
        std::string s(Below(40), '\0');
        for (char& c : s) c = static_cast<char>(rng_());
        return s;
      }
      case 2:
        return std::string(OneIn(8) ? 70 * 1024 : Below(20000), 'a' + Below(26));
      default: {
        std::string s(Below(16), 'a');
        for (char& c : s) c = 'a' + Below(26);
        return s;
      }
    }
  }

  // Sets one field (somewhere down to `depth` levels) of `m` to a new value.
  void MutateField(google::protobuf::Message* m, int depth = 4) {
    const Descriptor* d = m->GetDescriptor();
    const Reflection* r = m->GetReflection();
    if (d->field_count() == 0) return;
    const FieldDescriptor* f = d->field(static_cast<int>(Below(d->field_count())));
    if (f->is_repeated()) {
      const int size = r->FieldSize(*m, f);
      if (size > 0 && OneIn(4)) return r->ClearField(m, f);
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        google::protobuf::Message* e = size > 0 && OneIn(2)
                                           ? r->MutableRepeatedMessage(m, f, Below(size))
                                           : r->AddMessage(m, f);
        if (depth > 0) MutateField(e, depth - 1);
        return;
      }
      const int adds = OneIn(16) ? 300 : 1;
      for (int i = 0; i < adds; ++i) AddScalar(m, r, f);
      return;
    }
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (OneIn(6)) return r->ClearField(m, f);
      google::protobuf::Message* sub = r->MutableMessage(m, f);
      if (depth > 0) MutateField(sub, depth - 1);
      return;
    }
    const uint64_t v = Interesting();
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32: return r->SetInt32(m, f, static_cast<int32_t>(v));
      case FieldDescriptor::CPPTYPE_INT64: return r->SetInt64(m, f, static_cast<int64_t>(v));
      case FieldDescriptor::CPPTYPE_UINT32: return r->SetUInt32(m, f, static_cast<uint32_t>(v));
      case FieldDescriptor::CPPTYPE_UINT64: return r->SetUInt64(m, f, v);
      case FieldDescriptor::CPPTYPE_DOUBLE: return r->SetDouble(m, f, Double());
      case FieldDescriptor::CPPTYPE_FLOAT: return r->SetFloat(m, f, static_cast<float>(Double()));
      case FieldDescriptor::CPPTYPE_BOOL: return r->SetBool(m, f, v & 1);
      case FieldDescriptor::CPPTYPE_ENUM:
        return r->SetEnumValue(m, f, OneIn(2) ? static_cast<int>(Below(8)) : static_cast<int>(v));
      case FieldDescriptor::CPPTYPE_STRING: return r->SetString(m, f, String());
      default: return;
    }
  }

  // Byte-level damage: flips, truncation, insertion, deletion, splices.
  void MutateBytes(std::string* s) {
    const int rounds = 1 + static_cast<int>(Below(4));
    for (int i = 0; i < rounds; ++i) {
      switch (Below(7)) {
        case 0:
          if (!s->empty()) (*s)[Below(s->size())] ^= static_cast<char>(1 << Below(8));
          break;
        case 1:
          if (!s->empty()) s->resize(Below(s->size()));
          break;
        case 2: {
          std::string junk(1 + Below(8), '\0');
          for (char& c : junk) c = static_cast<char>(rng_());
          s->insert(Below(s->size() + 1), junk);
          break;
        }
        case 3:
          if (!s->empty()) s->erase(Below(s->size()), 1 + Below(8));
          break;
        case 4:
          if (!s->empty()) (*s)[Below(s->size())] = static_cast<char>(Interesting());
          break;
        case 5:
          if (s->size() > 2) {  // duplicate a slice
            const size_t at = Below(s->size()), n = 1 + Below(s->size() - at);
            s->insert(Below(s->size() + 1), s->substr(at, n));
          }
          break;
        default:
          if (!s->empty()) (*s)[Below(s->size())] = static_cast<char>(0x80 | rng_());
          break;
      }
    }
  }

 private:
  double Double() {
    static const double kValues[] = {0, -0.0, 1, -1, 1e308, -1e308, 1e-308, 0.5,
                                     std::numeric_limits<double>::infinity(),
                                     -std::numeric_limits<double>::infinity(),
                                     std::numeric_limits<double>::quiet_NaN()};
    return kValues[Below(sizeof(kValues) / sizeof(kValues[0]))];
  }
  void AddScalar(google::protobuf::Message* m, const Reflection* r, const FieldDescriptor* f) {
    const uint64_t v = Interesting();
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32: return r->AddInt32(m, f, static_cast<int32_t>(v));
      case FieldDescriptor::CPPTYPE_INT64: return r->AddInt64(m, f, static_cast<int64_t>(v));
      case FieldDescriptor::CPPTYPE_UINT32: return r->AddUInt32(m, f, static_cast<uint32_t>(v));
      case FieldDescriptor::CPPTYPE_UINT64: return r->AddUInt64(m, f, v);
      case FieldDescriptor::CPPTYPE_DOUBLE: return r->AddDouble(m, f, Double());
      case FieldDescriptor::CPPTYPE_FLOAT: return r->AddFloat(m, f, static_cast<float>(Double()));
      case FieldDescriptor::CPPTYPE_BOOL: return r->AddBool(m, f, v & 1);
      case FieldDescriptor::CPPTYPE_ENUM: return r->AddEnumValue(m, f, static_cast<int>(v));
      case FieldDescriptor::CPPTYPE_STRING: return r->AddString(m, f, String());
      default: return;
    }
  }
  std::mt19937_64 rng_;
};

// One Request per op (every field of Request's oneof), defaults inside.
std::vector<Request> EveryOp() {
  std::vector<Request> out;
  const Descriptor* d = Request::descriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || f->containing_oneof() == nullptr) {
      continue;
    }
    Request r;
    r.GetReflection()->MutableMessage(&r, f);
    out.push_back(r);
  }
  return out;
}

// ---------------------------------------------------------------------------
// The frame decoder.

// Decodes `stream` to the end: every call consumes a frame or stops; returns
// the frames decoded and the result that stopped it.
FrameResult DecodeAll(std::string stream, std::vector<Envelope>* frames) {
  const size_t bytes = stream.size();
  for (size_t guard = 0;; ++guard) {
    // A frame takes at least one byte, so more calls than bytes is a hang.
    EXPECT_LE(guard, bytes + 1) << "the decoder does not progress";
    if (guard > bytes + 1) return FrameResult::kMalformed;
    const size_t before = stream.size();
    Envelope e;
    const FrameResult r = DecodeFrame(&stream, kDefaultMaxFrameBytes, &e);
    if (r != FrameResult::kFrame) {
      EXPECT_EQ(stream.size(), before) << "a refused frame must leave the buffer as it was";
      return r;
    }
    EXPECT_LT(stream.size(), before);
    frames->push_back(std::move(e));
  }
}

TEST(FuzzTest, FrameDecoderOnMutatedFrameStreams) {
  Mutator mu(Seed());
  std::vector<Envelope> seeds;
  for (const Request& r : EveryOp()) {
    Envelope e;
    e.set_correlation_id(1 + seeds.size());
    e.set_request_id(absl::StrCat("r", seeds.size()));
    *e.mutable_request() = r;
    seeds.push_back(e);
  }
  size_t inputs = 0, frames = 0, need_more = 0, too_large = 0, malformed = 0;
  const size_t n = Count(700000);
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < n; ++i) {
    std::vector<Envelope> sent;
    std::string stream;
    const int k = 1 + static_cast<int>(mu.Below(3));
    for (int j = 0; j < k; ++j) {
      Envelope e = seeds[mu.Below(seeds.size())];
      const int field_mutations = static_cast<int>(mu.Below(4));
      for (int m = 0; m < field_mutations; ++m) mu.MutateField(&e);
      stream += EncodeFrame(e);
      sent.push_back(std::move(e));
    }
    const bool damage = !mu.OneIn(5);
    if (damage) mu.MutateBytes(&stream);
    std::vector<Envelope> got;
    const FrameResult r = DecodeAll(stream, &got);
    ++inputs;
    frames += got.size();
    if (r == FrameResult::kNeedMore) ++need_more;
    if (r == FrameResult::kTooLarge) ++too_large;
    if (r == FrameResult::kMalformed) ++malformed;
    if (!damage) {
      // Undamaged: exactly the frames that went in, up to one over the limit
      // (refused as too large, never cut) or one that is no Envelope (a
      // mutated proto3 string that is not UTF-8: malformed).
      size_t fit = 0;
      FrameResult expected = FrameResult::kNeedMore;
      for (; fit < sent.size(); ++fit) {
        if (sent[fit].ByteSizeLong() > kDefaultMaxFrameBytes) {
          expected = FrameResult::kTooLarge;
          break;
        }
        Envelope check;
        if (!check.ParseFromString(sent[fit].SerializeAsString())) {
          expected = FrameResult::kMalformed;
          break;
        }
      }
      ASSERT_EQ(got.size(), fit);
      for (size_t j = 0; j < fit; ++j) {
        ASSERT_EQ(got[j].SerializeAsString(), sent[j].SerializeAsString());
      }
      ASSERT_EQ(r, expected);
    }
    if (HasFailure()) {
      ADD_FAILURE() << "input " << i << " (seed " << Seed() << ")";
      return;
    }
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("frames: %zu inputs, %zu frames decoded, %zu need-more, %zu too-large, %zu malformed, %.1f s\n",
              inputs, frames, need_more, too_large, malformed, s);
  EXPECT_GT(too_large, 0u);
  EXPECT_GT(malformed, 0u);
}

TEST(FuzzTest, FrameDecoderRegressions) {
  // Varints that never end, end past 5 bytes, or claim 2^32+.
  for (const std::string& bad :
       {std::string("\xff\xff\xff\xff\xff\xff", 6), std::string("\x80\x80\x80\x80\x80\x01", 6),
        std::string("\xff\xff\xff\xff\x0f", 5)}) {
    std::string buffer = bad;
    Envelope e;
    const FrameResult r = DecodeFrame(&buffer, kDefaultMaxFrameBytes, &e);
    EXPECT_TRUE(r == FrameResult::kMalformed || r == FrameResult::kTooLarge) << static_cast<int>(r);
    EXPECT_EQ(buffer, bad);
  }
  // A length in five bytes, not minimal (1): waits for its byte.
  std::string long_form("\x81\x80\x80\x80\x00", 5);
  Envelope one;
  EXPECT_EQ(DecodeFrame(&long_form, kDefaultMaxFrameBytes, &one), FrameResult::kNeedMore);
  std::string empty_frame("\x00", 1);  // a zero-length Envelope: a frame, empty
  Envelope e;
  EXPECT_EQ(DecodeFrame(&empty_frame, kDefaultMaxFrameBytes, &e), FrameResult::kFrame);
  EXPECT_TRUE(empty_frame.empty());
}

// ---------------------------------------------------------------------------
// The gateway, before and after login.

class GatewayFuzzTest : public ::testing::Test {
 protected:
  static CoreClusterOptions Options() {
    CoreClusterOptions o;
    o.gateways = 1;
    o.shards = 2;
    return o;
  }
  GatewayFuzzTest() : c_(Options()) {
    alice_ = c_.Register("alice");
    bob_ = c_.Register("bob");
    EXPECT_TRUE(c_.Befriend(alice_, bob_).ok());
  }
  std::string Token() {
    Request login;
    login.mutable_login()->set_name("alice");
    login.mutable_login()->set_password(password_);
    const Reply reply = c_.Call(CoreCluster::Address(kUserService), login);
    EXPECT_EQ(reply.status().code(), CODE_OK) << reply.status().message();
    return reply.login().token();
  }
  bool LogIn() {
    Request open;
    open.mutable_gateway_login()->set_token(Token());
    open.mutable_gateway_login()->set_device_id(absl::StrCat("fuzz", ++device_));
    open.mutable_gateway_login()->set_epoch(1);
    return c_.Call(kGateway, open).status().code() == CODE_OK;
  }
  bool Online() {
    Request ping;
    ping.mutable_ping();
    return c_.Call(kGateway, ping).status().code() == CODE_OK;
  }
  // Valid requests of a logged-in client, to mutate from.
  std::vector<Request> Corpus() {
    std::vector<Request> out = EveryOp();
    Request r;
    r.mutable_send_private()->set_to_user_id(bob_);
    r.mutable_send_private()->set_body("hello");
    r.mutable_send_private()->set_client_msg_id("c1");
    out.push_back(r);
    r.Clear();
    Cursor* cursor = r.mutable_sync()->add_cursors();
    cursor->set_conversation(PrivateConversationId(alice_, bob_));
    cursor->set_seq(1);
    r.mutable_sync()->set_max_messages(100);
    out.push_back(r);
    r.Clear();
    r.mutable_create_group()->set_name("g");
    r.mutable_create_group()->add_member_ids(bob_);
    out.push_back(r);
    r.Clear();
    r.mutable_list_conversations();
    out.push_back(r);
    r.Clear();
    r.mutable_ack()->set_conversation(PrivateConversationId(alice_, bob_));
    r.mutable_ack()->set_seq(1);
    r.mutable_ack()->set_device_id("fuzz1");
    out.push_back(r);
    r.Clear();
    r.mutable_register_()->set_name("carol");
    r.mutable_register_()->set_password("password-carol");
    out.push_back(r);
    return out;
  }
  // One mutated request; asserts a reply that is an answer (a known code, a
  // message with every refusal). Returns false on a failure.
  bool Try(Mutator& mu, const std::vector<Request>& corpus, size_t i, bool* hung) {
    Request r = corpus[mu.Below(corpus.size())];
    const int mutations = static_cast<int>(mu.Below(4));
    for (int m = 0; m < mutations; ++m) mu.MutateField(&r);
    // A repeated request_id is a retry, answered from the service's request
    // log whatever the request (docs/protocol.md): a change_password keeps a
    // fresh id, so an OK means the password changed.
    const std::string request_id =
        mu.OneIn(4) && !r.has_change_password() ? mu.String() : "";
    // Through the wire as a client's frame: what does not decode (a proto3
    // string that is not UTF-8, a frame over the limit) never reaches the
    // gateway — the listener answers it and closes the connection.
    {
      Envelope e;
      e.set_request_id(request_id);
      *e.mutable_request() = r;
      std::string frame = EncodeFrame(e);
      Envelope decoded;
      if (DecodeFrame(&frame, kDefaultMaxFrameBytes, &decoded) != FrameResult::kFrame) {
        ++undecodable_;
        return true;
      }
      r = decoded.request();
    }
    const Reply reply = c_.net().Call(kGateway, r, 0, absl::Seconds(15), request_id);
    const int code = reply.status().code();
    if (r.has_change_password() && code == CODE_OK) {
      password_ = r.change_password().new_password();  // the session's own, legitimately
    }
    if (r.has_change_password() || r.has_register_() || r.has_login()) {
      auth_log_.push_back(absl::StrCat("input ", i, ": ", r.ShortDebugString().substr(0, 200),
                                       " -> ", reply.status().code(), " ",
                                       reply.status().message()));
      if (auth_log_.size() > 8) auth_log_.erase(auth_log_.begin());
    }
    if (code == CODE_DEADLINE_EXCEEDED && reply.status().message() != "" &&
        absl::StrContains(reply.status().message(), "no reply")) {
      *hung = true;
    }
    if (!ErrorCode_IsValid(code)) {
      ADD_FAILURE() << "input " << i << ": unknown code " << code << " for " << r.ShortDebugString();
      return false;
    }
    if (code != CODE_OK && reply.status().message().empty()) {
      ADD_FAILURE() << "input " << i << ": a refusal without a message for "
                    << r.ShortDebugString().substr(0, 300);
      return false;
    }
    return true;
  }

  static constexpr char kGateway[] = "gw.1";
  CoreCluster c_;
  uint64_t alice_ = 0, bob_ = 0;
  int device_ = 0;
  std::string password_ = "password-alice";
  std::vector<std::string> auth_log_;  // the last auth requests, for a failure
  size_t undecodable_ = 0;
};

TEST_F(GatewayFuzzTest, MutatedEnvelopesBeforeAndAfterLogin) {
  Mutator mu(Seed() + 1);
  const std::vector<Request> corpus = Corpus();
  size_t before = 0, after = 0, hangs = 0, relogins = 0;
  const size_t n = Count(300000);
  const auto start = std::chrono::steady_clock::now();
  // Before login: every request is refused (or, for register and login,
  // forwarded) with an answer.
  for (size_t i = 0; i < n / 4; ++i, ++before) {
    bool hung = false;
    ASSERT_TRUE(Try(mu, corpus, i, &hung));
    if (hung) ++hangs;
  }
  ASSERT_TRUE(LogIn());
  for (size_t i = 0; i < n - n / 4; ++i, ++after) {
    if (i % 64 == 0 && !Online()) {  // a mutated logout or login ended the session
      const bool in = LogIn();
      ASSERT_TRUE(in) << "the real user can no longer log in after input " << i << "; last:\n"
                      << absl::StrJoin(auth_log_, "\n");
      ++relogins;
    }
    bool hung = false;
    ASSERT_TRUE(Try(mu, corpus, i, &hung));
    if (hung) ++hangs;
  }
  // The gateway still serves a plain request once it is all over.
  ASSERT_TRUE(Online() || LogIn());
  EXPECT_TRUE(Online());
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("gateway: %zu before login, %zu after (%zu refused by the frame decoder), %zu relogins, %zu unanswered, %.1f s\n",
              before, after, undecodable_, relogins, hangs, s);
  EXPECT_EQ(hangs, 0u) << "requests the gateway never answered";
}

// ---------------------------------------------------------------------------
// Scenario files.

std::vector<std::pair<std::string, std::string>> ScenarioFiles() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const char* name :
       {"default", "smoke", "offline_paging", "everything", "group_partitions",
        "presence_leases", "friend_cache_race", "bus_outage_storm"}) {
    std::ifstream in(absl::StrCat("scenarios/", name, ".textproto"));
    if (!in) continue;
    std::stringstream s;
    s << in.rdbuf();
    out.emplace_back(name, s.str());
  }
  return out;
}

// Text-level mutations that keep it textproto-shaped: numbers swapped for
// extreme ones, lines dropped or doubled, fields renamed.
void MutateText(Mutator& mu, std::string* text) {
  std::vector<std::string> lines = absl::StrSplit(*text, '\n');
  static const char* kNumbers[] = {"0", "-1", "1e308", "-1e308", "nan", "inf", "4294967296",
                                   "18446744073709551615", "18446744073709551616",
                                   "-9223372036854775808", "0.0000001", "1000000000", "2"};
  const int rounds = 1 + static_cast<int>(mu.Below(3));
  for (int r = 0; r < rounds && !lines.empty(); ++r) {
    std::string& line = lines[mu.Below(lines.size())];
    switch (mu.Below(5)) {
      case 0: {  // replace the value after a colon
        const size_t colon = line.find(':');
        if (colon != std::string::npos) {
          line = line.substr(0, colon + 1) + " " +
                 kNumbers[mu.Below(sizeof(kNumbers) / sizeof(kNumbers[0]))];
        }
        break;
      }
      case 1:
        line.clear();
        break;
      case 2:
        lines.push_back(line);
        break;
      case 3:
        line = "  " + mu.String() + ": " + kNumbers[mu.Below(sizeof(kNumbers) / sizeof(kNumbers[0]))];
        break;
      default:
        mu.MutateBytes(&line);
        break;
    }
  }
  *text = absl::StrJoin(lines, "\n");
}

TEST(FuzzTest, ScenarioFilesMutated) {
  Mutator mu(Seed() + 2);
  const auto files = ScenarioFiles();
  ASSERT_GE(files.size(), 4u);
  size_t inputs = 0, parsed = 0, refused = 0, configs = 0;
  const size_t n = Count(300000);
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < n; ++i, ++inputs) {
    const auto& [name, original] = files[mu.Below(files.size())];
    std::string text = original;
    if (mu.OneIn(2)) {
      MutateText(mu, &text);
    } else {
      mu.MutateBytes(&text);
    }
    absl::StatusOr<sim::Scenario> s = sim::ParseScenario(text, name);
    if (!s.ok()) {
      ++refused;
      ASSERT_FALSE(s.status().message().empty()) << "input " << i << ": a refusal says nothing";
      continue;
    }
    ++parsed;
    // What parses is also derived into a run's configuration, now and then.
    if (i % 97 == 0) {
      const std::string config = sim::RunConfig(*s, 1 + i);
      ++configs;
      ASSERT_FALSE(config.empty());
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("scenarios: %zu inputs, %zu parsed, %zu refused, %zu configs, %.1f s\n", inputs,
              parsed, refused, configs, secs);
  EXPECT_GT(refused, 0u);
  EXPECT_GT(parsed, 0u);
}

}  // namespace
}  // namespace parley
