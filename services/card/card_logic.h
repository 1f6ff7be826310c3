#pragma once

// The card service's domain logic (ssc.v1.CardService without gRPC): the
// physical card lifecycle, the holder register (one person, one valid card),
// card numbers and identification codes, the invalid-card list, and the
// events other services build on. The gRPC adapter (card_service.h) only
// converts status codes; every rule lives here.
//
// Every mutation runs through common::RunMutation: exactly once per
// (caller, request_id), under the person's lock, and as one atomic write of
// records, indexes, events, observer writes, audit and idempotency records.
// Nothing but the audit record is written when a mutation fails.
//
// Temporary loss expires by itself after `temp_loss_duration`: reads
// evaluate it lazily against the clock, and a mutation that touches such a
// card first materializes the expiry (state ACTIVE + event
// "card.temp_loss_expired") in its own write.
//
// Thread-safe: all methods may be called concurrently. AddObserver must be
// called before the first request.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/card/card_records.pb.h"
#include "services/card/lifecycle.h"
#include "services/card/regions.h"
#include "services/card/sequence_allocator.h"
#include "services/common/caller.h"
#include "services/common/mutation.h"
#include "ssc/v1/card.pb.h"
#include "storage/engine.h"
#include "storage/reencryption.h"

namespace ssc::card {

struct CardLogicOptions {
  // A temporary loss report returns to ACTIVE by itself after this long.
  absl::Duration temp_loss_duration = absl::Hours(24 * 7);
  // The county (6 digits); the default issuing region. Must be the region
  // table's county.
  std::string county_code = "510524";
  // Letter of card numbers assigned by instant issuance, per issuing region.
  std::map<std::string, char> instant_card_letter = {{"510524", 'X'}};
  // Letter for issuing regions not in the map.
  char default_instant_card_letter = 'X';
  int max_page_size = 500;
  int default_page_size = 50;
  // Application ids, instant card numbers and identification codes are
  // reserved in blocks of this many per durable write (see
  // SequenceAllocator): larger blocks mean fewer writes, and up to this many
  // unused numbers per sequence lost as gaps on a crash or restart.
  uint64_t sequence_block_size = 1000;
};

// What kind of change a CardChange reports.
enum class ChangeKind {
  kApplied,          // a new card (APPLIED, or ISSUED with instant issuance)
  kTransition,       // `operation` moved an existing card
  kTempLossExpired,  // a TEMP_LOST card returned to ACTIVE by itself
};

// One change of one card, reported to observers inside the write set that
// commits it.
struct CardChange {
  ChangeKind kind = ChangeKind::kTransition;
  Operation operation = Operation::kIssue;  // only for kTransition
  std::string event_type;                   // e.g. "card.issued"
  std::string person_key;                   // kPersons key (blind index)
  store::PersonRecord person;               // as it will be stored
  std::optional<store::CardRecord> before;  // nullopt for kApplied
  store::CardRecord after;
  absl::Time time;
  // +1: the person starts being a holder (持卡人) with this change; -1: the
  // person stops being one; 0: no change. A person holds from the moment a
  // first card is ISSUED until the person's card is CANCELLED without
  // replacement (a replacement in progress still holds). Summed over the
  // changes of one operation this is exact.
  int holder_delta = 0;
  // The person record is first written by this write set (imports of
  // history, services/ops/importer.h, replay only persons the store does
  // not hold yet): nothing derived from the person (an e-card, ...) can be
  // stored outside the write set, so observers need read only its pending
  // writes. False when unknown (live operations): observers read the store.
  bool person_new = false;
};

// Gets every card state change inside the same write set, so derived state
// (the e-card status, report counters) commits atomically with the card.
class CardObserver {
 public:
  virtual ~CardObserver() = default;
  // Adds the observer's writes to `ws`. An error aborts the whole operation
  // (nothing is written but the audit record).
  virtual absl::Status OnCardChange(storage::WriteSet& ws,
                                    const CardChange& change) = 0;
};

// Which holders a caller limited by relationship may act on: a mobile
// channel only on holders whose e-card is bound in its own channel. The
// e-card service keeps the bindings (ecard::ChannelHolderScope); the card
// service asks it through this interface. Implementations are thread-safe.
class HolderScope {
 public:
  virtual ~HolderScope() = default;
  // Whether `caller` may act on the person with kPersons key `person_key`.
  virtual absl::StatusOr<bool> Covers(const common::Caller& caller,
                                      std::string_view person_key) const = 0;
};

// A person with personal data decrypted (clear: do not return it to callers
// who may not see it).
struct PersonView {
  std::string key;  // kPersons key (blind index, 32 raw bytes)
  std::string id_number;
  std::string name;
  std::string phone;
  std::string address;
  ssc::v1::Gender gender = ssc::v1::GENDER_UNSPECIFIED;
  std::string birth_date;  // YYYY-MM-DD
  std::string region_code;
  absl::Time created_at;
  std::vector<std::string> application_ids;  // oldest first
  std::string current_application_id;        // empty when none
};

// A card with its holder, in clear, with the effective state (an expired
// temporary loss reads as ACTIVE).
struct CardView {
  std::string person_key;
  ssc::v1::Card card;  // masked == false
  std::string batch_reference;
};

// What paying a holder needs, read with as little decryption as possible
// (only the name and the current card's bank account are decrypted).
struct PayeeView {
  std::string person_key;   // kPersons key
  std::string name;         // clear
  std::string region_code;  // the person's township
  bool has_applications = false;
  bool has_card = false;  // a current card exists (fields below are set)
  ssc::v1::CardState card_state = ssc::v1::CARD_STATE_UNSPECIFIED;  // effective
  std::string bank_code;
  std::string bank_account;  // clear; empty when none
};

class CardLogic {
 public:
  // `ctx` members and `regions` must outlive the object.
  CardLogic(common::StoreContext ctx, const RegionTable* regions,
            CardLogicOptions options = {});

  // Not thread-safe: call before serving.
  void AddObserver(CardObserver* observer);
  // Not thread-safe: call before serving. `scope` must outlive the object.
  // Without one, callers limited by relationship reach no holder.
  void SetHolderScope(const HolderScope* scope) { holder_scope_ = scope; }
  // Whether `role` acts only on holders in its HolderScope (mobile channels:
  // GetCard and ReportLoss). Any other card answers NOT_FOUND "card not
  // found", as an unknown card does, naming no id.
  static bool LimitedByRelationship(common::Role role);
  // The observers added (services/ops/importer.h calls them for imported
  // history).
  const std::vector<CardObserver*>& observers() const { return observers_; }

  absl::StatusOr<ssc::v1::ApplyCardResponse> ApplyCard(
      const common::Caller& caller, const ssc::v1::ApplyCardRequest& req);
  absl::StatusOr<ssc::v1::SendToProductionResponse> SendToProduction(
      const common::Caller& caller,
      const ssc::v1::SendToProductionRequest& req);
  absl::StatusOr<ssc::v1::RecordProductionResponse> RecordProduction(
      const common::Caller& caller,
      const ssc::v1::RecordProductionRequest& req);
  absl::StatusOr<ssc::v1::IssueCardResponse> IssueCard(
      const common::Caller& caller, const ssc::v1::IssueCardRequest& req);
  absl::StatusOr<ssc::v1::ActivateCardResponse> ActivateCard(
      const common::Caller& caller, const ssc::v1::ActivateCardRequest& req);
  absl::StatusOr<ssc::v1::ReportLossResponse> ReportLoss(
      const common::Caller& caller, const ssc::v1::ReportLossRequest& req);
  absl::StatusOr<ssc::v1::CancelLossReportResponse> CancelLossReport(
      const common::Caller& caller,
      const ssc::v1::CancelLossReportRequest& req);
  absl::StatusOr<ssc::v1::ApplyReplacementResponse> ApplyReplacement(
      const common::Caller& caller,
      const ssc::v1::ApplyReplacementRequest& req);
  absl::StatusOr<ssc::v1::CancelCardResponse> CancelCard(
      const common::Caller& caller, const ssc::v1::CancelCardRequest& req);
  absl::StatusOr<ssc::v1::UpdateHolderContactResponse> UpdateHolderContact(
      const common::Caller& caller,
      const ssc::v1::UpdateHolderContactRequest& req);
  absl::StatusOr<ssc::v1::GetCardResponse> GetCard(
      const common::Caller& caller, const ssc::v1::GetCardRequest& req);
  absl::StatusOr<ssc::v1::GetPersonResponse> GetPerson(
      const common::Caller& caller, const ssc::v1::GetPersonRequest& req);
  absl::StatusOr<ssc::v1::ListCardEventsResponse> ListCardEvents(
      const common::Caller& caller, const ssc::v1::ListCardEventsRequest& req);
  absl::StatusOr<ssc::v1::CheckInvalidCardResponse> CheckInvalidCard(
      const common::Caller& caller,
      const ssc::v1::CheckInvalidCardRequest& req);

  // Read helpers for other services (no audit, no masking). The ID number
  // is validated (INVALID_ARGUMENT "id_number"); unknown -> nullopt.
  absl::StatusOr<std::optional<PersonView>> FindPersonByIdNumber(
      std::string_view id_number) const;
  absl::StatusOr<std::optional<PersonView>> LoadPersonByKey(
      std::string_view person_key) const;
  absl::StatusOr<std::optional<CardView>> LoadCard(
      std::string_view application_id) const;
  absl::StatusOr<std::optional<CardView>> FindCardByNumber(
      std::string_view card_number) const;
  // The holder of an ID number and their current card, for payouts
  // (INVALID_ARGUMENT for a malformed ID number, nullopt when unknown).
  // Thread-safe, read-only.
  absl::StatusOr<std::optional<PayeeView>> FindPayeeByIdNumber(
      std::string_view id_number) const;
  // FindPayeeByIdNumber for many ID numbers at once, with one batched read
  // of the holder register and one of the card records: result i is
  // INVALID_ARGUMENT for a malformed id_numbers[i], nullopt when unknown.
  // The outer status is a storage failure. Thread-safe, read-only.
  absl::StatusOr<std::vector<absl::StatusOr<std::optional<PayeeView>>>>
  FindPayeesByIdNumber(const std::vector<std::string_view>& id_numbers) const;

  // The lock key of a person: other services that change state derived from
  // a person's card (e.g. the e-card) lock it too, to serialize with cards.
  static std::string PersonLockKey(std::string_view person_key);
  // The kPersons key of an ID number (normalized, uppercase X).
  std::string PersonKey(std::string_view normalized_id_number) const;
  // Whether `role` sees personal data in clear (counter, admin).
  static bool SeesClearData(common::Role role);

  const CardLogicOptions& options() const { return options_; }
  const RegionTable& regions() const { return *regions_; }

 private:
  // One mutation's working state (defined in card_logic.cc).
  class Txn;

  // The card number and identification code an instant issuance will try,
  // taken from the sequences before locking. An empty member is taken anew.
  struct InstantCandidates {
    std::string card_number;
    std::string identification_code;
  };

  template <typename Response, typename Body>
  absl::StatusOr<Response> Mutate(const common::Caller& caller,
                                  std::string_view rpc,
                                  const google::protobuf::Message& request,
                                  std::string_view request_id,
                                  std::vector<std::string> lock_keys,
                                  Body body);
  // A plain lifecycle step of one card (hand-over, activation, unblock):
  // resolve and lock the holder, check the transition, let `stamp` set the
  // step's fields, record the change and answer with the card.
  template <typename Response, typename Request, typename Stamp>
  absl::StatusOr<Response> StepCard(const common::Caller& caller,
                                    std::string_view rpc, const Request& req,
                                    Operation op, std::string_view event_type,
                                    Stamp stamp);
  // Mutate for operations that may issue a card instantly (`instant_region`
  // non-null: the issuing region): takes candidates into `*candidates`,
  // locks their index keys in addition to `lock_keys`, and runs again with
  // the next candidates (a bounded number of times) when the body found one
  // taken meanwhile (it clears it and returns ABORTED).
  template <typename Response, typename Body>
  absl::StatusOr<Response> MutateInstant(
      const common::Caller& caller, std::string_view rpc,
      const google::protobuf::Message& request, std::string_view request_id,
      const std::vector<std::string>& lock_keys,
      const std::string* instant_region, InstantCandidates* candidates,
      Body body);
  // A new application id of `region` (no lock needed: see
  // SequenceAllocator).
  absl::StatusOr<std::string> NewApplicationId(std::string_view region);
  // Fills the empty members of `c` with the region's next card number and
  // identification code that the index does not know yet (read without
  // locks: the mutation checks again under the keys' locks).
  absl::Status FillInstantCandidates(std::string_view region,
                                     InstantCandidates* c);
  // Resolves a selector to (application id, person key) without locks (the
  // mapping never changes). `field` prefixes error fields, e.g. "card".
  absl::StatusOr<std::pair<std::string, std::string>> Resolve(
      const ssc::v1::CardSelector& selector, std::string_view field) const;
  absl::StatusOr<std::optional<std::string>> ApplicationIdOfNumber(
      std::string_view card_number) const;
  absl::StatusOr<PersonView> Decrypt(std::string_view key,
                                     const store::PersonRecord& rec) const;
  absl::StatusOr<ssc::v1::Card> ToProto(const store::CardRecord& rec,
                                        const PersonView& holder, bool clear,
                                        absl::Time now) const;
  ssc::v1::Person ToProto(const PersonView& p, bool clear) const;
  absl::StatusOr<CardView> MakeView(const store::CardRecord& rec,
                                    absl::Time now) const;
  char InstantLetter(std::string_view issuing_region) const;
  absl::Status ValidateIssuingRegion(std::string_view field,
                                     std::string_view code) const;
  // For a caller limited by relationship: OK when the person is in its
  // scope, else the answer an unknown card gets (ScopedNotFound). OK for
  // every other caller.
  absl::Status CheckHolderScope(const common::Caller& caller,
                                std::string_view person_key) const;
  // `s` as the caller may see it: for a caller limited by relationship a
  // card NOT_FOUND (which may name the card) becomes ScopedNotFound.
  static absl::Status ForScope(const common::Caller& caller, absl::Status s);
  static absl::Status ScopedNotFound();

  common::StoreContext ctx_;
  const RegionTable* regions_;
  CardLogicOptions options_;
  std::unique_ptr<SequenceAllocator> sequences_;
  std::vector<CardObserver*> observers_;
  const HolderScope* holder_scope_ = nullptr;
};

// Re-encryption after a data-key rotation (storage/reencryption.h) of the
// records the card side owns: persons (ID number, name, phone, address)
// and cards (bank account), each under the person lock its writers hold.
// Visits at most `limit` keys from `from`; thread-safe.
absl::StatusOr<storage::ReencryptStep> ReencryptPersons(
    const common::StoreContext& ctx, std::string_view from, size_t limit);
absl::StatusOr<storage::ReencryptStep> ReencryptCards(
    const common::StoreContext& ctx, std::string_view from, size_t limit);

}  // namespace ssc::card
