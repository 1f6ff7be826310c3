#include "services/payout/payout_internal.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/util/time_util.h"
#include "google/protobuf/wire_format_lite.h"
#include "services/card/id_number.h"
#include "services/common/errors.h"
#include "services/payout/payout_logic.h"
#include "storage/key_codec.h"
#include "storage/status_macros.h"

namespace ssc::payout::internal {
namespace {

using storage::KeyBuilder;
using storage::Table;

std::string_view FieldName(Field f) {
  switch (f) {
    case Field::kReceived:
      return "received";
    case Field::kValid:
      return "valid";
    case Field::kRejected:
      return "rejected";
    case Field::kHeld:
      return "held";
    case Field::kSent:
      return "sent";
    case Field::kPaid:
      return "paid";
    case Field::kFailed:
      return "failed";
  }
  return "unknown";
}

}  // namespace

std::string ProgrammeKey(std::string_view code) {
  return KeyBuilder().Str("P").Str(code).Build();
}
std::string BudgetKey(std::string_view code, std::string_view period) {
  return KeyBuilder().Str("B").Str(code).Str(period).Build();
}
std::string BatchKey(std::string_view batch_id) {
  return KeyBuilder().Str("T").Str(batch_id).Build();
}
std::string ActivePrefix() { return KeyBuilder().Str("A").Build(); }
std::string ActiveKey(std::string_view batch_id) {
  return KeyBuilder().Str("A").Str(batch_id).Build();
}
std::string EntitlementPrefix(std::string_view code, std::string_view period) {
  return KeyBuilder().Str("E").Str(code).Str(period).Build();
}
std::string EntitlementKey(std::string_view code, std::string_view period,
                           std::string_view person_key) {
  return KeyBuilder().Str("E").Str(code).Str(period).Raw(person_key).Build();
}
std::string ItemPrefix(std::string_view batch_id) {
  return KeyBuilder().Str(batch_id).U32(0).Build();
}
std::string ItemKey(std::string_view batch_id, std::string_view item_id) {
  return KeyBuilder().Str(batch_id).U32(0).Str(item_id).Build();
}
std::string ResultKey(std::string_view batch_id, std::string_view item_id) {
  return KeyBuilder().Str(batch_id).U32(1).Str(item_id).Build();
}
std::string BatchPersonKey(std::string_view batch_id,
                           std::string_view person_key) {
  return KeyBuilder().Str("I").Str(batch_id).Raw(person_key).Build();
}
std::string InFlightPrefix(std::string_view batch_id) {
  return KeyBuilder().Str("F").Str(batch_id).Build();
}
std::string InFlightKey(std::string_view batch_id, std::string_view first_key) {
  return KeyBuilder().Str("F").Str(batch_id).Raw(first_key).Build();
}
std::string BatchLock(std::string_view batch_id) {
  return absl::StrCat("payout/batch/", AV(batch_id));
}
std::string BudgetLock(std::string_view code, std::string_view period) {
  return absl::StrCat("payout/budget/", AV(code), "/", AV(period));
}

std::string CountKey(std::string_view batch_id, Field f) {
  return absl::StrCat("payout/batch/", AV(batch_id), "/", AV(FieldName(f)),
                      "_n");
}
std::string AmountKey(std::string_view batch_id, Field f) {
  return absl::StrCat("payout/batch/", AV(batch_id), "/", AV(FieldName(f)),
                      "_fen");
}
std::string CommittedKey(std::string_view code, std::string_view period) {
  return absl::StrCat("payout/budget/", AV(code), "/", AV(period),
                      "/committed");
}
std::string PaidKey(std::string_view code, std::string_view period) {
  return absl::StrCat("payout/budget/", AV(code), "/", AV(period), "/paid");
}

void AddTotals(storage::WriteSet& ws, std::string_view batch_id, Field f,
               int64_t count, int64_t amount) {
  if (count != 0) ws.AddCounter(Table::kCounters, CountKey(batch_id, f), count);
  if (amount != 0) {
    ws.AddCounter(Table::kCounters, AmountKey(batch_id, f), amount);
  }
}

absl::StatusOr<ssc::v1::BatchTotals> ReadTotals(storage::Engine* engine,
                                                std::string_view batch_id) {
  ssc::v1::BatchTotals t;
  auto get = [&](Field f, int64_t* n, int64_t* amount) -> absl::Status {
    ASSIGN_OR_RETURN(
        *n, engine->GetCounter(Table::kCounters, CountKey(batch_id, f)));
    ASSIGN_OR_RETURN(
        *amount, engine->GetCounter(Table::kCounters, AmountKey(batch_id, f)));
    return absl::OkStatus();
  };
  int64_t n = 0, a = 0;
  RETURN_IF_ERROR(get(Field::kReceived, &n, &a));
  t.set_received_count(n);
  t.set_received_amount_fen(a);
  RETURN_IF_ERROR(get(Field::kValid, &n, &a));
  t.set_valid_count(n);
  t.set_valid_amount_fen(a);
  RETURN_IF_ERROR(get(Field::kRejected, &n, &a));
  t.set_rejected_count(n);
  t.set_rejected_amount_fen(a);
  RETURN_IF_ERROR(get(Field::kHeld, &n, &a));
  t.set_held_count(n);
  t.set_held_amount_fen(a);
  RETURN_IF_ERROR(get(Field::kSent, &n, &a));
  t.set_sent_count(n);
  t.set_sent_amount_fen(a);
  RETURN_IF_ERROR(get(Field::kPaid, &n, &a));
  t.set_paid_count(n);
  t.set_paid_amount_fen(a);
  RETURN_IF_ERROR(get(Field::kFailed, &n, &a));
  t.set_failed_count(n);
  t.set_failed_amount_fen(a);
  t.set_remaining_count(t.valid_count() - t.paid_count() - t.failed_count());
  t.set_remaining_amount_fen(t.valid_amount_fen() - t.paid_amount_fen() -
                             t.failed_amount_fen());
  return t;
}

absl::StatusOr<std::optional<ssc::v1::Batch>> LoadBatch(
    storage::Engine* engine, std::string_view batch_id) {
  ASSIGN_OR_RETURN(auto bytes,
                   engine->Get(Table::kPayouts, BatchKey(batch_id)));
  if (!bytes.has_value()) return std::optional<ssc::v1::Batch>();
  ssc::v1::Batch b;
  if (!b.ParseFromString(*bytes)) {
    return absl::DataLossError(
        absl::StrCat("batch record ", AV(batch_id), " is corrupt"));
  }
  return std::optional<ssc::v1::Batch>(std::move(b));
}

absl::StatusOr<std::vector<std::string>> BudgetLocksOf(
    storage::Engine* engine, std::string_view batch_id) {
  ASSIGN_OR_RETURN(std::optional<ssc::v1::Batch> b,
                   LoadBatch(engine, batch_id));
  std::vector<std::string> locks;
  if (b.has_value())
    locks.push_back(BudgetLock(b->programme_code(), b->period()));
  return locks;
}

absl::StatusOr<ssc::payout::store::ItemRecord> ParseItem(
    std::string_view bytes) {
  ssc::payout::store::ItemRecord r;
  if (!r.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError("payout item record is corrupt");
  }
  return r;
}

void ApplyResult(std::string_view batch_id,
                 const ssc::payout::store::ItemResult& result,
                 ssc::payout::store::ItemRecord* rec) {
  rec->set_status(result.status());
  rec->set_reason(result.reason());
  rec->set_reason_detail(result.reason_detail());
  rec->set_bank_reference(result.bank_reference());
  rec->set_paid_micros(result.paid_micros());
  if (!result.instruction_id().empty()) {
    rec->set_instruction_id(result.instruction_id());
  } else if (result.status() == ssc::v1::ITEM_STATUS_PAID ||
             result.status() == ssc::v1::ITEM_STATUS_FAILED) {
    rec->set_instruction_id(PayoutLogic::InstructionId(batch_id, rec->seq()));
  } else {
    rec->clear_instruction_id();
  }
}

namespace {

absl::Status ApplyResultBytes(std::string_view batch_id, std::string_view bytes,
                              ssc::payout::store::ItemRecord* rec) {
  ssc::payout::store::ItemResult r;
  if (!r.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError(absl::StrCat("the outcome of item ",
                                            AV(batch_id), "/", rec->item_id(),
                                            " is corrupt"));
  }
  ApplyResult(batch_id, r, rec);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::optional<ssc::payout::store::ItemRecord>> LoadItem(
    storage::Engine* engine, std::string_view batch_id,
    std::string_view item_id) {
  ASSIGN_OR_RETURN(
      std::optional<std::string> bytes,
      engine->Get(Table::kPayoutItems, ItemKey(batch_id, item_id)));
  if (!bytes.has_value()) return std::nullopt;
  ASSIGN_OR_RETURN(ssc::payout::store::ItemRecord rec, ParseItem(*bytes));
  ASSIGN_OR_RETURN(
      std::optional<std::string> result,
      engine->Get(Table::kPayoutItems, ResultKey(batch_id, item_id)));
  if (result.has_value()) {
    RETURN_IF_ERROR(ApplyResultBytes(batch_id, *result, &rec));
  }
  return std::optional<ssc::payout::store::ItemRecord>(std::move(rec));
}

absl::Status ParseItemView(std::string_view bytes, ItemView* out) {
  using google::protobuf::internal::WireFormatLite;
  using ssc::payout::store::ItemRecord;
  *out = ItemView();
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(bytes.data()),
      static_cast<int>(bytes.size()));
  const auto corrupt = [] {
    return absl::DataLossError("payout item record is corrupt");
  };
  while (true) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) break;
    const int field = static_cast<int>(WireFormatLite::GetTagFieldNumber(tag));
    const auto type = WireFormatLite::GetTagWireType(tag);
    if (type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      uint32_t size = 0;
      const void* data = nullptr;
      int available = 0;
      if (!in.ReadVarint32(&size)) return corrupt();
      in.GetDirectBufferPointerInline(&data, &available);
      if (available < 0 || size > static_cast<uint32_t>(available) ||
          !in.Skip(static_cast<int>(size))) {
        return corrupt();
      }
      const std::string_view v(static_cast<const char*>(data), size);
      switch (field) {
        case ItemRecord::kItemIdFieldNumber:
          out->item_id = v;
          break;
        case ItemRecord::kNameFieldNumber:
          out->name = v;
          break;
        case ItemRecord::kPersonKeyFieldNumber:
          out->person_key = v;
          break;
        case ItemRecord::kBankCodeFieldNumber:
          out->bank_code = v;
          break;
        case ItemRecord::kBankAccountFieldNumber:
          out->bank_account = v;
          break;
        case ItemRecord::kRegionCodeFieldNumber:
          out->region_code = v;
          break;
        default:
          break;
      }
      continue;
    }
    if (type == WireFormatLite::WIRETYPE_VARINT) {
      uint64_t v = 0;
      if (!in.ReadVarint64(&v)) return corrupt();
      switch (field) {
        case ItemRecord::kAmountFenFieldNumber:
          out->amount_fen = static_cast<int64_t>(v);
          break;
        case ItemRecord::kSeqFieldNumber:
          out->seq = v;
          break;
        case ItemRecord::kStatusFieldNumber:
          out->status = static_cast<ssc::v1::ItemStatus>(static_cast<int>(v));
          break;
        default:
          break;
      }
      continue;
    }
    if (!WireFormatLite::SkipField(&in, tag)) return corrupt();
  }
  if (!in.ConsumedEntireMessage()) return corrupt();
  return absl::OkStatus();
}

absl::Status ScanItemBytes(storage::Engine* engine, std::string_view batch_id,
                           std::string_view lower, const ItemBytesFn& fn) {
  constexpr size_t kPage = 512;
  const std::string item_prefix = ItemPrefix(batch_id);
  const std::string result_prefix = KeyBuilder().Str(batch_id).U32(1).Build();
  const std::string upper = storage::PrefixSuccessor(item_prefix);
  std::string from(lower);
  // A page's keys and values, one buffer reused from page to page.
  struct Entry {
    size_t key, key_size, item, item_size, result = 0, result_size = 0;
  };
  std::string buf;
  std::vector<Entry> page;
  page.reserve(kPage);
  while (true) {
    page.clear();
    buf.clear();
    RETURN_IF_ERROR(
        engine->Scan(Table::kPayoutItems, from, upper,
                     [&](std::string_view key, std::string_view value) {
                       Entry e{buf.size(), key.size(), buf.size() + key.size(),
                               value.size()};
                       buf.append(key.data(), key.size());
                       buf.append(value.data(), value.size());
                       page.push_back(e);
                       return page.size() < kPage;
                     }));
    if (page.empty()) return absl::OkStatus();
    // The outcomes of this page's items: same suffix after the prefix.
    const auto suffix = [&](const Entry& e) {
      return std::string_view(buf).substr(e.key + item_prefix.size(),
                                          e.key_size - item_prefix.size());
    };
    const std::string first_result =
        absl::StrCat(result_prefix, AV(suffix(page.front())));
    const std::string last_result = storage::PrefixSuccessor(
        absl::StrCat(result_prefix, AV(suffix(page.back()))));
    size_t next = 0;
    RETURN_IF_ERROR(engine->Scan(
        Table::kPayoutItems, first_result, last_result,
        [&](std::string_view key, std::string_view value) {
          const std::string_view s = key.substr(result_prefix.size());
          while (next < page.size() && suffix(page[next]) < s) ++next;
          if (next == page.size()) return false;
          if (suffix(page[next]) == s) {
            page[next].result = buf.size();
            page[next].result_size = value.size();
            buf.append(value.data(), value.size());
          }
          return true;
        }));
    const std::string_view all(buf);
    for (const Entry& e : page) {
      if (!fn(all.substr(e.key, e.key_size), all.substr(e.item, e.item_size),
              all.substr(e.result, e.result_size))) {
        return absl::OkStatus();
      }
    }
    if (page.size() < kPage) return absl::OkStatus();
    from = std::string(all.substr(page.back().key, page.back().key_size));
    from.push_back('\0');
  }
}

absl::Status ScanItems(storage::Engine* engine, std::string_view batch_id,
                       std::string_view lower, const ItemFn& fn,
                       google::protobuf::Arena* arena) {
  std::optional<google::protobuf::Arena> own;
  if (arena == nullptr) own.emplace();
  size_t visited = 0;
  absl::Status bad;
  RETURN_IF_ERROR(ScanItemBytes(
      engine, batch_id, lower,
      [&](std::string_view key, std::string_view item,
          std::string_view result) {
        // Without a caller's arena, records go with the page they came in.
        if (own.has_value() && ++visited % 512 == 0) own->Reset();
        google::protobuf::Arena* a = arena != nullptr ? arena : &*own;
        auto* rec = google::protobuf::Arena::CreateMessage<
            ssc::payout::store::ItemRecord>(a);
        if (!rec->ParseFromArray(item.data(), static_cast<int>(item.size()))) {
          bad = absl::DataLossError("payout item record is corrupt");
          return false;
        }
        if (!result.empty()) {
          bad = ApplyResultBytes(batch_id, result, rec);
          if (!bad.ok()) return false;
        }
        return fn(key, *rec);
      }));
  return bad;
}

absl::StatusOr<InFlightRanges> InFlightRanges::Load(storage::Engine* engine,
                                                    std::string_view batch_id) {
  InFlightRanges out;
  const std::string prefix = InFlightPrefix(batch_id);
  absl::Status bad;
  RETURN_IF_ERROR(engine->Scan(
      Table::kPayouts, prefix, storage::PrefixSuccessor(prefix),
      [&](std::string_view key, std::string_view value) {
        ssc::payout::store::InFlightChunk c;
        if (!c.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          bad = absl::DataLossError(absl::StrCat("in-flight chunk of batch ",
                                                 AV(batch_id), " is corrupt"));
          return false;
        }
        out.ranges_.emplace_back(c.first_key(), c.last_key());
        out.markers_.emplace_back(key);
        return true;
      }));
  RETURN_IF_ERROR(bad);
  return out;
}

bool InFlightRanges::Contains(std::string_view item_key) const {
  // Ranges are sorted by first key (the marker key ends with it) and
  // disjoint, except after a restart (a re-prepared chunk may cover an old
  // one): a linear pass over a handful of ranges.
  for (const auto& [first, last] : ranges_) {
    if (item_key >= first && item_key <= last) return true;
  }
  return false;
}

void PresentInFlight(const InFlightRanges& in_flight, std::string_view key,
                     std::string_view instruction_prefix,
                     ssc::payout::store::ItemRecord* rec) {
  if (rec->status() != ssc::v1::ITEM_STATUS_VALID || in_flight.empty() ||
      !in_flight.Contains(key)) {
    return;
  }
  rec->set_status(ssc::v1::ITEM_STATUS_SENT);
  rec->set_instruction_id(
      PayoutLogic::InstructionId(instruction_prefix, rec->seq()));
}

std::string EntitlementReference(std::string_view code, std::string_view period,
                                 std::string_view person_key) {
  return absl::StrCat(AV(code), "/", AV(period), "/",
                      absl::BytesToHexString(AV(person_key)));
}

google::protobuf::Timestamp ToProto(absl::Time t) {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
      absl::ToUnixNanos(t));
}
absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

std::string_view BatchStateName(ssc::v1::BatchState s) {
  switch (s) {
    case ssc::v1::BATCH_STATE_DRAFT:
      return "DRAFT";
    case ssc::v1::BATCH_STATE_SEALED:
      return "SEALED";
    case ssc::v1::BATCH_STATE_PENDING_APPROVAL:
      return "PENDING_APPROVAL";
    case ssc::v1::BATCH_STATE_APPROVED:
      return "APPROVED";
    case ssc::v1::BATCH_STATE_REJECTED:
      return "REJECTED";
    case ssc::v1::BATCH_STATE_EXECUTING:
      return "EXECUTING";
    case ssc::v1::BATCH_STATE_PAUSED:
      return "PAUSED";
    case ssc::v1::BATCH_STATE_COMPLETED:
      return "COMPLETED";
    case ssc::v1::BATCH_STATE_CANCELLED:
      return "CANCELLED";
    case ssc::v1::BATCH_STATE_RECONCILED:
      return "RECONCILED";
    default:
      return "UNSPECIFIED";
  }
}

bool IsDone(ssc::v1::BatchState s) {
  return s == ssc::v1::BATCH_STATE_COMPLETED ||
         s == ssc::v1::BATCH_STATE_RECONCILED ||
         s == ssc::v1::BATCH_STATE_REJECTED ||
         s == ssc::v1::BATCH_STATE_CANCELLED;
}

absl::Status ValidatePeriod(std::string_view field, std::string_view p) {
  auto digits = [](std::string_view s) {
    if (s.empty()) return false;
    for (char c : s) {
      if (c < '0' || c > '9') return false;
    }
    return true;
  };
  const std::string kForm =
      "must be a month \"YYYY-MM\", a quarter \"YYYYQn\" or a year \"YYYY\"";
  if (p.size() < 4 || !digits(p.substr(0, 4))) {
    return common::InvalidField(field, kForm);
  }
  const int year = std::stoi(std::string(p.substr(0, 4)));
  if (year < 2000 || year > 2199) {
    return common::InvalidField(field, "year must be within 2000..2199");
  }
  if (p.size() == 4) return absl::OkStatus();
  if (p.size() == 7 && p[4] == '-' && digits(p.substr(5, 2))) {
    const int month = std::stoi(std::string(p.substr(5, 2)));
    if (month >= 1 && month <= 12) return absl::OkStatus();
    return common::InvalidField(field, "month must be within 01..12");
  }
  if (p.size() == 6 && p[4] == 'Q' && p[5] >= '1' && p[5] <= '4') {
    return absl::OkStatus();
  }
  return common::InvalidField(field, kForm);
}

absl::Status ValidateCode(std::string_view field, std::string_view code) {
  if (code.size() < 2 || code.size() > 32) {
    return common::InvalidField(field, "must have 2..32 characters");
  }
  for (char c : code) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                    (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) {
      return common::InvalidField(field,
                                  "may contain only letters, digits, '-', '_'");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateBatchId(std::string_view field, std::string_view id) {
  if (id.size() != 10 || id.substr(0, 2) != "PB") {
    return common::InvalidField(field, "must be \"PB\" followed by 8 digits");
  }
  for (char c : id.substr(2)) {
    if (c < '0' || c > '9') {
      return common::InvalidField(field, "must be \"PB\" followed by 8 digits");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateRequestId(std::string_view id) {
  if (id.empty())
    return common::InvalidField("request_id", "must not be empty");
  if (id.size() > 64) {
    return common::InvalidField("request_id", "must be at most 64 characters");
  }
  for (char c : id) {
    if (c < 0x20 || c > 0x7e) {
      return common::InvalidField("request_id",
                                  "must consist of printable ASCII characters");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateText(std::string_view field, std::string_view text,
                          size_t max_bytes, bool allow_empty) {
  if (text.empty() && !allow_empty) {
    return common::InvalidField(field, "must not be empty");
  }
  if (text.size() > max_bytes) {
    return common::InvalidField(
        field, absl::StrCat("must be at most ", max_bytes, " bytes"));
  }
  if (!card::IsValidUtf8(text)) {
    return common::InvalidField(field, "must be valid UTF-8");
  }
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) {
      return common::InvalidField(field, "must not contain control characters");
    }
  }
  return absl::OkStatus();
}

storage::EventInput MakeEvent(std::string type, std::string entity_type,
                              std::string entity_id, std::string payload) {
  storage::EventInput e;
  e.type = std::move(type);
  e.entity_type = std::move(entity_type);
  e.entity_id = std::move(entity_id);
  e.payload = std::move(payload);
  return e;
}

std::string ItemAad(std::string_view batch_id, std::string_view item_id,
                    std::string_view field) {
  return ItemKeyAad(ItemKey(batch_id, item_id), field);
}
absl::StatusOr<std::string> ItemNote(const storage::PiiCipher& cipher,
                                     std::string_view item_key,
                                     const ssc::payout::store::ItemRecord& r) {
  if (r.sealed_note().empty()) return r.note();  // none, or an old record
  return cipher.Decrypt(r.sealed_note(), ItemKeyAad(item_key, "note"));
}

std::string ItemKeyAad(std::string_view item_key, std::string_view field) {
  return absl::StrCat(AV(item_key), "/", AV(field));
}

absl::StatusOr<ssc::v1::PayoutItem> ToPublicItem(
    const storage::PiiCipher& cipher, std::string_view batch_id,
    const ssc::payout::store::ItemRecord& r) {
  ssc::v1::PayoutItem out;
  out.set_item_id(r.item_id());
  ASSIGN_OR_RETURN(std::string id_number,
                   cipher.Decrypt(r.id_number(),
                                  ItemAad(batch_id, r.item_id(), "id_number")));
  ASSIGN_OR_RETURN(
      std::string name,
      cipher.Decrypt(r.name(), ItemAad(batch_id, r.item_id(), "name")));
  out.set_id_number(storage::MaskIdNumber(id_number));
  out.set_name(storage::MaskName(name));
  out.set_amount_fen(r.amount_fen());
  ASSIGN_OR_RETURN(*out.mutable_note(),
                   ItemNote(cipher, ItemKey(batch_id, r.item_id()), r));
  out.set_status(r.status());
  out.set_reason(r.reason());
  out.set_reason_detail(r.reason_detail());
  out.set_instruction_id(r.instruction_id());
  out.set_bank_reference(r.bank_reference());
  if (r.paid_micros() != 0) {
    *out.mutable_paid_at() = ToProto(absl::FromUnixMicros(r.paid_micros()));
  }
  return out;
}

}  // namespace ssc::payout::internal

namespace ssc::payout {

absl::StatusOr<storage::ReencryptStep> ReencryptItems(
    const common::StoreContext& ctx, std::string_view from, size_t limit) {
  // The batch of an item record's key; nullopt for other records (the
  // items' outcomes, ItemResult, hold nothing encrypted).
  auto batch_of = [](std::string_view key) -> std::optional<std::string> {
    storage::KeyReader r(key);
    std::optional<std::string> batch = r.Str();
    std::optional<uint32_t> part = r.U32();
    if (!batch.has_value() || part != 0u) return std::nullopt;
    return batch;
  };
  storage::EncryptedRecordLayout layout;
  layout.table = storage::Table::kPayoutItems;
  layout.lock_key = [batch_of](std::string_view key, std::string_view) {
    std::optional<std::string> batch = batch_of(key);
    return batch.has_value() ? internal::BatchLock(*batch) : std::string();
  };
  layout.rewrite = [](std::string_view key, std::string* value,
                      storage::CipherFieldFn field) -> absl::StatusOr<bool> {
    ASSIGN_OR_RETURN(store::ItemRecord rec, internal::ParseItem(*value));
    bool changed = false;
    const std::pair<const char*, std::string*> fields[] = {
        {"id_number", rec.mutable_id_number()},
        {"name", rec.mutable_name()},
        {"bank_account", rec.mutable_bank_account()},
        {"note", rec.mutable_sealed_note()}};
    for (const auto& [name, ct] : fields) {
      if (ct->empty()) continue;
      ASSIGN_OR_RETURN(bool c, field(internal::ItemKeyAad(key, name), ct));
      changed = changed || c;
    }
    if (changed) *value = rec.SerializeAsString();
    return changed;
  };
  return storage::ReencryptRange(ctx.engine, ctx.locks, *ctx.cipher, layout,
                                 from, limit);
}

}  // namespace ssc::payout
