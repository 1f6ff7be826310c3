// End to end: the real sscd (mutual TLS, own data dir) driven by the real
// sscctl through a card's whole life, then the audit chain, authorization,
// field errors, idempotent retries and a clean SIGTERM shutdown.

#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/synthetic_ids.h"
#include "gtest/gtest.h"
#include "ssc/v1/audit.pb.h"
#include "ssc/v1/card.pb.h"
#include "ssc/v1/report.pb.h"
#include "tests/e2e/sscd_harness.h"

namespace ssc::e2e {
namespace {

using ssc::v1::Card;

class LifecycleTest : public testing::Test {
 protected:
  void SetUp() override {
    work_ = MakeTempDir("life");
    ASSERT_FALSE(work_.empty());
    ASSERT_EQ(MakeCerts(work_ + "/tls"), "");
    sscd_ = std::make_unique<Sscd>(work_ + "/data", work_ + "/tls", work_);
    const std::string err = sscd_->Start();
    ASSERT_EQ(err, "") << err;
  }

  // Runs sscctl as `role`, expects exit 0 and parses its JSON into M.
  template <typename M>
  M Ok(const std::string& role, const std::vector<std::string>& args) {
    M m;
    RunResult r = sscd_->Ctl(role, args);
    EXPECT_EQ(r.exit_code, 0) << args[1] << ": " << r.err << r.out;
    std::string error;
    EXPECT_TRUE(ParseJson(r.out, &m, &error)) << args[1] << ": " << error;
    return m;
  }

  // Valid dates for a production result: today (Beijing) + 10 years.
  static std::pair<std::string, std::string> Validity() {
    absl::CivilDay d =
        absl::ToCivilDay(absl::Now(), absl::FixedTimeZone(8 * 3600));
    if (d.month() == 2 && d.day() == 29) d -= 1;
    return {absl::FormatCivilTime(d), absl::FormatCivilTime(absl::CivilDay(
                                          d.year() + 10, d.month(), d.day()))};
  }

  Card Produce(const std::string& app_id, const std::string& card_number,
               uint64_t code) {
    const auto [from, until] = Validity();
    auto sent = Ok<ssc::v1::SendToProductionResponse>(
        "counter", {"card", "send-to-production", "--application-ids", app_id,
                    "--batch-reference", "B-e2e"});
    EXPECT_EQ(sent.cards_size(), 1);
    if (sent.cards_size() == 1) {
      EXPECT_EQ(sent.cards(0).state(), ssc::v1::CARD_STATE_IN_PRODUCTION);
    }
    auto produced = Ok<ssc::v1::RecordProductionResponse>(
        "card_bureau",
        {"card", "record-production", "--application-id", app_id,
         "--card-number", card_number, "--identification-code",
         bench::SyntheticIdentificationCode(code), "--spec-version", "3.00",
         "--bank-account", "6222021234567890123", "--valid-from", from,
         "--valid-until", until});
    EXPECT_EQ(produced.card().state(), ssc::v1::CARD_STATE_PRODUCED);
    EXPECT_EQ(produced.card().card_number(), card_number);
    EXPECT_EQ(produced.card().valid_until(), until);
    auto issued = Ok<ssc::v1::IssueCardResponse>(
        "counter", {"card", "issue", "--card-number", card_number});
    EXPECT_EQ(issued.card().state(), ssc::v1::CARD_STATE_ISSUED);
    return issued.card();
  }

  void TearDown() override {
    sscd_.reset();  // a server still running is killed
    RemoveTempDirUnlessFailed(work_);
  }

  std::string work_;
  std::unique_ptr<Sscd> sscd_;
};

TEST_F(LifecycleTest, FullCardLifeThroughSscctl) {
  const std::string id = bench::SyntheticIdNumber(1234567);

  // 申领.
  auto applied = Ok<ssc::v1::ApplyCardResponse>(
      "counter",
      {"card", "apply", "--id-number", id, "--name", "王小明", "--phone",
       "13912345678", "--address", "叙永镇西城街1号", "--region-code",
       "510524100", "--bank-code", "ICBC", "--photo-ref", "photo/e2e-1"});
  ASSERT_FALSE(HasFailure());
  const std::string first = applied.card().application_id();
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(applied.card().state(), ssc::v1::CARD_STATE_APPLIED);
  EXPECT_EQ(applied.person().region_code(), "510524100");

  // 制卡, 数据回盘, 发卡, 启用.
  Card card = Produce(first, "B00000001", 1);
  ASSERT_FALSE(HasFailure());
  auto active = Ok<ssc::v1::ActivateCardResponse>(
      "counter", {"card", "activate", "--application-id", first});
  EXPECT_EQ(active.card().state(), ssc::v1::CARD_STATE_ACTIVE);

  // 临时挂失, 解挂, 正式挂失.
  auto temp = Ok<ssc::v1::ReportLossResponse>(
      "counter", {"card", "report-loss", "--card-number", "B00000001", "--kind",
                  "temporary"});
  EXPECT_EQ(temp.card().state(), ssc::v1::CARD_STATE_TEMP_LOST);
  EXPECT_TRUE(temp.card().has_temp_loss_expires_at());
  auto unblocked = Ok<ssc::v1::CancelLossReportResponse>(
      "counter", {"card", "cancel-loss", "--card-number", "B00000001"});
  EXPECT_EQ(unblocked.card().state(), ssc::v1::CARD_STATE_ACTIVE);
  auto lost = Ok<ssc::v1::ReportLossResponse>(
      "counter", {"card", "report-loss", "--card-number", "B00000001", "--kind",
                  "formal"});
  EXPECT_EQ(lost.card().state(), ssc::v1::CARD_STATE_LOST);

  // 补卡: the old card is void for ever, a new one is APPLIED.
  auto replaced = Ok<ssc::v1::ApplyReplacementResponse>(
      "counter",
      {"card", "replace", "--card-number", "B00000001", "--reason", "lost"});
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(replaced.old_card().state(), ssc::v1::CARD_STATE_REPLACED);
  EXPECT_EQ(replaced.new_card().state(), ssc::v1::CARD_STATE_APPLIED);
  const std::string second = replaced.new_card().application_id();
  ASSERT_FALSE(second.empty());
  EXPECT_NE(second, first);
  EXPECT_EQ(replaced.old_card().replaced_by(), second);
  EXPECT_EQ(replaced.new_card().replaces(), first);

  // Unblocking is refused once a replacement was applied for.
  RunResult unblock = sscd_->Ctl(
      "counter", {"card", "cancel-loss", "--card-number", "B00000001"});
  EXPECT_EQ(unblock.exit_code, 10 + 9) << unblock.err;  // FAILED_PRECONDITION
  EXPECT_NE(unblock.err.find("FAILED_PRECONDITION"), std::string::npos)
      << unblock.err;

  // The new card is produced and handed over.
  Produce(second, "B00000002", 2);
  ASSERT_FALSE(HasFailure());
  Ok<ssc::v1::ActivateCardResponse>(
      "counter", {"card", "activate", "--application-id", second});

  // 失效名单: the old card number is invalid, the new one is not.
  auto old_check = Ok<ssc::v1::CheckInvalidCardResponse>(
      "terminal", {"card", "check-invalid", "--card-number", "B00000001"});
  EXPECT_TRUE(old_check.known());
  EXPECT_TRUE(old_check.invalid());
  EXPECT_EQ(old_check.state(), ssc::v1::CARD_STATE_REPLACED);
  auto new_check = Ok<ssc::v1::CheckInvalidCardResponse>(
      "terminal", {"card", "check-invalid", "--card-number", "B00000002"});
  EXPECT_TRUE(new_check.known());
  EXPECT_FALSE(new_check.invalid());

  // Contact change and reads.
  auto contact = Ok<ssc::v1::UpdateHolderContactResponse>(
      "counter",
      {"card", "update-contact", "--id-number", id, "--phone", "13800001111"});
  EXPECT_FALSE(contact.person().id_number().empty());
  auto got = Ok<ssc::v1::GetCardResponse>(
      "counter", {"card", "get-card", "--card-number", "B00000002"});
  EXPECT_EQ(got.card().application_id(), second);
  EXPECT_EQ(got.card().state(), ssc::v1::CARD_STATE_ACTIVE);

  // 注销.
  auto cancelled = Ok<ssc::v1::CancelCardResponse>(
      "counter",
      {"card", "cancel", "--application-id", second, "--reason", "death"});
  EXPECT_EQ(cancelled.card().state(), ssc::v1::CARD_STATE_CANCELLED);
  auto cancelled_check = Ok<ssc::v1::CheckInvalidCardResponse>(
      "terminal", {"card", "check-invalid", "--card-number", "B00000002"});
  EXPECT_TRUE(cancelled_check.invalid());

  auto person = Ok<ssc::v1::GetPersonResponse>(
      "counter", {"card", "get-person", "--id-number", id});
  ASSERT_EQ(person.cards_size(), 2);
  EXPECT_EQ(person.cards(0).application_id(), first);
  EXPECT_EQ(person.cards(1).application_id(), second);
  EXPECT_FALSE(person.has_current_card());

  // The event log of the person tells the whole story, in order.
  auto events = Ok<ssc::v1::ListCardEventsResponse>(
      "auditor", {"card", "events", "--id-number", id, "--page-size", "100"});
  std::vector<std::string> types;
  uint64_t last = 0;
  for (const auto& e : events.events()) {
    EXPECT_GT(e.sequence(), last);
    last = e.sequence();
    if (e.type().rfind("card.", 0) == 0) types.push_back(e.type());
  }
  const std::vector<std::string> want = {"card.applied",
                                         "card.sent_to_production",
                                         "card.produced",
                                         "card.issued",
                                         "card.activated",
                                         "card.temp_lost",
                                         "card.loss_cancelled",
                                         "card.lost",
                                         "card.replaced",
                                         "card.applied",
                                         "card.sent_to_production",
                                         "card.produced",
                                         "card.issued",
                                         "card.activated",
                                         "card.cancelled"};
  EXPECT_EQ(types, want);

  // The audit chain is intact and recorded every call.
  RunResult verify = sscd_->Ctl("auditor", {"audit", "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.err << verify.out;
  ssc::v1::VerifyAuditChainResponse chain;
  std::string error;
  ASSERT_TRUE(ParseJson(verify.out, &chain, &error)) << error;
  EXPECT_TRUE(chain.ok());
  // 15 mutations and the refused cancel-loss, at least.
  EXPECT_GE(chain.records(), 16u);
  auto records = Ok<ssc::v1::ListAuditRecordsResponse>(
      "auditor", {"audit", "list", "--page-size", "5"});
  ASSERT_EQ(records.records_size(), 5);
  EXPECT_EQ(records.records(0).sequence(), 1u);
  EXPECT_EQ(records.records(0).operator_id(), "op-e2e-01");
  EXPECT_FALSE(records.page().next_page_token().empty());

  // SIGTERM: drain and exit 0.
  EXPECT_EQ(sscd_->Stop(), 0) << sscd_->log();
}

TEST_F(LifecycleTest, ForbiddenRoleIsDenied) {
  // A terminal may read the invalid-card list but not apply for cards.
  RunResult r = sscd_->Ctl(
      "terminal",
      {"card", "apply", "--id-number", bench::SyntheticIdNumber(77), "--name",
       "李四", "--region-code", "510524100", "--bank-code", "ICBC"});
  EXPECT_EQ(r.exit_code, 10 + 7) << r.err;  // PERMISSION_DENIED
  EXPECT_NE(r.err.find("PERMISSION_DENIED"), std::string::npos) << r.err;
  // --json prints the google.rpc.Status, not a response.
  EXPECT_NE(r.out.find("\"code\":7"), std::string::npos) << r.out;

  // Nor may a counter read the audit chain.
  RunResult audit = sscd_->Ctl("counter", {"audit", "verify"});
  EXPECT_EQ(audit.exit_code, 10 + 7) << audit.err;

  // Nothing was written for the denied apply.
  RunResult person = sscd_->Ctl("counter", {"card", "get-person", "--id-number",
                                            bench::SyntheticIdNumber(77)});
  EXPECT_EQ(person.exit_code, 10 + 5) << person.err;  // NOT_FOUND
  EXPECT_EQ(sscd_->Stop(), 0);
}

TEST_F(LifecycleTest, BadFieldIsNamedWithItsFlag) {
  std::string bad = bench::SyntheticIdNumber(99);
  bad.back() = bad.back() == '0' ? '1' : '0';  // wrong check character
  RunResult r = sscd_->Ctl(
      "counter", {"card", "apply", "--id-number", bad, "--name", "赵五",
                  "--region-code", "510524100", "--bank-code", "ICBC"});
  EXPECT_EQ(r.exit_code, 10 + 3) << r.err;  // INVALID_ARGUMENT
  EXPECT_NE(r.err.find("field: person.id_number (--id-number)"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(sscd_->Stop(), 0);
}

TEST_F(LifecycleTest, RetryWithSameRequestIdHasOneEffect) {
  const std::vector<std::string> apply = {
      "--request-id", "e2e-retry-1", "card",
      "apply",        "--id-number", bench::SyntheticIdNumber(4242),
      "--name",       "钱六",        "--region-code",
      "510524100",    "--bank-code", "ICBC"};
  auto a = Ok<ssc::v1::ApplyCardResponse>("counter", apply);
  auto b = Ok<ssc::v1::ApplyCardResponse>("counter", apply);
  EXPECT_FALSE(a.card().application_id().empty());
  EXPECT_EQ(a.card().application_id(), b.card().application_id());
  auto person = Ok<ssc::v1::GetPersonResponse>(
      "counter",
      {"card", "get-person", "--id-number", bench::SyntheticIdNumber(4242)});
  EXPECT_EQ(person.cards_size(), 1);
  EXPECT_EQ(sscd_->Stop(), 0);
}

// `sscctl report ...` honours --json like every other command (the harness
// always passes it) and names a rejected field by its flag.
TEST_F(LifecycleTest, ReportCommandsPrintJsonAndNameFlags) {
  ASSERT_EQ(sscd_->Stop(), 0);
  sscd_->AddArgs({"--services", "card,audit,report"});
  const std::string err = sscd_->Start();
  ASSERT_EQ(err, "") << err;
  auto indicators = Ok<ssc::v1::GetIndicatorsResponse>(
      "statistician", {"report", "indicators", "--as-of", "2026-01-31"});
  EXPECT_EQ(indicators.figures().as_of(), "2026-01-31");
  auto targets = Ok<ssc::v1::ListTargetsResponse>("statistician",
                                                  {"report", "target", "list"});
  EXPECT_GT(targets.targets_size(), 0);

  RunResult r = sscd_->Ctl("statistician",
                           {"report", "indicators", "--as-of", "2026-13-45"});
  EXPECT_EQ(r.exit_code, 10 + 3) << r.err;  // INVALID_ARGUMENT
  EXPECT_NE(r.err.find("field: as_of (--as-of)"), std::string::npos) << r.err;
  r = sscd_->Ctl("statistician", {"report", "breakdown", "--as-of", "31/01"});
  EXPECT_NE(r.err.find("(--as-of)"), std::string::npos) << r.err;
  EXPECT_EQ(sscd_->Stop(), 0);
}

}  // namespace
}  // namespace ssc::e2e
