// Runs of events (WriteSet::BeginEventRun): a run is stored as one record
// and one index entry per entity it names, and must read back exactly as
// the same events stored one by one, through the log and as a bulk load.

#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "storage/engine.h"
#include "storage/key_codec.h"
#include "storage/rocksdb_engine.h"
#include "tests/storage/test_util.h"

namespace ssc::storage {
namespace {

using testing_util::OpenOrDie;
using testing_util::TempDir;

using Entity = std::pair<std::string, std::string>;

std::vector<Entity> Entities() {
  std::vector<Entity> out;
  for (int i = 0; i < 4; ++i) out.emplace_back("person", absl::StrCat("p", i));
  for (int i = 0; i < 6; ++i) out.emplace_back("card", absl::StrCat("c", i));
  // An id that is a prefix of another, and one with bytes a key escapes.
  out.emplace_back("card", "c");
  out.emplace_back("card", std::string("c\0\xff", 3));
  return out;
}

// A random event: one of the entities, indexed under 0-3 others (at
// times its own entity again, or one entity twice).
EventInput RandomEvent(std::mt19937& rng, int n) {
  const std::vector<Entity> entities = Entities();
  auto pick = [&] { return entities[rng() % entities.size()]; };
  EventInput e;
  e.type = absl::StrCat("test.event", n % 5);
  const Entity own = pick();
  e.entity_type = own.first;
  e.entity_id = own.second;
  e.payload = std::string(rng() % 300, static_cast<char>('a' + n % 26));
  for (int k = static_cast<int>(rng() % 4); k > 0; --k) {
    e.also_index.push_back(rng() % 5 == 0 ? own : pick());
  }
  if (rng() % 3 == 0) e.time = absl::FromUnixSeconds(1500000000 + n);
  return e;
}

// The same write sets, with runs or without: some events alone, runs of
// 1 to 150 events between them (longer than a stored run: split), sets
// with several runs, and runs with an event time set on the set.
std::vector<WriteSet> Sets(bool runs) {
  std::mt19937 rng(7);
  std::vector<WriteSet> out;
  int n = 0;
  for (int s = 0; s < 40; ++s) {
    WriteSet ws;
    for (int part = static_cast<int>(rng() % 4); part >= 0; --part) {
      const bool run = rng() % 2 == 0;
      const int length = run ? 1 + static_cast<int>(rng() % (s == 7 ? 150 : 20))
                             : static_cast<int>(rng() % 3);
      if (run && runs) ws.BeginEventRun();
      if (run && rng() % 2 == 0) {
        ws.SetEventTime(absl::FromUnixSeconds(1400000000 + s));
      }
      for (int i = 0; i < length; ++i) ws.AppendEvent(RandomEvent(rng, n++));
      ws.SetEventTime(std::nullopt);
      // Some runs stay open: the events after them join them.
      const bool end = rng() % 2 == 0;
      if (run && runs && end) ws.EndEventRun();
    }
    ws.Put(Table::kCards, absl::StrCat("c", s), "x");
    out.push_back(std::move(ws));
  }
  return out;
}

std::string Show(const StoredEvent& e) {
  return absl::StrCat(e.sequence, " ", absl::ToUnixNanos(e.time), " ", e.type,
                      " ", e.entity_type, "/", e.entity_id, " ", e.payload);
}

std::vector<std::string> Show(
    const absl::StatusOr<std::vector<StoredEvent>>& r) {
  EXPECT_TRUE(r.ok()) << r.status();
  std::vector<std::string> out;
  if (r.ok()) {
    for (const StoredEvent& e : *r) out.push_back(Show(e));
  }
  return out;
}

size_t KeyCount(Engine& e, Table t) {
  size_t n = 0;
  EXPECT_TRUE(e.Scan(t, "", "", [&n](std::string_view, std::string_view) {
                 ++n;
                 return true;
               }).ok());
  return n;
}

// Every read of `runs` equals the same read of `alone`.
void ExpectSameReads(Engine& runs, Engine& alone, uint64_t last) {
  const std::vector<size_t> limits = {1, 2, 3, 5, 64, 100000};
  for (uint64_t from = 0; from <= last + 2; ++from) {
    for (size_t limit : limits) {
      ASSERT_EQ(Show(runs.ReadEvents(from, limit)),
                Show(alone.ReadEvents(from, limit)))
          << "from " << from << " limit " << limit;
    }
  }
  for (const auto& [type, id] : Entities()) {
    const auto all = Show(alone.ReadEntityEvents(type, id, 0, 100000));
    EXPECT_FALSE(all.empty()) << type << "/" << id;
    for (uint64_t from = 0; from <= last + 2; from += 3) {
      for (size_t limit : limits) {
        ASSERT_EQ(Show(runs.ReadEntityEvents(type, id, from, limit)),
                  Show(alone.ReadEntityEvents(type, id, from, limit)))
            << type << "/" << id << " from " << from << " limit " << limit;
      }
    }
  }
}

class EventRunTest : public ::testing::TestWithParam<bool> {
 protected:
  // Bulk loads (table files) or writes through the log.
  bool bulk() const { return GetParam(); }
  RocksDbOptions Options() const {
    RocksDbOptions o;
    o.bulk_load_min_writes = 1;
    return o;
  }
  uint64_t CommitAll(Engine& e, bool runs) {
    uint64_t last = 0;
    for (WriteSet& ws : Sets(runs)) {
      const size_t n = ws.events().size();
      ws.set_bulk_load(bulk());
      auto r = e.Commit(std::move(ws));
      EXPECT_TRUE(r.ok()) << r.status();
      if (n > 0 && r.ok()) {
        EXPECT_EQ(r->first_event_sequence, last + 1);
        last += n;
      }
    }
    return last;
  }
  ManualClock clock_;
};

TEST_P(EventRunTest, ReadsEqualTheSameEventsStoredOneByOne) {
  TempDir a, b;
  auto runs = OpenOrDie(a.path(), &clock_, Options());
  auto alone = OpenOrDie(b.path(), &clock_, Options());
  ASSERT_NE(runs, nullptr);
  ASSERT_NE(alone, nullptr);
  const uint64_t last = CommitAll(*runs, true);
  ASSERT_EQ(CommitAll(*alone, false), last);
  ASSERT_GT(last, 300u);
  EXPECT_EQ(runs->Stats().last_event_sequence, last);
  // Stored as runs indeed: fewer records and index entries.
  EXPECT_EQ(KeyCount(*alone, Table::kEvents), last);
  EXPECT_LT(KeyCount(*runs, Table::kEvents), last / 2);
  EXPECT_LT(KeyCount(*runs, Table::kEntityEvents),
            KeyCount(*alone, Table::kEntityEvents) / 2);
  ExpectSameReads(*runs, *alone, last);
}

TEST_P(EventRunTest, ReopenedStoreReadsTheRunsAndContinuesTheSequence) {
  TempDir a, b;
  uint64_t last = 0;
  {
    auto runs = OpenOrDie(a.path(), &clock_, Options());
    ASSERT_NE(runs, nullptr);
    last = CommitAll(*runs, true);
  }
  auto runs = OpenOrDie(a.path(), &clock_, Options());
  auto alone = OpenOrDie(b.path(), &clock_, Options());
  ASSERT_NE(runs, nullptr);
  ASSERT_NE(alone, nullptr);
  ASSERT_EQ(CommitAll(*alone, false), last);
  // The last key of the log is a run's last sequence: the store goes on
  // after it.
  EXPECT_EQ(runs->Stats().last_event_sequence, last);
  for (Engine* e : {runs.get(), alone.get()}) {
    WriteSet next;
    next.BeginEventRun();
    EventInput x;
    x.type = "test.after";
    x.entity_type = "card";
    x.entity_id = "c1";
    next.AppendEvent(x);
    next.AppendEvent(x);
    auto r = e->Commit(std::move(next));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->first_event_sequence, last + 1);
  }
  ExpectSameReads(*runs, *alone, last + 2);
}

INSTANTIATE_TEST_SUITE_P(LogAndBulk, EventRunTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "Bulk" : "Log";
                         });

// How many records a set's events are stored in.
size_t StoredRecords(WriteSet ws) {
  TempDir dir;
  ManualClock clock;
  auto e = OpenOrDie(dir.path(), &clock);
  EXPECT_NE(e, nullptr);
  if (e == nullptr) return 0;
  EXPECT_TRUE(e->Commit(std::move(ws)).ok());
  return KeyCount(*e, Table::kEvents);
}

EventInput Simple(int i) {
  EventInput e;
  e.type = "test.simple";
  e.entity_type = "card";
  e.entity_id = absl::StrCat("c", i % 3);
  return e;
}

TEST(EventRunWriteSetTest, RunsEndWithTheirSetAndSurviveCopies) {
  // Begin .. End: one record; events after End stand alone.
  WriteSet ws;
  ws.AppendEvent(Simple(0));
  ws.BeginEventRun();
  for (int i = 0; i < 5; ++i) ws.AppendEvent(Simple(i));
  ws.EndEventRun();
  ws.AppendEvent(Simple(9));
  EXPECT_EQ(StoredRecords(ws), 3u);  // a copy keeps the run
  WriteSet moved = std::move(ws);
  EXPECT_EQ(StoredRecords(std::move(moved)), 3u);

  // A run of one event, and a run left open, end with the set.
  WriteSet one;
  one.BeginEventRun();
  one.AppendEvent(Simple(1));
  EXPECT_EQ(StoredRecords(one), 1u);

  // Appending sets keeps each set's run, joins none across sets, and ends
  // the open run of the set appended to.
  WriteSet x, y;
  x.BeginEventRun();
  x.AppendEvent(Simple(1));
  x.AppendEvent(Simple(2));
  y.BeginEventRun();
  y.AppendEvent(Simple(3));
  y.AppendEvent(Simple(4));
  x.Append(std::move(y));
  x.AppendEvent(Simple(5));
  EXPECT_EQ(StoredRecords(x), 3u);

  // 150 events in one run: records of at most 64 events.
  WriteSet longer;
  longer.BeginEventRun();
  for (int i = 0; i < 150; ++i) longer.AppendEvent(Simple(i));
  EXPECT_EQ(StoredRecords(std::move(longer)), 3u);
}

TEST(EventRunWriteSetTest, DamagedIndexEntriesOfARunAreReportedAsDataLoss) {
  TempDir dir;
  ManualClock clock;
  auto e = OpenOrDie(dir.path(), &clock);
  ASSERT_NE(e, nullptr);
  WriteSet ws;
  ws.BeginEventRun();
  for (int i = 0; i < 4; ++i) ws.AppendEvent(Simple(i));
  ASSERT_TRUE(e->Commit(std::move(ws)).ok());
  ASSERT_EQ(e->ReadEntityEvents("card", "c0", 0, 10)->size(), 2u);
  auto put_index = [&](const std::string& id, std::string value) {
    WriteSet w;
    w.Put(Table::kEntityEvents, KeyBuilder().Str("card").Str(id).U64(4).Build(),
          value);
    ASSERT_TRUE(e->Commit(std::move(w)).ok());
  };
  // A varint cut short, and a distance back past sequence 0.
  put_index("bad1", "\x80");
  put_index("bad2", std::string(1, '\x09'));
  // An event the run does not hold (distance 1: sequence 3 is c2's).
  put_index("bad3", std::string(1, '\x01'));
  for (const char* id : {"bad1", "bad2"}) {
    auto r = e->ReadEntityEvents("card", id, 0, 10);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << id;
  }
  // Sequence 3 is in the run, but listed for an entity it does not name:
  // the run still holds it, so the read returns it (the index is trusted,
  // as for events stored alone).
  auto r = e->ReadEntityEvents("card", "bad3", 0, 10);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].sequence, 3u);
  // A run's index entry pointing at a record that is gone.
  WriteSet w;
  w.Put(Table::kEntityEvents,
        KeyBuilder().Str("card").Str("gone").U64(99).Build(),
        std::string(1, '\x00'));
  ASSERT_TRUE(e->Commit(std::move(w)).ok());
  EXPECT_EQ(e->ReadEntityEvents("card", "gone", 0, 10).status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace ssc::storage
