#include "storage/engine.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "storage/audit.h"
#include "storage/key_codec.h"
#include "storage/rocksdb_engine.h"
#include "storage/storage.pb.h"
#include "tests/storage/test_util.h"

namespace ssc::storage {
namespace {

using testing_util::OpenOrDie;
using testing_util::StorePair;
using testing_util::TempDir;

EventInput Event(std::string type, std::string entity_type,
                 std::string entity_id, std::string payload = "{}") {
  EventInput e;
  e.type = std::move(type);
  e.entity_type = std::move(entity_type);
  e.entity_id = std::move(entity_id);
  e.payload = std::move(payload);
  return e;
}

AuditInput Audit(std::string rpc, std::string request_id) {
  AuditInput a;
  a.caller = "CN=counter-01";
  a.role = "clerk";
  a.operator_id = "op7";
  a.rpc = std::move(rpc);
  a.target = "card A5****01";
  a.request_id = std::move(request_id);
  return a;
}

TEST(EngineTest, TableNamesAreDistinct) {
  std::set<std::string> names;
  for (int i = 0; i < kTableCount; ++i) {
    names.insert(TableName(static_cast<Table>(i)));
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(kTableCount));
  EXPECT_STREQ(TableName(Table::kMeta), "default");
}

TEST(EngineTest, WriteSetPendingSeesOwnWrites) {
  WriteSet ws;
  EXPECT_EQ(ws.Pending(Table::kCards, "a"), std::nullopt);
  ws.Put(Table::kCards, "a", "1");
  ws.Put(Table::kCards, "a", "2");
  ws.Put(Table::kPersons, "b", "x");
  ws.Delete(Table::kPersons, "b");
  EXPECT_EQ(ws.Pending(Table::kCards, "a"), std::optional<std::string>("2"));
  auto deleted = ws.Pending(Table::kPersons, "b");
  ASSERT_TRUE(deleted.has_value());
  EXPECT_EQ(*deleted, std::nullopt);
  EXPECT_EQ(ws.Pending(Table::kPersons, "a"), std::nullopt);
  EXPECT_GT(ws.ApproximateBytes(), 0u);
}

// The ops view bytes the set keeps in blocks: the views must stay valid
// while the set grows over many blocks (and a value larger than a block),
// when the set is moved, appended to another set or copied, and a
// moved-from set must be usable again.
TEST(EngineTest, WriteSetViewsStayValidAcrossBlocksMovesAndAppend) {
  auto key = [](int i) { return absl::StrCat("key/", i); };
  auto value = [](int i) {
    // Sizes from 0 to 1 MiB + a bit: past the largest block.
    const size_t n = i == 7 ? (1 << 20) + 3 : static_cast<size_t>(i % 97);
    return std::string(n, static_cast<char>('a' + i % 26));
  };
  constexpr int kOps = 20000;
  WriteSet ws;
  std::vector<WriteSet::Op> first_views;
  for (int i = 0; i < kOps; ++i) {
    std::string k = key(i);
    ws.Put(Table::kCards, k, value(i));  // the caller's strings die here
    if (i == 0) first_views.push_back(ws.ops()[0]);
  }
  ws.AddCounter(Table::kCounters, "c", 5);
  ws.Delete(Table::kCards, "gone");
  ws.AppendEvent(Event("card.applied", "card", "a"));
  auto check = [&](const WriteSet& s, size_t offset, char delta = 5) {
    ASSERT_GE(s.ops().size(), offset + kOps + 2);
    for (int i = 0; i < kOps; ++i) {
      const WriteSet::Op& op = s.ops()[offset + i];
      ASSERT_EQ(op.type, WriteSet::OpType::kPut);
      ASSERT_EQ(op.key, key(i)) << i;
      ASSERT_EQ(op.value, value(i)) << i;
    }
    EXPECT_EQ(s.ops()[offset + kOps].value,
              std::string(1, delta) + std::string(7, '\0'));
    EXPECT_EQ(s.ops()[offset + kOps + 1].key, "gone");
    EXPECT_TRUE(s.ops()[offset + kOps + 1].value.empty());
  };
  check(ws, 0);
  // A view taken before the set grew still reads the same bytes.
  EXPECT_EQ(first_views[0].key, key(0));
  EXPECT_EQ(first_views[0].key.data(), ws.ops()[0].key.data());

  WriteSet moved(std::move(ws));
  check(moved, 0);
  EXPECT_EQ(first_views[0].key.data(), moved.ops()[0].key.data());
  EXPECT_TRUE(ws.empty());  // NOLINT(bugprone-use-after-move): reusable
  ws.Put(Table::kPersons, "p", "again");
  EXPECT_EQ(ws.Pending(Table::kPersons, "p"),
            std::optional<std::string>("again"));

  WriteSet assigned;
  assigned.Put(Table::kMeta, "dropped", "x");
  assigned = std::move(moved);
  check(assigned, 0);

  // Appended behind a set that has its own ops and room left in its block:
  // both sets' views stay valid, and new ops after it are kept too.
  WriteSet batch;
  batch.Put(Table::kMeta, "head", "h");
  batch.Append(std::move(assigned));
  EXPECT_TRUE(assigned.empty());  // NOLINT(bugprone-use-after-move)
  batch.Put(Table::kMeta, "tail", "t");
  EXPECT_EQ(batch.ops()[0].key, "head");
  check(batch, 1);
  EXPECT_EQ(first_views[0].key.data(), batch.ops()[1].key.data());
  EXPECT_EQ(batch.ops().back().key, "tail");
  EXPECT_EQ(batch.ops().back().value, "t");
  EXPECT_EQ(batch.events().size(), 1u);

  // Appended into an empty set, then folded: the delta is rewritten in the
  // set's own bytes.
  WriteSet empty;
  empty.Append(std::move(batch));
  empty.AddCounter(Table::kCounters, "c", 2);
  empty.CoalesceCounters();
  check(empty, 1, 7);
  EXPECT_EQ(empty.ops()[1 + kOps].value, std::string("\x07\0\0\0\0\0\0\0", 8));

  // A copy owns its bytes: it outlives the original.
  std::optional<WriteSet> original(std::move(empty));
  WriteSet copy(*original);
  EXPECT_NE(copy.ops()[1].key.data(), original->ops()[1].key.data());
  original.reset();
  check(copy, 1, 7);
  EXPECT_EQ(copy.events().size(), 1u);
  WriteSet copy_assigned;
  copy_assigned = copy;
  check(copy_assigned, 1, 7);
}

// Events view bytes in the set's blocks too (their also_index list is an
// array of views there): the views must stay valid as the set grows, is
// moved, appended or copied, and copies must own their bytes.
TEST(EngineTest, WriteSetEventViewsStayValidAcrossBlocksMovesAndAppend) {
  constexpr int kEvents = 5000;
  const absl::Time history = absl::FromUnixSeconds(1000000000);
  const absl::Time given = absl::FromUnixSeconds(1500000000);
  auto payload = [](int i) {
    // Sizes from 0 to 1 MiB + a bit: past the largest block.
    const size_t n = i == 7 ? (1 << 20) + 3 : static_cast<size_t>(i % 97);
    return std::string(n, static_cast<char>('a' + i % 26));
  };
  auto input = [&](int i) {
    EventInput e =
        Event(absl::StrCat("type.", i), "card", absl::StrCat(i), payload(i));
    for (int j = 0; j < i % 4; ++j) {
      e.also_index.emplace_back(absl::StrCat("person", j),
                                absl::StrCat("id/", i, "/", j));
    }
    if (i % 3 == 2) e.time = given;
    return e;
  };
  WriteSet ws;
  std::vector<WriteSet::Event> first_views;
  for (int i = 0; i < kEvents; ++i) {
    // Half of the events before SetEventTime: they keep commit time.
    if (i == kEvents / 2) ws.SetEventTime(history);
    ws.AppendEvent(input(i));  // the input's strings die here
    if (i == 1 || i == 3) first_views.push_back(ws.events().back());
  }
  auto check = [&](const WriteSet& s, size_t offset) {
    ASSERT_GE(s.events().size(), offset + kEvents);
    for (int i = 0; i < kEvents; ++i) {
      const WriteSet::Event& e = s.events()[offset + i];
      const EventInput want = input(i);
      ASSERT_EQ(e.type, want.type) << i;
      ASSERT_EQ(e.entity_type, "card") << i;
      ASSERT_EQ(e.entity_id, want.entity_id) << i;
      ASSERT_EQ(e.payload, want.payload) << i;
      ASSERT_EQ(e.also_index.size(), want.also_index.size()) << i;
      for (size_t j = 0; j < want.also_index.size(); ++j) {
        ASSERT_EQ(e.also_index[j].first, want.also_index[j].first) << i;
        ASSERT_EQ(e.also_index[j].second, want.also_index[j].second) << i;
      }
      const std::optional<absl::Time> time =
          want.time.has_value() ? want.time
          : i >= kEvents / 2    ? std::optional<absl::Time>(history)
                                : std::nullopt;
      ASSERT_EQ(e.time, time) << i;
    }
  };
  check(ws, 0);
  // Views taken before the set grew still read the same bytes.
  EXPECT_EQ(first_views[0].entity_id, "1");
  EXPECT_EQ(first_views[1].also_index[2].second, "id/3/2");
  EXPECT_EQ(first_views[1].also_index.data(), ws.events()[3].also_index.data());

  WriteSet moved(std::move(ws));
  check(moved, 0);
  EXPECT_EQ(first_views[1].also_index.data(),
            moved.events()[3].also_index.data());
  EXPECT_TRUE(ws.empty());  // NOLINT(bugprone-use-after-move): reusable
  ws.AppendEvent(Event("again", "card", "x"));
  EXPECT_EQ(ws.events().size(), 1u);

  // Appended into an empty set, then behind a set with its own event and
  // room left in its block; events appended after it are kept too.
  WriteSet empty;
  empty.Append(std::move(moved));
  check(empty, 0);
  WriteSet batch;
  batch.AppendEvent(Event("head", "card", "h"));
  batch.Append(std::move(empty));
  EXPECT_TRUE(empty.empty());  // NOLINT(bugprone-use-after-move)
  EventInput tail = Event("tail", "card", "t", "{}");
  tail.also_index.emplace_back("person", "p");
  batch.AppendEvent(std::move(tail));
  EXPECT_EQ(batch.events()[0].type, "head");
  check(batch, 1);
  EXPECT_EQ(first_views[1].also_index.data(),
            batch.events()[4].also_index.data());
  // The set's event time came with the moved set's events only.
  EXPECT_EQ(batch.events().back().time, std::nullopt);
  EXPECT_EQ(batch.events().back().also_index[0].second, "p");

  // A copy owns its bytes: it outlives the original.
  std::optional<WriteSet> original(std::move(batch));
  WriteSet copy(*original);
  EXPECT_NE(copy.events()[4].also_index.data(),
            original->events()[4].also_index.data());
  EXPECT_NE(copy.events()[8].payload.data(),
            original->events()[8].payload.data());
  EXPECT_EQ(copy.ApproximateBytes(), original->ApproximateBytes());
  original.reset();
  check(copy, 1);
  WriteSet copy_assigned;
  copy_assigned.AppendEvent(Event("dropped", "card", "d"));
  copy_assigned = copy;
  check(copy_assigned, 1);
  EXPECT_EQ(copy_assigned.events().back().type, "tail");
}

// AppendEvent(EventView) copies what the views show: the caller reuses
// its buffers right away, and the set commits the same events as from
// EventInputs.
TEST(EngineTest, EventViewsAreCopiedAndCommitAsEventInputs) {
  WriteSet by_view, by_input;
  std::string type, id, payload, person;
  const absl::Time t = absl::FromUnixSeconds(1600000000);
  for (int i = 0; i < 200; ++i) {
    type = absl::StrCat("card.step", i % 7);
    id = absl::StrCat("A", 1000000000000000 + i);
    payload = std::string(i * 5, static_cast<char>('a' + i % 26));
    person = std::string(64, static_cast<char>('0' + i % 10));
    const std::pair<std::string_view, std::string_view> also[] = {
        {"person", person}, {"region", "510524"}};
    std::optional<absl::Time> when;
    if (i % 3 == 0) when = t + absl::Seconds(i);
    by_view.AppendEvent(
        EventView{type, "card", id, payload, std::span(also, i % 3), when});
    EventInput e = Event(type, "card", id, payload);
    for (int k = 0; k < i % 3; ++k) {
      e.also_index.emplace_back(std::string(also[k].first),
                                std::string(also[k].second));
    }
    e.time = when;
    by_input.AppendEvent(std::move(e));
    // The buffers are overwritten before the next event.
    type.assign(40, 'x');
    id.assign(40, 'y');
    payload.assign(300, 'z');
    person.assign(64, 'w');
  }
  ASSERT_EQ(by_view.events().size(), by_input.events().size());
  for (size_t i = 0; i < by_view.events().size(); ++i) {
    const WriteSet::Event& a = by_view.events()[i];
    const WriteSet::Event& b = by_input.events()[i];
    EXPECT_EQ(a.type, b.type);
    EXPECT_EQ(a.entity_id, b.entity_id);
    EXPECT_EQ(a.payload, b.payload);
    EXPECT_EQ(a.time, b.time);
    ASSERT_EQ(a.also_index.size(), b.also_index.size());
    for (size_t k = 0; k < a.also_index.size(); ++k) {
      EXPECT_EQ(a.also_index[k], b.also_index[k]);
    }
  }
  StorePair stores;
  ASSERT_TRUE(stores.ok());
  Engine* e1 = stores.a.get();
  Engine* e2 = stores.b.get();
  ASSERT_TRUE(e1->Commit(std::move(by_view)).ok());
  ASSERT_TRUE(e2->Commit(std::move(by_input)).ok());
  auto x = e1->ReadEntityEvents("person", std::string(64, '3'), 0, 1000);
  auto y = e2->ReadEntityEvents("person", std::string(64, '3'), 0, 1000);
  ASSERT_TRUE(x.ok() && y.ok());
  ASSERT_EQ(x->size(), y->size());
  EXPECT_FALSE(x->empty());
  auto all1 = e1->ReadEvents(0, 1000);
  auto all2 = e2->ReadEvents(0, 1000);
  ASSERT_TRUE(all1.ok() && all2.ok());
  ASSERT_EQ(all1->size(), 200u);
  ASSERT_EQ(all2->size(), 200u);
  for (size_t i = 0; i < all1->size(); ++i) {
    EXPECT_EQ((*all1)[i].payload, (*all2)[i].payload);
    EXPECT_EQ((*all1)[i].time, (*all2)[i].time);
    EXPECT_EQ((*all1)[i].entity_id, (*all2)[i].entity_id);
  }
}

TEST(EngineTest, CoalesceCountersFoldsDeltasIntoTheirFirstOccurrence) {
  auto delta = [](const WriteSet::Op& op) {
    uint64_t u = 0;
    for (int i = 7; i >= 0; --i)
      u = (u << 8) | static_cast<unsigned char>(op.value[i]);
    return static_cast<int64_t>(u);
  };
  WriteSet ws;
  ws.Put(Table::kPersons, "p1", "a");
  ws.AddCounter(Table::kCounters, "holders", 5);
  ws.AddCounter(Table::kReport, "holders", 1);  // same key, other table
  ws.Put(Table::kCounters, "reset", std::string(8, '\0'));
  ws.AddCounter(Table::kCounters, std::string("h\0\xff", 3), -4);
  ws.AddCounter(Table::kCounters, "holders", -7);
  ws.Delete(Table::kPersons, "p2");
  ws.AddCounter(Table::kCounters, std::string("h\0\xff", 3), 1);
  ws.AddCounter(Table::kCounters, "max", INT64_MAX);
  ws.AddCounter(Table::kCounters, "max", 2);  // wraps, as the merge does
  ws.CoalesceCounters();
  const std::vector<WriteSet::Op>& ops = ws.ops();
  ASSERT_EQ(ops.size(), 7u);
  EXPECT_EQ(ops[0].key, "p1");
  EXPECT_EQ(ops[0].value, "a");
  EXPECT_EQ(ops[1].key, "holders");
  EXPECT_EQ(ops[1].table, Table::kCounters);
  EXPECT_EQ(delta(ops[1]), -2);
  EXPECT_EQ(ops[2].table, Table::kReport);
  EXPECT_EQ(delta(ops[2]), 1);
  EXPECT_EQ(ops[3].type, WriteSet::OpType::kPut);
  EXPECT_EQ(ops[4].key, std::string("h\0\xff", 3));
  EXPECT_EQ(delta(ops[4]), -3);
  EXPECT_EQ(ops[5].type, WriteSet::OpType::kDelete);
  EXPECT_EQ(ops[5].key, "p2");
  EXPECT_EQ(ops[6].key, "max");
  EXPECT_EQ(delta(ops[6]), INT64_MIN + 1);
}

// A put or delete of a counter between its deltas ends the fold: the
// deltas after it count from what it wrote (add 5, put 0, add -7 is -7).
TEST(EngineTest, CoalesceCountersDoesNotFoldAcrossAPutOrDelete) {
  auto fill = [](WriteSet& ws) {
    ws.AddCounter(Table::kCounters, "c", 5);
    ws.Put(Table::kCounters, "c", std::string(8, '\0'));
    ws.AddCounter(Table::kCounters, "c", -7);
    ws.AddCounter(Table::kCounters, "c", 2);
    ws.AddCounter(Table::kCounters, "d", 3);
    ws.Delete(Table::kCounters, "d");
    ws.AddCounter(Table::kCounters, "d", 4);
    ws.Put(Table::kPersons, "c", "not a counter");  // other table: no effect
    ws.AddCounter(Table::kCounters, "c", 1);
  };
  auto le64 = [](int64_t v) {
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i)
      out[i] = static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xFF);
    return out;
  };
  WriteSet folded;
  fill(folded);
  folded.CoalesceCounters();
  ASSERT_EQ(folded.ops().size(), 7u);
  EXPECT_EQ(folded.ops()[2].value, le64(-4));  // -7 + 2 + 1
  EXPECT_EQ(folded.ops()[5].value, le64(4));

  // Through a bulk load (which folds) and a normal commit: the same sums.
  for (const bool bulk : {true, false}) {
    SCOPED_TRACE(bulk ? "bulk load" : "normal commit");
    TempDir dir;
    ManualClock clock;
    auto engine = OpenOrDie(dir.path(), &clock);
    ASSERT_NE(engine, nullptr);
    WriteSet ws;
    fill(ws);
    if (bulk) ws.CoalesceCounters();
    ws.set_bulk_load(bulk);
    ASSERT_TRUE(engine->Commit(std::move(ws)).ok());
    EXPECT_EQ(*engine->GetCounter(Table::kCounters, "c"), -4);
    EXPECT_EQ(*engine->GetCounter(Table::kCounters, "d"), 4);
  }
}

TEST(EngineTest, CommitMakesEveryOpEventAndAuditVisible) {
  TempDir dir;
  ManualClock clock;
  auto engine = OpenOrDie(dir.path(), &clock);
  ASSERT_NE(engine, nullptr);

  WriteSet seed;
  seed.Put(Table::kCards, "gone", "x");
  ASSERT_TRUE(engine->Commit(std::move(seed)).ok());

  WriteSet ws;
  ws.Put(Table::kCards, "app1", "card-record");
  ws.Put(Table::kIndex, "cardno:X00000019", "app1");
  ws.Delete(Table::kCards, "gone");
  ws.AddCounter(Table::kCounters, "holders", 1);
  EventInput e = Event("card.applied", "card", "app1");
  e.also_index.push_back({"person", "p1"});
  ws.AppendEvent(e);
  ws.AppendEvent(Event("card.produced", "card", "app1"));
  ws.AppendAudit(Audit("ssc.v1.CardService/ApplyCard", "r1"));
  auto r = engine->Commit(std::move(ws));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->first_event_sequence, 1u);
  EXPECT_EQ(r->first_audit_sequence, 1u);
  EXPECT_EQ(r->commit_time, clock.Now());

  EXPECT_EQ(*engine->Get(Table::kCards, "app1"),
            std::optional<std::string>("card-record"));
  EXPECT_EQ(*engine->Get(Table::kIndex, "cardno:X00000019"),
            std::optional<std::string>("app1"));
  EXPECT_EQ(*engine->Get(Table::kCards, "gone"), std::nullopt);
  EXPECT_EQ(*engine->GetCounter(Table::kCounters, "holders"), 1);
  auto events = engine->ReadEvents(1, 10);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].sequence, 1u);
  EXPECT_EQ((*events)[0].type, "card.applied");
  EXPECT_EQ((*events)[0].time, clock.Now());
  EXPECT_EQ((*events)[1].sequence, 2u);
  auto by_person = engine->ReadEntityEvents("person", "p1", 0, 10);
  ASSERT_TRUE(by_person.ok());
  ASSERT_EQ(by_person->size(), 1u);
  EXPECT_EQ((*by_person)[0].entity_id, "app1");
  auto audit = ReadAudit(*engine, 1, 10);
  ASSERT_TRUE(audit.ok());
  ASSERT_EQ(audit->size(), 1u);
  EXPECT_EQ((*audit)[0].input.request_id, "r1");
  EXPECT_EQ((*audit)[0].hash_hex.size(), 64u);
}

TEST(EngineTest, UnsyncedWriteSetsJoinTheChainWithoutAnFsync) {
  TempDir dir;
  ManualClock clock;
  {
    auto engine = OpenOrDie(dir.path(), &clock);
    ASSERT_NE(engine, nullptr);
    WriteSet read_audit;
    read_audit.set_sync(false);
    read_audit.AppendAudit(Audit("ssc.v1.ReportService/GetIndicators", ""));
    const EngineStats before = engine->Stats();
    ASSERT_TRUE(engine->Commit(std::move(read_audit)).ok());
    EngineStats after = engine->Stats();
    EXPECT_EQ(after.group_writes, before.group_writes + 1);
    EXPECT_EQ(after.synced_writes, before.synced_writes);

    WriteSet mutation;
    mutation.Put(Table::kCards, "app1", "card-record");
    mutation.AppendAudit(Audit("ssc.v1.CardService/ApplyCard", "r1"));
    ASSERT_TRUE(engine->Commit(std::move(mutation)).ok());
    EXPECT_EQ(engine->Stats().synced_writes, after.synced_writes + 1);
  }
  auto engine = OpenOrDie(dir.path(), &clock);
  ASSERT_NE(engine, nullptr);
  auto verified = VerifyAuditChain(*engine);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_TRUE(verified->ok) << verified->problem;
  EXPECT_EQ(verified->records, 2u);
}

TEST(EngineTest, FailedWriteWritesNothingAndLeavesNoSequenceGap) {
  TempDir dir;
  ManualClock clock;
  bool fail = false;
  RocksDbOptions opts;
  opts.write_fault_for_testing = [&fail]() {
    return fail ? absl::UnavailableError("injected disk failure")
                : absl::OkStatus();
  };
  auto engine = OpenOrDie(dir.path(), &clock, opts);
  ASSERT_NE(engine, nullptr);

  fail = true;
  WriteSet bad;
  bad.Put(Table::kCards, "c1", "v");
  bad.AddCounter(Table::kCounters, "n", 5);
  bad.AppendEvent(Event("card.applied", "card", "c1"));
  bad.AppendAudit(Audit("rpc", "r1"));
  auto r = engine->Commit(std::move(bad));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(*engine->Get(Table::kCards, "c1"), std::nullopt);
  EXPECT_EQ(*engine->GetCounter(Table::kCounters, "n"), 0);
  EXPECT_TRUE(engine->ReadEvents(0, 10)->empty());
  EXPECT_TRUE(ReadAudit(*engine, 0, 10)->empty());
  EXPECT_TRUE(engine->ReadEntityEvents("card", "c1", 0, 10)->empty());
  EXPECT_EQ(engine->Stats().last_event_sequence, 0u);

  fail = false;
  WriteSet good;
  good.AppendEvent(Event("card.applied", "card", "c2"));
  good.AppendAudit(Audit("rpc", "r2"));
  r = engine->Commit(std::move(good));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->first_event_sequence, 1u);  // no gap left by the failure
  EXPECT_EQ(r->first_audit_sequence, 1u);
  auto v = VerifyAuditChain(*engine);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok) << v->problem;
}

TEST(EngineTest, InvalidWriteSetIsRejectedWhole) {
  TempDir dir;
  ManualClock clock;
  auto engine = OpenOrDie(dir.path(), &clock);
  WriteSet ws;
  ws.Put(Table::kCards, "c1", "v");
  ws.Put(static_cast<Table>(200), "k", "v");
  auto r = engine->Commit(std::move(ws));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*engine->Get(Table::kCards, "c1"), std::nullopt);

  WriteSet no_entity;
  no_entity.Put(Table::kCards, "c2", "v");
  no_entity.AppendEvent(Event("card.applied", "card", ""));
  EXPECT_EQ(engine->Commit(std::move(no_entity)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*engine->Get(Table::kCards, "c2"), std::nullopt);
}

TEST(EngineTest, ConcurrentCommitsAreGaplessAndGrouped) {
  TempDir dir;
  ManualClock clock;
  auto engine = OpenOrDie(dir.path(), &clock);
  constexpr int kThreads = 16;
  constexpr int kPerThread = 40;
  std::vector<std::vector<uint64_t>> seqs(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        WriteSet ws;
        std::string id = std::to_string(t) + "-" + std::to_string(i);
        ws.Put(Table::kCards, id, "v");
        ws.AddCounter(Table::kCounters, "total", 1);
        ws.AppendEvent(Event("card.applied", "card", id));
        ws.AppendEvent(Event("card.produced", "card", id));
        ws.AppendAudit(Audit("rpc", id));
        auto r = engine->Commit(std::move(ws));
        ASSERT_TRUE(r.ok()) << r.status();
        seqs[t].push_back(r->first_event_sequence);
      }
    });
  }
  for (auto& th : threads) th.join();

  std::set<uint64_t> firsts;
  for (const auto& v : seqs) firsts.insert(v.begin(), v.end());
  const uint64_t n = kThreads * kPerThread;
  ASSERT_EQ(firsts.size(), n);
  // Each commit got two consecutive sequences: 1,3,5,... without a gap.
  uint64_t expect = 1;
  for (uint64_t s : firsts) {
    EXPECT_EQ(s, expect);
    expect += 2;
  }
  auto events = engine->ReadEvents(0, 10 * n);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2 * n);
  for (size_t i = 0; i < events->size(); ++i) {
    EXPECT_EQ((*events)[i].sequence, i + 1);
  }
  EXPECT_EQ(*engine->GetCounter(Table::kCounters, "total"),
            static_cast<int64_t>(n));
  EngineStats st = engine->Stats();
  EXPECT_EQ(st.commits, n);
  EXPECT_EQ(st.last_event_sequence, 2 * n);
  EXPECT_EQ(st.last_audit_sequence, n);
  EXPECT_LT(st.group_writes, st.commits);  // some fsyncs were shared
  auto v = VerifyAuditChain(*engine);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok) << v->problem;
  EXPECT_EQ(v->records, n);
}

TEST(EngineTest, ReopenRecoversSequencesAndAuditHead) {
  TempDir dir;
  ManualClock clock;
  {
    auto engine = OpenOrDie(dir.path(), &clock);
    for (int i = 0; i < 5; ++i) {
      WriteSet ws;
      ws.AppendEvent(
          Event("person.registered", "person", "p" + std::to_string(i)));
      ws.AppendAudit(Audit("rpc", "r" + std::to_string(i)));
      ASSERT_TRUE(engine->Commit(std::move(ws)).ok());
    }
  }
  auto engine = OpenOrDie(dir.path(), &clock);
  EXPECT_EQ(engine->Stats().last_event_sequence, 5u);
  EXPECT_EQ(engine->Stats().last_audit_sequence, 5u);
  WriteSet ws;
  ws.AppendEvent(Event("person.registered", "person", "p5"));
  ws.AppendAudit(Audit("rpc", "r5"));
  auto r = engine->Commit(std::move(ws));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->first_event_sequence, 6u);
  EXPECT_EQ(r->first_audit_sequence, 6u);
  auto v = VerifyAuditChain(*engine);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok) << v->problem;  // the chain continued from the head
  EXPECT_EQ(v->records, 6u);
}

TEST(EngineTest, EntityEventIndexSeparatesEntitiesAndHonorsFromAndLimit) {
  TempDir dir;
  ManualClock clock;
  auto engine = OpenOrDie(dir.path(), &clock);
  // "card"/"A1" must not see events of "card"/"A10" or "cardx"/"A1".
  for (const auto& [type, id] :
       std::vector<std::pair<std::string, std::string>>{{"card", "A1"},
                                                        {"card", "A10"},
                                                        {"cardx", "A1"},
                                                        {"card", "A1"},
                                                        {"card", "A1"}}) {
    WriteSet ws;
    ws.AppendEvent(Event("t", type, id));
    ASSERT_TRUE(engine->Commit(std::move(ws)).ok());
  }
  auto all = engine->ReadEntityEvents("card", "A1", 0, 100);
  ASSERT_TRUE(all.ok());
  std::vector<uint64_t> seqs;
  for (const auto& e : *all) seqs.push_back(e.sequence);
  EXPECT_EQ(seqs, (std::vector<uint64_t>{1, 4, 5}));
  auto from4 = engine->ReadEntityEvents("card", "A1", 4, 1);
  ASSERT_TRUE(from4.ok());
  ASSERT_EQ(from4->size(), 1u);
  EXPECT_EQ((*from4)[0].sequence, 4u);
  EXPECT_TRUE(engine->ReadEntityEvents("card", "A", 0, 100)->empty());
  auto page = engine->ReadEvents(2, 2);
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ((*page)[0].sequence, 2u);
  EXPECT_EQ((*page)[1].sequence, 3u);
}

// Events are written without building the protobuf message: the bytes
// must be exactly the message's serialization, so that stores written
// before and after read the same (ParseEvent reads both).
TEST(EngineTest, EventRecordEncodingIsTheMessageSerialization) {
  struct Case {
    uint64_t sequence;
    int64_t nanos;
    EventInput e;
  };
  EventInput with_nul = Event("card.applied", "card", std::string("A\0B", 3),
                              std::string(300, 'x'));
  std::vector<Case> cases = {
      {1, 1700000000123456789, Event("card.applied", "card", "A5105240001")},
      {0, 0, Event("t", "e", "i", "")},               // defaults omitted
      {uint64_t{1} << 63, -1, Event("a", "b", "c")},  // longest varints
      {127, -62135596800000000, with_nul},            // before 1970, NUL bytes
      {128, 5,
       Event("person.created", "person", std::string(64, 'f'),
             std::string(20000, '{'))},  // two-byte length
  };
  for (const Case& c : cases) {
    StoredEventRecord rec;
    rec.set_sequence(c.sequence);
    rec.set_time_unix_nanos(c.nanos);
    rec.set_type(c.e.type);
    rec.set_entity_type(c.e.entity_type);
    rec.set_entity_id(c.e.entity_id);
    rec.set_payload(c.e.payload);
    std::string encoded = "prefix";
    EncodeEventRecord(c.sequence, c.nanos, c.e, &encoded);
    EXPECT_EQ(encoded, "prefix" + rec.SerializeAsString())
        << "sequence " << c.sequence;
  }
}

TEST(EngineTest, MultiGetAnswersInTheOrderAskedWithAbsentKeys) {
  TempDir dir;
  ManualClock clock;
  auto engine = OpenOrDie(dir.path(), &clock);
  ASSERT_NE(engine, nullptr);
  WriteSet ws;
  for (int i = 0; i < 300; ++i) {
    ws.Put(Table::kPersons, absl::StrCat("k", i), absl::StrCat("v", i));
  }
  ASSERT_TRUE(engine->Commit(std::move(ws)).ok());
  ASSERT_TRUE(engine->Flush().ok());  // half in table files, half in memory
  WriteSet more;
  more.Put(Table::kPersons, "k7", "newer");
  more.Delete(Table::kPersons, "k8");
  // Bytes above 0x7f order after all others (the keys are sorted before
  // the read: as unsigned bytes, the tables' order).
  more.Put(Table::kPersons, "k\xff", "high");
  more.Put(Table::kPersons, "k\x01", "low");
  ASSERT_TRUE(engine->Commit(std::move(more)).ok());
  std::vector<std::string> keys = {"k299", "missing", "k7",    "k8",
                                   "k0",   "k7",      "k\xff", "k\x01"};
  std::vector<std::string_view> views(keys.begin(), keys.end());
  auto got = engine->MultiGet(Table::kPersons, views);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), keys.size());
  EXPECT_EQ((*got)[0], "v299");
  EXPECT_EQ((*got)[1], std::nullopt);
  EXPECT_EQ((*got)[2], "newer");
  EXPECT_EQ((*got)[3], std::nullopt);
  EXPECT_EQ((*got)[4], "v0");
  EXPECT_EQ((*got)[5], "newer");
  EXPECT_EQ((*got)[6], "high");
  EXPECT_EQ((*got)[7], "low");
  EXPECT_TRUE(engine->MultiGet(Table::kPersons, {})->empty());
  EXPECT_EQ(
      engine->MultiGet(static_cast<Table>(kTableCount), views).status().code(),
      absl::StatusCode::kInvalidArgument);
}

// Thousands of keys (an import's batch): every answer lands at its own
// place, duplicates included, and a commit that runs meanwhile is seen for
// all of them or for none.
TEST(EngineTest, MultiGetOfManyKeysAnswersEachInPlace) {
  TempDir dir;
  ManualClock clock;
  auto engine = OpenOrDie(dir.path(), &clock);
  ASSERT_NE(engine, nullptr);
  WriteSet ws;
  for (int i = 0; i < 9000; i += 2) {
    ws.Put(Table::kPersons, absl::StrCat("k", i), absl::StrCat("v", i));
  }
  ASSERT_TRUE(engine->Commit(std::move(ws)).ok());
  std::vector<std::string> keys;
  for (int i = 8999; i >= 0; --i) keys.push_back(absl::StrCat("k", i));
  for (int i = 0; i < 9000; i += 7) keys.push_back(absl::StrCat("k", i));
  std::vector<std::string_view> views(keys.begin(), keys.end());
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int round = 0; !stop.load(); ++round) {
      WriteSet w;
      w.Put(Table::kPersons, "k1", absl::StrCat("w", round));
      w.Put(Table::kPersons, "k8999", absl::StrCat("w", round));
      ASSERT_TRUE(engine->Commit(std::move(w)).ok());
    }
  });
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto got = engine->MultiGet(Table::kPersons, views);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->size(), keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      const int n = std::stoi(keys[i].substr(1));
      if (n == 1 || n == 8999) continue;
      if (n % 2 == 0) {
        EXPECT_EQ((*got)[i], absl::StrCat("v", n)) << keys[i];
      } else {
        EXPECT_EQ((*got)[i], std::nullopt) << keys[i];
      }
    }
    // "k1" sorts first and "k8999" last: one view for both.
    const std::optional<std::string>& first = (*got)[8998];  // k1
    const std::optional<std::string>& last = (*got)[0];
    EXPECT_EQ(first, last);
  }
  stop = true;
  writer.join();
}

TEST(EngineTest, ScanHonorsBoundsReverseAndEarlyStop) {
  TempDir dir;
  ManualClock clock;
  auto engine = OpenOrDie(dir.path(), &clock);
  WriteSet ws;
  for (int i = 0; i < 10; ++i) {
    ws.Put(Table::kPayoutItems, KeyBuilder().Str("b1").U64(i).Build(),
           std::to_string(i));
  }
  ws.Put(Table::kPayoutItems, KeyBuilder().Str("b0").U64(99).Build(), "x");
  ws.Put(Table::kPayoutItems, KeyBuilder().Str("b2").U64(0).Build(), "y");
  ASSERT_TRUE(engine->Commit(std::move(ws)).ok());

  auto collect = [&](std::string lower, std::string upper, bool reverse,
                     size_t stop_after = 1000) {
    std::vector<std::string> out;
    absl::Status s = engine->Scan(
        Table::kPayoutItems, lower, upper,
        [&](std::string_view, std::string_view v) {
          out.emplace_back(v);
          return out.size() < stop_after;
        },
        reverse);
    EXPECT_TRUE(s.ok()) << s;
    return out;
  };
  std::string prefix = KeyBuilder().Str("b1").Build();
  std::string end = PrefixSuccessor(prefix);
  using V = std::vector<std::string>;
  EXPECT_EQ(collect(prefix, end, false),
            (V{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}));
  EXPECT_EQ(collect(prefix, end, true),
            (V{"9", "8", "7", "6", "5", "4", "3", "2", "1", "0"}));
  EXPECT_EQ(collect(KeyBuilder().Str("b1").U64(3).Build(),
                    KeyBuilder().Str("b1").U64(6).Build(), false),
            (V{"3", "4", "5"}));
  EXPECT_EQ(collect(KeyBuilder().Str("b1").U64(3).Build(),
                    KeyBuilder().Str("b1").U64(6).Build(), true),
            (V{"5", "4", "3"}));
  EXPECT_EQ(collect(prefix, end, true, 2), (V{"9", "8"}));
  EXPECT_EQ(collect(prefix, "", false).back(), "y");  // no upper bound
  EXPECT_EQ(collect("", "", true).front(), "y");
  EXPECT_EQ(collect("", "", false).front(), "x");
}

TEST(EngineTest, CountersAddNegativeDeltasAcrossCommitsAndReopen) {
  TempDir dir;
  ManualClock clock;
  {
    auto engine = OpenOrDie(dir.path(), &clock);
    EXPECT_EQ(*engine->GetCounter(Table::kCounters, "holders"), 0);
    WriteSet a;
    a.AddCounter(Table::kCounters, "holders", 5);
    a.AddCounter(Table::kCounters, "holders", -2);
    ASSERT_TRUE(engine->Commit(std::move(a)).ok());
    WriteSet b;
    b.AddCounter(Table::kCounters, "holders", -10);
    b.AddCounter(Table::kCounters, "fen", INT64_C(9000000000000));
    ASSERT_TRUE(engine->Commit(std::move(b)).ok());
    EXPECT_EQ(*engine->GetCounter(Table::kCounters, "holders"), -7);
    ASSERT_TRUE(engine->Flush().ok());  // merges survive flush to SST
    WriteSet c;
    c.AddCounter(Table::kCounters, "holders", 1);
    ASSERT_TRUE(engine->Commit(std::move(c)).ok());
  }
  auto engine = OpenOrDie(dir.path(), &clock);
  EXPECT_EQ(*engine->GetCounter(Table::kCounters, "holders"), -6);
  EXPECT_EQ(*engine->GetCounter(Table::kCounters, "fen"),
            INT64_C(9000000000000));
}

TEST(EngineTest, StatusCodesAreMappedAtTheBoundary) {
  // Numeric rocksdb::Status::Code values (frozen in RocksDB's API).
  EXPECT_TRUE(FromRocksDbCode(0, "").ok());
  EXPECT_EQ(FromRocksDbCode(1, "x").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(FromRocksDbCode(2, "x").code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(FromRocksDbCode(5, "x").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(FromRocksDbCode(11, "x").code(), absl::StatusCode::kAborted);
  EXPECT_EQ(FromRocksDbCode(13, "x").code(), absl::StatusCode::kAborted);
  EXPECT_EQ(FromRocksDbCode(4, "x").code(), absl::StatusCode::kInternal);
}

TEST(EngineTest, OpenFailsCleanlyOnUnusablePath) {
  TempDir dir;
  std::string file = dir.Sub("not-a-dir");
  FILE* f = fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fclose(f);
  RocksDbOptions o;
  o.path = file + "/db";
  auto e = OpenRocksDbEngine(o);
  EXPECT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find(o.path), std::string_view::npos);
  o.path = "";
  EXPECT_EQ(OpenRocksDbEngine(o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// The writer half of AcknowledgedWritesSurviveKill9, run in a fresh process
// (exec'd, so no thread of this process is inherited): commits, reports each
// acknowledged commit on a pipe, then kills itself with SIGKILL.
TEST(EngineKill9Child, Run) {
  const char* dir = getenv("SSC_KILL9_DIR");
  const char* fd_env = getenv("SSC_KILL9_FD");
  if (dir == nullptr || fd_env == nullptr) {
    GTEST_SKIP() << "helper of EngineTest.AcknowledgedWritesSurviveKill9";
  }
  int fd = atoi(fd_env);
  RocksDbOptions o;
  o.path = dir;
  auto engine = OpenRocksDbEngine(o);
  if (!engine.ok()) _exit(2);
  for (uint32_t i = 1; i <= 50; ++i) {
    WriteSet ws;
    ws.Put(Table::kCards, KeyBuilder().U32(i).Build(), "acked");
    ws.AppendEvent(Event("card.applied", "card", std::to_string(i)));
    if (!(*engine)->Commit(std::move(ws)).ok()) _exit(3);
    if (write(fd, &i, sizeof(i)) != sizeof(i)) _exit(4);
  }
  raise(SIGKILL);
  _exit(5);
}

// An acknowledged commit survives the process being killed with SIGKILL
// right after the acknowledgment (no clean shutdown, no memtable flush).
TEST(EngineTest, AcknowledgedWritesSurviveKill9) {
  TempDir dir;
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(pipefd[0]);
    setenv("SSC_KILL9_DIR", dir.path().c_str(), 1);
    setenv("SSC_KILL9_FD", std::to_string(pipefd[1]).c_str(), 1);
    execl("/proc/self/exe", "storage_test",
          "--gtest_filter=EngineKill9Child.Run", static_cast<char*>(nullptr));
    _exit(6);
  }
  close(pipefd[1]);
  uint32_t last_acked = 0, v = 0;
  while (read(pipefd[0], &v, sizeof(v)) == sizeof(v)) last_acked = v;
  close(pipefd[0]);
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL)
      << "child failed with status " << wstatus;
  ASSERT_EQ(last_acked, 50u);

  ManualClock clock;
  auto engine = OpenOrDie(dir.path(), &clock);
  for (uint32_t i = 1; i <= last_acked; ++i) {
    EXPECT_EQ(*engine->Get(Table::kCards, KeyBuilder().U32(i).Build()),
              std::optional<std::string>("acked"))
        << i;
  }
  EXPECT_EQ(engine->Stats().last_event_sequence, 50u);
}

}  // namespace
}  // namespace ssc::storage
