#include "services/ecard/ecard_store.h"

#include "absl/strings/str_cat.h"
#include "storage/key_codec.h"

namespace ssc::ecard {

using storage::KeyBuilder;

std::string ECardKey(std::string_view ecard_id) {
  return KeyBuilder().Str("e").Str(ecard_id).key();
}

std::string PersonIndexKey(std::string_view person_key) {
  // One buffer (every card change of an e-card holder builds this key).
  std::string key;
  key.reserve(3 + person_key.size());
  storage::AppendKeyString(&key, "p");
  key.append(person_key);
  return key;
}

std::string BindingKey(std::string_view ecard_id, std::string_view channel) {
  return KeyBuilder().Str("b").Str(ecard_id).Str(channel).key();
}

std::string BindingPrefix(std::string_view ecard_id) {
  return KeyBuilder().Str("b").Str(ecard_id).key();
}

std::string FamilyKey(std::string_view holder_id, std::string_view member_id) {
  return KeyBuilder().Str("f").Str(holder_id).Str(member_id).key();
}

std::string FamilyPrefix(std::string_view holder_id) {
  return KeyBuilder().Str("f").Str(holder_id).key();
}

std::string SigningKeyKey(uint32_t number) {
  return KeyBuilder().Str("k").U32(number).key();
}

std::string SigningKeyPrefix() { return KeyBuilder().Str("k").key(); }

std::string QrTokenKey(int64_t expires_unix_seconds, std::string_view nonce) {
  return KeyBuilder()
      .U64(static_cast<uint64_t>(expires_unix_seconds))
      .Raw(nonce)
      .key();
}

absl::StatusOr<std::optional<std::string>> ReadThrough(
    storage::Engine& engine, const storage::WriteSet* ws, storage::Table t,
    std::string_view key) {
  if (ws != nullptr) {
    std::optional<std::optional<std::string>> pending = ws->Pending(t, key);
    if (pending.has_value()) return *pending;
  }
  return engine.Get(t, key);
}

absl::Time FromMicros(int64_t micros) { return absl::FromUnixMicros(micros); }
int64_t ToMicros(absl::Time t) { return absl::ToUnixMicros(t); }

EffectiveStatus StatusOf(const store::ECardRecord& r, absl::Time now) {
  using ssc::v1::CardState;
  EffectiveStatus s;
  if (r.revoked() || r.card_state() == ssc::v1::CARD_STATE_CANCELLED) {
    s.status = ssc::v1::E_CARD_STATUS_REVOKED;
    s.reason = r.revoke_reason() != ssc::v1::E_CARD_STATUS_REASON_UNSPECIFIED
                   ? r.revoke_reason()
                   : ssc::v1::E_CARD_STATUS_REASON_CARD_CANCELLED;
    return s;
  }
  switch (r.card_state()) {
    case CardState::CARD_STATE_ISSUED:
    case CardState::CARD_STATE_ACTIVE:
      s.status = ssc::v1::E_CARD_STATUS_ACTIVE;
      s.reason = ssc::v1::E_CARD_STATUS_REASON_CARD_VALID;
      return s;
    case CardState::CARD_STATE_TEMP_LOST: {
      // A temporary loss ends by itself (read lazily, like the card).
      const absl::Time until = FromMicros(r.temp_loss_expires_micros());
      if (r.temp_loss_expires_micros() > 0 && now >= until) {
        s.status = ssc::v1::E_CARD_STATUS_ACTIVE;
        s.reason = ssc::v1::E_CARD_STATUS_REASON_CARD_VALID;
        return s;
      }
      s.status = ssc::v1::E_CARD_STATUS_SUSPENDED;
      s.reason = ssc::v1::E_CARD_STATUS_REASON_CARD_TEMP_LOST;
      if (r.temp_loss_expires_micros() > 0) s.suspended_until = until;
      return s;
    }
    case CardState::CARD_STATE_LOST:
      s.status = ssc::v1::E_CARD_STATUS_SUSPENDED;
      s.reason = ssc::v1::E_CARD_STATUS_REASON_CARD_LOST;
      return s;
    default:
      // REPLACED, or the replacement card before it is handed over.
      s.status = ssc::v1::E_CARD_STATUS_SUSPENDED;
      s.reason = ssc::v1::E_CARD_STATUS_REASON_CARD_REPLACED;
      return s;
  }
}

std::string_view StatusName(ssc::v1::ECardStatus s) {
  switch (s) {
    case ssc::v1::E_CARD_STATUS_ACTIVE:
      return "ACTIVE";
    case ssc::v1::E_CARD_STATUS_SUSPENDED:
      return "SUSPENDED";
    case ssc::v1::E_CARD_STATUS_REVOKED:
      return "REVOKED";
    default:
      return "UNSPECIFIED";
  }
}

std::string_view ReasonName(ssc::v1::ECardStatusReason r) {
  switch (r) {
    case ssc::v1::E_CARD_STATUS_REASON_CARD_VALID:
      return "CARD_VALID";
    case ssc::v1::E_CARD_STATUS_REASON_CARD_TEMP_LOST:
      return "CARD_TEMP_LOST";
    case ssc::v1::E_CARD_STATUS_REASON_CARD_LOST:
      return "CARD_LOST";
    case ssc::v1::E_CARD_STATUS_REASON_CARD_REPLACED:
      return "CARD_REPLACED";
    case ssc::v1::E_CARD_STATUS_REASON_CARD_CANCELLED:
      return "CARD_CANCELLED";
    case ssc::v1::E_CARD_STATUS_REASON_REVOKED_ON_REQUEST:
      return "REVOKED_ON_REQUEST";
    default:
      return "UNSPECIFIED";
  }
}

void AppendStatusEvent(storage::WriteSet& ws, const store::ECardRecord& r,
                       const EffectiveStatus& st, std::string_view type) {
  storage::EventInput e;
  e.type = std::string(type);
  e.entity_type = kECardEntityType;
  e.entity_id = r.ecard_id();
  // A flat JSON object (services/ecard/qr_token.h ParseFlatJson reads it).
  e.payload =
      absl::StrCat(R"({"ecard_id":")", r.ecard_id(), R"(","status":")",
                   std::string(StatusName(st.status)), R"(","reason":")",
                   std::string(ReasonName(st.reason)), R"(")");
  if (st.suspended_until.has_value()) {
    absl::StrAppend(&e.payload, R"(,"suspended_until":)",
                    absl::ToUnixSeconds(*st.suspended_until));
  }
  e.payload += "}";
  e.also_index.emplace_back(kStatusListEntityType, kStatusListEntityId);
  ws.AppendEvent(std::move(e));
}

}  // namespace ssc::ecard
