#pragma once

// A real store (RocksDB in a temp dir, ManualClock) with CardLogic, the
// e-card observer, the signing keys and ECardLogic, plus helpers that drive
// physical cards through their lifecycle.

#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "services/card/card_logic.h"
#include "services/ecard/ecard_logic.h"
#include "services/ecard/ecard_observer.h"
#include "services/ecard/signing_keys.h"
#include "storage/clock.h"
#include "storage/idempotency.h"
#include "storage/key_lock.h"
#include "storage/pii_cipher.h"
#include "storage/rocksdb_engine.h"
#include "tests/card/test_ids.h"

namespace ssc::ecard::testing {

using common::Caller;
using common::Role;

inline constexpr char kTown[] = "510524100";
inline constexpr char kName[] = "张三丰";

class ECardFixture : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  void TearDown() override { Close(); }

  void Close() {
    ecard_.reset();
    keys_.reset();
    card_.reset();
    observer_.reset();
    idem_.reset();
    engine_.reset();
  }

  // Opens (or reopens, like a restart) the store and every logic object.
  void Open() {
    Close();
    storage::RocksDbOptions o;
    o.path = dir_.path() + "/db";
    o.clock = &clock_;
    o.block_cache_bytes = 8 << 20;
    auto e = storage::OpenRocksDbEngine(o);
    ASSERT_TRUE(e.ok()) << e.status();
    engine_ = std::move(*e);
    idem_ = std::make_unique<storage::Idempotency>(engine_.get(), cipher_.get(),
                                                   &clock_);
    ctx_.engine = engine_.get();
    ctx_.locks = &locks_;
    ctx_.idempotency = idem_.get();
    ctx_.cipher = cipher_.get();
    ctx_.clock = &clock_;
    card_ = std::make_unique<card::CardLogic>(ctx_, &regions_);
    observer_ = std::make_unique<ECardObserver>(engine_.get());
    card_->AddObserver(observer_.get());
    auto k = KeyManager::Open(engine_.get(), cipher_.get(), &clock_,
                              options_.code_validity + options_.clock_skew);
    ASSERT_TRUE(k.ok()) << k.status();
    keys_ = std::move(*k);
    ecard_ =
        std::make_unique<ECardLogic>(ctx_, card_.get(), keys_.get(), options_);
  }

  std::string Rid() { return "req-" + std::to_string(++rid_); }

  std::string NewId() {
    return card::testing::MakeId("510524", "19800101", ++person_seq_);
  }

  v1::CardSelector Sel(const std::string& app_id) {
    v1::CardSelector s;
    s.set_application_id(app_id);
    return s;
  }

  // A person with an APPLIED card (not handed over).
  v1::Card ApplyOnly(const std::string& id) {
    v1::ApplyCardRequest r;
    r.set_request_id(Rid());
    r.mutable_person()->set_id_number(id);
    r.mutable_person()->set_name(kName);
    r.mutable_person()->set_region_code(kTown);
    r.set_bank_code("ICBC");
    auto resp = card_->ApplyCard(counter_, r);
    EXPECT_TRUE(resp.ok()) << resp.status();
    return resp.ok() ? resp->card() : v1::Card();
  }

  // Produces and hands over an APPLIED card: returns it ISSUED.
  v1::Card ProduceAndIssue(const std::string& app_id) {
    ++card_seq_;
    v1::SendToProductionRequest s;
    s.set_request_id(Rid());
    s.add_application_ids(app_id);
    auto sent = card_->SendToProduction(bureau_, s);
    EXPECT_TRUE(sent.ok()) << sent.status();
    v1::RecordProductionRequest r;
    r.set_request_id(Rid());
    r.set_application_id(app_id);
    r.set_card_number(absl::StrFormat("X1%07d", card_seq_));
    r.set_identification_code(
        absl::StrFormat("510524D156000005%016X", card_seq_));
    r.set_bank_account("6222021234567890");
    r.set_valid_from("2026-01-01");
    r.set_valid_until("2036-01-01");
    auto p = card_->RecordProduction(bureau_, r);
    EXPECT_TRUE(p.ok()) << p.status();
    v1::IssueCardRequest i;
    i.set_request_id(Rid());
    *i.mutable_card() = Sel(app_id);
    auto issued = card_->IssueCard(counter_, i);
    EXPECT_TRUE(issued.ok()) << issued.status();
    return issued.ok() ? issued->card() : v1::Card();
  }

  // A person holding an ISSUED card; returns the card.
  v1::Card Holder(const std::string& id) {
    v1::Card c = ApplyOnly(id);
    return ProduceAndIssue(c.application_id());
  }

  absl::Status Loss(const std::string& app_id, v1::LossKind kind) {
    v1::ReportLossRequest r;
    r.set_request_id(Rid());
    *r.mutable_card() = Sel(app_id);
    r.set_kind(kind);
    return card_->ReportLoss(counter_, r).status();
  }
  absl::Status Unblock(const std::string& app_id) {
    v1::CancelLossReportRequest r;
    r.set_request_id(Rid());
    *r.mutable_card() = Sel(app_id);
    return card_->CancelLossReport(counter_, r).status();
  }
  absl::Status Activate(const std::string& app_id) {
    v1::ActivateCardRequest r;
    r.set_request_id(Rid());
    *r.mutable_card() = Sel(app_id);
    return card_->ActivateCard(counter_, r).status();
  }
  absl::Status CancelCard(const std::string& app_id) {
    v1::CancelCardRequest r;
    r.set_request_id(Rid());
    *r.mutable_card() = Sel(app_id);
    r.set_reason(v1::CANCEL_REASON_MOVED_OUT);
    return card_->CancelCard(counter_, r).status();
  }
  absl::StatusOr<v1::ApplyReplacementResponse> Replace(
      const std::string& app_id) {
    v1::ApplyReplacementRequest r;
    r.set_request_id(Rid());
    *r.mutable_card() = Sel(app_id);
    r.set_reason(v1::REPLACEMENT_REASON_LOST);
    return card_->ApplyReplacement(counter_, r);
  }

  v1::VerificationEvidence Evidence() {
    v1::VerificationEvidence e;
    e.set_method(v1::VERIFICATION_METHOD_FACE_LIVENESS);
    e.set_reference("liveness-" + std::to_string(++rid_));
    e.mutable_verified_at()->set_seconds(absl::ToUnixSeconds(clock_.Now()));
    return e;
  }

  v1::IssueECardRequest IssueReq(const std::string& id,
                                 const std::string& name = kName) {
    v1::IssueECardRequest r;
    r.set_request_id(Rid());
    r.set_id_number(id);
    r.set_name(name);
    *r.mutable_evidence() = Evidence();
    return r;
  }

  // Issues (or binds) the e-card of `id` in `channel`; returns its id.
  std::string IssueIn(const Caller& channel, const std::string& id) {
    auto r = ecard_->IssueECard(channel, IssueReq(id));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->ecard().ecard_id() : std::string();
  }

  absl::StatusOr<v1::GenerateQrCodeResponse> Qr(
      const Caller& channel, const std::string& ecard_id,
      v1::BusinessType bt = v1::BUSINESS_TYPE_PAYMENT,
      const std::string& family_member = "") {
    v1::GenerateQrCodeRequest r;
    r.set_ecard_id(ecard_id);
    r.set_business_type(bt);
    r.set_family_member_ecard_id(family_member);
    return ecard_->GenerateQrCode(channel, r);
  }

  v1::VerifyQrCodeResponse Verify(
      const std::string& payload,
      v1::BusinessType bt = v1::BUSINESS_TYPE_PAYMENT,
      const Caller* who = nullptr, const std::string& request_id = "") {
    v1::VerifyQrCodeRequest r;
    r.set_payload(payload);
    r.set_business_type(bt);
    r.set_request_id(request_id.empty() ? Rid() : request_id);
    auto resp = ecard_->VerifyQrCode(who != nullptr ? *who : terminal_, r);
    EXPECT_TRUE(resp.ok()) << resp.status();
    return resp.ok() ? *resp : v1::VerifyQrCodeResponse();
  }

  v1::ECard GetECard(const std::string& ecard_id, const Caller* who = nullptr) {
    v1::GetECardRequest r;
    r.set_ecard_id(ecard_id);
    auto resp = ecard_->GetECard(who != nullptr ? *who : counter_, r);
    EXPECT_TRUE(resp.ok()) << resp.status();
    return resp.ok() ? resp->ecard() : v1::ECard();
  }

  card::testing::TempDir dir_;
  storage::ManualClock clock_;  // 2026-01-01 00:00 UTC
  storage::KeyLocks locks_;
  std::unique_ptr<storage::PiiCipher> cipher_ =
      storage::PiiCipher::ForTesting("ecard-test");
  card::RegionTable regions_ = card::RegionTable::Default();
  ECardOptions options_;
  std::unique_ptr<storage::Engine> engine_;
  std::unique_ptr<storage::Idempotency> idem_;
  common::StoreContext ctx_;
  std::unique_ptr<card::CardLogic> card_;
  std::unique_ptr<ECardObserver> observer_;
  std::unique_ptr<KeyManager> keys_;
  std::unique_ptr<ECardLogic> ecard_;
  int rid_ = 0;
  int person_seq_ = 0;
  int card_seq_ = 0;

  Caller counter_{"counter-510524100-01", Role::kCounter, "op-7"};
  Caller bureau_{"card-bureau-01", Role::kCardBureau, ""};
  Caller app_a_{"app-national-01", Role::kMobileChannel, ""};
  Caller app_b_{"bank-icbc-01", Role::kMobileChannel, ""};
  Caller terminal_{"terminal-pharmacy-01", Role::kTerminal, ""};
  Caller admin_{"admin-01", Role::kAdmin, ""};
};

}  // namespace ssc::ecard::testing
