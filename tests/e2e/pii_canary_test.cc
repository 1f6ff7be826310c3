// Personal data never reaches disk in clear, on any path.
//
// Drives the real sscd (every service, mutual TLS) and the real ssc-banksim
// with distinctive canary persons (name, ID number with a valid check
// character, phone, address, bank account) through every RPC that takes or
// returns personal data, on success and on refusal, with the store's
// compression off; takes a backup; scans every file under sscd's data
// directory, the bank's, the backup directory, the logs and /metrics while
// the processes run (WALs), then again after a clean shutdown and an offline
// flush and compaction of both stores (table files; decoded as well). Any
// canary found fails the test with the file and offset.
//
// The RPC list comes from the descriptors of package ssc.v1: a method whose
// messages (transitively) have a personal-data field must have a driver
// below, every other method is listed in kCarriesNone; a method that is
// neither fails the test by name.
//
// The control: a canary placed in a field that is stored in clear (a
// payout programme's name) must be found by the same scan, in the WAL, in
// a table file and in the backup, so a scan that sees nothing proves
// something.
//
// Waiting for real processes needs polling; no assertion depends on timing.

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_reader.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "ssc/v1/admin.grpc.pb.h"
#include "ssc/v1/audit.grpc.pb.h"
#include "ssc/v1/card.grpc.pb.h"
#include "ssc/v1/ecard.grpc.pb.h"
#include "ssc/v1/payout.grpc.pb.h"
#include "ssc/v1/report.grpc.pb.h"
#include "storage/rocksdb_engine.h"
#include "tests/card/test_ids.h"
#include "tests/e2e/process.h"
#include "tests/e2e/sscd_harness.h"

namespace ssc::e2e {
namespace {

using namespace ssc::v1;  // NOLINT
using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

// ---------------------------------------------------------------------------
// Which fields carry personal data.
//
// By name: a field named id_number, name, phone, address, account or
// payee, or ending in _id_number, _name, _phone, _address, _account (e.g.
// holder_name, member_id_number, bank_account, account_name, payee_*).
// Free text that may quote a person (event details, audit targets and
// messages, import lines and their rejects, item outcomes) is listed by full
// name. A field whose name matches but holds no person's data is listed in
// kNotPersonal.
bool NameSaysPersonal(const std::string& n) {
  static const std::regex re(
      "^(.*_)?(id_number|name|phone|address|account)$|^payee.*|.*_payee.*");
  return std::regex_match(n, re);
}
const std::set<std::string> kFreeText = {
    "ssc.v1.Event.details_json",   "ssc.v1.AuditRecord.target",
    "ssc.v1.AuditRecord.message",  "ssc.v1.ImportChunk.lines",
    "ssc.v1.RowReject.reason",     "ssc.v1.PayoutItem.reason_detail",
    "ssc.v1.PayoutItemInput.note", "ssc.v1.PayoutItem.note",
    "ssc.v1.Mismatch.detail",
};
const std::set<std::string> kNotPersonal = {
    "ssc.v1.Region.name",          // a township's name
    "ssc.v1.Programme.name",       // a payout programme's name
    "ssc.v1.Figures.region_name",  // a report row's township
};

bool FieldIsPersonal(const FieldDescriptor* f) {
  if (kNotPersonal.count(f->full_name())) return false;
  return kFreeText.count(f->full_name()) || NameSaysPersonal(f->name());
}

// The first personal-data field reachable from `d` ("" if none).
std::string PersonalField(const Descriptor* d,
                          std::set<const Descriptor*>* seen) {
  if (!seen->insert(d).second) return "";
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (FieldIsPersonal(f)) return f->full_name();
    if (f->message_type() != nullptr) {
      std::string inner = PersonalField(f->message_type(), seen);
      if (!inner.empty()) return inner;
    }
  }
  return "";
}

// Methods whose messages carry no personal data. A new method goes here or
// gets a driver in Drivers().
const std::set<std::string> kCarriesNone = {
    "ssc.v1.CardService.CheckInvalidCard",
    "ssc.v1.AdminService.CreateBackup",
    "ssc.v1.AdminService.RotateDataKey",
    "ssc.v1.AdminService.GetReencryptionStatus",
    "ssc.v1.AdminService.ReconcileBankAfterRestore",
    "ssc.v1.AdminService.ListBackups",
    "ssc.v1.AdminService.VerifyBackup",
    "ssc.v1.AuditService.VerifyAuditChain",
    "ssc.v1.ECardService.ListChannelBindings",
    "ssc.v1.ECardService.UnbindChannel",
    "ssc.v1.ECardService.RemoveFamilyMember",
    "ssc.v1.ECardService.GenerateQrCode",
    "ssc.v1.ECardService.GetVerificationKeys",
    "ssc.v1.ECardService.RotateSigningKey",
    "ssc.v1.ECardService.GetStatusList",
    "ssc.v1.PayoutService.RegisterProgramme",
    "ssc.v1.PayoutService.GetProgramme",
    "ssc.v1.PayoutService.SetBudget",
    "ssc.v1.PayoutService.GetBudget",
    "ssc.v1.PayoutService.CreateBatch",
    "ssc.v1.PayoutService.SealBatch",
    "ssc.v1.PayoutService.SubmitBatch",
    "ssc.v1.PayoutService.ApproveBatch",
    "ssc.v1.PayoutService.RejectBatch",
    "ssc.v1.PayoutService.CancelBatch",
    "ssc.v1.PayoutService.PauseBatch",
    "ssc.v1.PayoutService.ResumeBatch",
    "ssc.v1.PayoutService.GetBatch",
    "ssc.v1.PayoutService.WatchBatch",
    "ssc.v1.ReportService.GetIndicators",
    "ssc.v1.ReportService.GetIndicatorSeries",
    "ssc.v1.ReportService.GetBreakdown",
    "ssc.v1.ReportService.SetResidentPopulation",
    "ssc.v1.ReportService.ListResidentPopulation",
    "ssc.v1.ReportService.SetTarget",
    "ssc.v1.ReportService.ListTargets",
    "ssc.v1.ReportService.GetPayoutFigures",
    "ssc.v1.ReportService.VerifyCounters",
};

// Every method of every ssc.v1 service, by full name.
std::vector<const google::protobuf::MethodDescriptor*> AllMethods() {
  std::vector<const google::protobuf::MethodDescriptor*> out;
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  // The pool knows a file once its code is linked in: one message of each
  // ssc.v1 file is named here, so all of them are.
  const Descriptor* anchors[] = {ApplyCardRequest::descriptor(),
                                 IssueECardRequest::descriptor(),
                                 CreateBatchRequest::descriptor(),
                                 GetIndicatorsRequest::descriptor(),
                                 ListAuditRecordsRequest::descriptor(),
                                 CreateBackupRequest::descriptor(),
                                 Person::descriptor()};
  for (const Descriptor* anchor : anchors) {
    const google::protobuf::FileDescriptor* fd =
        pool->FindFileByName(anchor->file()->name());
    EXPECT_NE(fd, nullptr) << anchor->file()->name();
    if (fd == nullptr) continue;
    EXPECT_EQ(fd->package(), "ssc.v1");
    for (int s = 0; s < fd->service_count(); ++s) {
      for (int m = 0; m < fd->service(s)->method_count(); ++m) {
        out.push_back(fd->service(s)->method(m));
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// The canary persons. Every value is distinctive: found anywhere on disk it
// can only come from this test.

struct Canary {
  std::string id_number, name, phone, address, bank_account;
};

Canary MakeCanary(int n, const std::string& given) {
  Canary c;
  c.id_number = card::testing::MakeId("510524", "19610203", 700 + n);
  c.name = "欧阳" + given;
  c.phone = absl::StrCat("1397531", 1000 + n * 111);
  c.address = absl::StrCat("叙永县金丝雀巷", 70 + n, "号翠鸟苑");
  c.bank_account = absl::StrCat("62179953", 10000000 + n * 1234567);
  return c;
}

// A: instant issuance, contact update, replacement (new name, new account).
// B: produced by the card bureau; family member of A; cancelled.
// G: paid once, then its account is closed at the bank (a FAILED item).
// C: imported. D: an imported row that is rejected. E: a payout item for a
// person without a card. F: an application refused (bad region).
const Canary kA = MakeCanary(1, "金丝雀甲");
const Canary kA2 =
    MakeCanary(2, "金丝雀乙");  // A's new contact / name / account
const Canary kB = MakeCanary(3, "金丝雀丙");
const Canary kBWrong = MakeCanary(4, "金丝雀丁");  // B's name misspelt
const Canary kC = MakeCanary(5, "金丝雀戊");
const Canary kD = MakeCanary(6, "金丝雀己");
const Canary kE = MakeCanary(7, "金丝雀庚");
const Canary kF = MakeCanary(8, "金丝雀辛");
const Canary kG = MakeCanary(9, "金丝雀壬");

// Written where the store keeps it in clear (a programme's name): the
// control that the scan sees what is there.
const std::string kControl = "控制金丝雀CTRL7319";

struct Needle {
  std::string what;  // e.g. "A id_number"
  std::string bytes;
};

// The needles of one person: each value as UTF-8, the parts masking hides
// (a name without its first character, an address past its first six), and
// the digits of the ID number before the check character.
void AddNeedles(const std::string& who, const Canary& c,
                std::vector<Needle>* out) {
  out->push_back({who + " id_number", c.id_number});
  out->push_back({who + " id_number digits", c.id_number.substr(0, 17)});
  out->push_back({who + " name", c.name});
  out->push_back({who + " name tail", c.name.substr(3)});  // "阳..." on
  out->push_back({who + " phone", c.phone});
  out->push_back({who + " address", c.address});
  out->push_back({who + " address tail", c.address.substr(6 * 3)});
  out->push_back({who + " bank_account", c.bank_account});
}

std::vector<Needle> AllNeedles() {
  std::vector<Needle> n;
  const std::vector<std::pair<std::string, const Canary*>> people = {
      {"A", &kA}, {"A2", &kA2}, {"B", &kB}, {"B-misspelt", &kBWrong},
      {"C", &kC}, {"D", &kD},   {"E", &kE}, {"F", &kF},
      {"G", &kG}};
  for (const auto& [who, c] : people) AddNeedles(who, *c, &n);
  return n;
}

// ---------------------------------------------------------------------------
// The scan.

struct Hit {
  std::string file;
  size_t offset;
  std::string what;
};

void FindIn(const std::string& label, const std::string& bytes,
            const std::vector<Needle>& needles, std::vector<Hit>* hits) {
  for (const Needle& n : needles) {
    size_t pos = bytes.find(n.bytes);
    if (pos != std::string::npos) hits->push_back({label, pos, n.what});
  }
}

std::string ReadAll(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every regular file under `dir` as raw bytes, and the decoded keys and
// values of its table files (offsets there count in the decoded stream).
void ScanDir(const std::string& dir, const std::vector<Needle>& needles,
             std::vector<Hit>* hits, std::set<std::string>* files) {
  if (!std::filesystem::exists(dir)) return;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string path = e.path().string();
    files->insert(path);
    FindIn(path, ReadAll(e.path()), needles, hits);
    if (e.path().extension() != ".sst") continue;
    rocksdb::SstFileReader reader{rocksdb::Options()};
    rocksdb::Status s = reader.Open(path);
    EXPECT_TRUE(s.ok()) << path << ": " << s.ToString();
    if (!s.ok()) continue;
    std::unique_ptr<rocksdb::Iterator> it(
        reader.NewIterator(rocksdb::ReadOptions()));
    std::string decoded;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      decoded.append(it->key().data(), it->key().size());
      decoded.append(it->value().data(), it->value().size());
    }
    FindIn(path + " (decoded)", decoded, needles, hits);
  }
}

std::string HitsText(const std::vector<Hit>& hits) {
  std::string out;
  for (const Hit& h : hits) {
    absl::StrAppend(&out, "  ", h.what, " in ", h.file, " at offset ", h.offset,
                    "\n");
  }
  return out;
}

// GET http://127.0.0.1:port/metrics (plain HTTP/1.0), the whole answer.
std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    const std::string req = "GET " + path + " HTTP/1.0\r\n\r\n";
    if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[8192];
      ssize_t n;
      while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
    }
  }
  close(fd);
  return out;
}

// A free loopback port (bound and released; nothing else here races for it).
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

// ---------------------------------------------------------------------------
// The processes and the scenario.

class PiiCanaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("pii");
    ASSERT_FALSE(dir_.empty());
    certs_ = dir_ + "/certs";
    ASSERT_EQ(MakeCerts(certs_), "");
    metrics_port_ = FreePort();
    ASSERT_NE(metrics_port_, 0);
  }
  void TearDown() override {
    sscd_.reset();
    bank_.reset();
    RemoveTempDirUnlessFailed(dir_);
  }

  std::string data_dir() const { return dir_ + "/ssc"; }
  std::string bank_dir() const { return dir_ + "/bank"; }
  std::string backup_dir() const { return dir_ + "/backups"; }
  std::string logs_dir() const { return dir_ + "/logs"; }

  // The port from the first match of `re` in `log` (polls).
  static int WaitPort(Child& child, const std::string& log,
                      const std::regex& re) {
    for (int i = 0; i < 600; ++i) {
      std::smatch m;
      const std::string text = ReadFileOrEmpty(log);
      if (std::regex_search(text, m, re)) return std::stoi(m[1]);
      int st = 0;
      if (child.TryWait(&st)) return 0;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return 0;
  }

  void StartBank() {
    std::filesystem::create_directories(logs_dir());
    bank_ = std::make_unique<Child>();
    const std::string log = logs_dir() + "/bank.out";
    ASSERT_TRUE(
        bank_->Start({SSC_BANKSIM_BIN, "--data-dir", bank_dir(), "--listen",
                      "127.0.0.1:0", "--tls-cert", certs_ + "/server.crt",
                      "--tls-key", certs_ + "/server.key", "--tls-client-ca",
                      certs_ + "/ca.crt", "--closed-accounts", kG.bank_account},
                     log));
    bank_port_ = WaitPort(*bank_, log, std::regex("listening on ([0-9]+)"));
    ASSERT_NE(bank_port_, 0) << ReadFileOrEmpty(log);
  }

  void StartSscd() {
    sscd_ = std::make_unique<Child>();
    const std::string out = logs_dir() + "/sscd.out";
    ASSERT_TRUE(sscd_->Start({SSC_SSCD_BIN,
                              "--listen",
                              "127.0.0.1:0",
                              "--data-dir",
                              data_dir(),
                              "--tls-cert",
                              certs_ + "/server.crt",
                              "--tls-key",
                              certs_ + "/server.key",
                              "--tls-client-ca",
                              certs_ + "/ca.crt",
                              "--services",
                              "card,audit,ecard,report,payout,admin",
                              "--store-compression",
                              "false",
                              "--log-file",
                              logs_dir() + "/sscd.json",
                              "--metrics-listen",
                              absl::StrCat("127.0.0.1:", metrics_port_),
                              "--backup-dir",
                              backup_dir(),
                              "--payout-bank-address",
                              absl::StrCat("localhost:", bank_port_),
                              "--payout-bank-ca",
                              certs_ + "/ca.crt",
                              "--payout-bank-cert",
                              certs_ + "/sscd-bank-client.crt",
                              "--payout-bank-key",
                              certs_ + "/sscd-bank-client.key",
                              "--drain-seconds",
                              "5"},
                             out));
    port_ = WaitPort(*sscd_, out,
                     std::regex(R"(listening on 127\.0\.0\.1:([0-9]+))"));
    ASSERT_NE(port_, 0) << ReadFileOrEmpty(out);
  }

  std::shared_ptr<grpc::Channel> Channel(const std::string& role) {
    auto& ch = channels_[role];
    if (ch == nullptr) {
      grpc::SslCredentialsOptions o;
      o.pem_root_certs = ReadFileOrEmpty(certs_ + "/ca.crt");
      o.pem_cert_chain = ReadFileOrEmpty(certs_ + "/" + role + ".crt");
      o.pem_private_key = ReadFileOrEmpty(certs_ + "/" + role + ".key");
      ch = grpc::CreateChannel(absl::StrCat("localhost:", port_),
                               grpc::SslCredentials(o));
    }
    return ch;
  }
  template <typename Service>
  std::unique_ptr<typename Service::Stub> Stub(const std::string& role) {
    return Service::NewStub(Channel(role));
  }
  static std::unique_ptr<grpc::ClientContext> Ctx() {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(30));
    c->AddMetadata("x-ssc-operator", "op-canary-01");
    return c;
  }
  std::string Rid() { return absl::StrCat("canary-", ++rid_); }

  // Runs one unary call, expecting `code`.
  template <typename Stub, typename Req, typename Resp>
  void Call(Stub* stub,
            grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&,
                                         Resp*),
            const Req& req, Resp* resp, grpc::StatusCode code = grpc::OK) {
    auto ctx = Ctx();
    grpc::Status s = (stub->*method)(ctx.get(), req, resp);
    ASSERT_EQ(s.error_code(), code) << s.error_message();
  }

  static ImportResponse Import(AdminService::Stub* admin,
                               const std::string& import_id,
                               const std::string& header,
                               const std::vector<std::string>& lines,
                               grpc::Status* status);

  // --- drivers: one per method that carries personal data -----------------
  void ApplyCard();
  void SendToProduction();
  void RecordProduction();
  void IssueCard();
  void ActivateCard();
  void ReportLoss();
  void CancelLossReport();
  void UpdateHolderContact();
  void GetCard();
  void GetPerson();
  void ListCardEvents();
  void IssueECard();
  void GetECard();
  void AddFamilyMember();
  void ListFamilyMembers();
  void VerifyQrCode();
  void UploadItems();
  void ListBatchItems();
  void ExportBatchResults();
  void Reconcile();
  void CreateRetryBatch();
  void ApplyReplacement();
  void RevokeECard();
  void CancelCard();
  void Import();
  void GetImportStatus();
  void ListAuditRecords();

 public:
  using Driver = void (PiiCanaryTest::*)();
  // In the order they run (later drivers use what earlier ones made).
  // Adding a method: one line here (and its function if it needs one).
  static const std::vector<std::pair<std::string, Driver>>& Drivers() {
    static const auto* d = new std::vector<std::pair<std::string, Driver>>{
        {"ssc.v1.CardService.ApplyCard", &PiiCanaryTest::ApplyCard},
        {"ssc.v1.CardService.SendToProduction",
         &PiiCanaryTest::SendToProduction},
        {"ssc.v1.CardService.RecordProduction",
         &PiiCanaryTest::RecordProduction},
        {"ssc.v1.CardService.IssueCard", &PiiCanaryTest::IssueCard},
        {"ssc.v1.CardService.ActivateCard", &PiiCanaryTest::ActivateCard},
        {"ssc.v1.CardService.UpdateHolderContact",
         &PiiCanaryTest::UpdateHolderContact},
        {"ssc.v1.CardService.GetCard", &PiiCanaryTest::GetCard},
        {"ssc.v1.CardService.GetPerson", &PiiCanaryTest::GetPerson},
        {"ssc.v1.ECardService.IssueECard", &PiiCanaryTest::IssueECard},
        {"ssc.v1.ECardService.GetECard", &PiiCanaryTest::GetECard},
        {"ssc.v1.ECardService.AddFamilyMember",
         &PiiCanaryTest::AddFamilyMember},
        {"ssc.v1.ECardService.ListFamilyMembers",
         &PiiCanaryTest::ListFamilyMembers},
        {"ssc.v1.ECardService.VerifyQrCode", &PiiCanaryTest::VerifyQrCode},
        {"ssc.v1.PayoutService.UploadItems", &PiiCanaryTest::UploadItems},
        {"ssc.v1.PayoutService.ListBatchItems", &PiiCanaryTest::ListBatchItems},
        {"ssc.v1.PayoutService.ExportBatchResults",
         &PiiCanaryTest::ExportBatchResults},
        {"ssc.v1.PayoutService.Reconcile", &PiiCanaryTest::Reconcile},
        {"ssc.v1.PayoutService.CreateRetryBatch",
         &PiiCanaryTest::CreateRetryBatch},
        {"ssc.v1.CardService.ReportLoss", &PiiCanaryTest::ReportLoss},
        {"ssc.v1.CardService.CancelLossReport",
         &PiiCanaryTest::CancelLossReport},
        {"ssc.v1.CardService.ApplyReplacement",
         &PiiCanaryTest::ApplyReplacement},
        {"ssc.v1.ECardService.RevokeECard", &PiiCanaryTest::RevokeECard},
        {"ssc.v1.CardService.CancelCard", &PiiCanaryTest::CancelCard},
        {"ssc.v1.CardService.ListCardEvents", &PiiCanaryTest::ListCardEvents},
        {"ssc.v1.AdminService.Import", &PiiCanaryTest::Import},
        {"ssc.v1.AdminService.GetImportStatus",
         &PiiCanaryTest::GetImportStatus},
        {"ssc.v1.AuditService.ListAuditRecords",
         &PiiCanaryTest::ListAuditRecords},
    };
    return *d;
  }

 protected:
  std::string dir_, certs_;
  std::unique_ptr<Child> sscd_, bank_;
  int port_ = 0, bank_port_ = 0, metrics_port_ = 0;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
  int rid_ = 0;
  // What the drivers made.
  std::string app_a_, app_b_, app_g_, card_a_, card_b_, card_g_;
  std::string ecard_a_, ecard_b_, batch_, retry_batch_;
};

// --- card -------------------------------------------------------------------

void PiiCanaryTest::ApplyCard() {
  auto cards = Stub<CardService>("counter");
  auto apply = [&](const Canary& c, bool instant, const std::string& region,
                   ApplyCardResponse* out, grpc::StatusCode code) {
    ApplyCardRequest r;
    r.set_request_id(Rid());
    r.mutable_person()->set_id_number(c.id_number);
    r.mutable_person()->set_name(c.name);
    r.mutable_person()->set_phone(c.phone);
    r.mutable_person()->set_address(c.address);
    r.mutable_person()->set_region_code(region);
    r.set_bank_code("ICBC");
    if (instant) {
      r.set_instant_issuance(true);
      r.set_bank_account(c.bank_account);
    }
    Call(cards.get(), &CardService::Stub::ApplyCard, r, out, code);
  };
  ApplyCardResponse a, b, g, refused;
  apply(kA, true, "510524100", &a, grpc::OK);
  apply(kB, false, "510524101", &b, grpc::OK);
  apply(kG, true, "510524100", &g, grpc::OK);
  ASSERT_EQ(a.card().holder_id_number(), kA.id_number);  // counter: in clear
  app_a_ = a.card().application_id();
  card_a_ = a.card().card_number();
  app_b_ = b.card().application_id();
  app_g_ = g.card().application_id();
  card_g_ = g.card().card_number();
  // Refusals: an unknown region, and a second live card for A.
  apply(kF, true, "510524999", &refused, grpc::INVALID_ARGUMENT);
  apply(kA, true, "510524100", &refused, grpc::FAILED_PRECONDITION);
}

void PiiCanaryTest::SendToProduction() {
  auto cards = Stub<CardService>("card_bureau");
  SendToProductionRequest r;
  r.set_request_id(Rid());
  r.add_application_ids(app_b_);
  r.set_batch_reference("ZK-CANARY-1");
  SendToProductionResponse resp;
  Call(cards.get(), &CardService::Stub::SendToProduction, r, &resp);
}

void PiiCanaryTest::RecordProduction() {
  auto cards = Stub<CardService>("card_bureau");
  RecordProductionRequest r;
  r.set_request_id(Rid());
  r.set_application_id(app_b_);
  r.set_card_number("X90000703");
  r.set_identification_code("510524D156000005000000000000C703");
  r.set_spec_version("3.00");
  r.set_bank_code("ICBC");
  r.set_bank_account(kB.bank_account);
  const std::string today =
      absl::FormatTime("%Y-%m-%d", absl::Now(), absl::FixedTimeZone(8 * 3600));
  r.set_valid_from(today);
  r.set_valid_until(
      absl::StrCat(std::stoi(today.substr(0, 4)) + 10, today.substr(4)));
  RecordProductionResponse resp;
  Call(cards.get(), &CardService::Stub::RecordProduction, r, &resp);
  card_b_ = resp.card().card_number();
}

void PiiCanaryTest::IssueCard() {
  auto cards = Stub<CardService>("counter");
  IssueCardRequest r;
  r.set_request_id(Rid());
  r.mutable_card()->set_application_id(app_b_);
  IssueCardResponse resp;
  Call(cards.get(), &CardService::Stub::IssueCard, r, &resp);
}

void PiiCanaryTest::ActivateCard() {
  auto cards = Stub<CardService>("counter");
  for (const std::string& app : {app_a_, app_b_, app_g_}) {
    ActivateCardRequest r;
    r.set_request_id(Rid());
    r.mutable_card()->set_application_id(app);
    ActivateCardResponse resp;
    Call(cards.get(), &CardService::Stub::ActivateCard, r, &resp);
  }
}

void PiiCanaryTest::UpdateHolderContact() {
  auto cards = Stub<CardService>("counter");
  UpdateHolderContactRequest r;
  r.set_request_id(Rid());
  r.set_id_number(kA.id_number);
  r.set_phone(kA2.phone);
  r.set_address(kA2.address);
  UpdateHolderContactResponse resp;
  Call(cards.get(), &CardService::Stub::UpdateHolderContact, r, &resp);
  // An unknown person: refused, naming nobody on disk.
  r.set_request_id(Rid());
  r.set_id_number(kE.id_number);
  Call(cards.get(), &CardService::Stub::UpdateHolderContact, r, &resp,
       grpc::NOT_FOUND);
}

void PiiCanaryTest::GetCard() {
  for (const char* role : {"counter", "terminal"}) {
    auto cards = Stub<CardService>(role);
    GetCardRequest r;
    r.set_application_id(app_a_);
    GetCardResponse resp;
    Call(cards.get(), &CardService::Stub::GetCard, r, &resp);
  }
}

void PiiCanaryTest::GetPerson() {
  auto cards = Stub<CardService>("counter");
  GetPersonRequest r;
  r.set_id_number(kA.id_number);
  GetPersonResponse resp;
  Call(cards.get(), &CardService::Stub::GetPerson, r, &resp);
  r.set_id_number(kE.id_number);
  Call(cards.get(), &CardService::Stub::GetPerson, r, &resp, grpc::NOT_FOUND);
  // A role that may not: denied and audited.
  auto denied = Stub<CardService>("statistician");
  r.set_id_number(kA.id_number);
  Call(denied.get(), &CardService::Stub::GetPerson, r, &resp,
       grpc::PERMISSION_DENIED);
}

void PiiCanaryTest::ListCardEvents() {
  auto cards = Stub<CardService>("counter");
  ListCardEventsRequest r;
  r.set_id_number(kA.id_number);
  ListCardEventsResponse resp;
  Call(cards.get(), &CardService::Stub::ListCardEvents, r, &resp);
  EXPECT_GT(resp.events_size(), 0);
}

void PiiCanaryTest::ReportLoss() {
  auto cards = Stub<CardService>("counter");
  ReportLossRequest r;
  r.set_request_id(Rid());
  r.mutable_card()->set_application_id(app_a_);
  r.set_kind(LOSS_KIND_TEMPORARY);
  ReportLossResponse resp;
  Call(cards.get(), &CardService::Stub::ReportLoss, r, &resp);
}

void PiiCanaryTest::CancelLossReport() {
  auto cards = Stub<CardService>("counter");
  CancelLossReportRequest r;
  r.set_request_id(Rid());
  r.mutable_card()->set_application_id(app_a_);
  CancelLossReportResponse resp;
  Call(cards.get(), &CardService::Stub::CancelLossReport, r, &resp);
  // Then lost for good, before the replacement.
  ReportLossRequest lost;
  lost.set_request_id(Rid());
  lost.mutable_card()->set_application_id(app_a_);
  lost.set_kind(LOSS_KIND_FORMAL);
  ReportLossResponse lr;
  Call(cards.get(), &CardService::Stub::ReportLoss, lost, &lr);
}

void PiiCanaryTest::ApplyReplacement() {
  auto cards = Stub<CardService>("counter");
  ApplyReplacementRequest r;
  r.set_request_id(Rid());
  r.mutable_card()->set_application_id(app_a_);
  r.set_reason(REPLACEMENT_REASON_LOST);
  r.set_instant_issuance(true);
  r.set_bank_code("ICBC");
  r.set_bank_account(kA2.bank_account);
  ApplyReplacementResponse resp;
  ASSERT_NO_FATAL_FAILURE(
      Call(cards.get(), &CardService::Stub::ApplyReplacement, r, &resp));
  // The new card in use, then replaced again for a change of name.
  ActivateCardRequest act;
  act.set_request_id(Rid());
  act.mutable_card()->set_application_id(resp.new_card().application_id());
  ActivateCardResponse ar;
  ASSERT_NO_FATAL_FAILURE(
      Call(cards.get(), &CardService::Stub::ActivateCard, act, &ar));
  r.set_request_id(Rid());
  r.mutable_card()->set_application_id(resp.new_card().application_id());
  r.set_reason(REPLACEMENT_REASON_DATA_CHANGE);
  r.set_new_name(kA2.name);
  Call(cards.get(), &CardService::Stub::ApplyReplacement, r, &resp);
}

void PiiCanaryTest::CancelCard() {
  auto cards = Stub<CardService>("counter");
  CancelCardRequest r;
  r.set_request_id(Rid());
  r.mutable_card()->set_application_id(app_b_);
  r.set_reason(CANCEL_REASON_DEATH);
  CancelCardResponse resp;
  Call(cards.get(), &CardService::Stub::CancelCard, r, &resp);
}

// --- e-card -----------------------------------------------------------------

VerificationEvidence Evidence() {
  VerificationEvidence e;
  e.set_method(VERIFICATION_METHOD_FACE_LIVENESS);
  e.set_reference("LV-CANARY");
  *e.mutable_verified_at() =
      google::protobuf::util::TimeUtil::SecondsToTimestamp(
          absl::ToUnixSeconds(absl::Now()));
  return e;
}

void PiiCanaryTest::IssueECard() {
  auto ecards = Stub<ECardService>("mobile_channel");
  IssueECardRequest r;
  r.set_request_id(Rid());
  r.set_id_number(kA.id_number);
  r.set_name(kA.name);
  *r.mutable_evidence() = Evidence();
  IssueECardResponse resp;
  Call(ecards.get(), &ECardService::Stub::IssueECard, r, &resp);
  ecard_a_ = resp.ecard().ecard_id();
  // A name that does not match the register: refused like an unknown
  // person, so a channel cannot probe the register.
  r.set_request_id(Rid());
  r.set_id_number(kB.id_number);
  r.set_name(kBWrong.name);
  Call(ecards.get(), &ECardService::Stub::IssueECard, r, &resp,
       grpc::NOT_FOUND);
}

void PiiCanaryTest::GetECard() {
  auto ecards = Stub<ECardService>("counter");
  GetECardRequest r;
  r.set_id_number(kA.id_number);
  GetECardResponse resp;
  Call(ecards.get(), &ECardService::Stub::GetECard, r, &resp);
}

void PiiCanaryTest::AddFamilyMember() {
  auto ecards = Stub<ECardService>("mobile_channel");
  AddFamilyMemberRequest r;
  r.set_request_id(Rid());
  r.set_ecard_id(ecard_a_);
  r.set_member_id_number(kB.id_number);
  r.set_member_name(kB.name);
  r.set_relationship(FAMILY_RELATIONSHIP_SPOUSE);
  *r.mutable_evidence() = Evidence();
  AddFamilyMemberResponse resp;
  Call(ecards.get(), &ECardService::Stub::AddFamilyMember, r, &resp);
  ecard_b_ = resp.member().ecard_id();
  // A person without a card: refused.
  r.set_request_id(Rid());
  r.set_member_id_number(kE.id_number);
  r.set_member_name(kE.name);
  grpc::StatusCode code = grpc::OK;
  auto ctx = Ctx();
  code = ecards->AddFamilyMember(ctx.get(), r, &resp).error_code();
  EXPECT_NE(code, grpc::OK);
}

void PiiCanaryTest::ListFamilyMembers() {
  auto ecards = Stub<ECardService>("mobile_channel");
  ListFamilyMembersRequest r;
  r.set_ecard_id(ecard_a_);
  ListFamilyMembersResponse resp;
  Call(ecards.get(), &ECardService::Stub::ListFamilyMembers, r, &resp);
  EXPECT_EQ(resp.members_size(), 1);
  ListChannelBindingsRequest lb;
  lb.set_ecard_id(ecard_a_);
  ListChannelBindingsResponse lbr;
  Call(ecards.get(), &ECardService::Stub::ListChannelBindings, lb, &lbr);
}

void PiiCanaryTest::VerifyQrCode() {
  auto ecards = Stub<ECardService>("mobile_channel");
  GenerateQrCodeRequest g;
  g.set_ecard_id(ecard_a_);
  g.set_family_member_ecard_id(ecard_b_);
  g.set_business_type(BUSINESS_TYPE_ENQUIRY);
  GenerateQrCodeResponse code;
  Call(ecards.get(), &ECardService::Stub::GenerateQrCode, g, &code);
  for (const char* role : {"terminal", "counter"}) {
    auto verifier = Stub<ECardService>(role);
    VerifyQrCodeRequest v;
    v.set_payload(code.payload());
    v.set_business_type(BUSINESS_TYPE_ENQUIRY);
    v.set_request_id(Rid());
    VerifyQrCodeResponse resp;
    Call(verifier.get(), &ECardService::Stub::VerifyQrCode, v, &resp);
  }
  RemoveFamilyMemberRequest rm;
  rm.set_request_id(Rid());
  rm.set_ecard_id(ecard_a_);
  rm.set_member_ecard_id(ecard_b_);
  RemoveFamilyMemberResponse rmr;
  Call(ecards.get(), &ECardService::Stub::RemoveFamilyMember, rm, &rmr);
}

void PiiCanaryTest::RevokeECard() {
  auto ecards = Stub<ECardService>("counter");
  RevokeECardRequest r;
  r.set_request_id(Rid());
  r.set_ecard_id(ecard_a_);
  r.set_reason("canary");
  RevokeECardResponse resp;
  Call(ecards.get(), &ECardService::Stub::RevokeECard, r, &resp);
}

// --- payouts ----------------------------------------------------------------

void PiiCanaryTest::UploadItems() {
  auto maker = Stub<PayoutService>("finance_maker");
  RegisterProgrammeRequest p;
  p.set_request_id(Rid());
  p.mutable_programme()->set_code("CANARY-LIVING");
  p.mutable_programme()->set_name(kControl);
  p.mutable_programme()->set_category(
      PROGRAMME_CATEGORY_AGRICULTURAL_LIVELIHOOD_SUBSIDY);
  p.mutable_programme()->set_max_item_amount_fen(50000);
  p.mutable_programme()->set_unit(BENEFICIARY_UNIT_PER_PERSON);
  RegisterProgrammeResponse pr;
  Call(maker.get(), &PayoutService::Stub::RegisterProgramme, p, &pr);
  SetBudgetRequest b;
  b.set_request_id(Rid());
  b.set_programme_code("CANARY-LIVING");
  b.set_period("2026-11");
  b.set_amount_fen(1000000);
  SetBudgetResponse br;
  Call(maker.get(), &PayoutService::Stub::SetBudget, b, &br);

  // A and G paid (G's account is closed at the bank: FAILED), B's name
  // misspelt and E without a card: rejected on validation.
  std::vector<std::pair<const Canary*, std::string>> items = {
      {&kA, kA.name}, {&kG, kG.name}, {&kB, kBWrong.name}, {&kE, kE.name}};
  CreateBatchRequest c;
  c.set_request_id(Rid());
  c.set_programme_code("CANARY-LIVING");
  c.set_period("2026-11");
  c.set_control_count(static_cast<int64_t>(items.size()));
  c.set_control_amount_fen(9000 * static_cast<int64_t>(items.size()));
  c.set_description("canary batch");
  *c.mutable_scheduled_at() =
      google::protobuf::util::TimeUtil::SecondsToTimestamp(
          absl::ToUnixSeconds(absl::Now()));
  CreateBatchResponse cr;
  Call(maker.get(), &PayoutService::Stub::CreateBatch, c, &cr);
  batch_ = cr.batch().batch_id();

  auto ctx = Ctx();
  UploadItemsResponse ur;
  auto writer = maker->UploadItems(ctx.get(), &ur);
  UploadItemsRequest u;
  u.set_request_id(Rid());
  u.set_batch_id(batch_);
  int n = 0;
  for (const auto& [who, name] : items) {
    PayoutItemInput* in = u.add_items();
    in->set_item_id(absl::StrCat("i", ++n));
    in->set_id_number(who->id_number);
    in->set_name(name);
    in->set_amount_fen(9000);
    in->set_note(absl::StrCat("第202611期 ", who->phone));
  }
  ASSERT_TRUE(writer->Write(u));
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  ASSERT_TRUE(s.ok()) << s.error_message();

  SealBatchRequest seal;
  seal.set_request_id(Rid());
  seal.set_batch_id(batch_);
  SealBatchResponse sr;
  Call(maker.get(), &PayoutService::Stub::SealBatch, seal, &sr);
  SubmitBatchRequest submit;
  submit.set_request_id(Rid());
  submit.set_batch_id(batch_);
  SubmitBatchResponse subr;
  Call(maker.get(), &PayoutService::Stub::SubmitBatch, submit, &subr);
  auto checker = Stub<PayoutService>("finance_checker");
  ApproveBatchRequest ap;
  ap.set_request_id(Rid());
  ap.set_batch_id(batch_);
  ApproveBatchResponse apr;
  {
    // The checker is another operator than the maker (Ctx()'s).
    auto actx = std::make_unique<grpc::ClientContext>();
    actx->set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(30));
    actx->AddMetadata("x-ssc-operator", "op-canary-02");
    grpc::Status s = checker->ApproveBatch(actx.get(), ap, &apr);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  // Execution runs by itself; WatchBatch follows it to the end.
  auto wctx = std::make_unique<grpc::ClientContext>();
  wctx->set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(60));
  WatchBatchRequest w;
  w.set_batch_id(batch_);
  auto reader = maker->WatchBatch(wctx.get(), w);
  WatchBatchResponse progress;
  bool done = false;
  while (reader->Read(&progress)) done = progress.done();
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_TRUE(done);
  EXPECT_EQ(progress.totals().paid_count(), 1);
  EXPECT_EQ(progress.totals().failed_count(), 1);
}

void PiiCanaryTest::ListBatchItems() {
  for (const char* role : {"finance_maker", "auditor"}) {
    auto payouts = Stub<PayoutService>(role);
    ListBatchItemsRequest r;
    r.set_batch_id(batch_);
    ListBatchItemsResponse resp;
    Call(payouts.get(), &PayoutService::Stub::ListBatchItems, r, &resp);
    EXPECT_EQ(resp.items_size(), 4);
  }
}

void PiiCanaryTest::ExportBatchResults() {
  auto payouts = Stub<PayoutService>("finance_checker");
  auto ctx = Ctx();
  ExportBatchResultsRequest r;
  r.set_batch_id(batch_);
  auto reader = payouts->ExportBatchResults(ctx.get(), r);
  ExportBatchResultsResponse chunk;
  int items = 0;
  while (reader->Read(&chunk)) items += chunk.items_size();
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(items, 4);
}

void PiiCanaryTest::Reconcile() {
  auto payouts = Stub<PayoutService>("finance_checker");
  ReconcileRequest r;
  r.set_request_id(Rid());
  r.set_batch_id(batch_);
  ReconcileResponse resp;
  Call(payouts.get(), &PayoutService::Stub::Reconcile, r, &resp);
}

void PiiCanaryTest::CreateRetryBatch() {
  auto maker = Stub<PayoutService>("finance_maker");
  CreateRetryBatchRequest r;
  r.set_request_id(Rid());
  r.set_source_batch_id(batch_);
  ItemCorrection* fix = r.add_corrections();
  fix->set_item_id("i2");
  fix->set_name(kG.name);
  *r.mutable_scheduled_at() =
      google::protobuf::util::TimeUtil::SecondsToTimestamp(
          absl::ToUnixSeconds(absl::Now()));
  CreateRetryBatchResponse resp;
  Call(maker.get(), &PayoutService::Stub::CreateRetryBatch, r, &resp);
  retry_batch_ = resp.batch().batch_id();
  CancelBatchRequest cancel;
  cancel.set_request_id(Rid());
  cancel.set_batch_id(retry_batch_);
  cancel.set_reason("canary");
  CancelBatchResponse cr;
  Call(maker.get(), &PayoutService::Stub::CancelBatch, cancel, &cr);
}

// --- import and audit -------------------------------------------------------

ImportResponse PiiCanaryTest::Import(AdminService::Stub* admin,
                                     const std::string& import_id,
                                     const std::string& header,
                                     const std::vector<std::string>& lines,
                                     grpc::Status* status) {
  auto ctx = Ctx();
  auto stream = admin->Import(ctx.get());
  ImportRequest start;
  start.mutable_start()->set_import_id(import_id);
  start.mutable_start()->set_format(IMPORT_FORMAT_CSV);
  start.mutable_start()->set_csv_header(header);
  stream->Write(start);
  ImportResponse last;
  stream->Read(&last);
  ImportRequest chunk;
  chunk.mutable_chunk()->set_first_line(2);
  for (const std::string& l : lines) chunk.mutable_chunk()->add_lines(l);
  stream->Write(chunk);
  stream->WritesDone();
  ImportResponse r;
  while (stream->Read(&r)) last = r;
  *status = stream->Finish();
  return last;
}

void PiiCanaryTest::Import() {
  auto admin = Stub<AdminService>("admin");
  const std::string header =
      "kind,id_number,name,phone,address,region_code,application_id,state,"
      "bank_code,bank_account,card_number,identification_code,valid_from,"
      "applied_at,sent_at,produced_at,issued_at,activated_at,"
      "instant_issuance";
  auto row = [](const Canary& c, const std::string& state, int n) {
    return absl::StrCat("card,", c.id_number, ",", c.name, ",", c.phone, ",",
                        c.address, ",510524100,A51052410000070", n, ",", state,
                        ",ABC,", c.bank_account, ",X9100070", n,
                        ",510524D15600000500000000000007", 10 + n,
                        ",2019-03-20,2019-03-01,2019-03-02,2019-03-20,"
                        "2019-04-01,2019-04-02,false");
  };
  // C is imported; D's row has the name in the state column (columns mixed
  // up): rejected, and the reason quotes what it refused.
  grpc::Status s;
  ImportResponse last = Import(admin.get(), "canary-import-1", header,
                               {row(kC, "ACTIVE", 1), row(kD, kD.name, 2)}, &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(last.done());
  EXPECT_EQ(last.accepted_rows(), 1u) << last.DebugString();
  EXPECT_EQ(last.rejected_rows(), 1u);
}

void PiiCanaryTest::GetImportStatus() {
  auto admin = Stub<AdminService>("admin");
  GetImportStatusRequest st;
  st.set_import_id("canary-import-1");
  GetImportStatusResponse str;
  Call(admin.get(), &AdminService::Stub::GetImportStatus, st, &str);
}

void PiiCanaryTest::ListAuditRecords() {
  auto audit = Stub<AuditService>("auditor");
  ListAuditRecordsRequest r;
  ListAuditRecordsResponse resp;
  Call(audit.get(), &AuditService::Stub::ListAuditRecords, r, &resp);
  EXPECT_GT(resp.records_size(), 0);
  VerifyAuditChainRequest v;
  VerifyAuditChainResponse vr;
  Call(audit.get(), &AuditService::Stub::VerifyAuditChain, v, &vr);
  EXPECT_TRUE(vr.ok()) << vr.problem();
}

// ---------------------------------------------------------------------------

// Every method is either driven or listed as carrying no personal data, and
// the list is right about the ones it names.
TEST(PiiCanaryCoverage, EveryMethodIsDrivenOrCarriesNone) {
  std::set<std::string> driven;
  for (const auto& [name, driver] : PiiCanaryTest::Drivers()) {
    driven.insert(name);
  }
  std::set<std::string> known;
  for (const auto* m : AllMethods()) {
    const std::string name = m->full_name();
    known.insert(name);
    std::set<const Descriptor*> seen;
    std::string field = PersonalField(m->input_type(), &seen);
    if (field.empty()) field = PersonalField(m->output_type(), &seen);
    if (!field.empty()) {
      EXPECT_TRUE(driven.count(name))
          << name << " carries personal data (" << field
          << ") but has no canary driver in pii_canary_test.cc";
      EXPECT_FALSE(kCarriesNone.count(name))
          << name << " is listed as carrying none but has " << field;
    } else {
      EXPECT_TRUE(driven.count(name) || kCarriesNone.count(name))
          << name << " is unknown to the canary test: give it a driver or "
          << "list it in kCarriesNone";
    }
  }
  for (const std::string& name : driven) {
    EXPECT_TRUE(known.count(name)) << "driver for unknown method " << name;
  }
  for (const std::string& name : kCarriesNone) {
    EXPECT_TRUE(known.count(name)) << "kCarriesNone names unknown " << name;
  }
}

TEST_F(PiiCanaryTest, NoPersonalDataInClearOnDisk) {
  ASSERT_NO_FATAL_FAILURE(StartBank());
  ASSERT_NO_FATAL_FAILURE(StartSscd());
  for (const auto& [name, driver] : Drivers()) {
    SCOPED_TRACE(name);
    ASSERT_NO_FATAL_FAILURE((this->*driver)());
  }
  auto admin = Stub<AdminService>("admin");
  CreateBackupRequest br;
  br.set_request_id(Rid());
  CreateBackupResponse backup;
  Call(admin.get(), &AdminService::Stub::CreateBackup, br, &backup);

  const std::vector<Needle> needles = AllNeedles();
  const std::vector<Needle> control = {{"control", kControl}};
  std::vector<Hit> hits, control_hits;
  std::set<std::string> files;
  auto scan_all = [&] {
    for (const std::string& d :
         {data_dir(), bank_dir(), backup_dir(), logs_dir()}) {
      ScanDir(d, needles, &hits, &files);
      ScanDir(d, control, &control_hits, &files);
    }
  };
  // While both run: the WALs hold every write.
  const std::string metrics = HttpGet(metrics_port_, "/metrics");
  EXPECT_NE(metrics.find("ssc_"), std::string::npos) << metrics;
  FindIn("GET /metrics", metrics, needles, &hits);
  scan_all();

  // Clean shutdown, then an offline flush and full compaction of both
  // stores: every record also goes through table files.
  sscd_->Signal(SIGTERM);
  EXPECT_EQ(sscd_->Wait(), 0);
  bank_->Signal(SIGTERM);
  bank_->Wait();
  for (const std::string& db : {data_dir() + "/db", bank_dir() + "/db"}) {
    storage::RocksDbOptions o;
    o.path = db;
    o.compression = false;
    auto engine = storage::OpenRocksDbEngine(o);
    ASSERT_TRUE(engine.ok()) << db << ": " << engine.status();
    ASSERT_TRUE((*engine)->Flush().ok());
    ASSERT_TRUE(storage::CompactRocksDbEngine(**engine).ok());
  }
  scan_all();

  // The control: the clear value is seen in a WAL, a table file (decoded and
  // raw, compression being off) and the backup.
  auto control_in = [&](const std::string& what) {
    for (const Hit& h : control_hits) {
      if (h.file.find(what) != std::string::npos) return true;
    }
    return false;
  };
  EXPECT_TRUE(control_in(".log")) << HitsText(control_hits);
  EXPECT_TRUE(control_in(".sst (decoded)")) << HitsText(control_hits);
  EXPECT_TRUE(control_in(backup_dir())) << HitsText(control_hits);

  std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) {
    return std::tie(a.file, a.offset, a.what) <
           std::tie(b.file, b.offset, b.what);
  });
  // Files present at both scans are reported once.
  hits.erase(std::unique(hits.begin(), hits.end(),
                         [](const Hit& a, const Hit& b) {
                           return a.file == b.file && a.offset == b.offset &&
                                  a.what == b.what;
                         }),
             hits.end());
  EXPECT_TRUE(hits.empty())
      << "personal data in clear (" << hits.size() << " finds in "
      << files.size() << " files scanned):\n"
      << HitsText(hits);
}

}  // namespace
}  // namespace ssc::e2e
