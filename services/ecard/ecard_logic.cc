#include "services/ecard/ecard_logic.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "services/card/id_number.h"
#include "services/card/lifecycle.h"
#include "services/common/errors.h"
#include "services/common/metrics.h"
#include "services/ecard/ecard_store.h"
#include "services/report/counters.h"
#include "storage/idempotency.h"
#include "storage/key_codec.h"
#include "storage/pii_cipher.h"
#include "storage/status_macros.h"

namespace ssc::ecard {

namespace v1 = ::ssc::v1;
using storage::Table;
using storage::WriteSet;

namespace {

constexpr char kService[] = "ssc.v1.ECardService/";
// Hard limit of a code's lifetime, whatever the configuration says.
constexpr absl::Duration kMaxCodeLifetime = absl::Minutes(10);
// Crockford base32: no I, L, O, U (easy to read out, QR-friendly).
constexpr char kIdAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

std::string Method(std::string_view name) {
  return absl::StrCat(kService, std::string(name));
}

void SetTime(google::protobuf::Timestamp* ts, absl::Time t) {
  const int64_t nanos = absl::ToUnixNanos(t);
  int64_t secs = nanos / 1'000'000'000;
  int64_t rem = nanos % 1'000'000'000;
  if (rem < 0) {
    rem += 1'000'000'000;
    --secs;
  }
  ts->set_seconds(secs);
  ts->set_nanos(static_cast<int32_t>(rem));
}

absl::Time TimeOf(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

// Constant time: the names compared are personal data.
bool SameText(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

absl::Status ValidateECardId(std::string_view field, std::string_view id) {
  if (id.empty()) return common::InvalidField(field, "must not be empty");
  if (id.size() > kMaxECardIdChars) {
    return common::InvalidField(field, "must be at most 16 characters");
  }
  for (char c : id) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c)) &&
        !absl::ascii_isupper(static_cast<unsigned char>(c))) {
      return common::InvalidField(field,
                                  "must consist of digits and capital letters");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidatePrintable(std::string_view field, std::string_view s,
                               size_t max) {
  if (s.empty()) return common::InvalidField(field, "must not be empty");
  if (s.size() > max) {
    return common::InvalidField(
        field, absl::StrCat("must be at most ", max, " bytes"));
  }
  for (char c : s) {
    if (c < 0x20 || c > 0x7e) {
      return common::InvalidField(field,
                                  "must consist of printable ASCII characters");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateBusinessType(v1::BusinessType bt) {
  if (bt < v1::BUSINESS_TYPE_ENQUIRY ||
      bt > v1::BUSINESS_TYPE_MEDICAL_OUT_OF_REGION) {
    return common::InvalidField("business_type",
                                "must be ENQUIRY, PAYMENT, OTHER or "
                                "MEDICAL_OUT_OF_REGION (01..04)");
  }
  return absl::OkStatus();
}

absl::Status ValidateEvidence(std::string_view field,
                              const v1::VerificationEvidence& ev,
                              const ECardOptions& o, absl::Time now) {
  const std::string f(field);
  if (!v1::VerificationMethod_IsValid(ev.method()) ||
      ev.method() == v1::VERIFICATION_METHOD_UNSPECIFIED) {
    return common::InvalidField(f + ".method", "must name the method used");
  }
  RETURN_IF_ERROR(ValidatePrintable(f + ".reference", ev.reference(), 64));
  if (ev.verified_at().seconds() <= 0) {
    return common::InvalidField(f + ".verified_at", "must be set");
  }
  const absl::Time at = TimeOf(ev.verified_at());
  if (at > now + o.evidence_max_ahead) {
    return common::InvalidField(f + ".verified_at", "is in the future");
  }
  if (at < now - o.evidence_max_age) {
    return common::InvalidField(
        f + ".verified_at",
        absl::StrCat("is older than ",
                     absl::FormatDuration(o.evidence_max_age)));
  }
  return absl::OkStatus();
}

v1::VerificationEvidence EvidenceOf(const store::ChannelBindingRecord& b) {
  v1::VerificationEvidence e;
  e.set_method(b.method());
  e.set_reference(b.reference());
  SetTime(e.mutable_verified_at(), FromMicros(b.verified_micros()));
  return e;
}

v1::ChannelBinding BindingProto(const store::ChannelBindingRecord& b) {
  v1::ChannelBinding out;
  out.set_channel(b.channel());
  out.set_active(b.active());
  *out.mutable_evidence() = EvidenceOf(b);
  SetTime(out.mutable_bound_at(), FromMicros(b.bound_micros()));
  if (b.unbound_micros() != 0) {
    SetTime(out.mutable_unbound_at(), FromMicros(b.unbound_micros()));
  }
  return out;
}

v1::ECardStatus ParseStatusName(std::string_view s) {
  for (v1::ECardStatus st :
       {v1::E_CARD_STATUS_ACTIVE, v1::E_CARD_STATUS_SUSPENDED,
        v1::E_CARD_STATUS_REVOKED}) {
    if (StatusName(st) == s) return st;
  }
  return v1::E_CARD_STATUS_UNSPECIFIED;
}

v1::ECardStatusReason ParseReasonName(std::string_view s) {
  for (int r = v1::ECardStatusReason_MIN; r <= v1::ECardStatusReason_MAX; ++r) {
    if (!v1::ECardStatusReason_IsValid(r)) continue;
    auto reason = static_cast<v1::ECardStatusReason>(r);
    if (ReasonName(reason) == s) return reason;
  }
  return v1::E_CARD_STATUS_REASON_UNSPECIFIED;
}

absl::StatusOr<std::string> RandomECardId() {
  unsigned char buf[15];
  if (RAND_bytes(buf, sizeof(buf)) != 1) {
    return absl::InternalError("random e-card id failed (OpenSSL)");
  }
  std::string id = "E";
  for (unsigned char b : buf) id.push_back(kIdAlphabet[b & 31]);
  return id;
}

std::string TwoDigits(int bt) { return absl::StrCat("0", bt); }

}  // namespace

struct ECardLogic::Impl {
  // The person's e-card (not revoked), if any.
  static absl::StatusOr<std::optional<store::ECardRecord>> CurrentECard(
      const ECardLogic& l, const WriteSet* ws, std::string_view person_key) {
    ASSIGN_OR_RETURN(std::optional<std::string> ref,
                     ReadThrough(*l.ctx_.engine, ws, Table::kECards,
                                 PersonIndexKey(person_key)));
    if (!ref.has_value()) return std::optional<store::ECardRecord>();
    ASSIGN_OR_RETURN(std::optional<store::ECardRecord> rec,
                     LoadRecord<store::ECardRecord>(
                         *l.ctx_.engine, ws, Table::kECards, ECardKey(*ref)));
    if (!rec.has_value()) {
      return absl::DataLossError("e-card index names a missing e-card");
    }
    if (rec->revoked()) return std::optional<store::ECardRecord>();
    return rec;
  }

  static absl::StatusOr<store::ECardRecord> RequireECard(const ECardLogic& l,
                                                         const WriteSet* ws,
                                                         std::string_view field,
                                                         std::string_view id) {
    RETURN_IF_ERROR(ValidateECardId(field, id));
    ASSIGN_OR_RETURN(std::optional<store::ECardRecord> rec,
                     LoadRecord<store::ECardRecord>(
                         *l.ctx_.engine, ws, Table::kECards, ECardKey(id)));
    if (!rec.has_value())
      return common::NotFound(absl::StrCat("e-card ", std::string(id)));
    return *std::move(rec);
  }

  // Mobile channels act only on e-cards bound in their own channel.
  static absl::Status CheckAccess(const ECardLogic& l, const WriteSet* ws,
                                  const common::Caller& caller,
                                  const store::ECardRecord& rec) {
    if (caller.role != common::Role::kMobileChannel) return absl::OkStatus();
    ASSIGN_OR_RETURN(std::optional<store::ChannelBindingRecord> b,
                     LoadRecord<store::ChannelBindingRecord>(
                         *l.ctx_.engine, ws, Table::kECards,
                         BindingKey(rec.ecard_id(), caller.identity)));
    if (!b.has_value() || !b->active()) {
      return absl::PermissionDeniedError(
          absl::StrCat("e-card ", rec.ecard_id(), " is not bound in channel ",
                       caller.identity));
    }
    return absl::OkStatus();
  }

  // The person's handed-over card that is not void: what an e-card needs.
  static absl::StatusOr<card::CardView> HandedOverCard(
      const ECardLogic& l, const card::PersonView& person) {
    if (person.current_application_id.empty()) {
      return common::WrongState(
          "person", "NO_CARD",
          "an e-card needs a handed-over physical card that is not cancelled");
    }
    ASSIGN_OR_RETURN(std::optional<card::CardView> c,
                     l.cards_->LoadCard(person.current_application_id));
    if (!c.has_value()) return absl::DataLossError("person's card is missing");
    switch (c->card.state()) {
      case v1::CARD_STATE_ISSUED:
      case v1::CARD_STATE_ACTIVE:
      case v1::CARD_STATE_TEMP_LOST:
      case v1::CARD_STATE_LOST:
        return *std::move(c);
      default:
        return common::WrongState(
            absl::StrCat("card ", c->card.application_id()),
            card::StateName(c->card.state()),
            "an e-card needs a handed-over physical card that is not "
            "cancelled or replaced");
    }
  }

  // Issues a new e-card for `person` following `card`.
  static absl::StatusOr<store::ECardRecord> NewECard(
      const ECardLogic& l, WriteSet& ws, const card::PersonView& person,
      const card::CardView& card, absl::Time now) {
    std::string id;
    for (int attempt = 0;; ++attempt) {
      ASSIGN_OR_RETURN(id, RandomECardId());
      ASSIGN_OR_RETURN(
          std::optional<std::string> taken,
          ReadThrough(*l.ctx_.engine, &ws, Table::kECards, ECardKey(id)));
      if (!taken.has_value()) break;
      if (attempt == 3) return absl::InternalError("no free e-card id");
    }
    store::ECardRecord rec;
    rec.set_ecard_id(id);
    rec.set_person_key(person.key);
    rec.set_card_application_id(card.card.application_id());
    rec.set_card_state(card.card.state());
    if (card.card.state() == v1::CARD_STATE_TEMP_LOST) {
      rec.set_temp_loss_expires_micros(
          ToMicros(TimeOf(card.card.temp_loss_expires_at())));
    }
    rec.set_issued_micros(ToMicros(now));
    rec.set_status_changed_micros(ToMicros(now));
    ws.Put(Table::kECards, PersonIndexKey(person.key), id);
    // The person becomes an e-card holder (report counters, same write).
    report::RecordECardHolderChange(ws, person.region_code, now, +1);
    AppendStatusEvent(ws, rec, StatusOf(rec, now), "ecard.issued");
    return rec;
  }

  static void Put(WriteSet& ws, const store::ECardRecord& rec) {
    ws.Put(Table::kECards, ECardKey(rec.ecard_id()), rec.SerializeAsString());
  }

  static void Event(WriteSet& ws, std::string type, std::string_view ecard_id,
                    std::string payload) {
    storage::EventInput e;
    e.type = std::move(type);
    e.entity_type = kECardEntityType;
    e.entity_id = std::string(ecard_id);
    e.payload = std::move(payload);
    ws.AppendEvent(std::move(e));
  }

  static absl::StatusOr<card::PersonView> Person(const ECardLogic& l,
                                                 const store::ECardRecord& r) {
    ASSIGN_OR_RETURN(std::optional<card::PersonView> p,
                     l.cards_->LoadPersonByKey(r.person_key()));
    if (!p.has_value()) return absl::DataLossError("e-card holder is missing");
    return *std::move(p);
  }

  static void SetIdentity(const card::PersonView& p, common::Role role,
                          std::string* id_number, std::string* name,
                          bool* masked) {
    const bool clear = card::CardLogic::SeesClearData(role);
    *id_number = clear ? p.id_number : storage::MaskIdNumber(p.id_number);
    *name = clear ? p.name : storage::MaskName(p.name);
    *masked = !clear;
  }

  static absl::StatusOr<v1::ECard> ToProto(const ECardLogic& l,
                                           const store::ECardRecord& r,
                                           const card::PersonView& person,
                                           common::Role role, absl::Time now) {
    v1::ECard e;
    e.set_ecard_id(r.ecard_id());
    const EffectiveStatus st = StatusOf(r, now);
    e.set_status(st.status);
    e.set_status_reason(st.reason);
    if (st.suspended_until.has_value()) {
      SetTime(e.mutable_suspended_until(), *st.suspended_until);
    }
    bool masked = true;
    SetIdentity(person, role, e.mutable_holder_id_number(),
                e.mutable_holder_name(), &masked);
    e.set_masked(masked);
    e.set_card_application_id(r.card_application_id());
    ASSIGN_OR_RETURN(std::optional<card::CardView> c,
                     l.cards_->LoadCard(r.card_application_id()));
    if (c.has_value()) e.set_card_number(c->card.card_number());
    SetTime(e.mutable_issued_at(), FromMicros(r.issued_micros()));
    SetTime(e.mutable_status_changed_at(),
            FromMicros(r.status_changed_micros()));
    e.set_active_channel_count(r.active_channel_count());
    e.set_family_member_count(r.family_member_count());
    return e;
  }

  static absl::StatusOr<v1::FamilyMember> MemberProto(
      const ECardLogic& l, const store::FamilyRecord& f, common::Role role,
      absl::Time now) {
    v1::FamilyMember m;
    m.set_ecard_id(f.member_ecard_id());
    m.set_relationship(f.relationship());
    SetTime(m.mutable_added_at(), FromMicros(f.added_micros()));
    ASSIGN_OR_RETURN(
        std::optional<store::ECardRecord> rec,
        LoadRecord<store::ECardRecord>(*l.ctx_.engine, nullptr, Table::kECards,
                                       ECardKey(f.member_ecard_id())));
    if (!rec.has_value()) {
      return absl::DataLossError("family member's e-card is missing");
    }
    m.set_status(StatusOf(*rec, now).status);
    ASSIGN_OR_RETURN(card::PersonView p, Person(l, *rec));
    bool masked = true;
    SetIdentity(p, role, m.mutable_id_number(), m.mutable_name(), &masked);
    return m;
  }

  static v1::VerificationKey KeyProto(const store::SigningKeyRecord& r) {
    v1::VerificationKey k;
    k.set_key_id(absl::StrCat(r.number()));
    k.set_algorithm("ES256");
    k.set_public_key_spki(Base64Encode(r.public_spki()));
    absl::StatusOr<std::unique_ptr<EcKey>> pub =
        EcKey::FromPublicDer(r.public_spki());
    if (pub.ok()) k.set_jwk((*pub)->Jwk(k.key_id()));
    SetTime(k.mutable_created_at(), FromMicros(r.created_micros()));
    k.set_active(r.retired_micros() == 0);
    if (r.retired_micros() != 0) {
      SetTime(k.mutable_retired_at(), FromMicros(r.retired_micros()));
      SetTime(k.mutable_verify_until(), FromMicros(r.verify_until_micros()));
    }
    return k;
  }

  static absl::StatusOr<v1::GenerateQrCodeResponse> Generate(
      const ECardLogic& l, const common::Caller& caller,
      const v1::GenerateQrCodeRequest& req, absl::Time now,
      std::string* target) {
    RETURN_IF_ERROR(ValidateBusinessType(req.business_type()));
    ASSIGN_OR_RETURN(store::ECardRecord holder,
                     RequireECard(l, nullptr, "ecard_id", req.ecard_id()));
    *target = absl::StrCat("ecard ", holder.ecard_id());
    RETURN_IF_ERROR(CheckAccess(l, nullptr, caller, holder));
    store::ECardRecord subject = holder;
    if (!req.family_member_ecard_id().empty()) {
      RETURN_IF_ERROR(ValidateECardId("family_member_ecard_id",
                                      req.family_member_ecard_id()));
      if (StatusOf(holder, now).status == v1::E_CARD_STATUS_REVOKED) {
        return common::WrongState(absl::StrCat("e-card ", holder.ecard_id()),
                                  "REVOKED",
                                  "a revoked holder cannot act for family");
      }
      ASSIGN_OR_RETURN(
          std::optional<store::FamilyRecord> f,
          LoadRecord<store::FamilyRecord>(
              *l.ctx_.engine, nullptr, Table::kECards,
              FamilyKey(holder.ecard_id(), req.family_member_ecard_id())));
      if (!f.has_value()) {
        return absl::PermissionDeniedError(absl::StrCat(
            "e-card ", req.family_member_ecard_id(),
            " is not a family member of e-card ", holder.ecard_id()));
      }
      ASSIGN_OR_RETURN(subject,
                       RequireECard(l, nullptr, "family_member_ecard_id",
                                    req.family_member_ecard_id()));
      *target = absl::StrCat("ecard ", subject.ecard_id(), " for holder ",
                             holder.ecard_id());
    }
    const EffectiveStatus st = StatusOf(subject, now);
    if (st.status != v1::E_CARD_STATUS_ACTIVE) {
      return common::WrongState(absl::StrCat("e-card ", subject.ecard_id()),
                                StatusName(st.status),
                                "a QR code needs an ACTIVE e-card");
    }
    std::shared_ptr<const KeyRing> ring = l.keys_->ring();
    const SigningKey* key = ring->active();
    QrClaims c;
    c.ecard_id = subject.ecard_id();
    ASSIGN_OR_RETURN(c.nonce, NewNonce());
    c.issued_at = absl::ToUnixSeconds(now);
    c.expires_at = c.issued_at + absl::ToInt64Seconds(l.options_.code_validity);
    c.business_type = static_cast<int>(req.business_type());
    ASSIGN_OR_RETURN(std::string token, EncodeToken(key->kid, c, *key->key));
    v1::GenerateQrCodeResponse resp;
    resp.set_payload(std::move(token));
    SetTime(resp.mutable_expires_at(), absl::FromUnixSeconds(c.expires_at));
    resp.set_key_id(key->kid);
    return resp;
  }
};

ECardLogic::ECardLogic(common::StoreContext ctx, const card::CardLogic* cards,
                       KeyManager* keys, ECardOptions options)
    : ctx_(ctx), cards_(cards), keys_(keys), options_(options) {
  // Bounds of the configuration (a longer code is a longer replay window).
  options_.code_validity =
      std::clamp(options_.code_validity, absl::Seconds(10), kMaxCodeLifetime);
  options_.code_validity = absl::Seconds(
      absl::ToInt64Seconds(options_.code_validity));  // whole seconds
}

absl::StatusOr<v1::IssueECardResponse> ECardLogic::IssueECard(
    const common::Caller& caller, const v1::IssueECardRequest& req) {
  const absl::Time now = ctx_.clock->Now();
  absl::StatusOr<card::IdNumberInfo> id =
      card::ValidateIdNumber("id_number", req.id_number(), now);
  std::vector<std::string> locks;
  if (id.ok()) {
    locks.push_back(
        card::CardLogic::PersonLockKey(cards_->PersonKey(id->normalized)));
  }
  v1::IssueECardResponse out;
  const std::string method = Method("IssueECard");
  absl::Status s = common::RunMutation(
      ctx_, common::MutationCall{caller, method, req.request_id(), req}, locks,
      &out,
      [&](WriteSet& ws, google::protobuf::Message*,
          std::string* target) -> absl::Status {
        if (!id.ok()) return id.status();
        *target =
            absl::StrCat("person ", storage::MaskIdNumber(id->normalized));
        RETURN_IF_ERROR(card::ValidateName("name", req.name()));
        RETURN_IF_ERROR(
            ValidateEvidence("evidence", req.evidence(), options_, now));
        ASSIGN_OR_RETURN(std::optional<card::PersonView> person,
                         cards_->FindPersonByIdNumber(id->normalized));
        if (!person.has_value()) {
          return common::NotFound("person with this id_number");
        }
        if (!SameText(person->name, req.name())) {
          return common::InvalidField("name",
                                      "does not match the holder register");
        }
        ASSIGN_OR_RETURN(std::optional<store::ECardRecord> rec,
                         Impl::CurrentECard(*this, &ws, person->key));
        bool newly = false;
        if (!rec.has_value()) {
          ASSIGN_OR_RETURN(card::CardView card,
                           Impl::HandedOverCard(*this, *person));
          ASSIGN_OR_RETURN(rec, Impl::NewECard(*this, ws, *person, card, now));
          newly = true;
        }
        *target = absl::StrCat("ecard ", rec->ecard_id());
        const std::string bkey = BindingKey(rec->ecard_id(), caller.identity);
        ASSIGN_OR_RETURN(std::optional<store::ChannelBindingRecord> binding,
                         LoadRecord<store::ChannelBindingRecord>(
                             *ctx_.engine, &ws, Table::kECards, bkey));
        if (!binding.has_value() || !binding->active()) {
          store::ChannelBindingRecord b;
          b.set_channel(caller.identity);
          b.set_active(true);
          b.set_method(req.evidence().method());
          b.set_reference(req.evidence().reference());
          b.set_verified_micros(ToMicros(TimeOf(req.evidence().verified_at())));
          b.set_bound_micros(ToMicros(now));
          ws.Put(Table::kECards, bkey, b.SerializeAsString());
          rec->set_active_channel_count(rec->active_channel_count() + 1);
          Impl::Event(
              ws, "ecard.channel_bound", rec->ecard_id(),
              absl::StrCat(R"({"ecard_id":")", rec->ecard_id(),
                           R"(","channel":")", caller.identity, R"("})"));
          binding = std::move(b);
        }
        Impl::Put(ws, *rec);
        ASSIGN_OR_RETURN(*out.mutable_ecard(),
                         Impl::ToProto(*this, *rec, *person, caller.role, now));
        *out.mutable_binding() = BindingProto(*binding);
        out.set_newly_issued(newly);
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<v1::GetECardResponse> ECardLogic::GetECard(
    const common::Caller& caller, const v1::GetECardRequest& req) {
  const absl::Time now = ctx_.clock->Now();
  if (req.ecard_id().empty() == req.id_number().empty()) {
    return common::InvalidField("ecard_id",
                                "give exactly one of ecard_id and id_number");
  }
  store::ECardRecord rec;
  if (!req.ecard_id().empty()) {
    ASSIGN_OR_RETURN(
        rec, Impl::RequireECard(*this, nullptr, "ecard_id", req.ecard_id()));
  } else {
    ASSIGN_OR_RETURN(card::IdNumberInfo id,
                     card::ValidateIdNumber("id_number", req.id_number(), now));
    ASSIGN_OR_RETURN(
        std::optional<std::string> ref,
        ctx_.engine->Get(Table::kECards,
                         PersonIndexKey(cards_->PersonKey(id.normalized))));
    if (!ref.has_value()) {
      return common::NotFound("e-card of the person with this id_number");
    }
    ASSIGN_OR_RETURN(rec,
                     Impl::RequireECard(*this, nullptr, "id_number", *ref));
  }
  RETURN_IF_ERROR(Impl::CheckAccess(*this, nullptr, caller, rec));
  ASSIGN_OR_RETURN(card::PersonView person, Impl::Person(*this, rec));
  v1::GetECardResponse out;
  ASSIGN_OR_RETURN(*out.mutable_ecard(),
                   Impl::ToProto(*this, rec, person, caller.role, now));
  return out;
}

absl::StatusOr<v1::ListChannelBindingsResponse> ECardLogic::ListChannelBindings(
    const common::Caller& caller, const v1::ListChannelBindingsRequest& req) {
  ASSIGN_OR_RETURN(
      store::ECardRecord rec,
      Impl::RequireECard(*this, nullptr, "ecard_id", req.ecard_id()));
  RETURN_IF_ERROR(Impl::CheckAccess(*this, nullptr, caller, rec));
  v1::ListChannelBindingsResponse out;
  bool corrupt = false;
  const std::string prefix = BindingPrefix(rec.ecard_id());
  RETURN_IF_ERROR(ctx_.engine->Scan(
      Table::kECards, prefix, storage::PrefixSuccessor(prefix),
      [&](std::string_view, std::string_view value) {
        store::ChannelBindingRecord b;
        if (!b.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          corrupt = true;
          return false;
        }
        // A channel sees only its own binding.
        if (caller.role != common::Role::kMobileChannel ||
            b.channel() == caller.identity) {
          *out.add_bindings() = BindingProto(b);
        }
        return true;
      }));
  if (corrupt) return absl::DataLossError("binding record cannot be parsed");
  return out;
}

absl::StatusOr<v1::UnbindChannelResponse> ECardLogic::UnbindChannel(
    const common::Caller& caller, const v1::UnbindChannelRequest& req) {
  const absl::Time now = ctx_.clock->Now();
  std::string channel = req.channel();
  absl::Status channel_ok = absl::OkStatus();
  if (caller.role == common::Role::kMobileChannel) {
    if (channel.empty()) channel = caller.identity;
    if (channel != caller.identity) {
      channel_ok = absl::PermissionDeniedError(
          "a mobile channel may only leave its own channel");
    }
  } else {
    channel_ok = ValidatePrintable("channel", channel, 128);
  }
  // The person's lock: the e-card's person never changes, so read it first.
  std::vector<std::string> locks;
  absl::StatusOr<store::ECardRecord> pre =
      Impl::RequireECard(*this, nullptr, "ecard_id", req.ecard_id());
  if (pre.ok()) {
    locks.push_back(card::CardLogic::PersonLockKey(pre->person_key()));
  }
  v1::UnbindChannelResponse out;
  absl::Status s = common::RunMutation(
      ctx_,
      common::MutationCall{caller, Method("UnbindChannel"), req.request_id(),
                           req},
      locks, &out,
      [&](WriteSet& ws, google::protobuf::Message*,
          std::string* target) -> absl::Status {
        RETURN_IF_ERROR(pre.status());
        RETURN_IF_ERROR(channel_ok);
        ASSIGN_OR_RETURN(
            store::ECardRecord rec,
            Impl::RequireECard(*this, &ws, "ecard_id", req.ecard_id()));
        *target = absl::StrCat("ecard ", rec.ecard_id(), " channel ", channel);
        RETURN_IF_ERROR(Impl::CheckAccess(*this, &ws, caller, rec));
        const std::string bkey = BindingKey(rec.ecard_id(), channel);
        ASSIGN_OR_RETURN(std::optional<store::ChannelBindingRecord> b,
                         LoadRecord<store::ChannelBindingRecord>(
                             *ctx_.engine, &ws, Table::kECards, bkey));
        if (!b.has_value()) {
          return common::NotFound(absl::StrCat(
              "binding of e-card ", rec.ecard_id(), " in channel ", channel));
        }
        if (!b->active()) {
          return common::WrongState("channel binding", "UNBOUND",
                                    "the holder already left this channel");
        }
        b->set_active(false);
        b->set_unbound_micros(ToMicros(now));
        ws.Put(Table::kECards, bkey, b->SerializeAsString());
        rec.set_active_channel_count(
            std::max(0, rec.active_channel_count() - 1));
        Impl::Put(ws, rec);
        Impl::Event(ws, "ecard.channel_unbound", rec.ecard_id(),
                    absl::StrCat(R"({"ecard_id":")", rec.ecard_id(),
                                 R"(","channel":")", channel, R"("})"));
        *out.mutable_binding() = BindingProto(*b);
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<v1::RevokeECardResponse> ECardLogic::RevokeECard(
    const common::Caller& caller, const v1::RevokeECardRequest& req) {
  const absl::Time now = ctx_.clock->Now();
  std::vector<std::string> locks;
  absl::StatusOr<store::ECardRecord> pre =
      Impl::RequireECard(*this, nullptr, "ecard_id", req.ecard_id());
  if (pre.ok()) {
    locks.push_back(card::CardLogic::PersonLockKey(pre->person_key()));
  }
  v1::RevokeECardResponse out;
  absl::Status s = common::RunMutation(
      ctx_,
      common::MutationCall{caller, Method("RevokeECard"), req.request_id(),
                           req},
      locks, &out,
      [&](WriteSet& ws, google::protobuf::Message*,
          std::string* target) -> absl::Status {
        RETURN_IF_ERROR(pre.status());
        if (req.reason().empty() || req.reason().size() > 200 ||
            !card::IsValidUtf8(req.reason())) {
          return common::InvalidField("reason",
                                      "must be 1..200 bytes of UTF-8");
        }
        for (unsigned char c : req.reason()) {
          if (c < 0x20 || c == 0x7f) {
            return common::InvalidField("reason",
                                        "must not contain control characters");
          }
        }
        ASSIGN_OR_RETURN(
            store::ECardRecord rec,
            Impl::RequireECard(*this, &ws, "ecard_id", req.ecard_id()));
        *target = absl::StrCat("ecard ", rec.ecard_id());
        RETURN_IF_ERROR(Impl::CheckAccess(*this, &ws, caller, rec));
        if (StatusOf(rec, now).status == v1::E_CARD_STATUS_REVOKED) {
          return common::WrongState(absl::StrCat("e-card ", rec.ecard_id()),
                                    "REVOKED", "the e-card is already revoked");
        }
        rec.set_revoked(true);
        rec.set_revoke_reason(v1::E_CARD_STATUS_REASON_REVOKED_ON_REQUEST);
        rec.set_revoke_note(req.reason());
        rec.set_status_changed_micros(ToMicros(now));
        Impl::Put(ws, rec);
        AppendStatusEvent(ws, rec, StatusOf(rec, now), "ecard.revoked");
        ASSIGN_OR_RETURN(card::PersonView person, Impl::Person(*this, rec));
        report::RecordECardHolderChange(ws, person.region_code, now, -1);
        ASSIGN_OR_RETURN(*out.mutable_ecard(),
                         Impl::ToProto(*this, rec, person, caller.role, now));
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<v1::AddFamilyMemberResponse> ECardLogic::AddFamilyMember(
    const common::Caller& caller, const v1::AddFamilyMemberRequest& req) {
  const absl::Time now = ctx_.clock->Now();
  absl::StatusOr<store::ECardRecord> pre =
      Impl::RequireECard(*this, nullptr, "ecard_id", req.ecard_id());
  absl::StatusOr<card::IdNumberInfo> member_id =
      card::ValidateIdNumber("member_id_number", req.member_id_number(), now);
  std::vector<std::string> locks;
  if (pre.ok()) {
    locks.push_back(card::CardLogic::PersonLockKey(pre->person_key()));
  }
  if (member_id.ok()) {
    locks.push_back(card::CardLogic::PersonLockKey(
        cards_->PersonKey(member_id->normalized)));
  }
  v1::AddFamilyMemberResponse out;
  absl::Status s = common::RunMutation(
      ctx_,
      common::MutationCall{caller, Method("AddFamilyMember"), req.request_id(),
                           req},
      locks, &out,
      [&](WriteSet& ws, google::protobuf::Message*,
          std::string* target) -> absl::Status {
        RETURN_IF_ERROR(pre.status());
        ASSIGN_OR_RETURN(
            store::ECardRecord holder,
            Impl::RequireECard(*this, &ws, "ecard_id", req.ecard_id()));
        *target = absl::StrCat("ecard ", holder.ecard_id());
        RETURN_IF_ERROR(Impl::CheckAccess(*this, &ws, caller, holder));
        if (StatusOf(holder, now).status == v1::E_CARD_STATUS_REVOKED) {
          return common::WrongState(
              absl::StrCat("e-card ", holder.ecard_id()), "REVOKED",
              "a revoked e-card cannot add family members");
        }
        RETURN_IF_ERROR(member_id.status());
        RETURN_IF_ERROR(card::ValidateName("member_name", req.member_name()));
        if (!v1::FamilyRelationship_IsValid(req.relationship()) ||
            req.relationship() == v1::FAMILY_RELATIONSHIP_UNSPECIFIED) {
          return common::InvalidField("relationship", "must be set");
        }
        RETURN_IF_ERROR(
            ValidateEvidence("evidence", req.evidence(), options_, now));
        ASSIGN_OR_RETURN(std::optional<card::PersonView> member,
                         cards_->FindPersonByIdNumber(member_id->normalized));
        if (!member.has_value()) {
          return common::NotFound("person with this member_id_number");
        }
        if (!SameText(member->name, req.member_name())) {
          return common::InvalidField("member_name",
                                      "does not match the holder register");
        }
        if (member->key == holder.person_key()) {
          return common::InvalidField("member_id_number",
                                      "is the holder's own ID number");
        }
        ASSIGN_OR_RETURN(std::optional<store::ECardRecord> mrec,
                         Impl::CurrentECard(*this, &ws, member->key));
        if (!mrec.has_value()) {
          ASSIGN_OR_RETURN(card::CardView card,
                           Impl::HandedOverCard(*this, *member));
          ASSIGN_OR_RETURN(mrec, Impl::NewECard(*this, ws, *member, card, now));
          Impl::Put(ws, *mrec);
        }
        const std::string fkey = FamilyKey(holder.ecard_id(), mrec->ecard_id());
        ASSIGN_OR_RETURN(std::optional<std::string> existing,
                         ReadThrough(*ctx_.engine, &ws, Table::kECards, fkey));
        if (existing.has_value()) {
          return absl::AlreadyExistsError(absl::StrCat(
              "e-card ", mrec->ecard_id(),
              " is already a family member of e-card ", holder.ecard_id()));
        }
        if (holder.family_member_count() >= options_.max_family_members) {
          return common::WrongState(
              absl::StrCat("family of e-card ", holder.ecard_id()),
              absl::StrCat(holder.family_member_count(), " members"),
              absl::StrCat("a holder may authorise at most ",
                           options_.max_family_members,
                           " family members; remove one first"));
        }
        store::FamilyRecord f;
        f.set_member_ecard_id(mrec->ecard_id());
        f.set_relationship(req.relationship());
        f.set_added_micros(ToMicros(now));
        f.set_added_by(caller.identity);
        f.set_method(req.evidence().method());
        f.set_reference(req.evidence().reference());
        f.set_verified_micros(ToMicros(TimeOf(req.evidence().verified_at())));
        ws.Put(Table::kECards, fkey, f.SerializeAsString());
        holder.set_family_member_count(holder.family_member_count() + 1);
        Impl::Put(ws, holder);
        Impl::Event(ws, "ecard.family_member_added", holder.ecard_id(),
                    absl::StrCat(R"({"ecard_id":")", holder.ecard_id(),
                                 R"(","member_ecard_id":")", mrec->ecard_id(),
                                 R"("})"));
        v1::FamilyMember* m = out.mutable_member();
        m->set_ecard_id(mrec->ecard_id());
        m->set_relationship(req.relationship());
        m->set_status(StatusOf(*mrec, now).status);
        SetTime(m->mutable_added_at(), now);
        bool masked = true;
        Impl::SetIdentity(*member, caller.role, m->mutable_id_number(),
                          m->mutable_name(), &masked);
        out.set_member_count(holder.family_member_count());
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<v1::RemoveFamilyMemberResponse> ECardLogic::RemoveFamilyMember(
    const common::Caller& caller, const v1::RemoveFamilyMemberRequest& req) {
  absl::StatusOr<store::ECardRecord> pre =
      Impl::RequireECard(*this, nullptr, "ecard_id", req.ecard_id());
  std::vector<std::string> locks;
  if (pre.ok()) {
    locks.push_back(card::CardLogic::PersonLockKey(pre->person_key()));
  }
  v1::RemoveFamilyMemberResponse out;
  absl::Status s = common::RunMutation(
      ctx_,
      common::MutationCall{caller, Method("RemoveFamilyMember"),
                           req.request_id(), req},
      locks, &out,
      [&](WriteSet& ws, google::protobuf::Message*,
          std::string* target) -> absl::Status {
        RETURN_IF_ERROR(pre.status());
        RETURN_IF_ERROR(
            ValidateECardId("member_ecard_id", req.member_ecard_id()));
        ASSIGN_OR_RETURN(
            store::ECardRecord holder,
            Impl::RequireECard(*this, &ws, "ecard_id", req.ecard_id()));
        *target = absl::StrCat("ecard ", holder.ecard_id());
        RETURN_IF_ERROR(Impl::CheckAccess(*this, &ws, caller, holder));
        const std::string fkey =
            FamilyKey(holder.ecard_id(), req.member_ecard_id());
        ASSIGN_OR_RETURN(std::optional<std::string> existing,
                         ReadThrough(*ctx_.engine, &ws, Table::kECards, fkey));
        if (!existing.has_value()) {
          return common::NotFound(
              absl::StrCat("family member ", req.member_ecard_id(),
                           " of e-card ", holder.ecard_id()));
        }
        ws.Delete(Table::kECards, fkey);
        holder.set_family_member_count(
            std::max(0, holder.family_member_count() - 1));
        Impl::Put(ws, holder);
        Impl::Event(ws, "ecard.family_member_removed", holder.ecard_id(),
                    absl::StrCat(R"({"ecard_id":")", holder.ecard_id(),
                                 R"(","member_ecard_id":")",
                                 req.member_ecard_id(), R"("})"));
        out.set_member_count(holder.family_member_count());
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<v1::ListFamilyMembersResponse> ECardLogic::ListFamilyMembers(
    const common::Caller& caller, const v1::ListFamilyMembersRequest& req) {
  const absl::Time now = ctx_.clock->Now();
  ASSIGN_OR_RETURN(
      store::ECardRecord holder,
      Impl::RequireECard(*this, nullptr, "ecard_id", req.ecard_id()));
  RETURN_IF_ERROR(Impl::CheckAccess(*this, nullptr, caller, holder));
  std::vector<store::FamilyRecord> records;
  bool corrupt = false;
  const std::string prefix = FamilyPrefix(holder.ecard_id());
  RETURN_IF_ERROR(ctx_.engine->Scan(
      Table::kECards, prefix, storage::PrefixSuccessor(prefix),
      [&](std::string_view, std::string_view value) {
        store::FamilyRecord f;
        if (!f.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          corrupt = true;
          return false;
        }
        records.push_back(std::move(f));
        return true;
      }));
  if (corrupt) return absl::DataLossError("family record cannot be parsed");
  v1::ListFamilyMembersResponse out;
  for (const store::FamilyRecord& f : records) {
    ASSIGN_OR_RETURN(*out.add_members(),
                     Impl::MemberProto(*this, f, caller.role, now));
  }
  return out;
}

absl::StatusOr<v1::GenerateQrCodeResponse> ECardLogic::GenerateQrCode(
    const common::Caller& caller, const v1::GenerateQrCodeRequest& req) {
  const absl::Time now = ctx_.clock->Now();
  std::string target;
  absl::StatusOr<v1::GenerateQrCodeResponse> out =
      Impl::Generate(*this, caller, req, now, &target);
  // Every code handed out is audited (who, for which e-card).
  RETURN_IF_ERROR(common::AuditRead(ctx_, caller, Method("GenerateQrCode"),
                                    target, out.status()));
  return out;
}

TokenCheck ECardLogic::CheckToken(std::string_view payload,
                                  absl::Time now) const {
  TokenCheck out;
  out.outcome = v1::QR_VERIFY_OUTCOME_MALFORMED;
  std::optional<SplitToken> split = Split(payload);
  if (!split.has_value()) return out;
  out.kid = split->kid;
  std::shared_ptr<const KeyRing> ring = keys_->ring();
  const SigningKey* key = ring->Find(split->kid);
  if (key == nullptr) {
    out.outcome = v1::QR_VERIFY_OUTCOME_UNKNOWN_KEY;
    return out;
  }
  if (!key->key->Verify(split->signing_input, split->signature)) {
    out.outcome = v1::QR_VERIFY_OUTCOME_BAD_SIGNATURE;
    return out;
  }
  std::optional<QrClaims> claims = ParseClaims(split->payload_json);
  if (!claims.has_value() || claims->expires_at <= claims->issued_at ||
      claims->expires_at - claims->issued_at >
          absl::ToInt64Seconds(kMaxCodeLifetime)) {
    return out;  // MALFORMED
  }
  const absl::Time iat = absl::FromUnixSeconds(claims->issued_at);
  const absl::Time exp = absl::FromUnixSeconds(claims->expires_at);
  // A key signs only while active: a code claiming another time was not
  // made by ssc with this key.
  if (iat < key->created - options_.clock_skew ||
      (!key->active && iat > key->retired + options_.clock_skew)) {
    out.outcome = v1::QR_VERIFY_OUTCOME_BAD_SIGNATURE;
    return out;
  }
  out.claims = *std::move(claims);
  if (now < iat - options_.clock_skew) {
    out.outcome = v1::QR_VERIFY_OUTCOME_NOT_YET_VALID;
  } else if (now >= exp) {
    out.outcome = v1::QR_VERIFY_OUTCOME_EXPIRED;
  } else {
    out.outcome = v1::QR_VERIFY_OUTCOME_VALID;
  }
  return out;
}

absl::StatusOr<v1::VerifyQrCodeResponse> ECardLogic::VerifyQrCode(
    const common::Caller& caller, const v1::VerifyQrCodeRequest& req) {
  const absl::Time now = ctx_.clock->Now();
  const std::string method = Method("VerifyQrCode");
  absl::Status bad_request = ValidateBusinessType(req.business_type());
  if (bad_request.ok() && !req.request_id().empty()) {
    bad_request = ValidatePrintable("request_id", req.request_id(), 64);
  }
  if (!bad_request.ok()) {
    RETURN_IF_ERROR(
        common::AuditOnly(ctx_, caller, method, "", "qr code", bad_request));
    return bad_request;
  }

  v1::VerifyQrCodeResponse out;
  const TokenCheck check = CheckToken(req.payload(), now);
  out.set_outcome(check.outcome);
  out.set_key_id(check.kid);
  const bool signed_ok = !check.claims.nonce.empty();
  if (signed_ok) {
    out.set_ecard_id(check.claims.ecard_id);
    out.set_business_type(
        static_cast<v1::BusinessType>(check.claims.business_type));
    SetTime(out.mutable_expires_at(),
            absl::FromUnixSeconds(check.claims.expires_at));
    if (out.outcome() == v1::QR_VERIFY_OUTCOME_VALID &&
        check.claims.business_type != static_cast<int>(req.business_type())) {
      out.set_outcome(v1::QR_VERIFY_OUTCOME_WRONG_BUSINESS);
    }
  }

  // Serialize verifications of one code (and retries of one request).
  const std::string token_key =
      signed_ok ? QrTokenKey(check.claims.expires_at, check.claims.nonce)
                : std::string();
  const std::string nonce_lock = absl::StrCat("ecard.qr/", token_key);
  const std::string idem_lock =
      storage::Idempotency::LockKey(caller.identity, req.request_id());
  std::vector<std::string_view> lock_keys;
  if (signed_ok) lock_keys.push_back(nonce_lock);
  if (!req.request_id().empty()) lock_keys.push_back(idem_lock);
  storage::KeyLocks::Guard guard = ctx_.locks->Lock(lock_keys);

  std::string fingerprint;
  if (!req.request_id().empty()) {
    fingerprint =
        storage::Idempotency::Fingerprint(method, req.SerializeAsString());
    ASSIGN_OR_RETURN(std::optional<std::string> stored,
                     ctx_.idempotency->Check(caller.identity, req.request_id(),
                                             fingerprint));
    if (stored.has_value()) {
      v1::VerifyQrCodeResponse original;
      if (!original.ParseFromString(*stored)) {
        return absl::DataLossError(
            "stored response of a repeated request cannot be parsed");
      }
      return original;
    }
  }

  std::optional<store::ECardRecord> rec;
  if (out.outcome() == v1::QR_VERIFY_OUTCOME_VALID) {
    ASSIGN_OR_RETURN(std::optional<std::string> used,
                     ctx_.engine->Get(Table::kQrTokens, token_key));
    if (used.has_value()) out.set_outcome(v1::QR_VERIFY_OUTCOME_REPLAYED);
  }
  if (out.outcome() == v1::QR_VERIFY_OUTCOME_VALID) {
    ASSIGN_OR_RETURN(rec, LoadRecord<store::ECardRecord>(
                              *ctx_.engine, nullptr, Table::kECards,
                              ECardKey(check.claims.ecard_id)));
    const v1::ECardStatus st = rec.has_value() ? StatusOf(*rec, now).status
                                               : v1::E_CARD_STATUS_REVOKED;
    if (st == v1::E_CARD_STATUS_REVOKED) {
      out.set_outcome(v1::QR_VERIFY_OUTCOME_REVOKED);
    } else if (st == v1::E_CARD_STATUS_SUSPENDED) {
      out.set_outcome(v1::QR_VERIFY_OUTCOME_SUSPENDED);
    }
  }

  WriteSet ws;
  if (out.outcome() == v1::QR_VERIFY_OUTCOME_VALID) {
    ASSIGN_OR_RETURN(card::PersonView person, Impl::Person(*this, *rec));
    bool masked = true;
    Impl::SetIdentity(person, caller.role, out.mutable_holder_id_number(),
                      out.mutable_holder_name(), &masked);
    out.set_masked(masked);
    // The single-use record, atomic with the audit record below.
    std::string value;
    storage::PutFixed64BE(
        &value, static_cast<uint64_t>(
                    ToMicros(absl::FromUnixSeconds(check.claims.expires_at))));
    store::QrTokenRecord t;
    t.set_ecard_id(check.claims.ecard_id);
    t.set_terminal(caller.identity);
    t.set_verified_micros(ToMicros(now));
    t.set_business_type(req.business_type());
    t.set_key_id(check.kid);
    value += t.SerializeAsString();
    ws.Put(Table::kQrTokens, token_key, std::move(value));
  }
  storage::AuditInput a;
  a.caller = caller.identity;
  a.role = std::string(common::RoleName(caller.role));
  a.operator_id = caller.operator_id;
  a.rpc = method;
  a.target = signed_ok ? absl::StrCat("ecard ", check.claims.ecard_id)
                       : std::string("qr code");
  a.request_id = req.request_id();
  a.code = 0;
  a.message = absl::StrCat(
      "outcome=", v1::QrVerifyOutcome_Name(out.outcome()),
      " business=", TwoDigits(static_cast<int>(req.business_type())),
      check.kid.empty() ? "" : " kid=", check.kid);
  ws.AppendAudit(std::move(a));
  if (!req.request_id().empty()) {
    RETURN_IF_ERROR(ctx_.idempotency->Record(ws, caller.identity,
                                             req.request_id(), fingerprint,
                                             out.SerializeAsString()));
  }
  RETURN_IF_ERROR(ctx_.engine->Commit(std::move(ws)).status());
  guard = storage::KeyLocks::Guard();  // the code is settled
  common::Metrics()
      .GetCounter("ssc_qr_verifications_total",
                  "QR code verifications by outcome.",
                  {{"outcome", v1::QrVerifyOutcome_Name(out.outcome())}})
      ->Add();
  if (out.outcome() == v1::QR_VERIFY_OUTCOME_VALID &&
      valid_verifications_.fetch_add(1) % 256 == 255) {
    // Housekeeping only: a failure here does not change the answer.
    absl::StatusOr<int64_t> pruned = PruneQrTokens(1);
    (void)pruned;
  }
  return out;
}

absl::StatusOr<v1::GetVerificationKeysResponse> ECardLogic::GetVerificationKeys(
    const common::Caller&, const v1::GetVerificationKeysRequest&) {
  const absl::Time now = ctx_.clock->Now();
  v1::GetVerificationKeysResponse out;
  std::shared_ptr<const KeyRing> ring = keys_->ring();
  for (const SigningKey& k : ring->keys()) {
    if (!k.active && k.verify_until <= now) continue;  // nothing left to verify
    v1::VerificationKey* p = out.add_keys();
    p->set_key_id(k.kid);
    p->set_algorithm("ES256");
    p->set_public_key_spki(Base64Encode(k.key->public_der()));
    p->set_jwk(k.key->Jwk(k.kid));
    SetTime(p->mutable_created_at(), k.created);
    p->set_active(k.active);
    if (!k.active) {
      SetTime(p->mutable_retired_at(), k.retired);
      SetTime(p->mutable_verify_until(), k.verify_until);
    }
  }
  out.set_code_validity_seconds(absl::ToInt64Seconds(options_.code_validity));
  return out;
}

absl::StatusOr<v1::RotateSigningKeyResponse> ECardLogic::RotateSigningKey(
    const common::Caller& caller, const v1::RotateSigningKeyRequest& req) {
  const absl::Time now = ctx_.clock->Now();
  v1::RotateSigningKeyResponse out;
  absl::Status s = common::RunMutation(
      ctx_,
      common::MutationCall{caller, Method("RotateSigningKey"), req.request_id(),
                           req},
      {KeyManager::kLockKey}, &out,
      [&](WriteSet& ws, google::protobuf::Message*,
          std::string* target) -> absl::Status {
        ASSIGN_OR_RETURN(KeyManager::Rotation r,
                         keys_->PrepareRotation(ws, now));
        *target = absl::StrCat("signing key ", r.new_key.number());
        *out.mutable_new_key() = Impl::KeyProto(r.new_key);
        if (r.retired_key.has_value()) {
          *out.mutable_retired_key() = Impl::KeyProto(*r.retired_key);
        }
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  // The new key signs from now on (also after a replayed request: reloading
  // is harmless).
  RETURN_IF_ERROR(keys_->Reload());
  return out;
}

absl::StatusOr<v1::GetStatusListResponse> ECardLogic::GetStatusList(
    const common::Caller&, const v1::GetStatusListRequest& req) {
  if (req.page_size() < 0) {
    return common::InvalidField("page_size", "must not be negative");
  }
  int page = req.page_size() == 0
                 ? options_.default_status_page
                 : std::min(req.page_size(), options_.max_status_page);
  if (req.since_sequence() == UINT64_MAX) {
    return common::InvalidField("since_sequence", "is out of range");
  }
  ASSIGN_OR_RETURN(
      std::vector<storage::StoredEvent> events,
      ctx_.engine->ReadEntityEvents(kStatusListEntityType, kStatusListEntityId,
                                    req.since_sequence() + 1,
                                    static_cast<size_t>(page) + 1));
  v1::GetStatusListResponse out;
  out.set_more(events.size() > static_cast<size_t>(page));
  if (out.more()) events.resize(page);
  uint64_t last = req.since_sequence();
  for (const storage::StoredEvent& e : events) {
    last = e.sequence;
    std::optional<FlatJson> j = ParseFlatJson(e.payload);
    if (!j.has_value()) {
      return absl::DataLossError("e-card status event cannot be parsed");
    }
    const FlatJsonValue* id = FindJson(*j, "ecard_id");
    const FlatJsonValue* status = FindJson(*j, "status");
    const FlatJsonValue* reason = FindJson(*j, "reason");
    const FlatJsonValue* until = FindJson(*j, "suspended_until");
    if (id == nullptr || status == nullptr) {
      return absl::DataLossError("e-card status event lacks fields");
    }
    v1::StatusListEntry* entry = out.add_entries();
    entry->set_sequence(e.sequence);
    entry->set_ecard_id(id->text);
    entry->set_status(ParseStatusName(status->text));
    if (reason != nullptr) entry->set_reason(ParseReasonName(reason->text));
    SetTime(entry->mutable_changed_at(), e.time);
    if (until != nullptr && until->is_number) {
      SetTime(entry->mutable_suspended_until(),
              absl::FromUnixSeconds(until->number));
    }
  }
  out.set_next_since_sequence(last);
  return out;
}

absl::StatusOr<int64_t> ECardLogic::PruneQrTokens(int max_batches) {
  // Keep a minute beyond expiry: a record is useless once its code expired.
  const int64_t cutoff =
      absl::ToUnixSeconds(ctx_.clock->Now() - absl::Minutes(1));
  const std::string upper = QrTokenKey(cutoff, "");
  int64_t total = 0;
  for (int batch = 0; batch < max_batches; ++batch) {
    std::vector<std::string> keys;
    RETURN_IF_ERROR(
        ctx_.engine->Scan(Table::kQrTokens, "", upper,
                          [&](std::string_view key, std::string_view) {
                            keys.emplace_back(key);
                            return keys.size() < 1000;
                          }));
    if (keys.empty()) return total;
    WriteSet ws;
    for (std::string& k : keys) ws.Delete(Table::kQrTokens, std::move(k));
    total += static_cast<int64_t>(keys.size());
    RETURN_IF_ERROR(ctx_.engine->Commit(std::move(ws)).status());
  }
  return total;
}

}  // namespace ssc::ecard
