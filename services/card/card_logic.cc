#include "services/card/card_logic.h"

#include <algorithm>
#include <cstdint>
#include <set>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/timestamp.pb.h"
#include "services/card/id_number.h"
#include "services/common/errors.h"
#include "services/common/json.h"
#include "storage/key_codec.h"
#include "storage/pii_cipher.h"
#include "storage/status_macros.h"

namespace ssc::card {
namespace {

using common::InvalidField;
using Json = common::JsonObject;
using ssc::v1::CARD_STATE_ACTIVE;
using ssc::v1::CARD_STATE_APPLIED;
using ssc::v1::CARD_STATE_CANCELLED;
using ssc::v1::CARD_STATE_ISSUED;
using ssc::v1::CARD_STATE_LOST;
using ssc::v1::CARD_STATE_REPLACED;
using ssc::v1::CARD_STATE_TEMP_LOST;
using storage::KeyBuilder;
using storage::Table;

// Debian's Abseil has its own string_view type, distinct from std's.
absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

constexpr char kService[] = "ssc.v1.CardService/";
constexpr char kDefaultSpecVersion[] = "3.00";
constexpr char kMohrssAid[] = "D156000005";
constexpr int kValidityYears = 10;
constexpr int kRenewalWindowDays = 60;
constexpr size_t kMaxBatch = 1000;

int64_t Micros(absl::Time t) { return absl::ToUnixMicros(t); }

void SetTimestamp(int64_t micros, google::protobuf::Timestamp* ts) {
  int64_t seconds = micros / 1000000;
  int64_t rest = micros % 1000000;
  if (rest < 0) {
    rest += 1000000;
    --seconds;
  }
  ts->set_seconds(seconds);
  ts->set_nanos(static_cast<int32_t>(rest * 1000));
}

// Index and meta keys (KeyBuilder: order-preserving, unambiguous).
std::string CardNumberKey(std::string_view number) {
  return KeyBuilder().Str("cardno").Str(number).Build();
}
std::string IdCodeKey(std::string_view code) {
  return KeyBuilder().Str("idcode").Str(code).Build();
}
std::string InvalidKey(std::string_view number) {
  return KeyBuilder().Str("invalid").Str(number).Build();
}

// Lock keys (KeyLocks hashes them; they only need to be distinct). Whoever
// writes a card number's or identification code's index entry holds the
// lock of that number or code (instant issuance and production results
// alike), so no two cards can both claim one.
std::string CardNumberLock(std::string_view number) {
  return absl::StrCat("cardno/", Sv(number));
}
std::string IdCodeLock(std::string_view code) {
  return absl::StrCat("idcode/", Sv(code));
}

// Instant issuance tries at most this many candidate numbers per request
// (a candidate is only lost when a production result takes it between the
// unlocked look-up and the mutation).
constexpr int kMaxInstantAttempts = 8;

std::string InstantCardNumber(char letter, uint64_t n) {
  return absl::StrFormat("%c%08d", letter, n);
}
std::string InstantIdCode(std::string_view region, uint64_t n) {
  return absl::StrFormat("%s%s%016X", region, kMohrssAid, n);
}

// The invalid-card list entry: since (8, big-endian micros) | state (1) |
// temporary-loss expiry (8; 0 unless TEMP_LOST). A TEMP_LOST entry whose
// expiry has passed is no longer in force even before a mutation removes it.
std::string EncodeInvalid(int64_t since_micros, CardState state,
                          int64_t expires_micros) {
  std::string v;
  storage::PutFixed64BE(&v, static_cast<uint64_t>(since_micros));
  v.push_back(static_cast<char>(state));
  storage::PutFixed64BE(&v, static_cast<uint64_t>(expires_micros));
  return v;
}

bool IsApplicationIdShape(std::string_view id) {
  if (id.size() != 16 || id[0] != 'A') return false;
  return std::all_of(id.begin() + 1, id.end(),
                     [](char c) { return c >= '0' && c <= '9'; });
}

absl::Status ValidateApplicationId(std::string_view field,
                                   std::string_view id) {
  if (id.empty()) return InvalidField(field, "is required");
  if (!IsApplicationIdShape(id)) {
    return InvalidField(field,
                        "must be \"A\" + 6-digit region + 9 digits, e.g. "
                        "A510524000000001");
  }
  return absl::OkStatus();
}

absl::Status ValidateReference(std::string_view field, std::string_view ref,
                               size_t max) {
  if (ref.size() > max) {
    return InvalidField(field,
                        absl::StrCat("must be at most ", max, " characters"));
  }
  for (char c : ref) {
    if (c < 0x20 || c > 0x7e) {
      return InvalidField(field, "must consist of printable ASCII characters");
    }
  }
  return absl::OkStatus();
}

absl::Status AlreadyExists(std::string_view field, std::string_view what) {
  absl::Status s =
      absl::AlreadyExistsError(absl::StrCat(Sv(field), ": ", Sv(what)));
  s.SetPayload(common::kFieldPayload, absl::Cord(Sv(field)));
  return s;
}

// Ten years on; 29 February becomes 28 February when the target year has
// no leap day (the card is never valid longer than ten years).
absl::CivilDay AddYears(absl::CivilDay d, int years) {
  absl::CivilDay r(d.year() + years, d.month(), d.day());
  if (r.month() != d.month())
    r = absl::CivilDay(d.year() + years, d.month(), 28);
  return r;
}

std::string FormatTime(int64_t micros) {
  return absl::FormatTime(absl::RFC3339_sec, absl::FromUnixMicros(micros),
                          absl::UTCTimeZone());
}

// Whether the person counts as a holder (持卡人) when `latest` is the
// person's newest card: from the first ISSUED card until the card is
// CANCELLED without replacement. A card that replaces another is only ever
// created for a holder (replacement needs ISSUED or later), so the person
// keeps holding while the replacement is produced.
bool IsHolder(const store::CardRecord* latest) {
  if (latest == nullptr) return false;
  if (latest->state() == CARD_STATE_CANCELLED) return false;
  return latest->issued_micros() != 0 || !latest->replaces().empty();
}

bool TempLossExpired(const store::CardRecord& c, absl::Time now) {
  return c.state() == CARD_STATE_TEMP_LOST &&
         c.temp_loss_expires_micros() <= Micros(now);
}

// The card as it is now: a temporary loss whose time is up reads as ACTIVE.
store::CardRecord Effective(store::CardRecord c, absl::Time now) {
  if (TempLossExpired(c, now)) {
    c.set_state(CARD_STATE_ACTIVE);
    c.set_lost_micros(0);
    c.set_temp_loss_expires_micros(0);
  }
  return c;
}

absl::StatusOr<store::CardRecord> ParseCard(std::string_view app_id,
                                            const std::string& bytes) {
  store::CardRecord rec;
  if (!rec.ParseFromString(bytes)) {
    return absl::DataLossError(
        absl::StrCat("card record ", Sv(app_id), " cannot be parsed"));
  }
  return rec;
}

absl::StatusOr<store::PersonRecord> ParsePerson(const std::string& bytes) {
  store::PersonRecord rec;
  if (!rec.ParseFromString(bytes)) {
    return absl::DataLossError("person record cannot be parsed");
  }
  return rec;
}

std::string Aad(std::string_view record_key, std::string_view field) {
  return absl::StrCat(Sv(record_key), "/", Sv(field));
}

// The card part of a payee: state (as Effective(): an expired temporary
// loss has ended), bank and account in clear.
absl::Status FillPayeeCard(const storage::PiiCipher& cipher,
                           const store::CardRecord& rec, absl::Time now,
                           PayeeView* v) {
  v->has_card = true;
  v->card_state = TempLossExpired(rec, now) ? CARD_STATE_ACTIVE : rec.state();
  v->bank_code = rec.bank_code();
  if (!rec.bank_account().empty()) {
    ASSIGN_OR_RETURN(v->bank_account,
                     cipher.Decrypt(rec.bank_account(),
                                    Aad(rec.application_id(), "bank_account")));
  }
  return absl::OkStatus();
}

}  // namespace

// ---------------------------------------------------------------------------
// Txn: the reads and writes of one mutation, under its locks.

class CardLogic::Txn {
 public:
  // A person loaded for change: the stored record and its clear view.
  struct Person {
    std::string key;
    store::PersonRecord rec;
    PersonView view;
  };

  Txn(const CardLogic* logic, storage::WriteSet* ws, absl::Time now)
      : logic_(logic), ws_(ws), now_(now) {}

  absl::Time now() const { return now_; }
  storage::WriteSet& ws() { return *ws_; }

  absl::StatusOr<std::optional<std::string>> Get(Table t,
                                                 std::string_view key) {
    if (auto pending = ws_->Pending(t, key); pending.has_value()) {
      return *pending;
    }
    return logic_->ctx_.engine->Get(t, key);
  }

  absl::StatusOr<std::optional<Person>> FindPerson(std::string_view key) {
    ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                     Get(Table::kPersons, key));
    if (!bytes.has_value()) return std::nullopt;
    Person p;
    p.key = std::string(key);
    ASSIGN_OR_RETURN(p.rec, ParsePerson(*bytes));
    ASSIGN_OR_RETURN(p.view, logic_->Decrypt(key, p.rec));
    return p;
  }

  absl::StatusOr<Person> LoadPerson(std::string_view key) {
    ASSIGN_OR_RETURN(std::optional<Person> p, FindPerson(key));
    if (!p.has_value()) return common::NotFound("person");
    return *std::move(p);
  }

  absl::StatusOr<std::optional<store::CardRecord>> FindCard(
      std::string_view app_id) {
    ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                     Get(Table::kCards, app_id));
    if (!bytes.has_value()) return std::nullopt;
    return ParseCard(app_id, *bytes);
  }

  absl::StatusOr<store::CardRecord> LoadCard(std::string_view app_id) {
    ASSIGN_OR_RETURN(std::optional<store::CardRecord> c, FindCard(app_id));
    if (!c.has_value())
      return common::NotFound(absl::StrCat("card ", Sv(app_id)));
    return *std::move(c);
  }

  // Encrypts the clear view into the record and stages it.
  absl::Status PutPerson(Person& p) {
    const storage::PiiCipher& cipher = *logic_->ctx_.cipher;
    auto enc = [&](std::string_view field,
                   const std::string& value) -> absl::StatusOr<std::string> {
      if (value.empty()) return std::string();
      return cipher.Encrypt(value, Aad(p.key, field));
    };
    ASSIGN_OR_RETURN(std::string id, enc("id_number", p.view.id_number));
    ASSIGN_OR_RETURN(std::string name, enc("name", p.view.name));
    ASSIGN_OR_RETURN(std::string phone, enc("phone", p.view.phone));
    ASSIGN_OR_RETURN(std::string address, enc("address", p.view.address));
    p.rec.set_id_number(std::move(id));
    p.rec.set_name(std::move(name));
    p.rec.set_phone(std::move(phone));
    p.rec.set_address(std::move(address));
    p.rec.set_gender(p.view.gender);
    p.rec.set_birth_date(p.view.birth_date);
    p.rec.set_region_code(p.view.region_code);
    p.rec.set_updated_micros(Micros(now_));
    p.rec.clear_application_ids();
    for (const std::string& a : p.view.application_ids) {
      p.rec.add_application_ids(a);
    }
    p.rec.set_current_application_id(p.view.current_application_id);
    ws_->Put(Table::kPersons, p.key, p.rec.SerializeAsString());
    return absl::OkStatus();
  }

  absl::Status SetBankAccount(store::CardRecord& c, std::string_view account) {
    ASSIGN_OR_RETURN(std::string enc,
                     logic_->ctx_.cipher->Encrypt(
                         account, Aad(c.application_id(), "bank_account")));
    c.set_bank_account(std::move(enc));
    return absl::OkStatus();
  }

  // Instant issuance: number, identification code, validity, bank account.
  // `cand` was taken from the sequences before locking and its index keys
  // are locked. A candidate that a production result took meanwhile is
  // cleared and ABORTED returned: the caller retries with the next one.
  absl::Status ProduceInstantly(store::CardRecord& c,
                                std::string_view bank_account,
                                InstantCandidates& cand) {
    ASSIGN_OR_RETURN(std::optional<std::string> number_owner,
                     Get(Table::kIndex, CardNumberKey(cand.card_number)));
    ASSIGN_OR_RETURN(std::optional<std::string> code_owner,
                     Get(Table::kIndex, IdCodeKey(cand.identification_code)));
    if (number_owner.has_value() || code_owner.has_value()) {
      std::string taken;
      if (number_owner.has_value()) {
        taken = absl::StrCat("card number ", cand.card_number);
        cand.card_number.clear();
      }
      if (code_owner.has_value()) {
        absl::StrAppend(&taken, taken.empty() ? "" : " and ",
                        "identification code ", cand.identification_code);
        cand.identification_code.clear();
      }
      return absl::AbortedError(
          absl::StrCat(taken, " was taken concurrently; retry"));
    }
    c.set_card_number(cand.card_number);
    c.set_identification_code(cand.identification_code);
    c.set_spec_version(kDefaultSpecVersion);
    const absl::CivilDay today = absl::ToCivilDay(now_, BeijingTime());
    c.set_valid_from(FormatDate(today));
    c.set_valid_until(FormatDate(AddYears(today, kValidityYears)));
    RETURN_IF_ERROR(SetBankAccount(c, bank_account));
    c.set_produced_micros(Micros(now_));
    c.set_issued_micros(Micros(now_));
    c.set_state(CARD_STATE_ISSUED);
    ws_->Put(Table::kIndex, CardNumberKey(c.card_number()), c.application_id());
    ws_->Put(Table::kIndex, IdCodeKey(c.identification_code()),
             c.application_id());
    return absl::OkStatus();
  }

  // Stages `after`, its invalid-list entry, its event and the observers'
  // writes. `previous_latest` is the person's newest card before this change
  // when `after` is a new card (for the holder count).
  absl::Status Change(ChangeKind kind, Operation op,
                      std::string_view event_type, const Person& person,
                      const std::optional<store::CardRecord>& before,
                      store::CardRecord& after,
                      const store::CardRecord* previous_latest, Json extra) {
    after.set_updated_micros(Micros(now_));
    ws_->Put(Table::kCards, after.application_id(), after.SerializeAsString());
    const CardState from =
        before.has_value() ? before->state() : ssc::v1::CARD_STATE_UNSPECIFIED;
    if (!after.card_number().empty() &&
        (IsInvalidState(after.state()) || IsInvalidState(from))) {
      if (IsInvalidState(after.state())) {
        if (after.state() != from) {
          const int64_t since = after.state() == CARD_STATE_TEMP_LOST ||
                                        after.state() == CARD_STATE_LOST
                                    ? after.lost_micros()
                                    : after.closed_micros();
          ws_->Put(Table::kIndex, InvalidKey(after.card_number()),
                   EncodeInvalid(since, after.state(),
                                 after.temp_loss_expires_micros()));
        }
      } else {
        ws_->Delete(Table::kIndex, InvalidKey(after.card_number()));
      }
    }

    const store::CardRecord* holder_before =
        before.has_value() ? &*before : previous_latest;
    const int delta = static_cast<int>(IsHolder(&after)) -
                      static_cast<int>(IsHolder(holder_before));

    Json payload;
    payload.Str("application_id", after.application_id())
        .Str("card_number", after.card_number())
        .Str("region_code", after.region_code())
        .Str("issuing_region_code", after.issuing_region_code())
        .Str("holder_id_number", storage::MaskIdNumber(person.view.id_number))
        .Str("holder_name", storage::MaskName(person.view.name))
        .Str("state_before", before.has_value() ? StateName(from) : "")
        .Str("state_after", StateName(after.state()))
        .Bool("holder_start", delta > 0)
        .Bool("holder_stop", delta < 0);
    std::string details = payload.Done();
    const std::string more = extra.Done();
    if (more.size() > 2) {  // merge the extra members into the object
      details.pop_back();
      absl::StrAppend(&details, ",", more.substr(1));
    }
    storage::EventInput e;
    e.type = std::string(event_type);
    e.entity_type = "card";
    e.entity_id = after.application_id();
    e.payload = std::move(details);
    e.also_index.emplace_back("person", absl::BytesToHexString(person.key));
    ws_->AppendEvent(std::move(e));

    CardChange change;
    change.kind = kind;
    change.operation = op;
    change.event_type = std::string(event_type);
    change.person_key = person.key;
    change.person = person.rec;
    change.before = before;
    change.after = after;
    change.time = now_;
    change.holder_delta = delta;
    for (CardObserver* o : logic_->observers_) {
      RETURN_IF_ERROR(o->OnCardChange(*ws_, change));
    }
    return absl::OkStatus();
  }

  void PersonEvent(std::string_view type, const Person& p, Json extra) {
    storage::EventInput e;
    e.type = std::string(type);
    e.entity_type = "person";
    e.entity_id = absl::BytesToHexString(p.key);
    Json payload;
    payload.Str("id_number", storage::MaskIdNumber(p.view.id_number))
        .Str("name", storage::MaskName(p.view.name))
        .Str("region_code", p.view.region_code);
    std::string details = payload.Done();
    const std::string more = extra.Done();
    if (more.size() > 2) {
      details.pop_back();
      absl::StrAppend(&details, ",", more.substr(1));
    }
    e.payload = std::move(details);
    ws_->AppendEvent(std::move(e));
  }

  // A TEMP_LOST card whose time is up becomes ACTIVE in this write, before
  // the operation looks at its state.
  absl::Status MaterializeExpiry(const Person& person, store::CardRecord& c) {
    if (!TempLossExpired(c, now_)) return absl::OkStatus();
    const store::CardRecord before = c;
    Json extra;
    extra.Str("expired_at", FormatTime(c.temp_loss_expires_micros()));
    c.set_state(CARD_STATE_ACTIVE);
    c.set_lost_micros(0);
    c.set_temp_loss_expires_micros(0);
    return Change(ChangeKind::kTempLossExpired, Operation::kCancelLoss,
                  "card.temp_loss_expired", person, before, c, nullptr,
                  std::move(extra));
  }

  // Loads a card and its holder for a transition.
  absl::Status LoadForChange(std::string_view app_id,
                             std::string_view person_key, Person* person,
                             store::CardRecord* card) {
    ASSIGN_OR_RETURN(*card, LoadCard(app_id));
    if (card->person_key() != person_key) {
      return absl::InternalError(
          absl::StrCat("card ", Sv(app_id), " changed holder"));
    }
    ASSIGN_OR_RETURN(*person, LoadPerson(person_key));
    return MaterializeExpiry(*person, *card);
  }

  // Applies `op` to `card` (state only; the caller sets the other fields),
  // returning the state before.
  absl::StatusOr<store::CardRecord> Transit(store::CardRecord& card,
                                            Operation op) {
    store::CardRecord before = card;
    ASSIGN_OR_RETURN(CardState to,
                     Transition(card.state(), op,
                                absl::StrCat("card ", card.application_id())));
    card.set_state(to);
    return before;
  }

 private:
  const CardLogic* logic_;
  storage::WriteSet* ws_;
  absl::Time now_;
};

// ---------------------------------------------------------------------------

CardLogic::CardLogic(common::StoreContext ctx, const RegionTable* regions,
                     CardLogicOptions options)
    : ctx_(ctx),
      regions_(regions),
      options_(std::move(options)),
      sequences_(std::make_unique<SequenceAllocator>(
          ctx_.engine, ctx_.locks, options_.sequence_block_size)) {}

void CardLogic::AddObserver(CardObserver* observer) {
  observers_.push_back(observer);
}

std::string CardLogic::PersonLockKey(std::string_view person_key) {
  return absl::StrCat("person/", Sv(person_key));
}

std::string CardLogic::PersonKey(std::string_view normalized_id_number) const {
  return ctx_.cipher->BlindIndex("id_number", normalized_id_number);
}

bool CardLogic::SeesClearData(common::Role role) {
  return role == common::Role::kCounter || role == common::Role::kAdmin;
}

char CardLogic::InstantLetter(std::string_view issuing_region) const {
  auto it = options_.instant_card_letter.find(std::string(issuing_region));
  return it != options_.instant_card_letter.end()
             ? it->second
             : options_.default_instant_card_letter;
}

absl::Status CardLogic::ValidateIssuingRegion(std::string_view field,
                                              std::string_view code) const {
  RETURN_IF_ERROR(ValidateRegionCode6(field, code));
  if (code != options_.county_code && code != regions_->County().code &&
      options_.instant_card_letter.count(std::string(code)) == 0) {
    return InvalidField(field, absl::StrCat("region ", Sv(code),
                                            " is not an issuing region of "
                                            "this service"));
  }
  return absl::OkStatus();
}

template <typename Response, typename Body>
absl::StatusOr<Response> CardLogic::Mutate(
    const common::Caller& caller, std::string_view rpc,
    const google::protobuf::Message& request, std::string_view request_id,
    std::vector<std::string> lock_keys, Body body) {
  Response response;
  const std::string method = absl::StrCat(kService, Sv(rpc));
  common::MutationCall call{caller, method, request_id, request};
  absl::Status s =
      common::RunMutation(ctx_, call, lock_keys, &response,
                          [&](storage::WriteSet& ws, google::protobuf::Message*,
                              std::string* target) -> absl::Status {
                            Txn txn(this, &ws, ctx_.clock->Now());
                            return body(txn, response, target);
                          });
  if (!s.ok()) return s;
  return response;
}

template <typename Response, typename Request, typename Stamp>
absl::StatusOr<Response> CardLogic::StepCard(const common::Caller& caller,
                                             std::string_view rpc,
                                             const Request& req, Operation op,
                                             std::string_view event_type,
                                             Stamp stamp) {
  absl::StatusOr<std::pair<std::string, std::string>> r =
      Resolve(req.card(), "card");
  std::vector<std::string> locks;
  if (r.ok()) locks.push_back(PersonLockKey(r->second));
  const bool clear = SeesClearData(caller.role);
  return Mutate<Response>(
      caller, rpc, req, req.request_id(), std::move(locks),
      [&](Txn& txn, Response& resp, std::string* target) -> absl::Status {
        RETURN_IF_ERROR(r.status());
        *target = absl::StrCat("card ", r->first);
        Txn::Person person;
        store::CardRecord card;
        RETURN_IF_ERROR(txn.LoadForChange(r->first, r->second, &person, &card));
        ASSIGN_OR_RETURN(store::CardRecord before, txn.Transit(card, op));
        stamp(card, txn.now());
        RETURN_IF_ERROR(txn.Change(ChangeKind::kTransition, op, event_type,
                                   person, before, card, nullptr, Json()));
        ASSIGN_OR_RETURN(*resp.mutable_card(),
                         ToProto(card, person.view, clear, txn.now()));
        return absl::OkStatus();
      });
}

template <typename Response, typename Body>
absl::StatusOr<Response> CardLogic::MutateInstant(
    const common::Caller& caller, std::string_view rpc,
    const google::protobuf::Message& request, std::string_view request_id,
    const std::vector<std::string>& lock_keys,
    const std::string* instant_region, InstantCandidates* candidates,
    Body body) {
  for (int attempt = 1;; ++attempt) {
    std::vector<std::string> locks = lock_keys;
    absl::Status candidate_error;
    if (instant_region != nullptr) {
      candidate_error = FillInstantCandidates(*instant_region, candidates);
      if (candidate_error.ok()) {
        locks.push_back(CardNumberLock(candidates->card_number));
        locks.push_back(IdCodeLock(candidates->identification_code));
      }
    }
    absl::StatusOr<Response> result = Mutate<Response>(
        caller, rpc, request, request_id, std::move(locks),
        [&](Txn& txn, Response& resp, std::string* target) -> absl::Status {
          RETURN_IF_ERROR(candidate_error);
          return body(txn, resp, target);
        });
    const bool candidate_taken =
        instant_region != nullptr && candidate_error.ok() && !result.ok() &&
        result.status().code() == absl::StatusCode::kAborted &&
        (candidates->card_number.empty() ||
         candidates->identification_code.empty());
    if (!candidate_taken || attempt >= kMaxInstantAttempts) return result;
  }
}

absl::StatusOr<std::string> CardLogic::NewApplicationId(
    std::string_view region) {
  ASSIGN_OR_RETURN(uint64_t n,
                   sequences_->Next("application", region, 999999999));
  return absl::StrFormat("A%s%09d", region, n);
}

absl::Status CardLogic::FillInstantCandidates(std::string_view region,
                                              InstantCandidates* c) {
  // Numbers the index already knows (e.g. taken by a production result)
  // are skipped here, so that the mutation rarely has to retry.
  const char letter = InstantLetter(region);
  while (c->card_number.empty()) {
    ASSIGN_OR_RETURN(uint64_t n,
                     sequences_->Next("card_number", region, 99999999));
    std::string number = InstantCardNumber(letter, n);
    ASSIGN_OR_RETURN(std::optional<std::string> owner,
                     ctx_.engine->Get(Table::kIndex, CardNumberKey(number)));
    if (!owner.has_value()) c->card_number = std::move(number);
  }
  while (c->identification_code.empty()) {
    ASSIGN_OR_RETURN(uint64_t n, sequences_->Next("identification_code", region,
                                                  UINT64_MAX - 1));
    std::string code = InstantIdCode(region, n);
    ASSIGN_OR_RETURN(std::optional<std::string> owner,
                     ctx_.engine->Get(Table::kIndex, IdCodeKey(code)));
    if (!owner.has_value()) c->identification_code = std::move(code);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> CardLogic::ApplicationIdOfNumber(
    std::string_view card_number) const {
  return ctx_.engine->Get(Table::kIndex, CardNumberKey(card_number));
}

bool CardLogic::LimitedByRelationship(common::Role role) {
  return role == common::Role::kMobileChannel;
}

absl::Status CardLogic::ScopedNotFound() { return common::NotFound("card"); }

absl::Status CardLogic::ForScope(const common::Caller& caller, absl::Status s) {
  if (LimitedByRelationship(caller.role) && absl::IsNotFound(s)) {
    return ScopedNotFound();
  }
  return s;
}

absl::Status CardLogic::CheckHolderScope(const common::Caller& caller,
                                         std::string_view person_key) const {
  if (!LimitedByRelationship(caller.role)) return absl::OkStatus();
  if (holder_scope_ == nullptr) return ScopedNotFound();
  ASSIGN_OR_RETURN(bool covered, holder_scope_->Covers(caller, person_key));
  return covered ? absl::OkStatus() : ScopedNotFound();
}

absl::StatusOr<std::pair<std::string, std::string>> CardLogic::Resolve(
    const ssc::v1::CardSelector& selector, std::string_view field) const {
  std::string app_id;
  switch (selector.selector_case()) {
    case ssc::v1::CardSelector::kApplicationId: {
      const std::string f = absl::StrCat(Sv(field), ".application_id");
      RETURN_IF_ERROR(ValidateApplicationId(f, selector.application_id()));
      app_id = selector.application_id();
      break;
    }
    case ssc::v1::CardSelector::kCardNumber: {
      const std::string f = absl::StrCat(Sv(field), ".card_number");
      RETURN_IF_ERROR(ValidateCardNumber(f, selector.card_number()));
      ASSIGN_OR_RETURN(std::optional<std::string> id,
                       ApplicationIdOfNumber(selector.card_number()));
      if (!id.has_value()) {
        return common::NotFound(
            absl::StrCat("card number ", selector.card_number()));
      }
      app_id = *std::move(id);
      break;
    }
    default:
      return InvalidField(field,
                          "give the card's application_id or card_number");
  }
  ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                   ctx_.engine->Get(Table::kCards, app_id));
  if (!bytes.has_value())
    return common::NotFound(absl::StrCat("card ", app_id));
  ASSIGN_OR_RETURN(store::CardRecord rec, ParseCard(app_id, *bytes));
  return std::make_pair(app_id, rec.person_key());
}

absl::StatusOr<PersonView> CardLogic::Decrypt(
    std::string_view key, const store::PersonRecord& rec) const {
  auto dec = [&](std::string_view field,
                 const std::string& value) -> absl::StatusOr<std::string> {
    if (value.empty()) return std::string();
    return ctx_.cipher->Decrypt(value, Aad(key, field));
  };
  PersonView v;
  v.key = std::string(key);
  ASSIGN_OR_RETURN(v.id_number, dec("id_number", rec.id_number()));
  ASSIGN_OR_RETURN(v.name, dec("name", rec.name()));
  ASSIGN_OR_RETURN(v.phone, dec("phone", rec.phone()));
  ASSIGN_OR_RETURN(v.address, dec("address", rec.address()));
  v.gender = rec.gender();
  v.birth_date = rec.birth_date();
  v.region_code = rec.region_code();
  v.created_at = absl::FromUnixMicros(rec.created_micros());
  v.application_ids.assign(rec.application_ids().begin(),
                           rec.application_ids().end());
  v.current_application_id = rec.current_application_id();
  return v;
}

absl::StatusOr<ssc::v1::Card> CardLogic::ToProto(
    const store::CardRecord& stored, const PersonView& holder, bool clear,
    absl::Time now) const {
  const store::CardRecord rec = Effective(stored, now);
  ssc::v1::Card c;
  c.set_application_id(rec.application_id());
  c.set_card_number(rec.card_number());
  c.set_identification_code(rec.identification_code());
  c.set_spec_version(rec.spec_version());
  c.set_state(rec.state());
  c.set_holder_id_number(clear ? holder.id_number
                               : storage::MaskIdNumber(holder.id_number));
  c.set_holder_name(clear ? holder.name : storage::MaskName(holder.name));
  c.set_region_code(rec.region_code());
  c.set_issuing_region_code(rec.issuing_region_code());
  c.set_bank_code(rec.bank_code());
  if (!rec.bank_account().empty()) {
    ASSIGN_OR_RETURN(
        std::string account,
        ctx_.cipher->Decrypt(rec.bank_account(),
                             Aad(rec.application_id(), "bank_account")));
    c.set_bank_account(clear ? account : storage::MaskAccount(account));
  }
  c.set_valid_from(rec.valid_from());
  c.set_valid_until(rec.valid_until());
  auto ts = [](int64_t micros,
               google::protobuf::Timestamp* (ssc::v1::Card::*mutable_fn)(),
               ssc::v1::Card& card) {
    if (micros != 0) SetTimestamp(micros, (card.*mutable_fn)());
  };
  ts(rec.applied_micros(), &ssc::v1::Card::mutable_applied_at, c);
  ts(rec.produced_micros(), &ssc::v1::Card::mutable_produced_at, c);
  ts(rec.issued_micros(), &ssc::v1::Card::mutable_issued_at, c);
  ts(rec.activated_micros(), &ssc::v1::Card::mutable_activated_at, c);
  ts(rec.lost_micros(), &ssc::v1::Card::mutable_lost_at, c);
  ts(rec.temp_loss_expires_micros(),
     &ssc::v1::Card::mutable_temp_loss_expires_at, c);
  ts(rec.closed_micros(), &ssc::v1::Card::mutable_closed_at, c);
  c.set_replaced_by(rec.replaced_by());
  c.set_replaces(rec.replaces());
  c.set_replacement_reason(rec.replacement_reason());
  c.set_cancel_reason(rec.cancel_reason());
  c.set_instant_issuance(rec.instant_issuance());
  c.set_masked(!clear);
  return c;
}

ssc::v1::Person CardLogic::ToProto(const PersonView& p, bool clear) const {
  ssc::v1::Person out;
  out.set_id_number(clear ? p.id_number : storage::MaskIdNumber(p.id_number));
  out.set_name(clear ? p.name : storage::MaskName(p.name));
  out.set_gender(p.gender);
  // The birth date is part of the ID number: masked callers get the year.
  out.set_birth_date(clear || p.birth_date.size() < 4
                         ? p.birth_date
                         : absl::StrCat(p.birth_date.substr(0, 4), "-**-**"));
  out.set_phone(clear || p.phone.empty() ? p.phone
                                         : storage::MaskPhone(p.phone));
  out.set_address(clear || p.address.empty() ? p.address
                                             : storage::MaskAddress(p.address));
  out.set_region_code(p.region_code);
  out.set_masked(!clear);
  SetTimestamp(absl::ToUnixMicros(p.created_at), out.mutable_created_at());
  return out;
}

absl::StatusOr<CardView> CardLogic::MakeView(const store::CardRecord& rec,
                                             absl::Time now) const {
  ASSIGN_OR_RETURN(std::optional<PersonView> person,
                   LoadPersonByKey(rec.person_key()));
  if (!person.has_value()) {
    return absl::DataLossError(
        absl::StrCat("card ", rec.application_id(), " has no person record"));
  }
  CardView v;
  v.person_key = rec.person_key();
  ASSIGN_OR_RETURN(v.card, ToProto(rec, *person, /*clear=*/true, now));
  v.batch_reference = rec.batch_reference();
  return v;
}

// ---------------------------------------------------------------------------
// Mutations.

absl::StatusOr<ssc::v1::ApplyCardResponse> CardLogic::ApplyCard(
    const common::Caller& caller, const ssc::v1::ApplyCardRequest& req) {
  const std::string issuing = req.issuing_region_code().empty()
                                  ? options_.county_code
                                  : req.issuing_region_code();
  std::string id_for_lock = req.person().id_number();
  if (!id_for_lock.empty() && id_for_lock.back() == 'x')
    id_for_lock.back() = 'X';
  const std::string person_key = PersonKey(id_for_lock);
  const ssc::v1::PersonInput& in = req.person();
  // The request is validated before numbers are taken, so that bad input
  // (e.g. an unknown issuing region) takes none; the refusal is still
  // reported from inside the mutation, audited like every other.
  auto validate = [&]() -> absl::StatusOr<IdNumberInfo> {
    ASSIGN_OR_RETURN(IdNumberInfo id,
                     ValidateIdNumber("person.id_number", in.id_number(),
                                      ctx_.clock->Now()));
    RETURN_IF_ERROR(ValidateName("person.name", in.name()));
    if (!in.phone().empty()) {
      RETURN_IF_ERROR(ValidatePhone("person.phone", in.phone()));
    }
    RETURN_IF_ERROR(ValidateAddress("person.address", in.address()));
    if (in.region_code().empty()) {
      return InvalidField("person.region_code", "is required");
    }
    if (!regions_->IsTownship(in.region_code())) {
      return InvalidField(
          "person.region_code",
          absl::StrCat(in.region_code(),
                       " is not a township of the region table"));
    }
    RETURN_IF_ERROR(ValidateBankCode("bank_code", req.bank_code()));
    RETURN_IF_ERROR(ValidateReference("photo_ref", req.photo_ref(), 256));
    RETURN_IF_ERROR(ValidateIssuingRegion("issuing_region_code", issuing));
    if (req.instant_issuance()) {
      RETURN_IF_ERROR(ValidateBankAccount("bank_account", req.bank_account()));
    } else if (!req.bank_account().empty()) {
      return InvalidField("bank_account",
                          "is given by the card bureau's production "
                          "result unless instant_issuance is set");
    }
    return id;
  };
  absl::StatusOr<IdNumberInfo> checked = validate();
  // Numbers come from the allocator before locking: no lock serializes the
  // applications of a region. A replay or refusal merely wastes them.
  std::string app_id;
  if (checked.ok()) {
    absl::StatusOr<std::string> allocated = NewApplicationId(issuing);
    if (allocated.ok()) {
      app_id = *std::move(allocated);
    } else {
      checked = allocated.status();
    }
  }
  const bool instant = checked.ok() && req.instant_issuance();
  InstantCandidates candidates;
  const bool clear = SeesClearData(caller.role);
  return MutateInstant<ssc::v1::ApplyCardResponse>(
      caller, "ApplyCard", req, req.request_id(), {PersonLockKey(person_key)},
      instant ? &issuing : nullptr, &candidates,
      [&](Txn& txn, ssc::v1::ApplyCardResponse& resp,
          std::string* target) -> absl::Status {
        RETURN_IF_ERROR(checked.status());
        const IdNumberInfo& id = *checked;
        *target = absl::StrCat("person ", storage::MaskIdNumber(id.normalized));

        ASSIGN_OR_RETURN(std::optional<Txn::Person> existing,
                         txn.FindPerson(person_key));
        Txn::Person person;
        std::optional<store::CardRecord> previous_latest;
        bool created = false;
        if (existing.has_value()) {
          person = *std::move(existing);
          if (person.view.id_number != id.normalized) {
            return absl::InternalError("person record does not match its key");
          }
          if (!person.view.current_application_id.empty()) {
            ASSIGN_OR_RETURN(store::CardRecord current,
                             txn.LoadCard(person.view.current_application_id));
            current = Effective(std::move(current), txn.now());
            if (!IsTerminalState(current.state())) {
              return common::WrongState(
                  absl::StrCat("the person's card ", current.application_id()),
                  StateName(current.state()),
                  "a person has at most one valid card; apply for a "
                  "replacement instead");
            }
          }
          if (!person.view.application_ids.empty()) {
            ASSIGN_OR_RETURN(previous_latest,
                             txn.LoadCard(person.view.application_ids.back()));
          }
        } else {
          created = true;
          person.key = person_key;
          person.view.key = person_key;
          person.view.id_number = id.normalized;
          person.view.gender = id.gender;
          person.view.birth_date = id.birth_date_text;
          person.view.created_at = txn.now();
          person.rec.set_created_micros(Micros(txn.now()));
        }
        person.view.name = in.name();
        if (!in.phone().empty() || created) person.view.phone = in.phone();
        if (!in.address().empty() || created)
          person.view.address = in.address();
        person.view.region_code = in.region_code();

        store::CardRecord card;
        card.set_application_id(app_id);
        card.set_person_key(person_key);
        card.set_state(CARD_STATE_APPLIED);
        card.set_region_code(in.region_code());
        card.set_issuing_region_code(issuing);
        card.set_bank_code(req.bank_code());
        card.set_photo_ref(req.photo_ref());
        card.set_applied_micros(Micros(txn.now()));
        card.set_instant_issuance(req.instant_issuance());
        if (req.instant_issuance()) {
          RETURN_IF_ERROR(
              txn.ProduceInstantly(card, req.bank_account(), candidates));
        }
        person.view.application_ids.push_back(app_id);
        person.view.current_application_id = app_id;
        RETURN_IF_ERROR(txn.PutPerson(person));
        if (created) txn.PersonEvent("person.created", person, Json());

        Json extra;
        extra.Bool("instant_issuance", req.instant_issuance())
            .Bool("person_created", created)
            .Str("bank_code", req.bank_code());
        RETURN_IF_ERROR(txn.Change(
            ChangeKind::kApplied, Operation::kIssue, "card.applied", person,
            std::nullopt, card,
            previous_latest.has_value() ? &*previous_latest : nullptr,
            std::move(extra)));
        *target = absl::StrCat("card ", app_id);
        ASSIGN_OR_RETURN(*resp.mutable_card(),
                         ToProto(card, person.view, clear, txn.now()));
        *resp.mutable_person() = ToProto(person.view, clear);
        return absl::OkStatus();
      });
}

absl::StatusOr<ssc::v1::SendToProductionResponse> CardLogic::SendToProduction(
    const common::Caller& caller, const ssc::v1::SendToProductionRequest& req) {
  // Resolve every card to its person first (no locks needed: the mapping
  // never changes); problems are reported from inside the mutation so that
  // they are audited like every other refusal.
  absl::Status resolve_error;
  std::vector<std::pair<std::string, std::string>> cards;
  std::vector<std::string> locks;
  if (req.application_ids().empty()) {
    resolve_error = InvalidField("application_ids", "at least one is required");
  } else if (static_cast<size_t>(req.application_ids_size()) > kMaxBatch) {
    resolve_error = InvalidField(
        "application_ids", absl::StrCat("at most ", kMaxBatch, " per call"));
  } else {
    std::set<std::string> seen;
    for (const std::string& id : req.application_ids()) {
      resolve_error = ValidateApplicationId("application_ids", id);
      if (!resolve_error.ok()) break;
      if (!seen.insert(id).second) {
        resolve_error = InvalidField("application_ids",
                                     absl::StrCat(id, " is listed twice"));
        break;
      }
      ssc::v1::CardSelector sel;
      sel.set_application_id(id);
      absl::StatusOr<std::pair<std::string, std::string>> r =
          Resolve(sel, "application_ids");
      if (!r.ok()) {
        resolve_error = r.status();
        break;
      }
      locks.push_back(PersonLockKey(r->second));
      cards.push_back(*std::move(r));
    }
  }
  if (resolve_error.ok()) {
    resolve_error =
        ValidateReference("batch_reference", req.batch_reference(), 64);
  }
  if (!resolve_error.ok()) locks.clear();
  const bool clear = SeesClearData(caller.role);
  return Mutate<ssc::v1::SendToProductionResponse>(
      caller, "SendToProduction", req, req.request_id(), std::move(locks),
      [&](Txn& txn, ssc::v1::SendToProductionResponse& resp,
          std::string* target) -> absl::Status {
        *target = absl::StrCat(req.application_ids_size(), " cards");
        RETURN_IF_ERROR(resolve_error);
        for (const auto& [app_id, person_key] : cards) {
          Txn::Person person;
          store::CardRecord card;
          RETURN_IF_ERROR(
              txn.LoadForChange(app_id, person_key, &person, &card));
          ASSIGN_OR_RETURN(store::CardRecord before,
                           txn.Transit(card, Operation::kSendToProduction));
          card.set_sent_to_production_micros(Micros(txn.now()));
          card.set_batch_reference(req.batch_reference());
          Json extra;
          extra.Str("batch_reference", req.batch_reference());
          RETURN_IF_ERROR(txn.Change(ChangeKind::kTransition,
                                     Operation::kSendToProduction,
                                     "card.sent_to_production", person, before,
                                     card, nullptr, std::move(extra)));
          ASSIGN_OR_RETURN(*resp.add_cards(),
                           ToProto(card, person.view, clear, txn.now()));
        }
        return absl::OkStatus();
      });
}

absl::StatusOr<ssc::v1::RecordProductionResponse> CardLogic::RecordProduction(
    const common::Caller& caller, const ssc::v1::RecordProductionRequest& req) {
  ssc::v1::CardSelector sel;
  sel.set_application_id(req.application_id());
  absl::StatusOr<std::pair<std::string, std::string>> resolved =
      Resolve(sel, "card");
  if (!resolved.ok() &&
      common::FieldOf(resolved.status()) == "card.application_id") {
    resolved = ValidateApplicationId("application_id", req.application_id());
  }
  std::vector<std::string> locks;
  if (resolved.ok()) {
    locks.push_back(PersonLockKey(resolved->second));
    // The index keys it writes: instant issuance locks the same ones.
    locks.push_back(CardNumberLock(req.card_number()));
    locks.push_back(IdCodeLock(req.identification_code()));
  }
  const bool clear = SeesClearData(caller.role);
  return Mutate<ssc::v1::RecordProductionResponse>(
      caller, "RecordProduction", req, req.request_id(), std::move(locks),
      [&](Txn& txn, ssc::v1::RecordProductionResponse& resp,
          std::string* target) -> absl::Status {
        *target = absl::StrCat("card ", req.application_id());
        RETURN_IF_ERROR(resolved.status());
        RETURN_IF_ERROR(ValidateCardNumber("card_number", req.card_number()));
        RETURN_IF_ERROR(ValidateIdentificationCode("identification_code",
                                                   req.identification_code()));
        const std::string spec = req.spec_version().empty()
                                     ? std::string(kDefaultSpecVersion)
                                     : req.spec_version();
        RETURN_IF_ERROR(ValidateSpecVersion("spec_version", spec));
        if (!req.bank_code().empty()) {
          RETURN_IF_ERROR(ValidateBankCode("bank_code", req.bank_code()));
        }
        RETURN_IF_ERROR(
            ValidateBankAccount("bank_account", req.bank_account()));
        ASSIGN_OR_RETURN(absl::CivilDay from,
                         ParseDate("valid_from", req.valid_from()));
        ASSIGN_OR_RETURN(absl::CivilDay until,
                         ParseDate("valid_until", req.valid_until()));
        if (until != AddYears(from, kValidityYears)) {
          return InvalidField(
              "valid_until",
              absl::StrCat("must be valid_from + ", kValidityYears, " years (",
                           FormatDate(AddYears(from, kValidityYears)), ")"));
        }
        Txn::Person person;
        store::CardRecord card;
        RETURN_IF_ERROR(txn.LoadForChange(resolved->first, resolved->second,
                                          &person, &card));
        ASSIGN_OR_RETURN(store::CardRecord before,
                         txn.Transit(card, Operation::kRecordProduction));
        ASSIGN_OR_RETURN(
            std::optional<std::string> number_owner,
            txn.Get(Table::kIndex, CardNumberKey(req.card_number())));
        if (number_owner.has_value()) {
          return AlreadyExists(
              "card_number",
              absl::StrCat(req.card_number(), " already belongs to card ",
                           *number_owner));
        }
        ASSIGN_OR_RETURN(
            std::optional<std::string> code_owner,
            txn.Get(Table::kIndex, IdCodeKey(req.identification_code())));
        if (code_owner.has_value()) {
          return AlreadyExists(
              "identification_code",
              absl::StrCat(req.identification_code(),
                           " already belongs to card ", *code_owner));
        }
        card.set_card_number(req.card_number());
        card.set_identification_code(req.identification_code());
        card.set_spec_version(spec);
        if (!req.bank_code().empty()) card.set_bank_code(req.bank_code());
        RETURN_IF_ERROR(txn.SetBankAccount(card, req.bank_account()));
        card.set_valid_from(FormatDate(from));
        card.set_valid_until(FormatDate(until));
        card.set_produced_micros(Micros(txn.now()));
        txn.ws().Put(Table::kIndex, CardNumberKey(card.card_number()),
                     card.application_id());
        txn.ws().Put(Table::kIndex, IdCodeKey(card.identification_code()),
                     card.application_id());
        Json extra;
        extra.Str("spec_version", spec)
            .Str("valid_from", card.valid_from())
            .Str("valid_until", card.valid_until());
        RETURN_IF_ERROR(txn.Change(
            ChangeKind::kTransition, Operation::kRecordProduction,
            "card.produced", person, before, card, nullptr, std::move(extra)));
        ASSIGN_OR_RETURN(*resp.mutable_card(),
                         ToProto(card, person.view, clear, txn.now()));
        return absl::OkStatus();
      });
}

absl::StatusOr<ssc::v1::IssueCardResponse> CardLogic::IssueCard(
    const common::Caller& caller, const ssc::v1::IssueCardRequest& req) {
  return StepCard<ssc::v1::IssueCardResponse>(
      caller, "IssueCard", req, Operation::kIssue, "card.issued",
      [](store::CardRecord& card, absl::Time now) {
        card.set_issued_micros(Micros(now));
      });
}

absl::StatusOr<ssc::v1::ActivateCardResponse> CardLogic::ActivateCard(
    const common::Caller& caller, const ssc::v1::ActivateCardRequest& req) {
  return StepCard<ssc::v1::ActivateCardResponse>(
      caller, "ActivateCard", req, Operation::kActivate, "card.activated",
      [](store::CardRecord& card, absl::Time now) {
        card.set_activated_micros(Micros(now));
      });
}

absl::StatusOr<ssc::v1::ReportLossResponse> CardLogic::ReportLoss(
    const common::Caller& caller, const ssc::v1::ReportLossRequest& req) {
  absl::StatusOr<std::pair<std::string, std::string>> r =
      Resolve(req.card(), "card");
  std::vector<std::string> locks;
  if (r.ok()) locks.push_back(PersonLockKey(r->second));
  const bool clear = SeesClearData(caller.role);
  return Mutate<ssc::v1::ReportLossResponse>(
      caller, "ReportLoss", req, req.request_id(), std::move(locks),
      [&](Txn& txn, ssc::v1::ReportLossResponse& resp,
          std::string* target) -> absl::Status {
        RETURN_IF_ERROR(ForScope(caller, r.status()));
        *target = absl::StrCat("card ", r->first);
        // Under the person's lock: the e-card service changes bindings
        // under the same lock.
        RETURN_IF_ERROR(CheckHolderScope(caller, r->second));
        Operation op;
        if (req.kind() == ssc::v1::LOSS_KIND_TEMPORARY) {
          op = Operation::kReportTempLoss;
        } else if (req.kind() == ssc::v1::LOSS_KIND_FORMAL) {
          op = Operation::kReportFormalLoss;
        } else {
          return InvalidField("kind", "must be TEMPORARY or FORMAL");
        }
        // A mobile channel (phone/app) may only report a temporary loss
        // (临时挂失); a formal loss is made at a counter.
        if (caller.role == common::Role::kMobileChannel &&
            op != Operation::kReportTempLoss) {
          return absl::PermissionDeniedError(
              "kind: a mobile channel may only report a TEMPORARY loss; a "
              "FORMAL loss is reported at a counter");
        }
        Txn::Person person;
        store::CardRecord card;
        RETURN_IF_ERROR(txn.LoadForChange(r->first, r->second, &person, &card));
        ASSIGN_OR_RETURN(store::CardRecord before, txn.Transit(card, op));
        Json extra;
        if (op == Operation::kReportTempLoss) {
          card.set_lost_micros(Micros(txn.now()));
          card.set_temp_loss_expires_micros(
              Micros(txn.now() + options_.temp_loss_duration));
          extra.Str("kind", "TEMPORARY")
              .Str("expires_at", FormatTime(card.temp_loss_expires_micros()));
        } else {
          // A formal report keeps the time the loss was first reported.
          if (card.lost_micros() == 0) card.set_lost_micros(Micros(txn.now()));
          card.set_temp_loss_expires_micros(0);
          extra.Str("kind", "FORMAL");
        }
        RETURN_IF_ERROR(txn.Change(
            ChangeKind::kTransition, op,
            op == Operation::kReportTempLoss ? "card.temp_lost" : "card.lost",
            person, before, card, nullptr, std::move(extra)));
        ASSIGN_OR_RETURN(*resp.mutable_card(),
                         ToProto(card, person.view, clear, txn.now()));
        return absl::OkStatus();
      });
}

absl::StatusOr<ssc::v1::CancelLossReportResponse> CardLogic::CancelLossReport(
    const common::Caller& caller, const ssc::v1::CancelLossReportRequest& req) {
  return StepCard<ssc::v1::CancelLossReportResponse>(
      caller, "CancelLossReport", req, Operation::kCancelLoss,
      "card.loss_cancelled", [](store::CardRecord& card, absl::Time) {
        card.set_lost_micros(0);
        card.set_temp_loss_expires_micros(0);
      });
}

absl::StatusOr<ssc::v1::ApplyReplacementResponse> CardLogic::ApplyReplacement(
    const common::Caller& caller, const ssc::v1::ApplyReplacementRequest& req) {
  absl::StatusOr<std::pair<std::string, std::string>> r =
      Resolve(req.card(), "card");
  std::vector<std::string> locks;
  std::string issuing;
  if (r.ok()) {
    // The issuing region of the new card is the old card's; read it once
    // to know which sequences to take numbers from (it never changes).
    absl::StatusOr<std::optional<CardView>> old = LoadCard(r->first);
    if (!old.ok()) {
      r = old.status();
    } else if (!old->has_value()) {
      r = common::NotFound(absl::StrCat("card ", r->first));
    } else {
      issuing = (*old)->card.issuing_region_code();
      locks.push_back(PersonLockKey(r->second));
    }
  }
  const ssc::v1::ReplacementReason reason = req.reason();
  // The fields are validated before numbers are taken (bad input takes
  // none); the refusal is reported from inside the mutation.
  auto validate = [&]() -> absl::Status {
    if (ReplacementReasonName(reason) == "UNSPECIFIED") {
      return InvalidField("reason",
                          "must be LOST, DAMAGED, EXPIRING, DATA_CHANGE or "
                          "BANK_CHANGE");
    }
    if (reason == ssc::v1::REPLACEMENT_REASON_BANK_CHANGE &&
        req.bank_code().empty()) {
      return InvalidField("bank_code",
                          "is required when the reason is BANK_CHANGE");
    }
    if (!req.bank_code().empty()) {
      RETURN_IF_ERROR(ValidateBankCode("bank_code", req.bank_code()));
    }
    if (reason == ssc::v1::REPLACEMENT_REASON_DATA_CHANGE) {
      RETURN_IF_ERROR(ValidateName("new_name", req.new_name()));
    } else if (!req.new_name().empty()) {
      return InvalidField("new_name",
                          "may only be given when the reason is "
                          "DATA_CHANGE");
    }
    if (req.instant_issuance()) {
      RETURN_IF_ERROR(ValidateBankAccount("bank_account", req.bank_account()));
    } else if (!req.bank_account().empty()) {
      return InvalidField("bank_account",
                          "is given by the card bureau's production "
                          "result unless instant_issuance is set");
    }
    return absl::OkStatus();
  };
  absl::Status checked = r.ok() ? validate() : absl::OkStatus();
  // Numbers come from the allocator before locking (see ApplyCard).
  std::string new_id;
  if (r.ok() && checked.ok()) {
    absl::StatusOr<std::string> allocated = NewApplicationId(issuing);
    if (allocated.ok()) {
      new_id = *std::move(allocated);
    } else {
      checked = allocated.status();
    }
  }
  const bool instant = r.ok() && checked.ok() && req.instant_issuance();
  InstantCandidates candidates;
  const bool clear = SeesClearData(caller.role);
  return MutateInstant<ssc::v1::ApplyReplacementResponse>(
      caller, "ApplyReplacement", req, req.request_id(), locks,
      instant ? &issuing : nullptr, &candidates,
      [&](Txn& txn, ssc::v1::ApplyReplacementResponse& resp,
          std::string* target) -> absl::Status {
        RETURN_IF_ERROR(r.status());
        *target = absl::StrCat("card ", r->first);
        RETURN_IF_ERROR(checked);

        Txn::Person person;
        store::CardRecord old;
        RETURN_IF_ERROR(txn.LoadForChange(r->first, r->second, &person, &old));
        if (person.view.current_application_id != old.application_id() &&
            !IsTerminalState(old.state())) {
          return absl::InternalError(
              absl::StrCat("card ", old.application_id(),
                           " is not the person's current card"));
        }
        ASSIGN_OR_RETURN(store::CardRecord before,
                         txn.Transit(old, Operation::kApplyReplacement));
        if (reason == ssc::v1::REPLACEMENT_REASON_EXPIRING) {
          ASSIGN_OR_RETURN(absl::CivilDay until,
                           ParseDate("valid_until", old.valid_until()));
          const absl::CivilDay opens = until - kRenewalWindowDays;
          const absl::CivilDay today =
              absl::ToCivilDay(txn.now(), BeijingTime());
          if (today < opens) {
            return common::WrongState(
                absl::StrCat("card ", old.application_id()),
                StateName(before.state()),
                absl::StrCat("the card is valid until ", old.valid_until(),
                             "; renewal may be applied for from ",
                             FormatDate(opens), " on"));
          }
        }
        old.set_closed_micros(Micros(txn.now()));
        old.set_replaced_by(new_id);
        old.set_replacement_reason(reason);

        const bool name_changed =
            reason == ssc::v1::REPLACEMENT_REASON_DATA_CHANGE &&
            req.new_name() != person.view.name;
        if (reason == ssc::v1::REPLACEMENT_REASON_DATA_CHANGE) {
          person.view.name = req.new_name();
        }
        store::CardRecord fresh;
        fresh.set_application_id(new_id);
        fresh.set_person_key(person.key);
        fresh.set_state(CARD_STATE_APPLIED);
        fresh.set_region_code(person.view.region_code);
        fresh.set_issuing_region_code(issuing);
        fresh.set_bank_code(req.bank_code().empty() ? old.bank_code()
                                                    : req.bank_code());
        fresh.set_photo_ref(old.photo_ref());
        fresh.set_applied_micros(Micros(txn.now()));
        fresh.set_replaces(old.application_id());
        fresh.set_replacement_reason(reason);
        fresh.set_instant_issuance(req.instant_issuance());
        if (req.instant_issuance()) {
          RETURN_IF_ERROR(
              txn.ProduceInstantly(fresh, req.bank_account(), candidates));
        }
        person.view.application_ids.push_back(new_id);
        person.view.current_application_id = new_id;
        RETURN_IF_ERROR(txn.PutPerson(person));

        Json old_extra;
        old_extra.Str("reason", ReplacementReasonName(reason))
            .Str("replaced_by", new_id)
            .Bool("name_changed", name_changed);
        RETURN_IF_ERROR(txn.Change(ChangeKind::kTransition,
                                   Operation::kApplyReplacement,
                                   "card.replaced", person, before, old,
                                   nullptr, std::move(old_extra)));
        Json new_extra;
        new_extra.Bool("instant_issuance", req.instant_issuance())
            .Str("replaces", old.application_id())
            .Str("reason", ReplacementReasonName(reason))
            .Str("bank_code", fresh.bank_code());
        RETURN_IF_ERROR(txn.Change(ChangeKind::kApplied, Operation::kIssue,
                                   "card.applied", person, std::nullopt, fresh,
                                   &old, std::move(new_extra)));
        ASSIGN_OR_RETURN(*resp.mutable_old_card(),
                         ToProto(old, person.view, clear, txn.now()));
        ASSIGN_OR_RETURN(*resp.mutable_new_card(),
                         ToProto(fresh, person.view, clear, txn.now()));
        return absl::OkStatus();
      });
}

absl::StatusOr<ssc::v1::CancelCardResponse> CardLogic::CancelCard(
    const common::Caller& caller, const ssc::v1::CancelCardRequest& req) {
  absl::StatusOr<std::pair<std::string, std::string>> r =
      Resolve(req.card(), "card");
  std::vector<std::string> locks;
  if (r.ok()) locks.push_back(PersonLockKey(r->second));
  const bool clear = SeesClearData(caller.role);
  return Mutate<ssc::v1::CancelCardResponse>(
      caller, "CancelCard", req, req.request_id(), std::move(locks),
      [&](Txn& txn, ssc::v1::CancelCardResponse& resp,
          std::string* target) -> absl::Status {
        RETURN_IF_ERROR(r.status());
        *target = absl::StrCat("card ", r->first);
        if (CancelReasonName(req.reason()) == "UNSPECIFIED") {
          return InvalidField("reason",
                              "must be DEATH, MOVED_OUT or EMIGRATED");
        }
        Txn::Person person;
        store::CardRecord card;
        RETURN_IF_ERROR(txn.LoadForChange(r->first, r->second, &person, &card));
        ASSIGN_OR_RETURN(store::CardRecord before,
                         txn.Transit(card, Operation::kCancel));
        card.set_closed_micros(Micros(txn.now()));
        card.set_cancel_reason(req.reason());
        card.set_temp_loss_expires_micros(0);
        if (person.view.current_application_id == card.application_id()) {
          person.view.current_application_id.clear();
          RETURN_IF_ERROR(txn.PutPerson(person));
        }
        Json extra;
        extra.Str("reason", CancelReasonName(req.reason()));
        RETURN_IF_ERROR(txn.Change(ChangeKind::kTransition, Operation::kCancel,
                                   "card.cancelled", person, before, card,
                                   nullptr, std::move(extra)));
        ASSIGN_OR_RETURN(*resp.mutable_card(),
                         ToProto(card, person.view, clear, txn.now()));
        return absl::OkStatus();
      });
}

absl::StatusOr<ssc::v1::UpdateHolderContactResponse>
CardLogic::UpdateHolderContact(const common::Caller& caller,
                               const ssc::v1::UpdateHolderContactRequest& req) {
  std::string id_for_lock = req.id_number();
  if (!id_for_lock.empty() && id_for_lock.back() == 'x')
    id_for_lock.back() = 'X';
  const std::string person_key = PersonKey(id_for_lock);
  const bool clear = SeesClearData(caller.role);
  return Mutate<ssc::v1::UpdateHolderContactResponse>(
      caller, "UpdateHolderContact", req, req.request_id(),
      {PersonLockKey(person_key)},
      [&](Txn& txn, ssc::v1::UpdateHolderContactResponse& resp,
          std::string* target) -> absl::Status {
        ASSIGN_OR_RETURN(
            IdNumberInfo id,
            ValidateIdNumber("id_number", req.id_number(), txn.now()));
        *target = absl::StrCat("person ", storage::MaskIdNumber(id.normalized));
        if (req.phone().empty() && req.address().empty()) {
          return InvalidField("phone", "give a new phone or address (or both)");
        }
        if (!req.phone().empty()) {
          RETURN_IF_ERROR(ValidatePhone("phone", req.phone()));
        }
        RETURN_IF_ERROR(ValidateAddress("address", req.address()));
        ASSIGN_OR_RETURN(Txn::Person person, txn.LoadPerson(person_key));
        Json extra;
        if (!req.phone().empty()) {
          person.view.phone = req.phone();
          extra.Str("phone", storage::MaskPhone(req.phone()));
        }
        if (!req.address().empty()) {
          person.view.address = req.address();
          extra.Str("address", storage::MaskAddress(req.address()));
        }
        RETURN_IF_ERROR(txn.PutPerson(person));
        txn.PersonEvent("person.contact_updated", person, std::move(extra));
        *resp.mutable_person() = ToProto(person.view, clear);
        return absl::OkStatus();
      });
}

// ---------------------------------------------------------------------------
// Reads.

absl::StatusOr<ssc::v1::GetCardResponse> CardLogic::GetCard(
    const common::Caller& caller, const ssc::v1::GetCardRequest& req) {
  std::string app_id;
  if (!req.card_number().empty()) {
    RETURN_IF_ERROR(ValidateCardNumber("card_number", req.card_number()));
    ASSIGN_OR_RETURN(std::optional<std::string> id,
                     ApplicationIdOfNumber(req.card_number()));
    if (!id.has_value()) {
      return ForScope(caller, common::NotFound(absl::StrCat(
                                  "card number ", req.card_number())));
    }
    app_id = *std::move(id);
  } else if (!req.application_id().empty()) {
    RETURN_IF_ERROR(
        ValidateApplicationId("application_id", req.application_id()));
    app_id = req.application_id();
  } else {
    return InvalidField("card_number",
                        "give the card_number or the application_id");
  }
  const absl::Time now = ctx_.clock->Now();
  ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                   ctx_.engine->Get(Table::kCards, app_id));
  if (!bytes.has_value()) {
    return ForScope(caller, common::NotFound(absl::StrCat("card ", app_id)));
  }
  ASSIGN_OR_RETURN(store::CardRecord rec, ParseCard(app_id, *bytes));
  RETURN_IF_ERROR(CheckHolderScope(caller, rec.person_key()));
  // After the scope check: a channel learns nothing of other holders' cards.
  if (!req.card_number().empty() && !req.application_id().empty() &&
      req.application_id() != app_id) {
    return InvalidField("application_id",
                        "names a different card than card_number");
  }
  ASSIGN_OR_RETURN(std::optional<PersonView> person,
                   LoadPersonByKey(rec.person_key()));
  if (!person.has_value()) {
    return absl::DataLossError(absl::StrCat("card ", app_id, " has no person"));
  }
  ssc::v1::GetCardResponse resp;
  ASSIGN_OR_RETURN(*resp.mutable_card(),
                   ToProto(rec, *person, SeesClearData(caller.role), now));
  return resp;
}

absl::StatusOr<ssc::v1::GetPersonResponse> CardLogic::GetPerson(
    const common::Caller& caller, const ssc::v1::GetPersonRequest& req) {
  const absl::Time now = ctx_.clock->Now();
  ASSIGN_OR_RETURN(IdNumberInfo id,
                   ValidateIdNumber("id_number", req.id_number(), now));
  ASSIGN_OR_RETURN(std::optional<PersonView> person,
                   LoadPersonByKey(PersonKey(id.normalized)));
  if (!person.has_value()) return common::NotFound("person");
  const bool clear = SeesClearData(caller.role);
  ssc::v1::GetPersonResponse resp;
  *resp.mutable_person() = ToProto(*person, clear);
  for (const std::string& app_id : person->application_ids) {
    ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                     ctx_.engine->Get(Table::kCards, app_id));
    if (!bytes.has_value()) {
      return absl::DataLossError(absl::StrCat("card ", app_id, " is missing"));
    }
    ASSIGN_OR_RETURN(store::CardRecord rec, ParseCard(app_id, *bytes));
    ASSIGN_OR_RETURN(ssc::v1::Card card, ToProto(rec, *person, clear, now));
    if (app_id == person->current_application_id) {
      *resp.mutable_current_card() = card;
    }
    *resp.add_cards() = std::move(card);
  }
  return resp;
}

absl::StatusOr<ssc::v1::ListCardEventsResponse> CardLogic::ListCardEvents(
    const common::Caller& caller, const ssc::v1::ListCardEventsRequest& req) {
  (void)caller;  // event details carry masked data only, for every role
  const bool by_card =
      req.card().selector_case() != ssc::v1::CardSelector::SELECTOR_NOT_SET;
  if (by_card == !req.id_number().empty()) {
    return InvalidField(by_card ? "id_number" : "card",
                        "give either a card or an id_number");
  }
  int64_t size = req.page().page_size();
  if (size < 0) return InvalidField("page.page_size", "must not be negative");
  if (size == 0) size = options_.default_page_size;
  size = std::min<int64_t>(size, options_.max_page_size);
  uint64_t from = 0;
  if (!req.page().page_token().empty()) {
    if (!absl::SimpleAtoi(req.page().page_token(), &from) || from == 0) {
      return InvalidField("page.page_token", "is not a token of this list");
    }
  }
  std::string entity_type;
  std::string entity_id;
  if (by_card) {
    ASSIGN_OR_RETURN(auto resolved, Resolve(req.card(), "card"));
    entity_type = "card";
    entity_id = resolved.first;
  } else {
    ASSIGN_OR_RETURN(
        IdNumberInfo id,
        ValidateIdNumber("id_number", req.id_number(), ctx_.clock->Now()));
    const std::string key = PersonKey(id.normalized);
    ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                     ctx_.engine->Get(Table::kPersons, key));
    if (!bytes.has_value()) return common::NotFound("person");
    entity_type = "person";
    entity_id = absl::BytesToHexString(key);
  }
  ASSIGN_OR_RETURN(
      std::vector<storage::StoredEvent> events,
      ctx_.engine->ReadEntityEvents(entity_type, entity_id, from,
                                    static_cast<size_t>(size) + 1));
  ssc::v1::ListCardEventsResponse resp;
  for (size_t i = 0; i < events.size(); ++i) {
    const storage::StoredEvent& e = events[i];
    if (i == static_cast<size_t>(size)) {
      resp.mutable_page()->set_next_page_token(absl::StrCat(e.sequence));
      break;
    }
    ssc::v1::Event* out = resp.add_events();
    out->set_sequence(e.sequence);
    out->set_type(e.type);
    SetTimestamp(absl::ToUnixMicros(e.time), out->mutable_time());
    out->set_entity_type(e.entity_type);
    out->set_entity_id(e.entity_id);
    out->set_details_json(e.payload);
  }
  return resp;
}

absl::StatusOr<ssc::v1::CheckInvalidCardResponse> CardLogic::CheckInvalidCard(
    const common::Caller& caller, const ssc::v1::CheckInvalidCardRequest& req) {
  (void)caller;  // the list carries no personal data
  RETURN_IF_ERROR(ValidateCardNumber("card_number", req.card_number()));
  const absl::Time now = ctx_.clock->Now();
  ssc::v1::CheckInvalidCardResponse resp;
  ASSIGN_OR_RETURN(std::optional<std::string> app_id,
                   ApplicationIdOfNumber(req.card_number()));
  if (!app_id.has_value()) return resp;  // unknown: known=false, invalid=false
  ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                   ctx_.engine->Get(Table::kCards, *app_id));
  if (!bytes.has_value()) {
    return absl::DataLossError(absl::StrCat("card ", *app_id, " is missing"));
  }
  ASSIGN_OR_RETURN(store::CardRecord rec, ParseCard(*app_id, *bytes));
  rec = Effective(std::move(rec), now);
  resp.set_known(true);
  resp.set_state(rec.state());
  if (IsInvalidState(rec.state())) {
    resp.set_invalid(true);
    const int64_t since =
        rec.state() == CARD_STATE_TEMP_LOST || rec.state() == CARD_STATE_LOST
            ? rec.lost_micros()
            : rec.closed_micros();
    SetTimestamp(since, resp.mutable_since());
  }
  return resp;
}

// ---------------------------------------------------------------------------
// Read helpers for other services.

absl::StatusOr<std::optional<PersonView>> CardLogic::FindPersonByIdNumber(
    std::string_view id_number) const {
  ASSIGN_OR_RETURN(IdNumberInfo id,
                   ValidateIdNumber("id_number", id_number, ctx_.clock->Now()));
  return LoadPersonByKey(PersonKey(id.normalized));
}

absl::StatusOr<std::optional<PersonView>> CardLogic::LoadPersonByKey(
    std::string_view person_key) const {
  ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                   ctx_.engine->Get(Table::kPersons, person_key));
  if (!bytes.has_value()) return std::nullopt;
  ASSIGN_OR_RETURN(store::PersonRecord rec, ParsePerson(*bytes));
  return Decrypt(person_key, rec);
}

absl::StatusOr<std::optional<CardView>> CardLogic::LoadCard(
    std::string_view application_id) const {
  ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                   ctx_.engine->Get(Table::kCards, application_id));
  if (!bytes.has_value()) return std::nullopt;
  ASSIGN_OR_RETURN(store::CardRecord rec, ParseCard(application_id, *bytes));
  return MakeView(rec, ctx_.clock->Now());
}

absl::StatusOr<std::optional<CardView>> CardLogic::FindCardByNumber(
    std::string_view card_number) const {
  ASSIGN_OR_RETURN(std::optional<std::string> app_id,
                   ApplicationIdOfNumber(card_number));
  if (!app_id.has_value()) return std::nullopt;
  return LoadCard(*app_id);
}

absl::StatusOr<std::optional<PayeeView>> CardLogic::FindPayeeByIdNumber(
    std::string_view id_number) const {
  const absl::Time now = ctx_.clock->Now();
  ASSIGN_OR_RETURN(IdNumberInfo id,
                   ValidateIdNumber("id_number", id_number, now));
  PayeeView v;
  v.person_key = PersonKey(id.normalized);
  ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                   ctx_.engine->Get(Table::kPersons, v.person_key));
  if (!bytes.has_value()) return std::nullopt;
  ASSIGN_OR_RETURN(store::PersonRecord person, ParsePerson(*bytes));
  if (!person.name().empty()) {
    ASSIGN_OR_RETURN(
        v.name, ctx_.cipher->Decrypt(person.name(), Aad(v.person_key, "name")));
  }
  v.region_code = person.region_code();
  v.has_applications = person.application_ids_size() > 0;
  const std::string& app_id = person.current_application_id();
  if (app_id.empty()) return v;
  ASSIGN_OR_RETURN(std::optional<std::string> card_bytes,
                   ctx_.engine->Get(Table::kCards, app_id));
  if (!card_bytes.has_value()) {
    return absl::DataLossError(
        absl::StrCat("card ", Sv(app_id), " of a person is missing"));
  }
  ASSIGN_OR_RETURN(store::CardRecord rec, ParseCard(app_id, *card_bytes));
  RETURN_IF_ERROR(FillPayeeCard(*ctx_.cipher, rec, now, &v));
  return v;
}

absl::StatusOr<std::vector<absl::StatusOr<std::optional<PayeeView>>>>
CardLogic::FindPayeesByIdNumber(
    const std::vector<std::string_view>& id_numbers) const {
  const absl::Time now = ctx_.clock->Now();
  std::vector<absl::StatusOr<std::optional<PayeeView>>> out(
      id_numbers.size(), std::optional<PayeeView>());
  // 1. Valid ID numbers -> person keys, read in one batch.
  std::vector<size_t> asked;  // indexes into id_numbers
  std::vector<std::string> person_keys;
  asked.reserve(id_numbers.size());
  person_keys.reserve(id_numbers.size());
  for (size_t i = 0; i < id_numbers.size(); ++i) {
    absl::StatusOr<IdNumberInfo> id =
        ValidateIdNumber("id_number", id_numbers[i], now);
    if (!id.ok()) {
      out[i] = id.status();
      continue;
    }
    asked.push_back(i);
    person_keys.push_back(PersonKey(id->normalized));
  }
  std::vector<std::string_view> keys(person_keys.begin(), person_keys.end());
  ASSIGN_OR_RETURN(std::vector<std::optional<std::string>> persons,
                   ctx_.engine->MultiGet(Table::kPersons, keys));
  // 2. The found persons; their current cards, read in one batch.
  std::vector<size_t> with_card;  // indexes into id_numbers
  std::vector<std::string> app_ids;
  // One record parsed into again and again: its strings keep their
  // buffers (a payout validates thousands of payees per call).
  store::PersonRecord person;
  for (size_t j = 0; j < asked.size(); ++j) {
    if (!persons[j].has_value()) continue;
    if (!person.ParseFromString(*persons[j])) {
      return absl::DataLossError("person record cannot be parsed");
    }
    PayeeView v;
    v.person_key = std::move(person_keys[j]);
    if (!person.name().empty()) {
      ASSIGN_OR_RETURN(v.name, ctx_.cipher->Decrypt(person.name(),
                                                    Aad(v.person_key, "name")));
    }
    v.region_code = person.region_code();
    v.has_applications = person.application_ids_size() > 0;
    if (!person.current_application_id().empty()) {
      with_card.push_back(asked[j]);
      app_ids.push_back(person.current_application_id());
    }
    out[asked[j]] = std::move(v);
  }
  keys.assign(app_ids.begin(), app_ids.end());
  ASSIGN_OR_RETURN(std::vector<std::optional<std::string>> cards,
                   ctx_.engine->MultiGet(Table::kCards, keys));
  store::CardRecord rec;  // parsed into again and again, as `person`
  for (size_t j = 0; j < with_card.size(); ++j) {
    const std::string& app_id = app_ids[j];
    if (!cards[j].has_value()) {
      return absl::DataLossError(
          absl::StrCat("card ", Sv(app_id), " of a person is missing"));
    }
    if (!rec.ParseFromString(*cards[j])) {
      return absl::DataLossError(
          absl::StrCat("card record ", Sv(app_id), " cannot be parsed"));
    }
    RETURN_IF_ERROR(
        FillPayeeCard(*ctx_.cipher, rec, now, &**out[with_card[j]]));
  }
  return out;
}

absl::StatusOr<storage::ReencryptStep> ReencryptPersons(
    const common::StoreContext& ctx, std::string_view from, size_t limit) {
  storage::EncryptedRecordLayout layout;
  layout.table = Table::kPersons;
  layout.lock_key = [](std::string_view key, std::string_view) {
    return CardLogic::PersonLockKey(key);
  };
  layout.rewrite = [](std::string_view key, std::string* value,
                      storage::CipherFieldFn field) -> absl::StatusOr<bool> {
    ASSIGN_OR_RETURN(store::PersonRecord rec, ParsePerson(*value));
    bool changed = false;
    const std::pair<const char*, std::string*> fields[] = {
        {"id_number", rec.mutable_id_number()},
        {"name", rec.mutable_name()},
        {"phone", rec.mutable_phone()},
        {"address", rec.mutable_address()}};
    for (const auto& [name, ct] : fields) {
      if (ct->empty()) continue;
      ASSIGN_OR_RETURN(bool c, field(Aad(key, name), ct));
      changed = changed || c;
    }
    if (changed) *value = rec.SerializeAsString();
    return changed;
  };
  return storage::ReencryptRange(ctx.engine, ctx.locks, *ctx.cipher, layout,
                                 from, limit);
}

absl::StatusOr<storage::ReencryptStep> ReencryptCards(
    const common::StoreContext& ctx, std::string_view from, size_t limit) {
  storage::EncryptedRecordLayout layout;
  layout.table = Table::kCards;
  // A card changes under its holder's lock (see StepCard).
  layout.lock_key = [](std::string_view key, std::string_view value) {
    store::CardRecord rec;
    if (!rec.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      // Not skipped: the rewrite reports the damaged record.
      return absl::StrCat("card/", Sv(key));
    }
    return CardLogic::PersonLockKey(rec.person_key());
  };
  layout.rewrite = [](std::string_view key, std::string* value,
                      storage::CipherFieldFn field) -> absl::StatusOr<bool> {
    ASSIGN_OR_RETURN(store::CardRecord rec, ParseCard(key, *value));
    if (rec.bank_account().empty()) return false;
    ASSIGN_OR_RETURN(bool changed,
                     field(Aad(rec.application_id(), "bank_account"),
                           rec.mutable_bank_account()));
    if (changed) *value = rec.SerializeAsString();
    return changed;
  };
  return storage::ReencryptRange(ctx.engine, ctx.locks, *ctx.cipher, layout,
                                 from, limit);
}

}  // namespace ssc::card
