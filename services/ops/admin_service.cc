#include "services/ops/admin_service.h"

#include <malloc.h>

#include "absl/strings/str_cat.h"
#include "services/common/errors.h"
#include "services/common/grpc/request_decoding.h"
#include "services/common/metrics.h"
#include "services/common/mutation.h"
#include "storage/status_macros.h"

namespace ssc::ops {
namespace {

constexpr char kService[] = "ssc.v1.AdminService/";

std::string Method(std::string_view name) {
  return absl::StrCat(kService, absl::string_view(name.data(), name.size()));
}

ssc::v1::ImportResponse ToProto(std::string_view import_id,
                                const ImportTotals& t,
                                const std::vector<RejectedRow>& rejects) {
  ssc::v1::ImportResponse r;
  r.set_import_id(std::string(import_id));
  r.set_resume_after_line(t.resume_after_line);
  r.set_accepted_rows(t.accepted);
  r.set_rejected_rows(t.rejected);
  r.set_skipped_rows(t.skipped);
  r.set_done(t.done);
  for (const RejectedRow& j : rejects) {
    ssc::v1::RowReject* x = r.add_rejects();
    x->set_line(j.line);
    x->set_field(j.field);
    x->set_reason(j.reason);
  }
  return r;
}

void CountRows(const ImportTotals& before, const ImportTotals& after) {
  common::MetricsRegistry& m = common::Metrics();
  constexpr char kHelp[] = "Register rows imported, by outcome.";
  m.GetCounter("ssc_import_rows_total", kHelp, {{"outcome", "accepted"}})
      ->Add(after.accepted - before.accepted);
  m.GetCounter("ssc_import_rows_total", kHelp, {{"outcome", "rejected"}})
      ->Add(after.rejected - before.rejected);
  m.GetCounter("ssc_import_rows_total", kHelp, {{"outcome", "skipped"}})
      ->Add(after.skipped - before.skipped);
}

}  // namespace

grpc::Status AdminServiceImpl::Import(
    grpc::ServerContext* ctx,
    grpc::ServerReaderWriter<ssc::v1::ImportResponse, ssc::v1::ImportRequest>*
        stream) {
  ssc::v1::ImportRequest first;
  const bool got_first = stream->Read(&first);
  // An import holds two batches of rows with their records and table
  // files in memory, and glibc keeps such freed memory in the process (a
  // million-row import left sscd at 0.9 GB, 0.43 GB after the trim). Given
  // back once the import ends, so that the service returns to its usual
  // footprint.
  struct TrimAfter {
    ~TrimAfter() { malloc_trim(0); }
  } trim_after;
  return runner_->RunBody(
      ctx, Method("Import"), first,
      [&](const common::Caller& caller) -> absl::Status {
        if (!got_first || !first.has_start()) {
          return common::InvalidField("start",
                                      "the first message must be ImportStart");
        }
        const ssc::v1::ImportStart& start = first.start();
        // A rerun right after the client was killed takes over this run
        // once its call is cancelled, without waiting for this handler.
        ASSIGN_OR_RETURN(
            std::unique_ptr<ImportSession> session,
            importer_->Begin(caller, start.import_id(), start.format(),
                             start.csv_header(),
                             [ctx] { return ctx->IsCancelled(); }));
        ASSIGN_OR_RETURN(std::vector<RejectedRow> stored,
                         importer_->Rejects(start.import_id()));
        if (!stream->Write(
                ToProto(start.import_id(), session->totals(), stored))) {
          return absl::CancelledError("the client went away");
        }
        ImportTotals last = session->totals();
        std::vector<BatchResult> out;
        auto send = [&]() -> absl::Status {
          for (const BatchResult& b : out) {
            CountRows(last, b.totals);
            last = b.totals;
            if (!stream->Write(
                    ToProto(start.import_id(), b.totals, b.rejects))) {
              return absl::CancelledError("the client went away");
            }
          }
          out.clear();
          return absl::OkStatus();
        };
        ssc::v1::ImportRequest msg;
        while (stream->Read(&msg)) {
          if (!msg.has_chunk()) {
            return common::InvalidField("chunk",
                                        "messages after the start are chunks");
          }
          const ssc::v1::ImportChunk& chunk = msg.chunk();
          if (chunk.first_line() == 0 && chunk.lines_size() > 0) {
            return common::InvalidField("chunk.first_line",
                                        "lines are numbered from 1");
          }
          for (int i = 0; i < chunk.lines_size(); ++i) {
            RETURN_IF_ERROR(
                session->Add(chunk.first_line() + i, chunk.lines(i), &out));
          }
          RETURN_IF_ERROR(send());
          if (ctx->IsCancelled()) {
            return absl::CancelledError("call cancelled by the client");
          }
        }
        // A chunk that could not be decoded is not the end of the file.
        RETURN_IF_ERROR(grpc_common::TakeDecodeError(msg.GetDescriptor()));
        // A client that went away mid-file did not send the rest of the
        // last person's rows: the batches already committed stay, what is
        // pending is dropped, and the file's rerun resumes after the
        // checkpoint. Finishing here would store that person with only the
        // rows received and refuse the others on the rerun.
        if (ctx->IsCancelled()) {
          return absl::CancelledError("call cancelled by the client");
        }
        RETURN_IF_ERROR(session->Finish(&out));
        return send();
      });
}

grpc::Status AdminServiceImpl::GetImportStatus(
    grpc::ServerContext* ctx, const ssc::v1::GetImportStatusRequest* req,
    ssc::v1::GetImportStatusResponse* resp) {
  return runner_->Run(
      ctx, Method("GetImportStatus"), *req, resp,
      [&](const common::Caller&, const ssc::v1::GetImportStatusRequest& r)
          -> absl::StatusOr<ssc::v1::GetImportStatusResponse> {
        if (r.import_id().empty()) {
          return common::InvalidField("import_id", "is required");
        }
        ASSIGN_OR_RETURN(ImportTotals t, importer_->Status(r.import_id()));
        ssc::v1::GetImportStatusResponse out;
        *out.mutable_status() = ToProto(r.import_id(), t, {});
        return out;
      });
}

grpc::Status AdminServiceImpl::CreateBackup(
    grpc::ServerContext* ctx, const ssc::v1::CreateBackupRequest* req,
    ssc::v1::CreateBackupResponse* resp) {
  // Through the mutation path like every mutating RPC: a retry with the
  // same request_id answers the backup made by the first call instead of
  // making another one (a client retrying after a timeout must not fill
  // the backup directory, nor push the backups it meant to keep out of
  // retention).
  return runner_->RunBody(
      ctx, Method("CreateBackup"), *req,
      [&](const common::Caller& caller) -> absl::Status {
        return common::RunMutation(
            runner_->store(),
            {caller, Method("CreateBackup"), req->request_id(), *req},
            {"backup"}, resp,
            [&](storage::WriteSet&, google::protobuf::Message* response,
                std::string* target) -> absl::Status {
              absl::StatusOr<ssc::v1::BackupInfo> info = backups_->Create();
              common::Metrics()
                  .GetCounter("ssc_backups_total",
                              "Backups attempted, by outcome.",
                              {{"outcome", info.ok() ? "ok" : "failed"}})
                  ->Add();
              if (!info.ok()) return info.status();
              *target = absl::StrCat("backup ", info->backup_id());
              common::Metrics()
                  .GetGauge("ssc_backup_last_success_timestamp_seconds",
                            "Unix time of the last successful backup.")
                  ->Set(static_cast<double>(info->created_at().seconds()));
              *static_cast<ssc::v1::CreateBackupResponse*>(response)
                   ->mutable_backup() = *std::move(info);
              return absl::OkStatus();
            });
      });
}

grpc::Status AdminServiceImpl::ListBackups(
    grpc::ServerContext* ctx, const ssc::v1::ListBackupsRequest* req,
    ssc::v1::ListBackupsResponse* resp) {
  return runner_->Run(
      ctx, Method("ListBackups"), *req, resp,
      [&](const common::Caller&, const ssc::v1::ListBackupsRequest&) {
        return backups_->List();
      });
}

grpc::Status AdminServiceImpl::VerifyBackup(
    grpc::ServerContext* ctx, const ssc::v1::VerifyBackupRequest* req,
    ssc::v1::VerifyBackupResponse* resp) {
  return runner_->Run(
      ctx, Method("VerifyBackup"), *req, resp,
      [&](const common::Caller&, const ssc::v1::VerifyBackupRequest& r) {
        return backups_->Verify(r.backup_id());
      });
}

grpc::Status AdminServiceImpl::RotateDataKey(
    grpc::ServerContext* ctx, const ssc::v1::RotateDataKeyRequest* req,
    ssc::v1::RotateDataKeyResponse* resp) {
  return runner_->Run(
      ctx, Method("RotateDataKey"), *req, resp,
      [&](const common::Caller& caller, const ssc::v1::RotateDataKeyRequest& r)
          -> absl::StatusOr<ssc::v1::RotateDataKeyResponse> {
        if (key_rotation_ == nullptr) {
          return absl::UnimplementedError("data-key rotation is not set up");
        }
        return key_rotation_->Rotate(caller, r);
      });
}

grpc::Status AdminServiceImpl::GetReencryptionStatus(
    grpc::ServerContext* ctx, const ssc::v1::GetReencryptionStatusRequest* req,
    ssc::v1::GetReencryptionStatusResponse* resp) {
  return runner_->Run(
      ctx, Method("GetReencryptionStatus"), *req, resp,
      [&](const common::Caller&, const ssc::v1::GetReencryptionStatusRequest&)
          -> absl::StatusOr<ssc::v1::GetReencryptionStatusResponse> {
        if (key_rotation_ == nullptr) {
          return absl::UnimplementedError("data-key rotation is not set up");
        }
        ssc::v1::GetReencryptionStatusResponse out;
        ASSIGN_OR_RETURN(*out.mutable_status(), key_rotation_->Status());
        return out;
      });
}

grpc::Status AdminServiceImpl::ReconcileBankAfterRestore(
    grpc::ServerContext* ctx,
    const ssc::v1::ReconcileBankAfterRestoreRequest* req,
    ssc::v1::ReconcileBankAfterRestoreResponse* resp) {
  return runner_->Run(
      ctx, Method("ReconcileBankAfterRestore"), *req, resp,
      [&](const common::Caller& caller,
          const ssc::v1::ReconcileBankAfterRestoreRequest& r)
          -> absl::StatusOr<ssc::v1::ReconcileBankAfterRestoreResponse> {
        if (restore_import_ == nullptr) {
          return common::WrongState("payout_bank_address", "NOT_CONFIGURED",
                                    "this sscd cannot reach the bank");
        }
        return restore_import_->Run(caller, r);
      });
}

}  // namespace ssc::ops
