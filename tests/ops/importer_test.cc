#include "services/ops/importer.h"

#include <algorithm>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "services/card/card_records.pb.h"
#include "services/card/id_number.h"
#include "services/common/json.h"
#include "services/report/counters.h"
#include "storage/audit.h"
#include "storage/forwarding_engine.h"
#include "tests/ops/ops_test_util.h"
#include "tests/ops/replay_history.h"

namespace ssc::ops {
namespace {

using common::Caller;
using common::Role;
using testing::MakeId;
using testing::TempDir;
using testing::TestStore;
using namespace ssc::v1;  // NOLINT: request and response types

const Caller kAdmin{"admin-01", Role::kAdmin, "op-1"};
const Caller kBureau{"bureau-01", Role::kCardBureau, ""};
const char kTownA[] = "510524100";
const char kTownB[] = "510524101";

using testing::At;
using testing::Row;

// Plays the history (tests/ops/replay_history.h) through the card logic, the
// logic behind CardService.
class LogicDriver : public testing::HistoryDriver {
 public:
  explicit LogicDriver(TestStore* store) : s_(store) {}
  void SetTime(absl::Time t) override { s_->clock->Set(t); }
  Card Apply(const ApplyCardRequest& req) override {
    auto r = s_->cards->ApplyCard(kAdmin, req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->card() : Card();
  }
  void Send(const SendToProductionRequest& req) override {
    auto r = s_->cards->SendToProduction(kBureau, req);
    EXPECT_TRUE(r.ok()) << r.status();
  }
  Card Produce(const RecordProductionRequest& req) override {
    auto r = s_->cards->RecordProduction(kBureau, req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->card() : Card();
  }
  void Issue(const IssueCardRequest& req) override {
    auto r = s_->cards->IssueCard(kAdmin, req);
    EXPECT_TRUE(r.ok()) << r.status();
  }
  void Activate(const ActivateCardRequest& req) override {
    auto r = s_->cards->ActivateCard(kAdmin, req);
    EXPECT_TRUE(r.ok()) << r.status();
  }
  void Lose(const ReportLossRequest& req) override {
    auto r = s_->cards->ReportLoss(kAdmin, req);
    EXPECT_TRUE(r.ok()) << r.status();
  }
  Card Replace(const ApplyReplacementRequest& req) override {
    auto r = s_->cards->ApplyReplacement(kAdmin, req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->new_card() : Card();
  }
  void Cancel(const CancelCardRequest& req) override {
    auto r = s_->cards->CancelCard(kAdmin, req);
    EXPECT_TRUE(r.ok()) << r.status();
  }

 private:
  TestStore* s_;
};

class ImporterTest : public ::testing::Test {
 protected:
  ImporterTest()
      : live_clock_(At(2019, 1, 1)),
        import_clock_(At(2025, 6, 1)),
        live_(live_dir_.path() + "/db", &live_clock_),
        imported_(import_dir_.path() + "/db", &import_clock_) {}

  // Runs the history through the card logic (the RPCs' logic) on `live_`
  // and keeps the register rows describing the result in `rows_`.
  void ReplayLive() {
    LogicDriver driver(&live_);
    testing::ReplayedHistory h = testing::ReplayHistory(driver);
    rows_ = std::move(h.rows);
    ids_ = std::move(h.ids);
  }

  // Imports `lines` (JSON lines) into `imported_` as one session.
  std::vector<BatchResult> Import(const std::vector<std::string>& lines,
                                  const std::string& import_id,
                                  size_t batch_rows = 2) {
    ImportOptions o;
    o.batch_rows = batch_rows;
    Importer importer(imported_.ctx, &imported_.regions, "510524",
                      imported_.cards->observers(), o);
    auto session =
        importer.Begin(kAdmin, import_id, IMPORT_FORMAT_JSON_LINES, "");
    EXPECT_TRUE(session.ok()) << session.status();
    std::vector<BatchResult> out;
    for (size_t i = 0; i < lines.size(); ++i) {
      absl::Status s = (*session)->Add(i + 1, lines[i], &out);
      EXPECT_TRUE(s.ok()) << s;
    }
    absl::Status s = (*session)->Finish(&out);
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  // How many rejects import `import_id` keeps with its checkpoint.
  size_t StoredRejects(const std::string& import_id) {
    Importer importer(imported_.ctx, &imported_.regions, "510524",
                      imported_.cards->observers());
    auto stored = importer.Rejects(import_id);
    EXPECT_TRUE(stored.ok()) << stored.status();
    return stored.ok() ? stored->size() : 0;
  }

  std::vector<std::string> Lines() const {
    std::vector<std::string> out;
    for (const Row& r : rows_) out.push_back(r.Json());
    return out;
  }

  static std::vector<std::string> AllEvents(storage::Engine& e) {
    auto events = e.ReadEvents(1, 100000);
    EXPECT_TRUE(events.ok());
    std::vector<std::string> out;
    for (const storage::StoredEvent& ev : *events) {
      out.push_back(absl::StrCat(ev.entity_type, "|", ev.entity_id, "|",
                                 absl::FormatTime(ev.time), "|", ev.type, "|",
                                 ev.payload));
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  storage::ManualClock live_clock_;
  storage::ManualClock import_clock_;
  TempDir live_dir_;
  TempDir import_dir_;
  TestStore live_;
  TestStore imported_;
  std::vector<Row> rows_;
  std::vector<std::string> ids_;
};

TEST_F(ImporterTest, ImportEqualsReplayThroughTheCardLogic) {
  ReplayLive();
  std::vector<BatchResult> results = Import(Lines(), "file-1");
  ASSERT_FALSE(results.empty());
  const ImportTotals& t = results.back().totals;
  std::vector<std::string> why;
  for (const auto& b : results) {
    for (const auto& r : b.rejects) {
      why.push_back(absl::StrCat(r.line, " ", r.field, ": ", r.reason));
    }
  }
  EXPECT_EQ(t.rejected, 0u) << absl::StrJoin(why, "\n");
  EXPECT_EQ(t.accepted, rows_.size());
  EXPECT_TRUE(t.done);
  EXPECT_EQ(t.resume_after_line, rows_.size());

  // Persons and cards as the RPCs show them (clear, to an admin).
  live_clock_.Set(import_clock_.Now());
  for (const std::string& id : ids_) {
    GetPersonRequest req;
    req.set_id_number(id);
    auto a = live_.cards->GetPerson(kAdmin, req);
    auto b = imported_.cards->GetPerson(kAdmin, req);
    ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
    EXPECT_EQ(a->DebugString(), b->DebugString()) << id;
    // The invalid-card list.
    for (const Card& c : a->cards()) {
      if (c.card_number().empty()) continue;
      CheckInvalidCardRequest q;
      q.set_card_number(c.card_number());
      auto x = live_.cards->CheckInvalidCard(kAdmin, q);
      auto y = imported_.cards->CheckInvalidCard(kAdmin, q);
      ASSERT_TRUE(x.ok() && y.ok());
      EXPECT_EQ(x->DebugString(), y->DebugString()) << c.card_number();
    }
    // The person's events in order.
    ListCardEventsRequest le;
    le.set_id_number(id);
    le.mutable_page()->set_page_size(100);
    auto ea = live_.cards->ListCardEvents(kAdmin, le);
    auto eb = imported_.cards->ListCardEvents(kAdmin, le);
    ASSERT_TRUE(ea.ok() && eb.ok());
    ASSERT_EQ(ea->events_size(), eb->events_size()) << id;
    for (int i = 0; i < ea->events_size(); ++i) {
      Event x = ea->events(i), y = eb->events(i);
      x.clear_sequence();
      y.clear_sequence();
      EXPECT_EQ(x.DebugString(), y.DebugString());
    }
  }
  // Every event of the store, with its time.
  EXPECT_EQ(AllEvents(*live_.engine), AllEvents(*imported_.engine));

  // Report counters as at past dates, for the county and its townships.
  std::vector<std::string> regions = {"510524", kTownA, kTownB};
  for (absl::CivilDay d(2019, 1, 1); d <= absl::CivilDay(2025, 1, 1); d += 9) {
    for (const std::string& r : regions) {
      for (report::Metric m : report::kAllMetrics) {
        auto x = report::MetricAsOf(*live_.engine, m, r, d);
        auto y = report::MetricAsOf(*imported_.engine, m, r, d);
        ASSERT_TRUE(x.ok() && y.ok());
        EXPECT_EQ(*x, *y) << r << " " << d;
      }
    }
  }
  auto holders =
      report::MetricAsOf(*imported_.engine, report::Metric::kCardHolders,
                         "510524", absl::CivilDay(2020, 12, 31));
  EXPECT_EQ(*holders, 4);  // persons 1, 2 (replacing), 3 (not yet dead), 5
  auto chain = storage::VerifyAuditChain(*imported_.engine);
  ASSERT_TRUE(chain.ok());
  EXPECT_TRUE(chain->ok) << chain->problem;
}

// A preparing thread reuses its records and buffers from person to person
// (and a batch's rows live on its parse arenas): every person in one batch
// on one thread, in file order and with the persons in reverse order, stores
// what the live operations stored, whatever person came before.
TEST_F(ImporterTest, OneBatchOnOneThreadEqualsTheLiveHistory) {
  ReplayLive();
  // The lines of each person (consecutive, as the file requires).
  std::vector<std::vector<std::string>> persons;
  std::string last_id;
  for (const Row& r : rows_) {
    const std::string& id = r.f.at("id_number");
    if (persons.empty() || id != last_id) persons.emplace_back();
    persons.back().push_back(r.Json());
    last_id = id;
  }
  ASSERT_GT(persons.size(), 2u);
  for (const bool reversed : {false, true}) {
    SCOPED_TRACE(reversed ? "persons reversed" : "file order");
    std::vector<std::string> lines;
    for (size_t i = 0; i < persons.size(); ++i) {
      const auto& p = persons[reversed ? persons.size() - 1 - i : i];
      lines.insert(lines.end(), p.begin(), p.end());
    }
    TempDir dir;
    storage::ManualClock clock(import_clock_.Now());
    TestStore store(dir.path() + "/db", &clock);
    ImportOptions o;
    o.batch_rows = 100000;
    o.threads = 1;
    Importer importer(store.ctx, &store.regions, "510524",
                      store.cards->observers(), o);
    auto session = importer.Begin(kAdmin, "one", IMPORT_FORMAT_JSON_LINES, "");
    ASSERT_TRUE(session.ok()) << session.status();
    std::vector<BatchResult> out;
    for (size_t i = 0; i < lines.size(); ++i) {
      ASSERT_TRUE((*session)->Add(i + 1, lines[i], &out).ok());
    }
    ASSERT_TRUE((*session)->Finish(&out).ok());
    EXPECT_EQ(out.back().totals.accepted, rows_.size());
    EXPECT_EQ(out.back().totals.rejected, 0u);

    EXPECT_EQ(AllEvents(*live_.engine), AllEvents(*store.engine));
    live_clock_.Set(clock.Now());
    for (const std::string& id : ids_) {
      GetPersonRequest req;
      req.set_id_number(id);
      auto a = live_.cards->GetPerson(kAdmin, req);
      auto b = store.cards->GetPerson(kAdmin, req);
      ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
      EXPECT_EQ(a->DebugString(), b->DebugString()) << id;
    }
    for (absl::CivilDay d(2019, 1, 1); d <= absl::CivilDay(2025, 1, 1);
         d += 30) {
      for (report::Metric m : report::kAllMetrics) {
        auto x = report::MetricAsOf(*live_.engine, m, "510524", d);
        auto y = report::MetricAsOf(*store.engine, m, "510524", d);
        ASSERT_TRUE(x.ok() && y.ok());
        EXPECT_EQ(*x, *y) << d;
      }
    }
  }
}

// Rows whose id numbers differ only in the case of the check letter are one
// person's rows (one group), as when grouping compared upper-case copies.
TEST_F(ImporterTest, GroupingIgnoresTheCaseOfTheIdNumber) {
  std::string id;
  for (int seq = 1; seq < 1000 && id.empty(); ++seq) {
    const std::string c = MakeId("510524", "19800101", seq);
    if (c.back() == 'X') id = c;
  }
  ASSERT_FALSE(id.empty());
  std::string lower = id;
  lower.back() = 'x';
  auto row = [](const std::string& id_number, const char* app,
                const char* state, const char* extra) {
    return absl::StrCat(
        R"({"id_number":")", id_number,
        R"(","name":"张三","region_code":"510524100","application_id":")", app,
        R"(","state":")", state, R"(","bank_code":"ABC",)", extra, "}");
  };
  // A cancelled card, then a new one: valid only as one person's rows.
  const std::vector<std::string> lines = {
      row(id, "A510524900000001", "CANCELLED",
          R"("applied_at":"2020-01-01","closed_at":"2020-02-01",)"
          R"("cancel_reason":"MOVED_OUT")"),
      row(lower, "A510524900000002", "APPLIED", R"("applied_at":"2020-03-01")"),
  };
  std::vector<BatchResult> out = Import(lines, "case", 100);
  for (const auto& b : out) {
    for (const auto& r : b.rejects) ADD_FAILURE() << r.field << r.reason;
  }
  EXPECT_EQ(out.back().totals.accepted, 2u);
  GetPersonRequest req;
  req.set_id_number(id);
  auto p = imported_.cards->GetPerson(kAdmin, req);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->cards_size(), 2);
}

TEST_F(ImporterTest, ReRunChangesNothingAndResumesAfterTheCheckpoint) {
  ReplayLive();
  std::vector<std::string> lines = Lines();
  // A first run that stops (the session is dropped) after one batch.
  {
    ImportOptions o;
    o.batch_rows = 2;
    Importer importer(imported_.ctx, &imported_.regions, "510524",
                      imported_.cards->observers(), o);
    auto session =
        importer.Begin(kAdmin, "file-2", IMPORT_FORMAT_JSON_LINES, "");
    ASSERT_TRUE(session.ok());
    std::vector<BatchResult> out;
    for (size_t i = 0; i < lines.size() && out.empty(); ++i) {
      ASSERT_TRUE((*session)->Add(i + 1, lines[i], &out).ok());
    }
    ASSERT_EQ(out.size(), 1u);
    // While it runs, the store merges the batches' files less often.
    EXPECT_EQ(imported_.engine->Properties()["ssc.bulk-loading"], "1");
    // A second run of the same import while this one runs is refused.
    auto twice = importer.Begin(kAdmin, "file-2", IMPORT_FORMAT_JSON_LINES, "");
    EXPECT_EQ(twice.status().code(), absl::StatusCode::kAborted);
    auto status = importer.Status("file-2");
    ASSERT_TRUE(status.ok());
    EXPECT_GT(status->resume_after_line, 0u);
    EXPECT_LT(status->resume_after_line, lines.size());
    EXPECT_FALSE(status->done);
  }
  // A dropped session ends it.
  EXPECT_EQ(imported_.engine->Properties()["ssc.bulk-loading"], "0");
  EXPECT_EQ(imported_.engine->Properties()["ssc.level0-compaction-trigger"],
            "4");
  const uint64_t events_before = imported_.engine->Stats().last_event_sequence;
  std::vector<BatchResult> resumed = Import(lines, "file-2");
  const ImportTotals& t = resumed.back().totals;
  EXPECT_TRUE(t.done);
  EXPECT_EQ(t.accepted, rows_.size());
  EXPECT_EQ(t.skipped, 0u);
  EXPECT_GT(imported_.engine->Stats().last_event_sequence, events_before);

  // Everything is now imported: the same import again sends nothing new,
  // and the same rows under another import id are all skipped.
  const std::vector<std::string> events = AllEvents(*imported_.engine);
  std::vector<BatchResult> again = Import(lines, "file-2");
  EXPECT_EQ(again.back().totals.accepted, rows_.size());
  std::vector<BatchResult> other = Import(lines, "file-2-renamed");
  EXPECT_EQ(other.back().totals.skipped, rows_.size());
  EXPECT_EQ(other.back().totals.accepted, 0u);
  EXPECT_EQ(AllEvents(*imported_.engine), events);

  // And the result equals the live history.
  EXPECT_EQ(AllEvents(*live_.engine), events);
}

TEST_F(ImporterTest, InvalidRowsAreRejectedWithLineFieldAndReason) {
  const std::string good_id = MakeId("510524", "19800101", 11);
  std::string bad_check = good_id;
  bad_check[17] = bad_check[17] == '0' ? '1' : '0';
  auto line = [](const std::string& id, const std::string& extra) {
    return absl::StrCat(
        R"({"id_number":")", id,
        R"(","name":"张三","region_code":"510524100","application_id":"A510524900000001","state":"APPLIED","bank_code":"ABC","applied_at":"2020-01-01")",
        extra, "}");
  };
  std::vector<std::string> lines = {
      line(bad_check, ""),  // 1
      line(MakeId("510524", "19810101", 12), R"(,"region_code":"510524999")")
          .replace(0, 0, ""),  // 2: dup key
      "{not json",             // 3
      R"({"id_number":")" + MakeId("510524", "19820101", 13) +
          R"(","name":"王五","region_code":"510524100","application_id":"A510524900000003","state":"ACTIVE","bank_code":"ABC","applied_at":"2020-01-01"})",  // 4
      line(good_id, ""),  // 5: fine
  };
  std::vector<BatchResult> out = Import(lines, "bad", 100);
  std::map<uint64_t, RejectedRow> rejects;
  for (const auto& b : out) {
    for (const auto& r : b.rejects) rejects[r.line] = r;
  }
  ASSERT_EQ(rejects.count(1), 1u);
  EXPECT_EQ(rejects[1].field, "id_number");
  ASSERT_EQ(rejects.count(2), 1u);  // duplicate JSON key or bad township
  ASSERT_EQ(rejects.count(3), 1u);
  ASSERT_EQ(rejects.count(4), 1u);
  EXPECT_EQ(rejects[4].field, "sent_at");
  EXPECT_EQ(rejects.count(5), 0u);
  EXPECT_EQ(out.back().totals.accepted, 1u);
  EXPECT_EQ(out.back().totals.rejected, 4u);
  // Rejects are kept with the checkpoint.
  EXPECT_EQ(StoredRejects("bad"), 4u);
  // Nothing was written for rejected rows.
  GetPersonRequest req;
  req.set_id_number(MakeId("510524", "19820101", 13));
  EXPECT_EQ(imported_.cards->GetPerson(kAdmin, req).status().code(),
            absl::StatusCode::kNotFound);
}

// Each batch reports only its own rejects and claims, though a session
// reuses the groups of the batch before last for the next one: here every
// other batch rejects the row it prepares, always in the same place.
TEST_F(ImporterTest, EachBatchReportsItsOwnRejectsOnly) {
  auto line = [](const std::string& id, int app) {
    return absl::StrCat(
        R"({"id_number":")", id,
        R"(","name":"张三","region_code":"510524100","application_id":"A5105249)",
        absl::StrFormat("%08d", app),
        R"(","state":"APPLIED","bank_code":"ABC","applied_at":"2020-01-01"})");
  };
  std::vector<std::string> lines;
  std::vector<uint64_t> bad_lines;
  for (int i = 0; i < 12; ++i) {
    std::string id = MakeId("510524", "19800101", 100 + i);
    if (i % 2 == 0) {  // a wrong check digit
      id[17] = id[17] == '0' ? '1' : '0';
      bad_lines.push_back(i + 1);
    }
    lines.push_back(line(id, i + 1));
  }
  // Two rows a batch: each batch prepares one person (the second row may
  // be continued by the next line, so it waits for the next batch).
  std::vector<BatchResult> out = Import(lines, "alternate", 2);
  std::vector<uint64_t> rejected;
  for (const BatchResult& b : out) {
    for (const RejectedRow& r : b.rejects) {
      EXPECT_EQ(r.field, "id_number") << r.line;
      rejected.push_back(r.line);
    }
  }
  EXPECT_EQ(rejected, bad_lines);
  EXPECT_EQ(out.back().totals.accepted, 6u);
  EXPECT_EQ(out.back().totals.rejected, 6u);
  EXPECT_EQ(StoredRejects("alternate"), 6u);
  // The accepted persons' histories, each once: person.created and
  // card.applied.
  std::multiset<std::string> kinds;
  for (const std::string& e : AllEvents(*imported_.engine)) {
    const std::vector<std::string> parts = absl::StrSplit(e, '|');
    ASSERT_GE(parts.size(), 4u) << e;
    kinds.insert(
        absl::StrCat(parts[3], " ", parts[0] == "card" ? parts[1] : ""));
  }
  std::multiset<std::string> expected;
  for (int i = 2; i <= 12; i += 2) {
    expected.insert("person.created ");
    expected.insert(absl::StrFormat("card.applied A5105249%08d", i));
  }
  EXPECT_EQ(kinds, expected);
}

// An engine that holds the first commit with events given to it until a
// batched read has asked for a key containing `marker`: a key only the
// next batch of an import reads, so that it is prepared (its reads made)
// before the batch before it is stored, whichever thread runs first.
class HoldFirstCommitEngine : public storage::ForwardingEngine {
 public:
  HoldFirstCommitEngine(storage::Engine* inner, std::string marker)
      : ForwardingEngine(inner), marker_(std::move(marker)) {}
  absl::StatusOr<std::vector<std::optional<std::string>>> MultiGet(
      storage::Table t, const std::vector<std::string_view>& keys) override {
    auto v = inner()->MultiGet(t, keys);
    bool marked = false;
    for (std::string_view k : keys) {
      marked = marked || k.find(marker_) != std::string_view::npos;
    }
    if (marked) {
      std::lock_guard<std::mutex> lock(mu_);
      marker_read_ = true;
      cv_.notify_all();
    }
    return v;
  }
  absl::StatusOr<storage::CommitResult> Commit(storage::WriteSet ws) override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!held_once_ && !ws.events().empty()) {
        held_once_ = true;
        cv_.wait(lock, [this] { return marker_read_; });
      }
    }
    return inner()->Commit(std::move(ws));
  }
  // Whether the first commit with events was held and the marked read came
  // while it was.
  bool held() {
    std::lock_guard<std::mutex> lock(mu_);
    return held_once_ && marker_read_;
  }

 private:
  const std::string marker_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_once_ = false, marker_read_ = false;
};

// What a batch writes decides what the next may write, also when the next
// is prepared before the first is stored (its persons are prepared again
// once it is): a person met again later in the file is skipped as already
// imported, and an application id given again for another person is
// refused.
TEST_F(ImporterTest, RowsClashingWithThePreviousBatchAreRefusedAlike) {
  auto line = [](const std::string& id, const std::string& app) {
    return absl::StrCat(
        R"({"id_number":")", id,
        R"(","name":"张三","region_code":"510524100","application_id":")", app,
        R"(","state":"APPLIED","bank_code":"ABC","applied_at":"2020-01-01"})");
  };
  const std::string a = MakeId("510524", "19800101", 21);
  const std::string d = MakeId("510524", "19800102", 22);
  const std::string x = MakeId("510524", "19800103", 23);
  const std::string e = MakeId("510524", "19800104", 24);
  const std::string f = MakeId("510524", "19800105", 25);
  // Batches of 3 lines, the last person of each carried to the next (it
  // may continue there): the batches hold {a, d}, {x, e} and {a, f}.
  const std::vector<std::string> lines = {
      line(a, "A510524900000011"), line(d, "A510524900000014"),
      line(x, "A510524900000015"), line(e, "A510524900000014"),
      line(a, "A510524900000011"), line(f, "A510524900000016"),
  };
  // x's application id is read by the second batch only.
  HoldFirstCommitEngine held(imported_.engine.get(), "A510524900000015");
  common::StoreContext ctx = imported_.ctx;
  ctx.engine = &held;
  ImportOptions o;
  o.batch_rows = 3;
  Importer importer(ctx, &imported_.regions, "510524",
                    imported_.cards->observers(), o);
  auto session = importer.Begin(kAdmin, "clash", IMPORT_FORMAT_JSON_LINES, "");
  ASSERT_TRUE(session.ok()) << session.status();
  std::vector<BatchResult> out;
  for (size_t i = 0; i < lines.size(); ++i) {
    ASSERT_TRUE((*session)->Add(i + 1, lines[i], &out).ok());
  }
  // While it runs, the store merges the batches' files less often...
  EXPECT_EQ(imported_.engine->Properties()["ssc.bulk-loading"], "1");
  ASSERT_TRUE((*session)->Finish(&out).ok());
  // ...and finishing ends that, with the session still open.
  EXPECT_EQ(imported_.engine->Properties()["ssc.bulk-loading"], "0");
  EXPECT_EQ(imported_.engine->Properties()["ssc.level0-compaction-trigger"],
            "4");
  EXPECT_TRUE(held.held());
  std::map<uint64_t, RejectedRow> rejects;
  for (const auto& b : out) {
    for (const auto& r : b.rejects) rejects[r.line] = r;
  }
  const ImportTotals& t = out.back().totals;
  EXPECT_EQ(t.accepted, 4u);  // a, d, x and f
  EXPECT_EQ(t.skipped, 1u);   // line 5: person a is already stored, as given
  EXPECT_EQ(t.rejected, 1u);  // line 4: d's application id
  ASSERT_EQ(rejects.count(4), 1u);
  // Found in the store when e was prepared again, after {a, d} was stored
  // (the sequence-range check would refuse it too, naming id_number).
  EXPECT_EQ(rejects[4].field, "application_id") << rejects[4].reason;
  GetPersonRequest req;
  req.set_id_number(e);
  EXPECT_EQ(imported_.cards->GetPerson(kAdmin, req).status().code(),
            absl::StatusCode::kNotFound);
  req.set_id_number(f);
  EXPECT_TRUE(imported_.cards->GetPerson(kAdmin, req).ok());
  // Person a's history is stored once.
  ListCardEventsRequest le;
  le.set_id_number(a);
  le.mutable_page()->set_page_size(100);
  auto events = imported_.cards->ListCardEvents(kAdmin, le);
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(events->events_size(), 2);  // person.registered, card.applied
}

TEST_F(ImporterTest, CsvRowsAndECardBindings) {
  const std::string id = MakeId("510524", "19800101", 11);
  const std::string header =
      "id_number,name,region_code,application_id,state,bank_code,bank_account,"
      "card_number,identification_code,valid_from,applied_at,sent_at,"
      "produced_at,issued_at,activated_at,closed_at,cancel_reason,kind,channel,"
      "bound_at,method";
  const std::string card = absl::StrCat(
      id,
      ",\"张三\",510524100,A510524900000001,CANCELLED,ABC,"
      "6228480000000001,B00000001,510524D1560000050000000000000001,"
      "2019-03-20,2019-03-01,2019-03-02,2019-03-20,2019-04-01,"
      "2019-04-02,2022-01-01,MOVED_OUT,card,,,");
  const std::string ecard = absl::StrCat(
      id, ",,,,,,,,,,,,,,,,,ecard,mobile-app-1,2020-05-05,FACE_LIVENESS");
  ImportOptions o;
  Importer importer(imported_.ctx, &imported_.regions, "510524",
                    imported_.cards->observers(), o);
  auto session = importer.Begin(kAdmin, "csv", IMPORT_FORMAT_CSV, header);
  ASSERT_TRUE(session.ok()) << session.status();
  std::vector<BatchResult> out;
  ASSERT_TRUE((*session)->Add(2, card, &out).ok());
  ASSERT_TRUE((*session)->Add(3, ecard, &out).ok());
  ASSERT_TRUE((*session)->Finish(&out).ok());
  for (const auto& r : out.back().rejects) ADD_FAILURE() << r.field << r.reason;
  EXPECT_EQ(out.back().totals.accepted, 2u);
  // The e-card holder count rose on the binding day and fell with the
  // cancellation; the card holder count likewise from issue to cancel.
  auto ecards = [&](absl::CivilDay d) {
    return *report::MetricAsOf(*imported_.engine, report::Metric::kECardHolders,
                               "510524", d);
  };
  auto holders = [&](absl::CivilDay d) {
    return *report::MetricAsOf(*imported_.engine, report::Metric::kCardHolders,
                               "510524", d);
  };
  EXPECT_EQ(ecards(absl::CivilDay(2020, 5, 4)), 0);
  EXPECT_EQ(ecards(absl::CivilDay(2020, 5, 5)), 1);
  EXPECT_EQ(ecards(absl::CivilDay(2022, 1, 1)), 0);
  EXPECT_EQ(holders(absl::CivilDay(2019, 3, 31)), 0);
  EXPECT_EQ(holders(absl::CivilDay(2019, 4, 1)), 1);
  EXPECT_EQ(holders(absl::CivilDay(2022, 1, 1)), 0);

  // An unknown column is refused before anything is read.
  auto bad =
      importer.Begin(kAdmin, "csv2", IMPORT_FORMAT_CSV, "id_number,colour");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

// Replay keeps the card before each step with SyncCardRecord: it must copy
// every field of CardRecord (a field added to the record and not to it
// fails here), both ways: into a record that has none and over one that
// has other values, and back to empty.
TEST(SyncCardRecord, CopiesEveryField) {
  using card::store::CardRecord;
  using google::protobuf::FieldDescriptor;
  auto fill = [](CardRecord* r, int salt) {
    const google::protobuf::Descriptor* d = CardRecord::descriptor();
    const google::protobuf::Reflection* refl = CardRecord::GetReflection();
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      ASSERT_FALSE(f->is_repeated()) << f->name();
      const int v = salt + i + 1;
      switch (f->cpp_type()) {
        case FieldDescriptor::CPPTYPE_STRING:
          refl->SetString(r, f, absl::StrCat(f->name(), "-", v));
          break;
        case FieldDescriptor::CPPTYPE_INT64:
          refl->SetInt64(r, f, v);
          break;
        case FieldDescriptor::CPPTYPE_ENUM:
          refl->SetEnumValue(r, f, 1 + salt % 2);
          break;
        case FieldDescriptor::CPPTYPE_BOOL:
          refl->SetBool(r, f, salt % 2 == 0);
          break;
        default:
          FAIL() << "field type of " << f->name() << " not covered here";
      }
    }
  };
  CardRecord full, other, empty, to;
  fill(&full, 0);
  fill(&other, 1);
  Importer::SyncCardRecord(full, &to);
  EXPECT_EQ(to.DebugString(), full.DebugString());
  Importer::SyncCardRecord(other, &to);
  EXPECT_EQ(to.DebugString(), other.DebugString());
  Importer::SyncCardRecord(empty, &to);
  EXPECT_EQ(to.DebugString(), empty.DebugString());
  EXPECT_EQ(to.SerializeAsString(), "");
}

// Date-only fields stand for midnight in Beijing time; DayStart computes it
// without the zone and must agree with the zone over the dates allowed.
TEST(DayStart, EqualsMidnightInBeijingTime) {
  for (absl::CivilDay d(1940, 1, 1); d <= absl::CivilDay(2110, 12, 31); ++d) {
    ASSERT_EQ(Importer::DayStart(d),
              absl::FromCivil(absl::CivilSecond(d), card::BeijingTime()))
        << d;
  }
}

// Unquoted CSV lines are split at every comma: n commas, n + 1 fields.
TEST(CsvSplit, UnquotedLinesSplitAtEveryComma) {
  const std::vector<std::string> columns = {"id_number", "name", "phone"};
  auto parse = [&](std::string_view line) {
    return Importer::ParseLine(IMPORT_FORMAT_CSV, columns, line);
  };
  auto r = parse("X,,Y");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->id_number(), "X");
  EXPECT_EQ(r->name(), "");
  EXPECT_EQ(r->phone(), "Y");
  r = parse("X,N,\r");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->name(), "N");
  EXPECT_EQ(r->phone(), "");
  r = parse(",,");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->ByteSizeLong(), 0u);
  for (std::string_view bad : {"", "X,N", "X,N,P,Q", ",,,"}) {
    r = parse(bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(absl::StrContains(parse("X,N").status().message(),
                                "has 2 fields, the header 3"));
}

TEST(CsvSplit, QuotesAndEmptyFields) {
  auto f = Importer::SplitCsv(R"(a,"b,c",,"d""e")");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f, (std::vector<std::string>{"a", "b,c", "", "d\"e"}));
  EXPECT_FALSE(Importer::SplitCsv(R"(a,"b)").ok());
}

}  // namespace
}  // namespace ssc::ops

namespace ssc::ops {
namespace {

// The example files in deploy/ import without a single reject.
TEST(ExampleRegister, ImportsCleanly) {
  for (const char* name : {"register-example.csv", "register-example.jsonl"}) {
    storage::ManualClock clock(absl::FromUnixSeconds(1767225600));
    testing::TempDir dir;
    testing::TestStore store(dir.path() + "/db", &clock);
    Importer importer(store.ctx, &store.regions, "510524",
                      store.cards->observers());
    std::ifstream in(absl::StrCat(SSC_SOURCE_DIR, "/deploy/", name));
    ASSERT_TRUE(in) << name;
    std::string line, header;
    const bool csv = absl::EndsWith(name, ".csv");
    if (csv) std::getline(in, header);
    auto session = importer.Begin(
        kAdmin, name, csv ? IMPORT_FORMAT_CSV : IMPORT_FORMAT_JSON_LINES,
        header);
    ASSERT_TRUE(session.ok()) << session.status();
    std::vector<BatchResult> out;
    uint64_t n = csv ? 1 : 0;
    while (std::getline(in, line))
      ASSERT_TRUE((*session)->Add(++n, line, &out).ok());
    ASSERT_TRUE((*session)->Finish(&out).ok());
    for (const auto& b : out) {
      for (const auto& r : b.rejects) {
        ADD_FAILURE() << name << ":" << r.line << " " << r.field << ": "
                      << r.reason;
      }
    }
    EXPECT_EQ(out.back().totals.accepted, 6u) << name;
  }
}

// The quoting of event details (services/common/json.h; it scans eight
// bytes at a time) against a plain per-character reference, for every
// position of every character class in strings around the word size.
TEST(EventDetailsJson, QuotingMatchesPerCharacterReference) {
  auto reference = [](std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
      const unsigned char u = static_cast<unsigned char>(c);
      if (c == '"') {
        out += "\\\"";
      } else if (c == '\\') {
        out += "\\\\";
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '\r') {
        out += "\\r";
      } else if (c == '\t') {
        out += "\\t";
      } else if (u < 0x20) {
        out += absl::StrFormat("\\u%04x", u);
      } else {
        out += c;
      }
    }
    return out + "\"";
  };
  const std::vector<std::string> specials = {
      "\"",   "\\",   std::string(1, '\0'),
      "\x1f", "\n",   "\t",
      "\x7f", "\x20", "叙",
      "\xff", "!",    "]"};
  int checked = 0;
  for (size_t len : {0, 1, 7, 8, 9, 15, 16, 17, 30, 61, 62, 63, 64, 80}) {
    for (size_t pos = 0; pos <= len; ++pos) {
      for (const std::string& sp : specials) {
        std::string s(len, 'a');
        s.insert(pos, sp);
        std::string got = "prefix";
        common::AppendJsonQuoted(&got, s);
        ASSERT_EQ(got, "prefix" + reference(s))
            << "length " << len << " at " << pos;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 1000);
}

}  // namespace
}  // namespace ssc::ops
