#include "bench/scenarios.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/synthetic_ids.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"
#include "ssc/v1/card.grpc.pb.h"

namespace ssc::bench {
namespace {

// One call in flight: its context, messages and timer live until the
// callback has run.
template <typename Req, typename Resp>
struct Call {
  std::unique_ptr<grpc::ClientContext> ctx;
  Req request;
  Resp response;
  CallTimer timer;
  explicit Call(RpcStats* stats) : timer(stats) {}
};

class EmptyScenario final : public Scenario {
 public:
  explicit EmptyScenario(const ScenarioOptions& o) : o_(o) {
    for (const auto& ch : o.channels) {
      stubs_.push_back(std::make_unique<grpc::GenericStub>(ch));
    }
  }

  std::string name() const override { return "empty"; }
  int mutations_per_flow() const override { return 0; }
  int calls_per_flow() const override { return 1; }
  void RegisterRpcs(RunStats& stats) override {
    stats_ = &stats;
    check_ = stats.Register("Health/Check");
  }

  void StartFlow(uint64_t n, std::function<void(bool)> done) override {
    auto* call = new Call<grpc::ByteBuffer, grpc::ByteBuffer>(check_);
    call->ctx = sscctl::NewCallContext(*o_.connection);
    // An empty HealthCheckRequest (service "" = the whole server): one empty
    // slice; a ByteBuffer without any slice is not a valid message.
    grpc::Slice empty;
    call->request = grpc::ByteBuffer(&empty, 1);
    stubs_[n % stubs_.size()]->UnaryCall(
        call->ctx.get(), kMethod, grpc::StubOptions(), &call->request,
        &call->response, [this, call, done = std::move(done)](grpc::Status s) {
          call->timer.Finish(s);
          if (!s.ok()) stats_->NoteError("Health/Check", s);
          delete call;
          done(s.ok());
        });
  }

 private:
  // Kept in a member: the stub stores the method name's pointer.
  const std::string kMethod = "/grpc.health.v1.Health/Check";
  ScenarioOptions o_;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs_;
  RunStats* stats_ = nullptr;
  RpcStats* check_ = nullptr;
};

// apply -> send-to-production -> record-production -> issue -> activate.
class CardFlowScenario final : public Scenario {
 public:
  explicit CardFlowScenario(const ScenarioOptions& o) : o_(o) {
    for (const auto& ch : o.channels) {
      stubs_.push_back(ssc::v1::CardService::NewStub(ch));
    }
    const absl::CivilDay today =
        absl::ToCivilDay(absl::Now(), absl::FixedTimeZone(8 * 3600));
    valid_from_ = absl::FormatCivilTime(today);
    valid_until_ = absl::FormatCivilTime(
        absl::CivilDay(today.year() + 10, today.month(), today.day()));
    run_tag_ = absl::StrCat(o.id_base);
  }

  std::string name() const override { return "card_flow"; }
  int mutations_per_flow() const override { return 5; }
  int calls_per_flow() const override { return 5; }
  void RegisterRpcs(RunStats& stats) override {
    stats_ = &stats;
    apply_ = stats.Register("ApplyCard");
    send_ = stats.Register("SendToProduction");
    record_ = stats.Register("RecordProduction");
    issue_ = stats.Register("IssueCard");
    activate_ = stats.Register("ActivateCard");
  }

  void StartFlow(uint64_t n, std::function<void(bool)> done) override {
    auto* call =
        NewCall<ssc::v1::ApplyCardRequest, ssc::v1::ApplyCardResponse>(apply_);
    auto& r = call->request;
    r.set_request_id(RequestId(n, "apply"));
    auto* p = r.mutable_person();
    p->set_id_number(SyntheticIdNumber(o_.id_base + n));
    p->set_name("张三");
    p->set_phone(absl::StrCat("139", 10000000 + (o_.id_base + n) % 90000000));
    p->set_address("四川省泸州市叙永县叙永镇");
    p->set_region_code("510524100");
    r.set_bank_code("ICBC");
    r.set_photo_ref(absl::StrCat("bench/", run_tag_, "/", n));
    StubFor(n)->async()->ApplyCard(
        call->ctx.get(), &call->request, &call->response,
        [this, call, n, done = std::move(done)](grpc::Status s) mutable {
          call->timer.Finish(s);
          const std::string app_id = call->response.card().application_id();
          delete call;
          if (!s.ok()) return Fail("ApplyCard", s, done);
          Send(n, app_id, std::move(done));
        });
  }

 private:
  template <typename Req, typename Resp>
  Call<Req, Resp>* NewCall(RpcStats* stats) {
    auto* call = new Call<Req, Resp>(stats);
    call->ctx = sscctl::NewCallContext(*o_.connection);
    return call;
  }

  ssc::v1::CardService::Stub* StubFor(uint64_t n) {
    return stubs_[n % stubs_.size()].get();
  }

  std::string RequestId(uint64_t n, const char* step) const {
    return absl::StrCat("bench-", run_tag_, "-", n, "-", step);
  }

  void Fail(const char* rpc, const grpc::Status& s,
            std::function<void(bool)>& done) {
    stats_->NoteError(rpc, s);
    done(false);
  }

  void Send(uint64_t n, std::string app_id, std::function<void(bool)> done) {
    auto* call = NewCall<ssc::v1::SendToProductionRequest,
                         ssc::v1::SendToProductionResponse>(send_);
    call->request.set_request_id(RequestId(n, "send"));
    call->request.add_application_ids(app_id);
    StubFor(n)->async()->SendToProduction(
        call->ctx.get(), &call->request, &call->response,
        [this, call, n, app_id,
         done = std::move(done)](grpc::Status s) mutable {
          call->timer.Finish(s);
          delete call;
          if (!s.ok()) return Fail("SendToProduction", s, done);
          Record(n, std::move(app_id), std::move(done));
        });
  }

  void Record(uint64_t n, std::string app_id, std::function<void(bool)> done) {
    auto* call = NewCall<ssc::v1::RecordProductionRequest,
                         ssc::v1::RecordProductionResponse>(record_);
    auto& r = call->request;
    r.set_request_id(RequestId(n, "record"));
    r.set_application_id(app_id);
    r.set_card_number(SyntheticCardNumber(o_.card_letter, o_.card_base + n));
    r.set_identification_code(SyntheticIdentificationCode(o_.id_base + n));
    r.set_spec_version("3.00");
    r.set_bank_code("ICBC");
    r.set_bank_account(
        absl::StrCat("6222", 100000000000000ULL + o_.id_base + n));
    r.set_valid_from(valid_from_);
    r.set_valid_until(valid_until_);
    StubFor(n)->async()->RecordProduction(
        call->ctx.get(), &call->request, &call->response,
        [this, call, n, app_id,
         done = std::move(done)](grpc::Status s) mutable {
          call->timer.Finish(s);
          delete call;
          if (!s.ok()) return Fail("RecordProduction", s, done);
          Issue(n, std::move(app_id), std::move(done));
        });
  }

  void Issue(uint64_t n, std::string app_id, std::function<void(bool)> done) {
    auto* call =
        NewCall<ssc::v1::IssueCardRequest, ssc::v1::IssueCardResponse>(issue_);
    call->request.set_request_id(RequestId(n, "issue"));
    call->request.mutable_card()->set_application_id(app_id);
    StubFor(n)->async()->IssueCard(
        call->ctx.get(), &call->request, &call->response,
        [this, call, n, app_id,
         done = std::move(done)](grpc::Status s) mutable {
          call->timer.Finish(s);
          delete call;
          if (!s.ok()) return Fail("IssueCard", s, done);
          Activate(n, std::move(app_id), std::move(done));
        });
  }

  void Activate(uint64_t n, std::string app_id,
                std::function<void(bool)> done) {
    auto* call =
        NewCall<ssc::v1::ActivateCardRequest, ssc::v1::ActivateCardResponse>(
            activate_);
    call->request.set_request_id(RequestId(n, "activate"));
    call->request.mutable_card()->set_application_id(app_id);
    StubFor(n)->async()->ActivateCard(
        call->ctx.get(), &call->request, &call->response,
        [this, call, done = std::move(done)](grpc::Status s) mutable {
          call->timer.Finish(s);
          delete call;
          if (!s.ok()) return Fail("ActivateCard", s, done);
          done(true);
        });
  }

  ScenarioOptions o_;
  std::vector<std::unique_ptr<ssc::v1::CardService::Stub>> stubs_;
  std::string valid_from_, valid_until_, run_tag_;
  RunStats* stats_ = nullptr;
  RpcStats *apply_ = nullptr, *send_ = nullptr, *record_ = nullptr,
           *issue_ = nullptr, *activate_ = nullptr;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Scenario>> MakeScenario(
    const std::string& name, const ScenarioOptions& options) {
  if (name == "empty") return std::make_unique<EmptyScenario>(options);
  if (name == "card_flow") return std::make_unique<CardFlowScenario>(options);
  return absl::InvalidArgumentError(absl::StrCat("--scenario: unknown '", name,
                                                 "'; one of ", kScenarioNames));
}

}  // namespace ssc::bench
