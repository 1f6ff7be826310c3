// Write sets carved from a ByteChunkPool (bulk imports): their bytes stay
// valid as sets are moved, appended and copied across threads, chunks go
// back to the pool with the last set holding bytes in them, and the store
// commits such sets exactly as others.

#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "storage/engine.h"
#include "storage/rocksdb_engine.h"
#include "tests/storage/test_util.h"

namespace ssc::storage {
namespace {

using testing_util::StorePair;

// A set of `n` puts and events named after `tag`, built through `carver`.
WriteSet Build(ByteCarver* carver, const std::string& tag, int n) {
  WriteSet ws;
  ws.UseCarver(carver);
  ws.BeginEventRun();
  for (int i = 0; i < n; ++i) {
    ws.Put(Table::kCards, absl::StrCat(tag, "/", i),
           std::string(50 + i % 200, static_cast<char>('a' + i % 26)));
    ws.AddCounter(Table::kCounters, absl::StrCat(tag, "/count"), 1);
    EventInput e;
    e.type = "test.carved";
    e.entity_type = "card";
    e.entity_id = absl::StrCat(tag, "/", i);
    e.payload = std::string(i % 300, 'p');
    e.also_index.emplace_back("person", tag);
    ws.AppendEvent(std::move(e));
  }
  ws.UseCarver(nullptr);
  return ws;
}

// Checks every byte of a set made by Build (in order, from `first`).
void ExpectBuilt(const WriteSet& ws, const std::string& tag, int n,
                 size_t first_op = 0, size_t first_event = 0) {
  ASSERT_GE(ws.ops().size(), first_op + 2 * n);
  ASSERT_GE(ws.events().size(), first_event + n);
  for (int i = 0; i < n; ++i) {
    const WriteSet::Op& put = ws.ops()[first_op + 2 * i];
    EXPECT_EQ(put.key, absl::StrCat(tag, "/", i));
    EXPECT_EQ(put.value,
              std::string(50 + i % 200, static_cast<char>('a' + i % 26)));
    const WriteSet::Event& e = ws.events()[first_event + i];
    EXPECT_EQ(e.entity_id, absl::StrCat(tag, "/", i));
    EXPECT_EQ(e.payload, std::string(i % 300, 'p'));
    ASSERT_EQ(e.also_index.size(), 1u);
    EXPECT_EQ(e.also_index[0].second, tag);
  }
}

TEST(ByteChunkPoolTest, ChunksReturnWithTheLastSetAndAreReused) {
  ByteChunkPool pool(64 << 10, 8);
  ByteCarver carver(&pool);
  EXPECT_EQ(pool.kept(), 0u);
  {
    // About 10 chunks' worth in one set, and a set sharing its last chunk.
    WriteSet a = Build(&carver, "a", 2000);
    WriteSet b = Build(&carver, "b", 10);
    ExpectBuilt(a, "a", 2000);
    ExpectBuilt(b, "b", 10);
    EXPECT_EQ(pool.kept(), 0u);
  }
  // The carver still holds its current chunk; the others came back, at
  // most 8 of them kept.
  EXPECT_EQ(pool.kept(), 8u);
  {
    WriteSet c = Build(&carver, "c", 2000);  // takes the kept ones first
    EXPECT_LT(pool.kept(), 8u);
    ExpectBuilt(c, "c", 2000);
  }
  EXPECT_EQ(pool.kept(), 8u);
}

// A cleared set is as a new one (its chunks go back to the pool), and is
// built again from the start, as the importer reuses its persons' sets.
TEST(ByteChunkPoolTest, ClearedSetsGiveBackTheirChunksAndStartAfresh) {
  ByteChunkPool pool(64 << 10, 8);
  ByteCarver carver(&pool);
  WriteSet a = Build(&carver, "a", 2000);
  a.BeginEventRun();  // left open, with the other settings
  a.SetEventTime(absl::FromUnixSeconds(100));
  a.set_sync(false);
  a.set_bulk_load(true);
  a.AppendAudit(AuditInput{});
  EXPECT_EQ(pool.kept(), 0u);
  a.Clear();
  EXPECT_TRUE(a.empty());
  EXPECT_TRUE(a.audits().empty());
  EXPECT_TRUE(a.sync());
  EXPECT_FALSE(a.bulk_load());
  EXPECT_EQ(pool.kept(), 8u);  // all but the carver's current chunk
  // Built again: no run is open, events take the commit time.
  a.Put(Table::kCards, "k", "v");
  a.AppendEvent(EventView{"t", "card", "1", "{}", {}});
  a.AppendEvent(EventView{"t", "card", "2", "{}", {}});
  ASSERT_EQ(a.ops().size(), 1u);
  EXPECT_EQ(a.ops()[0].key, "k");
  EXPECT_EQ(a.ops()[0].value, "v");
  ASSERT_EQ(a.events().size(), 2u);
  EXPECT_FALSE(a.events()[0].joins_next);
  EXPECT_EQ(a.events()[1].time, std::nullopt);
  // And reused with the carver, as before.
  a.Clear();
  a.UseCarver(&carver);
  a.Put(Table::kCards, "c", std::string(1000, 'c'));
  a.UseCarver(nullptr);
  EXPECT_EQ(a.ops()[0].value, std::string(1000, 'c'));
}

TEST(ByteChunkPoolTest, BytesSurviveMovesAppendsCopiesAndThePoolItself) {
  auto pool = std::make_unique<ByteChunkPool>(16 << 10, 4);
  WriteSet batch;
  std::vector<WriteSet> copies;
  {
    ByteCarver carver(pool.get());
    WriteSet a = Build(&carver, "a", 300);
    WriteSet b = Build(&carver, "b", 300);
    // A value larger than a quarter chunk gets memory of its own.
    WriteSet big;
    big.UseCarver(&carver);
    big.Put(Table::kCards, "big", std::string(100 << 10, 'B'));
    big.UseCarver(nullptr);
    copies.push_back(a);  // a copy owns its bytes
    WriteSet moved = std::move(b);
    batch.Append(std::move(a));
    batch.Append(std::move(moved));
    batch.Append(std::move(big));
    // Writes after the carver is gone use the set's own blocks.
    batch.Put(Table::kCards, "tail", "t");
  }
  pool.reset();  // the chunks outlive their pool
  ExpectBuilt(batch, "a", 300);
  ExpectBuilt(batch, "b", 300, 600, 300);
  ExpectBuilt(copies[0], "a", 300);
  EXPECT_EQ(batch.ops()[1200].value, std::string(100 << 10, 'B'));
  EXPECT_EQ(batch.ops()[1201].key, "tail");
}

TEST(ByteChunkPoolTest, SetsBuiltOnThreadsCommitAsOthers) {
  ByteChunkPool pool(32 << 10, 64);
  std::vector<WriteSet> built(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&pool, &built, t] {
      ByteCarver carver(&pool);
      for (int k = 0; k < 2; ++k) {
        built[2 * t + k] = Build(&carver, absl::StrCat("t", t, "k", k), 500);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  // The same sets built without a pool, for comparison.
  std::vector<WriteSet> plain;
  for (int t = 0; t < 2; ++t) {
    for (int k = 0; k < 2; ++k) {
      plain.push_back(Build(nullptr, absl::StrCat("t", t, "k", k), 500));
    }
  }
  StorePair stores;
  ASSERT_TRUE(stores.ok());
  Engine* carved = stores.a.get();
  Engine* heap = stores.b.get();
  // Appended and committed on yet another thread (the committer), and
  // freed there.
  std::thread committer([&] {
    WriteSet batch;
    for (WriteSet& ws : built) batch.Append(std::move(ws));
    batch.set_bulk_load(true);
    EXPECT_TRUE(carved->Commit(std::move(batch)).ok());
  });
  committer.join();
  WriteSet batch;
  for (WriteSet& ws : plain) batch.Append(std::move(ws));
  batch.set_bulk_load(true);
  ASSERT_TRUE(heap->Commit(std::move(batch)).ok());
  for (Table t : {Table::kCards, Table::kCounters, Table::kEvents,
                  Table::kEntityEvents}) {
    std::vector<std::pair<std::string, std::string>> x, y;
    auto dump = [](Engine& e, Table t, auto* out) {
      EXPECT_TRUE(
          e.Scan(t, "", "", [out](std::string_view k, std::string_view v) {
             out->emplace_back(std::string(k), std::string(v));
             return true;
           }).ok());
    };
    dump(*carved, t, &x);
    dump(*heap, t, &y);
    EXPECT_EQ(x, y) << TableName(t);
  }
  // Every chunk came back to the pool, from the committer thread too.
  EXPECT_GT(pool.kept(), 20u);
}

}  // namespace
}  // namespace ssc::storage
