#include "services/banksim/bank_sim.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/time_util.h"
#include "storage/key_codec.h"
#include "storage/status_macros.h"

namespace ssc::banksim {
namespace {

using bank::v1::InstructionStatus;
using storage::KeyBuilder;
using storage::Table;

constexpr char kReferenceCounter[] = "banksim/reference_seq";

// kPayouts: instruction id -> batch reference.
std::string IndexKey(std::string_view instruction_id) {
  return KeyBuilder().Str(instruction_id).Build();
}
// kPayoutItems: (batch reference, instruction id) -> StatementEntry, sealed.
std::string EntryKey(std::string_view batch, std::string_view instruction_id) {
  return KeyBuilder().Str(batch).Str(instruction_id).Build();
}

// kIndex: (booking time in micros, instruction id) -> batch reference: the
// journal ListInstructions pages through.
std::string JournalKey(uint64_t booked_micros,
                       std::string_view instruction_id) {
  return KeyBuilder().U64(booked_micros).Str(instruction_id).Build();
}

// A statement entry as stored: encrypted (it names the payee's account), the
// entry key as associated data.
absl::StatusOr<std::string> SealEntry(const storage::PiiCipher& cipher,
                                      std::string_view key,
                                      const bank::v1::StatementEntry& e) {
  return cipher.Encrypt(e.SerializeAsString(), key);
}

// The stored entry under `key`. An entry of a store written before entries
// were sealed is a clear StatementEntry: it starts with the tag of field 1
// (0x0A), never with the cipher's version byte (0x01), and is read as such.
absl::Status OpenEntry(const storage::PiiCipher& cipher, std::string_view key,
                       std::string_view stored, bank::v1::StatementEntry* e) {
  std::string clear;
  if (!stored.empty() && stored[0] == '\x0a') {
    clear = std::string(stored);
  } else {
    absl::StatusOr<std::string> opened = cipher.Decrypt(stored, key);
    if (!opened.ok()) {
      return absl::DataLossError(absl::StrCat(
          "statement entry cannot be decrypted: ", opened.status().message()));
    }
    clear = *std::move(opened);
  }
  if (!e->ParseFromString(clear)) {
    return absl::DataLossError("corrupt statement entry");
  }
  return absl::OkStatus();
}

bool IsAccount(const std::string& a) {
  if (a.size() < 8 || a.size() > 32) return false;
  for (char c : a) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bank::v1::InstructionResult ToResult(const bank::v1::StatementEntry& e) {
  bank::v1::InstructionResult r;
  r.set_instruction_id(e.instruction_id());
  r.set_status(e.status());
  r.set_bank_reference(e.bank_reference());
  if (e.has_booked_at()) *r.mutable_booked_at() = e.booked_at();
  r.set_reject_reason(e.reject_reason());
  r.set_amount_fen(e.amount_fen());
  return r;
}

// The stored entries of `ids` (nullopt: never seen), with one batched read
// of the index and one of the entries.
absl::StatusOr<std::vector<std::optional<bank::v1::StatementEntry>>>
LoadEntries(storage::Engine* engine, const storage::PiiCipher& cipher,
            const std::vector<std::string_view>& ids) {
  std::vector<std::string> index_keys;
  index_keys.reserve(ids.size());
  for (std::string_view id : ids) index_keys.push_back(IndexKey(id));
  std::vector<std::string_view> keys(index_keys.begin(), index_keys.end());
  ASSIGN_OR_RETURN(std::vector<std::optional<std::string>> batches,
                   engine->MultiGet(Table::kPayouts, keys));
  std::vector<size_t> known;
  std::vector<std::string> entry_keys;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!batches[i].has_value()) continue;
    known.push_back(i);
    entry_keys.push_back(EntryKey(*batches[i], ids[i]));
  }
  std::vector<std::optional<bank::v1::StatementEntry>> out(ids.size());
  if (known.empty()) return out;
  keys.assign(entry_keys.begin(), entry_keys.end());
  ASSIGN_OR_RETURN(std::vector<std::optional<std::string>> entries,
                   engine->MultiGet(Table::kPayoutItems, keys));
  for (size_t j = 0; j < known.size(); ++j) {
    bank::v1::StatementEntry e;
    if (!entries[j].has_value()) {
      return absl::DataLossError("statement entry missing");
    }
    RETURN_IF_ERROR(OpenEntry(cipher, entry_keys[j], *entries[j], &e));
    out[known[j]] = std::move(e);
  }
  return out;
}

}  // namespace

BankSim::BankSim(storage::Engine* engine, const storage::PiiCipher* cipher,
                 const storage::Clock* clock, BankSimOptions options)
    : engine_(engine),
      cipher_(cipher),
      clock_(clock),
      options_(std::move(options)),
      rng_(options_.seed) {}

absl::StatusOr<std::unique_ptr<BankSim>> BankSim::Create(
    storage::Engine* engine, const storage::PiiCipher* cipher,
    const storage::Clock* clock, BankSimOptions options) {
  if (cipher == nullptr) {
    return absl::InvalidArgumentError("the bank needs its own data keys");
  }
  if (options.transient_failure_rate < 0 ||
      options.transient_failure_rate > 1) {
    return absl::InvalidArgumentError(
        "transient_failure_rate must be in [0, 1]");
  }
  std::unique_ptr<BankSim> sim(
      new BankSim(engine, cipher, clock, std::move(options)));
  ASSIGN_OR_RETURN(sim->next_reference_,
                   engine->GetCounter(Table::kCounters, kReferenceCounter));
  return sim;
}

uint64_t BankSim::processed() const {
  std::lock_guard<std::mutex> l(mu_);
  return processed_;
}

bool BankSim::RollTransient() {
  if (options_.transient_failure_rate <= 0) return false;
  std::uniform_real_distribution<double> d(0, 1);
  return d(rng_) < options_.transient_failure_rate;
}

bank::v1::StatementEntry BankSim::Decide(
    const bank::v1::Instruction& in, const google::protobuf::Timestamp& now) {
  bank::v1::StatementEntry e;
  e.set_instruction_id(in.instruction_id());
  e.set_account(in.account());
  e.set_account_name(in.account_name());
  e.set_batch_reference(in.batch_reference());
  e.set_entitlement_reference(in.entitlement_reference());
  e.set_amount_fen(in.amount_fen());
  *e.mutable_booked_at() = now;
  bank::v1::RejectReason reason = bank::v1::REJECT_REASON_UNSPECIFIED;
  if (in.amount_fen() <= 0) {
    reason = bank::v1::REJECT_REASON_INVALID_AMOUNT;
  } else if (!IsAccount(in.account())) {
    reason = bank::v1::REJECT_REASON_INVALID_ACCOUNT;
  } else if (options_.closed_accounts.count(in.account())) {
    reason = bank::v1::REJECT_REASON_ACCOUNT_CLOSED;
  } else if (options_.frozen_accounts.count(in.account())) {
    reason = bank::v1::REJECT_REASON_ACCOUNT_FROZEN;
  } else if (!options_.name_mismatch_marker.empty() &&
             in.account_name().find(options_.name_mismatch_marker) !=
                 std::string::npos) {
    reason = bank::v1::REJECT_REASON_NAME_MISMATCH;
  }
  if (reason != bank::v1::REJECT_REASON_UNSPECIFIED) {
    e.set_status(bank::v1::INSTRUCTION_STATUS_REJECTED);
    e.set_reject_reason(reason);
  } else {
    e.set_status(bank::v1::INSTRUCTION_STATUS_CREDITED);
    e.set_bank_reference(absl::StrFormat("BR%012d", ++next_reference_));
  }
  return e;
}

absl::StatusOr<bank::v1::SubmitInstructionsResponse> BankSim::Submit(
    const bank::v1::SubmitInstructionsRequest& request) {
  if (options_.latency > absl::ZeroDuration()) {
    std::this_thread::sleep_for(absl::ToChronoNanoseconds(options_.latency));
  }
  std::lock_guard<std::mutex> l(mu_);
  bool lose_response = false;
  if (RollTransient()) {
    if (rng_() % 2 == 0) {
      return absl::UnavailableError("simulated transient failure (before)");
    }
    lose_response = true;
  }
  for (int i = 0; i < request.instructions_size(); ++i) {
    const auto& in = request.instructions(i);
    if (in.instruction_id().empty() || in.instruction_id().size() > 128) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "instructions[%d].instruction_id must have 1..128 characters", i));
    }
    if (in.batch_reference().empty()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("instructions[%d].batch_reference is empty", i));
    }
    if (in.entitlement_reference().size() > 256) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "instructions[%d].entitlement_reference must have at most 256 "
          "characters",
          i));
    }
  }
  bank::v1::SubmitInstructionsResponse response;
  response.mutable_results()->Reserve(request.instructions_size());
  storage::WriteSet ws;
  std::unordered_map<std::string_view, bank::v1::StatementEntry> fresh;
  int64_t credited = 0;
  int64_t credited_amount = 0;
  const uint64_t reference_before = next_reference_;
  bool crash = false;
  std::vector<std::string_view> ids;
  ids.reserve(request.instructions_size());
  for (const auto& in : request.instructions()) {
    ids.push_back(in.instruction_id());
  }
  ASSIGN_OR_RETURN(std::vector<std::optional<bank::v1::StatementEntry>> stored,
                   LoadEntries(engine_, *cipher_, ids));
  // Every instruction of one call is booked at the same time.
  const absl::Time now = clock_->Now();
  const google::protobuf::Timestamp booked_at =
      google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
          absl::ToUnixNanos(now));
  const uint64_t booked_micros =
      static_cast<uint64_t>(std::max<int64_t>(0, absl::ToUnixMicros(now)));
  for (int i = 0; i < request.instructions_size(); ++i) {
    const auto& in = request.instructions(i);
    const bank::v1::StatementEntry* known = nullptr;
    if (auto it = fresh.find(in.instruction_id()); it != fresh.end()) {
      known = &it->second;
    } else if (stored[i].has_value()) {
      known = &*stored[i];
    }
    if (known != nullptr) {
      *response.add_results() = ToResult(*known);
      continue;
    }
    if (crash) {
      bank::v1::InstructionResult* r = response.add_results();
      r->set_instruction_id(in.instruction_id());
      r->set_status(bank::v1::INSTRUCTION_STATUS_RETRY);
      continue;
    }
    bank::v1::StatementEntry e = Decide(in, booked_at);
    if (e.status() == bank::v1::INSTRUCTION_STATUS_CREDITED) {
      ++credited;
      credited_amount += e.amount_fen();
    }
    ws.Put(Table::kPayouts, IndexKey(in.instruction_id()),
           in.batch_reference());
    std::string entry_key = EntryKey(in.batch_reference(), in.instruction_id());
    absl::StatusOr<std::string> sealed = SealEntry(*cipher_, entry_key, e);
    if (!sealed.ok()) {
      next_reference_ = reference_before;  // nothing was recorded
      processed_ -= fresh.size();
      return sealed.status();
    }
    ws.Put(Table::kPayoutItems, std::move(entry_key), *std::move(sealed));
    ws.Put(Table::kIndex, JournalKey(booked_micros, in.instruction_id()),
           in.batch_reference());
    *response.add_results() = ToResult(e);
    fresh.emplace(in.instruction_id(), std::move(e));
    ++processed_;
    if (options_.crash_after_instructions > 0 &&
        processed_ >= options_.crash_after_instructions) {
      crash = true;
    }
  }
  if (!ws.empty()) {
    ws.AddCounter(Table::kCounters, kReferenceCounter,
                  static_cast<int64_t>(next_reference_ - reference_before));
    ws.AddCounter(Table::kCounters, "banksim/credited_count", credited);
    ws.AddCounter(Table::kCounters, "banksim/credited_amount", credited_amount);
    auto committed = engine_->Commit(std::move(ws));
    if (!committed.ok()) {
      // Nothing was recorded: forget the references handed out.
      next_reference_ = reference_before;
      processed_ -= fresh.size();
      return committed.status();
    }
  }
  if (crash) {
    // Abrupt end, as a real crash: the credits are durable, the answer is lost.
    ::raise(SIGKILL);
    ::_exit(137);
  }
  if (lose_response) {
    return absl::UnavailableError(
        "simulated transient failure (response lost)");
  }
  return response;
}

absl::StatusOr<bank::v1::GetInstructionStatusResponse> BankSim::Status(
    const bank::v1::GetInstructionStatusRequest& request) {
  if (options_.latency > absl::ZeroDuration()) {
    std::this_thread::sleep_for(absl::ToChronoNanoseconds(options_.latency));
  }
  bank::v1::GetInstructionStatusResponse response;
  std::vector<std::string_view> ids(request.instruction_ids().begin(),
                                    request.instruction_ids().end());
  ASSIGN_OR_RETURN(std::vector<std::optional<bank::v1::StatementEntry>> stored,
                   LoadEntries(engine_, *cipher_, ids));
  for (int i = 0; i < request.instruction_ids_size(); ++i) {
    bank::v1::InstructionResult* r = response.add_results();
    if (!stored[i].has_value()) {
      r->set_instruction_id(request.instruction_ids(i));
      r->set_status(bank::v1::INSTRUCTION_STATUS_UNKNOWN);
      continue;
    }
    *r = ToResult(*stored[i]);
  }
  return response;
}

absl::Status BankSim::Statement(
    const std::string& batch_reference, size_t chunk,
    const std::function<bool(const bank::v1::GetStatementResponse&)>& emit) {
  const std::string prefix = KeyBuilder().Str(batch_reference).Build();
  bank::v1::GetStatementResponse page;
  int64_t credited = 0, credited_amount = 0, rejected = 0;
  bool stopped = false;
  absl::Status parse_status;
  RETURN_IF_ERROR(engine_->Scan(
      Table::kPayoutItems, prefix, storage::PrefixSuccessor(prefix),
      [&](std::string_view key, std::string_view value) {
        bank::v1::StatementEntry* e = page.add_entries();
        parse_status = OpenEntry(*cipher_, key, value, e);
        if (!parse_status.ok()) return false;
        if (e->status() == bank::v1::INSTRUCTION_STATUS_CREDITED) {
          ++credited;
          credited_amount += e->amount_fen();
        } else {
          ++rejected;
        }
        if (static_cast<size_t>(page.entries_size()) >= chunk) {
          if (!emit(page)) {
            stopped = true;
            return false;
          }
          page.Clear();
        }
        return true;
      }));
  RETURN_IF_ERROR(parse_status);
  if (stopped) return absl::CancelledError("statement stopped by the reader");
  page.set_last(true);
  page.set_credited_count(credited);
  page.set_credited_amount_fen(credited_amount);
  page.set_rejected_count(rejected);
  emit(page);
  return absl::OkStatus();
}

absl::StatusOr<bank::v1::ListInstructionsResponse> BankSim::List(
    const bank::v1::ListInstructionsRequest& request) {
  if (request.page_size() < 0 || request.page_size() > 10000) {
    return absl::InvalidArgumentError("page_size must be within 0..10000");
  }
  if (request.has_booked_since() &&
      (request.booked_since().seconds() < 0 ||
       request.booked_since().nanos() < 0 ||
       request.booked_since().nanos() > 999999999)) {
    return absl::InvalidArgumentError("booked_since is not a valid time");
  }
  const int page_size = request.page_size() == 0 ? 1000 : request.page_size();
  std::string lower;
  if (!request.page_token().empty()) {
    std::string raw;
    if (!absl::WebSafeBase64Unescape(request.page_token(), &raw) ||
        raw.empty()) {
      return absl::InvalidArgumentError("page_token is not a token of ours");
    }
    lower = raw;
    lower.push_back('\0');  // after the last entry of the previous page
  } else if (request.has_booked_since()) {
    const int64_t since =
        google::protobuf::util::TimeUtil::TimestampToMicroseconds(
            request.booked_since());
    lower = KeyBuilder()
                .U64(static_cast<uint64_t>(std::max<int64_t>(0, since)))
                .Build();
  }
  std::vector<std::string> ids, batches;
  std::string last_key;
  bool more = false;
  RETURN_IF_ERROR(
      engine_->Scan(Table::kIndex, lower, "",
                    [&](std::string_view key, std::string_view value) {
                      if (static_cast<int>(ids.size()) >= page_size) {
                        more = true;
                        return false;
                      }
                      storage::KeyReader r(key);
                      r.U64();
                      std::optional<std::string> id = r.Str();
                      if (!id.has_value()) return true;
                      ids.push_back(*std::move(id));
                      batches.emplace_back(value);
                      last_key.assign(key.data(), key.size());
                      return true;
                    }));
  std::vector<std::string> entry_keys;
  for (size_t i = 0; i < ids.size(); ++i) {
    entry_keys.push_back(EntryKey(batches[i], ids[i]));
  }
  std::vector<std::string_view> keys(entry_keys.begin(), entry_keys.end());
  ASSIGN_OR_RETURN(std::vector<std::optional<std::string>> entries,
                   engine_->MultiGet(Table::kPayoutItems, keys));
  bank::v1::ListInstructionsResponse response;
  for (size_t i = 0; i < entries.size(); ++i) {
    bank::v1::StatementEntry* e = response.add_entries();
    if (!entries[i].has_value()) {
      return absl::DataLossError("statement entry missing");
    }
    RETURN_IF_ERROR(OpenEntry(*cipher_, entry_keys[i], *entries[i], e));
    // Entries booked before the batch reference was kept in them.
    if (e->batch_reference().empty()) e->set_batch_reference(batches[i]);
  }
  if (more) {
    std::string token;
    absl::WebSafeBase64Escape(last_key, &token);
    response.set_next_page_token(std::move(token));
  }
  return response;
}

}  // namespace ssc::banksim
