#pragma once

// Keys and records of the e-card service, and the e-card status derived
// from the physical card. Layout (table kECards):
//   "e" Str(e-card id)                      -> ECardRecord
//   "p" Raw(person key)                     -> e-card id (the person's current)
//   "b" Str(e-card id) Str(channel)         -> ChannelBindingRecord
//   "f" Str(holder e-card id) Str(member)   -> FamilyRecord
//   "k" U32(key number)                     -> SigningKeyRecord
// Table kQrTokens: U64(expiry, unix seconds) Raw(nonce) -> 8-byte big-endian
// expiry (unix micros) + QrTokenRecord. The expiry leads the key so expired
// single-use records are pruned with one bounded scan; the nonce makes the
// key unique (the expiry is signed into the code together with the nonce).
// Pure functions and a stateless loader; thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/ecard/ecard_records.pb.h"
#include "ssc/v1/ecard.pb.h"
#include "storage/engine.h"

namespace ssc::ecard {

std::string ECardKey(std::string_view ecard_id);
std::string PersonIndexKey(std::string_view person_key);
std::string BindingKey(std::string_view ecard_id, std::string_view channel);
std::string BindingPrefix(std::string_view ecard_id);
std::string FamilyKey(std::string_view holder_id, std::string_view member_id);
std::string FamilyPrefix(std::string_view holder_id);
std::string SigningKeyKey(uint32_t number);
std::string SigningKeyPrefix();
std::string QrTokenKey(int64_t expires_unix_seconds, std::string_view nonce);

// Entity type and id under which every status change is indexed: the
// status list for offline terminals is this entity's event stream.
inline constexpr char kStatusListEntityType[] = "ecard_status_list";
inline constexpr char kStatusListEntityId[] = "all";
inline constexpr char kECardEntityType[] = "ecard";

// The value at `key` as this write set will leave it: its pending write if
// it has one, else the committed value.
absl::StatusOr<std::optional<std::string>> ReadThrough(
    storage::Engine& engine, const storage::WriteSet* ws, storage::Table t,
    std::string_view key);

// Loads and parses a record (DATA_LOSS if it does not parse).
template <typename Record>
absl::StatusOr<std::optional<Record>> LoadRecord(storage::Engine& engine,
                                                 const storage::WriteSet* ws,
                                                 storage::Table t,
                                                 std::string_view key) {
  absl::StatusOr<std::optional<std::string>> raw =
      ReadThrough(engine, ws, t, key);
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return std::optional<Record>();
  Record r;
  if (!r.ParseFromString(**raw)) {
    return absl::DataLossError("stored e-card record cannot be parsed");
  }
  return std::optional<Record>(std::move(r));
}

// The e-card status at `now`, derived from the card state it follows.
struct EffectiveStatus {
  ssc::v1::ECardStatus status = ssc::v1::E_CARD_STATUS_UNSPECIFIED;
  ssc::v1::ECardStatusReason reason = ssc::v1::E_CARD_STATUS_REASON_UNSPECIFIED;
  // Set for a temporary loss: the suspension ends by itself then.
  std::optional<absl::Time> suspended_until;
  bool operator==(const EffectiveStatus&) const = default;
};
EffectiveStatus StatusOf(const store::ECardRecord& r, absl::Time now);

// "ACTIVE", "CARD_LOST", ... (enum names without their prefixes).
std::string_view StatusName(ssc::v1::ECardStatus s);
std::string_view ReasonName(ssc::v1::ECardStatusReason r);

// Appends the status-change event of `r` (indexed in the status list).
void AppendStatusEvent(storage::WriteSet& ws, const store::ECardRecord& r,
                       const EffectiveStatus& st, std::string_view type);

absl::Time FromMicros(int64_t micros);
int64_t ToMicros(absl::Time t);

}  // namespace ssc::ecard
