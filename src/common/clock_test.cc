#include "common/clock.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <unordered_set>

namespace fhirstone {
namespace {

bool IsLowerHexUuid(const std::string& id) {
  if (id.size() != 36) return false;
  for (size_t i = 0; i < id.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    char c = id[i];
    if (dash != (c == '-')) return false;
    if (!dash && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

TEST(IdGeneratorTest, RandomIdsAreVersion4Uuids) {
  RandomIdGenerator ids;
  std::unordered_set<std::string> seen;
  for (int i = 0; i < 10000; ++i) {
    std::string id = ids.NewId();
    ASSERT_TRUE(IsLowerHexUuid(id)) << id;
    EXPECT_EQ(id[14], '4') << id;
    EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos) << id;
    EXPECT_TRUE(seen.insert(id).second) << id;
  }
}

TEST(IdGeneratorTest, TimeOrderedIdsAreVersion7UuidsThatSortByTime) {
  TimeOrderedIdGenerator ids;
  auto ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  int64_t before = ms();
  std::string first = ids.NewId();
  int64_t after = ms();
  ASSERT_TRUE(IsLowerHexUuid(first)) << first;
  EXPECT_EQ(first[14], '7') << first;
  EXPECT_NE(std::string("89ab").find(first[19]), std::string::npos) << first;
  // The first 48 bits are the time in milliseconds.
  int64_t stamp = std::stoll(first.substr(0, 8) + first.substr(9, 4), nullptr, 16);
  EXPECT_GE(stamp, before);
  EXPECT_LE(stamp, after);

  // Unique, also within one millisecond; an id from a later millisecond sorts after.
  std::unordered_set<std::string> seen{first};
  for (int i = 0; i < 20000; ++i) EXPECT_TRUE(seen.insert(ids.NewId()).second);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  std::string later = ids.NewId();
  for (const std::string& id : seen) EXPECT_LT(id, later);
}

}  // namespace
}  // namespace fhirstone
