#include "services/ops/importer.h"

#include <algorithm>
#include <array>
#include <future>
#include <map>
#include <thread>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/json_util.h"
#include "services/card/card_records.pb.h"
#include "services/card/id_number.h"
#include "services/card/lifecycle.h"
#include "services/card/sequence_allocator.h"
#include "services/common/errors.h"
#include "services/common/json.h"
#include "services/common/metrics.h"
#include "services/ecard/ecard_store.h"
#include "services/report/counters.h"
#include "storage/key_codec.h"
#include "storage/pii_cipher.h"
#include "storage/status_macros.h"

namespace ssc::ops {
namespace {

using card::CardChange;
using card::ChangeKind;
using card::Operation;
using card::store::CardRecord;
using card::store::PersonRecord;
using ssc::v1::CardState;
using ssc::v1::RegisterRow;
using storage::KeyBuilder;
using storage::Table;

absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

constexpr char kAuditMethod[] = "ssc.v1.AdminService/Import";
constexpr char kDefaultSpecVersion[] = "3.00";
constexpr int kValidityYears = 10;
constexpr char kECardIdAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

int64_t Micros(absl::Time t) { return absl::ToUnixMicros(t); }

// --- Keys shared with the card service (card_logic.cc). The layouts are the
// on-disk format and frozen there; they are repeated here, not invented.
std::string CardNumberKey(std::string_view number) {
  return KeyBuilder().Str("cardno").Str(number).Build();
}
std::string IdCodeKey(std::string_view code) {
  return KeyBuilder().Str("idcode").Str(code).Build();
}
std::string InvalidKey(std::string_view number) {
  return KeyBuilder().Str("invalid").Str(number).Build();
}
std::string EncodeInvalid(int64_t since_micros, CardState state,
                          int64_t expires_micros) {
  std::string v;
  storage::PutFixed64BE(&v, static_cast<uint64_t>(since_micros));
  v.push_back(static_cast<char>(state));
  storage::PutFixed64BE(&v, static_cast<uint64_t>(expires_micros));
  return v;
}
// The associated data of a record's encrypted field, "<record key>/<field>"
// as card_logic.cc has it, built in `*out` (a buffer kept from field to
// field).
std::string_view AadInto(std::string* out, std::string_view record_key,
                         std::string_view field) {
  out->assign(record_key);
  out->push_back('/');
  out->append(field);
  return *out;
}

// --- The import's own records in kMeta.
// The UTF-8 byte order mark spreadsheet programs write at a file's start.
constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

std::string CheckpointKey(std::string_view import_id) {
  return KeyBuilder().Str("import").Str(import_id).Build();
}
std::string RejectPrefix(std::string_view import_id) {
  return KeyBuilder().Str("import.reject").Str(import_id).Build();
}
std::string RejectKey(std::string_view import_id, uint64_t line) {
  return KeyBuilder().Str("import.reject").Str(import_id).U64(line).Build();
}
// A reject record: field NUL reason, sealed with the store's cipher (the
// record key as associated data), since a reason may quote the value it
// refuses (a name shifted into the state column). Records of earlier
// versions are clear: they start with the field's name, never with the
// cipher's version byte 0x01.
absl::StatusOr<std::string> SealReject(const storage::PiiCipher& cipher,
                                       std::string_view key,
                                       const RejectedRow& r) {
  return cipher.Encrypt(absl::StrCat(r.field, std::string(1, '\0'), r.reason),
                        key);
}
absl::StatusOr<std::string> OpenReject(const storage::PiiCipher& cipher,
                                       std::string_view key,
                                       std::string_view value) {
  if (value.empty() || value[0] != '\x01') return std::string(value);
  return cipher.Decrypt(value, key);
}
std::string EncodeTotals(const ImportTotals& t) {
  std::string v;
  storage::PutFixed64BE(&v, t.resume_after_line);
  storage::PutFixed64BE(&v, t.accepted);
  storage::PutFixed64BE(&v, t.rejected);
  storage::PutFixed64BE(&v, t.skipped);
  v.push_back(t.done ? 1 : 0);
  return v;
}
absl::StatusOr<ImportTotals> DecodeTotals(std::string_view v) {
  if (v.size() != 33)
    return absl::DataLossError("import checkpoint is malformed");
  ImportTotals t;
  t.resume_after_line = storage::GetFixed64BE(v.substr(0, 8));
  t.accepted = storage::GetFixed64BE(v.substr(8, 8));
  t.rejected = storage::GetFixed64BE(v.substr(16, 8));
  t.skipped = storage::GetFixed64BE(v.substr(24, 8));
  t.done = v[32] != 0;
  return t;
}

// The flat JSON object of event details, as card_logic.cc writes it
// (common::JsonObject's output), built in one reserved buffer: the keys are
// literals that need no escaping, so only the values are quoted.
class Details {
 public:
  // Writes into `*buffer` (its capacity is reused from event to event),
  // starting with `open` (what Open() returned, to continue it).
  explicit Details(std::string* buffer, std::string_view open = "{")
      : out_(*buffer) {
    out_.assign(open.data(), open.size());
  }
  // `quoted_key` is the key with its quotes and colon: R"("a":)".
  Details& Str(std::string_view quoted_key, std::string_view value) {
    Key(quoted_key);
    common::AppendJsonQuoted(&out_, value);
    return *this;
  }
  // `json` is the value already in JSON (QuotedStateName).
  Details& Raw(std::string_view quoted_key, std::string_view json) {
    Key(quoted_key);
    out_.append(json);
    return *this;
  }
  Details& Bool(std::string_view quoted_key, bool value) {
    Key(quoted_key);
    out_ += value ? "true" : "false";
    return *this;
  }
  // The object, closed; a view of the buffer.
  std::string_view Done() && {
    out_.push_back('}');
    return out_;
  }

 private:
  void Key(std::string_view quoted_key) {
    if (out_.size() > 1) out_.push_back(',');
    out_.append(quoted_key);
  }
  std::string& out_;
};

// card::StateName(s) as a JSON string (AppendJsonQuoted), quoted once per
// state: the details of every card event carry two of them.
std::string_view QuotedStateName(CardState s) {
  static const auto* const kQuoted = [] {
    auto* quoted = new std::array<std::string, ssc::v1::CardState_ARRAYSIZE>;
    for (int i = 0; i < ssc::v1::CardState_ARRAYSIZE; ++i) {
      common::AppendJsonQuoted(&(*quoted)[i],
                               card::StateName(static_cast<CardState>(i)));
    }
    return quoted;
  }();
  const int i = static_cast<int>(s);
  if (i >= 0 && i < ssc::v1::CardState_ARRAYSIZE) return (*kQuoted)[i];
  thread_local std::string other;  // not a value of the enum
  other.clear();
  common::AppendJsonQuoted(&other, card::StateName(s));
  return other;
}

std::string FormatTime(int64_t micros) {
  return absl::FormatTime(absl::RFC3339_sec, absl::FromUnixMicros(micros),
                          absl::UTCTimeZone());
}

// As card_logic.cc: a person holds from the first ISSUED card until the
// card is CANCELLED without replacement.
bool IsHolder(const CardRecord* latest) {
  if (latest == nullptr) return false;
  if (latest->state() == ssc::v1::CARD_STATE_CANCELLED) return false;
  return latest->issued_micros() != 0 || !latest->replaces().empty();
}

absl::CivilDay AddYears(absl::CivilDay d, int years) {
  absl::CivilDay r(d.year() + years, d.month(), d.day());
  if (r.month() != d.month())
    r = absl::CivilDay(d.year() + years, d.month(), 28);
  return r;
}

// A reject: the field and why.
struct Problem {
  std::string field;
  std::string reason;
};

Problem FromStatus(const absl::Status& s, std::string_view fallback_field) {
  std::string field = common::FieldOf(s);
  std::string reason(s.message());
  if (field.empty()) field = std::string(fallback_field);
  // Drop a leading "field: " the message may repeat.
  for (const std::string& prefix :
       {absl::StrCat("invalid ", field, ": "), absl::StrCat(field, ": ")}) {
    if (!field.empty() && absl::StartsWith(reason, prefix)) {
      reason = reason.substr(prefix.size());
      break;
    }
  }
  return {field, reason};
}

// An optional time: "" -> nullopt.
absl::StatusOr<std::optional<absl::Time>> ParseWhen(std::string_view field,
                                                    std::string_view text) {
  if (text.empty()) return std::optional<absl::Time>();
  if (text.size() == 10) {
    ASSIGN_OR_RETURN(absl::CivilDay day, card::ParseDate(field, text));
    return std::optional<absl::Time>(Importer::DayStart(day));
  }
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, std::string(text), &t, &err)) {
    return common::InvalidField(
        field, "must be RFC 3339 (2021-03-01T09:30:00+08:00) or YYYY-MM-DD");
  }
  return std::optional<absl::Time>(t);
}

template <typename Enum>
absl::StatusOr<Enum> ParseEnum(std::string_view field, std::string_view text,
                               std::string_view prefix,
                               bool (*parse)(const std::string&, Enum*)) {
  Enum v{};
  // The full value name is built in a buffer this thread keeps (several
  // enums per row).
  thread_local std::string name;
  name.assign(prefix);
  name.append(text);
  if (text.empty() || !parse(name, &v) || static_cast<int>(v) == 0) {
    return common::InvalidField(
        field, absl::StrCat("\"", Sv(text), "\" is not a known value"));
  }
  return v;
}

bool IsPrintableAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c >= 0x20 && c <= 0x7e; });
}

absl::Status ValidateApplicationId(std::string_view field,
                                   std::string_view id) {
  if (id.size() != 16 || id[0] != 'A' ||
      !std::all_of(id.begin() + 1, id.end(),
                   [](char c) { return c >= '0' && c <= '9'; })) {
    return common::InvalidField(
        field,
        "must be \"A\" + 6-digit region + 9 digits, e.g. A510524000000001");
  }
  return absl::OkStatus();
}

}  // namespace

// ---------------------------------------------------------------------------
// Groups and their preparation.

struct Importer::Group {
  struct Row {
    uint64_t line = 0;
    // Owned by the batch's parse arenas (or, for a line that does not
    // parse, the empty default row).
    const RegisterRow* row = nullptr;
  };
  // The id number as written in the first row (grouping only: rows whose
  // id numbers are equal ignoring ASCII case form one group); it views that
  // row (or, for a line that does not parse, the line's text).
  std::string_view id_key;
  std::vector<Row> rows;
  // A line of the group that does not parse (the group is rejected with
  // it): its line and problem.
  std::optional<Problem> parse_error;
  uint64_t parse_error_line = 0;
  // A line next to the group's rows that does not parse and whose id
  // number cannot be read (0: none): it may be one of this person's rows,
  // so the group is rejected with it.
  uint64_t unread_neighbour = 0;
};

struct Importer::Prepared {
  enum class Outcome { kAccepted, kRejected, kSkipped };
  Outcome outcome = Outcome::kRejected;
  std::vector<RejectedRow> rejects;
  storage::WriteSet ws;
  size_t rows = 0;
  uint64_t last_line = 0;
  // Keys this group claims (checked for clashes within a batch): its
  // person ("person/" and the blind index, built on the preparing thread),
  // and its cards' numbers, codes and ids.
  std::string person_claim;
  std::vector<std::string> claims;
  // Highest application id number per issuing region (a person's cards
  // are of one region but for a move).
  absl::InlinedVector<std::pair<std::string, uint64_t>, 1> max_application;
  // The lines of the group's rows.
  std::vector<uint64_t> lines;
  uint64_t first_line = 0;

  // As a new one, keeping the buffers (ImportSession::spare_).
  void Reset() {
    outcome = Outcome::kRejected;
    rejects.clear();
    ws.Clear();
    rows = 0;
    last_line = 0;
    person_claim.clear();
    claims.clear();
    max_application.clear();
    lines.clear();
    first_line = 0;
  }
};

struct ImportSession::PreparedBatch {
  std::vector<Importer::Prepared> groups;
};

namespace {

// One card of a group under preparation.
struct CardPlan {
  uint64_t line = 0;
  const RegisterRow* row = nullptr;
  CardState state = ssc::v1::CARD_STATE_UNSPECIFIED;
  std::optional<absl::Time> applied, sent, produced, issued, activated, lost,
      closed;
  // Why this card was replaced (REPLACED) ...
  ssc::v1::ReplacementReason replacement_reason =
      ssc::v1::REPLACEMENT_REASON_UNSPECIFIED;
  // ... and why it was issued (a replacement card: the replaced card's
  // replacement_reason). Two fields: a card issued after a loss may be
  // replaced later because it expires.
  ssc::v1::ReplacementReason issue_reason =
      ssc::v1::REPLACEMENT_REASON_UNSPECIFIED;
  ssc::v1::CancelReason cancel_reason = ssc::v1::CANCEL_REASON_UNSPECIFIED;
  std::string spec_version;
  std::string valid_from, valid_until;
  bool temporary_loss = false;
};

struct ECardPlan {
  uint64_t line = 0;
  const RegisterRow* row = nullptr;
  absl::Time bound;
  absl::Time verified;
  ssc::v1::VerificationMethod method = ssc::v1::VERIFICATION_METHOD_UNSPECIFIED;
};

// A rejected group: which line, field and reason.
struct GroupError {
  uint64_t line;
  Problem problem;
};

absl::Status Check(bool ok, std::string_view field, std::string_view reason) {
  return ok ? absl::OkStatus() : common::InvalidField(field, reason);
}

// Validates the card fields of one row (not its relation to other rows).
absl::StatusOr<CardPlan> PlanCard(const RegisterRow& r, uint64_t line,
                                  const card::RegionTable& regions,
                                  std::string_view county) {
  CardPlan p;
  p.line = line;
  p.row = &r;
  RETURN_IF_ERROR(ValidateApplicationId("application_id", r.application_id()));
  const std::string issuing = r.application_id().substr(1, 6);
  if (issuing != county && issuing != regions.County().code) {
    return common::InvalidField(
        "application_id",
        absl::StrCat("issuing region ", issuing,
                     " is not an issuing region of this service"));
  }
  ASSIGN_OR_RETURN(p.state,
                   ParseEnum<CardState>("state", r.state(), "CARD_STATE_",
                                        &ssc::v1::CardState_Parse));
  RETURN_IF_ERROR(card::ValidateBankCode("bank_code", r.bank_code()));
  RETURN_IF_ERROR(
      Check(r.photo_ref().size() <= 256 && IsPrintableAscii(r.photo_ref()),
            "photo_ref", "must be at most 256 printable ASCII characters"));
  RETURN_IF_ERROR(Check(
      r.batch_reference().size() <= 64 && IsPrintableAscii(r.batch_reference()),
      "batch_reference", "must be at most 64 printable ASCII characters"));
  ASSIGN_OR_RETURN(p.applied, ParseWhen("applied_at", r.applied_at()));
  ASSIGN_OR_RETURN(p.sent, ParseWhen("sent_at", r.sent_at()));
  ASSIGN_OR_RETURN(p.produced, ParseWhen("produced_at", r.produced_at()));
  ASSIGN_OR_RETURN(p.issued, ParseWhen("issued_at", r.issued_at()));
  ASSIGN_OR_RETURN(p.activated, ParseWhen("activated_at", r.activated_at()));
  ASSIGN_OR_RETURN(p.lost, ParseWhen("lost_at", r.lost_at()));
  ASSIGN_OR_RETURN(p.closed, ParseWhen("closed_at", r.closed_at()));
  RETURN_IF_ERROR(Check(p.applied.has_value(), "applied_at", "is required"));

  using S = CardState;
  const S s = p.state;
  auto at_least = [&](S min) {
    // The states after `min` on the way to `s` (linear up to ACTIVE).
    return static_cast<int>(s) >= static_cast<int>(min);
  };
  const bool closed_state =
      s == ssc::v1::CARD_STATE_REPLACED || s == ssc::v1::CARD_STATE_CANCELLED;
  // Which steps the state implies: a closed card may have stopped anywhere
  // (a cancellation) or after issue (a replacement), the dates tell where.
  if (r.instant_issuance()) {
    RETURN_IF_ERROR(Check(!p.sent.has_value(), "sent_at",
                          "must be empty for instant issuance"));
    RETURN_IF_ERROR(Check(!p.produced.has_value() || *p.produced == *p.applied,
                          "produced_at",
                          "must equal applied_at for instant issuance"));
    RETURN_IF_ERROR(Check(!p.issued.has_value() || *p.issued == *p.applied,
                          "issued_at",
                          "must equal applied_at for instant issuance"));
    RETURN_IF_ERROR(Check(s != ssc::v1::CARD_STATE_APPLIED &&
                              s != ssc::v1::CARD_STATE_IN_PRODUCTION &&
                              s != ssc::v1::CARD_STATE_PRODUCED,
                          "state",
                          "an instantly issued card is ISSUED or later"));
    p.produced = p.applied;
    p.issued = p.applied;
  } else if (!closed_state) {
    RETURN_IF_ERROR(
        Check(at_least(ssc::v1::CARD_STATE_IN_PRODUCTION) == p.sent.has_value(),
              "sent_at",
              p.sent.has_value() ? "must be empty in this state"
                                 : "is required in this state"));
    RETURN_IF_ERROR(
        Check(at_least(ssc::v1::CARD_STATE_PRODUCED) == p.produced.has_value(),
              "produced_at",
              p.produced.has_value() ? "must be empty in this state"
                                     : "is required in this state"));
    RETURN_IF_ERROR(
        Check(at_least(ssc::v1::CARD_STATE_ISSUED) == p.issued.has_value(),
              "issued_at",
              p.issued.has_value() ? "must be empty in this state"
                                   : "is required in this state"));
  }
  if (!closed_state) {
    RETURN_IF_ERROR(
        Check(at_least(ssc::v1::CARD_STATE_ACTIVE) == p.activated.has_value(),
              "activated_at",
              p.activated.has_value() ? "must be empty in this state"
                                      : "is required in this state"));
    const bool lost_state =
        s == ssc::v1::CARD_STATE_TEMP_LOST || s == ssc::v1::CARD_STATE_LOST;
    RETURN_IF_ERROR(Check(lost_state == p.lost.has_value(), "lost_at",
                          lost_state ? "is required in this state"
                                     : "must be empty in this state"));
    RETURN_IF_ERROR(Check(!p.closed.has_value(), "closed_at",
                          "must be empty unless REPLACED or CANCELLED"));
    p.temporary_loss = s == ssc::v1::CARD_STATE_TEMP_LOST;
  } else {
    // The steps before closing follow from the dates given.
    RETURN_IF_ERROR(Check(
        !p.produced.has_value() || p.sent.has_value() || r.instant_issuance(),
        "sent_at", "is required when produced_at is given"));
    RETURN_IF_ERROR(Check(!p.issued.has_value() || p.produced.has_value(),
                          "produced_at",
                          "is required when issued_at is given"));
    RETURN_IF_ERROR(Check(!p.activated.has_value() || p.issued.has_value(),
                          "issued_at",
                          "is required when activated_at is given"));
    RETURN_IF_ERROR(Check(!p.lost.has_value() || p.activated.has_value(),
                          "activated_at", "is required when lost_at is given"));
    if (s == ssc::v1::CARD_STATE_REPLACED) {
      ASSIGN_OR_RETURN(
          p.replacement_reason,
          ParseEnum<ssc::v1::ReplacementReason>(
              "replacement_reason", r.replacement_reason(),
              "REPLACEMENT_REASON_", &ssc::v1::ReplacementReason_Parse));
      RETURN_IF_ERROR(Check(p.issued.has_value(), "issued_at",
                            "a card is replaced only after it was issued"));
      RETURN_IF_ERROR(Check(r.cancel_reason().empty(), "cancel_reason",
                            "must be empty unless CANCELLED"));
    } else {
      ASSIGN_OR_RETURN(p.cancel_reason,
                       ParseEnum<ssc::v1::CancelReason>(
                           "cancel_reason", r.cancel_reason(), "CANCEL_REASON_",
                           &ssc::v1::CancelReason_Parse));
      RETURN_IF_ERROR(Check(p.closed.has_value(), "closed_at",
                            "is required when CANCELLED"));
    }
  }
  if (s != ssc::v1::CARD_STATE_REPLACED && r.replaces().empty()) {
    RETURN_IF_ERROR(Check(r.replacement_reason().empty(), "replacement_reason",
                          "is only for replaced and replacement cards"));
  }
  if (r.replaces().empty()) {
    RETURN_IF_ERROR(Check(r.issue_reason().empty(), "issue_reason",
                          "is only for replacement cards"));
  }
  if (!r.replaces().empty()) {
    RETURN_IF_ERROR(ValidateApplicationId("replaces", r.replaces()));
  }
  // Produced cards carry their production data.
  if (p.produced.has_value()) {
    RETURN_IF_ERROR(card::ValidateCardNumber("card_number", r.card_number()));
    RETURN_IF_ERROR(card::ValidateIdentificationCode("identification_code",
                                                     r.identification_code()));
    p.spec_version =
        r.spec_version().empty() ? kDefaultSpecVersion : r.spec_version();
    RETURN_IF_ERROR(card::ValidateSpecVersion("spec_version", p.spec_version));
    RETURN_IF_ERROR(
        card::ValidateBankAccount("bank_account", r.bank_account()));
    absl::CivilDay from;
    if (r.valid_from().empty() && r.instant_issuance()) {
      from = absl::ToCivilDay(*p.applied, card::BeijingTime());
    } else {
      ASSIGN_OR_RETURN(from, card::ParseDate("valid_from", r.valid_from()));
    }
    const absl::CivilDay until = AddYears(from, kValidityYears);
    if (!r.valid_until().empty() &&
        r.valid_until() != card::FormatDate(until)) {
      return common::InvalidField(
          "valid_until",
          absl::StrCat("must be valid_from + ", kValidityYears, " years (",
                       card::FormatDate(until), ")"));
    }
    p.valid_from = card::FormatDate(from);
    p.valid_until = card::FormatDate(until);
  } else {
    for (const auto& [field, value] :
         {std::pair<const char*, const std::string*>{"card_number",
                                                     &r.card_number()},
          {"identification_code", &r.identification_code()},
          {"bank_account", &r.bank_account()},
          {"valid_from", &r.valid_from()}}) {
      RETURN_IF_ERROR(Check(value->empty(), field,
                            "must be empty before the card is produced"));
    }
  }
  // Dates in lifecycle order.
  std::optional<absl::Time> prev = p.applied;
  const char* prev_name = "applied_at";
  for (const auto& [name, t] :
       {std::pair<const char*, const std::optional<absl::Time>*>{"sent_at",
                                                                 &p.sent},
        {"produced_at", &p.produced},
        {"issued_at", &p.issued},
        {"activated_at", &p.activated},
        {"lost_at", &p.lost},
        {"closed_at", &p.closed}}) {
    if (!t->has_value()) continue;
    if (**t < *prev) {
      return common::InvalidField(
          name, absl::StrCat("must not be before ", prev_name));
    }
    prev = *t;
    prev_name = name;
  }
  (void)regions;
  return p;
}

absl::StatusOr<ECardPlan> PlanECard(const RegisterRow& r, uint64_t line) {
  ECardPlan p;
  p.line = line;
  p.row = &r;
  RETURN_IF_ERROR(Check(!r.channel().empty() && r.channel().size() <= 128 &&
                            IsPrintableAscii(r.channel()),
                        "channel",
                        "must be 1..128 printable ASCII characters (the "
                        "channel's certificate identity)"));
  ASSIGN_OR_RETURN(std::optional<absl::Time> bound,
                   ParseWhen("bound_at", r.bound_at()));
  RETURN_IF_ERROR(Check(bound.has_value(), "bound_at", "is required"));
  p.bound = *bound;
  ASSIGN_OR_RETURN(std::optional<absl::Time> verified,
                   ParseWhen("verified_at", r.verified_at()));
  p.verified = verified.value_or(p.bound);
  ASSIGN_OR_RETURN(p.method, ParseEnum<ssc::v1::VerificationMethod>(
                                 "method", r.method(), "VERIFICATION_METHOD_",
                                 &ssc::v1::VerificationMethod_Parse));
  RETURN_IF_ERROR(
      Check(r.reference().size() <= 256 && IsPrintableAscii(r.reference()),
            "reference", "must be at most 256 printable ASCII characters"));
  return p;
}

// The e-card id of an imported e-card: derived from the person's blind
// index, so it is stable (a re-run names the same e-card) and unguessable.
std::string ImportedECardId(const storage::PiiCipher& cipher,
                            std::string_view person_key) {
  const std::string mac = cipher.BlindIndex("ecard.import", person_key);
  std::string id = "E";
  for (int i = 0; i < 15; ++i) {
    id.push_back(kECardIdAlphabet[static_cast<unsigned char>(mac[i]) & 31]);
  }
  return id;
}

}  // namespace

namespace {

// The reads of step 3 (what the store holds of a group), in the order the
// checks use them; a batch fetches them with one MultiGet per table.
struct Lookup {
  Lookup(Table t, std::string k) : table(t), key(std::move(k)) {}
  Table table;
  std::string key;
  std::optional<std::string> value;
  bool fetched = false;
};

}  // namespace

// A group validated (steps 1 and 2 of Prepare) and waiting for its reads.
struct Importer::GroupPlan {
  std::vector<CardPlan> cards;
  std::vector<ECardPlan> ecards;
  uint64_t person_line = 0;
  card::IdNumberInfo id;
  std::string person_key;
  // The person, then per card its application id, card number and
  // identification code (the last two when given).
  std::vector<Lookup> lookups;
};

void Importer::RejectAll(const Group& g, uint64_t line, std::string field,
                         std::string reason, Prepared* p) {
  p->outcome = Prepared::Outcome::kRejected;
  p->rejects.clear();
  for (const Group::Row& r : g.rows) {
    if (r.line == line) {
      p->rejects.push_back({r.line, field, reason});
    } else {
      p->rejects.push_back(
          {r.line, "",
           absl::StrCat("rejected with the rows of the same person (line ",
                        line, ")")});
    }
  }
  p->ws = storage::WriteSet();
}

void Importer::RejectWithUnreadLine(const Group& g, uint64_t unread_line,
                                    Prepared* p) {
  p->outcome = Prepared::Outcome::kRejected;
  p->rejects.clear();
  for (const Group::Row& r : g.rows) {
    p->rejects.push_back(
        {r.line, "",
         absl::StrCat("rejected with line ", unread_line,
                      ", which does not parse and whose id_number cannot be "
                      "read: it may be a row of this person")});
  }
  p->ws = storage::WriteSet();
}

absl::Time Importer::DayStart(absl::CivilDay day) {
  // card::BeijingTime() is UTC+8 all year (a fixed zone): midnight is
  // arithmetic on the day number, without cctz's lookup (FromCivil), for
  // each of the five to seven dates of a row.
  return absl::FromUnixSeconds((day - absl::CivilDay(1970, 1, 1)) * 86400 -
                               8 * 60 * 60);
}

void Importer::SyncCardRecord(const CardRecord& from, CardRecord* to) {
  // Replay keeps the card as it was before each step in one record; from
  // one step to the next a card changes in a few fields, and comparing a
  // string costs a fraction of rewriting it (CopyFrom rewrote every string
  // of the card at every step). Imported records have no unknown fields.
  if (from.application_id() != to->application_id())
    to->set_application_id(from.application_id());
  if (from.person_key() != to->person_key())
    to->set_person_key(from.person_key());
  if (from.card_number() != to->card_number())
    to->set_card_number(from.card_number());
  if (from.identification_code() != to->identification_code())
    to->set_identification_code(from.identification_code());
  if (from.spec_version() != to->spec_version())
    to->set_spec_version(from.spec_version());
  to->set_state(from.state());
  if (from.region_code() != to->region_code())
    to->set_region_code(from.region_code());
  if (from.issuing_region_code() != to->issuing_region_code())
    to->set_issuing_region_code(from.issuing_region_code());
  if (from.bank_code() != to->bank_code()) to->set_bank_code(from.bank_code());
  if (from.bank_account() != to->bank_account())
    to->set_bank_account(from.bank_account());
  if (from.valid_from() != to->valid_from())
    to->set_valid_from(from.valid_from());
  if (from.valid_until() != to->valid_until())
    to->set_valid_until(from.valid_until());
  to->set_applied_micros(from.applied_micros());
  to->set_sent_to_production_micros(from.sent_to_production_micros());
  to->set_produced_micros(from.produced_micros());
  to->set_issued_micros(from.issued_micros());
  to->set_activated_micros(from.activated_micros());
  to->set_lost_micros(from.lost_micros());
  to->set_temp_loss_expires_micros(from.temp_loss_expires_micros());
  to->set_closed_micros(from.closed_micros());
  if (from.replaced_by() != to->replaced_by())
    to->set_replaced_by(from.replaced_by());
  if (from.replaces() != to->replaces()) to->set_replaces(from.replaces());
  to->set_replacement_reason(from.replacement_reason());
  to->set_cancel_reason(from.cancel_reason());
  to->set_instant_issuance(from.instant_issuance());
  if (from.batch_reference() != to->batch_reference())
    to->set_batch_reference(from.batch_reference());
  if (from.photo_ref() != to->photo_ref()) to->set_photo_ref(from.photo_ref());
  to->set_updated_micros(from.updated_micros());
}

// Replay's working objects, kept by a preparing thread from group to group
// (Replay resets what it uses): the records' strings keep their buffers, so
// a group costs no allocation for them (about forty per row otherwise, and
// as many frees). Used by one thread at a time.
struct Importer::ReplayScratch {
  // The group's cards; only the first cards.size() are in use.
  std::vector<CardRecord> records;
  // The card as it was before the step (see transit in Replay).
  CardRecord before_buf;
  // One change reused for every step; its `person` is the person record
  // under construction.
  CardChange ch;
  card::PersonView view;
  // The opening of the card events' details and what it was built from.
  std::string head, head_card, head_number, head_region, head_issuing,
      head_name;
  // The details of the event being appended.
  std::string details;
  std::string current_name, masked_name, phone, address;
  // The associated data of the field being encrypted.
  std::string aad;
  // The person's application ids: the first `application_count` are this
  // group's (the strings keep their buffers).
  std::vector<std::string> application_ids;
};

void Importer::Prepare(const Group& g, absl::Time now, Prepared* p) const {
  GroupPlan plan;
  ReplayScratch scratch;
  if (Plan(g, now, p, &plan)) Replay(g, &plan, p, &scratch);
}

void Importer::Fetch(std::vector<GroupPlan*>& plans) const {
  // One MultiGet per table; a failed one leaves its keys to Replay, which
  // reads them one by one (and rejects the group on a failure, as before).
  for (const Table t : {Table::kPersons, Table::kCards, Table::kIndex}) {
    std::vector<std::string_view> keys;
    std::vector<Lookup*> where;
    for (GroupPlan* plan : plans) {
      for (Lookup& l : plan->lookups) {
        if (l.table != t) continue;
        keys.emplace_back(l.key);
        where.push_back(&l);
      }
    }
    if (keys.empty()) continue;
    absl::StatusOr<std::vector<std::optional<std::string>>> values =
        ctx_.engine->MultiGet(t, keys);
    if (!values.ok() || values->size() != keys.size()) continue;
    for (size_t i = 0; i < where.size(); ++i) {
      where[i]->value = std::move((*values)[i]);
      where[i]->fetched = true;
    }
  }
}

bool Importer::Plan(const Group& g, absl::Time now, Prepared* p,
                    GroupPlan* plan) const {
  p->rows = g.rows.size();
  for (const Group::Row& r : g.rows) p->lines.push_back(r.line);
  p->first_line = g.rows.empty() ? 0 : g.rows.front().line;
  p->last_line = g.rows.empty() ? 0 : g.rows.back().line;
  auto reject_all = [&](uint64_t line, Problem problem) {
    RejectAll(g, line, std::move(problem.field), std::move(problem.reason), p);
    return false;
  };

  // 1. Rows.
  std::vector<CardPlan>& cards = plan->cards;
  std::vector<ECardPlan>& ecards = plan->ecards;
  const RegisterRow* person_row = nullptr;
  uint64_t& person_line = plan->person_line;
  for (const Group::Row& gr : g.rows) {
    const RegisterRow& r = *gr.row;
    if (r.kind() == "ecard") {
      absl::StatusOr<ECardPlan> e = PlanECard(r, gr.line);
      if (!e.ok()) return reject_all(gr.line, FromStatus(e.status(), ""));
      ecards.push_back(*std::move(e));
      continue;
    }
    if (!r.kind().empty() && r.kind() != "card") {
      return reject_all(gr.line, {"kind", "must be \"card\" or \"ecard\""});
    }
    absl::Status person_ok = card::ValidateName("name", r.name());
    if (person_ok.ok() && !r.phone().empty()) {
      person_ok = card::ValidatePhone("phone", r.phone());
    }
    if (person_ok.ok())
      person_ok = card::ValidateAddress("address", r.address());
    if (person_ok.ok() && !regions_->IsTownship(r.region_code())) {
      person_ok = common::InvalidField(
          "region_code", r.region_code().empty()
                             ? "is required"
                             : absl::StrCat(r.region_code(),
                                            " is not a township of the "
                                            "region table"));
    }
    if (!person_ok.ok()) return reject_all(gr.line, FromStatus(person_ok, ""));
    absl::StatusOr<CardPlan> c = PlanCard(r, gr.line, *regions_, county_code_);
    if (!c.ok()) return reject_all(gr.line, FromStatus(c.status(), ""));
    cards.push_back(*std::move(c));
    if (person_row == nullptr) {
      person_row = &r;
      person_line = gr.line;
    }
  }
  if (cards.empty()) {
    return reject_all(g.rows.front().line,
                      {"kind",
                       "an e-card row needs the person's card rows "
                       "before it (rows of one person are consecutive)"});
  }
  absl::StatusOr<card::IdNumberInfo> id =
      card::ValidateIdNumber("id_number", person_row->id_number(), now);
  if (!id.ok()) return reject_all(person_line, FromStatus(id.status(), ""));

  // 2. The chain of cards.
  for (size_t i = 0; i < cards.size(); ++i) {
    CardPlan& c = cards[i];
    const RegisterRow& r = *c.row;
    if (i == 0) {
      if (!r.replaces().empty()) {
        return reject_all(c.line, {"replaces",
                                   "names a card that is not in the rows of "
                                   "this person before this one"});
      }
    } else {
      CardPlan& prev = cards[i - 1];
      if (prev.state == ssc::v1::CARD_STATE_REPLACED) {
        if (r.replaces() != prev.row->application_id()) {
          return reject_all(
              c.line,
              {"replaces", absl::StrCat("must be ", prev.row->application_id(),
                                        ": the previous card was replaced")});
        }
        if (prev.closed.has_value() && *prev.closed != *c.applied) {
          return reject_all(
              prev.line,
              {"closed_at", "must equal applied_at of the replacement card"});
        }
        prev.closed = c.applied;
        if (prev.lost.has_value() && *prev.lost > *c.applied) {
          return reject_all(prev.line, {"lost_at", "is after the replacement"});
        }
        if (r.region_code() != prev.row->region_code()) {
          return reject_all(c.line,
                            {"region_code",
                             "a replacement card keeps the holder's township"});
        }
        if (!r.issue_reason().empty()) {
          // Why this card was issued has a column of its own;
          // replacement_reason is then why it was replaced in turn.
          absl::StatusOr<ssc::v1::ReplacementReason> issued_for =
              ParseEnum<ssc::v1::ReplacementReason>(
                  "issue_reason", r.issue_reason(), "REPLACEMENT_REASON_",
                  &ssc::v1::ReplacementReason_Parse);
          if (!issued_for.ok()) {
            return reject_all(c.line, FromStatus(issued_for.status(), ""));
          }
          if (*issued_for != prev.replacement_reason) {
            return reject_all(c.line, {"issue_reason",
                                       "must be the replaced card's "
                                       "replacement_reason"});
          }
          if (c.state != ssc::v1::CARD_STATE_REPLACED &&
              !r.replacement_reason().empty() &&
              r.replacement_reason() != r.issue_reason()) {
            return reject_all(c.line, {"replacement_reason",
                                       "is only for a replaced card (why "
                                       "this card was issued is in "
                                       "issue_reason)"});
          }
        } else if (r.replacement_reason() != prev.row->replacement_reason()) {
          // Files without issue_reason: replacement_reason is why the
          // replacement was issued (and, if it was replaced in turn, why
          // that happened too).
          return reject_all(
              c.line,
              {"replacement_reason",
               c.state == ssc::v1::CARD_STATE_REPLACED
                   ? "must be that of the replaced card; a replacement "
                     "replaced in turn for another reason gives why it was "
                     "issued in issue_reason"
                   : "must be that of the replaced card"});
        }
        if (r.name() != prev.row->name() &&
            prev.replacement_reason !=
                ssc::v1::REPLACEMENT_REASON_DATA_CHANGE) {
          return reject_all(c.line,
                            {"name",
                             "differs from the replaced card's row; a name "
                             "changes only with replacement_reason "
                             "DATA_CHANGE"});
        }
        c.issue_reason = prev.replacement_reason;
        if (r.application_id().substr(1, 6) !=
            prev.row->application_id().substr(1, 6)) {
          return reject_all(c.line,
                            {"application_id",
                             "a replacement is issued by the replaced card's "
                             "issuing region"});
        }
      } else if (prev.state == ssc::v1::CARD_STATE_CANCELLED) {
        if (!r.replaces().empty()) {
          return reject_all(c.line, {"replaces",
                                     "the previous card was cancelled, not "
                                     "replaced"});
        }
        if (*c.applied < *prev.closed) {
          return reject_all(c.line, {"applied_at",
                                     "is before the previous card was "
                                     "cancelled"});
        }
      } else {
        return reject_all(
            c.line, {"state", absl::StrCat("the person's previous card (line ",
                                           prev.line,
                                           ") is still valid: a person has at "
                                           "most one valid card")});
      }
      if (r.application_id() == prev.row->application_id()) {
        return reject_all(c.line, {"application_id", "is listed twice"});
      }
    }
    // Equal ignoring ASCII case (as their upper-case forms, without them).
    if (!absl::EqualsIgnoreCase(r.id_number(), person_row->id_number())) {
      return reject_all(c.line, {"id_number", "differs within the group"});
    }
  }
  if (cards.back().state == ssc::v1::CARD_STATE_REPLACED) {
    return reject_all(cards.back().line,
                      {"state",
                       "REPLACED, but the replacement card's row does not "
                       "follow"});
  }
  // A person has a few cards: a list searched in order finds the first
  // repeat as a set would, without a node and a copy per number.
  absl::InlinedVector<std::string_view, 8> numbers;
  for (const CardPlan& c : cards) {
    for (const std::string* v :
         {&c.row->card_number(), &c.row->identification_code()}) {
      if (v->empty()) continue;
      const bool repeated =
          std::find(numbers.begin(), numbers.end(), *v) != numbers.end();
      numbers.push_back(*v);
      if (repeated) {
        return reject_all(
            c.line,
            {v == &c.row->card_number() ? "card_number" : "identification_code",
             "is given twice for this person"});
      }
    }
  }

  plan->id = *std::move(id);
  plan->person_key = ctx_.cipher->BlindIndex("id_number", plan->id.normalized);
  plan->lookups.reserve(1 + 3 * cards.size());
  plan->lookups.emplace_back(Table::kPersons, plan->person_key);
  for (const CardPlan& c : cards) {
    const RegisterRow& r = *c.row;
    plan->lookups.emplace_back(Table::kCards, r.application_id());
    if (!r.card_number().empty()) {
      plan->lookups.emplace_back(Table::kIndex, CardNumberKey(r.card_number()));
    }
    if (!r.identification_code().empty()) {
      plan->lookups.emplace_back(Table::kIndex,
                                 IdCodeKey(r.identification_code()));
    }
  }
  return true;
}

void Importer::Replay(const Group& g, GroupPlan* plan, Prepared* p,
                      ReplayScratch* scratch) const {
  auto reject_all = [&](uint64_t line, Problem problem) {
    RejectAll(g, line, std::move(problem.field), std::move(problem.reason), p);
  };
  std::vector<CardPlan>& cards = plan->cards;
  std::vector<ECardPlan>& ecards = plan->ecards;
  const uint64_t person_line = plan->person_line;
  const card::IdNumberInfo* const id = &plan->id;
  // The reads of step 3, in order: fetched by Fetch, else read now.
  size_t next_lookup = 0;
  auto read = [&]() -> absl::StatusOr<std::optional<std::string>> {
    Lookup& l = plan->lookups[next_lookup++];
    if (l.fetched) return std::move(l.value);
    return ctx_.engine->Get(l.table, l.key);
  };

  // 3. What the store already holds.
  const std::string& person_key = plan->person_key;
  p->person_claim.assign("person/").append(person_key);
  absl::StatusOr<std::optional<std::string>> existing = read();
  if (!existing.ok()) {
    return reject_all(person_line, FromStatus(existing.status(), ""));
  }
  if (existing->has_value()) {
    PersonRecord rec;
    bool same = rec.ParseFromString(**existing) &&
                static_cast<size_t>(rec.application_ids_size()) == cards.size();
    for (size_t i = 0; same && i < cards.size(); ++i) {
      same = rec.application_ids(static_cast<int>(i)) ==
             cards[i].row->application_id();
    }
    if (same) {
      p->outcome = Prepared::Outcome::kSkipped;
      return;
    }
    return reject_all(person_line,
                      {"id_number",
                       "the person is already in the register with other "
                       "cards (rows of one person must be consecutive; use "
                       "the card RPCs to change a registered person)"});
  }
  for (const CardPlan& c : cards) {
    const RegisterRow& r = *c.row;
    absl::StatusOr<std::optional<std::string>> card_exists = read();
    if (!card_exists.ok()) {
      return reject_all(c.line, FromStatus(card_exists.status(), ""));
    }
    if (card_exists->has_value()) {
      return reject_all(c.line, {"application_id",
                                 "already belongs to another person's card"});
    }
    for (const auto& [field, given] :
         {std::pair<const char*, bool>{"card_number", !r.card_number().empty()},
          {"identification_code", !r.identification_code().empty()}}) {
      if (!given) continue;
      std::string& key = plan->lookups[next_lookup].key;
      absl::StatusOr<std::optional<std::string>> owner = read();
      if (!owner.ok())
        return reject_all(c.line, FromStatus(owner.status(), ""));
      if (owner->has_value()) {
        return reject_all(
            c.line, {field, absl::StrCat("already belongs to card ", **owner)});
      }
      // Read: the lookup's key is not needed again.
      p->claims.push_back(std::move(key));
    }
    p->claims.push_back(absl::StrCat("app/", r.application_id()));
    uint64_t n = 0;
    (void)absl::SimpleAtoi(r.application_id().substr(7), &n);
    const std::string_view region =
        std::string_view(r.application_id()).substr(1, 6);
    auto m =
        std::find_if(p->max_application.begin(), p->max_application.end(),
                     [region](const auto& e) { return e.first == region; });
    if (m == p->max_application.end()) {
      m = &p->max_application.emplace_back(std::string(region), 0);
    }
    m->second = std::max(m->second, n);
  }

  // 4. The history, step by step, as the live operations write it.
  storage::WriteSet& ws = p->ws;
  // A card's history is up to 7 events and about 12 writes (records,
  // indexes, counters): room for them up front.
  ws.Reserve(12 * cards.size() + 4 * ecards.size(),
             7 * cards.size() + 2 * ecards.size() + 1);
  // The person's history is stored as one run of events: the same events,
  // a third of the import's work less (storage::WriteSet::BeginEventRun).
  ws.BeginEventRun();
  const storage::PiiCipher& cipher = *ctx_.cipher;
  // Everything taken from the scratch is reset here to what a fresh object
  // holds (strings and records keep only their buffers).
  card::PersonView& view = scratch->view;
  view.key = person_key;
  view.id_number = id->normalized;
  view.gender = id->gender;
  view.birth_date = id->birth_date_text;
  view.region_code.clear();
  std::vector<std::string>& application_ids = scratch->application_ids;
  size_t application_count = 0;
  view.current_application_id.clear();
  // The person record is built in the change the observers get (they read
  // it as it stands at each step): no swapping in and out per step.
  PersonRecord& prec = scratch->ch.person;
  prec.Clear();
  // Encrypted once with the final values (the person record is stored once,
  // at the end; observers read only its plain fields).
  const RegisterRow& last_row = *cards.back().row;
  std::string& phone = scratch->phone;
  std::string& address = scratch->address;
  phone.clear();
  address.clear();
  for (const CardPlan& c : cards) {
    if (!c.row->phone().empty()) phone = c.row->phone();
    if (!c.row->address().empty()) address = c.row->address();
  }
  auto enc = [&](std::string_view field,
                 const std::string& value) -> absl::StatusOr<std::string> {
    if (value.empty()) return std::string();
    return cipher.Encrypt(value, AadInto(&scratch->aad, person_key, field));
  };
  {
    absl::StatusOr<std::string> a = enc("id_number", view.id_number);
    absl::StatusOr<std::string> b = enc("name", last_row.name());
    absl::StatusOr<std::string> c = enc("phone", phone);
    absl::StatusOr<std::string> d = enc("address", address);
    for (const absl::StatusOr<std::string>* s : {&a, &b, &c, &d}) {
      if (!s->ok()) return reject_all(person_line, FromStatus(s->status(), ""));
    }
    prec.set_id_number(*std::move(a));
    prec.set_name(*std::move(b));
    prec.set_phone(*std::move(c));
    prec.set_address(*std::move(d));
  }
  prec.set_gender(view.gender);
  prec.set_birth_date(view.birth_date);
  prec.set_created_micros(Micros(*cards.front().applied));

  std::vector<CardRecord>& records = scratch->records;
  if (records.size() < cards.size()) records.resize(cards.size());
  for (size_t i = 0; i < cards.size(); ++i) records[i].Clear();
  std::optional<GroupError> failure;
  std::string& current_name = scratch->current_name;
  current_name.clear();
  int64_t person_updated = 0;
  bool has_ecard = false;
  ecard::store::ECardRecord erec;
  std::set<std::string> channels;

  auto put_person_at = [&](absl::Time t) {
    person_updated = Micros(t);
    prec.set_updated_micros(person_updated);
    prec.set_region_code(view.region_code);
    prec.clear_application_ids();
    for (size_t i = 0; i < application_count; ++i)
      prec.add_application_ids(application_ids[i]);
    prec.set_current_application_id(view.current_application_id);
  };
  // Computed once per group: every event of the person carries them.
  const std::string person_hex = absl::BytesToHexString(person_key);
  const std::string masked_id = storage::MaskIdNumber(view.id_number);
  std::string& masked_name = scratch->masked_name;
  masked_name.clear();
  // The events' details are written into one buffer, copied by the set.
  std::string& details = scratch->details;
  auto person_event = [&](std::string_view type) {
    Details payload(&details);
    payload.Str(R"("id_number":)", masked_id)
        .Str(R"("name":)", masked_name)
        .Str(R"("region_code":)", view.region_code);
    ws.AppendEvent(storage::EventView{
        type, "person", person_hex, std::move(payload).Done(), {}});
  };
  // Card events are indexed under the person too.
  const std::pair<std::string_view, std::string_view> of_person[] = {
      {"person", person_hex}};
  // The card as it was before the step, kept by transit(): one record
  // whose buffers are reused by every step (a copy per step was a large
  // share of the preparation), lent to the observers like the others.
  CardRecord& before_buf = scratch->before_buf;
  // One change reused for every step of the group (its strings keep their
  // buffers; every step sets what it reports).
  CardChange& ch = scratch->ch;
  ch.person_key = person_key;
  // The opening of the card events' details and what it was built from
  // (empty: built at the group's first change).
  std::string& head = scratch->head;
  std::string& head_card = scratch->head_card;
  std::string& head_number = scratch->head_number;
  std::string& head_region = scratch->head_region;
  std::string& head_issuing = scratch->head_issuing;
  std::string& head_name = scratch->head_name;
  head.clear();
  // Only persons the store does not hold are replayed (step 3).
  ch.person_new = true;
  // As CardLogic::Txn::Change, minus the card and invalid-list puts (the
  // final record is stored once at the end, with the same result).
  // `has_before`: the step changes an existing card, as it was when
  // transit() last ran (else a new card: the change has no `before`).
  // `extra(Details&)` appends the operation's own fields to the details.
  auto change = [&](ChangeKind kind, Operation op, std::string_view type,
                    bool has_before, CardRecord& after,
                    const CardRecord* previous_latest, const auto& extra,
                    absl::Time t, uint64_t line) {
    if (failure.has_value()) return;
    after.set_updated_micros(Micros(t));
    const CardRecord* before = has_before ? &before_buf : nullptr;
    const CardState from =
        has_before ? before->state() : ssc::v1::CARD_STATE_UNSPECIFIED;
    const CardRecord* holder_before = has_before ? before : previous_latest;
    const int delta = static_cast<int>(IsHolder(&after)) -
                      static_cast<int>(IsHolder(holder_before));
    // The first six members repeat from step to step of a card: quoted
    // once, and again only when one of them changes.
    if (head_card != after.application_id() ||
        head_number != after.card_number() ||
        head_region != after.region_code() ||
        head_issuing != after.issuing_region_code() ||
        head_name != masked_name || head.empty()) {
      head_card = after.application_id();
      head_number = after.card_number();
      head_region = after.region_code();
      head_issuing = after.issuing_region_code();
      head_name = masked_name;
      Details h(&head);
      h.Str(R"("application_id":)", after.application_id())
          .Str(R"("card_number":)", after.card_number())
          .Str(R"("region_code":)", after.region_code())
          .Str(R"("issuing_region_code":)", after.issuing_region_code())
          .Str(R"("holder_id_number":)", masked_id)
          .Str(R"("holder_name":)", masked_name);
    }
    Details payload(&details, head);
    payload
        .Raw(R"("state_before":)",
             has_before ? QuotedStateName(from) : std::string_view(R"("")"))
        .Raw(R"("state_after":)", QuotedStateName(after.state()))
        .Bool(R"("holder_start":)", delta > 0)
        .Bool(R"("holder_stop":)", delta < 0);
    extra(payload);
    ws.AppendEvent(storage::EventView{type, "card", after.application_id(),
                                      std::move(payload).Done(), of_person});
    ch.kind = kind;
    ch.operation = op;
    ch.event_type.assign(type.data(), type.size());
    ch.time = t;
    ch.holder_delta = delta;
    // The cards are lent to the observers (swapped in and back) rather
    // than copied: five changes per row, two records each.
    ch.after.Swap(&after);
    // `before` stays engaged (an empty record between steps) from one step
    // with a card before to the next: most steps have one.
    if (has_before) {
      if (!ch.before.has_value()) ch.before.emplace();
      ch.before->Swap(&before_buf);
    } else {
      ch.before.reset();
    }
    for (card::CardObserver* o : observers_) {
      absl::Status s = o->OnCardChange(ws, ch);
      if (!s.ok()) {
        failure = GroupError{line, FromStatus(s, "")};
        break;
      }
    }
    ch.after.Swap(&after);
    if (has_before) ch.before->Swap(&before_buf);
  };
  const auto no_extra = [](Details&) {};
  // Moves `c` on by `op`, keeping its state before in before_buf; false
  // (and `failure` set) if the lifecycle does not allow it.
  auto transit = [&](CardRecord& c, Operation op, uint64_t line) -> bool {
    if (failure.has_value()) return false;
    absl::StatusOr<CardState> to = card::Transition(c.state(), op);
    if (!to.ok()) {
      failure = GroupError{line, {"state", std::string(to.status().message())}};
      return false;
    }
    SyncCardRecord(c, &before_buf);
    c.set_state(*to);
    return true;
  };
  auto set_account = [&](CardRecord& c, const std::string& account,
                         uint64_t line) {
    absl::StatusOr<std::string> e = cipher.Encrypt(
        account, AadInto(&scratch->aad, c.application_id(), "bank_account"));
    if (!e.ok()) {
      failure = GroupError{line, FromStatus(e.status(), "bank_account")};
      return;
    }
    c.set_bank_account(*std::move(e));
  };

  // E-card bindings happen between card steps, by time.
  size_t next_ecard = 0;
  std::stable_sort(
      ecards.begin(), ecards.end(),
      [](const ECardPlan& a, const ECardPlan& b) { return a.bound < b.bound; });
  const CardRecord* current_card = nullptr;
  auto bind_until = [&](std::optional<absl::Time> limit) {
    while (!failure.has_value() && next_ecard < ecards.size() &&
           (!limit.has_value() || ecards[next_ecard].bound < *limit)) {
      const ECardPlan& e = ecards[next_ecard++];
      const absl::Time t = e.bound;
      ws.SetEventTime(t);
      if (!has_ecard) {
        // As ECardLogic::IssueECard: the person's handed-over card.
        CardState st = current_card != nullptr
                           ? current_card->state()
                           : ssc::v1::CARD_STATE_UNSPECIFIED;
        const bool temp_expired =
            st == ssc::v1::CARD_STATE_TEMP_LOST &&
            current_card->temp_loss_expires_micros() <= Micros(t);
        if (temp_expired) st = ssc::v1::CARD_STATE_ACTIVE;
        if (current_card == nullptr ||
            view.current_application_id != current_card->application_id() ||
            !(st == ssc::v1::CARD_STATE_ISSUED ||
              st == ssc::v1::CARD_STATE_ACTIVE ||
              st == ssc::v1::CARD_STATE_TEMP_LOST ||
              st == ssc::v1::CARD_STATE_LOST)) {
          failure = GroupError{
              e.line,
              {"bound_at",
               "the person holds no handed-over card that is not cancelled "
               "or replaced at this time"}};
          return;
        }
        has_ecard = true;
        erec.set_ecard_id(ImportedECardId(cipher, person_key));
        erec.set_person_key(person_key);
        erec.set_card_application_id(current_card->application_id());
        erec.set_card_state(st);
        if (st == ssc::v1::CARD_STATE_TEMP_LOST) {
          erec.set_temp_loss_expires_micros(
              current_card->temp_loss_expires_micros());
        }
        erec.set_issued_micros(Micros(t));
        erec.set_status_changed_micros(Micros(t));
        ws.Put(Table::kECards, ecard::PersonIndexKey(person_key),
               erec.ecard_id());
        report::RecordECardHolderChange(ws, view.region_code, t, +1);
        ecard::AppendStatusEvent(ws, erec, ecard::StatusOf(erec, t),
                                 "ecard.issued");
      } else {
        // The observers may have changed it since: read it back.
        absl::StatusOr<std::optional<ecard::store::ECardRecord>> back =
            ecard::LoadRecord<ecard::store::ECardRecord>(
                *ctx_.engine, &ws, Table::kECards,
                ecard::ECardKey(erec.ecard_id()));
        if (back.ok() && back->has_value()) erec = **back;
        if (erec.revoked()) {
          failure =
              GroupError{e.line, {"bound_at", "the e-card is revoked by then"}};
          return;
        }
      }
      if (!channels.insert(e.row->channel()).second) {
        failure = GroupError{e.line, {"channel", "is bound twice"}};
        return;
      }
      ecard::store::ChannelBindingRecord b;
      b.set_channel(e.row->channel());
      b.set_active(true);
      b.set_method(e.method);
      b.set_reference(e.row->reference());
      b.set_verified_micros(Micros(e.verified));
      b.set_bound_micros(Micros(t));
      ws.Put(Table::kECards, ecard::BindingKey(erec.ecard_id(), b.channel()),
             b.SerializeAsString());
      erec.set_active_channel_count(erec.active_channel_count() + 1);
      storage::EventInput ev;
      ev.type = "ecard.channel_bound";
      ev.entity_type = ecard::kECardEntityType;
      ev.entity_id = erec.ecard_id();
      ev.payload = absl::StrCat(R"({"ecard_id":")", erec.ecard_id(),
                                R"(","channel":")", b.channel(), R"("})");
      ws.AppendEvent(std::move(ev));
      ws.Put(Table::kECards, ecard::ECardKey(erec.ecard_id()),
             erec.SerializeAsString());
    }
  };
  // Runs the bindings due before `t`, then sets the events' time to `t`.
  auto at = [&](absl::Time t) {
    bind_until(t);
    ws.SetEventTime(t);
  };

  for (size_t i = 0; i < cards.size() && !failure.has_value(); ++i) {
    const CardPlan& plan = cards[i];
    const RegisterRow& r = *plan.row;
    CardRecord& c = records[i];
    const absl::Time applied = *plan.applied;
    const bool replacement = !r.replaces().empty();
    at(applied);
    if (failure.has_value()) break;

    bool name_changed = false;
    if (replacement) {
      // The old card's side of ApplyReplacement, in the same step.
      CardRecord& old = records[i - 1];
      transit(old, Operation::kApplyReplacement, cards[i - 1].line);
      if (failure.has_value()) break;
      old.set_closed_micros(Micros(applied));
      old.set_replaced_by(r.application_id());
      old.set_replacement_reason(plan.issue_reason);
      name_changed =
          plan.issue_reason == ssc::v1::REPLACEMENT_REASON_DATA_CHANGE &&
          r.name() != current_name;
    }
    if (current_name != r.name() || i == 0) {
      current_name = r.name();
      masked_name = storage::MaskName(current_name);
    }
    const bool created = i == 0;
    if (!replacement) view.region_code = r.region_code();

    c.set_application_id(r.application_id());
    c.set_person_key(person_key);
    c.set_state(ssc::v1::CARD_STATE_APPLIED);
    c.set_region_code(view.region_code);
    c.set_issuing_region_code(r.application_id().substr(1, 6));
    c.set_bank_code(r.bank_code());
    c.set_photo_ref(replacement ? records[i - 1].photo_ref() : r.photo_ref());
    c.set_applied_micros(Micros(applied));
    c.set_instant_issuance(r.instant_issuance());
    if (replacement) {
      c.set_replaces(r.replaces());
      c.set_replacement_reason(plan.issue_reason);
    }
    if (r.instant_issuance()) {
      c.set_card_number(r.card_number());
      c.set_identification_code(r.identification_code());
      c.set_spec_version(plan.spec_version);
      c.set_valid_from(plan.valid_from);
      c.set_valid_until(plan.valid_until);
      set_account(c, r.bank_account(), plan.line);
      c.set_produced_micros(Micros(applied));
      c.set_issued_micros(Micros(applied));
      c.set_state(ssc::v1::CARD_STATE_ISSUED);
    }
    if (application_count == application_ids.size()) {
      application_ids.emplace_back();
    }
    application_ids[application_count++] = r.application_id();
    view.current_application_id = r.application_id();
    put_person_at(applied);
    if (replacement) {
      const std::string_view reason =
          card::ReplacementReasonName(plan.issue_reason);
      change(
          ChangeKind::kTransition, Operation::kApplyReplacement,
          "card.replaced", true, records[i - 1], nullptr,
          [&](Details& d) {
            d.Str(R"("reason":)", reason)
                .Str(R"("replaced_by":)", r.application_id())
                .Bool(R"("name_changed":)", name_changed);
          },
          applied, cards[i - 1].line);
      change(
          ChangeKind::kApplied, Operation::kIssue, "card.applied", false, c,
          &records[i - 1],
          [&](Details& d) {
            d.Bool(R"("instant_issuance":)", r.instant_issuance())
                .Str(R"("replaces":)", r.replaces())
                .Str(R"("reason":)", reason)
                .Str(R"("bank_code":)", c.bank_code());
          },
          applied, plan.line);
    } else {
      if (created) person_event("person.created");
      change(
          ChangeKind::kApplied, Operation::kIssue, "card.applied", false, c,
          i > 0 ? &records[i - 1] : nullptr,
          [&](Details& d) {
            d.Bool(R"("instant_issuance":)", r.instant_issuance())
                .Bool(R"("person_created":)", created)
                .Str(R"("bank_code":)", r.bank_code());
          },
          applied, plan.line);
    }
    current_card = &c;

    if (plan.sent.has_value() && !r.instant_issuance()) {
      at(*plan.sent);
      transit(c, Operation::kSendToProduction, plan.line);
      if (failure.has_value()) break;
      c.set_sent_to_production_micros(Micros(*plan.sent));
      c.set_batch_reference(r.batch_reference());
      change(
          ChangeKind::kTransition, Operation::kSendToProduction,
          "card.sent_to_production", true, c, nullptr,
          [&](Details& d) {
            d.Str(R"("batch_reference":)", r.batch_reference());
          },
          *plan.sent, plan.line);
    }
    if (plan.produced.has_value() && !r.instant_issuance()) {
      at(*plan.produced);
      transit(c, Operation::kRecordProduction, plan.line);
      if (failure.has_value()) break;
      c.set_card_number(r.card_number());
      c.set_identification_code(r.identification_code());
      c.set_spec_version(plan.spec_version);
      set_account(c, r.bank_account(), plan.line);
      c.set_valid_from(plan.valid_from);
      c.set_valid_until(plan.valid_until);
      c.set_produced_micros(Micros(*plan.produced));
      change(
          ChangeKind::kTransition, Operation::kRecordProduction,
          "card.produced", true, c, nullptr,
          [&](Details& d) {
            d.Str(R"("spec_version":)", plan.spec_version)
                .Str(R"("valid_from":)", plan.valid_from)
                .Str(R"("valid_until":)", plan.valid_until);
          },
          *plan.produced, plan.line);
    }
    if (plan.issued.has_value() && !r.instant_issuance()) {
      at(*plan.issued);
      transit(c, Operation::kIssue, plan.line);
      if (failure.has_value()) break;
      c.set_issued_micros(Micros(*plan.issued));
      change(ChangeKind::kTransition, Operation::kIssue, "card.issued", true, c,
             nullptr, no_extra, *plan.issued, plan.line);
    }
    if (plan.activated.has_value()) {
      at(*plan.activated);
      transit(c, Operation::kActivate, plan.line);
      if (failure.has_value()) break;
      c.set_activated_micros(Micros(*plan.activated));
      change(ChangeKind::kTransition, Operation::kActivate, "card.activated",
             true, c, nullptr, no_extra, *plan.activated, plan.line);
    }
    if (plan.lost.has_value()) {
      at(*plan.lost);
      const Operation op = plan.temporary_loss ? Operation::kReportTempLoss
                                               : Operation::kReportFormalLoss;
      transit(c, op, plan.line);
      if (failure.has_value()) break;
      c.set_lost_micros(Micros(*plan.lost));
      if (plan.temporary_loss) {
        c.set_temp_loss_expires_micros(
            Micros(*plan.lost + options_.temp_loss_duration));
      } else {
        c.set_temp_loss_expires_micros(0);
      }
      const int64_t expires = c.temp_loss_expires_micros();
      change(
          ChangeKind::kTransition, op,
          plan.temporary_loss ? "card.temp_lost" : "card.lost", true, c,
          nullptr,
          [&](Details& d) {
            if (plan.temporary_loss) {
              d.Str(R"("kind":)", "TEMPORARY")
                  .Str(R"("expires_at":)", FormatTime(expires));
            } else {
              d.Str(R"("kind":)", "FORMAL");
            }
          },
          *plan.lost, plan.line);
    }
    if (plan.state == ssc::v1::CARD_STATE_CANCELLED) {
      const absl::Time t = *plan.closed;
      at(t);
      transit(c, Operation::kCancel, plan.line);
      if (failure.has_value()) break;
      c.set_closed_micros(Micros(t));
      c.set_cancel_reason(plan.cancel_reason);
      c.set_temp_loss_expires_micros(0);
      if (view.current_application_id == c.application_id()) {
        view.current_application_id.clear();
        put_person_at(t);
      }
      change(
          ChangeKind::kTransition, Operation::kCancel, "card.cancelled", true,
          c, nullptr,
          [&](Details& d) {
            d.Str(R"("reason":)", card::CancelReasonName(plan.cancel_reason));
          },
          t, plan.line);
    }
  }
  if (!failure.has_value()) bind_until(std::nullopt);
  ws.SetEventTime(std::nullopt);
  ws.EndEventRun();
  if (failure.has_value()) return reject_all(failure->line, failure->problem);

  // 5. The final records and their index entries.
  for (size_t i = 0; i < cards.size(); ++i) {
    const CardRecord& c = records[i];
    if (c.state() != cards[i].state) {
      return reject_all(
          cards[i].line,
          {"state",
           absl::StrCat("the dates lead to ", Sv(card::StateName(c.state())),
                        ", not ", cards[i].row->state())});
    }
    ws.Put(Table::kCards, c.application_id(), c.SerializeAsString());
    if (!c.card_number().empty()) {
      ws.Put(Table::kIndex, CardNumberKey(c.card_number()), c.application_id());
      ws.Put(Table::kIndex, IdCodeKey(c.identification_code()),
             c.application_id());
      if (card::IsInvalidState(c.state())) {
        const bool lost = c.state() == ssc::v1::CARD_STATE_TEMP_LOST ||
                          c.state() == ssc::v1::CARD_STATE_LOST;
        ws.Put(Table::kIndex, InvalidKey(c.card_number()),
               EncodeInvalid(lost ? c.lost_micros() : c.closed_micros(),
                             c.state(), c.temp_loss_expires_micros()));
      }
    }
  }
  prec.set_updated_micros(person_updated);
  ws.Put(Table::kPersons, person_key, prec.SerializeAsString());
  p->outcome = Prepared::Outcome::kAccepted;
}

// ---------------------------------------------------------------------------
// Parsing.

absl::StatusOr<std::vector<std::string>> Importer::SplitCsv(
    std::string_view line) {
  std::vector<std::string> out;
  size_t i = 0;
  while (true) {
    std::string cur;
    if (i < line.size() && line[i] == '"') {
      ++i;
      while (true) {
        // Runs up to the next quote are copied whole.
        const size_t q = line.find('"', i);
        if (q == std::string_view::npos) {
          return absl::InvalidArgumentError("unterminated quoted field");
        }
        cur.append(line.data() + i, q - i);
        i = q + 1;
        if (i < line.size() && line[i] == '"') {
          cur += '"';
          ++i;
          continue;
        }
        break;
      }
      if (i < line.size() && line[i] != ',') {
        return absl::InvalidArgumentError("text after a closing quote");
      }
    } else {
      size_t j = i;
      while (j < line.size() && line[j] != ',' && line[j] != '"') ++j;
      if (j < line.size() && line[j] == '"') {
        return absl::InvalidArgumentError("quote inside an unquoted field");
      }
      cur.assign(line.data() + i, j - i);
      i = j;
    }
    out.push_back(std::move(cur));
    if (i >= line.size()) break;
    ++i;  // the comma
  }
  return out;
}

namespace {

// The RegisterRow fields of CSV columns, looked up once per batch rather
// than by name for every field of every line.
std::vector<const google::protobuf::FieldDescriptor*> ResolveColumns(
    const std::vector<std::string>& columns) {
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  fields.reserve(columns.size());
  for (const std::string& c : columns) {
    fields.push_back(RegisterRow::descriptor()->FindFieldByName(c));
  }
  return fields;
}

// Sets a string field of a row through its generated setter (reflection's
// SetString costs several times as much, for every field of every line);
// a field not listed here takes the reflection path.
void SetStringField(RegisterRow* row,
                    const google::protobuf::FieldDescriptor* f,
                    std::string_view v) {
  switch (f->number()) {
    case RegisterRow::kKindFieldNumber:
      row->set_kind(v.data(), v.size());
      return;
    case RegisterRow::kIdNumberFieldNumber:
      row->set_id_number(v.data(), v.size());
      return;
    case RegisterRow::kNameFieldNumber:
      row->set_name(v.data(), v.size());
      return;
    case RegisterRow::kPhoneFieldNumber:
      row->set_phone(v.data(), v.size());
      return;
    case RegisterRow::kAddressFieldNumber:
      row->set_address(v.data(), v.size());
      return;
    case RegisterRow::kRegionCodeFieldNumber:
      row->set_region_code(v.data(), v.size());
      return;
    case RegisterRow::kApplicationIdFieldNumber:
      row->set_application_id(v.data(), v.size());
      return;
    case RegisterRow::kStateFieldNumber:
      row->set_state(v.data(), v.size());
      return;
    case RegisterRow::kBankCodeFieldNumber:
      row->set_bank_code(v.data(), v.size());
      return;
    case RegisterRow::kBankAccountFieldNumber:
      row->set_bank_account(v.data(), v.size());
      return;
    case RegisterRow::kPhotoRefFieldNumber:
      row->set_photo_ref(v.data(), v.size());
      return;
    case RegisterRow::kCardNumberFieldNumber:
      row->set_card_number(v.data(), v.size());
      return;
    case RegisterRow::kIdentificationCodeFieldNumber:
      row->set_identification_code(v.data(), v.size());
      return;
    case RegisterRow::kSpecVersionFieldNumber:
      row->set_spec_version(v.data(), v.size());
      return;
    case RegisterRow::kValidFromFieldNumber:
      row->set_valid_from(v.data(), v.size());
      return;
    case RegisterRow::kValidUntilFieldNumber:
      row->set_valid_until(v.data(), v.size());
      return;
    case RegisterRow::kBatchReferenceFieldNumber:
      row->set_batch_reference(v.data(), v.size());
      return;
    case RegisterRow::kAppliedAtFieldNumber:
      row->set_applied_at(v.data(), v.size());
      return;
    case RegisterRow::kSentAtFieldNumber:
      row->set_sent_at(v.data(), v.size());
      return;
    case RegisterRow::kProducedAtFieldNumber:
      row->set_produced_at(v.data(), v.size());
      return;
    case RegisterRow::kIssuedAtFieldNumber:
      row->set_issued_at(v.data(), v.size());
      return;
    case RegisterRow::kActivatedAtFieldNumber:
      row->set_activated_at(v.data(), v.size());
      return;
    case RegisterRow::kLostAtFieldNumber:
      row->set_lost_at(v.data(), v.size());
      return;
    case RegisterRow::kClosedAtFieldNumber:
      row->set_closed_at(v.data(), v.size());
      return;
    case RegisterRow::kReplacesFieldNumber:
      row->set_replaces(v.data(), v.size());
      return;
    case RegisterRow::kReplacementReasonFieldNumber:
      row->set_replacement_reason(v.data(), v.size());
      return;
    case RegisterRow::kCancelReasonFieldNumber:
      row->set_cancel_reason(v.data(), v.size());
      return;
    case RegisterRow::kChannelFieldNumber:
      row->set_channel(v.data(), v.size());
      return;
    case RegisterRow::kBoundAtFieldNumber:
      row->set_bound_at(v.data(), v.size());
      return;
    case RegisterRow::kMethodFieldNumber:
      row->set_method(v.data(), v.size());
      return;
    case RegisterRow::kReferenceFieldNumber:
      row->set_reference(v.data(), v.size());
      return;
    case RegisterRow::kVerifiedAtFieldNumber:
      row->set_verified_at(v.data(), v.size());
      return;
    case RegisterRow::kIssueReasonFieldNumber:
      row->set_issue_reason(v.data(), v.size());
      return;
    default:
      RegisterRow::GetReflection()->SetString(row, f, std::string(v));
  }
}

// Parses `text` into `*row_out` (empty; possibly on an arena).
absl::Status ParseResolved(
    ssc::v1::ImportFormat format, const std::vector<std::string>& columns,
    const std::vector<const google::protobuf::FieldDescriptor*>& descriptors,
    std::string_view text, RegisterRow* row_out) {
  RegisterRow& row = *row_out;
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  if (format == ssc::v1::IMPORT_FORMAT_JSON_LINES) {
    google::protobuf::util::JsonParseOptions opts;
    opts.ignore_unknown_fields = false;
    auto s = google::protobuf::util::JsonStringToMessage(std::string(text),
                                                         &row, opts);
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("not a register row in JSON: ", s.ToString()));
    }
    return absl::OkStatus();
  }
  // Fields as views into `text` (a line without quotes, the usual case)
  // or into the unquoted copies SplitCsv makes.
  // The list is kept by the thread from line to line (its views are used
  // only within this call).
  std::vector<std::string> unquoted;
  thread_local std::vector<std::string_view> fields;
  fields.clear();
  if (text.find('"') == std::string_view::npos) {
    // As absl::StrSplit(text, ','): n commas make n + 1 fields.
    for (size_t i = 0;;) {
      const size_t comma = text.find(',', i);
      if (comma == std::string_view::npos) {
        fields.push_back(text.substr(i));
        break;
      }
      fields.push_back(text.substr(i, comma - i));
      i = comma + 1;
    }
  } else {
    ASSIGN_OR_RETURN(unquoted, Importer::SplitCsv(text));
    fields.assign(unquoted.begin(), unquoted.end());
  }
  if (fields.size() != columns.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "has ", fields.size(), " fields, the header ", columns.size()));
  }
  const google::protobuf::Reflection* refl = RegisterRow::GetReflection();
  for (size_t i = 0; i < columns.size(); ++i) {
    const google::protobuf::FieldDescriptor* f = descriptors[i];
    if (f->type() == google::protobuf::FieldDescriptor::TYPE_BOOL) {
      const std::string v = absl::AsciiStrToLower(Sv(fields[i]));
      if (v == "true" || v == "1" || v == "yes") {
        refl->SetBool(&row, f, true);
      } else if (!(v.empty() || v == "false" || v == "0" || v == "no")) {
        absl::Status s =
            common::InvalidField(columns[i], "must be true or false");
        return s;
      }
    } else if (!fields[i].empty()) {
      SetStringField(&row, f, fields[i]);
    }
  }
  return absl::OkStatus();
}

// `v` when it is a valid id number (a field read from a broken line may be
// anything), else empty. Surrounding quotes and blanks are dropped.
std::string_view IfIdNumber(std::string_view v, absl::Time now) {
  const absl::string_view stripped = absl::StripAsciiWhitespace(Sv(v));
  v = std::string_view(stripped.data(), stripped.size());
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
    v = v.substr(1, v.size() - 2);
  }
  return card::ValidateIdNumber("id_number", v, now).ok() ? v
                                                          : std::string_view();
}

// The id number of a line that does not parse, if it can still be read (a
// view into `text`; empty if not): for CSV the id_number column, counted
// from the start of the line and from its end (a stray or missing comma
// elsewhere shifts only one of them); for JSON lines the "id_number"
// member. Only a valid id number counts, and only one: two different ones
// (the line is ambiguous) count as none. Not on the path of lines that
// parse.
std::string_view ReadableIdNumber(ssc::v1::ImportFormat format,
                                  const std::vector<std::string>& columns,
                                  std::string_view text, absl::Time now) {
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  std::string_view found;
  bool ambiguous = false;
  auto consider = [&](std::string_view candidate) {
    candidate = IfIdNumber(candidate, now);
    if (candidate.empty()) return;
    if (found.empty()) {
      found = candidate;
    } else if (!absl::EqualsIgnoreCase(Sv(found), Sv(candidate))) {
      ambiguous = true;
    }
  };
  if (format == ssc::v1::IMPORT_FORMAT_JSON_LINES) {
    static constexpr std::string_view kKey = "\"id_number\"";
    for (size_t at = text.find(kKey); at != std::string_view::npos;
         at = text.find(kKey, at + kKey.size())) {
      size_t i = at + kKey.size();
      while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
      if (i >= text.size() || text[i] != ':') continue;
      ++i;
      while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
      if (i >= text.size() || text[i] != '"') continue;
      const size_t end = text.find('"', i + 1);
      if (end == std::string_view::npos) continue;
      consider(text.substr(i + 1, end - i - 1));
    }
  } else {
    const size_t k = static_cast<size_t>(
        std::find(columns.begin(), columns.end(), "id_number") -
        columns.begin());
    if (k >= columns.size()) return {};
    // Fields split at every comma (quoting aside: the line is broken).
    const size_t fields =
        static_cast<size_t>(std::count(text.begin(), text.end(), ',')) + 1;
    auto nth = [&](size_t n) {
      size_t from = 0;
      for (size_t i = 0; i < n; ++i) from = text.find(',', from) + 1;
      const size_t to = text.find(',', from);
      return text.substr(from, to == std::string_view::npos
                                   ? std::string_view::npos
                                   : to - from);
    };
    if (k < fields) consider(nth(k));
    const size_t from_end = columns.size() - k;  // >= 1
    if (fields >= from_end && fields - from_end != k) {
      consider(nth(fields - from_end));
    }
  }
  return ambiguous ? std::string_view() : found;
}

}  // namespace

absl::StatusOr<RegisterRow> Importer::ParseLine(
    ssc::v1::ImportFormat format, const std::vector<std::string>& columns,
    std::string_view text) {
  RegisterRow row;
  const std::vector<const google::protobuf::FieldDescriptor*> descriptors =
      ResolveColumns(columns);
  for (size_t i = 0; i < columns.size(); ++i) {
    // Begin refuses such a header; this entry point gets any columns.
    if (format == ssc::v1::IMPORT_FORMAT_CSV && descriptors[i] == nullptr) {
      return common::InvalidField(
          "csv_header", absl::StrCat("unknown column \"", columns[i], "\""));
    }
  }
  RETURN_IF_ERROR(ParseResolved(format, columns, descriptors, text, &row));
  return row;
}

// ---------------------------------------------------------------------------
// Importer and sessions.

Importer::Importer(common::StoreContext ctx, const card::RegionTable* regions,
                   std::string county_code,
                   std::vector<card::CardObserver*> observers,
                   ImportOptions options)
    : ctx_(ctx),
      regions_(regions),
      county_code_(std::move(county_code)),
      observers_(std::move(observers)),
      options_(options) {
  options_.batch_rows = std::max<size_t>(options_.batch_rows, 1);
  options_.threads = std::clamp(options_.threads, 1, 16);
}

absl::StatusOr<ImportTotals> Importer::Status(
    std::string_view import_id) const {
  ASSIGN_OR_RETURN(std::optional<std::string> v,
                   ctx_.engine->Get(Table::kMeta, CheckpointKey(import_id)));
  if (!v.has_value()) return ImportTotals();
  return DecodeTotals(*v);
}

absl::StatusOr<std::vector<RejectedRow>> Importer::Rejects(
    std::string_view import_id) const {
  std::vector<RejectedRow> out;
  const std::string prefix = RejectPrefix(import_id);
  absl::Status parse;
  RETURN_IF_ERROR(ctx_.engine->Scan(
      Table::kMeta, prefix, storage::PrefixSuccessor(prefix),
      [&](std::string_view key, std::string_view value) {
        if (key.size() != prefix.size() + 8) return true;
        RejectedRow r;
        r.line = storage::GetFixed64BE(key.substr(prefix.size()));
        absl::StatusOr<std::string> opened =
            OpenReject(*ctx_.cipher, key, value);
        if (!opened.ok()) {
          parse = absl::DataLossError(
              absl::StrCat("import reject record cannot be decrypted: ",
                           opened.status().message()));
          return false;
        }
        value = *opened;
        const size_t nul = value.find('\0');
        if (nul == std::string_view::npos) {
          parse = absl::DataLossError("import reject record is malformed");
          return false;
        }
        r.field = std::string(value.substr(0, nul));
        r.reason = std::string(value.substr(nul + 1));
        out.push_back(std::move(r));
        return true;
      }));
  RETURN_IF_ERROR(parse);
  return out;
}

absl::StatusOr<std::unique_ptr<ImportSession>> Importer::Begin(
    const common::Caller& caller, std::string_view import_id,
    ssc::v1::ImportFormat format, std::string_view csv_header,
    std::function<bool()> abandoned) {
  if (import_id.empty() || import_id.size() > 128 ||
      !IsPrintableAscii(import_id)) {
    return common::InvalidField("start.import_id",
                                "must be 1..128 printable ASCII characters");
  }
  std::vector<std::string> columns;
  if (format == ssc::v1::IMPORT_FORMAT_CSV) {
    if (!csv_header.empty() && csv_header.back() == '\r') {
      csv_header.remove_suffix(1);
    }
    if (csv_header.starts_with(kUtf8Bom)) {
      csv_header.remove_prefix(kUtf8Bom.size());
    }
    absl::StatusOr<std::vector<std::string>> cols = SplitCsv(csv_header);
    if (!cols.ok() || csv_header.empty()) {
      return common::InvalidField("start.csv_header",
                                  "is not a CSV header line");
    }
    std::set<std::string> seen;
    for (std::string& c : *cols) {
      c = std::string(absl::StripAsciiWhitespace(c));
      if (RegisterRow::descriptor()->FindFieldByName(c) == nullptr) {
        return common::InvalidField(
            "start.csv_header",
            absl::StrCat("unknown column \"", c,
                         "\" (see deploy/import-format.md)"));
      }
      if (!seen.insert(c).second) {
        return common::InvalidField("start.csv_header",
                                    absl::StrCat("column \"", c, "\" twice"));
      }
    }
    if (!seen.count("id_number")) {
      return common::InvalidField("start.csv_header",
                                  "needs an id_number column");
    }
    columns = *std::move(cols);
  } else if (format != ssc::v1::IMPORT_FORMAT_JSON_LINES) {
    return common::InvalidField("start.format", "must be CSV or JSON_LINES");
  }
  auto lease = std::make_shared<Lease>();
  lease->abandoned = std::move(abandoned);
  std::shared_ptr<Lease> previous;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, inserted] = running_.try_emplace(std::string(import_id), lease);
    if (!inserted) {
      // A run whose client is gone (killed mid-file) is taken over rather
      // than waited for: its handler may take a while to notice.
      const Lease& running = *it->second;
      if (!running.abandoned || !running.abandoned()) {
        return absl::AbortedError(
            absl::StrCat("import ", Sv(import_id), " is running already"));
      }
      previous = std::move(it->second);
      it->second = lease;
    }
  }
  if (previous != nullptr) {
    // Waits for the batch it is committing, if any; it commits nothing
    // after this (its pending rows are dropped), so the checkpoint read
    // below is final and one session writes at a time.
    std::lock_guard<std::mutex> lock(previous->mu);
    previous->revoked = true;
  }
  absl::StatusOr<ImportTotals> totals = Status(import_id);
  if (!totals.ok()) {
    Release(std::string(import_id), lease.get());
    return totals.status();
  }
  auto session = std::unique_ptr<ImportSession>(
      new ImportSession(this, caller, std::string(import_id), format,
                        std::move(columns), *totals));
  session->lease_ = std::move(lease);
  return session;
}

void Importer::Release(const std::string& import_id, const Lease* lease) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = running_.find(import_id);
  // A session taken over leaves its successor's entry alone.
  if (it != running_.end() && it->second.get() == lease) running_.erase(it);
}

ImportSession::ImportSession(Importer* importer, common::Caller caller,
                             std::string import_id,
                             ssc::v1::ImportFormat format,
                             std::vector<std::string> csv_columns,
                             ImportTotals totals)
    : importer_(importer),
      caller_(std::move(caller)),
      import_id_(std::move(import_id)),
      format_(format),
      csv_columns_(std::move(csv_columns)),
      totals_(totals),
      last_line_(totals.resume_after_line) {}

ImportSession::~ImportSession() {
  if (in_flight_.has_value()) in_flight_->done.wait();
  if (bulk_loading_) (void)importer_->ctx_.engine->EndBulkLoading();
  importer_->Release(import_id_, lease_.get());
}

absl::Status ImportSession::TakenOver() const {
  return absl::AbortedError(absl::StrCat(
      "import ", Sv(import_id_),
      " was taken over by a new run (this run's client had gone); its "
      "uncommitted rows were dropped"));
}

absl::Status ImportSession::AwaitCommit(std::vector<BatchResult>* out) {
  if (!in_flight_.has_value()) return absl::OkStatus();
  InFlight f = std::move(*in_flight_);
  in_flight_.reset();
  absl::Status committed = f.done.get();
  // Done with either way: the next batch but one reuses them.
  spare_ = std::move(f.batch);
  RETURN_IF_ERROR(committed);
  totals_ = f.result.totals;
  out->push_back(std::move(f.result));
  return absl::OkStatus();
}

absl::Status ImportSession::Add(uint64_t line, std::string_view text,
                                std::vector<BatchResult>* out) {
  if (line <= totals_.resume_after_line) return absl::OkStatus();  // done
  if (line <= last_line_) {
    return common::InvalidField(
        "chunk.first_line",
        absl::StrCat("line ", line, " comes after line ", last_line_,
                     ": send lines in file order"));
  }
  last_line_ = line;
  // As spreadsheet programs write: a byte order mark before the first line.
  if (line == 1 && text.starts_with(kUtf8Bom)) {
    text.remove_prefix(kUtf8Bom.size());
  }
  if (absl::StripAsciiWhitespace(Sv(text)).empty()) return absl::OkStatus();
  pending_.push_back(Line{line, pending_text_.size(), text.size()});
  pending_text_.append(text);
  if (pending_.size() >= importer_->options().batch_rows) {
    return Flush(/*final=*/false, out);
  }
  return absl::OkStatus();
}

absl::Status ImportSession::Finish(std::vector<BatchResult>* out) {
  const size_t results_before = out->size();
  RETURN_IF_ERROR(Flush(/*final=*/true, out));
  RETURN_IF_ERROR(AwaitCommit(out));
  if (!totals_.done) {
    // Nothing was pending: record completion on its own.
    ImportTotals t = totals_;
    t.done = true;
    t.resume_after_line = std::max(t.resume_after_line, last_line_);
    storage::WriteSet ws;
    ws.Put(Table::kMeta, CheckpointKey(import_id_), EncodeTotals(t));
    std::lock_guard<std::mutex> lock(lease_->mu);
    if (lease_->revoked) return TakenOver();
    RETURN_IF_ERROR(importer_->ctx_.engine->Commit(std::move(ws)).status());
    totals_ = t;
    out->push_back(BatchResult{totals_, {}});
  }
  // The batches left the report counters' deltas in up to 16 table files
  // per table. The usual level-0 trigger, back now, has the store fold them
  // in the background (RocksDB compacts a table past 4 such files; report
  // queries read a few more files until then). Compacting the counters
  // here instead made the import wait ~1 s for the store's one compaction
  // slot, busy merging the persons' files.
  if (bulk_loading_) {
    bulk_loading_ = false;
    RETURN_IF_ERROR(importer_->ctx_.engine->EndBulkLoading());
  }
  // Always a final result, also when the import was done before.
  if (out->size() == results_before) out->push_back(BatchResult{totals_, {}});
  return absl::OkStatus();
}

void Importer::GroupLines(const ImportSession& session,
                          const std::vector<RegisterRow*>& parsed,
                          const std::vector<absl::Status>& parse_errors,
                          absl::Time now, std::vector<Group>* groups) {
  // A line that does not parse joins the rows of its person when its id
  // number can still be read; when it cannot, it is a group of its own and
  // the groups just before and after it (its person's, if it has other
  // rows) are rejected with it. A person's rows are accepted or rejected
  // together.
  uint64_t unread = session.unread_before_pending_;  // for the next group
  for (size_t i = 0; i < parsed.size(); ++i) {
    const uint64_t line = session.pending_[i].number;
    std::string_view id_key;
    std::optional<Problem> problem;
    if (parse_errors[i].ok()) {
      id_key = parsed[i]->id_number();
    } else {
      problem = FromStatus(parse_errors[i], "");
      id_key = ReadableIdNumber(session.format_, session.csv_columns_,
                                session.Text(session.pending_[i]), now);
    }
    const bool unreadable = problem.has_value() && id_key.empty();
    if (groups->empty() || id_key.empty() ||
        !absl::EqualsIgnoreCase(Sv(groups->back().id_key), Sv(id_key))) {
      if (unreadable && !groups->empty() &&
          groups->back().unread_neighbour == 0) {
        groups->back().unread_neighbour = line;
      }
      Group g;
      g.id_key = id_key;
      g.unread_neighbour = unread;
      unread = unreadable ? line : 0;
      groups->push_back(std::move(g));
    }
    Group& g = groups->back();
    if (problem.has_value()) {
      if (!g.parse_error.has_value()) {
        g.parse_error = std::move(problem);
        g.parse_error_line = line;
        if (unreadable) {
          g.parse_error->reason = absl::StrCat(
              g.parse_error->reason,
              " (its id_number cannot be read: the rows next to it are "
              "rejected with it)");
        }
      }
      g.rows.push_back({line, &RegisterRow::default_instance()});
    } else {
      g.rows.push_back({line, parsed[i]});
    }
  }
}

absl::Status ImportSession::Flush(bool final, std::vector<BatchResult>* out) {
  if (pending_.empty()) return AwaitCommit(out);
  // Not under lease_->mu: the batch before may be committing under it, and
  // this batch is prepared meanwhile. Its own commit checks again under it.
  if (lease_->revoked) return TakenOver();
  Importer& imp = *importer_;
  // An import of more than one batch lets the batches' table files pile up
  // rather than having them merged every four batches
  // (storage::Engine::BeginBulkLoading). Not for smaller ones: switching
  // costs RocksDB about 0.1 s each way. Only speed depends on it.
  if (!final && !bulk_loading_tried_ && imp.options_.bulk_load) {
    bulk_loading_tried_ = true;
    bulk_loading_ = imp.ctx_.engine->BeginBulkLoading().ok();
  }
  const absl::Time now = imp.ctx_.clock->Now();
  const absl::Time phase_start = absl::Now();
  const size_t n = pending_.size();

  // Parse (in parallel) and group consecutive rows of one person. The rows
  // live on one arena per parsing thread, for the whole batch: a row's
  // fields cost no allocation of their own (about twenty per row). The
  // arenas start in blocks the session keeps, sized for a batch's rows
  // (about 0.8 KB a CSV row): a batch's rows cost no heap blocks, and no
  // fresh pages for the kernel to fault in and zero (11 MB a thread and
  // batch otherwise).
  const int threads = imp.options_.threads;
  const size_t block_bytes =
      std::max<size_t>(1 << 20, imp.options_.batch_rows / threads * 1024);
  if (parse_blocks_.size() != static_cast<size_t>(threads)) {
    parse_blocks_.clear();
    for (int t = 0; t < threads; ++t) {
      parse_blocks_.push_back(
          std::make_unique_for_overwrite<char[]>(block_bytes));
    }
  }
  std::vector<std::unique_ptr<google::protobuf::Arena>> arenas;
  for (int t = 0; t < threads; ++t) {
    google::protobuf::ArenaOptions ao;
    ao.initial_block = parse_blocks_[t].get();
    ao.initial_block_size = block_bytes;
    ao.start_block_size = 64 << 10;
    ao.max_block_size = 1 << 20;
    arenas.push_back(std::make_unique<google::protobuf::Arena>(ao));
  }
  std::vector<RegisterRow*> parsed(n);
  std::vector<absl::Status> parse_errors(n);
  const std::vector<const google::protobuf::FieldDescriptor*> descriptors =
      ResolveColumns(csv_columns_);
  auto parse_range = [&](google::protobuf::Arena* arena, size_t from,
                         size_t to) {
    for (size_t i = from; i < to; ++i) {
      parsed[i] = google::protobuf::Arena::CreateMessage<RegisterRow>(arena);
      parse_errors[i] = ParseResolved(format_, csv_columns_, descriptors,
                                      Text(pending_[i]), parsed[i]);
    }
  };
  {
    std::vector<std::thread> pool;
    const size_t per = (n + threads - 1) / threads;
    for (int t = 1; t < threads; ++t) {
      const size_t from = std::min(n, per * t), to = std::min(n, per * (t + 1));
      if (from < to) pool.emplace_back(parse_range, arenas[t].get(), from, to);
    }
    parse_range(arenas[0].get(), 0, std::min(n, per));
    for (std::thread& th : pool) th.join();
  }
  const absl::Time parsed_at = absl::Now();
  std::vector<Importer::Group> groups;
  Importer::GroupLines(*this, parsed, parse_errors, now, &groups);
  // The last person may continue in the next lines: its lines stay
  // pending (moved to the front; the buffers keep their capacity), and
  // with them an unreadable line just before them.
  size_t keep = 0;
  unread_before_pending_ = 0;
  if (!final && groups.size() > 1) {
    keep = groups.back().rows.size();
    unread_before_pending_ = groups.back().unread_neighbour;
    groups.pop_back();
  } else if (!final && !groups.empty() && groups.back().id_key.empty() &&
             groups.back().parse_error.has_value()) {
    // The batch ended on an unreadable line: the next line may be of its
    // person.
    unread_before_pending_ = groups.back().parse_error_line;
  }
  const size_t kept_from =
      keep > 0 ? pending_[n - keep].offset : pending_text_.size();
  pending_.erase(pending_.begin(), pending_.end() - keep);
  pending_text_.erase(0, kept_from);
  for (Line& l : pending_) l.offset -= kept_from;

  // Prepare (in parallel), into the groups of the batch before the last
  // (each reset by its preparing thread).
  std::shared_ptr<PreparedBatch> batch_groups = std::move(spare_);
  if (batch_groups == nullptr) {
    batch_groups = std::make_shared<PreparedBatch>();
  }
  std::vector<Importer::Prepared>& prepared = batch_groups->groups;
  prepared.resize(groups.size());
  auto prepare_range = [&](size_t from, size_t to) {
    // Valid groups are planned first, their reads fetched together, then
    // replayed.
    std::vector<Importer::GroupPlan> plans(to - from);
    Importer::ReplayScratch scratch;
    std::vector<Importer::GroupPlan*> planned;
    std::vector<size_t> planned_group;
    for (size_t i = from; i < to; ++i) {
      prepared[i].Reset();
      if (groups[i].parse_error.has_value()) {
        // The person's other rows are rejected with the broken one.
        Importer::Prepared& p = prepared[i];
        p.rows = groups[i].rows.size();
        p.first_line = groups[i].rows.front().line;
        p.last_line = groups[i].rows.back().line;
        Importer::RejectAll(groups[i], groups[i].parse_error_line,
                            groups[i].parse_error->field,
                            groups[i].parse_error->reason, &p);
      } else if (groups[i].id_key.empty()) {
        prepared[i].outcome = Importer::Prepared::Outcome::kRejected;
        prepared[i].rows = groups[i].rows.size();
        prepared[i].last_line = groups[i].rows.back().line;
        for (const auto& r : groups[i].rows) {
          prepared[i].rejects.push_back({r.line, "id_number", "is required"});
        }
      } else if (imp.Plan(groups[i], now, &prepared[i], &plans[i - from])) {
        if (groups[i].unread_neighbour != 0) {
          Importer::RejectWithUnreadLine(groups[i], groups[i].unread_neighbour,
                                         &prepared[i]);
          continue;
        }
        planned.push_back(&plans[i - from]);
        planned_group.push_back(i);
      }
    }
    imp.Fetch(planned);
    // The persons' writes go to chunks of the session's pool, carved on
    // this thread (storage::ByteChunkPool).
    storage::ByteCarver carver(&chunks_);
    for (size_t k = 0; k < planned.size(); ++k) {
      const size_t i = planned_group[k];
      prepared[i].ws.UseCarver(&carver);
      imp.Replay(groups[i], planned[k], &prepared[i], &scratch);
      prepared[i].ws.UseCarver(nullptr);
    }
  };
  {
    const size_t g = groups.size();
    std::vector<std::thread> pool;
    const size_t per = (g + threads - 1) / threads;
    for (int t = 1; t < threads; ++t) {
      const size_t from = std::min(g, per * t), to = std::min(g, per * (t + 1));
      if (from < to) pool.emplace_back(prepare_range, from, to);
    }
    prepare_range(0, std::min(g, per));
    for (std::thread& th : pool) th.join();
  }

  // A person (or card) of this batch that the previous batch also writes
  // was prepared without its rows: it is prepared again once they are
  // stored. Which ones is known from the previous batch's claims while
  // that batch is still being committed.
  const absl::Time waited_from = absl::Now();
  std::vector<size_t> again;
  if (in_flight_.has_value() && !in_flight_->claims.empty()) {
    const absl::flat_hash_set<std::string_view>& unseen = in_flight_->claims;
    for (size_t i = 0; i < prepared.size(); ++i) {
      const Importer::Prepared& p = prepared[i];
      if (p.outcome != Importer::Prepared::Outcome::kAccepted) continue;
      bool seen = unseen.contains(p.person_claim);
      for (const std::string& c : p.claims) seen = seen || unseen.contains(c);
      if (seen) again.push_back(i);
    }
  }
  // The previous batch must be in the store before this one is merged.
  RETURN_IF_ERROR(AwaitCommit(out));
  for (size_t i : again) {
    prepared[i].Reset();
    imp.Prepare(groups[i], now, &prepared[i]);
  }
  const absl::Time prepared_at = absl::Now();
  // Merge in file order, under the application sequences' locks.
  std::set<std::string> regions;
  for (const Importer::Prepared& p : prepared) {
    for (const auto& [region, max] : p.max_application) regions.insert(region);
  }
  std::vector<std::string> lock_keys;
  for (const std::string& r : regions) {
    lock_keys.push_back(card::SequenceAllocator::LockKey("application", r));
  }
  std::vector<std::string_view> lock_views(lock_keys.begin(), lock_keys.end());
  storage::KeyLocks::Guard guard = imp.ctx_.locks->Lock(lock_views);
  std::map<std::string, uint64_t> marks;
  for (const std::string& r : regions) {
    ASSIGN_OR_RETURN(
        std::optional<std::string> v,
        imp.ctx_.engine->Get(
            Table::kMeta, card::SequenceAllocator::StoreKey("application", r)));
    marks[r] = v.has_value() && v->size() == 8 ? storage::GetFixed64BE(*v) : 0;
  }
  std::map<std::string, uint64_t> new_marks = marks;

  BatchResult result;
  ImportTotals t = totals_;
  size_t accepted_ops = 0, accepted_events = 0;
  // The batch's own writes (rejects, sequence marks, checkpoint, audit);
  // the groups' writes join them on the commit thread.
  storage::WriteSet tail;
  // Views of the groups' claim strings, which live as long as the batch.
  absl::flat_hash_set<std::string_view> claimed;
  claimed.reserve(prepared.size() * 4);
  for (Importer::Prepared& p : prepared) {
    if (p.outcome == Importer::Prepared::Outcome::kAccepted) {
      std::string clash;
      if (!claimed.insert(p.person_claim).second) {
        clash =
            "the person's rows appear twice in the file (rows of one "
            "person must be consecutive)";
      }
      for (const std::string& c : p.claims) {
        if (clash.empty() && claimed.contains(c)) {
          clash =
              "a card number, identification code or application id of "
              "this person is also given for another person";
        }
      }
      for (const auto& [region, max] : p.max_application) {
        if (clash.empty() && max <= marks[region]) {
          clash = absl::StrCat(
              "application id is in the range the service may already have "
              "assigned (region ",
              region, " up to ", marks[region], ")");
        }
      }
      if (!clash.empty()) {
        p.outcome = Importer::Prepared::Outcome::kRejected;
        for (uint64_t line : p.lines)
          p.rejects.push_back({line, "id_number", clash});
      } else {
        for (const std::string& c : p.claims) claimed.insert(c);
        for (const auto& [region, max] : p.max_application) {
          new_marks[region] = std::max(new_marks[region], max);
        }
      }
    }
    switch (p.outcome) {
      case Importer::Prepared::Outcome::kAccepted:
        t.accepted += p.rows;
        accepted_ops += p.ws.ops().size();
        accepted_events += p.ws.events().size();
        break;
      case Importer::Prepared::Outcome::kSkipped:
        t.skipped += p.rows;
        break;
      case Importer::Prepared::Outcome::kRejected:
        t.rejected += p.rows;
        for (RejectedRow& r : p.rejects) {
          std::string key = RejectKey(import_id_, r.line);
          ASSIGN_OR_RETURN(std::string sealed,
                           SealReject(*imp.ctx_.cipher, key, r));
          tail.Put(Table::kMeta, std::move(key), std::move(sealed));
          result.rejects.push_back(std::move(r));
        }
        break;
    }
    t.resume_after_line = std::max(t.resume_after_line, p.last_line);
  }
  for (const auto& [region, mark] : new_marks) {
    if (mark > marks[region]) {
      std::string v;
      storage::PutFixed64BE(&v, mark);
      tail.Put(Table::kMeta,
               card::SequenceAllocator::StoreKey("application", region), v);
    }
  }
  if (final && pending_.empty()) t.done = true;
  // Figures of ended days this batch changes are restated (report.proto).
  report::RestatementNotes restated(now);
  for (const Importer::Prepared& g : batch_groups->groups) {
    if (g.outcome == Importer::Prepared::Outcome::kAccepted) {
      restated.Scan(g.ws);
    }
  }
  restated.WriteTo(tail);
  tail.Put(Table::kMeta, CheckpointKey(import_id_), EncodeTotals(t));
  storage::AuditInput a;
  a.caller = caller_.identity;
  a.role = std::string(common::RoleName(caller_.role));
  a.operator_id = caller_.operator_id;
  a.rpc = kAuditMethod;
  a.target = absl::StrCat("import ", import_id_.substr(0, 16), " through line ",
                          t.resume_after_line);
  a.request_id = import_id_.substr(0, 64);
  a.code = 0;
  a.message = absl::StrCat("accepted ", t.accepted - totals_.accepted,
                           ", rejected ", t.rejected - totals_.rejected,
                           ", skipped ", t.skipped - totals_.skipped);
  tail.AppendAudit(std::move(a));
  const absl::Time merged_at = absl::Now();
  // Where a batch's time goes (validation and encryption on the worker
  // threads, waiting for the previous batch's commit, the merge, the
  // durable commit).
  common::MetricsRegistry& m = common::Metrics();
  static constexpr char kHelp[] = "Import batch phases, seconds.";
  static const std::vector<double> kBuckets = {0.01, 0.05, 0.1, 0.25, 0.5,
                                               1,    2.5,  5,   10};
  auto observe = [&m](const char* phase, absl::Duration d) {
    m.GetHistogram("ssc_import_batch_seconds", kHelp, {{"phase", phase}},
                   kBuckets)
        ->Observe(absl::ToDoubleSeconds(d));
  };
  observe("parse", parsed_at - phase_start);
  observe("prepare", waited_from - parsed_at);
  observe("wait", prepared_at - waited_from);
  observe("merge", merged_at - prepared_at);
  // Committed in the background while the next batch is prepared; the
  // application sequences stay locked until it is durable.
  InFlight f;
  result.totals = t;
  f.result = std::move(result);
  f.claims = std::move(claimed);
  f.batch = batch_groups;
  storage::Engine* engine = imp.ctx_.engine;
  const bool bulk = imp.options_.bulk_load;
  absl::Status taken_over = TakenOver();
  // The groups' writes are moved into one set on the commit thread, so
  // that this thread goes on to the next batch sooner. The order is the
  // file order, as the events' sequences must be; the tail's writes touch
  // no key of a group.
  f.done =
      std::async(std::launch::async,
                 [engine, observe, bulk, accepted_ops, accepted_events,
                  lease = lease_, taken_over = std::move(taken_over),
                  groups = std::move(batch_groups), tail = std::move(tail),
                  held = std::move(guard)]() mutable -> absl::Status {
                   storage::KeyLocks::Guard locks = std::move(held);
                   // Held while committing: a run taking over waits for
                   // this batch, and a batch after the takeover is dropped.
                   std::lock_guard<std::mutex> leased(lease->mu);
                   if (lease->revoked) return taken_over;
                   const absl::Time start = absl::Now();
                   storage::WriteSet batch;
                   batch.Reserve(accepted_ops + tail.ops().size(),
                                 accepted_events + tail.events().size());
                   for (Importer::Prepared& p : groups->groups) {
                     if (p.outcome == Importer::Prepared::Outcome::kAccepted) {
                       batch.Append(std::move(p.ws));
                     }
                   }
                   batch.Append(std::move(tail));
                   // 120,000 counter deltas a batch to some thousands of
                   // counters (days x townships x metrics of the batch's
                   // history): cheaper folded here than sorted and folded
                   // with the table files.
                   batch.CoalesceCounters();
                   batch.set_bulk_load(bulk);
                   absl::Status s = engine->Commit(std::move(batch)).status();
                   observe("commit", absl::Now() - start);
                   return s;
                 });
  in_flight_ = std::move(f);
  return absl::OkStatus();
}

absl::StatusOr<storage::ReencryptStep> ReencryptRejects(
    const common::StoreContext& ctx, std::string_view from, size_t limit) {
  storage::EncryptedRecordLayout layout;
  layout.table = Table::kMeta;
  layout.lower = KeyBuilder().Str("import.reject").Build();
  layout.upper = storage::PrefixSuccessor(layout.lower);
  layout.lock_key = [](std::string_view key, std::string_view) {
    return std::string(key);
  };
  layout.rewrite = [](std::string_view key, std::string* value,
                      storage::CipherFieldFn field) -> absl::StatusOr<bool> {
    // Records of versions that did not seal rejects are left as they are.
    if (value->empty() || (*value)[0] != '\x01') return false;
    return field(key, value);
  };
  return storage::ReencryptRange(ctx.engine, ctx.locks, *ctx.cipher, layout,
                                 from, limit);
}

}  // namespace ssc::ops
