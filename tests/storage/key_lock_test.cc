#include "storage/key_lock.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace ssc::storage {
namespace {

TEST(KeyLocksTest, SameKeySerializesReadModifyWrite) {
  KeyLocks locks(64);
  int64_t counter = 0;  // unsynchronized on purpose: the lock protects it
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        // Overlapping key sets in different orders must not deadlock.
        std::string other = absl::StrCat("k", (t + i) % 5);
        KeyLocks::Guard g = (t % 2 == 0) ? locks.Lock({"shared", other})
                                         : locks.Lock({other, "shared", other});
        int64_t v = counter;
        counter = v + 1;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(counter, 8 * 2000);
}

TEST(KeyLocksTest, GuardReleasesOnDestructionAndMoveAssign) {
  KeyLocks locks(1);  // one stripe: every key conflicts
  {
    KeyLocks::Guard g = locks.Lock({"a"});
    KeyLocks::Guard h;
    h = std::move(g);  // the lock moves, it is not released twice
  }
  KeyLocks::Guard g1 = locks.Lock({"b"});
  g1 = KeyLocks::Guard();                  // releases "b"
  KeyLocks::Guard g2 = locks.Lock({"c"});  // would block if "b" still held
  SUCCEED();
}

// The importer locks a batch's keys on its thread and releases them on the
// thread that commits the batch. With std::mutex stripes that unlock was
// undefined behaviour (ThreadSanitizer: "unlock of an unlocked mutex (or by
// a wrong thread)"); run under -DSSC_SANITIZE=thread to check.
TEST(KeyLocksTest, GuardReleasedOnAnotherThreadFreesTheKeys) {
  KeyLocks locks(1);
  for (int round = 0; round < 100; ++round) {
    KeyLocks::Guard g = locks.Lock({"a"});
    std::thread other([held = std::move(g)]() mutable {
      KeyLocks::Guard mine = std::move(held);
    });  // releases "a" there
    other.join();
    KeyLocks::Guard again = locks.Lock({"a"});  // would block if still held
  }
  SUCCEED();
}

}  // namespace
}  // namespace ssc::storage
