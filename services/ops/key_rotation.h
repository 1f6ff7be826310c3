#pragma once

// Data-key rotation for operators (AdminService.RotateDataKey and
// GetReencryptionStatus): rotates the PII data key through the one mutation
// path (request_id, audit, one atomic write that also starts the
// re-encryption job) and reports the job's progress from its checkpoint.
// Thread-safe.

#include "absl/status/statusor.h"
#include "services/common/caller.h"
#include "services/common/mutation.h"
#include "ssc/v1/admin.pb.h"
#include "storage/reencryption.h"

namespace ssc::ops {

class KeyRotation {
 public:
  // Not owned; must outlive this. `ctx.cipher` is the key file rotated.
  KeyRotation(common::StoreContext ctx, storage::ReencryptionJob* job)
      : ctx_(ctx), job_(job) {}

  absl::StatusOr<ssc::v1::RotateDataKeyResponse> Rotate(
      const common::Caller& caller, const ssc::v1::RotateDataKeyRequest& req);
  absl::StatusOr<ssc::v1::ReencryptionStatus> Status() const;

 private:
  // The status shown for a checkpoint.
  ssc::v1::ReencryptionStatus ToProto(
      const storage::ReencryptionCheckpoint& cp) const;

  common::StoreContext ctx_;
  storage::ReencryptionJob* job_;
};

}  // namespace ssc::ops
