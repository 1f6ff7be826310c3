#include "services/payout/payout_logic.h"

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "services/common/errors.h"
#include "services/payout/payout_impl.h"
#include "services/payout/restore_fence.h"
#include "storage/incarnation.h"
#include "storage/key_codec.h"
#include "storage/status_macros.h"

namespace ssc::payout {
namespace {

using common::Caller;
using common::InvalidField;
using common::Role;
using common::WrongState;
using storage::Table;
using store::ItemRecord;
namespace in = internal;
using internal::AV;

constexpr size_t kMaxItemIdBytes = 64;
constexpr size_t kMaxNameBytes = 90;
constexpr size_t kMaxNoteBytes = 200;
constexpr size_t kMaxIdNumberBytes = 32;

absl::Status RequireRole(const Caller& caller, Role role,
                         std::string_view what) {
  if (caller.role != role) {
    return absl::PermissionDeniedError(
        absl::StrCat(AV(what), " requires role ", AV(common::RoleName(role)),
                     ", caller has role ", AV(common::RoleName(caller.role))));
  }
  return absl::OkStatus();
}

// Maker and checker are told apart by certificate and by operator: a person
// holding both a maker and a checker certificate must not review their own
// batch. The steps that separate them (submit, approve, reject) therefore
// need the operator id (metadata x-ssc-operator); without it nothing is done.
absl::Status RequireOperator(const Caller& caller, std::string_view what) {
  if (caller.operator_id.empty()) {
    return InvalidField(
        "x-ssc-operator",
        absl::StrCat(AV(what),
                     " needs the operator id in metadata "
                     "x-ssc-operator (maker and checker must be "
                     "different operators)"));
  }
  return absl::OkStatus();
}

// A checker reviewing `b`: neither the certificate nor the operator that
// submitted it. A batch submitted before operators were recorded has no
// maker operator; only its certificate is compared.
absl::Status RequireOtherThanMaker(const Caller& caller,
                                   const ssc::v1::Batch& b,
                                   std::string_view what) {
  if (caller.identity == b.maker()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "review is separated from preparation: the maker of a batch cannot ",
        AV(what), " it"));
  }
  if (!b.maker_operator().empty() && caller.operator_id == b.maker_operator()) {
    return absl::PermissionDeniedError(
        absl::StrCat("review is separated from preparation: operator ",
                     AV(caller.operator_id), " submitted the batch and cannot ",
                     AV(what), " it"));
  }
  return absl::OkStatus();
}

absl::Status BatchInState(const ssc::v1::Batch& b,
                          std::initializer_list<ssc::v1::BatchState> allowed,
                          std::string_view what) {
  for (ssc::v1::BatchState s : allowed) {
    if (b.state() == s) return absl::OkStatus();
  }
  return WrongState(absl::StrCat("batch ", b.batch_id()),
                    in::BatchStateName(b.state()),
                    absl::StrCat(AV(what), " is not allowed in this state"));
}

absl::StatusOr<ssc::v1::Budget> ReadBudget(storage::Engine* engine,
                                           std::string_view code,
                                           std::string_view period) {
  ASSIGN_OR_RETURN(auto bytes,
                   engine->Get(Table::kPayouts, in::BudgetKey(code, period)));
  if (!bytes.has_value()) {
    return common::NotFound(
        absl::StrCat("budget of ", AV(code), " for ", AV(period)));
  }
  store::BudgetRecord rec;
  if (!rec.ParseFromString(*bytes))
    return absl::DataLossError("budget record is corrupt");
  ASSIGN_OR_RETURN(
      int64_t committed,
      engine->GetCounter(Table::kCounters, in::CommittedKey(code, period)));
  ASSIGN_OR_RETURN(int64_t paid, engine->GetCounter(Table::kCounters,
                                                    in::PaidKey(code, period)));
  ssc::v1::Budget b;
  b.set_programme_code(std::string(code));
  b.set_period(std::string(period));
  b.set_amount_fen(rec.amount_fen());
  b.set_reserved_fen(committed - paid);
  b.set_paid_fen(paid);
  b.set_available_fen(rec.amount_fen() - committed);
  return b;
}

}  // namespace

// ---------------------------------------------------------------------------
// Impl helpers

absl::StatusOr<ssc::v1::Batch> PayoutLogic::Impl::MustLoadBatch(
    PayoutLogic& self, std::string_view batch_id) {
  RETURN_IF_ERROR(in::ValidateBatchId("batch_id", batch_id));
  ASSIGN_OR_RETURN(auto b, in::LoadBatch(self.ctx_.engine, batch_id));
  if (!b.has_value())
    return common::NotFound(absl::StrCat("batch ", AV(batch_id)));
  return *std::move(b);
}

absl::StatusOr<ssc::v1::Batch> PayoutLogic::Impl::LoadDraftBatch(
    PayoutLogic& self, std::string_view batch_id) {
  ASSIGN_OR_RETURN(ssc::v1::Batch b, MustLoadBatch(self, batch_id));
  RETURN_IF_ERROR(
      BatchInState(b, {ssc::v1::BATCH_STATE_DRAFT}, "uploading items"));
  return b;
}

absl::StatusOr<ssc::v1::Programme> PayoutLogic::Impl::MustLoadProgramme(
    PayoutLogic& self, std::string_view code) {
  ASSIGN_OR_RETURN(auto bytes, self.ctx_.engine->Get(Table::kPayouts,
                                                     in::ProgrammeKey(code)));
  if (!bytes.has_value())
    return common::NotFound(absl::StrCat("programme ", AV(code)));
  ssc::v1::Programme p;
  if (!p.ParseFromString(*bytes))
    return absl::DataLossError("programme record is corrupt");
  return p;
}

absl::Status PayoutLogic::Impl::FillTotals(PayoutLogic& self,
                                           ssc::v1::Batch* b) {
  ASSIGN_OR_RETURN(*b->mutable_totals(),
                   in::ReadTotals(self.ctx_.engine, b->batch_id()));
  return absl::OkStatus();
}

bool PayoutLogic::Impl::SameContent(const ssc::v1::PayoutItemInput& a,
                                    const ssc::v1::PayoutItemInput& b) {
  return a.item_id() == b.item_id() && a.id_number() == b.id_number() &&
         a.name() == b.name() && a.note() == b.note() &&
         a.amount_fen() == b.amount_fen();
}

absl::Status PayoutLogic::Impl::CheckItemInput(
    std::string_view prefix, const ssc::v1::PayoutItemInput& item) {
  const std::string id_field = absl::StrCat(AV(prefix), ".item_id");
  if (item.item_id().empty() || item.item_id().size() > kMaxItemIdBytes) {
    return InvalidField(id_field, "must have 1..64 characters");
  }
  for (char c : item.item_id()) {
    if (c < 0x21 || c > 0x7e) {
      return InvalidField(id_field,
                          "must consist of printable ASCII characters");
    }
  }
  const std::string num_field = absl::StrCat(AV(prefix), ".id_number");
  if (item.id_number().empty() || item.id_number().size() > kMaxIdNumberBytes) {
    return InvalidField(num_field, "must have 1..32 characters");
  }
  for (char c : item.id_number()) {
    if (c < 0x21 || c > 0x7e) {
      return InvalidField(num_field,
                          "must consist of printable ASCII characters");
    }
  }
  RETURN_IF_ERROR(in::ValidateText(absl::StrCat(AV(prefix), ".name"),
                                   item.name(), kMaxNameBytes, false));
  RETURN_IF_ERROR(in::ValidateText(absl::StrCat(AV(prefix), ".note"),
                                   item.note(), kMaxNoteBytes, true));
  return absl::OkStatus();
}

absl::StatusOr<std::string> PayoutLogic::Impl::NextBatchId(
    PayoutLogic& self, storage::WriteSet& ws) {
  ASSIGN_OR_RETURN(int64_t seq, self.ctx_.engine->GetCounter(
                                    Table::kCounters, in::kBatchSeqCounter));
  if (seq >= 99999999)
    return absl::ResourceExhaustedError("batch ids exhausted");
  ws.AddCounter(Table::kCounters, in::kBatchSeqCounter, 1);
  return absl::StrFormat("PB%08d", seq + 1);
}

void PayoutLogic::Impl::PrefetchRange(
    PayoutLogic& self, const ssc::v1::Programme& programme,
    const ssc::v1::Batch& batch,
    const std::vector<const ssc::v1::PayoutItemInput*>& items, size_t begin,
    size_t end, std::vector<Lookup>* out) {
  const storage::PiiCipher& cipher = *self.ctx_.cipher;
  const std::string& batch_id = batch.batch_id();
  // A storage failure fails every item of the range.
  auto fail_all = [&](const absl::Status& s) {
    for (size_t i = begin; i < end; ++i) (*out)[i].error = s;
  };
  // 1. Encryption of the uploaded fields; the holder register and the
  // current cards, in one batched read each.
  std::vector<std::string_view> ids;
  ids.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) {
    const ssc::v1::PayoutItemInput& item = *items[i];
    Lookup& l = (*out)[i];
    l.item_key = in::ItemKey(batch_id, item.item_id());
    absl::StatusOr<std::string> enc = cipher.Encrypt(
        item.id_number(), in::ItemKeyAad(l.item_key, "id_number"));
    if (!enc.ok()) return fail_all(enc.status());
    l.enc_id_number = *std::move(enc);
    enc = cipher.Encrypt(item.name(), in::ItemKeyAad(l.item_key, "name"));
    if (!enc.ok()) return fail_all(enc.status());
    l.enc_name = *std::move(enc);
    if (!item.note().empty()) {
      enc = cipher.Encrypt(item.note(), in::ItemKeyAad(l.item_key, "note"));
      if (!enc.ok()) return fail_all(enc.status());
      l.enc_note = *std::move(enc);
    }
    ids.push_back(item.id_number());
  }
  absl::StatusOr<std::vector<absl::StatusOr<std::optional<card::PayeeView>>>>
      payees = self.cards_->FindPayeesByIdNumber(ids);
  if (!payees.ok()) return fail_all(payees.status());
  // 2. The bank accounts encrypted for the item; the entitlements of the
  // period, in one batched read.
  std::vector<size_t> found;  // indexes into items
  std::vector<std::string> ent_keys;
  for (size_t i = begin; i < end; ++i) {
    absl::StatusOr<std::optional<card::PayeeView>>& payee =
        (*payees)[i - begin];
    Lookup& l = (*out)[i];
    if (!payee.ok()) {
      if (payee.status().code() != absl::StatusCode::kInvalidArgument) {
        return fail_all(payee.status());
      }
      l.invalid_id = std::string(payee.status().message());
      continue;
    }
    if (!payee->has_value()) continue;
    l.payee = std::move(**payee);
    l.person_index = in::BatchPersonKey(batch_id, l.payee->person_key);
    if (l.payee->has_card && !l.payee->bank_account.empty()) {
      absl::StatusOr<std::string> enc = cipher.Encrypt(
          l.payee->bank_account, in::ItemKeyAad(l.item_key, "bank_account"));
      if (!enc.ok()) return fail_all(enc.status());
      l.enc_account = *std::move(enc);
    }
    found.push_back(i);
    ent_keys.push_back(in::EntitlementKey(programme.code(), batch.period(),
                                          l.payee->person_key));
  }
  // The first batch of a period finds no entitlement at all: one seek
  // tells, instead of a read per item. (Advisory either way: a claim made
  // after this read is found when execution claims the entitlement.)
  bool period_has_entitlements = false;
  if (!ent_keys.empty()) {
    const std::string prefix =
        in::EntitlementPrefix(programme.code(), batch.period());
    absl::Status seek = self.ctx_.engine->Scan(
        Table::kPayouts, prefix, storage::PrefixSuccessor(prefix),
        [&](std::string_view, std::string_view) {
          period_has_entitlements = true;
          return false;
        });
    if (!seek.ok()) return fail_all(seek);
  }
  if (!period_has_entitlements) return;
  std::vector<std::string_view> keys(ent_keys.begin(), ent_keys.end());
  absl::StatusOr<std::vector<std::optional<std::string>>> ents =
      self.ctx_.engine->MultiGet(Table::kPayouts, keys);
  if (!ents.ok()) return fail_all(ents.status());
  for (size_t j = 0; j < found.size(); ++j) {
    if (!(*ents)[j].has_value()) continue;
    Lookup& l = (*out)[found[j]];
    store::EntitlementRecord e;
    if (!e.ParseFromString(*(*ents)[j])) {
      return fail_all(absl::DataLossError("entitlement record is corrupt"));
    }
    absl::StatusOr<bool> paid = EntitlementPaid(self, e);
    if (!paid.ok()) return fail_all(paid.status());
    l.entitlement_paid = *paid;
    l.entitlement = std::move(e);
  }
}

void PayoutLogic::Impl::ParallelRanges(
    size_t n, int threads, size_t min_range,
    const std::function<void(size_t, size_t)>& fn) {
  const size_t t = std::min<size_t>(std::max(1, threads),
                                    std::max<size_t>(1, n / min_range));
  if (t <= 1) {
    if (n > 0) fn(0, n);
    return;
  }
  const size_t per = (n + t - 1) / t;
  std::vector<std::thread> pool;
  for (size_t k = 1; k < t; ++k) {
    const size_t b = k * per, e = std::min(n, b + per);
    if (b < e) pool.emplace_back([&fn, b, e] { fn(b, e); });
  }
  fn(0, std::min(n, per));
  for (std::thread& th : pool) th.join();
}

std::vector<PayoutLogic::Impl::Lookup> PayoutLogic::Impl::PrefetchAll(
    PayoutLogic& self, const ssc::v1::Programme& programme,
    const ssc::v1::Batch& batch,
    const std::vector<const ssc::v1::PayoutItemInput*>& items) {
  std::vector<Lookup> out(items.size());
  ParallelRanges(items.size(), self.options_.validation_threads,
                 kMinParallelRange, [&](size_t b, size_t e) {
                   PrefetchRange(self, programme, batch, items, b, e, &out);
                 });
  return out;
}

void PayoutLogic::Impl::ReadUploadState(
    PayoutLogic& self,
    const std::vector<const ssc::v1::PayoutItemInput*>& items,
    std::vector<Lookup>* lookups) {
  ParallelRanges(
      lookups->size(), self.options_.validation_threads, kMinParallelRange,
      [&](size_t begin, size_t end) {
        auto fail_all = [&](const absl::Status& s) {
          for (size_t i = begin; i < end; ++i) (*lookups)[i].error = s;
        };
        // The stored items with these ids and the persons' items in the
        // batch: one batched read each.
        std::vector<size_t> asked, with_payee;
        std::vector<std::string_view> keys, person_keys;
        keys.reserve(end - begin);
        person_keys.reserve(end - begin);
        for (size_t i = begin; i < end; ++i) {
          Lookup& l = (*lookups)[i];
          if (!l.error.ok()) continue;
          l.upload_read = true;
          asked.push_back(i);
          keys.push_back(l.item_key);
          if (l.payee.has_value()) {
            with_payee.push_back(i);
            person_keys.push_back(l.person_index);
          }
        }
        absl::StatusOr<std::vector<std::optional<std::string>>> got =
            self.ctx_.engine->MultiGet(Table::kPayoutItems, keys);
        if (!got.ok()) return fail_all(got.status());
        // A stored item with this id (a re-sent item, rare): its content
        // as uploaded, decrypted, against this upload's.
        for (size_t j = 0; j < asked.size(); ++j) {
          if (!(*got)[j].has_value()) continue;
          Lookup& l = (*lookups)[asked[j]];
          absl::StatusOr<ItemRecord> old = in::ParseItem(*(*got)[j]);
          if (!old.ok()) return fail_all(old.status());
          ssc::v1::PayoutItemInput stored;
          stored.set_item_id(old->item_id());
          absl::StatusOr<std::string> clear = self.ctx_.cipher->Decrypt(
              old->id_number(), in::ItemKeyAad(l.item_key, "id_number"));
          if (!clear.ok()) return fail_all(clear.status());
          stored.set_id_number(*std::move(clear));
          clear = self.ctx_.cipher->Decrypt(old->name(),
                                            in::ItemKeyAad(l.item_key, "name"));
          if (!clear.ok()) return fail_all(clear.status());
          stored.set_name(*std::move(clear));
          clear = in::ItemNote(*self.ctx_.cipher, l.item_key, *old);
          if (!clear.ok()) return fail_all(clear.status());
          stored.set_note(*std::move(clear));
          stored.set_amount_fen(old->amount_fen());
          l.stored_same = SameContent(stored, *items[asked[j]]);
        }
        got = self.ctx_.engine->MultiGet(Table::kPayouts, person_keys);
        if (!got.ok()) return fail_all(got.status());
        for (size_t j = 0; j < with_payee.size(); ++j) {
          (*lookups)[with_payee[j]].stored_person_item = std::move((*got)[j]);
        }
      });
}

absl::Status PayoutLogic::Impl::ValidateItem(
    PayoutLogic& self, const ssc::v1::Programme& programme,
    const ssc::v1::PayoutItemInput& item, Lookup& lookup, storage::WriteSet& ws,
    absl::flat_hash_map<std::string_view, std::string_view>* persons,
    ItemRecord* rec) {
  RETURN_IF_ERROR(lookup.error);
  storage::Engine* engine = self.ctx_.engine;
  rec->set_item_id(item.item_id());
  rec->set_amount_fen(item.amount_fen());
  rec->set_sealed_note(std::move(lookup.enc_note));
  rec->set_id_number(std::move(lookup.enc_id_number));
  rec->set_name(std::move(lookup.enc_name));
  auto reject = [&](ssc::v1::ItemReason reason, std::string detail) {
    rec->set_status(ssc::v1::ITEM_STATUS_REJECTED);
    rec->set_reason(reason);
    rec->set_reason_detail(std::move(detail));
    return absl::OkStatus();
  };

  // 1. The ID number and the holder register.
  if (!lookup.invalid_id.empty()) {
    return reject(ssc::v1::ITEM_REASON_INVALID_ID_NUMBER, lookup.invalid_id);
  }
  if (!lookup.payee.has_value()) {
    return reject(ssc::v1::ITEM_REASON_NO_SUCH_PERSON,
                  "no person with this ID number in the holder register");
  }
  const card::PayeeView& p = *lookup.payee;
  rec->set_person_key(p.person_key);

  // 2. One entitlement per person in a batch.
  const std::string& person_index = lookup.person_index;
  std::optional<std::string> first_item;
  if (auto it = persons->find(person_index); it != persons->end()) {
    first_item = std::string(it->second);
  } else if (lookup.upload_read) {
    first_item = lookup.stored_person_item;
  } else {
    ASSIGN_OR_RETURN(first_item, engine->Get(Table::kPayouts, person_index));
  }
  if (first_item.has_value()) {
    return reject(ssc::v1::ITEM_REASON_DUPLICATE_IN_BATCH,
                  absl::StrCat("same person as item ", *first_item));
  }
  ws.Put(Table::kPayouts, person_index, item.item_id());
  persons->emplace(person_index, item.item_id());

  // 3. Name, amount.
  if (p.name != item.name()) {
    return reject(ssc::v1::ITEM_REASON_NAME_MISMATCH,
                  "the name differs from the holder register");
  }
  if (item.amount_fen() <= 0) {
    return reject(ssc::v1::ITEM_REASON_AMOUNT_NOT_POSITIVE,
                  "the amount must be above 0");
  }
  if (item.amount_fen() > programme.max_item_amount_fen()) {
    return reject(
        ssc::v1::ITEM_REASON_AMOUNT_ABOVE_MAXIMUM,
        absl::StrCat("the programme pays at most ",
                     programme.max_item_amount_fen(), " fen per item"));
  }

  // 4. The card and its financial account.
  if (!p.has_card) {
    if (!p.has_applications) {
      return reject(ssc::v1::ITEM_REASON_NO_CARD, "the person has no card");
    }
    return reject(ssc::v1::ITEM_REASON_CARD_CLOSED,
                  "the card was cancelled or replaced without a successor");
  }
  ssc::v1::ItemReason hold = ssc::v1::ITEM_REASON_UNSPECIFIED;
  switch (p.card_state) {
    case ssc::v1::CARD_STATE_ISSUED:
    case ssc::v1::CARD_STATE_ACTIVE:
      break;
    case ssc::v1::CARD_STATE_TEMP_LOST:
      hold = ssc::v1::ITEM_REASON_CARD_TEMP_LOST;
      break;
    case ssc::v1::CARD_STATE_LOST:
      hold = ssc::v1::ITEM_REASON_CARD_LOST;
      break;
    case ssc::v1::CARD_STATE_REPLACED:
    case ssc::v1::CARD_STATE_CANCELLED:
      return reject(ssc::v1::ITEM_REASON_CARD_CLOSED,
                    "the card was cancelled or replaced without a successor");
    default:
      return reject(ssc::v1::ITEM_REASON_NO_CARD,
                    absl::StrCat("the card has not been handed over (",
                                 AV(card::StateName(p.card_state)), ")"));
  }
  if (p.bank_account.empty()) {
    return reject(ssc::v1::ITEM_REASON_NO_BANK_ACCOUNT,
                  "the card has no financial account");
  }

  // 5. Already paid in any batch.
  if (lookup.entitlement.has_value() && lookup.entitlement_paid) {
    return reject(
        ssc::v1::ITEM_REASON_DUPLICATE_ENTITLEMENT,
        absl::StrCat("already paid in batch ", lookup.entitlement->batch_id(),
                     " item ", lookup.entitlement->item_id()));
  }

  if (hold != ssc::v1::ITEM_REASON_UNSPECIFIED) {
    rec->set_status(ssc::v1::ITEM_STATUS_HELD);
    rec->set_reason(hold);
    rec->set_reason_detail(
        "the card is reported lost; the item can be paid later");
    return absl::OkStatus();
  }
  rec->set_status(ssc::v1::ITEM_STATUS_VALID);
  rec->set_region_code(p.region_code);
  rec->set_bank_code(p.bank_code);
  rec->set_bank_account(std::move(lookup.enc_account));
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------

PayoutLogic::PayoutLogic(common::StoreContext ctx, const card::CardLogic* cards,
                         BankGateway* bank, PayoutOptions options)
    : ctx_(ctx), cards_(cards), bank_(bank), options_(std::move(options)) {}

PayoutLogic::~PayoutLogic() { Stop(); }

std::string PayoutLogic::InstructionId(std::string_view prefix, uint64_t seq) {
  return absl::StrFormat("%s-%08d", prefix, seq);
}

std::string PayoutLogic::InstructionPrefix(const ssc::v1::Batch& batch) {
  if (batch.incarnation().empty()) return batch.batch_id();
  return absl::StrCat(batch.incarnation(), "-", batch.batch_id());
}

void PayoutLogic::NotifyProgress() {
  {
    std::lock_guard<std::mutex> l(progress_mu_);
    ++progress_version_;
  }
  progress_cv_.notify_all();
}

absl::StatusOr<ssc::v1::RegisterProgrammeResponse>
PayoutLogic::RegisterProgramme(const Caller& caller,
                               const ssc::v1::RegisterProgrammeRequest& req) {
  ssc::v1::RegisterProgrammeResponse resp;
  const ssc::v1::Programme& p = req.programme();
  RETURN_IF_ERROR(common::RunMutation(
      ctx_, {caller, Impl::Method("RegisterProgramme"), req.request_id(), req},
      {absl::StrCat("payout/programme/", p.code())}, &resp,
      [&](storage::WriteSet& ws, google::protobuf::Message*,
          std::string* target) {
        *target = absl::StrCat("programme ", p.code());
        RETURN_IF_ERROR(in::ValidateCode("programme.code", p.code()));
        RETURN_IF_ERROR(
            in::ValidateText("programme.name", p.name(), 200, false));
        if (!ssc::v1::ProgrammeCategory_IsValid(p.category()) ||
            p.category() == ssc::v1::PROGRAMME_CATEGORY_UNSPECIFIED) {
          return InvalidField("programme.category", "must be specified");
        }
        if (!ssc::v1::BeneficiaryUnit_IsValid(p.unit()) ||
            p.unit() == ssc::v1::BENEFICIARY_UNIT_UNSPECIFIED) {
          return InvalidField("programme.unit",
                              "must be per person or per household");
        }
        if (p.max_item_amount_fen() <= 0) {
          return InvalidField("programme.max_item_amount_fen",
                              "must be above 0");
        }
        ASSIGN_OR_RETURN(
            auto existing,
            ctx_.engine->Get(Table::kPayouts, in::ProgrammeKey(p.code())));
        if (existing.has_value()) {
          return absl::AlreadyExistsError(
              absl::StrCat("programme ", p.code(), " already exists"));
        }
        ssc::v1::Programme stored = p;
        *stored.mutable_created_at() = in::ToProto(ctx_.clock->Now());
        ws.Put(Table::kPayouts, in::ProgrammeKey(p.code()),
               stored.SerializeAsString());
        ws.AppendEvent(
            in::MakeEvent("payout.programme_registered", "programme", p.code(),
                          absl::StrCat("{\"code\":\"", p.code(), "\"}")));
        *resp.mutable_programme() = stored;
        return absl::OkStatus();
      }));
  return resp;
}

absl::StatusOr<ssc::v1::GetProgrammeResponse> PayoutLogic::GetProgramme(
    const Caller&, const ssc::v1::GetProgrammeRequest& req) {
  RETURN_IF_ERROR(in::ValidateCode("code", req.code()));
  ssc::v1::GetProgrammeResponse resp;
  ASSIGN_OR_RETURN(*resp.mutable_programme(),
                   Impl::MustLoadProgramme(*this, req.code()));
  return resp;
}

absl::StatusOr<ssc::v1::SetBudgetResponse> PayoutLogic::SetBudget(
    const Caller& caller, const ssc::v1::SetBudgetRequest& req) {
  ssc::v1::SetBudgetResponse resp;
  RETURN_IF_ERROR(common::RunMutation(
      ctx_, {caller, Impl::Method("SetBudget"), req.request_id(), req},
      {in::BudgetLock(req.programme_code(), req.period())}, &resp,
      [&](storage::WriteSet& ws, google::protobuf::Message*,
          std::string* target) {
        *target =
            absl::StrCat("budget ", req.programme_code(), " ", req.period());
        RETURN_IF_ERROR(
            in::ValidateCode("programme_code", req.programme_code()));
        RETURN_IF_ERROR(in::ValidatePeriod("period", req.period()));
        if (req.amount_fen() < 0)
          return InvalidField("amount_fen", "must not be negative");
        RETURN_IF_ERROR(
            Impl::MustLoadProgramme(*this, req.programme_code()).status());
        ASSIGN_OR_RETURN(
            int64_t committed,
            ctx_.engine->GetCounter(
                Table::kCounters,
                in::CommittedKey(req.programme_code(), req.period())));
        ASSIGN_OR_RETURN(int64_t paid,
                         ctx_.engine->GetCounter(
                             Table::kCounters,
                             in::PaidKey(req.programme_code(), req.period())));
        if (req.amount_fen() < committed) {
          return WrongState(
              absl::StrCat("budget ", req.programme_code(), " ", req.period()),
              absl::StrCat("COMMITTED_", committed),
              absl::StrCat("the budget cannot go below the ", committed,
                           " fen already reserved or paid"));
        }
        store::BudgetRecord rec;
        rec.set_amount_fen(req.amount_fen());
        rec.set_updated_micros(absl::ToUnixMicros(ctx_.clock->Now()));
        ws.Put(Table::kPayouts,
               in::BudgetKey(req.programme_code(), req.period()),
               rec.SerializeAsString());
        ws.AppendEvent(in::MakeEvent(
            "payout.budget_set", "programme", req.programme_code(),
            absl::StrCat("{\"period\":\"", req.period(),
                         "\",\"amount_fen\":", req.amount_fen(), "}")));
        ssc::v1::Budget* b = resp.mutable_budget();
        b->set_programme_code(req.programme_code());
        b->set_period(req.period());
        b->set_amount_fen(req.amount_fen());
        b->set_reserved_fen(committed - paid);
        b->set_paid_fen(paid);
        b->set_available_fen(req.amount_fen() - committed);
        return absl::OkStatus();
      }));
  return resp;
}

absl::StatusOr<ssc::v1::GetBudgetResponse> PayoutLogic::GetBudget(
    const Caller&, const ssc::v1::GetBudgetRequest& req) {
  RETURN_IF_ERROR(in::ValidateCode("programme_code", req.programme_code()));
  RETURN_IF_ERROR(in::ValidatePeriod("period", req.period()));
  ssc::v1::GetBudgetResponse resp;
  ASSIGN_OR_RETURN(*resp.mutable_budget(),
                   ReadBudget(ctx_.engine, req.programme_code(), req.period()));
  return resp;
}

absl::StatusOr<ssc::v1::CreateBatchResponse> PayoutLogic::CreateBatch(
    const Caller& caller, const ssc::v1::CreateBatchRequest& req) {
  ssc::v1::CreateBatchResponse resp;
  RETURN_IF_ERROR(common::RunMutation(
      ctx_, {caller, Impl::Method("CreateBatch"), req.request_id(), req},
      {in::kBatchSeqCounter}, &resp,
      [&](storage::WriteSet& ws, google::protobuf::Message*,
          std::string* target) {
        *target = absl::StrCat("programme ", req.programme_code());
        RETURN_IF_ERROR(
            in::ValidateCode("programme_code", req.programme_code()));
        RETURN_IF_ERROR(in::ValidatePeriod("period", req.period()));
        if (!req.has_scheduled_at()) {
          return InvalidField("scheduled_at", "must be set");
        }
        if (req.scheduled_at().seconds() < 0 ||
            req.scheduled_at().seconds() > 253402300799 ||
            req.scheduled_at().nanos() < 0 ||
            req.scheduled_at().nanos() > 999999999) {
          return InvalidField("scheduled_at", "out of range");
        }
        if (req.control_count() <= 0 || req.control_count() > 10'000'000) {
          return InvalidField("control_count", "must be within 1..10000000");
        }
        if (req.control_amount_fen() <= 0) {
          return InvalidField("control_amount_fen", "must be above 0");
        }
        RETURN_IF_ERROR(
            in::ValidateText("description", req.description(), 500, true));
        RETURN_IF_ERROR(
            Impl::MustLoadProgramme(*this, req.programme_code()).status());
        ASSIGN_OR_RETURN(std::string id, Impl::NextBatchId(*this, ws));
        *target = absl::StrCat("batch ", id);
        ssc::v1::Batch b;
        b.set_batch_id(id);
        ASSIGN_OR_RETURN(*b.mutable_incarnation(),
                         storage::ReadIncarnation(*ctx_.engine));
        b.set_programme_code(req.programme_code());
        b.set_period(req.period());
        b.set_state(ssc::v1::BATCH_STATE_DRAFT);
        *b.mutable_scheduled_at() = req.scheduled_at();
        b.set_control_count(req.control_count());
        b.set_control_amount_fen(req.control_amount_fen());
        b.set_maker(caller.identity);
        b.set_description(req.description());
        *b.mutable_created_at() = in::ToProto(ctx_.clock->Now());
        ws.Put(Table::kPayouts, in::BatchKey(id), b.SerializeAsString());
        ws.AppendEvent(in::MakeEvent(
            "payout.batch_created", "payout_batch", id,
            absl::StrCat("{\"programme\":\"", req.programme_code(),
                         "\",\"period\":\"", req.period(), "\"}")));
        *b.mutable_totals() = ssc::v1::BatchTotals();
        *resp.mutable_batch() = std::move(b);
        return absl::OkStatus();
      }));
  return resp;
}

absl::StatusOr<ssc::v1::UploadItemsResponse> PayoutLogic::UploadChunk(
    const Caller& caller, std::string_view batch_id,
    std::string_view request_id,
    const google::protobuf::RepeatedPtrField<ssc::v1::PayoutItemInput>& items) {
  ASSIGN_OR_RETURN(std::shared_ptr<PreparedUpload> prepared,
                   PrepareUpload(caller, batch_id, request_id, items));
  return CommitUpload(*prepared);
}

absl::StatusOr<std::shared_ptr<PayoutLogic::PreparedUpload>>
PayoutLogic::PrepareUpload(
    const Caller& caller, std::string_view batch_id,
    std::string_view request_id,
    const google::protobuf::RepeatedPtrField<ssc::v1::PayoutItemInput>& items) {
  const std::string method = Impl::Method("UploadItems");
  auto fail = [&](const absl::Status& s) -> absl::Status {
    absl::Status audit =
        common::AuditOnly(ctx_, caller, method, request_id,
                          absl::StrCat("batch ", AV(batch_id)), s);
    return audit.ok() ? s : audit;
  };
  if (absl::Status s = in::ValidateRequestId(request_id); !s.ok())
    return fail(s);
  if (absl::Status s = in::ValidateBatchId("batch_id", batch_id); !s.ok())
    return fail(s);
  if (items.size() > options_.max_upload_chunk) {
    return fail(InvalidField(
        "items",
        absl::StrCat("at most ", options_.max_upload_chunk, " per message")));
  }
  for (int i = 0; i < items.size(); ++i) {
    if (absl::Status s =
            Impl::CheckItemInput(absl::StrCat("items[", i, "]"), items[i]);
        !s.ok()) {
      return fail(s);
    }
  }
  auto p = std::make_shared<PreparedUpload>();
  p->caller = caller;
  p->batch_id = std::string(batch_id);
  p->request_id = std::string(request_id);
  p->items = &items;
  // Programme and period never change: read without the batch lock (the
  // state is checked again under it).
  absl::StatusOr<ssc::v1::Batch> batch = Impl::LoadDraftBatch(*this, batch_id);
  if (!batch.ok()) return fail(batch.status());
  p->batch = *std::move(batch);
  absl::StatusOr<ssc::v1::Programme> programme =
      Impl::MustLoadProgramme(*this, p->batch.programme_code());
  if (!programme.ok()) return fail(programme.status());
  p->programme = *std::move(programme);
  // Validation reads in parallel (nothing is written here); the decisions
  // are taken in order in CommitUpload, which sees the earlier items.
  p->inputs.reserve(items.size());
  for (const auto& item : items) p->inputs.push_back(&item);
  p->lookups = Impl::PrefetchAll(*this, p->programme, p->batch, p->inputs);
  for (const Impl::Lookup& l : p->lookups) {
    if (!l.error.ok()) return fail(l.error);
  }
  return p;
}

namespace {

// What an upload chunk adds to the totals, applied to the totals read before
// it (the answer recorded with the chunk's write must be known before it).
void AddToTotals(ssc::v1::BatchTotals* t, in::Field f, int64_t n,
                 int64_t amount) {
  switch (f) {
    case in::Field::kReceived:
      t->set_received_count(t->received_count() + n);
      t->set_received_amount_fen(t->received_amount_fen() + amount);
      break;
    case in::Field::kValid:
      t->set_valid_count(t->valid_count() + n);
      t->set_valid_amount_fen(t->valid_amount_fen() + amount);
      break;
    case in::Field::kHeld:
      t->set_held_count(t->held_count() + n);
      t->set_held_amount_fen(t->held_amount_fen() + amount);
      break;
    case in::Field::kRejected:
      t->set_rejected_count(t->rejected_count() + n);
      t->set_rejected_amount_fen(t->rejected_amount_fen() + amount);
      break;
    default:
      break;  // an upload sends and pays nothing
  }
  t->set_remaining_count(t->valid_count() - t->paid_count() -
                         t->failed_count());
  t->set_remaining_amount_fen(t->valid_amount_fen() - t->paid_amount_fen() -
                              t->failed_amount_fen());
}

absl::StatusOr<ssc::v1::UploadItemsResponse> ParseStoredUpload(
    const std::string& bytes) {
  ssc::v1::UploadItemsResponse resp;
  if (!resp.ParseFromString(bytes)) {
    return absl::DataLossError(
        "stored response of a repeated request cannot be parsed");
  }
  return resp;
}

}  // namespace

absl::StatusOr<bool> PayoutLogic::UploadAnswered(const Caller& caller,
                                                 std::string_view request_id) {
  if (!in::ValidateRequestId(request_id).ok()) return false;
  return ctx_.idempotency->Exists(caller.identity, request_id);
}

absl::StatusOr<ssc::v1::UploadItemsResponse> PayoutLogic::ReplayUpload(
    const Caller& caller, std::string_view batch_id,
    std::string_view request_id, std::string_view fingerprint) {
  const std::string idem_lock =
      storage::Idempotency::LockKey(caller.identity, request_id);
  storage::KeyLocks::Guard guard = ctx_.locks->Lock({idem_lock});
  absl::StatusOr<std::optional<std::string>> stored =
      ctx_.idempotency->Check(caller.identity, request_id, fingerprint);
  absl::Status outcome = stored.status();
  if (stored.ok() && !stored->has_value()) {
    // The record expired while the stream was read.
    outcome = absl::AbortedError(
        absl::StrCat("the answer to request_id \"", AV(request_id),
                     "\" expired while the stream was read; send it again"));
  }
  if (!outcome.ok()) {
    absl::Status audit =
        common::AuditOnly(ctx_, caller, Impl::Method("UploadItems"), request_id,
                          absl::StrCat("batch ", AV(batch_id)), outcome);
    return audit.ok() ? outcome : audit;
  }
  // A retry of a completed stream: the original answer, nothing written.
  return ParseStoredUpload(**stored);
}

absl::StatusOr<ssc::v1::UploadItemsResponse> PayoutLogic::CommitUpload(
    PreparedUpload& p, const UploadEnd* end) {
  const Caller& caller = p.caller;
  const std::string& batch_id = p.batch_id;
  const std::string& request_id = p.request_id;
  const google::protobuf::RepeatedPtrField<ssc::v1::PayoutItemInput>& items =
      *p.items;
  const std::string method = Impl::Method("UploadItems");
  auto fail = [&](const absl::Status& s) -> absl::Status {
    absl::Status audit =
        common::AuditOnly(ctx_, caller, method, request_id,
                          absl::StrCat("batch ", AV(batch_id)), s);
    return audit.ok() ? s : audit;
  };
  const std::string lock_key = in::BatchLock(batch_id);
  const std::string idem_lock =
      storage::Idempotency::LockKey(caller.identity, request_id);
  std::vector<std::string_view> lock_keys = {lock_key};
  if (end != nullptr) lock_keys.push_back(idem_lock);
  storage::KeyLocks::Guard guard = ctx_.locks->Lock(lock_keys);
  if (end != nullptr) {
    // Another stream with this id may have completed since this one began.
    absl::StatusOr<std::optional<std::string>> stored =
        ctx_.idempotency->Check(caller.identity, request_id, end->fingerprint);
    if (!stored.ok()) return fail(stored.status());
    if (stored->has_value()) return ParseStoredUpload(**stored);
  }
  absl::StatusOr<ssc::v1::Batch> batch = Impl::LoadDraftBatch(*this, batch_id);
  if (!batch.ok()) return fail(batch.status());
  const ssc::v1::Programme* programme = &p.programme;
  absl::StatusOr<ssc::v1::BatchTotals> totals =
      in::ReadTotals(ctx_.engine, batch_id);
  if (!totals.ok()) return fail(totals.status());
  // What earlier chunks wrote, now that they are stored.
  Impl::ReadUploadState(*this, p.inputs, &p.lookups);
  std::vector<Impl::Lookup>& lookups = p.lookups;

  storage::WriteSet ws;
  int64_t count = totals->received_count();
  int64_t amount = totals->received_amount_fen();
  int64_t new_items = 0, repeated = 0;
  struct Delta {
    int64_t n = 0, amount = 0;
  };
  std::map<int, Delta> by_status;
  // This chunk's writes, for lookups (WriteSet::Pending is a linear
  // search): views into the lookups and items, which outlive the loop.
  // Item key -> the input of this chunk that stored it.
  absl::flat_hash_map<std::string_view, const ssc::v1::PayoutItemInput*>
      chunk_items;
  absl::flat_hash_map<std::string_view, std::string_view> chunk_persons;
  chunk_items.reserve(items.size());
  chunk_persons.reserve(items.size());
  for (int i = 0; i < items.size(); ++i) {
    const ssc::v1::PayoutItemInput& item = items[i];
    Impl::Lookup& lookup = lookups[i];
    if (!lookup.error.ok()) return fail(lookup.error);
    const std::string& key = lookup.item_key;
    std::optional<bool> same;  // set if the item id is known already
    if (auto it = chunk_items.find(key); it != chunk_items.end()) {
      same = Impl::SameContent(*it->second, item);
    } else {
      same = lookup.stored_same;
    }
    if (same.has_value()) {
      if (!*same) {
        return fail(
            InvalidField(absl::StrCat("items[", i, "].item_id"),
                         absl::StrCat("item ", item.item_id(),
                                      " was already uploaded with different "
                                      "content")));
      }
      ++repeated;
      continue;
    }
    ++count;
    if (__builtin_add_overflow(amount, item.amount_fen(), &amount)) {
      return fail(InvalidField(absl::StrCat("items[", i, "].amount_fen"),
                               "the batch total overflows"));
    }
    if (count > batch->control_count()) {
      return fail(InvalidField(
          "items",
          absl::StrCat("the chunk would push the item count past the declared ",
                       batch->control_count())));
    }
    if (amount > batch->control_amount_fen()) {
      return fail(InvalidField(
          "items",
          absl::StrCat(
              "the chunk would push the total amount past the declared ",
              batch->control_amount_fen(), " fen")));
    }
    ItemRecord rec;
    rec.set_seq(static_cast<uint64_t>(count));
    if (absl::Status s = Impl::ValidateItem(*this, *programme, item, lookup, ws,
                                            &chunk_persons, &rec);
        !s.ok()) {
      return fail(s);
    }
    Delta& d = by_status[rec.status()];
    ++d.n;
    d.amount += rec.amount_fen();
    ws.Put(Table::kPayoutItems, key, rec.SerializeAsString());
    chunk_items.emplace(key, &item);
    ++new_items;
  }
  ssc::v1::BatchTotals after = *totals;
  if (new_items > 0) {
    in::AddTotals(ws, batch_id, in::Field::kReceived,
                  count - totals->received_count(),
                  amount - totals->received_amount_fen());
    AddToTotals(&after, in::Field::kReceived, count - totals->received_count(),
                amount - totals->received_amount_fen());
    for (const auto& [status, d] : by_status) {
      in::Field f = status == ssc::v1::ITEM_STATUS_VALID ? in::Field::kValid
                    : status == ssc::v1::ITEM_STATUS_HELD
                        ? in::Field::kHeld
                        : in::Field::kRejected;
      in::AddTotals(ws, batch_id, f, d.n, d.amount);
      AddToTotals(&after, f, d.n, d.amount);
    }
  }
  storage::AuditInput audit;
  audit.caller = caller.identity;
  audit.role = std::string(common::RoleName(caller.role));
  audit.operator_id = caller.operator_id;
  audit.rpc = method;
  audit.target =
      absl::StrCat("batch ", AV(batch_id), " +", new_items, " items");
  audit.request_id = std::string(request_id);
  ws.AppendAudit(std::move(audit));
  ssc::v1::UploadItemsResponse resp;
  if (end != nullptr) {
    // The stream's answer, recorded in the same write as its last items.
    *resp.mutable_totals() = after;
    resp.set_new_items(end->earlier_new_items + new_items);
    resp.set_repeated_items(end->earlier_repeated_items + repeated);
    if (absl::Status s = ctx_.idempotency->Record(
            ws, caller.identity, request_id, end->fingerprint,
            common::SerializeDeterministic(resp));
        !s.ok()) {
      return fail(s);
    }
  }
  absl::StatusOr<storage::CommitResult> committed =
      ctx_.engine->Commit(std::move(ws));
  if (!committed.ok()) return fail(committed.status());
  NotifyProgress();
  if (end != nullptr) return resp;

  ASSIGN_OR_RETURN(*resp.mutable_totals(),
                   in::ReadTotals(ctx_.engine, batch_id));
  resp.set_new_items(new_items);
  resp.set_repeated_items(repeated);
  return resp;
}

namespace {

// Runs a batch mutation: loads the batch under its lock (plus `more_locks`),
// lets `fn` change it and add writes, stores it and answers with it.
template <typename Resp, typename Req, typename Fn>
absl::StatusOr<Resp> MutateBatch(
    const common::StoreContext& ctx, PayoutLogic& self, const Caller& caller,
    std::string_view rpc, const Req& req, std::vector<std::string> more_locks,
    Fn fn,
    absl::StatusOr<ssc::v1::Batch> (*load)(PayoutLogic&, std::string_view),
    absl::Status (*fill)(PayoutLogic&, ssc::v1::Batch*)) {
  Resp resp;
  more_locks.push_back(in::BatchLock(req.batch_id()));
  RETURN_IF_ERROR(common::RunMutation(
      ctx,
      {caller, std::string("ssc.v1.PayoutService/") + std::string(rpc),
       req.request_id(), req},
      more_locks, &resp,
      [&](storage::WriteSet& ws, google::protobuf::Message*,
          std::string* target) {
        *target = absl::StrCat("batch ", req.batch_id());
        ASSIGN_OR_RETURN(ssc::v1::Batch b, load(self, req.batch_id()));
        RETURN_IF_ERROR(fn(b, ws));
        b.clear_totals();
        ws.Put(Table::kPayouts, in::BatchKey(b.batch_id()),
               b.SerializeAsString());
        ws.AppendEvent(in::MakeEvent(
            absl::StrCat("payout.batch_", absl::AsciiStrToLower(AV(
                                              in::BatchStateName(b.state())))),
            "payout_batch", b.batch_id(), "{}"));
        RETURN_IF_ERROR(fill(self, &b));
        *resp.mutable_batch() = std::move(b);
        return absl::OkStatus();
      }));
  return resp;
}

}  // namespace

#define SSC_MUTATE_BATCH(Resp, rpc, locks, fn)                \
  MutateBatch<Resp>(ctx_, *this, caller, rpc, req, locks, fn, \
                    &PayoutLogic::Impl::MustLoadBatch,        \
                    &PayoutLogic::Impl::FillTotals)

absl::StatusOr<ssc::v1::SealBatchResponse> PayoutLogic::SealBatch(
    const Caller& caller, const ssc::v1::SealBatchRequest& req) {
  auto r = SSC_MUTATE_BATCH(
      ssc::v1::SealBatchResponse, "SealBatch", {},
      [&](ssc::v1::Batch& b, storage::WriteSet&) -> absl::Status {
        RETURN_IF_ERROR(
            BatchInState(b, {ssc::v1::BATCH_STATE_DRAFT}, "sealing"));
        ASSIGN_OR_RETURN(ssc::v1::BatchTotals t,
                         in::ReadTotals(ctx_.engine, b.batch_id()));
        if (t.received_count() != b.control_count() ||
            t.received_amount_fen() != b.control_amount_fen()) {
          return WrongState(
              absl::StrCat("batch ", b.batch_id()), "DRAFT",
              absl::StrCat("received ", t.received_count(), " items / ",
                           t.received_amount_fen(), " fen, declared ",
                           b.control_count(), " items / ",
                           b.control_amount_fen(), " fen"));
        }
        b.set_state(ssc::v1::BATCH_STATE_SEALED);
        return absl::OkStatus();
      });
  if (r.ok()) NotifyProgress();
  return r;
}

absl::StatusOr<ssc::v1::SubmitBatchResponse> PayoutLogic::SubmitBatch(
    const Caller& caller, const ssc::v1::SubmitBatchRequest& req) {
  auto r = SSC_MUTATE_BATCH(
      ssc::v1::SubmitBatchResponse, "SubmitBatch", {},
      [&](ssc::v1::Batch& b, storage::WriteSet&) -> absl::Status {
        RETURN_IF_ERROR(
            RequireRole(caller, Role::kFinanceMaker, "submitting a batch"));
        RETURN_IF_ERROR(RequireOperator(caller, "submitting a batch"));
        RETURN_IF_ERROR(
            BatchInState(b, {ssc::v1::BATCH_STATE_SEALED}, "submitting"));
        b.set_state(ssc::v1::BATCH_STATE_PENDING_APPROVAL);
        b.set_maker(caller.identity);
        b.set_maker_operator(caller.operator_id);
        return absl::OkStatus();
      });
  if (r.ok()) NotifyProgress();
  return r;
}

absl::StatusOr<ssc::v1::ApproveBatchResponse> PayoutLogic::ApproveBatch(
    const Caller& caller, const ssc::v1::ApproveBatchRequest& req) {
  RETURN_IF_ERROR(in::ValidateBatchId("batch_id", req.batch_id()));
  ASSIGN_OR_RETURN(std::vector<std::string> locks,
                   in::BudgetLocksOf(ctx_.engine, req.batch_id()));
  auto r = SSC_MUTATE_BATCH(
      ssc::v1::ApproveBatchResponse, "ApproveBatch", locks,
      [&](ssc::v1::Batch& b, storage::WriteSet& ws) -> absl::Status {
        RETURN_IF_ERROR(
            RequireRole(caller, Role::kFinanceChecker, "approving a batch"));
        RETURN_IF_ERROR(RequireOperator(caller, "approving a batch"));
        RETURN_IF_ERROR(BatchInState(b, {ssc::v1::BATCH_STATE_PENDING_APPROVAL},
                                     "approval"));
        RETURN_IF_ERROR(CheckPayoutsNotFenced(*ctx_.engine));
        RETURN_IF_ERROR(RequireOtherThanMaker(caller, b, "approve"));
        ASSIGN_OR_RETURN(ssc::v1::BatchTotals t,
                         in::ReadTotals(ctx_.engine, b.batch_id()));
        absl::StatusOr<ssc::v1::Budget> budget =
            ReadBudget(ctx_.engine, b.programme_code(), b.period());
        if (absl::IsNotFound(budget.status())) {
          return WrongState(
              absl::StrCat("budget ", b.programme_code(), " ", b.period()),
              "NOT_SET", "no budget is set for the batch's period");
        }
        RETURN_IF_ERROR(budget.status());
        if (t.valid_amount_fen() > budget->available_fen()) {
          return WrongState(
              absl::StrCat("budget ", b.programme_code(), " ", b.period()),
              "INSUFFICIENT",
              absl::StrCat("the batch needs ", t.valid_amount_fen(), " fen, ",
                           budget->available_fen(), " fen are available"));
        }
        ws.AddCounter(Table::kCounters,
                      in::CommittedKey(b.programme_code(), b.period()),
                      t.valid_amount_fen());
        ws.Put(Table::kPayouts, in::ActiveKey(b.batch_id()), "");
        b.set_state(ssc::v1::BATCH_STATE_APPROVED);
        b.set_checker(caller.identity);
        b.set_checker_operator(caller.operator_id);
        b.set_reserved_amount_fen(t.valid_amount_fen());
        *b.mutable_approved_at() = in::ToProto(ctx_.clock->Now());
        return absl::OkStatus();
      });
  if (r.ok()) {
    NotifyProgress();
    Wake();
  }
  return r;
}

absl::StatusOr<ssc::v1::RejectBatchResponse> PayoutLogic::RejectBatch(
    const Caller& caller, const ssc::v1::RejectBatchRequest& req) {
  auto r = SSC_MUTATE_BATCH(
      ssc::v1::RejectBatchResponse, "RejectBatch", {},
      [&](ssc::v1::Batch& b, storage::WriteSet&) -> absl::Status {
        RETURN_IF_ERROR(
            RequireRole(caller, Role::kFinanceChecker, "rejecting a batch"));
        RETURN_IF_ERROR(RequireOperator(caller, "rejecting a batch"));
        RETURN_IF_ERROR(BatchInState(b, {ssc::v1::BATCH_STATE_PENDING_APPROVAL},
                                     "rejection"));
        RETURN_IF_ERROR(RequireOtherThanMaker(caller, b, "review"));
        RETURN_IF_ERROR(in::ValidateText("reason", req.reason(), 500, false));
        b.set_state(ssc::v1::BATCH_STATE_REJECTED);
        b.set_checker(caller.identity);
        b.set_checker_operator(caller.operator_id);
        b.set_reason(req.reason());
        return absl::OkStatus();
      });
  if (r.ok()) NotifyProgress();
  return r;
}

absl::StatusOr<ssc::v1::CancelBatchResponse> PayoutLogic::CancelBatch(
    const Caller& caller, const ssc::v1::CancelBatchRequest& req) {
  RETURN_IF_ERROR(in::ValidateBatchId("batch_id", req.batch_id()));
  ASSIGN_OR_RETURN(std::vector<std::string> locks,
                   in::BudgetLocksOf(ctx_.engine, req.batch_id()));
  auto r = SSC_MUTATE_BATCH(
      ssc::v1::CancelBatchResponse, "CancelBatch", locks,
      [&](ssc::v1::Batch& b, storage::WriteSet& ws) -> absl::Status {
        RETURN_IF_ERROR(BatchInState(
            b,
            {ssc::v1::BATCH_STATE_DRAFT, ssc::v1::BATCH_STATE_SEALED,
             ssc::v1::BATCH_STATE_PENDING_APPROVAL,
             ssc::v1::BATCH_STATE_APPROVED},
            "cancelling (execution has started)"));
        RETURN_IF_ERROR(in::ValidateText("reason", req.reason(), 500, false));
        if (b.state() == ssc::v1::BATCH_STATE_APPROVED) {
          ws.AddCounter(Table::kCounters,
                        in::CommittedKey(b.programme_code(), b.period()),
                        -b.reserved_amount_fen());
          ws.Delete(Table::kPayouts, in::ActiveKey(b.batch_id()));
        }
        b.set_state(ssc::v1::BATCH_STATE_CANCELLED);
        b.set_reason(req.reason());
        return absl::OkStatus();
      });
  if (r.ok()) NotifyProgress();
  return r;
}

absl::StatusOr<ssc::v1::PauseBatchResponse> PayoutLogic::PauseBatch(
    const Caller& caller, const ssc::v1::PauseBatchRequest& req) {
  auto r = SSC_MUTATE_BATCH(
      ssc::v1::PauseBatchResponse, "PauseBatch", {},
      [&](ssc::v1::Batch& b, storage::WriteSet&) -> absl::Status {
        RETURN_IF_ERROR(
            BatchInState(b, {ssc::v1::BATCH_STATE_EXECUTING}, "pausing"));
        b.set_state(ssc::v1::BATCH_STATE_PAUSED);
        return absl::OkStatus();
      });
  if (r.ok()) NotifyProgress();
  return r;
}

absl::StatusOr<ssc::v1::ResumeBatchResponse> PayoutLogic::ResumeBatch(
    const Caller& caller, const ssc::v1::ResumeBatchRequest& req) {
  auto r = SSC_MUTATE_BATCH(
      ssc::v1::ResumeBatchResponse, "ResumeBatch", {},
      [&](ssc::v1::Batch& b, storage::WriteSet&) -> absl::Status {
        RETURN_IF_ERROR(
            BatchInState(b, {ssc::v1::BATCH_STATE_PAUSED}, "resuming"));
        b.set_state(ssc::v1::BATCH_STATE_EXECUTING);
        return absl::OkStatus();
      });
  if (r.ok()) {
    NotifyProgress();
    Wake();
  }
  return r;
}

#undef SSC_MUTATE_BATCH

absl::StatusOr<ssc::v1::GetBatchResponse> PayoutLogic::GetBatch(
    const Caller&, const ssc::v1::GetBatchRequest& req) {
  ssc::v1::GetBatchResponse resp;
  ASSIGN_OR_RETURN(*resp.mutable_batch(),
                   Impl::MustLoadBatch(*this, req.batch_id()));
  RETURN_IF_ERROR(Impl::FillTotals(*this, resp.mutable_batch()));
  return resp;
}

absl::Status PayoutLogic::WatchBatch(
    const Caller&, const ssc::v1::WatchBatchRequest& req,
    const std::function<bool(const ssc::v1::WatchBatchResponse&)>& emit,
    const std::function<bool()>& cancelled) {
  RETURN_IF_ERROR(Impl::MustLoadBatch(*this, req.batch_id()).status());
  std::string last;
  while (true) {
    uint64_t version;
    {
      std::lock_guard<std::mutex> l(progress_mu_);
      version = progress_version_;
    }
    ASSIGN_OR_RETURN(ssc::v1::Batch b,
                     Impl::MustLoadBatch(*this, req.batch_id()));
    ssc::v1::WatchBatchResponse p;
    p.set_batch_id(b.batch_id());
    p.set_state(b.state());
    ASSIGN_OR_RETURN(*p.mutable_totals(),
                     in::ReadTotals(ctx_.engine, b.batch_id()));
    p.set_done(in::IsDone(b.state()));
    std::string now = p.SerializeAsString();
    if (now != last) {
      if (!emit(p)) return absl::OkStatus();
      last = std::move(now);
    }
    if (p.done()) return absl::OkStatus();
    if (cancelled()) return absl::CancelledError("the watcher went away");
    std::unique_lock<std::mutex> l(progress_mu_);
    progress_cv_.wait_for(l, absl::ToChronoNanoseconds(options_.watch_interval),
                          [&] { return progress_version_ != version; });
  }
}

absl::StatusOr<ssc::v1::ListBatchItemsResponse> PayoutLogic::ListBatchItems(
    const Caller&, const ssc::v1::ListBatchItemsRequest& req) {
  ASSIGN_OR_RETURN(const ssc::v1::Batch batch,
                   Impl::MustLoadBatch(*this, req.batch_id()));
  const std::string instruction_prefix = InstructionPrefix(batch);
  if (!ssc::v1::ItemStatus_IsValid(req.status())) {
    return InvalidField("status", "unknown item status");
  }
  int size = req.page().page_size();
  if (size < 0) return InvalidField("page.page_size", "must not be negative");
  if (size == 0) size = options_.default_page_size;
  size = std::min(size, options_.max_page_size);
  const std::string& token = req.page().page_token();
  if (token.size() > kMaxItemIdBytes)
    return InvalidField("page.page_token", "malformed");
  const std::string prefix = in::ItemPrefix(req.batch_id());
  std::string lower = prefix;
  if (!token.empty()) {
    lower = in::ItemKey(req.batch_id(), token);
    lower.push_back('\0');  // strictly after the last item returned
  }
  ASSIGN_OR_RETURN(in::InFlightRanges in_flight,
                   in::InFlightRanges::Load(ctx_.engine, req.batch_id()));
  ssc::v1::ListBatchItemsResponse resp;
  std::string last_id;
  bool more = false;
  // Bound the work of one page when filtering a large batch.
  int64_t scanned = 0;
  constexpr int64_t kMaxScan = 200000;
  absl::Status inner;
  RETURN_IF_ERROR(in::ScanItems(
      ctx_.engine, req.batch_id(), lower,
      [&](std::string_view key, ItemRecord& item_rec) {
        if (resp.items_size() >= size || scanned >= kMaxScan) {
          more = true;
          return false;
        }
        ++scanned;
        ItemRecord* rec = &item_rec;
        in::PresentInFlight(in_flight, key, instruction_prefix, rec);
        last_id = rec->item_id();
        if (req.status() != ssc::v1::ITEM_STATUS_UNSPECIFIED &&
            rec->status() != req.status()) {
          return true;
        }
        absl::StatusOr<ssc::v1::PayoutItem> item =
            in::ToPublicItem(*ctx_.cipher, req.batch_id(), *rec);
        if (!item.ok()) {
          inner = item.status();
          return false;
        }
        *resp.add_items() = std::move(*item);
        return true;
      }));
  RETURN_IF_ERROR(inner);
  if (more) resp.mutable_page()->set_next_page_token(last_id);
  return resp;
}

absl::Status PayoutLogic::ExportBatchResults(
    const Caller&, const ssc::v1::ExportBatchResultsRequest& req,
    const std::function<bool(const ssc::v1::ExportBatchResultsResponse&)>&
        emit) {
  ASSIGN_OR_RETURN(const ssc::v1::Batch batch,
                   Impl::MustLoadBatch(*this, req.batch_id()));
  const std::string instruction_prefix = InstructionPrefix(batch);
  ASSIGN_OR_RETURN(in::InFlightRanges in_flight,
                   in::InFlightRanges::Load(ctx_.engine, req.batch_id()));
  const std::string prefix = in::ItemPrefix(req.batch_id());
  ssc::v1::ExportBatchResultsResponse chunk;
  absl::Status inner;
  bool stopped = false;
  RETURN_IF_ERROR(in::ScanItems(
      ctx_.engine, req.batch_id(), prefix,
      [&](std::string_view key, ItemRecord& item_rec) {
        ItemRecord* rec = &item_rec;
        in::PresentInFlight(in_flight, key, instruction_prefix, rec);
        absl::StatusOr<ssc::v1::PayoutItem> item =
            in::ToPublicItem(*ctx_.cipher, req.batch_id(), *rec);
        if (!item.ok()) {
          inner = item.status();
          return false;
        }
        *chunk.add_items() = std::move(*item);
        if (chunk.items_size() >= options_.export_chunk) {
          if (!emit(chunk)) {
            stopped = true;
            return false;
          }
          chunk.Clear();
        }
        return true;
      }));
  RETURN_IF_ERROR(inner);
  if (stopped) return absl::CancelledError("the reader went away");
  if (chunk.items_size() > 0 && !emit(chunk)) {
    return absl::CancelledError("the reader went away");
  }
  return absl::OkStatus();
}

}  // namespace ssc::payout
