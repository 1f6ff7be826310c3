// Bulk loads (WriteSet::set_bulk_load): a write set added as table files
// must leave the store exactly as the same set written through the WAL,
// atomically, durably, with gapless sequences and nothing left behind.

#include <rocksdb/options.h>
#include <rocksdb/sst_file_reader.h>
#include <rocksdb/table_properties.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "storage/audit.h"
#include "storage/engine.h"
#include "storage/key_codec.h"
#include "storage/rocksdb_engine.h"
#include "tests/storage/test_util.h"

namespace ssc::storage {
namespace {

using testing_util::OpenOrDie;
using testing_util::TempDir;

RocksDbOptions BulkAlways() {
  RocksDbOptions o;
  o.bulk_load_min_writes = 1;
  return o;
}

// Everything a table holds, key -> value.
std::map<std::string, std::string> Dump(Engine& e, Table t) {
  std::map<std::string, std::string> out;
  absl::Status s =
      e.Scan(t, "", "", [&](std::string_view k, std::string_view v) {
        out.emplace(std::string(k), std::string(v));
        return true;
      });
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

std::vector<StoredEvent> AllEvents(Engine& e) {
  auto events = e.ReadEvents(0, 1 << 20);
  EXPECT_TRUE(events.ok()) << events.status();
  return events.ok() ? *events : std::vector<StoredEvent>();
}

// State written before the bulk set, through the WAL: the bulk set
// overwrites, deletes and adds to some of it.
WriteSet Before() {
  WriteSet ws;
  for (int i = 0; i < 50; ++i) {
    ws.Put(Table::kPersons, absl::StrCat("p", i), absl::StrCat("old", i));
  }
  ws.AddCounter(Table::kCounters, "holders", 7);
  ws.Put(Table::kCounters, "reset", std::string(8, '\0'));
  EventInput e;
  e.type = "person.created";
  e.entity_type = "person";
  e.entity_id = "p0";
  e.payload = "{}";
  ws.AppendEvent(e);
  AuditInput a;
  a.caller = "CN=before";
  a.rpc = "setup";
  ws.AppendAudit(a);
  return ws;
}

// A set with every kind of write, repeated keys among them, in no order.
WriteSet Mixed() {
  WriteSet ws;
  for (int i = 999; i >= 0; --i) {
    ws.Put(Table::kCards, absl::StrCat("c", i), absl::StrCat("card", i));
  }
  ws.Put(Table::kCards, "c5", "first");
  ws.Put(Table::kCards, "c5", "second");  // the last put wins
  ws.Delete(Table::kPersons, "p3");       // deletes stored data
  ws.Put(Table::kPersons, "p4", "new4");  // overwrites stored data
  ws.Put(Table::kPersons, "p9", "gone");
  ws.Delete(Table::kPersons, "p9");  // put, then delete in the same set
  ws.Delete(Table::kPersons, "p10");
  ws.Put(Table::kPersons, "p10", "back");  // delete, then put
  ws.AddCounter(Table::kCounters, "holders", 5);
  ws.AddCounter(Table::kCounters, "holders", -2);  // onto a stored 7
  ws.AddCounter(Table::kCounters, "fresh", 3);
  ws.AddCounter(Table::kCounters, "reset", 4);  // onto a stored put
  ws.Put(Table::kCounters, "reset", std::string(8, '\0'));
  ws.AddCounter(Table::kCounters, "reset", 9);  // after a put in the set
  ws.Delete(Table::kCounters, "dropped");
  ws.AddCounter(Table::kCounters, "dropped", 2);  // after a delete
  for (int i = 0; i < 300; ++i) {
    EventInput e;
    e.type = "card.applied";
    e.entity_type = "card";
    e.entity_id = absl::StrCat("c", i % 17);
    e.payload = absl::StrCat("{\"n\":", i, "}");
    e.also_index.emplace_back("person", absl::StrCat("p", i % 5));
    if (i % 2 == 0) e.time = absl::FromUnixSeconds(1500000000 + i);
    ws.AppendEvent(std::move(e));
  }
  for (int i = 0; i < 3; ++i) {
    AuditInput a;
    a.caller = "CN=import";
    a.role = "admin";
    a.rpc = "ssc.v1.AdminService/Import";
    a.request_id = absl::StrCat("batch-", i);
    ws.AppendAudit(a);
  }
  return ws;
}

bool BulkDirIsEmpty(const std::string& db) {
  std::error_code ec;
  if (!std::filesystem::exists(db + "/bulk", ec)) return true;
  return std::filesystem::is_empty(db + "/bulk", ec);
}

TEST(BulkLoadTest, LeavesTheStoreAsTheSameWritesThroughTheLog) {
  TempDir bulk_dir, log_dir;
  ManualClock clock;
  auto bulk = OpenOrDie(bulk_dir.path(), &clock, BulkAlways());
  auto log = OpenOrDie(log_dir.path(), &clock, BulkAlways());
  ASSERT_NE(bulk, nullptr);
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(bulk->Commit(Before()).ok());
  ASSERT_TRUE(log->Commit(Before()).ok());

  WriteSet a = Mixed();
  a.set_bulk_load(true);
  auto ra = bulk->Commit(std::move(a));
  ASSERT_TRUE(ra.ok()) << ra.status();
  auto rb = log->Commit(Mixed());
  ASSERT_TRUE(rb.ok()) << rb.status();
  EXPECT_EQ(bulk->Stats().bulk_loads, 1u);
  EXPECT_EQ(log->Stats().bulk_loads, 0u);
  EXPECT_EQ(ra->first_event_sequence, 2u);
  EXPECT_EQ(ra->first_event_sequence, rb->first_event_sequence);
  EXPECT_EQ(ra->first_audit_sequence, rb->first_audit_sequence);

  for (int t = 0; t < kTableCount; ++t) {
    const Table table = static_cast<Table>(t);
    if (table == Table::kAudit) continue;  // commit times differ: verified
    EXPECT_EQ(Dump(*bulk, table), Dump(*log, table)) << TableName(table);
  }
  EXPECT_EQ(*bulk->Get(Table::kCards, "c5"), "second");
  EXPECT_EQ(*bulk->Get(Table::kPersons, "p3"), std::nullopt);
  EXPECT_EQ(*bulk->Get(Table::kPersons, "p9"), std::nullopt);
  EXPECT_EQ(*bulk->Get(Table::kPersons, "p10"), "back");
  EXPECT_EQ(*bulk->GetCounter(Table::kCounters, "holders"), 10);
  EXPECT_EQ(*bulk->GetCounter(Table::kCounters, "fresh"), 3);
  EXPECT_EQ(*bulk->GetCounter(Table::kCounters, "reset"), 9);
  EXPECT_EQ(*bulk->GetCounter(Table::kCounters, "dropped"), 2);

  std::vector<StoredEvent> eb = AllEvents(*bulk), el = AllEvents(*log);
  ASSERT_EQ(eb.size(), 301u);
  ASSERT_EQ(eb.size(), el.size());
  for (size_t i = 0; i < eb.size(); ++i) {
    EXPECT_EQ(eb[i].sequence, i + 1);
    EXPECT_EQ(eb[i].sequence, el[i].sequence);
    EXPECT_EQ(eb[i].payload, el[i].payload);
    EXPECT_EQ(eb[i].time, el[i].time);
  }
  auto of_person = bulk->ReadEntityEvents("person", "p2", 0, 1000);
  ASSERT_TRUE(of_person.ok());
  EXPECT_EQ(of_person->size(), 60u);
  auto chain = VerifyAuditChain(*bulk);
  ASSERT_TRUE(chain.ok()) << chain.status();
  EXPECT_TRUE(chain->ok) << chain->problem;
  EXPECT_TRUE(BulkDirIsEmpty(bulk_dir.path()));
}

TEST(BulkLoadTest, SurvivesReopenAndLaterWritesContinueTheSequences) {
  TempDir dir;
  ManualClock clock;
  {
    auto engine = OpenOrDie(dir.path(), &clock, BulkAlways());
    ASSERT_NE(engine, nullptr);
    WriteSet ws = Mixed();
    ws.set_bulk_load(true);
    ASSERT_TRUE(engine->Commit(std::move(ws)).ok());
  }
  auto engine = OpenOrDie(dir.path(), &clock, BulkAlways());
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(*engine->Get(Table::kCards, "c999"), "card999");
  EXPECT_EQ(engine->Stats().last_event_sequence, 300u);
  WriteSet next;
  EventInput e;
  e.type = "card.sent";
  e.entity_type = "card";
  e.entity_id = "c1";
  e.payload = "{}";
  next.AppendEvent(e);
  AuditInput a;
  a.caller = "CN=after";
  a.rpc = "after";
  next.AppendAudit(a);
  auto r = engine->Commit(std::move(next));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->first_event_sequence, 301u);
  EXPECT_EQ(r->first_audit_sequence, 4u);
  auto chain = VerifyAuditChain(*engine);
  ASSERT_TRUE(chain.ok()) << chain.status();
  EXPECT_TRUE(chain->ok) << chain->problem;
}

TEST(BulkLoadTest, AFailedBulkLoadWritesNothingAndLeavesNoFiles) {
  TempDir dir;
  ManualClock clock;
  bool fail = false;
  RocksDbOptions o = BulkAlways();
  o.write_fault_for_testing = [&fail]() {
    return fail ? absl::UnavailableError("injected disk failure")
                : absl::OkStatus();
  };
  auto engine = OpenOrDie(dir.path(), &clock, o);
  ASSERT_NE(engine, nullptr);
  fail = true;
  WriteSet ws = Mixed();
  ws.set_bulk_load(true);
  EXPECT_EQ(engine->Commit(std::move(ws)).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_TRUE(Dump(*engine, Table::kCards).empty());
  EXPECT_EQ(*engine->GetCounter(Table::kCounters, "fresh"), 0);
  EXPECT_TRUE(AllEvents(*engine).empty());
  EXPECT_EQ(engine->Stats().bulk_loads, 0u);
  EXPECT_TRUE(BulkDirIsEmpty(dir.path()));

  fail = false;
  ws = Mixed();
  ws.set_bulk_load(true);
  auto r = engine->Commit(std::move(ws));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->first_event_sequence, 1u);
  EXPECT_EQ(r->first_audit_sequence, 1u);
}

TEST(BulkLoadTest, LeftoverFilesOfAnInterruptedLoadAreRemovedAtOpen) {
  TempDir dir;
  ManualClock clock;
  { ASSERT_NE(OpenOrDie(dir.path(), &clock, BulkAlways()), nullptr); }
  std::filesystem::create_directories(dir.path() + "/bulk");
  { std::ofstream(dir.path() + "/bulk/7-cards.sst") << "half written"; }
  auto engine = OpenOrDie(dir.path(), &clock, BulkAlways());
  ASSERT_NE(engine, nullptr);
  EXPECT_TRUE(BulkDirIsEmpty(dir.path()));
  EXPECT_TRUE(Dump(*engine, Table::kCards).empty());
}

// Keys the sort of a bulk load must order as RocksDB does (bytewise): bytes
// 0x00 and above 0x7f, keys that are prefixes of one another, long shared
// prefixes, and many writes to one key, with the tables interleaved.
// Checked against a model of the writes applied in order, and read back
// with MultiGet (which sorts its keys the same way).
TEST(BulkLoadTest, KeysOfAnyBytesAndLengthSortAsTheStoreDoes) {
  TempDir dir;
  ManualClock clock;
  auto engine = OpenOrDie(dir.path(), &clock, BulkAlways());
  ASSERT_NE(engine, nullptr);
  std::mt19937 rng(20261126);
  const std::string alphabet(
      "\x00\x01\x7f\x80\xff"
      "a",
      6);
  auto random_key = [&]() {
    std::string k;
    switch (rng() % 4) {
      case 0:
        k = std::string("shared\x00\x01prefix\xfe", 15);
        break;
      case 1:
        k = std::string(20, '\x80');
        break;
      default:
        break;
    }
    const size_t len = 1 + rng() % 6;
    for (size_t i = 0; i < len; ++i) k.push_back(alphabet[rng() % 6]);
    return k;
  };
  const Table tables[] = {Table::kPersons, Table::kCards, Table::kIndex};
  std::map<std::pair<Table, std::string>, std::optional<std::string>> model;
  std::map<std::string, int64_t> counters;
  WriteSet ws;
  for (int i = 0; i < 4000; ++i) {
    const Table t = tables[rng() % 3];
    std::string key = random_key();
    if (i % 7 == 0) key = "hot";  // hundreds of writes to one key
    if (rng() % 5 == 0) {
      ws.Delete(t, key);
      model[{t, key}] = std::nullopt;
    } else {
      std::string value = absl::StrCat("v", i);
      ws.Put(t, key, value);
      model[{t, key}] = value;
    }
    if (i % 3 == 0) {
      const std::string ckey = random_key();
      ws.AddCounter(Table::kCounters, ckey, i);
      counters[ckey] += i;
    }
  }
  ws.set_bulk_load(true);
  ASSERT_TRUE(engine->Commit(std::move(ws)).ok());
  EXPECT_EQ(engine->Stats().bulk_loads, 1u);

  for (const Table t : tables) {
    std::map<std::string, std::string> want;
    std::vector<std::string> keys;
    for (const auto& [tk, v] : model) {
      if (tk.first != t) continue;
      keys.push_back(tk.second);
      if (v.has_value()) want.emplace(tk.second, *v);
    }
    EXPECT_EQ(Dump(*engine, t), want) << TableName(t);
    // In reverse order, so that MultiGet has to sort them.
    std::vector<std::string_view> views(keys.rbegin(), keys.rend());
    auto got = engine->MultiGet(t, views);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->size(), views.size());
    for (size_t i = 0; i < views.size(); ++i) {
      EXPECT_EQ((*got)[i], (model[{t, std::string(views[i])}]));
    }
  }
  for (const auto& [key, sum] : counters) {
    EXPECT_EQ(*engine->GetCounter(Table::kCounters, key), sum);
  }
}

// Keys that split one at a time (each a run of 'x' one longer than the
// last, then 'y'): the sort must neither misorder them nor recurse once
// per byte of their length.
TEST(BulkLoadTest, KeysThatSplitOneByteAtATimeSortInOrder) {
  TempDir dir;
  ManualClock clock;
  auto engine = OpenOrDie(dir.path(), &clock, BulkAlways());
  ASSERT_NE(engine, nullptr);
  constexpr int kKeys = 3000;
  std::vector<std::string> keys;
  for (int i = 0; i < kKeys; ++i) keys.push_back(std::string(i, 'x') + "y");
  WriteSet ws;
  for (int i = 0; i < kKeys; i += 2) ws.Put(Table::kIndex, keys[i], "even");
  for (int i = 1; i < kKeys; i += 2) ws.Put(Table::kIndex, keys[i], "odd");
  ws.set_bulk_load(true);
  ASSERT_TRUE(engine->Commit(std::move(ws)).ok());
  std::map<std::string, std::string> stored = Dump(*engine, Table::kIndex);
  ASSERT_EQ(stored.size(), static_cast<size_t>(kKeys));
  for (int i = 0; i < kKeys; ++i) {
    EXPECT_EQ(stored[keys[i]], i % 2 == 0 ? "even" : "odd");
  }
  std::vector<std::string_view> views(keys.begin(), keys.end());
  auto got = engine->MultiGet(Table::kIndex, views);
  ASSERT_TRUE(got.ok()) << got.status();
  for (int i = 0; i < kKeys; ++i) {
    EXPECT_EQ((*got)[i],
              std::optional<std::string>(i % 2 == 0 ? "even" : "odd"));
  }
}

TEST(BulkLoadTest, SmallSetsAndUnmarkedSetsGoThroughTheLog) {
  TempDir dir;
  ManualClock clock;
  RocksDbOptions o;
  o.bulk_load_min_writes = 100000;
  auto engine = OpenOrDie(dir.path(), &clock, o);
  ASSERT_NE(engine, nullptr);
  WriteSet small = Mixed();
  small.set_bulk_load(true);
  ASSERT_TRUE(engine->Commit(std::move(small)).ok());
  ASSERT_TRUE(engine->Commit(Before()).ok());  // not marked
  EXPECT_EQ(engine->Stats().bulk_loads, 0u);
  EXPECT_EQ(*engine->Get(Table::kCards, "c5"), "second");
}

// While imports run, RocksDB merges level-0 files at 16 instead of 4; calls
// nest, and the usual trigger returns with the last End. Loads and reads in
// between behave as always.
// A bulk load's table file whose keys overlap what the table holds is
// ingested into level 0 and gets level 0's format (a whole-file filter and a
// one-level index); one that overlaps nothing keeps the table's format (a
// partitioned filter and two-level index) where it stays, in the last level.
// Both read the same.
TEST(BulkLoadTest, FilesBoundForLevel0GetLevel0sFormat) {
  TempDir dir;
  ManualClock clock;
  {
    auto engine = OpenOrDie(dir.path(), &clock, BulkAlways());
    ASSERT_NE(engine, nullptr);
    WriteSet first;  // an empty table: overlaps nothing
    for (int i = 0; i < 100; i += 2) {
      first.Put(Table::kPersons, absl::StrCat("p", 1000 + i), "even");
    }
    first.set_bulk_load(true);
    ASSERT_TRUE(engine->Commit(std::move(first)).ok());
    WriteSet second;  // between the first file's keys
    for (int i = 1; i < 100; i += 2) {
      second.Put(Table::kPersons, absl::StrCat("p", 1000 + i), "odd");
    }
    second.set_bulk_load(true);
    ASSERT_TRUE(engine->Commit(std::move(second)).ok());
    for (int i = 0; i < 100; ++i) {
      EXPECT_EQ(*engine->Get(Table::kPersons, absl::StrCat("p", 1000 + i)),
                i % 2 == 0 ? "even" : "odd");
    }
  }
  // Of the persons' files, how many have a partitioned (two-level) index
  // and how many a one-level one.
  int partitioned = 0, one_level = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    if (entry.path().extension() != ".sst") continue;
    rocksdb::SstFileReader reader{rocksdb::Options()};
    ASSERT_TRUE(reader.Open(entry.path().string()).ok()) << entry.path();
    std::shared_ptr<const rocksdb::TableProperties> props =
        reader.GetTableProperties();
    if (props->column_family_name != "persons") continue;
    ++(props->index_partitions > 0 ? partitioned : one_level);
    EXPECT_FALSE(props->filter_policy_name.empty());
  }
  EXPECT_EQ(partitioned, 1);
  EXPECT_EQ(one_level, 1);
  // Reopened, both read the same.
  auto engine = OpenOrDie(dir.path(), &clock, BulkAlways());
  ASSERT_NE(engine, nullptr);
  std::vector<std::string> keys;
  for (int i = 0; i < 100; ++i) keys.push_back(absl::StrCat("p", 1000 + i));
  std::vector<std::string_view> views(keys.begin(), keys.end());
  auto got = engine->MultiGet(Table::kPersons, views);
  ASSERT_TRUE(got.ok()) << got.status();
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ((*got)[i], i % 2 == 0 ? "even" : "odd") << keys[i];
  }
  EXPECT_EQ(*engine->Get(Table::kPersons, "p1000x"), std::nullopt);
}

// In the index, whose keys begin with their kind, a bulk load writes a file
// per kind: the kind whose keys only grow (here "cardno") goes to the last
// level for good, and only the kind with keys among the table's (here
// "idcode") lands in level 0, with level 0's format. One file for both
// kinds would overlap the table and be merged whole.
TEST(BulkLoadTest, EachKindOfIndexKeyGetsItsOwnFile) {
  TempDir dir;
  ManualClock clock;
  auto key = [](std::string_view kind, int i) {
    return KeyBuilder().Str(kind).Str(absl::StrFormat("%06d", i)).Build();
  };
  {
    auto engine = OpenOrDie(dir.path(), &clock, BulkAlways());
    ASSERT_NE(engine, nullptr);
    for (int batch = 0; batch < 2; ++batch) {
      WriteSet ws;
      for (int i = 0; i < 50; ++i) {
        ws.Put(Table::kIndex, key("cardno", batch * 50 + i),
               absl::StrCat("card", batch));
        ws.Put(Table::kIndex, key("idcode", 2 * i + batch),
               absl::StrCat("code", batch));
      }
      ws.set_bulk_load(true);
      ASSERT_TRUE(engine->Commit(std::move(ws)).ok());
    }
  }
  // The index's files: the kinds of their keys, and whether each is in
  // level 0's format (a one-level index).
  std::multiset<std::pair<std::string, bool>> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    if (entry.path().extension() != ".sst") continue;
    rocksdb::SstFileReader reader{rocksdb::Options()};
    ASSERT_TRUE(reader.Open(entry.path().string()).ok()) << entry.path();
    if (reader.GetTableProperties()->column_family_name != "index") continue;
    std::set<std::string> kinds;
    std::unique_ptr<rocksdb::Iterator> it(
        reader.NewIterator(rocksdb::ReadOptions()));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      kinds.insert(*KeyReader(it->key().ToStringView()).Str());
    }
    ASSERT_TRUE(it->status().ok()) << it->status().ToString();
    ASSERT_EQ(kinds.size(), 1u) << entry.path();
    files.emplace(*kinds.begin(),
                  reader.GetTableProperties()->index_partitions == 0);
  }
  const std::multiset<std::pair<std::string, bool>> expected = {
      {"cardno", false},
      {"cardno", false},
      {"idcode", false},
      {"idcode", true}};
  EXPECT_EQ(files, expected);
  // Every key reads back from its file.
  auto engine = OpenOrDie(dir.path(), &clock, BulkAlways());
  ASSERT_NE(engine, nullptr);
  std::map<std::string, std::string> want;
  for (int batch = 0; batch < 2; ++batch) {
    for (int i = 0; i < 50; ++i) {
      want[key("cardno", batch * 50 + i)] = absl::StrCat("card", batch);
      want[key("idcode", 2 * i + batch)] = absl::StrCat("code", batch);
    }
  }
  EXPECT_EQ(Dump(*engine, Table::kIndex), want);
  EXPECT_EQ(*engine->Get(Table::kIndex, key("idcode", 7)), "code1");
  EXPECT_EQ(*engine->Get(Table::kIndex, key("cardno", 99)), "card1");
}

TEST(BulkLoadTest, BulkLoadingRaisesTheLevel0TriggerUntilTheLastEnd) {
  TempDir dir;
  ManualClock clock;
  auto engine = OpenOrDie(dir.path(), &clock, BulkAlways());
  ASSERT_NE(engine, nullptr);
  auto property = [&](const std::string& name) {
    return engine->Properties()[name];
  };
  EXPECT_EQ(property("ssc.bulk-loading"), "0");
  EXPECT_EQ(property("ssc.level0-compaction-trigger"), "4");
  ASSERT_TRUE(engine->BeginBulkLoading().ok());
  EXPECT_EQ(property("ssc.bulk-loading"), "1");
  EXPECT_EQ(property("ssc.level0-compaction-trigger"), "16");
  ASSERT_TRUE(engine->BeginBulkLoading().ok());  // a second import
  for (int batch = 0; batch < 6; ++batch) {
    WriteSet ws;
    for (int k = 0; k < 50; ++k) {
      ws.Put(Table::kPersons, absl::StrCat("p", (k * 7 + batch) % 50),
             absl::StrCat(batch));
    }
    ws.set_bulk_load(true);
    ASSERT_TRUE(engine->Commit(std::move(ws)).ok());
  }
  ASSERT_TRUE(engine->EndBulkLoading().ok());
  EXPECT_EQ(property("ssc.bulk-loading"), "1");
  EXPECT_EQ(property("ssc.level0-compaction-trigger"), "16");
  ASSERT_TRUE(engine->EndBulkLoading().ok());
  EXPECT_EQ(property("ssc.bulk-loading"), "0");
  EXPECT_EQ(property("ssc.level0-compaction-trigger"), "4");
  EXPECT_EQ(engine->EndBulkLoading().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(property("ssc.bulk-loading"), "0");
  // The last load's values won, in every file arrangement.
  for (int k = 0; k < 50; ++k) {
    EXPECT_EQ(*engine->Get(Table::kPersons, absl::StrCat("p", k)), "5");
  }
}

}  // namespace
}  // namespace ssc::storage

namespace ssc::storage {
namespace {

TEST(BulkLoadTest, CompactingTheCountersKeepsTheirSums) {
  TempDir dir;
  ManualClock clock;
  auto engine = OpenOrDie(dir.path(), &clock, BulkAlways());
  ASSERT_NE(engine, nullptr);
  for (int batch = 0; batch < 6; ++batch) {
    WriteSet ws;
    for (int k = 0; k < 40; ++k) {
      ws.AddCounter(Table::kCounters, absl::StrCat("k", k), batch + k);
    }
    ws.set_bulk_load(true);
    ASSERT_TRUE(engine->Commit(std::move(ws)).ok());
  }
  ASSERT_TRUE(engine->CompactTable(Table::kCounters).ok());
  for (int k = 0; k < 40; ++k) {
    // sum over batches 0..5 of (batch + k)
    EXPECT_EQ(*engine->GetCounter(Table::kCounters, absl::StrCat("k", k)),
              15 + 6 * k);
  }
  WriteSet more;
  more.AddCounter(Table::kCounters, "k0", -15);
  ASSERT_TRUE(engine->Commit(std::move(more)).ok());
  EXPECT_EQ(*engine->GetCounter(Table::kCounters, "k0"), 0);
  EXPECT_EQ(engine->CompactTable(static_cast<Table>(kTableCount)).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ssc::storage
