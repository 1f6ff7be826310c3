#include "services/ops/importer.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "services/card/id_number.h"
#include "services/report/counters.h"
#include "storage/audit.h"
#include "tests/ops/ops_test_util.h"

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

absl::Time At(int y, int m, int d, int hh = 9) {
  return absl::FromCivil(absl::CivilSecond(y, m, d, hh, 0, 0),
                         card::BeijingTime());
}
std::string Rfc(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_sec, t, card::BeijingTime());
}
int counter = 0;
std::string Rid() { return absl::StrCat("r", ++counter); }

// One card of the scripted history, as the register file will describe it.
struct Row {
  std::map<std::string, std::string> f;
  std::string Json() const {
    std::vector<std::string> parts;
    for (const auto& [k, v] : f) {
      if (k == "instant_issuance") {
        parts.push_back(absl::StrCat("\"", k, "\":", v));
      } else {
        parts.push_back(absl::StrCat("\"", k, "\":\"", v, "\""));
      }
    }
    return absl::StrCat("{", absl::StrJoin(parts, ","), "}");
  }
};

class ImporterTest : public ::testing::Test {
 protected:
  ImporterTest()
      : live_clock_(At(2019, 1, 1)),
        import_clock_(At(2025, 6, 1)),
        live_(live_dir_.path() + "/db", &live_clock_),
        imported_(import_dir_.path() + "/db", &import_clock_) {}

  // Runs the history through the card logic (the RPCs' logic) on `live_`
  // and writes the register rows describing the result into `rows_`.
  void ReplayLive() {
    auto set = [&](absl::Time t) { live_clock_.Set(t); };
    auto apply = [&](const std::string& id, const std::string& name,
                     const std::string& town, absl::Time t, bool instant,
                     const std::string& account) {
      set(t);
      ApplyCardRequest req;
      req.set_request_id(Rid());
      req.mutable_person()->set_id_number(id);
      req.mutable_person()->set_name(name);
      req.mutable_person()->set_phone("13800138000");
      req.mutable_person()->set_address("叙永镇 1号");
      req.mutable_person()->set_region_code(town);
      req.set_bank_code("ABC");
      req.set_photo_ref("photo/1");
      req.set_instant_issuance(instant);
      if (instant) req.set_bank_account(account);
      auto r = live_.cards->ApplyCard(kAdmin, req);
      EXPECT_TRUE(r.ok()) << r.status();
      return r->card();
    };
    auto send = [&](const std::string& app, absl::Time t) {
      set(t);
      SendToProductionRequest req;
      req.set_request_id(Rid());
      req.add_application_ids(app);
      req.set_batch_reference("B-2019-01");
      auto r = live_.cards->SendToProduction(kBureau, req);
      ASSERT_TRUE(r.ok()) << r.status();
    };
    int serial = 100;
    auto produce = [&](const std::string& app, absl::Time t) {
      set(t);
      RecordProductionRequest req;
      req.set_request_id(Rid());
      req.set_application_id(app);
      ++serial;
      req.set_card_number(absl::StrCat("B00000", serial));
      req.set_identification_code(absl::StrCat(
          "510524D156000005", "00000000000000", serial % 100 + 10));
      req.set_bank_account(absl::StrCat("62284800000000", serial));
      const std::string from =
          card::FormatDate(absl::ToCivilDay(t, card::BeijingTime()));
      req.set_valid_from(from);
      auto day = card::ParseDate("d", from);
      req.set_valid_until(card::FormatDate(
          absl::CivilDay(day->year() + 10, day->month(), day->day())));
      auto r = live_.cards->RecordProduction(kBureau, req);
      EXPECT_TRUE(r.ok()) << r.status();
      Card c = r->card();
      c.set_bank_account(req.bank_account());  // the bureau sees it masked
      return c;
    };
    auto sel = [](const std::string& app) {
      CardSelector s;
      s.set_application_id(app);
      return s;
    };
    auto issue = [&](const std::string& app, absl::Time t) {
      set(t);
      IssueCardRequest req;
      req.set_request_id(Rid());
      *req.mutable_card() = sel(app);
      ASSERT_TRUE(live_.cards->IssueCard(kAdmin, req).ok());
    };
    auto activate = [&](const std::string& app, absl::Time t) {
      set(t);
      ActivateCardRequest req;
      req.set_request_id(Rid());
      *req.mutable_card() = sel(app);
      ASSERT_TRUE(live_.cards->ActivateCard(kAdmin, req).ok());
    };
    auto lose = [&](const std::string& app, absl::Time t, LossKind kind) {
      set(t);
      ReportLossRequest req;
      req.set_request_id(Rid());
      *req.mutable_card() = sel(app);
      req.set_kind(kind);
      auto r = live_.cards->ReportLoss(kAdmin, req);
      ASSERT_TRUE(r.ok()) << r.status();
    };
    auto replace = [&](const std::string& app, absl::Time t,
                       ReplacementReason reason, const std::string& new_name) {
      set(t);
      ApplyReplacementRequest req;
      req.set_request_id(Rid());
      *req.mutable_card() = sel(app);
      req.set_reason(reason);
      req.set_new_name(new_name);
      auto r = live_.cards->ApplyReplacement(kAdmin, req);
      EXPECT_TRUE(r.ok()) << r.status();
      return r->new_card();
    };
    auto cancel = [&](const std::string& app, absl::Time t) {
      set(t);
      CancelCardRequest req;
      req.set_request_id(Rid());
      *req.mutable_card() = sel(app);
      req.set_reason(CANCEL_REASON_DEATH);
      ASSERT_TRUE(live_.cards->CancelCard(kAdmin, req).ok());
    };
    auto row = [&](const std::string& id, const std::string& name,
                   const std::string& town, const Card& c) {
      Row r;
      r.f["id_number"] = id;
      r.f["name"] = name;
      r.f["phone"] = "13800138000";
      r.f["address"] = "叙永镇 1号";
      r.f["region_code"] = town;
      r.f["application_id"] = c.application_id();
      r.f["bank_code"] = "ABC";
      r.f["photo_ref"] = "photo/1";
      return r;
    };
    auto produced_fields = [&](Row& r, const Card& c, absl::Time t) {
      r.f["card_number"] = c.card_number();
      r.f["identification_code"] = c.identification_code();
      r.f["bank_account"] = c.bank_account();
      r.f["valid_from"] = c.valid_from();
      r.f["produced_at"] = Rfc(t);
    };

    // 1. Applied, produced, issued, activated.
    {
      const std::string id = MakeId("510524", "19800101", 11);
      ids_.push_back(id);
      Card c = apply(id, "张三", kTownA, At(2019, 3, 1), false, "");
      send(c.application_id(), At(2019, 3, 2));
      Card p = produce(c.application_id(), At(2019, 3, 20));
      issue(c.application_id(), At(2019, 4, 1));
      activate(c.application_id(), At(2019, 4, 2));
      Row r = row(id, "张三", kTownA, c);
      r.f["state"] = "ACTIVE";
      r.f["applied_at"] = Rfc(At(2019, 3, 1));
      r.f["sent_at"] = Rfc(At(2019, 3, 2));
      r.f["batch_reference"] = "B-2019-01";
      produced_fields(r, p, At(2019, 3, 20));
      r.f["issued_at"] = Rfc(At(2019, 4, 1));
      r.f["activated_at"] = Rfc(At(2019, 4, 2));
      rows_.push_back(r);
    }
    // 2. Instant issuance, formal loss, replacement with a name change, the
    //    replacement produced and issued.
    {
      const std::string id = MakeId("510524", "19900215", 22);
      ids_.push_back(id);
      Card c =
          apply(id, "李四", kTownB, At(2019, 5, 10), true, "6228480000000022");
      activate(c.application_id(), At(2019, 5, 11));
      lose(c.application_id(), At(2020, 1, 5), LOSS_KIND_FORMAL);
      Card n = replace(c.application_id(), At(2020, 1, 6),
                       REPLACEMENT_REASON_DATA_CHANGE, "李思");
      send(n.application_id(), At(2020, 1, 7));
      Card p = produce(n.application_id(), At(2020, 1, 20));
      issue(n.application_id(), At(2020, 2, 1));
      Row r = row(id, "李四", kTownB, c);
      r.f["state"] = "REPLACED";
      r.f["instant_issuance"] = "true";
      r.f["applied_at"] = Rfc(At(2019, 5, 10));
      r.f["card_number"] = c.card_number();
      r.f["identification_code"] = c.identification_code();
      r.f["bank_account"] = "6228480000000022";
      r.f["valid_from"] = c.valid_from();
      r.f["issued_at"] = Rfc(At(2019, 5, 10));
      r.f["lost_at"] = Rfc(At(2020, 1, 5));
      r.f["activated_at"] = Rfc(At(2019, 5, 11));
      r.f["replacement_reason"] = "DATA_CHANGE";
      rows_.push_back(r);
      Row r2 = row(id, "李思", kTownB, n);
      r2.f["state"] = "ISSUED";
      r2.f["applied_at"] = Rfc(At(2020, 1, 6));
      r2.f["replaces"] = c.application_id();
      r2.f["replacement_reason"] = "DATA_CHANGE";
      r2.f["sent_at"] = Rfc(At(2020, 1, 7));
      r2.f["batch_reference"] = "B-2019-01";
      produced_fields(r2, p, At(2020, 1, 20));
      r2.f["issued_at"] = Rfc(At(2020, 2, 1));
      rows_.push_back(r2);
    }
    // 3. Issued then cancelled (death).
    {
      const std::string id = MakeId("510524", "19450607", 33);
      ids_.push_back(id);
      Card c = apply(id, "王五", kTownA, At(2019, 6, 1), false, "");
      send(c.application_id(), At(2019, 6, 2));
      Card p = produce(c.application_id(), At(2019, 6, 15));
      issue(c.application_id(), At(2019, 7, 1));
      cancel(c.application_id(), At(2021, 3, 3));
      Row r = row(id, "王五", kTownA, c);
      r.f["state"] = "CANCELLED";
      r.f["cancel_reason"] = "DEATH";
      r.f["applied_at"] = Rfc(At(2019, 6, 1));
      r.f["sent_at"] = Rfc(At(2019, 6, 2));
      r.f["batch_reference"] = "B-2019-01";
      produced_fields(r, p, At(2019, 6, 15));
      r.f["issued_at"] = Rfc(At(2019, 7, 1));
      r.f["closed_at"] = Rfc(At(2021, 3, 3));
      rows_.push_back(r);
    }
    // 4. Applied only.
    {
      const std::string id = MakeId("510524", "20000909", 44);
      ids_.push_back(id);
      Card c = apply(id, "赵六", kTownB, At(2022, 2, 2), false, "");
      Row r = row(id, "赵六", kTownB, c);
      r.f["state"] = "APPLIED";
      r.f["applied_at"] = Rfc(At(2022, 2, 2));
      rows_.push_back(r);
    }
    // 5. Active, then a temporary loss (still in force at import time? no:
    //    it lapsed long ago; both sides read it lazily the same way).
    {
      const std::string id = MakeId("510524", "19701010", 55);
      ids_.push_back(id);
      Card c = apply(id, "阿依·木呷", kTownA, At(2019, 8, 1), false, "");
      send(c.application_id(), At(2019, 8, 2));
      Card p = produce(c.application_id(), At(2019, 8, 10));
      issue(c.application_id(), At(2019, 8, 20));
      activate(c.application_id(), At(2019, 8, 21));
      lose(c.application_id(), At(2023, 5, 5), LOSS_KIND_TEMPORARY);
      Row r = row(id, "阿依·木呷", kTownA, c);
      r.f["state"] = "TEMP_LOST";
      r.f["applied_at"] = Rfc(At(2019, 8, 1));
      r.f["sent_at"] = Rfc(At(2019, 8, 2));
      r.f["batch_reference"] = "B-2019-01";
      produced_fields(r, p, At(2019, 8, 10));
      r.f["issued_at"] = Rfc(At(2019, 8, 20));
      r.f["activated_at"] = Rfc(At(2019, 8, 21));
      r.f["lost_at"] = Rfc(At(2023, 5, 5));
      rows_.push_back(r);
    }
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
    // A second run of the same import while this one runs is refused.
    auto twice = importer.Begin(kAdmin, "file-2", IMPORT_FORMAT_JSON_LINES, "");
    EXPECT_EQ(twice.status().code(), absl::StatusCode::kAborted);
    auto status = importer.Status("file-2");
    ASSERT_TRUE(status.ok());
    EXPECT_GT(status->resume_after_line, 0u);
    EXPECT_LT(status->resume_after_line, lines.size());
    EXPECT_FALSE(status->done);
  }
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
  Importer importer(imported_.ctx, &imported_.regions, "510524",
                    imported_.cards->observers());
  auto stored = importer.Rejects("bad");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->size(), 4u);
  // Nothing was written for rejected rows.
  GetPersonRequest req;
  req.set_id_number(MakeId("510524", "19820101", 13));
  EXPECT_EQ(imported_.cards->GetPerson(kAdmin, req).status().code(),
            absl::StatusCode::kNotFound);
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

}  // namespace
}  // namespace ssc::ops
