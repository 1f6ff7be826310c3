#pragma once

// The audit chain. Every audit record carries the SHA-256 of the previous
// record, and the chain head (last sequence and hash) is kept in kMeta in the
// same write, so editing, deleting or truncating any record is detected by
// VerifyAuditChain.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/engine.h"

namespace ssc::storage {

// A sealed record ready to store.
struct SealedAudit {
  std::string key;    // kAudit key
  std::string value;  // serialized record, including its hash
  std::string hash;   // 32 raw bytes
};

SealedAudit SealAudit(uint64_t sequence, absl::Time time,
                      const std::string& prev_hash, const AuditInput& in);

// Key and value of the chain head in kMeta.
std::string AuditHeadKey();
std::string EncodeAuditHead(uint64_t sequence, const std::string& hash);

struct AuditRecordView {
  uint64_t sequence = 0;
  absl::Time time;
  AuditInput input;
  std::string hash_hex;
};

struct AuditVerifyResult {
  bool ok = false;
  uint64_t records = 0;
  uint64_t first_bad_sequence = 0;  // 0 when ok
  std::string problem;              // empty when ok
};

absl::StatusOr<AuditVerifyResult> VerifyAuditChain(Engine& engine);

// Records with sequence >= from, at most limit.
absl::StatusOr<std::vector<AuditRecordView>> ReadAudit(Engine& engine,
                                                       uint64_t from,
                                                       size_t limit);

}  // namespace ssc::storage
