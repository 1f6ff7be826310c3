// Promises that hold for every RPC, tested on every RPC: the list of
// methods comes from the generated descriptors of package ssc.v1
// (DescriptorPool::generated_pool()), so a new RPC cannot slip past.
//
//  - Exactly once per request id: every mutating RPC refuses an empty
//    request id (INVALID_ARGUMENT naming it) and writes nothing; the same id
//    and request twice gives the same answer and one effect; the same id
//    with another request is ALREADY_EXISTS.
//  - A request protobuf cannot decode (invalid UTF-8 in a string field) is
//    INVALID_ARGUMENT naming the field, not an INTERNAL server error.
//
// sscd in-process, real gRPC (plain text on loopback, callers named in
// metadata), real RocksDB; the store is read between calls with the server
// stopped. Methods are called with raw bytes (grpc::GenericStub), as a
// client in any language would.

#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "bench/synthetic_ids.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "services/common/metrics.h"
#include "services/sscd/server.h"
#include "ssc/v1/admin.grpc.pb.h"
#include "ssc/v1/audit.pb.h"
#include "ssc/v1/card.grpc.pb.h"
#include "ssc/v1/ecard.grpc.pb.h"
#include "ssc/v1/payout.grpc.pb.h"
#include "ssc/v1/report.grpc.pb.h"
#include "storage/audit.h"
#include "storage/clock.h"
#include "storage/rocksdb_engine.h"

namespace ssc::sscd {
namespace {

namespace fs = std::filesystem;
using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::MethodDescriptor;

// Methods that change nothing in the store. Every other method of ssc.v1 is
// mutating and needs an entry in Mutations() below.
const std::set<std::string>& ReadOnly() {
  static const auto* const kReadOnly = new std::set<std::string>{
      "ssc.v1.AdminService/GetImportStatus",
      "ssc.v1.AdminService/GetReencryptionStatus",
      "ssc.v1.AdminService/ListBackups",
      "ssc.v1.AdminService/VerifyBackup",
      "ssc.v1.AuditService/ListAuditRecords",
      "ssc.v1.AuditService/VerifyAuditChain",
      "ssc.v1.CardService/CheckInvalidCard",
      "ssc.v1.CardService/GetCard",
      "ssc.v1.CardService/GetPerson",
      "ssc.v1.CardService/ListCardEvents",
      "ssc.v1.ECardService/GetECard",
      "ssc.v1.ECardService/GetStatusList",
      "ssc.v1.ECardService/GetVerificationKeys",
      "ssc.v1.ECardService/ListChannelBindings",
      "ssc.v1.ECardService/ListFamilyMembers",
      // Signs a new token each call and stores nothing: the single use is
      // recorded by VerifyQrCode.
      "ssc.v1.ECardService/GenerateQrCode",
      "ssc.v1.PayoutService/ExportBatchResults",
      "ssc.v1.PayoutService/GetBatch",
      "ssc.v1.PayoutService/GetBudget",
      "ssc.v1.PayoutService/GetProgramme",
      "ssc.v1.PayoutService/ListBatchItems",
      "ssc.v1.PayoutService/WatchBatch",
      "ssc.v1.ReportService/GetBreakdown",
      "ssc.v1.ReportService/GetIndicatorSeries",
      "ssc.v1.ReportService/GetIndicators",
      "ssc.v1.ReportService/GetPayoutFigures",
      "ssc.v1.ReportService/ListResidentPopulation",
      "ssc.v1.ReportService/ListTargets",
      "ssc.v1.ReportService/VerifyCounters",
  };
  return *kReadOnly;
}

std::vector<const MethodDescriptor*> AllSscMethods() {
  // Links the generated descriptors of every file below.
  (void)v1::ApplyCardRequest::descriptor();
  (void)v1::AuditRecord::descriptor();
  (void)v1::IssueECardRequest::descriptor();
  (void)v1::CreateBatchRequest::descriptor();
  (void)v1::GetIndicatorsRequest::descriptor();
  (void)v1::ImportRequest::descriptor();
  std::vector<const MethodDescriptor*> out;
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  for (const char* file :
       {"ssc/v1/admin.proto", "ssc/v1/audit.proto", "ssc/v1/card.proto",
        "ssc/v1/ecard.proto", "ssc/v1/payout.proto", "ssc/v1/report.proto"}) {
    const google::protobuf::FileDescriptor* f = pool->FindFileByName(file);
    EXPECT_NE(f, nullptr) << file;
    if (f == nullptr) continue;
    for (int s = 0; s < f->service_count(); ++s) {
      for (int m = 0; m < f->service(s)->method_count(); ++m) {
        out.push_back(f->service(s)->method(m));
      }
    }
  }
  return out;
}

std::string FullName(const MethodDescriptor* m) {
  return absl::StrCat(m->service()->full_name(), "/", m->name());
}

// ---------------------------------------------------------------------------
// Raw calls.

struct RawResult {
  grpc::Status status;
  std::vector<std::string> responses;
};

// Calls `method` ("ssc.v1.CardService/ApplyCard") as a caller of `role`
// with `messages` (serialized requests; one for a unary RPC) and reads
// every answer.
RawResult CallRaw(const std::shared_ptr<grpc::Channel>& channel,
                  const std::string& role, const std::string& method,
                  const std::vector<std::string>& messages) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.AddMetadata("x-ssc-caller", role + "-walk");
  ctx.AddMetadata("x-ssc-role", role);
  // One operator per role: a batch's maker and checker are different.
  ctx.AddMetadata("x-ssc-operator", role + "-operator");
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::seconds(60));  // a hung test only
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(&ctx, "/" + method, &cq);
  void* tag = nullptr;
  bool ok = false;
  auto wait = [&] {
    cq.Next(&tag, &ok);
    return ok;
  };
  call->StartCall(&ctx);
  bool alive = wait();
  for (const std::string& m : messages) {
    if (!alive) break;
    grpc::Slice slice(m);
    grpc::ByteBuffer buffer(&slice, 1);
    call->Write(buffer, &ctx);
    alive = wait();
  }
  if (alive) {
    call->WritesDone(&ctx);
    wait();
  }
  RawResult out;
  for (;;) {
    grpc::ByteBuffer buffer;
    call->Read(&buffer, &ctx);
    if (!wait()) break;
    std::vector<grpc::Slice> slices;
    (void)buffer.Dump(&slices);
    std::string s;
    for (const grpc::Slice& sl : slices) {
      s.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
    }
    out.responses.push_back(std::move(s));
  }
  call->Finish(&out.status, &ctx);
  wait();
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return out;
}

// The field violations of a failed call ("request_id", ...).
std::vector<std::string> ViolatedFields(const grpc::Status& s) {
  std::vector<std::string> out;
  google::rpc::Status details;
  if (!details.ParseFromString(s.error_details())) return out;
  for (const auto& any : details.details()) {
    google::rpc::BadRequest bad;
    if (!any.UnpackTo(&bad)) continue;
    for (const auto& v : bad.field_violations()) out.push_back(v.field());
  }
  return out;
}

// ---------------------------------------------------------------------------
// The server and its store.

// Writes that are no effect of a request: the audit chain's head follows
// the audit trail (refusals and replays are audited too), and the card
// number allocator reserves blocks of numbers ahead, also when a replay
// takes a number it then does not use (numbers are unique, not gapless:
// README).
bool NotAnEffect(storage::Table table, std::string_view key) {
  return table == storage::Table::kMeta &&
         (key == storage::AuditHeadKey() || key.starts_with("card.seq"));
}

class EveryRpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path base = fs::path(::testing::TempDir()) /
                          absl::StrCat("ssc-every-rpc-", ::getpid());
    fs::remove_all(base);
    dir_ = base.string();
    config_.listen = "127.0.0.1:0";
    config_.data_dir = dir_ + "/data";
    config_.insecure_plaintext = true;
    config_.services = {"card", "audit", "ecard", "report", "payout", "admin"};
    // Nothing here reaches the bank: no batch is approved.
    config_.payout_bank_address = "127.0.0.1:9";
    config_.drain_seconds = 1;
    config_.log_rpcs = false;
    clock_.Set(absl::FromUnixSeconds(1767225600));  // 2026-01-01 08:00 +08
    StartServer();
  }

  void TearDown() override {
    StopServer();
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(dir_, ec);
  }

  void StartServer() {
    absl::StatusOr<std::unique_ptr<Server>> s = Server::Start(config_, &clock_);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
  }
  void StopServer() {
    if (server_ == nullptr) return;
    EXPECT_TRUE(server_->Shutdown(absl::Seconds(5)).ok());
    server_.reset();
    channel_.reset();
  }

  // Everything the store holds except the audit trail (which records
  // refusals and replays too), and the names of the backups: what a call
  // changed. Reads the store with the server stopped, then restarts it.
  std::string StoreState() {
    StopServer();
    std::string state;
    {
      storage::RocksDbOptions o;
      o.path = config_.data_dir + "/db";
      o.block_cache_bytes = 8 << 20;
      o.memtable_bytes = 4 << 20;
      // The server's clock: idempotency records expire by it.
      o.clock = &clock_;
      auto engine = storage::OpenRocksDbEngine(o);
      EXPECT_TRUE(engine.ok()) << engine.status();
      if (engine.ok()) {
        for (int t = 0; t < storage::kTableCount; ++t) {
          const auto table = static_cast<storage::Table>(t);
          if (table == storage::Table::kAudit) continue;
          EXPECT_TRUE((*engine)
                          ->Scan(table, "", "",
                                 [&](std::string_view k, std::string_view v) {
                                   if (NotAnEffect(table, k)) return true;
                                   absl::StrAppend(
                                       &state, t, "|",
                                       absl::CHexEscape(std::string(k)), "=",
                                       absl::CHexEscape(std::string(v)), "\n");
                                   return true;
                                 })
                          .ok());
        }
      }
    }
    const fs::path backups = BackupDirOf(config_);
    std::error_code ec;
    if (fs::exists(backups, ec)) {
      std::set<std::string> names;
      for (const auto& e : fs::directory_iterator(backups, ec)) {
        names.insert(e.path().filename().string());
      }
      for (const std::string& n : names) absl::StrAppend(&state, "backup ", n);
    }
    StartServer();
    return state;
  }

  RawResult Call(const std::string& role, const std::string& method,
                 const std::vector<std::string>& messages) {
    return CallRaw(channel_, role, method, messages);
  }

  std::unique_ptr<grpc::ClientContext> As(const std::string& role) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("x-ssc-caller", role + "-walk");
    ctx->AddMetadata("x-ssc-role", role);
    ctx->AddMetadata("x-ssc-operator", role + "-operator");
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::seconds(60));
    return ctx;
  }

  std::string dir_;
  ServerConfig config_;
  storage::ManualClock clock_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

// ---------------------------------------------------------------------------
// What the recipes build on: people, cards and e-cards made through the
// typed stubs.

class World {
 public:
  World(std::function<std::shared_ptr<grpc::Channel>()> channel,
        const storage::Clock* clock)
      : channel_(std::move(channel)), clock_(clock) {}

  std::string Rid() { return absl::StrCat("setup-", ++rid_); }
  std::string NewIdNumber() { return bench::SyntheticIdNumber(++person_); }

  std::unique_ptr<grpc::ClientContext> As(const std::string& role) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("x-ssc-caller", role + "-walk");
    ctx->AddMetadata("x-ssc-role", role);
    ctx->AddMetadata("x-ssc-operator", role + "-operator");
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::seconds(60));
    return ctx;
  }
  std::unique_ptr<v1::CardService::Stub> Card() {
    return v1::CardService::NewStub(channel_());
  }
  std::unique_ptr<v1::ECardService::Stub> ECard() {
    return v1::ECardService::NewStub(channel_());
  }
  std::unique_ptr<v1::PayoutService::Stub> Payout() {
    return v1::PayoutService::NewStub(channel_());
  }

  v1::ApplyCardRequest ApplyRequest(const std::string& id_number,
                                    bool instant) {
    v1::ApplyCardRequest r;
    r.mutable_person()->set_id_number(id_number);
    r.mutable_person()->set_name("张三");
    r.mutable_person()->set_phone("13800001234");
    r.mutable_person()->set_address("叙永镇西城街1号");
    r.mutable_person()->set_region_code("510524100");
    r.set_bank_code("ICBC");
    r.set_photo_ref("photo-0001");
    if (instant) {
      r.set_instant_issuance(true);
      r.set_bank_account(absl::StrFormat("62220200%08d", person_));
    }
    return r;
  }
  v1::Card Apply(const std::string& id_number, bool instant) {
    v1::ApplyCardRequest r = ApplyRequest(id_number, instant);
    r.set_request_id(Rid());
    last_id_ = id_number;
    v1::ApplyCardResponse resp;
    Check(Card()->ApplyCard(As("counter").get(), r, &resp), "ApplyCard");
    return resp.card();
  }
  // A card in production (applied and sent).
  std::string InProduction() {
    const v1::Card c = Apply(NewIdNumber(), false);
    v1::SendToProductionRequest r;
    r.set_request_id(Rid());
    r.add_application_ids(c.application_id());
    v1::SendToProductionResponse resp;
    Check(Card()->SendToProduction(As("card_bureau").get(), r, &resp),
          "SendToProduction");
    return c.application_id();
  }
  v1::RecordProductionRequest ProductionResult(const std::string& app_id) {
    v1::RecordProductionRequest r;
    r.set_application_id(app_id);
    r.set_card_number(bench::SyntheticCardNumber('X', 50000 + ++card_));
    r.set_identification_code(bench::SyntheticIdentificationCode(card_));
    r.set_spec_version("3.00");
    r.set_bank_code("ICBC");
    r.set_bank_account(absl::StrFormat("62170000%08d", card_));
    r.set_valid_from("2026-01-01");
    r.set_valid_until("2036-01-01");
    return r;
  }
  // A PRODUCED card's number.
  std::string Produced() {
    v1::RecordProductionRequest r = ProductionResult(InProduction());
    r.set_request_id(Rid());
    v1::RecordProductionResponse resp;
    Check(Card()->RecordProduction(As("card_bureau").get(), r, &resp),
          "RecordProduction");
    return resp.card().card_number();
  }
  // A handed-over, not yet activated card (instant issuance).
  v1::Card Issued() { return Apply(NewIdNumber(), true); }
  // An ACTIVE card.
  v1::Card Active() {
    const v1::Card c = Issued();
    v1::ActivateCardRequest r;
    r.set_request_id(Rid());
    r.mutable_card()->set_card_number(c.card_number());
    v1::ActivateCardResponse resp;
    Check(Card()->ActivateCard(As("counter").get(), r, &resp), "ActivateCard");
    return resp.card();
  }
  void ReportLoss(const std::string& card_number, v1::LossKind kind) {
    v1::ReportLossRequest r;
    r.set_request_id(Rid());
    r.mutable_card()->set_card_number(card_number);
    r.set_kind(kind);
    v1::ReportLossResponse resp;
    Check(Card()->ReportLoss(As("counter").get(), r, &resp), "ReportLoss");
  }

  v1::IssueECardRequest IssueECardRequest(const std::string& id_number) {
    v1::IssueECardRequest r;
    r.set_id_number(id_number);
    r.set_name("张三");
    r.mutable_evidence()->set_method(v1::VERIFICATION_METHOD_FACE_LIVENESS);
    r.mutable_evidence()->set_reference("face-0001");
    r.mutable_evidence()->mutable_verified_at()->set_seconds(
        absl::ToUnixSeconds(clock_->Now()));
    return r;
  }
  // The e-card id of a new holder (ACTIVE card), bound in mobile_channel.
  std::string ECardHolder(std::string* id_number = nullptr) {
    Active();
    v1::IssueECardRequest r = IssueECardRequest(last_id_);
    r.set_request_id(Rid());
    v1::IssueECardResponse resp;
    Check(ECard()->IssueECard(As("mobile_channel").get(), r, &resp),
          "IssueECard");
    if (id_number != nullptr) *id_number = last_id_;
    return resp.ecard().ecard_id();
  }
  v1::AddFamilyMemberRequest FamilyRequest(const std::string& ecard_id) {
    Active();
    v1::AddFamilyMemberRequest r;
    r.set_ecard_id(ecard_id);
    r.set_member_id_number(last_id_);
    r.set_member_name("张三");
    r.set_relationship(v1::FAMILY_RELATIONSHIP_CHILD);
    *r.mutable_evidence() = IssueECardRequest("").evidence();
    return r;
  }

  std::string Programme() {
    v1::RegisterProgrammeRequest r = ProgrammeRequest();
    r.set_request_id(Rid());
    v1::RegisterProgrammeResponse resp;
    Check(Payout()->RegisterProgramme(As("finance_maker").get(), r, &resp),
          "RegisterProgramme");
    return r.programme().code();
  }
  v1::RegisterProgrammeRequest ProgrammeRequest() {
    v1::RegisterProgrammeRequest r;
    r.mutable_programme()->set_code(absl::StrCat("P", ++programme_));
    r.mutable_programme()->set_name("困难残疾人生活补贴");
    r.mutable_programme()->set_category(
        v1::PROGRAMME_CATEGORY_EMPLOYMENT_SUBSIDY);
    r.mutable_programme()->set_unit(v1::BENEFICIARY_UNIT_PER_PERSON);
    r.mutable_programme()->set_max_item_amount_fen(100000);
    return r;
  }
  v1::CreateBatchRequest BatchRequest() {
    v1::CreateBatchRequest r;
    r.set_programme_code(Programme());
    r.set_period("2026-01");
    r.mutable_scheduled_at()->set_seconds(absl::ToUnixSeconds(clock_->Now()));
    r.set_control_count(1);
    r.set_control_amount_fen(10000);
    return r;
  }
  // A batch in DRAFT.
  std::string Batch() {
    v1::CreateBatchRequest r = BatchRequest();
    r.set_request_id(Rid());
    v1::CreateBatchResponse resp;
    Check(Payout()->CreateBatch(As("finance_maker").get(), r, &resp),
          "CreateBatch");
    return resp.batch().batch_id();
  }
  v1::UploadItemsRequest Items(const std::string& batch_id) {
    Active();
    v1::UploadItemsRequest r;
    r.set_batch_id(batch_id);
    v1::PayoutItemInput* i = r.add_items();
    i->set_item_id("item-1");
    i->set_id_number(last_id_);
    i->set_name("张三");
    i->set_amount_fen(10000);
    i->set_note("202601");
    return r;
  }
  // A batch with its items uploaded.
  std::string Uploaded() {
    const std::string b = Batch();
    v1::UploadItemsRequest r = Items(b);
    r.set_request_id(Rid());
    v1::UploadItemsResponse resp;
    auto ctx = As("finance_maker");
    auto w = Payout()->UploadItems(ctx.get(), &resp);
    w->Write(r);
    w->WritesDone();
    Check(w->Finish(), "UploadItems");
    return b;
  }
  std::string Sealed() {
    const std::string b = Uploaded();
    v1::SealBatchRequest r;
    r.set_request_id(Rid());
    r.set_batch_id(b);
    v1::SealBatchResponse resp;
    Check(Payout()->SealBatch(As("finance_maker").get(), r, &resp),
          "SealBatch");
    return b;
  }
  std::string Submitted() {
    const std::string b = Sealed();
    v1::SubmitBatchRequest r;
    r.set_request_id(Rid());
    r.set_batch_id(b);
    v1::SubmitBatchResponse resp;
    Check(Payout()->SubmitBatch(As("finance_maker").get(), r, &resp),
          "SubmitBatch");
    return b;
  }

  // The ID number of the person made last.
  const std::string& last_id() const { return last_id_; }

 private:
  void Check(const grpc::Status& s, const char* what) {
    EXPECT_TRUE(s.ok()) << "setup " << what << ": " << s.error_message();
  }

  std::function<std::shared_ptr<grpc::Channel>()> channel_;
  const storage::Clock* clock_;
  int rid_ = 0, person_ = 0, card_ = 0, programme_ = 0;
  std::string last_id_;
};

// ---------------------------------------------------------------------------
// The mutating methods. One entry each: the role that calls it and how to
// build a request that succeeds (after making what it needs). Where the
// request id lives: `request_id` of the (first) message, except Import,
// whose checkpoint name start.import_id is its request id (admin.proto).

using Messages = std::vector<std::shared_ptr<Message>>;
template <typename M>
std::shared_ptr<Message> Msg(M m) {
  return std::make_shared<M>(std::move(m));
}

struct Mutating {
  std::string role;
  // Null: the success path needs the agent bank, which this test does not
  // run (see tests/payout); the request-id checks use an empty request.
  std::function<Messages(World&)> make;
  std::string id_path = "request_id";
};

std::map<std::string, Mutating> Mutations() {
  std::map<std::string, Mutating> m;
  const std::string card = "ssc.v1.CardService/";
  const std::string ecard = "ssc.v1.ECardService/";
  const std::string payout = "ssc.v1.PayoutService/";
  const std::string report = "ssc.v1.ReportService/";
  const std::string admin = "ssc.v1.AdminService/";

  m[card + "ApplyCard"] = {
      "counter", [](World& w) {
        return Messages{Msg(w.ApplyRequest(w.NewIdNumber(), false))};
      }};
  m[card + "SendToProduction"] = {
      "card_bureau", [](World& w) {
        v1::SendToProductionRequest r;
        r.add_application_ids(w.Apply(w.NewIdNumber(), false).application_id());
        return Messages{Msg(r)};
      }};
  m[card + "RecordProduction"] = {
      "card_bureau", [](World& w) {
        return Messages{Msg(w.ProductionResult(w.InProduction()))};
      }};
  m[card + "IssueCard"] = {"counter", [](World& w) {
                             v1::IssueCardRequest r;
                             r.mutable_card()->set_card_number(w.Produced());
                             return Messages{Msg(r)};
                           }};
  m[card + "ActivateCard"] = {
      "counter", [](World& w) {
        v1::ActivateCardRequest r;
        r.mutable_card()->set_card_number(w.Issued().card_number());
        return Messages{Msg(r)};
      }};
  m[card + "ReportLoss"] = {
      "counter", [](World& w) {
        v1::ReportLossRequest r;
        r.mutable_card()->set_card_number(w.Active().card_number());
        r.set_kind(v1::LOSS_KIND_TEMPORARY);
        return Messages{Msg(r)};
      }};
  m[card + "CancelLossReport"] = {"counter", [](World& w) {
                                    const std::string c =
                                        w.Active().card_number();
                                    w.ReportLoss(c, v1::LOSS_KIND_TEMPORARY);
                                    v1::CancelLossReportRequest r;
                                    r.mutable_card()->set_card_number(c);
                                    return Messages{Msg(r)};
                                  }};
  m[card + "ApplyReplacement"] = {"counter", [](World& w) {
                                    const std::string c =
                                        w.Active().card_number();
                                    w.ReportLoss(c, v1::LOSS_KIND_FORMAL);
                                    v1::ApplyReplacementRequest r;
                                    r.mutable_card()->set_card_number(c);
                                    r.set_reason(v1::REPLACEMENT_REASON_LOST);
                                    r.set_bank_code("ICBC");
                                    return Messages{Msg(r)};
                                  }};
  m[card + "CancelCard"] = {
      "counter", [](World& w) {
        v1::CancelCardRequest r;
        r.mutable_card()->set_card_number(w.Active().card_number());
        r.set_reason(v1::CANCEL_REASON_MOVED_OUT);
        return Messages{Msg(r)};
      }};
  m[card + "UpdateHolderContact"] = {"counter", [](World& w) {
                                       w.Active();
                                       v1::UpdateHolderContactRequest r;
                                       r.set_id_number(w.last_id());
                                       r.set_phone("13900005678");
                                       return Messages{Msg(r)};
                                     }};

  m[ecard + "IssueECard"] = {
      "mobile_channel", [](World& w) {
        w.Active();
        return Messages{Msg(w.IssueECardRequest(w.last_id()))};
      }};
  m[ecard + "UnbindChannel"] = {"mobile_channel", [](World& w) {
                                  v1::UnbindChannelRequest r;
                                  r.set_ecard_id(w.ECardHolder());
                                  r.set_channel("mobile_channel-walk");
                                  return Messages{Msg(r)};
                                }};
  m[ecard + "RevokeECard"] = {"counter", [](World& w) {
                                v1::RevokeECardRequest r;
                                r.set_ecard_id(w.ECardHolder());
                                r.set_reason("holder asked");
                                return Messages{Msg(r)};
                              }};
  m[ecard + "AddFamilyMember"] = {
      "mobile_channel",
      [](World& w) { return Messages{Msg(w.FamilyRequest(w.ECardHolder()))}; }};
  m[ecard + "RemoveFamilyMember"] = {
      "mobile_channel", [](World& w) {
        const std::string e = w.ECardHolder();
        v1::AddFamilyMemberRequest add = w.FamilyRequest(e);
        add.set_request_id(w.Rid());
        v1::AddFamilyMemberResponse added;
        EXPECT_TRUE(
            w.ECard()
                ->AddFamilyMember(w.As("mobile_channel").get(), add, &added)
                .ok());
        v1::RemoveFamilyMemberRequest r;
        r.set_ecard_id(e);
        r.set_member_ecard_id(added.member().ecard_id());
        return Messages{Msg(r)};
      }};
  m[ecard + "VerifyQrCode"] = {
      "terminal", [](World& w) {
        v1::GenerateQrCodeRequest g;
        g.set_ecard_id(w.ECardHolder());
        g.set_business_type(v1::BUSINESS_TYPE_PAYMENT);
        v1::GenerateQrCodeResponse code;
        EXPECT_TRUE(w.ECard()
                        ->GenerateQrCode(w.As("mobile_channel").get(), g, &code)
                        .ok());
        v1::VerifyQrCodeRequest r;
        r.set_payload(code.payload());
        r.set_business_type(v1::BUSINESS_TYPE_PAYMENT);
        return Messages{Msg(r)};
      }};
  m[ecard + "RotateSigningKey"] = {
      "admin",
      [](World&) { return Messages{Msg(v1::RotateSigningKeyRequest())}; }};

  m[payout + "RegisterProgramme"] = {
      "finance_maker",
      [](World& w) { return Messages{Msg(w.ProgrammeRequest())}; }};
  m[payout + "SetBudget"] = {"finance_maker", [](World& w) {
                               v1::SetBudgetRequest r;
                               r.set_programme_code(w.Programme());
                               r.set_period("2026-01");
                               r.set_amount_fen(1000000);
                               return Messages{Msg(r)};
                             }};
  m[payout + "CreateBatch"] = {"finance_maker", [](World& w) {
                                 return Messages{Msg(w.BatchRequest())};
                               }};
  // Two messages, so that the stream (not one message) is what is answered
  // once; Vary() changes the first message's batch_id.
  m[payout + "UploadItems"] = {
      "finance_maker", [](World& w) {
        return Messages{Msg(w.Items(w.Batch())), Msg(v1::UploadItemsRequest())};
      }};
  m[payout + "SealBatch"] = {"finance_maker", [](World& w) {
                               v1::SealBatchRequest r;
                               r.set_batch_id(w.Uploaded());
                               return Messages{Msg(r)};
                             }};
  m[payout + "SubmitBatch"] = {"finance_maker", [](World& w) {
                                 v1::SubmitBatchRequest r;
                                 r.set_batch_id(w.Sealed());
                                 return Messages{Msg(r)};
                               }};
  m[payout + "RejectBatch"] = {"finance_checker", [](World& w) {
                                 v1::RejectBatchRequest r;
                                 r.set_batch_id(w.Submitted());
                                 r.set_reason("amounts to be checked");
                                 return Messages{Msg(r)};
                               }};
  m[payout + "CancelBatch"] = {"finance_maker", [](World& w) {
                                 v1::CancelBatchRequest r;
                                 r.set_batch_id(w.Batch());
                                 r.set_reason("created twice");
                                 return Messages{Msg(r)};
                               }};
  m[payout + "ApproveBatch"] = {"finance_checker", nullptr};
  m[payout + "PauseBatch"] = {"finance_maker", nullptr};
  m[payout + "ResumeBatch"] = {"finance_checker", nullptr};
  m[payout + "Reconcile"] = {"finance_maker", nullptr};
  m[payout + "CreateRetryBatch"] = {"finance_maker", nullptr};

  m[report + "SetResidentPopulation"] = {"admin", [](World&) {
                                           v1::SetResidentPopulationRequest r;
                                           r.set_region_code("510524100");
                                           r.set_year(2024);
                                           r.set_population(41000);
                                           r.set_source("统计年鉴");
                                           return Messages{Msg(r)};
                                         }};
  m[report + "SetTarget"] = {
      "admin", [](World&) {
        v1::SetTargetRequest r;
        r.mutable_target()->set_indicator(v1::INDICATOR_CARD_HOLDERS);
        r.mutable_target()->set_region_code("510524");
        r.mutable_target()->set_target_year(2030);
        r.mutable_target()->set_target_value(700000);
        r.mutable_target()->set_source("专栏2");
        return Messages{Msg(r)};
      }};

  m[admin + "CreateBackup"] = {
      "admin", [](World&) { return Messages{Msg(v1::CreateBackupRequest())}; }};
  // Resuming by import_id is tested with real files in tests/ops.
  m[admin + "Import"] = {"admin", nullptr, "start.import_id"};
  // The re-encryption job a rotation starts keeps writing its checkpoint in
  // the background, so this walk's store comparisons cannot tell one effect;
  // a rotation per request id is tested in tests/ops/key_rotation_test.
  m[admin + "RotateDataKey"] = {"admin", nullptr};
  // Needs a restored store and the agent bank: tests/payout/restore_fence_test
  // and tests/ops/server_ops_test.
  m[admin + "ReconcileBankAfterRestore"] = {"admin", nullptr};
  return m;
}

// Sets the string field at `path` ("start.import_id") of `m`.
void SetPath(Message* m, const std::string& path, const std::string& value) {
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    const FieldDescriptor* f = m->GetDescriptor()->FindFieldByName(parts[i]);
    ASSERT_NE(f, nullptr) << path;
    m = m->GetReflection()->MutableMessage(m, f);
  }
  const FieldDescriptor* f = m->GetDescriptor()->FindFieldByName(parts.back());
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(f->type(), FieldDescriptor::TYPE_STRING) << path;
  m->GetReflection()->SetString(m, f, value);
}

// Another request: the last set field other than the request id changed
// (strings get a suffix, numbers + 1, booleans flipped, enums another
// value); a request with no such field gets an unknown field.
void Vary(Message* m, const std::string& id_path) {
  std::function<bool(Message*, const std::string&)> vary =
      [&](Message* msg, const std::string& prefix) {
        std::vector<const FieldDescriptor*> fields;
        msg->GetReflection()->ListFields(*msg, &fields);
        const google::protobuf::Reflection* r = msg->GetReflection();
        // Last fields first: identifiers (validated before anything else)
        // tend to come first, free text last.
        std::reverse(fields.begin(), fields.end());
        for (const FieldDescriptor* f : fields) {
          const std::string path = prefix + f->name();
          if (path == id_path || f->is_repeated()) continue;
          switch (f->cpp_type()) {
            case FieldDescriptor::CPPTYPE_STRING:
              r->SetString(msg, f, r->GetString(*msg, f) + "9");
              return true;
            case FieldDescriptor::CPPTYPE_INT32:
              r->SetInt32(msg, f, r->GetInt32(*msg, f) + 1);
              return true;
            case FieldDescriptor::CPPTYPE_INT64:
              r->SetInt64(msg, f, r->GetInt64(*msg, f) + 1);
              return true;
            case FieldDescriptor::CPPTYPE_BOOL:
              r->SetBool(msg, f, !r->GetBool(*msg, f));
              return true;
            case FieldDescriptor::CPPTYPE_ENUM: {
              const auto* e = f->enum_type();
              const int cur = r->GetEnumValue(*msg, f);
              r->SetEnumValue(msg, f,
                              e->value(e->value_count() - 1)->number() == cur
                                  ? e->value(1)->number()
                                  : e->value(e->value_count() - 1)->number());
              return true;
            }
            case FieldDescriptor::CPPTYPE_MESSAGE:
              if (vary(r->MutableMessage(msg, f), path + ".")) return true;
              break;
            default:
              break;
          }
        }
        return false;
      };
  if (!vary(m, "")) {
    m->GetReflection()->MutableUnknownFields(m)->AddVarint(1000, 1);
  }
}

std::vector<std::string> Serialize(const Messages& ms) {
  std::vector<std::string> out;
  for (const auto& m : ms) out.push_back(m->SerializeAsString());
  return out;
}

TEST_F(EveryRpcTest, EveryMethodIsReadOnlyOrListedAsMutating) {
  const std::map<std::string, Mutating> mutations = Mutations();
  std::set<std::string> seen;
  for (const MethodDescriptor* m : AllSscMethods()) {
    const std::string name = FullName(m);
    seen.insert(name);
    const bool read_only = ReadOnly().count(name) > 0;
    const bool mutating = mutations.count(name) > 0;
    EXPECT_TRUE(read_only || mutating)
        << name
        << " is neither in ReadOnly() nor in Mutations(): say which it is";
    EXPECT_FALSE(read_only && mutating) << name << " is listed twice";
    if (!mutating) continue;
    // The request id is a string field of the (first) message.
    const Descriptor* d = m->input_type();
    std::vector<std::string> parts =
        absl::StrSplit(mutations.at(name).id_path, '.');
    const FieldDescriptor* f = nullptr;
    for (const std::string& p : parts) {
      f = d == nullptr ? nullptr : d->FindFieldByName(p);
      if (f == nullptr) break;
      d = f->message_type();
    }
    ASSERT_NE(f, nullptr) << name << " has no " << mutations.at(name).id_path;
    EXPECT_EQ(f->type(), FieldDescriptor::TYPE_STRING) << name;
  }
  for (const auto& [name, unused] : mutations) {
    EXPECT_TRUE(seen.count(name)) << name << " is not a method of ssc.v1";
  }
  for (const std::string& name : ReadOnly()) {
    EXPECT_TRUE(seen.count(name)) << name << " is not a method of ssc.v1";
  }
}

TEST_F(EveryRpcTest, EveryMutatingMethodIsExactlyOncePerRequestId) {
  World world([this] { return channel_; }, &clock_);
  const std::map<std::string, Mutating> mutations = Mutations();
  int with_success_path = 0;
  for (const MethodDescriptor* md : AllSscMethods()) {
    const std::string method = FullName(md);
    auto it = mutations.find(method);
    if (it == mutations.end()) continue;
    const Mutating& mu = it->second;
    SCOPED_TRACE(method);

    Messages request;
    if (mu.make != nullptr) {
      request = mu.make(world);
    } else {
      std::shared_ptr<Message> empty(
          google::protobuf::MessageFactory::generated_factory()
              ->GetPrototype(md->input_type())
              ->New());
      request.push_back(empty);
    }
    ASSERT_FALSE(request.empty());

    // 1. An empty request id: INVALID_ARGUMENT naming it, nothing written.
    SetPath(request[0].get(), mu.id_path, "");
    const std::string before = StoreState();
    RawResult r = Call(mu.role, method, Serialize(request));
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << r.status.error_message();
    EXPECT_EQ(ViolatedFields(r.status), std::vector<std::string>{mu.id_path})
        << r.status.error_message();
    EXPECT_EQ(StoreState(), before) << "an empty request id wrote something";
    if (mu.make == nullptr) continue;
    ++with_success_path;

    // 2. The same id and request twice: the same answer, one effect.
    SetPath(request[0].get(), mu.id_path,
            absl::StrCat("walk-", md->name(), "-1"));
    RawResult first = Call(mu.role, method, Serialize(request));
    if (!first.status.ok()) {
      ADD_FAILURE() << "the recipe's request failed: "
                    << first.status.error_message();
      continue;
    }
    const std::string after_first = StoreState();
    RawResult again = Call(mu.role, method, Serialize(request));
    EXPECT_TRUE(again.status.ok()) << again.status.error_message();
    EXPECT_EQ(again.responses, first.responses) << "not the original answer";

    // 3. The same id with another request: ALREADY_EXISTS.
    Vary(request[0].get(), mu.id_path);
    RawResult other = Call(mu.role, method, Serialize(request));
    EXPECT_EQ(other.status.error_code(), grpc::StatusCode::ALREADY_EXISTS)
        << other.status.error_message();
    EXPECT_EQ(StoreState(), after_first)
        << "a repeated or conflicting request changed the store";
  }
  EXPECT_GE(with_success_path, 24);
}

// ---------------------------------------------------------------------------
// Invalid UTF-8.

// A path from `d` to a string field, preferring fields of the message
// itself: {outer message fields..., the string field}.
bool StringFieldPath(const Descriptor* d, int depth,
                     std::vector<const FieldDescriptor*>* path) {
  for (int i = 0; i < d->field_count(); ++i) {
    if (d->field(i)->type() == FieldDescriptor::TYPE_STRING) {
      path->push_back(d->field(i));
      return true;
    }
  }
  if (depth == 0) return false;
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->type() != FieldDescriptor::TYPE_MESSAGE || f->is_map()) continue;
    path->push_back(f);
    if (StringFieldPath(f->message_type(), depth - 1, path)) return true;
    path->pop_back();
  }
  return false;
}

void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// Wire bytes with `value` in the string field at the end of `path`.
std::string Encode(const std::vector<const FieldDescriptor*>& path,
                   const std::string& value) {
  std::string inner = value;
  for (auto it = path.rbegin(); it != path.rend(); ++it) {
    std::string outer;
    AppendVarint((static_cast<uint64_t>((*it)->number()) << 3) | 2, &outer);
    AppendVarint(inner.size(), &outer);
    outer += inner;
    inner = std::move(outer);
  }
  return inner;
}

uint64_t ServerErrorsCounted() {
  uint64_t n = 0;
  for (const MethodDescriptor* m : AllSscMethods()) {
    for (const char* code : {"INTERNAL", "UNKNOWN", "DATA_LOSS"}) {
      n += common::Metrics()
               .GetCounter(
                   "ssc_rpc_requests_total",
                   "RPCs handled, by full method and status code.",
                   {{"method", absl::StrCat("/", FullName(m))}, {"code", code}})
               ->value();
    }
  }
  return n;
}

TEST_F(EveryRpcTest, InvalidUtf8IsInvalidArgumentNamingTheField) {
  const uint64_t server_errors = ServerErrorsCounted();
  int tested = 0, without_strings = 0;
  for (const MethodDescriptor* md : AllSscMethods()) {
    const std::string method = FullName(md);
    SCOPED_TRACE(method);
    std::vector<const FieldDescriptor*> path;
    if (!StringFieldPath(md->input_type(), 4, &path)) {
      ++without_strings;  // nothing that could hold bad UTF-8
      continue;
    }
    std::vector<std::string> names;
    for (const FieldDescriptor* f : path) names.push_back(f->name());
    const std::string field = absl::StrJoin(names, ".");
    // Sanity: the same bytes with valid UTF-8 decode as the request.
    std::unique_ptr<Message> probe(
        google::protobuf::MessageFactory::generated_factory()
            ->GetPrototype(md->input_type())
            ->New());
    ASSERT_TRUE(probe->ParseFromString(Encode(path, "ok")));

    // "\xc3\x28": a two-byte sequence with a bad continuation byte.
    RawResult r =
        Call("admin", method, {Encode(path, std::string("a\xc3\x28z"))});
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << field << ": " << r.status.error_message();
    EXPECT_EQ(ViolatedFields(r.status), std::vector<std::string>{field})
        << r.status.error_message();
    EXPECT_NE(r.status.error_message().find(field), std::string::npos)
        << r.status.error_message();
    ++tested;
  }
  EXPECT_EQ(tested + without_strings, static_cast<int>(AllSscMethods().size()));
  EXPECT_GE(tested, 50);
  EXPECT_EQ(ServerErrorsCounted(), server_errors)
      << "a client's bad bytes were counted as server errors";
}

}  // namespace
}  // namespace ssc::sscd
