#include "common/thread.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <string>
#include <thread>

namespace fhirstone {
namespace {

std::string NameOf(pthread_t thread) {
  char name[16] = {};
  pthread_getname_np(thread, name, sizeof name);
  return name;
}

TEST(ThreadTest, NamesTheCallingThreadCuttingTo15Bytes) {
  std::string named, cut;
  std::thread([&] {
    NameThisThread("fs-writer");
    named = NameOf(pthread_self());
    NameThisThread("fs-a-name-longer-than-fifteen");
    cut = NameOf(pthread_self());
  }).join();
  EXPECT_EQ(named, "fs-writer");
  EXPECT_EQ(cut, "fs-a-name-longe");
}

}  // namespace
}  // namespace fhirstone
