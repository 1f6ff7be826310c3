#include "services/ops/key_rotation.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "services/common/errors.h"
#include "storage/status_macros.h"

namespace ssc::ops {
namespace {

constexpr char kRotateMethod[] = "ssc.v1.AdminService/RotateDataKey";

void SetTime(int64_t micros, google::protobuf::Timestamp* ts) {
  ts->set_seconds(micros / 1000000);
  ts->set_nanos(static_cast<int32_t>(micros % 1000000) * 1000);
}

}  // namespace

absl::StatusOr<ssc::v1::RotateDataKeyResponse> KeyRotation::Rotate(
    const common::Caller& caller, const ssc::v1::RotateDataKeyRequest& req) {
  ssc::v1::RotateDataKeyResponse out;
  absl::Status s = common::RunMutation(
      ctx_, common::MutationCall{caller, kRotateMethod, req.request_id(), req},
      {storage::ReencryptionJob::kLockKey}, &out,
      [&](storage::WriteSet& ws, google::protobuf::Message*,
          std::string* target) -> absl::Status {
        const uint32_t previous = ctx_.cipher->active_key_id();
        *target = absl::StrCat("data key ", previous);
        if (req.expected_active_key_id() != 0 &&
            req.expected_active_key_id() != previous) {
          return common::WrongState("the active data key",
                                    absl::StrCat(previous),
                                    absl::StrCat("expected_active_key_id is ",
                                                 req.expected_active_key_id()));
        }
        // The key file is rewritten last, once nothing else can fail
        // before the commit. Should the commit still fail, the job sees an
        // active key that is not its own and starts re-encrypting for it.
        ASSIGN_OR_RETURN(uint32_t active, ctx_.cipher->RotateDataKey());
        const storage::ReencryptionCheckpoint fresh =
            job_->NewJob(previous, active, ctx_.clock->Now());
        ws.Put(storage::Table::kMeta, storage::ReencryptionJob::CheckpointKey(),
               fresh.SerializeAsString());
        *target = absl::StrCat("data key ", active);
        out.set_active_key_id(active);
        out.set_previous_key_id(previous);
        *out.mutable_status() = ToProto(fresh);
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  job_->Wake();
  return out;
}

absl::StatusOr<ssc::v1::ReencryptionStatus> KeyRotation::Status() const {
  ASSIGN_OR_RETURN(std::optional<storage::ReencryptionCheckpoint> cp,
                   job_->Load());
  if (!cp.has_value()) {
    ssc::v1::ReencryptionStatus out;
    out.set_active_key_id(ctx_.cipher->active_key_id());
    for (uint32_t id : ctx_.cipher->data_key_ids()) out.add_key_ids(id);
    return out;
  }
  return ToProto(*cp);
}

ssc::v1::ReencryptionStatus KeyRotation::ToProto(
    const storage::ReencryptionCheckpoint& cp) const {
  ssc::v1::ReencryptionStatus out;
  out.set_started(true);
  out.set_active_key_id(cp.active_key_id());
  out.set_previous_key_id(cp.previous_key_id());
  SetTime(cp.started_micros(), out.mutable_started_at());
  out.set_pass(cp.pass());
  out.set_current_kind(cp.kind());
  out.set_done(cp.done());
  if (cp.done()) SetTime(cp.finished_micros(), out.mutable_finished_at());
  out.set_last_error(cp.last_error());
  // Kinds before the current one are done in this pass.
  bool before_current = !cp.kind().empty();
  for (const storage::ReencryptionKind& k : job_->kinds()) {
    if (k.name == cp.kind()) before_current = false;
    ssc::v1::ReencryptionKindProgress* p = out.add_kinds();
    p->set_kind(k.name);
    p->set_done(cp.done() || before_current);
    for (const storage::ReencryptionKindProgress& q : cp.kinds()) {
      if (q.kind() != k.name) continue;
      p->set_records_scanned(q.scanned());
      p->set_records_reencrypted(q.reencrypted());
    }
  }
  std::set<uint32_t> in_use;
  for (const auto& [id, n] : cp.old_values_this_pass()) in_use.insert(id);
  if (!cp.done()) {
    for (const auto& [id, n] : cp.old_values_last_pass()) in_use.insert(id);
  }
  for (uint32_t id : in_use) out.add_key_ids_in_use(id);
  for (uint32_t id : ctx_.cipher->data_key_ids()) {
    out.add_key_ids(id);
    if (cp.done() && id != cp.active_key_id()) out.add_unused_key_ids(id);
  }
  return out;
}

}  // namespace ssc::ops
