// Register import rules found wanting in use: a broken line still takes its
// person's other rows with it, a card issued for one reason and replaced
// for another, files written with a byte order mark, and a rerun right
// after the client was killed. Real RocksDB in temp dirs, a manual clock.

#include <algorithm>
#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "services/card/id_number.h"
#include "services/ops/importer.h"
#include "tests/ops/ops_test_util.h"
#include "tests/ops/replay_history.h"

namespace ssc::ops {
namespace {

using common::Caller;
using common::Role;
using testing::At;
using testing::MakeId;
using testing::Rfc;
using testing::Row;
using testing::TempDir;
using testing::TestStore;
using namespace ssc::v1;  // NOLINT: request and response types

const Caller kAdmin{"admin-01", Role::kAdmin, "op-1"};
const Caller kBureau{"bureau-01", Role::kCardBureau, ""};
const char kTown[] = "510524100";

std::vector<std::string> AllEvents(storage::Engine& e) {
  auto events = e.ReadEvents(1, 100000);
  EXPECT_TRUE(events.ok());
  std::vector<std::string> out;
  if (!events.ok()) return out;
  for (const storage::StoredEvent& ev : *events) {
    out.push_back(absl::StrCat(ev.entity_type, "|", ev.entity_id, "|",
                               absl::FormatTime(ev.time), "|", ev.type, "|",
                               ev.payload));
  }
  std::sort(out.begin(), out.end());
  return out;
}

class ImportRulesTest : public ::testing::Test {
 protected:
  ImportRulesTest()
      : clock_(At(2025, 6, 1)), store_(dir_.path() + "/db", &clock_) {}

  // Imports `lines` (file lines from 1; CSV when `header` is given, which
  // is then line 1) as one session; every batch's result.
  std::vector<BatchResult> Import(const std::vector<std::string>& lines,
                                  const std::string& import_id,
                                  size_t batch_rows = 100,
                                  const std::string* header = nullptr) {
    ImportOptions o;
    o.batch_rows = batch_rows;
    Importer importer(store_.ctx, &store_.regions, "510524",
                      store_.cards->observers(), o);
    auto session = importer.Begin(
        kAdmin, import_id,
        header != nullptr ? IMPORT_FORMAT_CSV : IMPORT_FORMAT_JSON_LINES,
        header != nullptr ? *header : "");
    std::vector<BatchResult> out;
    EXPECT_TRUE(session.ok()) << session.status();
    if (!session.ok()) return out;
    const uint64_t first = header != nullptr ? 2 : 1;
    for (size_t i = 0; i < lines.size(); ++i) {
      absl::Status s = (*session)->Add(first + i, lines[i], &out);
      EXPECT_TRUE(s.ok()) << s;
    }
    absl::Status s = (*session)->Finish(&out);
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  static std::map<uint64_t, RejectedRow> Rejects(
      const std::vector<BatchResult>& out) {
    std::map<uint64_t, RejectedRow> r;
    for (const BatchResult& b : out) {
      for (const RejectedRow& x : b.rejects) r[x.line] = x;
    }
    return r;
  }

  bool Stored(const std::string& id_number) {
    GetPersonRequest req;
    req.set_id_number(id_number);
    return store_.cards->GetPerson(kAdmin, req).ok();
  }

  storage::ManualClock clock_;
  TempDir dir_;
  TestStore store_;
};

// One card row (JSON lines) of `id`: applied only, unless `extra` says more.
std::string CardLine(const std::string& id, const std::string& app,
                     const std::string& extra = "") {
  return absl::StrCat(
      R"({"id_number":")", id,
      R"(","name":"张三","region_code":"510524100","application_id":")", app,
      R"(","bank_code":"ABC",)",
      extra.empty() ? R"("state":"APPLIED","applied_at":"2020-03-01")" : extra,
      "}");
}

// A line that does not parse keeps its person: when its id number can be
// read, the person's other rows are rejected with it; when it cannot, the
// persons just before and after it are (one of them may be its person).
// Also when the line falls on a batch boundary.
TEST_F(ImportRulesTest, BrokenLineRejectsItsPersonsOtherRows) {
  const std::string p = MakeId("510524", "19800101", 11);
  const std::string q = MakeId("510524", "19810101", 12);
  const std::string r = MakeId("510524", "19820101", 13);
  const std::string s = MakeId("510524", "19830101", 14);
  const std::vector<std::string> lines = {
      // 1, 2: P's cancelled card, then its new one with an unknown member.
      CardLine(p, "A510524900000001",
               R"("state":"CANCELLED","applied_at":"2020-01-01",)"
               R"("closed_at":"2020-02-01","cancel_reason":"MOVED_OUT")"),
      CardLine(p, "A510524900000002",
               R"("state":"APPLIED","applied_at":"2020-03-01","colour":1)"),
      // 3: Q; 4: a line naming nobody; 5: R; 6: S, after R.
      CardLine(q, "A510524900000003"),
      "{not json",
      CardLine(r, "A510524900000004"),
      CardLine(s, "A510524900000005"),
  };
  for (const size_t batch_rows : {100, 2}) {
    SCOPED_TRACE(absl::StrCat("batch_rows ", batch_rows));
    TempDir dir;
    storage::ManualClock clock(At(2025, 6, 1));
    TestStore store(dir.path() + "/db", &clock);
    ImportOptions o;
    o.batch_rows = batch_rows;
    Importer importer(store.ctx, &store.regions, "510524",
                      store.cards->observers(), o);
    auto session =
        importer.Begin(kAdmin, "broken", IMPORT_FORMAT_JSON_LINES, "");
    ASSERT_TRUE(session.ok()) << session.status();
    std::vector<BatchResult> out;
    for (size_t i = 0; i < lines.size(); ++i) {
      ASSERT_TRUE((*session)->Add(i + 1, lines[i], &out).ok());
    }
    ASSERT_TRUE((*session)->Finish(&out).ok());
    std::map<uint64_t, RejectedRow> rejects = Rejects(out);
    for (uint64_t line = 1; line <= 5; ++line) {
      EXPECT_EQ(rejects.count(line), 1u) << "line " << line;
    }
    EXPECT_EQ(rejects.count(6), 0u);
    EXPECT_TRUE(absl::StrContains(rejects[1].reason, "line 2"))
        << rejects[1].reason;
    EXPECT_TRUE(absl::StrContains(rejects[3].reason, "line 4"))
        << rejects[3].reason;
    EXPECT_TRUE(absl::StrContains(rejects[5].reason, "line 4"))
        << rejects[5].reason;
    EXPECT_EQ(out.back().totals.accepted, 1u);
    EXPECT_EQ(out.back().totals.rejected, 5u);
    // A rejected person writes nothing.
    for (const std::string& id : {p, q, r}) {
      GetPersonRequest req;
      req.set_id_number(id);
      EXPECT_EQ(store.cards->GetPerson(kAdmin, req).status().code(),
                absl::StatusCode::kNotFound)
          << id;
    }
    GetPersonRequest req;
    req.set_id_number(s);
    EXPECT_TRUE(store.cards->GetPerson(kAdmin, req).ok());
  }
}

// CSV: a stray comma shifts the fields after it, yet the id number is read
// (counted from the start or from the end of the line).
TEST_F(ImportRulesTest, BrokenCsvLineIsReadForItsIdNumber) {
  const std::string p = MakeId("510524", "19800101", 21);
  const std::string q = MakeId("510524", "19810101", 22);
  const std::string header =
      "name,region_code,application_id,state,bank_code,applied_at,"
      "closed_at,cancel_reason,id_number";
  const std::vector<std::string> lines = {
      // 2, 3: P, the second line with a comma in the name.
      absl::StrCat("张三,510524100,A510524900000001,CANCELLED,ABC,2020-01-01,"
                   "2020-02-01,MOVED_OUT,",
                   p),
      absl::StrCat("张,三,510524100,A510524900000002,APPLIED,ABC,2020-03-01,,,",
                   p),
      // 4: Q, fine.
      absl::StrCat("李四,510524100,A510524900000003,APPLIED,ABC,2020-03-01,,,",
                   q),
  };
  std::vector<BatchResult> out = Import(lines, "csv-broken", 100, &header);
  std::map<uint64_t, RejectedRow> rejects = Rejects(out);
  EXPECT_EQ(rejects.count(2), 1u);
  EXPECT_EQ(rejects.count(3), 1u);
  EXPECT_EQ(rejects.count(4), 0u);
  EXPECT_FALSE(Stored(p));
  EXPECT_TRUE(Stored(q));
}

// A normal history: lost in 2012 and replaced, the replacement expiring in
// 2022 and replaced in turn. The middle card was issued because of a loss
// and replaced because it expired; issue_reason carries the first,
// replacement_reason the second. The import equals the live history.
TEST_F(ImportRulesTest, CardIssuedForOneReasonAndReplacedForAnother) {
  storage::ManualClock live_clock(At(2009, 1, 1));
  TempDir live_dir;
  TestStore live(live_dir.path() + "/db", &live_clock);
  const std::string id = MakeId("510524", "19800101", 31);
  int rid = 0;
  auto next = [&] { return absl::StrCat("r", ++rid); };
  auto sel = [](const std::string& app) {
    CardSelector s;
    s.set_application_id(app);
    return s;
  };
  int serial = 200;
  // Sends, produces, issues and activates `app`, from `t` on (days 1..4),
  // and describes it in `row`.
  auto lifecycle = [&](const std::string& app, absl::CivilDay t, Row& row) {
    auto at = [&](int days) {
      return absl::FromCivil(absl::CivilSecond(t + days) + 9 * 3600,
                             card::BeijingTime());
    };
    live_clock.Set(at(1));
    SendToProductionRequest send;
    send.set_request_id(next());
    send.add_application_ids(app);
    ASSERT_TRUE(live.cards->SendToProduction(kBureau, send).ok());
    live_clock.Set(at(2));
    RecordProductionRequest prod;
    prod.set_request_id(next());
    prod.set_application_id(app);
    ++serial;
    prod.set_card_number(absl::StrCat("B00000", serial));
    prod.set_identification_code(
        absl::StrCat("510524D156000005", "00000000000000", serial % 100 + 10));
    prod.set_bank_account(absl::StrCat("62284800000000", serial));
    prod.set_valid_from(card::FormatDate(t + 2));
    const absl::CivilDay from = t + 2;
    prod.set_valid_until(card::FormatDate(
        absl::CivilDay(from.year() + 10, from.month(), from.day())));
    ASSERT_TRUE(live.cards->RecordProduction(kBureau, prod).ok());
    live_clock.Set(at(3));
    IssueCardRequest issue;
    issue.set_request_id(next());
    *issue.mutable_card() = sel(app);
    ASSERT_TRUE(live.cards->IssueCard(kAdmin, issue).ok());
    live_clock.Set(at(4));
    ActivateCardRequest activate;
    activate.set_request_id(next());
    *activate.mutable_card() = sel(app);
    ASSERT_TRUE(live.cards->ActivateCard(kAdmin, activate).ok());
    row.f["sent_at"] = Rfc(at(1));
    row.f["produced_at"] = Rfc(at(2));
    row.f["card_number"] = prod.card_number();
    row.f["identification_code"] = prod.identification_code();
    row.f["bank_account"] = prod.bank_account();
    row.f["valid_from"] = prod.valid_from();
    row.f["issued_at"] = Rfc(at(3));
    row.f["activated_at"] = Rfc(at(4));
  };
  auto base_row = [&](const std::string& app, absl::Time applied) {
    Row r;
    r.f["id_number"] = id;
    r.f["name"] = "张三";
    r.f["region_code"] = kTown;
    r.f["application_id"] = app;
    r.f["bank_code"] = "ABC";
    r.f["phone"] = "13800138000";
    r.f["address"] = "叙永镇 1号";
    r.f["photo_ref"] = "photo/1";
    r.f["applied_at"] = Rfc(applied);
    return r;
  };
  auto replace = [&](const std::string& app, absl::Time t,
                     ReplacementReason reason) {
    live_clock.Set(t);
    ApplyReplacementRequest req;
    req.set_request_id(next());
    *req.mutable_card() = sel(app);
    req.set_reason(reason);
    auto resp = live.cards->ApplyReplacement(kAdmin, req);
    EXPECT_TRUE(resp.ok()) << resp.status();
    return resp.ok() ? resp->new_card().application_id() : std::string();
  };

  // Card 1: applied 2009, lost 2012, replaced (LOST).
  live_clock.Set(At(2009, 3, 1));
  ApplyCardRequest apply;
  apply.set_request_id(next());
  apply.mutable_person()->set_id_number(id);
  apply.mutable_person()->set_name("张三");
  apply.mutable_person()->set_region_code(kTown);
  apply.mutable_person()->set_phone("13800138000");
  apply.mutable_person()->set_address("叙永镇 1号");
  apply.set_bank_code("ABC");
  apply.set_photo_ref("photo/1");
  auto applied = live.cards->ApplyCard(kAdmin, apply);
  ASSERT_TRUE(applied.ok()) << applied.status();
  const std::string app1 = applied->card().application_id();
  Row r1 = base_row(app1, At(2009, 3, 1));
  lifecycle(app1, absl::CivilDay(2009, 3, 1), r1);
  live_clock.Set(At(2012, 5, 5));
  ReportLossRequest loss;
  loss.set_request_id(next());
  *loss.mutable_card() = sel(app1);
  loss.set_kind(LOSS_KIND_FORMAL);
  ASSERT_TRUE(live.cards->ReportLoss(kAdmin, loss).ok());
  const std::string app2 =
      replace(app1, At(2012, 5, 6), REPLACEMENT_REASON_LOST);
  ASSERT_FALSE(app2.empty());
  r1.f["state"] = "REPLACED";
  r1.f["lost_at"] = Rfc(At(2012, 5, 5));
  r1.f["replacement_reason"] = "LOST";
  // Card 2: issued because of the loss, replaced in 2022 as it expired.
  Row r2 = base_row(app2, At(2012, 5, 6));
  lifecycle(app2, absl::CivilDay(2012, 5, 6), r2);
  const std::string app3 =
      replace(app2, At(2022, 4, 1), REPLACEMENT_REASON_EXPIRING);
  ASSERT_FALSE(app3.empty());
  r2.f["state"] = "REPLACED";
  r2.f["replaces"] = app1;
  r2.f["issue_reason"] = "LOST";
  r2.f["replacement_reason"] = "EXPIRING";
  // Card 3: active; written as files before issue_reason were.
  Row r3 = base_row(app3, At(2022, 4, 1));
  lifecycle(app3, absl::CivilDay(2022, 4, 1), r3);
  r3.f["state"] = "ACTIVE";
  r3.f["replaces"] = app2;
  r3.f["replacement_reason"] = "EXPIRING";
  const std::vector<std::string> lines = {r1.Json(), r2.Json(), r3.Json()};
  std::vector<BatchResult> out = Import(lines, "two-reasons");
  for (const auto& [line, r] : Rejects(out)) {
    ADD_FAILURE() << line << " " << r.field << ": " << r.reason;
  }
  EXPECT_EQ(out.back().totals.accepted, 3u);
  live_clock.Set(clock_.Now());
  GetPersonRequest req;
  req.set_id_number(id);
  auto a = live.cards->GetPerson(kAdmin, req);
  auto b = store_.cards->GetPerson(kAdmin, req);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  EXPECT_EQ(a->DebugString(), b->DebugString());
  ASSERT_EQ(b->cards_size(), 3);
  EXPECT_EQ(AllEvents(*live.engine), AllEvents(*store_.engine));

  // The same card written with issue_reason on the last row, too, is the
  // same history (the person is then found already imported).
  Row r3b = r3;
  r3b.f["issue_reason"] = "EXPIRING";
  r3b.f.erase("replacement_reason");
  out = Import({r1.Json(), r2.Json(), r3b.Json()}, "two-reasons-b");
  EXPECT_EQ(out.back().totals.skipped, 3u);
  EXPECT_TRUE(Rejects(out).empty());

  // Bad values of the new column are refused, naming it; the person's
  // other rows with it.
  const std::string other = MakeId("510524", "19900101", 32);
  const std::string replaced = absl::StrCat(
      R"({"id_number":")", other,
      R"(","name":"李四","region_code":"510524100",)"
      R"("application_id":"A510524900000011","bank_code":"ABC",)"
      R"("state":"REPLACED","instant_issuance":true,)"
      R"("applied_at":"2020-01-01","card_number":"B00000301",)"
      R"("identification_code":"510524D1560000050000000000000099",)"
      R"("bank_account":"62284800000000301","activated_at":"2020-01-02",)"
      R"("replacement_reason":"DAMAGED"})");
  auto replacement = [&](const std::string& issue_reason) {
    return absl::StrCat(
        R"({"id_number":")", other,
        R"(","name":"李四","region_code":"510524100",)"
        R"("application_id":"A510524900000012","bank_code":"ABC",)"
        R"("state":"APPLIED","applied_at":"2021-01-01",)"
        R"("replaces":"A510524900000011","issue_reason":")",
        issue_reason, R"("})");
  };
  auto refused = [&](const std::vector<std::string>& file,
                     const std::string& import_id) {
    std::map<uint64_t, RejectedRow> rejects = Rejects(Import(file, import_id));
    std::vector<std::string> fields;
    for (const auto& [line, r] : rejects) {
      if (!r.field.empty()) fields.push_back(r.field);
    }
    EXPECT_EQ(rejects.size(), file.size()) << import_id;
    return absl::StrJoin(fields, ",");
  };
  // Not the replaced card's reason; not a known value.
  EXPECT_EQ(refused({replaced, replacement("LOST")}, "bad-1"), "issue_reason");
  EXPECT_EQ(refused({replaced, replacement("BORED")}, "bad-2"), "issue_reason");
  // On a card that replaces nothing.
  EXPECT_EQ(refused({CardLine(other, "A510524900000013",
                              R"("state":"APPLIED","applied_at":"2020-03-01",)"
                              R"("issue_reason":"LOST")")},
                    "bad-3"),
            "issue_reason");
  // The reasons given right, the same rows are taken.
  std::vector<BatchResult> good =
      Import({replaced, replacement("DAMAGED")}, "good");
  for (const auto& [line, r] : Rejects(good)) {
    ADD_FAILURE() << line << " " << r.field << ": " << r.reason;
  }
  EXPECT_EQ(good.back().totals.accepted, 2u);
}

// Spreadsheet programs start a UTF-8 file with a byte order mark.
TEST_F(ImportRulesTest, ByteOrderMarkIsIgnored) {
  const std::string p = MakeId("510524", "19800101", 41);
  const std::string q = MakeId("510524", "19810101", 42);
  const std::string header =
      "\xEF\xBB\xBFid_number,name,region_code,application_id,state,bank_code,"
      "applied_at";
  std::vector<BatchResult> out =
      Import({absl::StrCat(
                 p, ",张三,510524100,A510524900000001,APPLIED,ABC,2020-03-01")},
             "bom-csv", 100, &header);
  EXPECT_TRUE(Rejects(out).empty());
  EXPECT_TRUE(Stored(p));
  out = Import({absl::StrCat("\xEF\xBB\xBF", CardLine(q, "A510524900000002"))},
               "bom-jsonl");
  EXPECT_TRUE(Rejects(out).empty());
  EXPECT_TRUE(Stored(q));
  // Only at the start of the file.
  ImportOptions o;
  Importer importer(store_.ctx, &store_.regions, "510524",
                    store_.cards->observers(), o);
  auto s = importer.Begin(kAdmin, "bom-late", IMPORT_FORMAT_JSON_LINES, "");
  ASSERT_TRUE(s.ok());
  std::vector<BatchResult> late;
  ASSERT_TRUE((*s)->Add(1, "", &late).ok());
  ASSERT_TRUE((*s)->Add(2,
                        absl::StrCat("\xEF\xBB\xBF",
                                     CardLine(MakeId("510524", "19820101", 43),
                                              "A510524900000003")),
                        &late)
                  .ok());
  ASSERT_TRUE((*s)->Finish(&late).ok());
  EXPECT_EQ(Rejects(late).count(2), 1u);
}

// A run whose client was killed (its call cancelled) is taken over by the
// rerun at once: the rerun waits for the batch being committed, resumes
// after the checkpoint, and the old run commits nothing more. While the
// old run's client is there, a rerun is still refused.
TEST_F(ImportRulesTest, RerunTakesOverARunWhoseClientIsGone) {
  // The rows of the scripted history (tests/ops/replay_history.h), played
  // through the card logic of a second store.
  storage::ManualClock live_clock(At(2019, 1, 1));
  TempDir live_dir;
  TestStore live(live_dir.path() + "/db", &live_clock);
  class Driver : public testing::HistoryDriver {
   public:
    explicit Driver(TestStore* s) : s_(s) {}
    void SetTime(absl::Time t) override { s_->clock->Set(t); }
    Card Apply(const ApplyCardRequest& req) override {
      auto r = s_->cards->ApplyCard(kAdmin, req);
      EXPECT_TRUE(r.ok()) << r.status();
      return r.ok() ? r->card() : Card();
    }
    void Send(const SendToProductionRequest& req) override {
      EXPECT_TRUE(s_->cards->SendToProduction(kBureau, req).ok());
    }
    Card Produce(const RecordProductionRequest& req) override {
      auto r = s_->cards->RecordProduction(kBureau, req);
      EXPECT_TRUE(r.ok()) << r.status();
      return r.ok() ? r->card() : Card();
    }
    void Issue(const IssueCardRequest& req) override {
      EXPECT_TRUE(s_->cards->IssueCard(kAdmin, req).ok());
    }
    void Activate(const ActivateCardRequest& req) override {
      EXPECT_TRUE(s_->cards->ActivateCard(kAdmin, req).ok());
    }
    void Lose(const ReportLossRequest& req) override {
      EXPECT_TRUE(s_->cards->ReportLoss(kAdmin, req).ok());
    }
    Card Replace(const ApplyReplacementRequest& req) override {
      auto r = s_->cards->ApplyReplacement(kAdmin, req);
      EXPECT_TRUE(r.ok()) << r.status();
      return r.ok() ? r->new_card() : Card();
    }
    void Cancel(const CancelCardRequest& req) override {
      EXPECT_TRUE(s_->cards->CancelCard(kAdmin, req).ok());
    }

   private:
    TestStore* s_;
  } driver(&live);
  const std::vector<std::string> lines = testing::ReplayHistory(driver).Lines();

  ImportOptions o;
  o.batch_rows = 2;
  Importer importer(store_.ctx, &store_.regions, "510524",
                    store_.cards->observers(), o);
  std::atomic<bool> client_gone{false};
  auto first = importer.Begin(kAdmin, "file-k", IMPORT_FORMAT_JSON_LINES, "",
                              [&client_gone] { return client_gone.load(); });
  ASSERT_TRUE(first.ok()) << first.status();
  std::vector<BatchResult> out;
  size_t sent = 0;
  while (sent < lines.size() && out.empty()) {
    ASSERT_TRUE((*first)->Add(sent + 1, lines[sent], &out).ok());
    ++sent;
  }
  ASSERT_EQ(out.size(), 1u);  // a batch done, the next one committing
  ASSERT_LT(sent, lines.size());

  auto refused = importer.Begin(kAdmin, "file-k", IMPORT_FORMAT_JSON_LINES, "");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kAborted);

  client_gone = true;
  auto second = importer.Begin(kAdmin, "file-k", IMPORT_FORMAT_JSON_LINES, "");
  ASSERT_TRUE(second.ok()) << second.status();
  auto checkpoint = importer.Status("file-k");
  ASSERT_TRUE(checkpoint.ok());
  const uint64_t resume = (*second)->totals().resume_after_line;
  EXPECT_EQ(resume, checkpoint->resume_after_line);
  EXPECT_GE(resume, out.back().totals.resume_after_line);

  // The old run commits nothing more.
  std::vector<BatchResult> late;
  absl::Status old_run;
  for (size_t i = sent; i < lines.size() && old_run.ok(); ++i) {
    old_run = (*first)->Add(i + 1, lines[i], &late);
  }
  if (old_run.ok()) old_run = (*first)->Finish(&late);
  EXPECT_EQ(old_run.code(), absl::StatusCode::kAborted) << old_run;
  EXPECT_TRUE(late.empty());
  EXPECT_EQ(importer.Status("file-k")->resume_after_line, resume);
  // Its end leaves the new run's claim alone.
  first->reset();
  EXPECT_EQ(importer.Begin(kAdmin, "file-k", IMPORT_FORMAT_JSON_LINES, "")
                .status()
                .code(),
            absl::StatusCode::kAborted);

  // The new run finishes the file: every row once, as the live history.
  std::vector<BatchResult> rest;
  for (size_t i = resume; i < lines.size(); ++i) {
    ASSERT_TRUE((*second)->Add(i + 1, lines[i], &rest).ok());
  }
  ASSERT_TRUE((*second)->Finish(&rest).ok());
  const ImportTotals& t = rest.back().totals;
  EXPECT_TRUE(t.done);
  EXPECT_EQ(t.accepted, lines.size());
  EXPECT_EQ(t.rejected, 0u);
  EXPECT_EQ(t.skipped, 0u);
  EXPECT_EQ(AllEvents(*live.engine), AllEvents(*store_.engine));
}

}  // namespace
}  // namespace ssc::ops
