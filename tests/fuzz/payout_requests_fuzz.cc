// Fuzz target: PayoutService requests on PayoutLogic over a real store, with
// the bank simulator in the same process; see fuzz_store.h. The streams are
// driven as the gRPC adapter drives them: an UploadItems message is one
// chunk of its stream, WatchBatch stops at its first message.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "services/banksim/bank_sim.h"
#include "services/payout/bank_gateway.h"
#include "services/payout/payout_logic.h"
#include "tests/fuzz/fuzz_store.h"

namespace ssc::fuzz {
namespace {

// BankGateway calling the simulator directly.
class InProcessBank : public payout::BankGateway {
 public:
  explicit InProcessBank(banksim::BankSim* sim) : sim_(sim) {}
  absl::Status Submit(const bank::v1::SubmitInstructionsRequest& r,
                      bank::v1::SubmitInstructionsResponse* out) override {
    auto got = sim_->Submit(r);
    if (!got.ok()) return got.status();
    *out = *std::move(got);
    return absl::OkStatus();
  }
  absl::Status Status(const bank::v1::GetInstructionStatusRequest& r,
                      bank::v1::GetInstructionStatusResponse* out) override {
    auto got = sim_->Status(r);
    if (!got.ok()) return got.status();
    *out = *std::move(got);
    return absl::OkStatus();
  }
  absl::Status Statement(
      const std::string& batch,
      const std::function<bool(const bank::v1::GetStatementResponse&)>& emit)
      override {
    return sim_->Statement(batch, 100, emit);
  }
  absl::Status List(const bank::v1::ListInstructionsRequest& r,
                    bank::v1::ListInstructionsResponse* out) override {
    auto got = sim_->List(r);
    if (!got.ok()) return got.status();
    *out = *std::move(got);
    return absl::OkStatus();
  }

 private:
  banksim::BankSim* sim_;
};

template <typename Req>
bool Parse(std::string_view bytes, Req* req) {
  return req->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

struct Target {
  Target() {
    auto sim =
        banksim::BankSim::Create(bank_engine.get(), bank_cipher.get(),
                                 &store.clock(), banksim::BankSimOptions{});
    if (!sim.ok()) std::abort();
    bank_sim = std::move(*sim);
    gateway = std::make_unique<InProcessBank>(bank_sim.get());
    logic = std::make_unique<payout::PayoutLogic>(store.ctx(), store.cards(),
                                                  gateway.get());
    using L = payout::PayoutLogic;
    L* p = logic.get();
    const std::string s = "ssc.v1.PayoutService/";
    std::map<std::string, Call> calls{
        {"RegisterProgramme",
         Unary(s + "RegisterProgramme", p, &L::RegisterProgramme)},
        {"GetProgramme", Unary(s + "GetProgramme", p, &L::GetProgramme)},
        {"SetBudget", Unary(s + "SetBudget", p, &L::SetBudget)},
        {"GetBudget", Unary(s + "GetBudget", p, &L::GetBudget)},
        {"CreateBatch", Unary(s + "CreateBatch", p, &L::CreateBatch)},
        {"SealBatch", Unary(s + "SealBatch", p, &L::SealBatch)},
        {"SubmitBatch", Unary(s + "SubmitBatch", p, &L::SubmitBatch)},
        {"ApproveBatch", Unary(s + "ApproveBatch", p, &L::ApproveBatch)},
        {"RejectBatch", Unary(s + "RejectBatch", p, &L::RejectBatch)},
        {"CancelBatch", Unary(s + "CancelBatch", p, &L::CancelBatch)},
        {"PauseBatch", Unary(s + "PauseBatch", p, &L::PauseBatch)},
        {"ResumeBatch", Unary(s + "ResumeBatch", p, &L::ResumeBatch)},
        {"GetBatch", Unary(s + "GetBatch", p, &L::GetBatch)},
        {"ListBatchItems", Unary(s + "ListBatchItems", p, &L::ListBatchItems)},
        {"Reconcile", Unary(s + "Reconcile", p, &L::Reconcile)},
        {"CreateRetryBatch",
         Unary(s + "CreateRetryBatch", p, &L::CreateRetryBatch)},
    };
    calls["UploadItems"] = [p, s](const common::Caller& caller,
                                  std::string_view bytes) {
      ssc::v1::UploadItemsRequest req;
      if (!Parse(bytes, &req)) return;
      auto prepared = p->PrepareUpload(caller, req.batch_id(), req.request_id(),
                                       req.items());
      CheckClientError(s + "UploadItems", prepared.status());
      if (prepared.ok()) {
        CheckClientError(s + "UploadItems",
                         p->CommitUpload(**prepared).status());
      }
    };
    calls["WatchBatch"] = [p, s](const common::Caller& caller,
                                 std::string_view bytes) {
      ssc::v1::WatchBatchRequest req;
      if (!Parse(bytes, &req)) return;
      CheckClientError(
          s + "WatchBatch",
          p->WatchBatch(
              caller, req,
              [](const ssc::v1::WatchBatchResponse&) { return false; },
              [] { return true; }));
    };
    calls["ExportBatchResults"] = [p, s](const common::Caller& caller,
                                         std::string_view bytes) {
      ssc::v1::ExportBatchResultsRequest req;
      if (!Parse(bytes, &req)) return;
      CheckClientError(
          s + "ExportBatchResults",
          p->ExportBatchResults(
              caller, req,
              [](const ssc::v1::ExportBatchResultsResponse&) { return true; }));
    };
    fuzzer = std::make_unique<ServiceFuzzer>(
        "ssc.v1.PayoutService", std::move(calls),
        std::map<std::string, std::string>{});
  }

  FuzzStore store;
  std::unique_ptr<storage::Engine> bank_engine = store.OpenEngine("bank");
  std::unique_ptr<storage::PiiCipher> bank_cipher =
      storage::PiiCipher::ForTesting("fuzz-bank");
  std::unique_ptr<banksim::BankSim> bank_sim;
  std::unique_ptr<InProcessBank> gateway;
  std::unique_ptr<payout::PayoutLogic> logic;
  std::unique_ptr<ServiceFuzzer> fuzzer;
};

}  // namespace
}  // namespace ssc::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ssc::fuzz::Target target;
  target.fuzzer->Run(data, size);
  return 0;
}
