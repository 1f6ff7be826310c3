// sscctl import / backup: the operations commands (compiled into sscctl).
//
//   sscctl import --file register.csv [--rejects register.csv.rejects]
//   sscctl backup create | list | verify --id N
//   sscctl backup restore --backup-dir D [--id N] --data-dir D   (offline)
//   sscctl data-key rotate [--expected-active-key-id N] | status

#include "services/ops/sscctl_ops.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "grpcpp/grpcpp.h"
#include "services/ops/backup.h"
#include "ssc/v1/admin.grpc.pb.h"

namespace ssc::ops {
namespace {

using sscctl::GlobalOptions;
using sscctl::kExitCheckFailed;
using sscctl::kExitOk;
using sscctl::kExitUsage;
using sscctl::Printer;

std::string Hex(const unsigned char* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += d[p[i] >> 4];
    out += d[p[i] & 15];
  }
  return out;
}

// SHA-256 (hex) and line count of a file, reading it once.
bool HashFile(const std::string& path, std::string* hex, uint64_t* lines) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 20);
  uint64_t n = 0;
  char last = '\n';
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize got = in.gcount();
    if (got <= 0) break;
    EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(got));
    for (std::streamsize i = 0; i < got; ++i) n += buf[i] == '\n';
    last = buf[got - 1];
  }
  if (last != '\n') ++n;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  *hex = Hex(md, len);
  *lines = n;
  return true;
}

std::string Duration(double seconds) {
  if (seconds < 0 || seconds > 1e7) return "--:--";
  const int s = static_cast<int>(seconds);
  return absl::StrFormat("%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
}

// A progress bar on a terminal; plain lines every 5 s otherwise.
class Progress {
 public:
  Progress(uint64_t total, uint64_t start)
      : total_(total),
        start_line_(start),
        tty_(::isatty(STDERR_FILENO) == 1),
        t0_(std::chrono::steady_clock::now()),
        last_(t0_) {}

  void Update(uint64_t line, uint64_t rejected, bool force = false) {
    const auto now = std::chrono::steady_clock::now();
    const double since_last =
        std::chrono::duration<double>(now - last_).count();
    if (!force && since_last < (tty_ ? 0.2 : 5.0)) return;
    last_ = now;
    const double elapsed = std::chrono::duration<double>(now - t0_).count();
    const double done = static_cast<double>(line - start_line_);
    const double rate = elapsed > 0 ? done / elapsed : 0;
    const double left = static_cast<double>(total_ > line ? total_ - line : 0);
    const double eta = rate > 0 ? left / rate : -1;
    const double frac = total_ > 0 ? static_cast<double>(line) / total_ : 1;
    if (tty_) {
      const int width = 30;
      const int fill = static_cast<int>(frac * width);
      std::string bar(fill, '=');
      if (fill < width) bar += '>';
      bar.resize(width, ' ');
      std::fprintf(
          stderr,
          "\r[%s] %3.0f%% %llu/%llu lines  %.0f rows/s  ETA %s  "
          "rejected %llu ",
          bar.c_str(), frac * 100, static_cast<unsigned long long>(line),
          static_cast<unsigned long long>(total_), rate, Duration(eta).c_str(),
          static_cast<unsigned long long>(rejected));
      if (force) std::fprintf(stderr, "\n");
    } else {
      std::fprintf(stderr,
                   "import: %llu/%llu lines (%.0f%%), %.0f rows/s, ETA %s, "
                   "rejected %llu\n",
                   static_cast<unsigned long long>(line),
                   static_cast<unsigned long long>(total_), frac * 100, rate,
                   Duration(eta).c_str(),
                   static_cast<unsigned long long>(rejected));
    }
    std::fflush(stderr);
  }

 private:
  uint64_t total_;
  uint64_t start_line_;
  bool tty_;
  std::chrono::steady_clock::time_point t0_, last_;
};

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

class ImportRunnable final : public sscctl::Runnable {
 public:
  explicit ImportRunnable(CLI::App& parent) {
    app_ = parent.add_subcommand(
        "import",
        "import a card register (CSV or JSON lines, deploy/import-format.md); "
        "resumes after a crash; exit 1 when rows were rejected");
    app_->add_option("--file", file_, "the register file")->required();
    app_->add_option("--format", format_,
                     "csv or jsonl (default: from the file name)");
    app_->add_option("--rejects", rejects_,
                     "reject file (default: <file>.rejects.csv)");
    app_->add_option("--chunk-lines", chunk_, "lines per message")
        ->capture_default_str();
  }
  CLI::App* app() const override { return app_; }

  int Run(const GlobalOptions& global) override {
    Printer printer(global.json);
    ssc::v1::ImportFormat format;
    if (format_.empty()) {
      format_ = absl::EndsWith(file_, ".csv") ? "csv" : "jsonl";
    }
    if (format_ == "csv") {
      format = ssc::v1::IMPORT_FORMAT_CSV;
    } else if (format_ == "jsonl" || format_ == "json") {
      format = ssc::v1::IMPORT_FORMAT_JSON_LINES;
    } else {
      std::cerr << "sscctl: --format must be csv or jsonl\n";
      return kExitUsage;
    }
    std::string import_id;
    uint64_t total = 0;
    if (!HashFile(file_, &import_id, &total)) {
      std::cerr << "sscctl: cannot read " << file_ << "\n";
      return kExitUsage;
    }
    if (rejects_.empty()) rejects_ = file_ + ".rejects.csv";
    std::ifstream in(file_, std::ios::binary);
    std::string header;
    uint64_t line_no = 0;
    if (format == ssc::v1::IMPORT_FORMAT_CSV) {
      std::getline(in, header);
      line_no = 1;
    }
    auto channel = sscctl::OpenChannel(global.connection);
    if (!channel.ok()) {
      std::cerr << "sscctl: " << channel.status().message() << "\n";
      return kExitUsage;
    }
    auto ctx = sscctl::NewCallContext(global.connection);
    // The import may take long: no deadline beyond the connection's own.
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::hours(48));
    ssc::v1::AdminService::Stub stub(*channel);
    auto stream = stub.Import(ctx.get());
    ssc::v1::ImportRequest start;
    start.mutable_start()->set_import_id(import_id);
    start.mutable_start()->set_format(format);
    start.mutable_start()->set_csv_header(header);
    stream->Write(start);
    ssc::v1::ImportResponse first;
    if (!stream->Read(&first)) return printer.PrintRpcError(stream->Finish());
    std::ofstream rej(rejects_, std::ios::trunc);
    rej << "line,field,reason\n";
    for (const auto& r : first.rejects()) {
      rej << r.line() << "," << CsvField(r.field()) << ","
          << CsvField(r.reason()) << "\n";
    }
    if (first.resume_after_line() > 0) {
      std::cerr << "import " << import_id.substr(0, 12)
                << ": resuming after line " << first.resume_after_line()
                << (first.done() ? " (done)" : "") << "\n";
    }
    // Answers are read on a second thread while lines are sent.
    ssc::v1::ImportResponse last = first;
    Progress progress(total, first.resume_after_line());
    std::thread reader([&] {
      ssc::v1::ImportResponse r;
      while (stream->Read(&r)) {
        for (const auto& x : r.rejects()) {
          rej << x.line() << "," << CsvField(x.field()) << ","
              << CsvField(x.reason()) << "\n";
        }
        rej.flush();
        progress.Update(r.resume_after_line(), r.rejected_rows());
        last = r;
      }
    });
    std::string text;
    ssc::v1::ImportRequest msg;
    bool ok = true;
    while (ok && std::getline(in, text)) {
      ++line_no;
      if (line_no <= first.resume_after_line()) continue;
      if (msg.chunk().lines_size() == 0)
        msg.mutable_chunk()->set_first_line(line_no);
      msg.mutable_chunk()->add_lines(std::move(text));
      if (msg.chunk().lines_size() >= chunk_) {
        ok = stream->Write(msg);
        msg.Clear();
      }
    }
    if (ok && msg.chunk().lines_size() > 0) ok = stream->Write(msg);
    stream->WritesDone();
    reader.join();
    grpc::Status st = stream->Finish();
    progress.Update(last.resume_after_line(), last.rejected_rows(), true);
    if (!st.ok()) return printer.PrintRpcError(st);
    last.clear_rejects();
    printer.PrintMessage(last);
    if (last.rejected_rows() > 0) {
      std::cerr << last.rejected_rows() << " rows rejected: see " << rejects_
                << "\n";
      return kExitCheckFailed;
    }
    return kExitOk;
  }

 private:
  CLI::App* app_;
  std::string file_, format_, rejects_;
  int chunk_ = 2000;
};

class BackupRunnable final : public sscctl::Runnable {
 public:
  BackupRunnable(CLI::App* group, const std::string& name,
                 const std::string& help)
      : name_(name) {
    app_ = group->add_subcommand(name, help);
    if (name == "verify") {
      app_->add_option("--id", id_, "backup id")->required();
    }
    if (name == "restore") {
      app_->add_option("--backup-dir", backup_dir_, "the backup directory")
          ->required();
      app_->add_option("--id", id_, "backup id (default: the latest)");
      app_->add_option("--data-dir", data_dir_,
                       "the NEW data directory (its db/ must not exist)")
          ->required();
    }
  }
  CLI::App* app() const override { return app_; }

  int Run(const GlobalOptions& global) override {
    Printer printer(global.json);
    if (name_ == "restore") {
      absl::Status s = RestoreStore(backup_dir_, id_, data_dir_);
      if (!s.ok()) {
        std::cerr << "sscctl: restore failed: " << s.message() << "\n";
        return kExitCheckFailed;
      }
      std::cerr << "restored into " << data_dir_
                << "/db; copy the key file from its own backup before "
                   "starting sscd (deploy/README.md); payouts stay fenced "
                   "until `sscctl admin reconcile-bank-after-restore`\n";
      return kExitOk;
    }
    auto channel = sscctl::OpenChannel(global.connection);
    if (!channel.ok()) {
      std::cerr << "sscctl: " << channel.status().message() << "\n";
      return kExitUsage;
    }
    ssc::v1::AdminService::Stub stub(*channel);
    auto ctx = sscctl::NewCallContext(global.connection);
    if (name_ == "create") {
      ctx->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::hours(6));
      ssc::v1::CreateBackupRequest req;
      req.set_request_id(global.request_id.empty() ? sscctl::NewRequestId()
                                                   : global.request_id);
      ssc::v1::CreateBackupResponse resp;
      grpc::Status st = stub.CreateBackup(ctx.get(), req, &resp);
      if (!st.ok()) return printer.PrintRpcError(st);
      printer.PrintMessage(resp);
      return kExitOk;
    }
    if (name_ == "list") {
      ssc::v1::ListBackupsResponse resp;
      grpc::Status st =
          stub.ListBackups(ctx.get(), ssc::v1::ListBackupsRequest(), &resp);
      if (!st.ok()) return printer.PrintRpcError(st);
      printer.PrintMessage(resp);
      return kExitOk;
    }
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::hours(6));
    ssc::v1::VerifyBackupRequest req;
    req.set_backup_id(id_);
    ssc::v1::VerifyBackupResponse resp;
    grpc::Status st = stub.VerifyBackup(ctx.get(), req, &resp);
    if (!st.ok()) return printer.PrintRpcError(st);
    printer.PrintMessage(resp);
    return resp.ok() ? kExitOk : kExitCheckFailed;
  }

 private:
  std::string name_;
  CLI::App* app_;
  uint32_t id_ = 0;
  std::string backup_dir_, data_dir_;
};

// A line per kind on stderr (stdout keeps the message or its JSON): how far
// the re-encryption after a data-key rotation is.
int ShowReencryption(const ssc::v1::ReencryptionStatus& s) {
  if (!s.started()) {
    std::cerr << "no data-key rotation yet; active key " << s.active_key_id()
              << "\n";
    return kExitOk;
  }
  std::cerr << absl::StrFormat(
      "re-encryption under key %d (was %d): %s, pass %d%s\n", s.active_key_id(),
      s.previous_key_id(), s.done() ? "DONE" : "running", s.pass(),
      s.current_kind().empty() ? "" : absl::StrCat(", at ", s.current_kind()));
  for (const ssc::v1::ReencryptionKindProgress& k : s.kinds()) {
    std::cerr << absl::StrFormat("  %-20s %12d scanned %12d re-encrypted%s\n",
                                 k.kind(), k.records_scanned(),
                                 k.records_reencrypted(),
                                 k.done() ? "  (pass done)" : "");
  }
  auto ids = [](const google::protobuf::RepeatedField<uint32_t>& v) {
    std::string out;
    for (uint32_t id : v) absl::StrAppend(&out, out.empty() ? "" : ",", id);
    return out.empty() ? std::string("none") : out;
  };
  std::cerr << "  old keys still in use: " << ids(s.key_ids_in_use()) << "\n";
  if (s.done()) {
    std::cerr << "  keys no stored value uses: " << ids(s.unused_key_ids())
              << " (keep them while backups taken before "
              << "the job finished are kept)\n";
  }
  if (!s.last_error().empty()) {
    std::cerr << "  last error (retrying): " << s.last_error() << "\n";
  }
  return kExitOk;
}

sscctl::ServiceCommands DataKeyCommands() {
  return {
      .name = "data-key",
      .help =
          "rotate the personal-data key and follow the re-encryption "
          "(ssc.v1.AdminService; admin role)",
      .service = ssc::v1::RotateDataKeyRequest::descriptor()
                     ->file()
                     ->FindServiceByName("AdminService"),
      .commands =
          {
              {"rotate", "RotateDataKey",
               "add a new active data key and re-encrypt stored personal "
               "data in the background",
               [](const google::protobuf::Message& m) {
                 ssc::v1::RotateDataKeyResponse r;
                 r.ParseFromString(m.SerializeAsString());
                 return ShowReencryption(r.status());
               }},
              {"status", "GetReencryptionStatus",
               "progress of the re-encryption after the last rotation",
               [](const google::protobuf::Message& m) {
                 ssc::v1::GetReencryptionStatusResponse r;
                 r.ParseFromString(m.SerializeAsString());
                 return ShowReencryption(r.status());
               }},
          },
  };
}

}  // namespace

void RegisterOpsCommands(CLI::App& app,
                         std::vector<std::unique_ptr<sscctl::Runnable>>& out) {
  out.push_back(std::make_unique<ImportRunnable>(app));
  CLI::App* backup = app.add_subcommand(
      "backup", "online backups (ssc.v1.AdminService; admin role)");
  backup->require_subcommand(1);
  out.push_back(std::make_unique<BackupRunnable>(
      backup, "create", "take a consistent backup now (with retention)"));
  out.push_back(
      std::make_unique<BackupRunnable>(backup, "list", "list the backups"));
  out.push_back(std::make_unique<BackupRunnable>(
      backup, "verify", "re-read a backup and check its checksums"));
  out.push_back(std::make_unique<BackupRunnable>(
      backup, "restore",
      "OFFLINE: restore a backup into a new data directory (local files)"));
  sscctl::RegisterService(app, DataKeyCommands(), out);
  // Table-driven AdminService commands (flags from the request message).
  sscctl::RegisterService(
      app,
      {.name = "admin",
       .help = "store administration (ssc.v1.AdminService; admin role)",
       .service = ssc::v1::ReconcileBankAfterRestoreRequest::descriptor()
                      ->file()
                      ->FindServiceByName("AdminService"),
       .commands = {{.name = "reconcile-bank-after-restore",
                     .method = "ReconcileBankAfterRestore",
                     .help = "after a restore: import the bank's record "
                             "since the backup point and lift the payout "
                             "fence"}}},
      out);
}

}  // namespace ssc::ops
