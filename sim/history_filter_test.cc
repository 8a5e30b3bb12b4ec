#include "sim/history_filter.h"

#include "gtest/gtest.h"

namespace parley {
namespace sim {
namespace {

HistoryEntry Entry(int64_t index, int64_t ms, HistoryEntry::Kind kind, const std::string& client,
                   uint64_t user, const std::string& conversation) {
  HistoryEntry e;
  e.set_index(index);
  e.set_time_us(1700000000000000LL + ms * 1000);
  e.set_kind(kind);
  e.set_client(client);
  e.set_user_id(user);
  e.set_conversation(conversation);
  return e;
}

HistoryFilter Parse(const std::string& client, const std::string& conversation,
                    const std::string& from, const std::string& to, const std::string& around) {
  absl::StatusOr<HistoryFilter> f = ParseHistoryFilter(client, conversation, from, to, around);
  EXPECT_TRUE(f.ok()) << f.status();
  return f.ok() ? *f : HistoryFilter{};
}

TEST(HistoryFilterTest, NoFiltersPassEverything) {
  const HistoryFilter f = Parse("", "", "", "", "");
  EXPECT_TRUE(f.empty());
  EXPECT_EQ(f.ToString(), "none");
  EXPECT_TRUE(Passes(f, Entry(5, 100, HistoryEntry::DELIVERED, "client.user1.d1", 7, "g:1")));
}

TEST(HistoryFilterTest, ClientByAddressPrefixAndUser) {
  const HistoryEntry e = Entry(1, 0, HistoryEntry::DELIVERED, "client.user6.d1", 168, "p:2:3");
  EXPECT_TRUE(Passes(Parse("client.user6.d1", "", "", "", ""), e));
  EXPECT_TRUE(Passes(Parse("client.user6", "", "", "", ""), e));
  EXPECT_FALSE(Passes(Parse("client.user6.d2", "", "", "", ""), e));
  EXPECT_FALSE(Passes(Parse("client.user", "", "", "", ""), e));  // a whole part only
  EXPECT_FALSE(Passes(Parse("client.user61", "", "", "", ""), e));
  EXPECT_TRUE(Passes(Parse("168", "", "", "", ""), e));
  EXPECT_FALSE(Passes(Parse("6", "", "", "", ""), e));
}

TEST(HistoryFilterTest, ConversationTimeAndAroundCombine) {
  const HistoryFilter f = Parse("", "p:2:3", "100", "200", "10:2");
  EXPECT_EQ(f.ToString(), "conversation=p:2:3 from_ms=100 to_ms=200 around=10:2");
  EXPECT_TRUE(Passes(f, Entry(10, 150, HistoryEntry::SEND_ACKED, "c", 1, "p:2:3")));
  EXPECT_TRUE(Passes(f, Entry(12, 200, HistoryEntry::SEND_ACKED, "c", 1, "p:2:3")));
  EXPECT_FALSE(Passes(f, Entry(13, 150, HistoryEntry::SEND_ACKED, "c", 1, "p:2:3")));
  EXPECT_FALSE(Passes(f, Entry(10, 201, HistoryEntry::SEND_ACKED, "c", 1, "p:2:3")));
  EXPECT_FALSE(Passes(f, Entry(10, 99, HistoryEntry::SEND_ACKED, "c", 1, "p:2:3")));
  EXPECT_FALSE(Passes(f, Entry(10, 150, HistoryEntry::SEND_ACKED, "c", 1, "p:2:30")));
  EXPECT_EQ(Parse("", "", "", "", "7").around_k, 20);
}

TEST(HistoryFilterTest, FaultsPassAllButTheTimeWindow) {
  const HistoryFilter f = Parse("client.user1", "g:4", "100", "200", "0:1");
  EXPECT_TRUE(Passes(f, Entry(500, 150, HistoryEntry::FAULT, "nemesis", 0, "")));
  EXPECT_FALSE(Passes(f, Entry(500, 250, HistoryEntry::FAULT, "nemesis", 0, "")));
}

TEST(HistoryFilterTest, BadValuesAreErrors) {
  EXPECT_FALSE(ParseHistoryFilter("", "", "", "", "x").ok());
  EXPECT_FALSE(ParseHistoryFilter("", "", "", "", "3:y").ok());
  EXPECT_FALSE(ParseHistoryFilter("", "", "", "", "1:2:3").ok());
  EXPECT_FALSE(ParseHistoryFilter("", "", "", "", "-1").ok());
  EXPECT_FALSE(ParseHistoryFilter("", "", "soon", "", "").ok());
  EXPECT_FALSE(ParseHistoryFilter("", "", "", "-5", "").ok());
  EXPECT_FALSE(ParseHistoryFilter("", "", "5", "4", "").ok());
  EXPECT_NE(ParseHistoryFilter("", "", "", "", "x").status().message().find("--around=x"),
            std::string::npos);
}

}  // namespace
}  // namespace sim
}  // namespace parley
