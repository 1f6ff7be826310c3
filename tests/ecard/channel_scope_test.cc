// Authorization by relationship, on every path: a mobile channel acts only
// on holders whose e-card is bound in its own channel. The test walks every
// ssc.v1 method the authorization table lets a mobile channel call (from the
// proto descriptors, so a new one cannot slip past) and checks, for each,
// that a holder bound only in another channel, a holder without an e-card
// and an unknown card or e-card all get the same NOT_FOUND answer, which
// names no id, and that nothing but the audit record is written. Its own
// holder gets a different answer (so the check cannot pass vacuously).

#include "services/ecard/channel_scope.h"

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "services/common/errors.h"
#include "services/common/grpc/authz.h"
#include "ssc/v1/admin.pb.h"
#include "ssc/v1/audit.pb.h"
#include "ssc/v1/payout.pb.h"
#include "ssc/v1/report.pb.h"
#include "storage/audit.h"
#include "tests/ecard/ecard_fixture.h"

namespace ssc::ecard {
namespace {

using testing::ECardFixture;
using testing::kName;
using namespace ssc::v1;  // NOLINT: request and response types

// A holder (or nobody) as a request names them.
struct Target {
  std::string label;
  std::string id_number;
  std::string name;  // the name the channel gives (wrong for strangers)
  std::string application_id;
  std::string card_number;
  std::string ecard_id;  // a well-formed unknown id when there is none
};

constexpr char kUnknownECardId[] = "EZZZZZZZZZZZZZZZ";
constexpr char kWrongName[] = "李四";

// Everything the store keeps but the audit chain, the idempotency records
// and the meta table (its audit chain head moves with every audit record).
std::map<std::string, std::string> Snapshot(storage::Engine& engine) {
  std::map<std::string, std::string> out;
  for (int t = 0; t < storage::kTableCount; ++t) {
    const auto table = static_cast<storage::Table>(t);
    if (table == storage::Table::kAudit ||
        table == storage::Table::kIdempotency ||
        table == storage::Table::kMeta) {
      continue;
    }
    absl::Status s =
        engine.Scan(table, "", "", [&](std::string_view k, std::string_view v) {
          out[std::to_string(t) + "/" + std::string(k)] = std::string(v);
          return true;
        });
    EXPECT_TRUE(s.ok()) << s;
  }
  return out;
}

// "" when equal, else the first keys that differ (readable on failure).
std::string Diff(const std::map<std::string, std::string>& before,
                 const std::map<std::string, std::string>& after) {
  std::string out;
  int shown = 0;
  auto note = [&](const std::string& what, const std::string& key) {
    if (++shown <= 3)
      absl::StrAppend(&out, what, " ", absl::CEscape(key), "; ");
  };
  for (const auto& [k, v] : after) {
    auto it = before.find(k);
    if (it == before.end()) {
      note("added", k);
    } else if (it->second != v) {
      note("changed", k);
    }
  }
  for (const auto& [k, v] : before) {
    if (after.count(k) == 0) note("removed", k);
  }
  if (shown > 3) absl::StrAppend(&out, shown - 3, " more");
  return out;
}

class ChannelScopeTest : public ECardFixture {
 protected:
  using Call = std::function<std::vector<absl::Status>(const Target&)>;

  void SetUp() override {
    ECardFixture::SetUp();
    scope_ = std::make_unique<ChannelHolderScope>(engine_.get());
    card_->SetHolderScope(scope_.get());
  }

  // An ACTIVE card for a new person; with an e-card bound in `channel`
  // unless null.
  Target MakeHolder(const std::string& label, const common::Caller* channel) {
    Target t;
    t.label = label;
    t.id_number = NewId();
    t.name = kName;
    v1::Card c = Holder(t.id_number);
    EXPECT_TRUE(Activate(c.application_id()).ok());
    t.application_id = c.application_id();
    t.card_number = c.card_number();
    t.ecard_id =
        channel != nullptr ? IssueIn(*channel, t.id_number) : kUnknownECardId;
    return t;
  }

  // One or more requests per method, each naming `t` the way the method
  // names a holder, as the channel app_a_. Every method a mobile channel
  // may call needs a row.
  std::map<std::string, Call> Calls() {
    std::map<std::string, Call> m;
    m["ssc.v1.CardService/GetCard"] = [&](const Target& t) {
      GetCardRequest by_number;
      by_number.set_card_number(t.card_number);
      GetCardRequest by_app;
      by_app.set_application_id(t.application_id);
      return std::vector<absl::Status>{
          card_->GetCard(app_a_, by_number).status(),
          card_->GetCard(app_a_, by_app).status()};
    };
    m["ssc.v1.CardService/ReportLoss"] = [&](const Target& t) {
      ReportLossRequest by_number;
      by_number.set_request_id(Rid());
      by_number.mutable_card()->set_card_number(t.card_number);
      by_number.set_kind(LOSS_KIND_TEMPORARY);
      ReportLossRequest by_app = by_number;
      by_app.set_request_id(Rid());
      *by_app.mutable_card() = Sel(t.application_id);
      // The second asks again for its own holder (already TEMP_LOST then).
      return std::vector<absl::Status>{
          card_->ReportLoss(app_a_, by_number).status(),
          card_->ReportLoss(app_a_, by_app).status()};
    };
    m["ssc.v1.ECardService/IssueECard"] = [&](const Target& t) {
      // Joining a channel needs the holder's name: a wrong one says no
      // more than an unknown person.
      return std::vector<absl::Status>{
          ecard_->IssueECard(app_a_, IssueReq(t.id_number, t.name)).status()};
    };
    m["ssc.v1.ECardService/GetECard"] = [&](const Target& t) {
      GetECardRequest by_id;
      by_id.set_ecard_id(t.ecard_id);
      GetECardRequest by_number;
      by_number.set_id_number(t.id_number);
      return std::vector<absl::Status>{
          ecard_->GetECard(app_a_, by_id).status(),
          ecard_->GetECard(app_a_, by_number).status()};
    };
    m["ssc.v1.ECardService/ListChannelBindings"] = [&](const Target& t) {
      ListChannelBindingsRequest r;
      r.set_ecard_id(t.ecard_id);
      return std::vector<absl::Status>{
          ecard_->ListChannelBindings(app_a_, r).status()};
    };
    m["ssc.v1.ECardService/UnbindChannel"] = [&](const Target& t) {
      UnbindChannelRequest r;
      r.set_request_id(Rid());
      r.set_ecard_id(t.ecard_id);
      return std::vector<absl::Status>{
          ecard_->UnbindChannel(app_a_, r).status()};
    };
    m["ssc.v1.ECardService/AddFamilyMember"] = [&](const Target& t) {
      AddFamilyMemberRequest r;
      r.set_request_id(Rid());
      r.set_ecard_id(t.ecard_id);
      r.set_member_id_number(member_.id_number);
      r.set_member_name(kName);
      r.set_relationship(FAMILY_RELATIONSHIP_CHILD);
      *r.mutable_evidence() = Evidence();
      return std::vector<absl::Status>{
          ecard_->AddFamilyMember(app_a_, r).status()};
    };
    m["ssc.v1.ECardService/RemoveFamilyMember"] = [&](const Target& t) {
      RemoveFamilyMemberRequest r;
      r.set_request_id(Rid());
      r.set_ecard_id(t.ecard_id);
      r.set_member_ecard_id(member_.ecard_id);
      return std::vector<absl::Status>{
          ecard_->RemoveFamilyMember(app_a_, r).status()};
    };
    m["ssc.v1.ECardService/ListFamilyMembers"] = [&](const Target& t) {
      ListFamilyMembersRequest r;
      r.set_ecard_id(t.ecard_id);
      return std::vector<absl::Status>{
          ecard_->ListFamilyMembers(app_a_, r).status()};
    };
    m["ssc.v1.ECardService/GenerateQrCode"] = [&](const Target& t) {
      return std::vector<absl::Status>{Qr(app_a_, t.ecard_id).status()};
    };
    return m;
  }

  std::unique_ptr<ChannelHolderScope> scope_;
  Target member_;  // a family member the requests name (bound in app_b_)
};

// Every ssc.v1 method the authorization table lets a mobile channel call.
std::vector<std::string> MobileChannelMethods() {
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  // Links every ssc.v1 file's descriptors into the generated pool.
  for (const google::protobuf::Descriptor* d :
       {v1::ImportStart::descriptor(), v1::AuditRecord::descriptor(),
        v1::Card::descriptor(), v1::ECard::descriptor(),
        v1::Programme::descriptor(), v1::PopulationUsed::descriptor()}) {
    EXPECT_NE(d, nullptr);
  }
  std::set<std::string> services;
  for (const grpc_common::AuthzRule& rule : grpc_common::AuthzTable()) {
    const std::string_view m = rule.method;
    services.insert(std::string(m.substr(0, m.find('/'))));
  }
  std::vector<std::string> out;
  for (const std::string& name : services) {
    const google::protobuf::ServiceDescriptor* s =
        pool->FindServiceByName(name);
    EXPECT_NE(s, nullptr) << name;
    if (s == nullptr) continue;
    for (int i = 0; i < s->method_count(); ++i) {
      const std::string full = absl::StrCat(name, "/", s->method(i)->name());
      if (grpc_common::IsAllowed(full, common::Role::kMobileChannel)) {
        out.push_back(full);
      }
    }
  }
  return out;
}

TEST_F(ChannelScopeTest, OtherChannelsHoldersAnswerAsNobodyOnEveryMethod) {
  member_ = MakeHolder("member", &app_b_);
  const std::vector<std::string> methods = MobileChannelMethods();
  ASSERT_GE(methods.size(), 2u);
  std::map<std::string, Call> calls = Calls();
  // No stale rows either: each row is a method the channel may call.
  for (const auto& [method, call] : calls) {
    EXPECT_TRUE(std::find(methods.begin(), methods.end(), method) !=
                methods.end())
        << method << " has a row but a mobile channel may not call it";
  }
  for (const std::string& method : methods) {
    SCOPED_TRACE(method);
    auto it = calls.find(method);
    if (it == calls.end()) {
      ADD_FAILURE() << method
                    << " may be called by a mobile channel but has no row in "
                       "this test: add how it names a holder";
      continue;
    }
    // Fresh holders per method: a method's own success must not change the
    // next one's targets.
    const Target mine = MakeHolder("own holder", &app_a_);
    const Target other = MakeHolder("holder bound in another channel", &app_b_);
    Target none = MakeHolder("holder without an e-card", nullptr);
    Target unknown;
    unknown.label = "nobody";
    unknown.id_number = NewId();  // valid, never registered
    unknown.name = kName;
    unknown.application_id = "A510524999999999";
    unknown.card_number = "X19999999";
    unknown.ecard_id = kUnknownECardId;
    // Strangers are named with a wrong name where a name is asked for.
    Target other_named = other;
    other_named.name = kWrongName;
    none.name = kWrongName;
    unknown.name = kWrongName;

    // The answer for nobody is the reference.
    std::map<std::string, std::string> before = Snapshot(*engine_);
    const std::vector<absl::Status> nobody = it->second(unknown);
    EXPECT_EQ(Diff(before, Snapshot(*engine_)), "") << "written for nobody";
    for (const absl::Status& s : nobody) {
      EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
    }

    for (const Target* t : {&other_named, &none}) {
      SCOPED_TRACE(t->label);
      before = Snapshot(*engine_);
      const std::vector<absl::Status> got = it->second(*t);
      EXPECT_EQ(Diff(before, Snapshot(*engine_)), "") << "written";
      ASSERT_EQ(got.size(), nobody.size());
      for (size_t i = 0; i < got.size(); ++i) {
        SCOPED_TRACE(absl::StrCat("request ", i));
        EXPECT_EQ(got[i].code(), absl::StatusCode::kNotFound) << got[i];
        EXPECT_EQ(std::string(got[i].message()),
                  std::string(nobody[i].message()));
        EXPECT_EQ(common::FieldOf(got[i]), common::FieldOf(nobody[i]));
        // No id of any holder, nor anything a request did not carry.
        const std::string text = got[i].ToString();
        for (const Target* h :
             std::initializer_list<const Target*>{&other, &none, &mine}) {
          for (const std::string& id :
               {h->ecard_id, h->application_id, h->card_number, h->id_number}) {
            if (id == kUnknownECardId) continue;
            EXPECT_FALSE(absl::StrContains(text, id))
                << "answer names " << id << ": " << text;
          }
        }
      }
    }

    // The channel's own holder is served (or refused for another reason).
    const std::vector<absl::Status> own = it->second(mine);
    for (size_t i = 0; i < own.size(); ++i) {
      EXPECT_FALSE(own[i].code() == nobody[i].code() &&
                   own[i].message() == nobody[i].message())
          << "own holder answered as nobody: " << own[i];
    }
  }
}

// The finding as reported: a channel could put any ACTIVE card into a
// temporary loss by its sequential card number, suspending the e-card too.
TEST_F(ChannelScopeTest, ChannelCannotReportLossOfAnotherChannelsCard) {
  const Target other = MakeHolder("other", &app_b_);
  ReportLossRequest r;
  r.set_request_id(Rid());
  r.mutable_card()->set_card_number(other.card_number);
  r.set_kind(LOSS_KIND_TEMPORARY);
  auto refused = card_->ReportLoss(app_a_, r);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kNotFound)
      << refused.status();
  GetCardRequest g;
  g.set_application_id(other.application_id);
  auto card = card_->GetCard(counter_, g);
  ASSERT_TRUE(card.ok()) << card.status();
  EXPECT_EQ(card->card().state(), CARD_STATE_ACTIVE);
  EXPECT_EQ(GetECard(other.ecard_id).status(), E_CARD_STATUS_ACTIVE);
  // The channel it is bound in may (temporary loss only).
  r.set_request_id(Rid());
  auto lost = card_->ReportLoss(app_b_, r);
  ASSERT_TRUE(lost.ok()) << lost.status();
  EXPECT_EQ(lost->card().state(), CARD_STATE_TEMP_LOST);
  EXPECT_TRUE(lost->card().masked());
  EXPECT_EQ(GetECard(other.ecard_id).status(), E_CARD_STATUS_SUSPENDED);
  r.set_request_id(Rid());
  r.set_kind(LOSS_KIND_FORMAL);
  EXPECT_EQ(card_->ReportLoss(app_b_, r).status().code(),
            absl::StatusCode::kPermissionDenied);
}

// After leaving a channel, or once the e-card is revoked, the channel no
// longer reaches the holder's card.
TEST_F(ChannelScopeTest, UnbindingOrRevocationEndsTheRelationship) {
  const Target a = MakeHolder("a", &app_a_);
  GetCardRequest g;
  g.set_card_number(a.card_number);
  ASSERT_TRUE(card_->GetCard(app_a_, g).ok());
  UnbindChannelRequest u;
  u.set_request_id(Rid());
  u.set_ecard_id(a.ecard_id);
  ASSERT_TRUE(ecard_->UnbindChannel(app_a_, u).ok());
  EXPECT_EQ(card_->GetCard(app_a_, g).status().code(),
            absl::StatusCode::kNotFound);

  const Target b = MakeHolder("b", &app_a_);
  g.set_card_number(b.card_number);
  ASSERT_TRUE(card_->GetCard(app_a_, g).ok());
  RevokeECardRequest rv;
  rv.set_request_id(Rid());
  rv.set_ecard_id(b.ecard_id);
  rv.set_reason("holder asked");
  ASSERT_TRUE(ecard_->RevokeECard(counter_, rv).ok());
  EXPECT_EQ(card_->GetCard(app_a_, g).status().code(),
            absl::StatusCode::kNotFound);
}

// Without a holder scope the card service lets a mobile channel reach no
// holder (fails closed); other roles are not affected.
TEST_F(ChannelScopeTest, WithoutAScopeAChannelReachesNoHolder) {
  const Target a = MakeHolder("a", &app_a_);
  card_->SetHolderScope(nullptr);
  GetCardRequest g;
  g.set_card_number(a.card_number);
  EXPECT_EQ(card_->GetCard(app_a_, g).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(card_->GetCard(terminal_, g).ok());
}

}  // namespace
}  // namespace ssc::ecard
