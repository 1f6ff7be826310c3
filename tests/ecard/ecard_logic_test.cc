#include "services/ecard/ecard_logic.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "gtest/gtest.h"
#include "services/common/errors.h"
#include "services/common/metrics.h"
#include "services/ecard/ecard_store.h"
#include "services/ecard/qr_token.h"
#include "storage/audit.h"
#include "storage/key_codec.h"
#include "tests/ecard/ecard_fixture.h"

namespace ssc::ecard {
namespace {

using testing::ECardFixture;
using testing::kName;
using namespace ssc::v1;  // NOLINT: request and response types

class ECardLogicTest : public ECardFixture {};

TEST_F(ECardLogicTest, IssueNeedsAHandedOverCard) {
  const std::string id = NewId();
  v1::Card c = ApplyOnly(id);
  auto refused = ecard_->IssueECard(app_a_, IssueReq(id));
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition)
      << refused.status();
  EXPECT_EQ(common::StateOf(refused.status()), "APPLIED");

  ProduceAndIssue(c.application_id());
  auto ok = ecard_->IssueECard(app_a_, IssueReq(id));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(ok->newly_issued());
  EXPECT_EQ(ok->ecard().status(), E_CARD_STATUS_ACTIVE);
  EXPECT_EQ(ok->ecard().card_application_id(), c.application_id());
  EXPECT_EQ(ok->binding().channel(), app_a_.identity);
  EXPECT_TRUE(ok->binding().active());
  // A mobile channel gets personal data masked.
  EXPECT_TRUE(ok->ecard().masked());
  EXPECT_EQ(ok->ecard().holder_id_number(), storage::MaskIdNumber(id));
  EXPECT_EQ(ok->ecard().holder_name(), storage::MaskName(kName));
}

TEST_F(ECardLogicTest, UnknownPersonAndCancelledCardAreRefused) {
  auto unknown = ecard_->IssueECard(app_a_, IssueReq(NewId()));
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);

  const std::string id = NewId();
  v1::Card c = Holder(id);
  ASSERT_TRUE(CancelCard(c.application_id()).ok());
  auto refused = ecard_->IssueECard(app_a_, IssueReq(id));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition)
      << refused.status();
}

TEST_F(ECardLogicTest, BadInputNamesTheFieldAndWritesNothingButAudit) {
  const std::string id = NewId();
  Holder(id);
  const uint64_t events = engine_->Stats().last_event_sequence;
  const uint64_t audits = engine_->Stats().last_audit_sequence;

  auto bad_id = IssueReq("51052419800101001");  // 17 characters
  EXPECT_EQ(common::FieldOf(ecard_->IssueECard(app_a_, bad_id).status()),
            "id_number");
  // A channel's wrong name answers as an unknown person does: the register
  // is no oracle of who is in it.
  auto wrong_name = ecard_->IssueECard(app_a_, IssueReq(id, "李四"));
  EXPECT_EQ(wrong_name.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(wrong_name.status().message(),
            "person with this id_number and name not found");
  auto no_method = IssueReq(id);
  no_method.mutable_evidence()->set_method(VERIFICATION_METHOD_UNSPECIFIED);
  EXPECT_EQ(common::FieldOf(ecard_->IssueECard(app_a_, no_method).status()),
            "evidence.method");
  auto stale = IssueReq(id);
  stale.mutable_evidence()->mutable_verified_at()->set_seconds(
      absl::ToUnixSeconds(clock_.Now() - absl::Hours(2)));
  EXPECT_EQ(common::FieldOf(ecard_->IssueECard(app_a_, stale).status()),
            "evidence.verified_at");
  auto no_ref = IssueReq(id);
  no_ref.mutable_evidence()->set_reference("");
  EXPECT_EQ(common::FieldOf(ecard_->IssueECard(app_a_, no_ref).status()),
            "evidence.reference");

  EXPECT_EQ(engine_->Stats().last_event_sequence, events);
  EXPECT_EQ(engine_->Stats().last_audit_sequence, audits + 5);
}

TEST_F(ECardLogicTest, SecondChannelBindsTheSameECardAndRetriesAreIdempotent) {
  const std::string id = NewId();
  Holder(id);
  auto req = IssueReq(id);
  auto first = ecard_->IssueECard(app_a_, req);
  ASSERT_TRUE(first.ok()) << first.status();
  const uint64_t events = engine_->Stats().last_event_sequence;
  auto retry = ecard_->IssueECard(app_a_, req);
  ASSERT_TRUE(retry.ok());
  EXPECT_EQ(retry->SerializeAsString(), first->SerializeAsString());
  EXPECT_EQ(engine_->Stats().last_event_sequence, events);

  auto second = ecard_->IssueECard(app_b_, IssueReq(id));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(second->newly_issued());
  EXPECT_EQ(second->ecard().ecard_id(), first->ecard().ecard_id());
  EXPECT_EQ(second->ecard().active_channel_count(), 2);

  // Same id, different request.
  auto changed = req;
  changed.set_name("李四");
  EXPECT_EQ(ecard_->IssueECard(app_a_, changed).status().code(),
            absl::StatusCode::kAlreadyExists);

  ListChannelBindingsRequest lr;
  lr.set_ecard_id(first->ecard().ecard_id());
  auto all = ecard_->ListChannelBindings(counter_, lr);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->bindings_size(), 2);
  auto own = ecard_->ListChannelBindings(app_b_, lr);
  ASSERT_TRUE(own.ok());
  ASSERT_EQ(own->bindings_size(), 1);
  EXPECT_EQ(own->bindings(0).channel(), app_b_.identity);
}

TEST_F(ECardLogicTest, RolesSeeWhatTheyMay) {
  const std::string id = NewId();
  Holder(id);
  const std::string e = IssueIn(app_a_, id);

  // Counter and admin in clear, by e-card id or ID number.
  v1::ECard clear = GetECard(e, &counter_);
  EXPECT_FALSE(clear.masked());
  EXPECT_EQ(clear.holder_id_number(), id);
  EXPECT_EQ(clear.holder_name(), kName);
  GetECardRequest by_id;
  by_id.set_id_number(id);
  auto admin = ecard_->GetECard(admin_, by_id);
  ASSERT_TRUE(admin.ok());
  EXPECT_EQ(admin->ecard().ecard_id(), e);

  // A channel where the holder is not bound sees nothing, not even that
  // the e-card exists (tests/ecard/channel_scope_test.cc: every method).
  GetECardRequest r;
  r.set_ecard_id(e);
  EXPECT_EQ(ecard_->GetECard(app_b_, r).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Qr(app_b_, e).status().code(), absl::StatusCode::kNotFound);

  // Terminal: VALID with masked identity; counter: in clear.
  auto qr = Qr(app_a_, e);
  ASSERT_TRUE(qr.ok()) << qr.status();
  auto v = Verify(qr->payload());
  EXPECT_EQ(v.outcome(), QR_VERIFY_OUTCOME_VALID);
  EXPECT_TRUE(v.masked());
  EXPECT_EQ(v.holder_id_number(), storage::MaskIdNumber(id));
  EXPECT_NE(v.holder_id_number(), id);
  auto qr2 = Qr(app_a_, e);
  ASSERT_TRUE(qr2.ok());
  auto vc = Verify(qr2->payload(), BUSINESS_TYPE_PAYMENT, &counter_);
  EXPECT_EQ(vc.outcome(), QR_VERIFY_OUTCOME_VALID);
  EXPECT_FALSE(vc.masked());
  EXPECT_EQ(vc.holder_id_number(), id);
}

TEST_F(ECardLogicTest, UnbindLeavesOneChannel) {
  const std::string id = NewId();
  Holder(id);
  const std::string e = IssueIn(app_a_, id);
  IssueIn(app_b_, id);
  UnbindChannelRequest u;
  u.set_request_id(Rid());
  u.set_ecard_id(e);
  u.set_channel(app_b_.identity);
  EXPECT_EQ(ecard_->UnbindChannel(app_a_, u).status().code(),
            absl::StatusCode::kPermissionDenied);  // not its own channel
  u.set_request_id(Rid());
  u.clear_channel();
  auto left = ecard_->UnbindChannel(app_a_, u);
  ASSERT_TRUE(left.ok()) << left.status();
  EXPECT_FALSE(left->binding().active());
  EXPECT_EQ(Qr(app_a_, e).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Qr(app_b_, e).ok());
  EXPECT_EQ(GetECard(e).active_channel_count(), 1);
  // Binding again in the channel is an ordinary IssueECard.
  EXPECT_EQ(IssueIn(app_a_, id), e);
}

TEST_F(ECardLogicTest, FamilyOfEightAndNoMore) {
  const std::string holder_id = NewId();
  Holder(holder_id);
  const std::string e = IssueIn(app_a_, holder_id);

  auto add = [&](const std::string& member_id) {
    AddFamilyMemberRequest r;
    r.set_request_id(Rid());
    r.set_ecard_id(e);
    r.set_member_id_number(member_id);
    r.set_member_name(kName);
    r.set_relationship(FAMILY_RELATIONSHIP_CHILD);
    *r.mutable_evidence() = Evidence();
    return ecard_->AddFamilyMember(app_a_, r);
  };
  // A member needs a handed-over card too.
  const std::string no_card = NewId();
  ApplyOnly(no_card);
  EXPECT_EQ(add(no_card).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(common::FieldOf(add(holder_id).status()), "member_id_number");

  std::vector<std::string> members;
  for (int i = 0; i < 8; ++i) {
    const std::string m = NewId();
    Holder(m);
    auto r = add(m);
    ASSERT_TRUE(r.ok()) << i << ": " << r.status();
    EXPECT_EQ(r->member_count(), i + 1);
    members.push_back(r->member().ecard_id());
  }
  EXPECT_EQ(add(NewId()).status().code(),
            absl::StatusCode::kNotFound);  // unknown person
  const std::string ninth = NewId();
  Holder(ninth);
  auto refused = add(ninth);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("at most 8"), std::string::npos)
      << refused.status();

  ListFamilyMembersRequest l;
  l.set_ecard_id(e);
  auto list = ecard_->ListFamilyMembers(app_a_, l);
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->members_size(), 8);
  EXPECT_EQ(list->members(0).id_number().find("********"), 6u);

  // The holder shows a member's code in the channel.
  auto qr = Qr(app_a_, e, BUSINESS_TYPE_MEDICAL_OUT_OF_REGION, members[3]);
  ASSERT_TRUE(qr.ok()) << qr.status();
  auto v = Verify(qr->payload(), BUSINESS_TYPE_MEDICAL_OUT_OF_REGION);
  EXPECT_EQ(v.outcome(), QR_VERIFY_OUTCOME_VALID);
  EXPECT_EQ(v.ecard_id(), members[3]);
  // Not for someone else's family.
  const std::string stranger_id = NewId();
  Holder(stranger_id);
  const std::string stranger = IssueIn(app_b_, stranger_id);
  EXPECT_EQ(Qr(app_a_, e, BUSINESS_TYPE_PAYMENT, stranger).status().code(),
            absl::StatusCode::kPermissionDenied);

  RemoveFamilyMemberRequest rm;
  rm.set_request_id(Rid());
  rm.set_ecard_id(e);
  rm.set_member_ecard_id(members[0]);
  auto removed = ecard_->RemoveFamilyMember(app_a_, rm);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(removed->member_count(), 7);
  EXPECT_TRUE(add(ninth).ok());
}

TEST_F(ECardLogicTest, QrCodeIsCompactAndVerifiesOnce) {
  const std::string id = NewId();
  Holder(id);
  const std::string e = IssueIn(app_a_, id);
  for (BusinessType bt :
       {BUSINESS_TYPE_ENQUIRY, BUSINESS_TYPE_PAYMENT, BUSINESS_TYPE_OTHER,
        BUSINESS_TYPE_MEDICAL_OUT_OF_REGION}) {
    auto qr = Qr(app_a_, e, bt);
    ASSERT_TRUE(qr.ok()) << qr.status();
    EXPECT_LE(qr->payload().size(), 256u);
    for (char c : qr->payload()) {
      EXPECT_TRUE(absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
                  c == '-' || c == '_' || c == '.')
          << c;
    }
    EXPECT_EQ(qr->expires_at().seconds(),
              absl::ToUnixSeconds(clock_.Now()) + 60);
    EXPECT_EQ(Verify(qr->payload(), bt).outcome(), QR_VERIFY_OUTCOME_VALID);
    EXPECT_EQ(Verify(qr->payload(), bt).outcome(), QR_VERIFY_OUTCOME_REPLAYED);
  }
  EXPECT_EQ(Qr(app_a_, e, BUSINESS_TYPE_UNSPECIFIED).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ECardLogicTest, VerificationOutcomesAreCountedInMetrics) {
  const std::string id = NewId();
  Holder(id);
  const std::string e = IssueIn(app_a_, id);
  auto qr = Qr(app_a_, e);
  ASSERT_TRUE(qr.ok()) << qr.status();
  auto count = [](const std::string& outcome) {
    return common::Metrics()
        .GetCounter("ssc_qr_verifications_total",
                    "QR code verifications by outcome.", {{"outcome", outcome}})
        ->value();
  };
  const uint64_t valid = count("QR_VERIFY_OUTCOME_VALID");
  const uint64_t replayed = count("QR_VERIFY_OUTCOME_REPLAYED");
  EXPECT_EQ(Verify(qr->payload()).outcome(), QR_VERIFY_OUTCOME_VALID);
  EXPECT_EQ(Verify(qr->payload()).outcome(), QR_VERIFY_OUTCOME_REPLAYED);
  EXPECT_EQ(count("QR_VERIFY_OUTCOME_VALID"), valid + 1);
  EXPECT_EQ(count("QR_VERIFY_OUTCOME_REPLAYED"), replayed + 1);
  EXPECT_NE(
      common::Metrics().Render().find(
          "ssc_qr_verifications_total{outcome=\"QR_VERIFY_OUTCOME_VALID\"}"),
      std::string::npos);
}

TEST_F(ECardLogicTest, ReplayIsRefusedAfterEngineReopen) {
  const std::string id = NewId();
  Holder(id);
  const std::string e = IssueIn(app_a_, id);
  auto qr = Qr(app_a_, e);
  ASSERT_TRUE(qr.ok());
  EXPECT_EQ(Verify(qr->payload()).outcome(), QR_VERIFY_OUTCOME_VALID);
  Open();  // restart: new engine, keys loaded from the store
  EXPECT_EQ(Verify(qr->payload()).outcome(), QR_VERIFY_OUTCOME_REPLAYED);
  // Codes signed before the restart by the same (stored) key still verify.
  auto qr2 = Qr(app_a_, e);
  ASSERT_TRUE(qr2.ok());
  EXPECT_EQ(qr2->key_id(), qr->key_id());
  EXPECT_EQ(Verify(qr2->payload()).outcome(), QR_VERIFY_OUTCOME_VALID);
}

TEST_F(ECardLogicTest, RetryWithRequestIdGetsTheOriginalAnswer) {
  const std::string id = NewId();
  Holder(id);
  const std::string e = IssueIn(app_a_, id);
  auto qr = Qr(app_a_, e);
  ASSERT_TRUE(qr.ok());
  auto first = Verify(qr->payload(), BUSINESS_TYPE_PAYMENT, nullptr, "scan-1");
  EXPECT_EQ(first.outcome(), QR_VERIFY_OUTCOME_VALID);
  auto retry = Verify(qr->payload(), BUSINESS_TYPE_PAYMENT, nullptr, "scan-1");
  EXPECT_EQ(retry.SerializeAsString(), first.SerializeAsString());
  EXPECT_EQ(
      Verify(qr->payload(), BUSINESS_TYPE_PAYMENT, nullptr, "scan-2").outcome(),
      QR_VERIFY_OUTCOME_REPLAYED);
}

TEST_F(ECardLogicTest, TimesAndBusinessType) {
  const std::string id = NewId();
  Holder(id);
  const std::string e = IssueIn(app_a_, id);

  auto qr = Qr(app_a_, e, BUSINESS_TYPE_ENQUIRY);
  ASSERT_TRUE(qr.ok());
  EXPECT_EQ(Verify(qr->payload(), BUSINESS_TYPE_PAYMENT).outcome(),
            QR_VERIFY_OUTCOME_WRONG_BUSINESS);
  // A wrong-business scan does not use the code up.
  clock_.Advance(absl::Seconds(59));
  EXPECT_EQ(Verify(qr->payload(), BUSINESS_TYPE_ENQUIRY).outcome(),
            QR_VERIFY_OUTCOME_VALID);

  auto late = Qr(app_a_, e);
  ASSERT_TRUE(late.ok());
  clock_.Advance(absl::Seconds(60));
  EXPECT_EQ(Verify(late->payload()).outcome(), QR_VERIFY_OUTCOME_EXPIRED);

  auto early = Qr(app_a_, e);
  ASSERT_TRUE(early.ok());
  clock_.Advance(-absl::Seconds(6));  // beyond the 5 s skew allowance
  EXPECT_EQ(Verify(early->payload()).outcome(),
            QR_VERIFY_OUTCOME_NOT_YET_VALID);
  clock_.Advance(absl::Seconds(2));  // within it
  EXPECT_EQ(Verify(early->payload()).outcome(), QR_VERIFY_OUTCOME_VALID);
}

TEST_F(ECardLogicTest, ForgedTamperedTruncatedAndUnknownKey) {
  const std::string id = NewId();
  Holder(id);
  const std::string e = IssueIn(app_a_, id);
  auto qr = Qr(app_a_, e);
  ASSERT_TRUE(qr.ok());
  const std::string token = qr->payload();
  const absl::Time now = clock_.Now();

  // Forged: same claims and key id, signed by another key.
  auto other = EcKey::Generate();
  ASSERT_TRUE(other.ok());
  const size_t dot2 = token.rfind('.');
  auto split = Split(token);
  ASSERT_TRUE(split.has_value());
  auto claims = ParseClaims(split->payload_json);
  ASSERT_TRUE(claims.has_value());
  auto forged = EncodeToken(qr->key_id(), *claims, **other);
  ASSERT_TRUE(forged.ok());
  EXPECT_EQ(forged->substr(0, dot2), token.substr(0, dot2));
  EXPECT_EQ(ecard_->CheckToken(*forged, now).outcome,
            QR_VERIFY_OUTCOME_BAD_SIGNATURE);
  EXPECT_EQ(Verify(*forged).outcome(), QR_VERIFY_OUTCOME_BAD_SIGNATURE);

  // Unknown key id.
  auto unknown = EncodeToken("77", *claims, **other);
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(Verify(*unknown).outcome(), QR_VERIFY_OUTCOME_UNKNOWN_KEY);

  // Every byte position, changed to another token character.
  const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
  for (size_t i = 0; i < token.size(); ++i) {
    for (char repl : {alphabet[(alphabet.find(token[i]) + 1) % 65],
                      alphabet[(alphabet.find(token[i]) + 33) % 65], '!'}) {
      std::string t = token;
      t[i] = repl;
      const auto o = ecard_->CheckToken(t, now).outcome;
      EXPECT_TRUE(o == QR_VERIFY_OUTCOME_MALFORMED ||
                  o == QR_VERIFY_OUTCOME_BAD_SIGNATURE ||
                  o == QR_VERIFY_OUTCOME_UNKNOWN_KEY)
          << "position " << i << " -> " << repl << ": "
          << QrVerifyOutcome_Name(o);
    }
  }
  // Every truncation, and extensions.
  for (size_t n = 0; n < token.size(); ++n) {
    const auto o = ecard_->CheckToken(token.substr(0, n), now).outcome;
    EXPECT_TRUE(o == QR_VERIFY_OUTCOME_MALFORMED ||
                o == QR_VERIFY_OUTCOME_BAD_SIGNATURE)
        << n;
  }
  EXPECT_EQ(ecard_->CheckToken(token + "A", now).outcome,
            QR_VERIFY_OUTCOME_MALFORMED);
  EXPECT_EQ(ecard_->CheckToken(std::string(100000, 'A'), now).outcome,
            QR_VERIFY_OUTCOME_MALFORMED);
  EXPECT_EQ(Verify(std::string(1 << 20, '.')).outcome(),
            QR_VERIFY_OUTCOME_MALFORMED);
  // The untouched token still verifies: the loops above used none of it up.
  EXPECT_EQ(Verify(token).outcome(), QR_VERIFY_OUTCOME_VALID);
}

TEST_F(ECardLogicTest, HeaderAlgorithmIsNeverTakenFromTheToken) {
  const std::string id = NewId();
  Holder(id);
  const std::string e = IssueIn(app_a_, id);
  auto qr = Qr(app_a_, e);
  ASSERT_TRUE(qr.ok());
  const std::string& token = qr->payload();
  const size_t dot1 = token.find('.');
  const size_t dot2 = token.rfind('.');
  const std::string body = token.substr(dot1, dot2 - dot1);  // ".payload"
  for (const std::string header :
       {R"({"alg":"none","kid":"1"})", R"({"alg":"HS256","kid":"1"})",
        R"({"alg":"ES384","kid":"1"})", R"({"kid":"1"})",
        R"({"alg":"ES256","kid":"1","crit":"x"})",
        R"({"alg":"ES256","kid":"1","alg":"ES256"})"}) {
    std::string t = Base64UrlEncode(header) + body + token.substr(dot2);
    EXPECT_EQ(Verify(t).outcome(), QR_VERIFY_OUTCOME_MALFORMED) << header;
    // alg "none" with an empty signature.
    t = Base64UrlEncode(header) + body + ".";
    EXPECT_EQ(Verify(t).outcome(), QR_VERIFY_OUTCOME_MALFORMED) << header;
  }
}

TEST_F(ECardLogicTest, EveryVerificationIsAuditedWithTheTerminal) {
  const std::string id = NewId();
  Holder(id);
  const std::string e = IssueIn(app_a_, id);
  auto qr = Qr(app_a_, e);
  ASSERT_TRUE(qr.ok());
  const uint64_t before = engine_->Stats().last_audit_sequence;
  Verify(qr->payload());
  Verify(qr->payload());
  Verify("garbage");
  auto audits = storage::ReadAudit(*engine_, before + 1, 10);
  ASSERT_TRUE(audits.ok()) << audits.status();
  ASSERT_EQ(audits->size(), 3u);
  const char* outcomes[] = {"outcome=QR_VERIFY_OUTCOME_VALID",
                            "outcome=QR_VERIFY_OUTCOME_REPLAYED",
                            "outcome=QR_VERIFY_OUTCOME_MALFORMED"};
  for (int i = 0; i < 3; ++i) {
    const auto& a = (*audits)[i].input;
    EXPECT_EQ(a.caller, terminal_.identity);
    EXPECT_EQ(a.role, "terminal");
    EXPECT_EQ(a.rpc, "ssc.v1.ECardService/VerifyQrCode");
    EXPECT_NE(a.message.find(outcomes[i]), std::string::npos) << a.message;
  }
  EXPECT_EQ((*audits)[0].input.target, "ecard " + e);
  auto chain = storage::VerifyAuditChain(*engine_);
  ASSERT_TRUE(chain.ok());
  EXPECT_TRUE(chain->ok) << chain->problem;
}

TEST_F(ECardLogicTest, StatusFollowsLossAndUnblock) {
  const std::string id = NewId();
  v1::Card c = Holder(id);
  ASSERT_TRUE(Activate(c.application_id()).ok());
  const std::string e = IssueIn(app_a_, id);
  auto before_loss = Qr(app_a_, e);
  ASSERT_TRUE(before_loss.ok());

  ASSERT_TRUE(Loss(c.application_id(), LOSS_KIND_FORMAL).ok());
  EXPECT_EQ(GetECard(e).status(), E_CARD_STATUS_SUSPENDED);
  EXPECT_EQ(GetECard(e).status_reason(), E_CARD_STATUS_REASON_CARD_LOST);
  EXPECT_EQ(Verify(before_loss->payload()).outcome(),
            QR_VERIFY_OUTCOME_SUSPENDED);
  auto refused = Qr(app_a_, e);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(common::StateOf(refused.status()), "SUSPENDED");

  ASSERT_TRUE(Unblock(c.application_id()).ok());
  EXPECT_EQ(GetECard(e).status(), E_CARD_STATUS_ACTIVE);
  EXPECT_EQ(Verify(before_loss->payload()).outcome(), QR_VERIFY_OUTCOME_VALID);
}

TEST_F(ECardLogicTest, TemporaryLossEndsByItself) {
  const std::string id = NewId();
  v1::Card c = Holder(id);
  ASSERT_TRUE(Activate(c.application_id()).ok());
  const std::string e = IssueIn(app_a_, id);
  ASSERT_TRUE(Loss(c.application_id(), LOSS_KIND_TEMPORARY).ok());
  v1::ECard s = GetECard(e);
  EXPECT_EQ(s.status(), E_CARD_STATUS_SUSPENDED);
  EXPECT_EQ(s.status_reason(), E_CARD_STATUS_REASON_CARD_TEMP_LOST);
  EXPECT_EQ(s.suspended_until().seconds(),
            absl::ToUnixSeconds(clock_.Now() + absl::Hours(24 * 7)));
  EXPECT_FALSE(Qr(app_a_, e).ok());
  clock_.Advance(absl::Hours(24 * 7));
  EXPECT_EQ(GetECard(e).status(), E_CARD_STATUS_ACTIVE);
  auto qr = Qr(app_a_, e);
  ASSERT_TRUE(qr.ok()) << qr.status();
  EXPECT_EQ(Verify(qr->payload()).outcome(), QR_VERIFY_OUTCOME_VALID);
}

TEST_F(ECardLogicTest, RevokedAfterCancellation) {
  const std::string id = NewId();
  v1::Card c = Holder(id);
  const std::string e = IssueIn(app_a_, id);
  auto qr = Qr(app_a_, e);
  ASSERT_TRUE(qr.ok());
  ASSERT_TRUE(CancelCard(c.application_id()).ok());
  EXPECT_EQ(GetECard(e).status(), E_CARD_STATUS_REVOKED);
  EXPECT_EQ(GetECard(e).status_reason(), E_CARD_STATUS_REASON_CARD_CANCELLED);
  EXPECT_EQ(Verify(qr->payload()).outcome(), QR_VERIFY_OUTCOME_REVOKED);
  EXPECT_EQ(Qr(app_a_, e).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(ECardLogicTest, ContinuesOnTheReplacementCardWithoutNewApplication) {
  const std::string id = NewId();
  v1::Card c = Holder(id);
  ASSERT_TRUE(Activate(c.application_id()).ok());
  const std::string e = IssueIn(app_a_, id);
  ASSERT_TRUE(Loss(c.application_id(), LOSS_KIND_FORMAL).ok());
  auto rep = Replace(c.application_id());
  ASSERT_TRUE(rep.ok()) << rep.status();
  const std::string new_app = rep->new_card().application_id();

  v1::ECard during = GetECard(e);
  EXPECT_EQ(during.status(), E_CARD_STATUS_SUSPENDED);
  EXPECT_EQ(during.status_reason(), E_CARD_STATUS_REASON_CARD_REPLACED);
  EXPECT_EQ(during.card_application_id(), new_app);
  EXPECT_FALSE(Qr(app_a_, e).ok());

  v1::Card issued = ProduceAndIssue(new_app);
  v1::ECard after = GetECard(e);
  EXPECT_EQ(after.ecard_id(), e);  // the same e-card
  EXPECT_EQ(after.status(), E_CARD_STATUS_ACTIVE);
  EXPECT_EQ(after.card_number(), issued.card_number());
  auto qr = Qr(app_a_, e);
  ASSERT_TRUE(qr.ok()) << qr.status();
  EXPECT_EQ(Verify(qr->payload()).outcome(), QR_VERIFY_OUTCOME_VALID);
  // Binding in a new channel is the same e-card, not a new application.
  auto bound = ecard_->IssueECard(app_b_, IssueReq(id));
  ASSERT_TRUE(bound.ok());
  EXPECT_FALSE(bound->newly_issued());
  EXPECT_EQ(bound->ecard().ecard_id(), e);
}

TEST_F(ECardLogicTest, RevokeOnRequestThenReissueGivesANewECard) {
  const std::string id = NewId();
  Holder(id);
  const std::string e = IssueIn(app_a_, id);
  RevokeECardRequest r;
  r.set_request_id(Rid());
  r.set_ecard_id(e);
  EXPECT_EQ(common::FieldOf(ecard_->RevokeECard(counter_, r).status()),
            "reason");
  r.set_request_id(Rid());
  r.set_reason("持卡人申请注销电子社保卡");
  auto revoked = ecard_->RevokeECard(counter_, r);
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  EXPECT_EQ(revoked->ecard().status(), E_CARD_STATUS_REVOKED);
  r.set_request_id(Rid());
  EXPECT_EQ(ecard_->RevokeECard(counter_, r).status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto again = ecard_->IssueECard(app_a_, IssueReq(id));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->newly_issued());
  EXPECT_NE(again->ecard().ecard_id(), e);
  EXPECT_EQ(GetECard(e).status(), E_CARD_STATUS_REVOKED);
}

TEST_F(ECardLogicTest, KeyRotationKeepsOldCodesValidUntilTheyExpire) {
  const std::string id = NewId();
  Holder(id);
  const std::string e = IssueIn(app_a_, id);
  auto old_code = Qr(app_a_, e);
  auto old_code2 = Qr(app_a_, e);
  ASSERT_TRUE(old_code.ok() && old_code2.ok());

  RotateSigningKeyRequest rr;
  rr.set_request_id(Rid());
  auto rot = ecard_->RotateSigningKey(admin_, rr);
  ASSERT_TRUE(rot.ok()) << rot.status();
  EXPECT_EQ(rot->retired_key().key_id(), old_code->key_id());
  EXPECT_NE(rot->new_key().key_id(), old_code->key_id());
  EXPECT_EQ(rot->retired_key().verify_until().seconds(),
            absl::ToUnixSeconds(clock_.Now()) + 65);

  auto new_code = Qr(app_a_, e);
  ASSERT_TRUE(new_code.ok());
  EXPECT_EQ(new_code->key_id(), rot->new_key().key_id());
  EXPECT_EQ(Verify(old_code->payload()).outcome(), QR_VERIFY_OUTCOME_VALID);
  EXPECT_EQ(Verify(new_code->payload()).outcome(), QR_VERIFY_OUTCOME_VALID);

  auto keys = ecard_->GetVerificationKeys(terminal_, {});
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->keys_size(), 2);
  EXPECT_EQ(keys->code_validity_seconds(), 60);

  // After a restart the rotation holds.
  Open();
  auto later = Qr(app_a_, e);
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(later->key_id(), rot->new_key().key_id());

  clock_.Advance(absl::Seconds(60));
  EXPECT_EQ(Verify(old_code2->payload()).outcome(), QR_VERIFY_OUTCOME_EXPIRED);
  clock_.Advance(absl::Seconds(5));
  keys = ecard_->GetVerificationKeys(terminal_, {});
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->keys_size(), 1);  // nothing left for the old key to verify
  EXPECT_TRUE(keys->keys(0).active());
}

TEST_F(ECardLogicTest, RetiredKeyCannotVouchForLaterCodes) {
  const std::string id = NewId();
  Holder(id);
  const std::string e = IssueIn(app_a_, id);
  auto code = Qr(app_a_, e);
  ASSERT_TRUE(code.ok());
  RotateSigningKeyRequest rr;
  rr.set_request_id(Rid());
  ASSERT_TRUE(ecard_->RotateSigningKey(admin_, rr).ok());
  clock_.Advance(absl::Seconds(30));
  // A code "issued" after retirement, signed with the old key (as only a
  // stolen old key could): the old key's window refuses it.
  auto raw = engine_->Get(storage::Table::kECards, SigningKeyKey(1));
  ASSERT_TRUE(raw.ok() && raw->has_value());
  store::SigningKeyRecord rec;
  ASSERT_TRUE(rec.ParseFromString(**raw));
  auto der = cipher_->Decrypt(rec.private_pkcs8(), SigningKeyAad(1));
  ASSERT_TRUE(der.ok());
  auto old_key = EcKey::FromPrivateDer(*der);
  ASSERT_TRUE(old_key.ok());
  auto split = Split(code->payload());
  ASSERT_TRUE(split.has_value());
  auto claims = ParseClaims(split->payload_json);
  ASSERT_TRUE(claims.has_value());
  claims->nonce = "AAAAAAAAAAAAAAAA";
  auto before = EncodeToken("1", *claims, **old_key);
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(Verify(*before).outcome(), QR_VERIFY_OUTCOME_VALID);
  claims->issued_at = absl::ToUnixSeconds(clock_.Now());
  claims->expires_at = claims->issued_at + 60;
  auto after = EncodeToken("1", *claims, **old_key);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(Verify(*after).outcome(), QR_VERIFY_OUTCOME_BAD_SIGNATURE);
}

TEST_F(ECardLogicTest, StatusListPagesChangesSinceASequence) {
  const std::string id = NewId();
  v1::Card c = Holder(id);
  ASSERT_TRUE(Activate(c.application_id()).ok());
  const std::string e = IssueIn(app_a_, id);
  auto start = ecard_->GetStatusList(terminal_, {});
  ASSERT_TRUE(start.ok());
  const uint64_t since = start->next_since_sequence();
  EXPECT_FALSE(start->more());

  ASSERT_TRUE(Loss(c.application_id(), LOSS_KIND_TEMPORARY).ok());
  ASSERT_TRUE(Loss(c.application_id(), LOSS_KIND_FORMAL).ok());
  ASSERT_TRUE(Unblock(c.application_id()).ok());
  ASSERT_TRUE(CancelCard(c.application_id()).ok());

  GetStatusListRequest r;
  r.set_since_sequence(since);
  r.set_page_size(3);
  auto page1 = ecard_->GetStatusList(terminal_, r);
  ASSERT_TRUE(page1.ok()) << page1.status();
  ASSERT_EQ(page1->entries_size(), 3);
  EXPECT_TRUE(page1->more());
  EXPECT_EQ(page1->entries(0).ecard_id(), e);
  EXPECT_EQ(page1->entries(0).status(), E_CARD_STATUS_SUSPENDED);
  EXPECT_EQ(page1->entries(0).reason(), E_CARD_STATUS_REASON_CARD_TEMP_LOST);
  EXPECT_GT(page1->entries(0).suspended_until().seconds(), 0);
  EXPECT_EQ(page1->entries(1).reason(), E_CARD_STATUS_REASON_CARD_LOST);
  EXPECT_EQ(page1->entries(2).status(), E_CARD_STATUS_ACTIVE);
  r.set_since_sequence(page1->next_since_sequence());
  auto page2 = ecard_->GetStatusList(terminal_, r);
  ASSERT_TRUE(page2.ok());
  ASSERT_EQ(page2->entries_size(), 1);
  EXPECT_FALSE(page2->more());
  EXPECT_EQ(page2->entries(0).status(), E_CARD_STATUS_REVOKED);
  EXPECT_GT(page2->entries(0).sequence(), page1->entries(2).sequence());

  r.set_page_size(-1);
  EXPECT_EQ(common::FieldOf(ecard_->GetStatusList(terminal_, r).status()),
            "page_size");
}

TEST_F(ECardLogicTest, ExpiredSingleUseRecordsArePruned) {
  const std::string id = NewId();
  Holder(id);
  const std::string e = IssueIn(app_a_, id);
  for (int i = 0; i < 3; ++i) {
    auto qr = Qr(app_a_, e);
    ASSERT_TRUE(qr.ok());
    EXPECT_EQ(Verify(qr->payload()).outcome(), QR_VERIFY_OUTCOME_VALID);
  }
  auto none = ecard_->PruneQrTokens();
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0);  // not expired yet
  clock_.Advance(absl::Minutes(3));
  auto pruned = ecard_->PruneQrTokens();
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(*pruned, 3);
  int left = 0;
  ASSERT_TRUE(engine_
                  ->Scan(storage::Table::kQrTokens, "", "",
                         [&](std::string_view, std::string_view) {
                           ++left;
                           return true;
                         })
                  .ok());
  EXPECT_EQ(left, 0);
}

TEST_F(ECardLogicTest, PrivateKeyIsStoredEncrypted) {
  auto raw = engine_->Get(storage::Table::kECards, SigningKeyKey(1));
  ASSERT_TRUE(raw.ok() && raw->has_value());
  store::SigningKeyRecord r;
  ASSERT_TRUE(r.ParseFromString(**raw));
  // The stored bytes are not a PKCS#8 key; decrypting with the cipher is.
  EXPECT_FALSE(EcKey::FromPrivateDer(r.private_pkcs8()).ok());
  auto der = cipher_->Decrypt(r.private_pkcs8(), SigningKeyAad(1));
  ASSERT_TRUE(der.ok()) << der.status();
  auto key = EcKey::FromPrivateDer(*der);
  ASSERT_TRUE(key.ok());
  EXPECT_EQ((*key)->public_der(), r.public_spki());
  // Bound to its record: the aad of another key number fails.
  EXPECT_FALSE(cipher_->Decrypt(r.private_pkcs8(), SigningKeyAad(2)).ok());
}

// CardChange::person_new (imports): the observer looks only at the write
// set's pending writes; otherwise it reads the store. Both update the
// e-card the same way when the e-card is where they look.
TEST_F(ECardLogicTest, ObserverOfANewPersonLooksOnlyAtTheWriteSet) {
  const std::string id = NewId();
  v1::Card c = Holder(id);
  const std::string e = IssueIn(app_a_, id);
  const std::string person = card_->PersonKey(absl::AsciiStrToUpper(id));
  auto stored = engine_->Get(storage::Table::kCards, c.application_id());
  ASSERT_TRUE(stored.ok() && stored->has_value());
  card::CardChange ch;
  ch.kind = card::ChangeKind::kTransition;
  ch.operation = card::Operation::kReportFormalLoss;
  ch.event_type = "card.lost";
  ch.person_key = person;
  ASSERT_TRUE(ch.after.ParseFromString(**stored));
  ch.before = ch.after;
  ch.after.set_state(CARD_STATE_LOST);
  ch.time = clock_.Now();
  auto state_in = [&](const storage::WriteSet& ws) {
    auto v = ws.Pending(storage::Table::kECards, ECardKey(e));
    store::ECardRecord r;
    if (!v.has_value() || !v->has_value() || !r.ParseFromString(**v)) {
      return CARD_STATE_UNSPECIFIED;
    }
    return r.card_state();
  };

  storage::WriteSet live;  // reads the store
  ASSERT_TRUE(observer_->OnCardChange(live, ch).ok());
  EXPECT_EQ(state_in(live), CARD_STATE_LOST);

  ch.person_new = true;
  storage::WriteSet nothing_pending;
  ASSERT_TRUE(observer_->OnCardChange(nothing_pending, ch).ok());
  EXPECT_TRUE(nothing_pending.empty()) << "the store is not read";

  storage::WriteSet pending;  // the e-card written earlier in the set
  for (const std::string& key : {PersonIndexKey(person), ECardKey(e)}) {
    auto v = engine_->Get(storage::Table::kECards, key);
    ASSERT_TRUE(v.ok() && v->has_value());
    pending.Put(storage::Table::kECards, key, **v);
  }
  ASSERT_TRUE(observer_->OnCardChange(pending, ch).ok());
  EXPECT_EQ(state_in(pending), CARD_STATE_LOST);
  EXPECT_EQ(pending.events().size(), live.events().size());
  ASSERT_FALSE(pending.events().empty());
  EXPECT_EQ(pending.events()[0].payload, live.events()[0].payload);
}

}  // namespace
}  // namespace ssc::ecard
