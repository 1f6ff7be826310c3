// Fuzz target: AdminService requests over a real store; see fuzz_store.h for
// the layout (byte 0 the RPC, byte 1 the role). The Import stream is given
// as a sequence of length-delimited ImportRequest messages and driven
// through the importer as the adapter drives it: Begin with the start
// message, the stored rejects, then Add for each line of each chunk, then
// Finish. Batches are small so that commits happen within one input.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "google/protobuf/io/coded_stream.h"
#include "services/ops/backup.h"
#include "services/ops/importer.h"
#include "tests/fuzz/fuzz_store.h"

namespace ssc::fuzz {
namespace {

const std::string kPrefix = "ssc.v1.AdminService/";

void Import(ops::Importer* importer, const common::Caller& caller,
            std::string_view bytes) {
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(bytes.data()),
      static_cast<int>(bytes.size()));
  std::vector<ssc::v1::ImportRequest> messages;
  for (uint32_t size = 0; in.ReadVarint32(&size);) {
    auto limit = in.PushLimit(static_cast<int>(size));
    if (!messages.emplace_back().ParseFromCodedStream(&in)) return;
    if (!in.ConsumedEntireMessage()) return;
    in.PopLimit(limit);
  }
  if (messages.empty() || !messages[0].has_start()) return;
  const ssc::v1::ImportStart& start = messages[0].start();
  const std::string method = kPrefix + "Import";
  auto session = importer->Begin(caller, start.import_id(), start.format(),
                                 start.csv_header());
  CheckClientError(method, session.status());
  if (!session.ok()) return;
  CheckClientError(method, importer->Rejects(start.import_id()).status());
  std::vector<ops::BatchResult> out;
  for (size_t m = 1; m < messages.size(); ++m) {
    // The adapter refuses these before they reach the importer.
    if (!messages[m].has_chunk()) return;
    const ssc::v1::ImportChunk& chunk = messages[m].chunk();
    if (chunk.first_line() == 0 && chunk.lines_size() > 0) return;
    for (int i = 0; i < chunk.lines_size(); ++i) {
      absl::Status s =
          (*session)->Add(chunk.first_line() + i, chunk.lines(i), &out);
      CheckClientError(method, s);
      if (!s.ok()) return;
    }
  }
  CheckClientError(method, (*session)->Finish(&out));
}

template <typename Req>
bool Parse(std::string_view bytes, Req* req) {
  return req->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

struct Target {
  Target() {
    ops::ImportOptions options;
    options.batch_rows = 4;
    options.threads = 1;
    options.bulk_load = false;
    importer =
        std::make_unique<ops::Importer>(store.ctx(), &store.regions(), "510524",
                                        store.cards()->observers(), options);
    ops::BackupOptions b;
    b.dir = store.dir() + "/backups";
    backups = std::make_unique<ops::BackupManager>(store.engine(), b);
    ops::Importer* im = importer.get();
    ops::BackupManager* bm = backups.get();
    std::map<std::string, Call> calls;
    calls["Import"] = [im](const common::Caller& c, std::string_view bytes) {
      Import(im, c, bytes);
    };
    calls["GetImportStatus"] = [im](const common::Caller&,
                                    std::string_view bytes) {
      ssc::v1::GetImportStatusRequest req;
      if (!Parse(bytes, &req) || req.import_id().empty()) return;
      CheckClientError(kPrefix + "GetImportStatus",
                       im->Status(req.import_id()).status());
    };
    calls["ListBackups"] = [bm](const common::Caller&, std::string_view) {
      CheckClientError(kPrefix + "ListBackups", bm->List().status());
    };
    calls["VerifyBackup"] = [bm](const common::Caller&,
                                 std::string_view bytes) {
      ssc::v1::VerifyBackupRequest req;
      if (!Parse(bytes, &req)) return;
      CheckClientError(kPrefix + "VerifyBackup",
                       bm->Verify(req.backup_id()).status());
    };
    fuzzer = std::make_unique<ServiceFuzzer>(
        "ssc.v1.AdminService", std::move(calls),
        std::map<std::string, std::string>{
            {"CreateBackup",
             "no request field but request_id; each call copies the store"},
            {"RotateDataKey",
             "one number besides request_id; each call rewrites the key "
             "file (validation tested in tests/ops/key_rotation_test)"},
            {"GetReencryptionStatus", "no request field"},
            {"ReconcileBankAfterRestore",
             "no request field but request_id; needs a restored store and "
             "the agent bank (tests/payout/restore_fence_test)"},
        });
  }

  FuzzStore store;
  std::unique_ptr<ops::Importer> importer;
  std::unique_ptr<ops::BackupManager> backups;
  std::unique_ptr<ServiceFuzzer> fuzzer;
};

}  // namespace
}  // namespace ssc::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ssc::fuzz::Target target;
  target.fuzzer->Run(data, size);
  return 0;
}
