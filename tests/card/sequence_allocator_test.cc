#include "services/card/sequence_allocator.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "storage/clock.h"
#include "storage/key_codec.h"
#include "storage/key_lock.h"
#include "storage/rocksdb_engine.h"
#include "tests/card/test_ids.h"

namespace ssc::card {
namespace {

using storage::Table;

class SequenceAllocatorTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }

  void Open() {
    engine_.reset();
    storage::RocksDbOptions o;
    o.path = dir_.path() + "/db";
    o.clock = &clock_;
    o.block_cache_bytes = 8 << 20;
    o.write_fault_for_testing = [this]() -> absl::Status {
      if (fail_writes_) return absl::UnavailableError("injected write fault");
      return absl::OkStatus();
    };
    auto e = storage::OpenRocksDbEngine(o);
    ASSERT_TRUE(e.ok()) << e.status();
    engine_ = std::move(*e);
  }

  // The stored high-water mark (0 if none).
  uint64_t Mark(const std::string& kind, const std::string& region) {
    auto v =
        engine_->Get(Table::kMeta, SequenceAllocator::StoreKey(kind, region));
    EXPECT_TRUE(v.ok()) << v.status();
    if (!v.ok() || !v->has_value()) return 0;
    EXPECT_EQ((*v)->size(), 8u);
    return storage::GetFixed64BE(**v);
  }

  void PutMark(const std::string& kind, const std::string& region,
               std::string value) {
    storage::WriteSet ws;
    ws.Put(Table::kMeta, SequenceAllocator::StoreKey(kind, region),
           std::move(value));
    ASSERT_TRUE(engine_->Commit(std::move(ws)).ok());
  }

  uint64_t Next(SequenceAllocator& a, const std::string& kind = "application",
                const std::string& region = "510524", uint64_t max = 999999) {
    auto n = a.Next(kind, region, max);
    EXPECT_TRUE(n.ok()) << n.status();
    return n.ok() ? *n : 0;
  }

  testing::TempDir dir_;
  storage::ManualClock clock_;
  storage::KeyLocks locks_;
  std::atomic<bool> fail_writes_{false};
  std::unique_ptr<storage::Engine> engine_;
};

TEST_F(SequenceAllocatorTest, HandsOutConsecutiveNumbersFromDurableBlocks) {
  SequenceAllocator a(engine_.get(), &locks_, 10);
  const uint64_t commits = engine_->Stats().commits;
  EXPECT_EQ(Next(a), 1u);
  // The block is stored before its first number is handed out.
  EXPECT_EQ(Mark("application", "510524"), 10u);
  for (uint64_t i = 2; i <= 10; ++i) EXPECT_EQ(Next(a), i);
  // One write per block, not per number.
  EXPECT_EQ(engine_->Stats().commits, commits + 1);
  EXPECT_EQ(Next(a), 11u);
  EXPECT_EQ(Mark("application", "510524"), 20u);
  EXPECT_EQ(engine_->Stats().commits, commits + 2);
}

TEST_F(SequenceAllocatorTest, SequencesAreIndependentPerKindAndRegion) {
  SequenceAllocator a(engine_.get(), &locks_, 5);
  EXPECT_EQ(Next(a, "application", "510524"), 1u);
  EXPECT_EQ(Next(a, "application", "510524"), 2u);
  EXPECT_EQ(Next(a, "card_number", "510524"), 1u);
  EXPECT_EQ(Next(a, "application", "510525"), 1u);
  EXPECT_EQ(Mark("card_number", "510524"), 5u);
  EXPECT_EQ(Mark("application", "510525"), 5u);
}

TEST_F(SequenceAllocatorTest, ContinuesAfterTheStoredMarkWhenReopened) {
  std::set<uint64_t> seen;
  {
    SequenceAllocator a(engine_.get(), &locks_, 100);
    for (int i = 0; i < 3; ++i) seen.insert(Next(a));
  }
  Open();  // a restart: the rest of the first block is lost as a gap
  SequenceAllocator b(engine_.get(), &locks_, 100);
  const uint64_t first = Next(b);
  EXPECT_EQ(first, 101u);
  EXPECT_GT(first, *seen.rbegin());
  EXPECT_EQ(seen.count(first), 0u);
}

TEST_F(SequenceAllocatorTest, ContinuesAfterALastNumberStoredByTheOldLayout) {
  // Before the allocator the same key held the last number used.
  std::string v;
  storage::PutFixed64BE(&v, 41);
  PutMark("application", "510524", v);
  SequenceAllocator a(engine_.get(), &locks_, 1000);
  EXPECT_EQ(Next(a), 42u);
  EXPECT_EQ(Mark("application", "510524"), 1041u);
}

TEST_F(SequenceAllocatorTest, AFailedReservationHandsOutNothing) {
  SequenceAllocator a(engine_.get(), &locks_, 3);
  EXPECT_EQ(Next(a), 1u);
  EXPECT_EQ(Next(a), 2u);
  EXPECT_EQ(Next(a), 3u);
  fail_writes_ = true;
  auto n = a.Next("application", "510524", 999999);
  EXPECT_FALSE(n.ok());
  EXPECT_EQ(Mark("application", "510524"), 3u);
  fail_writes_ = false;
  EXPECT_EQ(Next(a), 4u);
  EXPECT_EQ(Mark("application", "510524"), 6u);
}

TEST_F(SequenceAllocatorTest, StopsAtTheMaximum) {
  SequenceAllocator a(engine_.get(), &locks_, 2);
  EXPECT_EQ(Next(a, "card_number", "510524", 3), 1u);
  EXPECT_EQ(Next(a, "card_number", "510524", 3), 2u);
  EXPECT_EQ(Next(a, "card_number", "510524", 3), 3u);
  EXPECT_EQ(Mark("card_number", "510524"), 3u);  // the last block is cut
  auto n = a.Next("card_number", "510524", 3);
  EXPECT_EQ(n.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(SequenceAllocatorTest, CorruptMarkIsDataLoss) {
  PutMark("application", "510524", "abc");
  SequenceAllocator a(engine_.get(), &locks_, 10);
  auto n = a.Next("application", "510524", 999999);
  EXPECT_EQ(n.status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(SequenceAllocatorTest, ConcurrentCallersAndAllocatorsGetUniqueNumbers) {
  // Two allocators on one store (sharing the locks), small blocks so that
  // reservations race, 16 threads.
  SequenceAllocator a(engine_.get(), &locks_, 7);
  SequenceAllocator b(engine_.get(), &locks_, 7);
  constexpr int kThreads = 16;
  constexpr int kPerThread = 200;
  std::vector<std::vector<uint64_t>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      SequenceAllocator& mine = t % 2 == 0 ? a : b;
      uint64_t previous = 0;
      for (int i = 0; i < kPerThread; ++i) {
        auto n = mine.Next("application", "510524", 999999);
        ASSERT_TRUE(n.ok()) << n.status();
        EXPECT_GT(*n, previous);  // increasing for each caller
        previous = *n;
        got[t].push_back(*n);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<uint64_t> all;
  for (const auto& v : got) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_LE(*all.rbegin(), Mark("application", "510524"));
}

}  // namespace
}  // namespace ssc::card
