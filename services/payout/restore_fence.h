#pragma once

// The payout fence after a restore. A restore rolls the store back to its
// backup point while the bank keeps what it executed since: batches the
// restore forgot may have paid people. Until the bank's record since the
// backup point is in the store, approving or executing a batch could pay
// those people again, so the restored store is fenced (storage::
// MarkRestored writes the fence) and payouts wait for the import below:
//
//   - every instruction the bank lists (bank.v1 ListInstructions, from the
//     fence's bank_since) that belongs to a batch of the store (same batch
//     id and store incarnation) and whose item has no outcome here: the
//     item claims its entitlement, so the executor asks the bank for its
//     outcome before anything else can pay that entitlement;
//   - every other credited instruction (a batch the restore forgot): its
//     entitlement (bank.v1.Instruction.entitlement_reference) is claimed as
//     paid by the bank's instruction, and the programme's paid figure
//     counts its amount, so a later batch paying the same programme, period
//     and person gets DUPLICATE_ENTITLEMENT;
//   - then the fence is lifted, in the same durable, audited write.
//
// Thread-safe: the functions only read and write through the engine;
// BankRestoreImport::Run serializes itself with the fence's lock.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/common/caller.h"
#include "services/common/mutation.h"
#include "services/payout/bank_gateway.h"
#include "ssc/v1/admin.pb.h"
#include "storage/engine.h"
#include "storage/storage.pb.h"

namespace ssc::payout {

// The state named when payouts are refused: FENCED_AFTER_RESTORE.
inline constexpr char kFencedState[] = "FENCED_AFTER_RESTORE";

// FAILED_PRECONDITION naming FENCED_AFTER_RESTORE while the store is
// fenced; OK otherwise.
absl::Status CheckPayoutsNotFenced(storage::Engine& engine);

ssc::v1::RestoreFence ToPublicFence(const storage::RestoreFenceRecord& r);

// Audits the fence a restore raised (the restore ran offline, without the
// audit chain's context), once: sscd calls it on start.
absl::Status AuditRestoreFence(const common::StoreContext& ctx);

class BankRestoreImport {
 public:
  // `bank` may be null (no bank configured): Run then answers
  // FAILED_PRECONDITION. Not owned; must outlive the object.
  BankRestoreImport(common::StoreContext ctx, BankGateway* bank)
      : ctx_(ctx), bank_(bank) {}

  // AdminService.ReconcileBankAfterRestore.
  absl::StatusOr<ssc::v1::ReconcileBankAfterRestoreResponse> Run(
      const common::Caller& caller,
      const ssc::v1::ReconcileBankAfterRestoreRequest& req);

 private:
  common::StoreContext ctx_;
  BankGateway* bank_;
};

}  // namespace ssc::payout
