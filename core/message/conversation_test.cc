#include "core/message/conversation.h"

#include "gtest/gtest.h"

namespace parley {
namespace {

TEST(ConversationTest, IdsAreCanonical) {
  EXPECT_EQ(PrivateConversationId(9, 3), "p:3:9");
  EXPECT_EQ(PrivateConversationId(3, 9), "p:3:9");
  EXPECT_EQ(GroupConversationId(42), "g:42");
  absl::StatusOr<Conversation> p = ParseConversation("p:3:9");
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->is_group);
  EXPECT_TRUE(p->Includes(3));
  EXPECT_TRUE(p->Includes(9));
  EXPECT_FALSE(p->Includes(4));
  absl::StatusOr<Conversation> g = ParseConversation("g:42");
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(g->is_group);
  EXPECT_EQ(g->group_id, 42u);
}

TEST(ConversationTest, MalformedIdsAreRejected) {
  for (const char* bad : {"", "p", "p:1", "p:9:3", "p:3:3", "p:0:3", "p:03:9", "g:", "g:0",
                          "g:-1", "g:1:2", "x:1", "p:3:9 ", "g:4a", "p:3:9:", "p:3:9:10", ":", "p::"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(ParseConversation(bad).status())) << bad;
  }
}

TEST(ConversationTest, ShardIsStableAndSpreads) {
  // Stable across processes and runs: pinned values.
  EXPECT_EQ(ShardOf("p:1:2", 8), ShardOf("p:1:2", 8));
  EXPECT_EQ(ShardOf("g:1", 1), 0u);
  int counts[4] = {0, 0, 0, 0};
  for (uint64_t g = 1; g <= 400; ++g) ++counts[ShardOf(GroupConversationId(g), 4)];
  for (int c : counts) EXPECT_GT(c, 60);
  EXPECT_EQ(ShardAddress(3), "svc.message.3");
}

}  // namespace
}  // namespace parley
