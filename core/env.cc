#include "core/env.h"

namespace parley {

std::string EventTopic(const Event& event) {
  switch (event.body_case()) {
    case Event::kUserProfileChanged:
      return "user";
    case Event::kFriendChanged:
      return "friend";
    case Event::kMembershipChanged:
      return "group";
    case Event::BODY_NOT_SET:
      break;
  }
  return "unknown";
}

}  // namespace parley
