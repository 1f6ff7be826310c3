#pragma once

// A scripted card history (five persons: a plain lifecycle; instant
// issuance, formal loss and a replacement with a name change; cancellation
// by death; an application only; a temporary loss), played through a
// HistoryDriver (the card logic directly, or CardService over gRPC), and the
// register rows (deploy/import-format.md, JSON lines) that describe its
// result. Importing those rows must give the same persons, cards, events and
// report counters as the replay.
//
// Not thread-safe: one replay at a time per driver.

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "services/card/id_number.h"
#include "services/common/json.h"
#include "ssc/v1/card.pb.h"
#include "ssc/v1/ecard.pb.h"
#include "tests/ops/ops_test_util.h"

namespace ssc::ops::testing {

inline constexpr char kHistoryCounty[] = "510524";
inline constexpr char kHistoryTownA[] = "510524100";
inline constexpr char kHistoryTownB[] = "510524101";
// A production batch reference with characters that JSON escapes: event
// details must quote it as the live service does.
inline constexpr char kHistoryBatchRef[] = "B-2019-01 \"q\\1\"";

// 09:00 Beijing time (or `hh`) on a day.
inline absl::Time At(int y, int m, int d, int hh = 9) {
  return absl::FromCivil(absl::CivilSecond(y, m, d, hh, 0, 0),
                         card::BeijingTime());
}

inline std::string Rfc(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_sec, t, card::BeijingTime());
}

// One line of the register file: field name -> value.
struct Row {
  std::map<std::string, std::string> f;
  std::string Json() const {
    std::vector<std::string> parts;
    for (const auto& [k, v] : f) {
      if (k == "instant_issuance") {
        parts.push_back(absl::StrCat("\"", k, "\":", v));
      } else {
        parts.push_back(absl::StrCat("\"", k, "\":", common::JsonQuote(v)));
      }
    }
    return absl::StrCat("{", absl::StrJoin(parts, ","), "}");
  }
};

// Carries out the operations of the history. Each call reports its own
// failure (gtest EXPECT/ADD_FAILURE) and then returns an empty card.
class HistoryDriver {
 public:
  virtual ~HistoryDriver() = default;
  // Every following operation happens at `t`.
  virtual void SetTime(absl::Time t) = 0;
  virtual ssc::v1::Card Apply(const ssc::v1::ApplyCardRequest& req) = 0;
  virtual void Send(const ssc::v1::SendToProductionRequest& req) = 0;
  // The card as recorded (the bureau's answer).
  virtual ssc::v1::Card Produce(
      const ssc::v1::RecordProductionRequest& req) = 0;
  virtual void Issue(const ssc::v1::IssueCardRequest& req) = 0;
  virtual void Activate(const ssc::v1::ActivateCardRequest& req) = 0;
  virtual void Lose(const ssc::v1::ReportLossRequest& req) = 0;
  // The new card.
  virtual ssc::v1::Card Replace(
      const ssc::v1::ApplyReplacementRequest& req) = 0;
  virtual void Cancel(const ssc::v1::CancelCardRequest& req) = 0;
  // Issues the e-card (or binds one more channel) in `channel`; only called
  // when the replay asks for e-cards.
  virtual void BindECard(const ssc::v1::IssueECardRequest& req,
                         const std::string& channel) {
    (void)req;
    (void)channel;
    ADD_FAILURE() << "this driver has no e-cards";
  }
};

struct ReplayedHistory {
  // The register rows, in file order.
  std::vector<Row> rows;
  // The persons' id numbers.
  std::vector<std::string> ids;

  std::vector<std::string> Lines() const {
    std::vector<std::string> out;
    for (const Row& r : rows) out.push_back(r.Json());
    return out;
  }
};

struct ReplayOptions {
  // Request ids are <prefix><n>.
  std::string request_prefix = "r";
  // Also bind e-cards (persons 1, 2, 3 and 5) in this channel ("": none).
  std::string ecard_channel;
};

// Plays the history through `d` and returns the rows that describe it.
inline ReplayedHistory ReplayHistory(HistoryDriver& d,
                                     const ReplayOptions& options = {}) {
  using namespace ssc::v1;  // NOLINT: request and response types
  const char* kTownA = kHistoryTownA;
  const char* kTownB = kHistoryTownB;
  ReplayedHistory out;
  int counter = 0;
  auto rid = [&] { return absl::StrCat(options.request_prefix, ++counter); };
  auto apply = [&](const std::string& id, const std::string& name,
                   const std::string& town, absl::Time t, bool instant,
                   const std::string& account) {
    d.SetTime(t);
    ApplyCardRequest req;
    req.set_request_id(rid());
    req.mutable_person()->set_id_number(id);
    req.mutable_person()->set_name(name);
    req.mutable_person()->set_phone("13800138000");
    req.mutable_person()->set_address("叙永镇 1号");
    req.mutable_person()->set_region_code(town);
    req.set_bank_code("ABC");
    req.set_photo_ref("photo/1");
    req.set_instant_issuance(instant);
    if (instant) req.set_bank_account(account);
    return d.Apply(req);
  };
  auto send = [&](const std::string& app, absl::Time t) {
    d.SetTime(t);
    SendToProductionRequest req;
    req.set_request_id(rid());
    req.add_application_ids(app);
    req.set_batch_reference(kHistoryBatchRef);
    d.Send(req);
  };
  int serial = 100;
  auto produce = [&](const std::string& app, absl::Time t) {
    d.SetTime(t);
    RecordProductionRequest req;
    req.set_request_id(rid());
    req.set_application_id(app);
    ++serial;
    req.set_card_number(absl::StrCat("B00000", serial));
    req.set_identification_code(
        absl::StrCat("510524D156000005", "00000000000000", serial % 100 + 10));
    req.set_bank_account(absl::StrCat("62284800000000", serial));
    const std::string from =
        card::FormatDate(absl::ToCivilDay(t, card::BeijingTime()));
    req.set_valid_from(from);
    auto day = card::ParseDate("d", from);
    req.set_valid_until(card::FormatDate(
        absl::CivilDay(day->year() + 10, day->month(), day->day())));
    Card c = d.Produce(req);
    c.set_bank_account(req.bank_account());  // the bureau sees it masked
    return c;
  };
  auto sel = [](const std::string& app) {
    CardSelector s;
    s.set_application_id(app);
    return s;
  };
  auto issue = [&](const std::string& app, absl::Time t) {
    d.SetTime(t);
    IssueCardRequest req;
    req.set_request_id(rid());
    *req.mutable_card() = sel(app);
    d.Issue(req);
  };
  auto activate = [&](const std::string& app, absl::Time t) {
    d.SetTime(t);
    ActivateCardRequest req;
    req.set_request_id(rid());
    *req.mutable_card() = sel(app);
    d.Activate(req);
  };
  auto lose = [&](const std::string& app, absl::Time t, LossKind kind) {
    d.SetTime(t);
    ReportLossRequest req;
    req.set_request_id(rid());
    *req.mutable_card() = sel(app);
    req.set_kind(kind);
    d.Lose(req);
  };
  auto replace = [&](const std::string& app, absl::Time t,
                     ReplacementReason reason, const std::string& new_name) {
    d.SetTime(t);
    ApplyReplacementRequest req;
    req.set_request_id(rid());
    *req.mutable_card() = sel(app);
    req.set_reason(reason);
    req.set_new_name(new_name);
    return d.Replace(req);
  };
  auto cancel = [&](const std::string& app, absl::Time t) {
    d.SetTime(t);
    CancelCardRequest req;
    req.set_request_id(rid());
    *req.mutable_card() = sel(app);
    req.set_reason(CANCEL_REASON_DEATH);
    d.Cancel(req);
  };
  // The e-card rows of the current person, written after its card rows.
  std::vector<Row> ecard_rows;
  auto bind = [&](const std::string& id, const std::string& name,
                  absl::Time t) {
    if (options.ecard_channel.empty()) return;
    d.SetTime(t);
    IssueECardRequest req;
    req.set_request_id(rid());
    req.set_id_number(id);
    req.set_name(name);
    req.mutable_evidence()->set_method(VERIFICATION_METHOD_FACE_LIVENESS);
    const std::string reference = absl::StrCat("liveness-", counter);
    req.mutable_evidence()->set_reference(reference);
    req.mutable_evidence()->mutable_verified_at()->set_seconds(
        absl::ToUnixSeconds(t));
    d.BindECard(req, options.ecard_channel);
    Row r;
    r.f["kind"] = "ecard";
    r.f["id_number"] = id;
    r.f["channel"] = options.ecard_channel;
    r.f["bound_at"] = Rfc(t);
    r.f["verified_at"] = Rfc(t);
    r.f["method"] = "FACE_LIVENESS";
    r.f["reference"] = reference;
    ecard_rows.push_back(r);
  };
  auto flush_ecards = [&] {
    for (Row& r : ecard_rows) out.rows.push_back(std::move(r));
    ecard_rows.clear();
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

  // 1. Applied, produced, issued, activated; e-card a month later.
  {
    const std::string id = MakeId("510524", "19800101", 11);
    out.ids.push_back(id);
    Card c = apply(id, "张三", kTownA, At(2019, 3, 1), false, "");
    send(c.application_id(), At(2019, 3, 2));
    Card p = produce(c.application_id(), At(2019, 3, 20));
    issue(c.application_id(), At(2019, 4, 1));
    activate(c.application_id(), At(2019, 4, 2));
    bind(id, "张三", At(2019, 5, 1));
    Row r = row(id, "张三", kTownA, c);
    r.f["state"] = "ACTIVE";
    r.f["applied_at"] = Rfc(At(2019, 3, 1));
    r.f["sent_at"] = Rfc(At(2019, 3, 2));
    r.f["batch_reference"] = kHistoryBatchRef;
    produced_fields(r, p, At(2019, 3, 20));
    r.f["issued_at"] = Rfc(At(2019, 4, 1));
    r.f["activated_at"] = Rfc(At(2019, 4, 2));
    out.rows.push_back(r);
    flush_ecards();
  }
  // 2. Instant issuance (e-card on it), formal loss, replacement with a
  //    name change, the replacement produced and issued.
  {
    const std::string id = MakeId("510524", "19900215", 22);
    out.ids.push_back(id);
    Card c =
        apply(id, "李四", kTownB, At(2019, 5, 10), true, "6228480000000022");
    activate(c.application_id(), At(2019, 5, 11));
    bind(id, "李四", At(2019, 6, 1));
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
    out.rows.push_back(r);
    Row r2 = row(id, "李思", kTownB, n);
    r2.f["state"] = "ISSUED";
    r2.f["applied_at"] = Rfc(At(2020, 1, 6));
    r2.f["replaces"] = c.application_id();
    r2.f["replacement_reason"] = "DATA_CHANGE";
    r2.f["sent_at"] = Rfc(At(2020, 1, 7));
    r2.f["batch_reference"] = kHistoryBatchRef;
    produced_fields(r2, p, At(2020, 1, 20));
    r2.f["issued_at"] = Rfc(At(2020, 2, 1));
    out.rows.push_back(r2);
    flush_ecards();
  }
  // 3. Issued (e-card on the issued card), then cancelled (death).
  {
    const std::string id = MakeId("510524", "19450607", 33);
    out.ids.push_back(id);
    Card c = apply(id, "王五", kTownA, At(2019, 6, 1), false, "");
    send(c.application_id(), At(2019, 6, 2));
    Card p = produce(c.application_id(), At(2019, 6, 15));
    issue(c.application_id(), At(2019, 7, 1));
    bind(id, "王五", At(2020, 3, 1));
    cancel(c.application_id(), At(2021, 3, 3));
    Row r = row(id, "王五", kTownA, c);
    r.f["state"] = "CANCELLED";
    r.f["cancel_reason"] = "DEATH";
    r.f["applied_at"] = Rfc(At(2019, 6, 1));
    r.f["sent_at"] = Rfc(At(2019, 6, 2));
    r.f["batch_reference"] = kHistoryBatchRef;
    produced_fields(r, p, At(2019, 6, 15));
    r.f["issued_at"] = Rfc(At(2019, 7, 1));
    r.f["closed_at"] = Rfc(At(2021, 3, 3));
    out.rows.push_back(r);
    flush_ecards();
  }
  // 4. Applied only.
  {
    const std::string id = MakeId("510524", "20000909", 44);
    out.ids.push_back(id);
    Card c = apply(id, "赵六", kTownB, At(2022, 2, 2), false, "");
    Row r = row(id, "赵六", kTownB, c);
    r.f["state"] = "APPLIED";
    r.f["applied_at"] = Rfc(At(2022, 2, 2));
    out.rows.push_back(r);
  }
  // 5. Active (e-card), then a temporary loss that lapsed long before the
  //    import; both sides read the lapse lazily the same way.
  {
    const std::string id = MakeId("510524", "19701010", 55);
    out.ids.push_back(id);
    Card c = apply(id, "阿依·木呷", kTownA, At(2019, 8, 1), false, "");
    send(c.application_id(), At(2019, 8, 2));
    Card p = produce(c.application_id(), At(2019, 8, 10));
    issue(c.application_id(), At(2019, 8, 20));
    activate(c.application_id(), At(2019, 8, 21));
    bind(id, "阿依·木呷", At(2023, 1, 1));
    lose(c.application_id(), At(2023, 5, 5), LOSS_KIND_TEMPORARY);
    Row r = row(id, "阿依·木呷", kTownA, c);
    r.f["state"] = "TEMP_LOST";
    r.f["applied_at"] = Rfc(At(2019, 8, 1));
    r.f["sent_at"] = Rfc(At(2019, 8, 2));
    r.f["batch_reference"] = kHistoryBatchRef;
    produced_fields(r, p, At(2019, 8, 10));
    r.f["issued_at"] = Rfc(At(2019, 8, 20));
    r.f["activated_at"] = Rfc(At(2019, 8, 21));
    r.f["lost_at"] = Rfc(At(2023, 5, 5));
    out.rows.push_back(r);
    flush_ecards();
  }
  return out;
}

}  // namespace ssc::ops::testing
