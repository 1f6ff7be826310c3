#pragma once

// ssc.v1.AdminService over gRPC: bulk import (bidirectional stream),
// online backups, and lifting the payout fence after a restore. Every call goes
// through the RpcRunner (identity, the authorization table: admin only, audit
// of refusals); imports audit each committed batch, backups audit their
// creation. Thread-safe.

#include <grpcpp/grpcpp.h>

#include "services/common/grpc/rpc_runner.h"
#include "services/ops/backup.h"
#include "services/ops/importer.h"
#include "services/ops/key_rotation.h"
#include "services/payout/restore_fence.h"
#include "ssc/v1/admin.grpc.pb.h"

namespace ssc::ops {

class AdminServiceImpl final : public ssc::v1::AdminService::Service {
 public:
  // Not owned; must outlive the service.
  // `restore_import` may be null: ReconcileBankAfterRestore then answers
  // FAILED_PRECONDITION.
  AdminServiceImpl(Importer* importer, BackupManager* backups,
                   const grpc_common::RpcRunner* runner,
                   payout::BankRestoreImport* restore_import = nullptr)
      : importer_(importer),
        backups_(backups),
        runner_(runner),
        restore_import_(restore_import) {}

  grpc::Status Import(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<ssc::v1::ImportResponse, ssc::v1::ImportRequest>*
          stream) override;
  grpc::Status GetImportStatus(grpc::ServerContext* ctx,
                               const ssc::v1::GetImportStatusRequest* req,
                               ssc::v1::GetImportStatusResponse* resp) override;
  grpc::Status CreateBackup(grpc::ServerContext* ctx,
                            const ssc::v1::CreateBackupRequest* req,
                            ssc::v1::CreateBackupResponse* resp) override;
  grpc::Status ListBackups(grpc::ServerContext* ctx,
                           const ssc::v1::ListBackupsRequest* req,
                           ssc::v1::ListBackupsResponse* resp) override;
  grpc::Status VerifyBackup(grpc::ServerContext* ctx,
                            const ssc::v1::VerifyBackupRequest* req,
                            ssc::v1::VerifyBackupResponse* resp) override;
  grpc::Status RotateDataKey(grpc::ServerContext* ctx,
                             const ssc::v1::RotateDataKeyRequest* req,
                             ssc::v1::RotateDataKeyResponse* resp) override;
  grpc::Status GetReencryptionStatus(
      grpc::ServerContext* ctx,
      const ssc::v1::GetReencryptionStatusRequest* req,
      ssc::v1::GetReencryptionStatusResponse* resp) override;
  grpc::Status ReconcileBankAfterRestore(
      grpc::ServerContext* ctx,
      const ssc::v1::ReconcileBankAfterRestoreRequest* req,
      ssc::v1::ReconcileBankAfterRestoreResponse* resp) override;

  // Data-key rotation (not owned; must outlive the service). Set before
  // serving; without it the rotation RPCs answer UNIMPLEMENTED.
  void set_key_rotation(KeyRotation* key_rotation) {
    key_rotation_ = key_rotation;
  }

 private:
  Importer* importer_;
  BackupManager* backups_;
  const grpc_common::RpcRunner* runner_;
  KeyRotation* key_rotation_ = nullptr;
  payout::BankRestoreImport* restore_import_;
};

}  // namespace ssc::ops
