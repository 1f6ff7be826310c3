#include "storage/audit.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstdlib>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "storage/key_codec.h"
#include "storage/status_macros.h"
#include "storage/storage.pb.h"

namespace ssc::storage {
namespace {

constexpr char kAuditHeadKey[] = "audit_head";

std::string DeterministicBytes(const AuditRecord& r) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream sos(&out);
    google::protobuf::io::CodedOutputStream cos(&sos);
    cos.SetSerializationDeterministic(true);
    r.SerializeToCodedStream(&cos);
  }
  return out;
}

// SHA-256(prev_hash || record bytes without the hash).
std::string ChainHash(const AuditRecord& without_hash) {
  std::string data = without_hash.prev_hash();
  data += DeterministicBytes(without_hash);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // SHA-256 of an in-memory buffer cannot fail short of memory exhaustion.
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) !=
      1) {
    std::abort();
  }
  return std::string(reinterpret_cast<char*>(md), len);
}

AuditInput InputOf(const AuditRecord& r) {
  AuditInput in;
  in.caller = r.caller();
  in.role = r.role();
  in.operator_id = r.operator_id();
  in.rpc = r.rpc();
  in.target = r.target();
  in.request_id = r.request_id();
  in.code = r.code();
  in.message = r.message();
  return in;
}

struct Head {
  uint64_t sequence = 0;
  std::string hash;
};

absl::StatusOr<std::optional<Head>> ReadHead(Engine& engine) {
  ASSIGN_OR_RETURN(std::optional<std::string> v,
                   engine.Get(Table::kMeta, AuditHeadKey()));
  if (!v) return std::optional<Head>();
  if (v->size() != 8 + 32) {
    return absl::DataLossError(
        absl::StrCat("audit head in meta has ", v->size(), " bytes, want 40"));
  }
  return std::optional<Head>(Head{GetFixed64BE(*v), v->substr(8)});
}

}  // namespace

SealedAudit SealAudit(uint64_t sequence, absl::Time time,
                      const std::string& prev_hash, const AuditInput& in) {
  AuditRecord r;
  r.set_sequence(sequence);
  r.set_time_unix_nanos(absl::ToUnixNanos(time));
  r.set_caller(in.caller);
  r.set_role(in.role);
  r.set_operator_id(in.operator_id);
  r.set_rpc(in.rpc);
  r.set_target(in.target);
  r.set_request_id(in.request_id);
  r.set_code(in.code);
  r.set_message(in.message);
  r.set_prev_hash(prev_hash);
  SealedAudit sealed;
  sealed.hash = ChainHash(r);
  r.set_hash(sealed.hash);
  sealed.value = DeterministicBytes(r);
  sealed.key = KeyBuilder().U64(sequence).Build();
  return sealed;
}

std::string AuditHeadKey() { return kAuditHeadKey; }

std::string EncodeAuditHead(uint64_t sequence, const std::string& hash) {
  std::string v;
  PutFixed64BE(&v, sequence);
  v += hash;
  return v;
}

absl::StatusOr<AuditVerifyResult> VerifyAuditChain(Engine& engine) {
  AuditVerifyResult res;
  uint64_t expected = 1;
  std::string prev_hash;
  auto fail = [&res](uint64_t seq, std::string problem) {
    res.ok = false;
    res.first_bad_sequence = seq;
    res.problem = std::move(problem);
    return false;
  };
  RETURN_IF_ERROR(engine.Scan(
      Table::kAudit, "", "", [&](std::string_view key, std::string_view value) {
        if (key.size() != 8) {
          return fail(expected, "malformed audit key");
        }
        uint64_t seq = GetFixed64BE(key);
        if (seq != expected) {
          return fail(expected,
                      absl::StrCat("audit record ", expected,
                                   " is missing (next is ", seq, ")"));
        }
        AuditRecord r;
        if (!r.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          return fail(seq,
                      absl::StrCat("audit record ", seq, " does not parse"));
        }
        if (r.sequence() != seq) {
          return fail(seq, absl::StrCat("audit record ", seq,
                                        " carries sequence ", r.sequence()));
        }
        if (r.prev_hash() != prev_hash) {
          return fail(seq, absl::StrCat("audit record ", seq,
                                        " does not link to record ", seq - 1));
        }
        std::string stored_hash = r.hash();
        r.clear_hash();
        if (ChainHash(r) != stored_hash) {
          return fail(seq, absl::StrCat("audit record ", seq,
                                        " was modified (hash mismatch)"));
        }
        prev_hash = std::move(stored_hash);
        ++res.records;
        ++expected;
        return true;
      }));
  if (!res.problem.empty()) return res;

  ASSIGN_OR_RETURN(std::optional<Head> head, ReadHead(engine));
  const uint64_t last = expected - 1;
  if (!head) {
    if (last != 0) fail(last, "audit chain head is missing from meta");
  } else if (head->sequence != last) {
    fail(std::min(head->sequence, last) + 1,
         absl::StrCat("audit chain ends at ", last, " but its head is at ",
                      head->sequence, " (records deleted or added)"));
  } else if (head->hash != prev_hash) {
    fail(last,
         absl::StrCat("audit record ", last, " does not match the chain head"));
  }
  if (!res.problem.empty()) return res;
  res.ok = true;
  return res;
}

absl::StatusOr<std::vector<AuditRecordView>> ReadAudit(Engine& engine,
                                                       uint64_t from,
                                                       size_t limit) {
  std::vector<AuditRecordView> out;
  if (limit == 0) return out;
  absl::Status parse_status;
  RETURN_IF_ERROR(engine.Scan(
      Table::kAudit, KeyBuilder().U64(from).Build(), "",
      [&](std::string_view key, std::string_view value) {
        AuditRecord r;
        if (!r.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          parse_status = absl::DataLossError(absl::StrCat(
              "audit record ", key.size() == 8 ? GetFixed64BE(key) : 0,
              " does not parse"));
          return false;
        }
        AuditRecordView v;
        v.sequence = r.sequence();
        v.time = absl::FromUnixNanos(r.time_unix_nanos());
        v.input = InputOf(r);
        v.hash_hex = absl::BytesToHexString(r.hash());
        out.push_back(std::move(v));
        return out.size() < limit;
      }));
  RETURN_IF_ERROR(parse_status);
  return out;
}

}  // namespace ssc::storage
