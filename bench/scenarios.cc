#include "bench/scenarios.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/synthetic_ids.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"
#include "ssc/v1/card.grpc.pb.h"
#include "ssc/v1/ecard.grpc.pb.h"
#include "ssc/v1/report.grpc.pb.h"

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

// The connection of one role: its call options (certificate, or plain-text
// identity) and its own channels, one per --channels.
struct RoleConnection {
  sscctl::ConnectionOptions conn;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
};

// With a certs dir, opens channels with <role>.crt/.key; without, reuses the
// run's connection (the caller then must have a role allowed to call).
absl::StatusOr<std::shared_ptr<RoleConnection>> OpenRole(
    const ScenarioOptions& o, const std::string& role, int channel_id_base) {
  auto rc = std::make_shared<RoleConnection>();
  rc->conn = *o.connection;
  if (o.certs_dir.empty()) {
    rc->channels = o.channels;
    return rc;
  }
  rc->conn.cert = absl::StrCat(o.certs_dir, "/", role, ".crt");
  rc->conn.key = absl::StrCat(o.certs_dir, "/", role, ".key");
  if (rc->conn.ca.empty()) rc->conn.ca = absl::StrCat(o.certs_dir, "/ca.crt");
  if (rc->conn.insecure_plaintext) {
    rc->conn.role = role;
    rc->conn.caller = absl::StrCat(role, "-01");
  }
  for (size_t i = 0; i < std::max<size_t>(1, o.channels.size()); ++i) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> ch =
        sscctl::OpenChannel(rc->conn, channel_id_base + static_cast<int>(i));
    if (!ch.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--certs: role ", role, ": ", ch.status().message()));
    }
    rc->channels.push_back(*std::move(ch));
  }
  return rc;
}

// What the qr phases share: the e-cards set up, the pool of generated codes
// and the verification outcomes.
struct QrState {
  ScenarioOptions o;
  std::shared_ptr<RoleConnection> counter, mobile, terminal;
  std::vector<std::string> ecard_ids;
  std::mutex mu;
  std::vector<std::string> pool;  // guarded by mu during generate
  std::chrono::steady_clock::time_point generate_start;
  std::array<std::atomic<uint64_t>, 16> outcomes{};
  uint64_t verify_budget = 0;

  // Person k: an instantly issued card (counter), activated, and its e-card
  // issued in the mobile channel. Blocking calls; run on setup threads.
  absl::Status SetUpPerson(int k, std::string* ecard_id) {
    const uint64_t id = o.id_base + static_cast<uint64_t>(k);
    const std::string tag = absl::StrCat("bench-", o.id_base, "-qr-", k);
    auto card_stub = ssc::v1::CardService::NewStub(
        counter->channels[k % counter->channels.size()]);
    ssc::v1::ApplyCardRequest apply;
    apply.set_request_id(tag + "-apply");
    auto* p = apply.mutable_person();
    p->set_id_number(SyntheticIdNumber(id));
    p->set_name("张三");
    p->set_phone(absl::StrCat("139", 10000000 + id % 90000000));
    p->set_address("四川省泸州市叙永县叙永镇");
    p->set_region_code("510524100");
    apply.set_bank_code("ICBC");
    apply.set_photo_ref(absl::StrCat("bench/qr/", o.id_base, "/", k));
    apply.set_instant_issuance(true);
    apply.set_bank_account(absl::StrCat("6222", 100000000000000ULL + id));
    ssc::v1::ApplyCardResponse applied;
    auto ctx = sscctl::NewCallContext(counter->conn);
    grpc::Status s = card_stub->ApplyCard(ctx.get(), apply, &applied);
    if (!s.ok()) return Err("ApplyCard (instant issuance)", s);

    ssc::v1::ActivateCardRequest activate;
    activate.set_request_id(tag + "-activate");
    activate.mutable_card()->set_application_id(
        applied.card().application_id());
    ssc::v1::ActivateCardResponse activated;
    ctx = sscctl::NewCallContext(counter->conn);
    s = card_stub->ActivateCard(ctx.get(), activate, &activated);
    if (!s.ok()) return Err("ActivateCard", s);

    auto ecard_stub = ssc::v1::ECardService::NewStub(
        mobile->channels[k % mobile->channels.size()]);
    ssc::v1::IssueECardRequest issue;
    issue.set_request_id(tag + "-ecard");
    issue.set_id_number(SyntheticIdNumber(id));
    issue.set_name("张三");
    auto* ev = issue.mutable_evidence();
    ev->set_method(ssc::v1::VERIFICATION_METHOD_FACE_LIVENESS);
    ev->set_reference(tag);
    const absl::Time now = absl::Now() - absl::Seconds(1);
    ev->mutable_verified_at()->set_seconds(absl::ToUnixSeconds(now));
    ssc::v1::IssueECardResponse issued;
    ctx = sscctl::NewCallContext(mobile->conn);
    s = ecard_stub->IssueECard(ctx.get(), issue, &issued);
    if (!s.ok()) return Err("IssueECard", s);
    *ecard_id = issued.ecard().ecard_id();
    return absl::OkStatus();
  }

  absl::Status SetUp() {
    const int k = std::max(1, o.persons);
    ecard_ids.assign(k, "");
    std::vector<absl::Status> errors(k);
    const int threads = std::min(k, 16);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        for (int i = t; i < k; i += threads) {
          errors[i] = SetUpPerson(i, &ecard_ids[i]);
        }
      });
    }
    for (auto& w : workers) w.join();
    for (const absl::Status& e : errors) {
      if (!e.ok()) return e;
    }
    return absl::OkStatus();
  }

  static absl::Status Err(const char* rpc, const grpc::Status& s) {
    return absl::UnknownError(absl::StrCat("qr setup: ", rpc, ": code ",
                                           static_cast<int>(s.error_code()),
                                           ": ", s.error_message()));
  }
};

// GenerateQrCode (mobile_channel) for the set-up e-cards in turn; every code
// goes to the pool.
class QrGenerateScenario final : public Scenario {
 public:
  explicit QrGenerateScenario(std::shared_ptr<QrState> st)
      : st_(std::move(st)) {
    for (const auto& ch : st_->mobile->channels) {
      stubs_.push_back(ssc::v1::ECardService::NewStub(ch));
    }
  }
  std::string name() const override { return "qr generate"; }
  int mutations_per_flow() const override { return 0; }
  int calls_per_flow() const override { return 1; }
  void RegisterRpcs(RunStats& stats) override {
    stats_ = &stats;
    gen_ = stats.Register("GenerateQrCode");
  }
  void StartFlow(uint64_t n, std::function<void(bool)> done) override {
    using C =
        Call<ssc::v1::GenerateQrCodeRequest, ssc::v1::GenerateQrCodeResponse>;
    auto* call = new C(gen_);
    call->ctx = sscctl::NewCallContext(st_->mobile->conn);
    call->request.set_ecard_id(st_->ecard_ids[n % st_->ecard_ids.size()]);
    call->request.set_business_type(ssc::v1::BUSINESS_TYPE_ENQUIRY);
    stubs_[n % stubs_.size()]->async()->GenerateQrCode(
        call->ctx.get(), &call->request, &call->response,
        [this, call, done = std::move(done)](grpc::Status s) {
          call->timer.Finish(s);
          if (s.ok()) {
            std::lock_guard<std::mutex> lock(st_->mu);
            st_->pool.push_back(std::move(*call->response.mutable_payload()));
          } else {
            stats_->NoteError("GenerateQrCode", s);
          }
          delete call;
          done(s.ok());
        });
  }

 private:
  std::shared_ptr<QrState> st_;
  std::vector<std::unique_ptr<ssc::v1::ECardService::Stub>> stubs_;
  RunStats* stats_ = nullptr;
  RpcStats* gen_ = nullptr;
};

// VerifyQrCode (terminal): flow n verifies pooled code n, once. A flow
// succeeds when the outcome is VALID.
class QrVerifyScenario final : public Scenario {
 public:
  explicit QrVerifyScenario(std::shared_ptr<QrState> st) : st_(std::move(st)) {
    for (const auto& ch : st_->terminal->channels) {
      stubs_.push_back(ssc::v1::ECardService::NewStub(ch));
    }
  }
  std::string name() const override { return "qr verify"; }
  // Verification records the code as used (replay protection).
  int mutations_per_flow() const override { return 1; }
  int calls_per_flow() const override { return 1; }
  void RegisterRpcs(RunStats& stats) override {
    stats_ = &stats;
    verify_ = stats.Register("VerifyQrCode");
  }
  void StartFlow(uint64_t n, std::function<void(bool)> done) override {
    // The pool is not written any more once this phase runs.
    if (n >= st_->pool.size()) return done(false);
    using C = Call<ssc::v1::VerifyQrCodeRequest, ssc::v1::VerifyQrCodeResponse>;
    auto* call = new C(verify_);
    call->ctx = sscctl::NewCallContext(st_->terminal->conn);
    call->request.set_payload(st_->pool[n]);
    call->request.set_business_type(ssc::v1::BUSINESS_TYPE_ENQUIRY);
    call->request.set_request_id(sscctl::NewRequestId());
    stubs_[n % stubs_.size()]->async()->VerifyQrCode(
        call->ctx.get(), &call->request, &call->response,
        [this, call, done = std::move(done)](grpc::Status s) {
          call->timer.Finish(s);
          bool valid = false;
          if (s.ok()) {
            const int oc = call->response.outcome();
            st_->outcomes[oc >= 0 && oc < 16 ? oc : 0].fetch_add(1);
            valid = oc == ssc::v1::QR_VERIFY_OUTCOME_VALID;
          } else {
            stats_->NoteError("VerifyQrCode", s);
          }
          delete call;
          done(valid);
        });
  }

 private:
  std::shared_ptr<QrState> st_;
  std::vector<std::unique_ptr<ssc::v1::ECardService::Stub>> stubs_;
  RunStats* stats_ = nullptr;
  RpcStats* verify_ = nullptr;
};

// Codes are valid 60 s from generation: the verify phase ends this long
// after the generate phase started, whatever --duration says.
constexpr std::chrono::seconds kQrVerifyDeadline{55};

absl::StatusOr<Plan> MakeQrPlan(const ScenarioOptions& o) {
  auto st = std::make_shared<QrState>();
  st->o = o;
  if (o.certs_dir.empty()) {
    return absl::InvalidArgumentError(
        "--certs: the qr scenario needs a make-certs.sh directory (counter, "
        "mobile_channel and terminal certificates)");
  }
  auto counter = OpenRole(o, "counter", 100);
  if (!counter.ok()) return counter.status();
  auto mobile = OpenRole(o, "mobile_channel", 200);
  if (!mobile.ok()) return mobile.status();
  auto terminal = OpenRole(o, "terminal", 300);
  if (!terminal.ok()) return terminal.status();
  st->counter = *counter;
  st->mobile = *mobile;
  st->terminal = *terminal;

  Plan plan;
  plan.state = st;
  plan.setup = [st]() -> absl::Status {
    const auto t0 = std::chrono::steady_clock::now();
    if (absl::Status s = st->SetUp(); !s.ok()) return s;
    std::printf(
        "qr setup: %zu persons with an instantly issued, activated card and "
        "an e-card (counter, mobile_channel) in %.2f s\n",
        st->ecard_ids.size(),
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
            .count());
    return absl::OkStatus();
  };

  Phase generate;
  generate.scenario = std::make_unique<QrGenerateScenario>(st);
  generate.adjust = [st](RunLimits& limits) {
    st->generate_start = std::chrono::steady_clock::now();
    // Leave the verify phase time to verify within the codes' validity.
    limits.duration = std::min<std::chrono::milliseconds>(
        limits.duration, std::chrono::milliseconds(25000));
  };
  generate.report = [st] {
    std::printf("  codes pooled for the verify phase: %zu\n", st->pool.size());
    return !st->pool.empty();
  };
  plan.phases.push_back(std::move(generate));

  Phase verify;
  verify.scenario = std::make_unique<QrVerifyScenario>(st);
  verify.adjust = [st](RunLimits& limits) {
    st->verify_budget = std::max<uint64_t>(1, st->pool.size());
    limits.max_flows = st->verify_budget;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        st->generate_start + kQrVerifyDeadline -
        std::chrono::steady_clock::now());
    limits.duration =
        std::max(std::chrono::milliseconds(1), std::min(limits.duration, left));
  };
  verify.report = [st] {
    uint64_t verified = 0, valid = 0;
    std::string other;
    for (size_t i = 0; i < st->outcomes.size(); ++i) {
      const uint64_t c = st->outcomes[i].load();
      verified += c;
      if (c == 0) continue;
      if (i == ssc::v1::QR_VERIFY_OUTCOME_VALID) {
        valid = c;
      } else {
        absl::StrAppend(&other, " ",
                        ssc::v1::QrVerifyOutcome_Name(
                            static_cast<ssc::v1::QrVerifyOutcome>(i)),
                        " ", c);
      }
    }
    std::printf(
        "  outcomes: VALID %llu of %llu answered;%s%s\n",
        static_cast<unsigned long long>(valid),
        static_cast<unsigned long long>(verified),
        other.empty() ? " no other outcome" : " non-VALID:", other.c_str());
    if (verified < st->pool.size()) {
      std::printf("  codes left unverified when the phase ended: %llu\n",
                  static_cast<unsigned long long>(st->pool.size() - verified));
    }
    return valid > 0 && valid == verified;
  };
  plan.phases.push_back(std::move(verify));
  return plan;
}

// GetIndicators (statistician): flow n asks for the county or a township,
// as at today or a fixed past date, in turn.
class ReportScenario final : public Scenario {
 public:
  explicit ReportScenario(std::shared_ptr<RoleConnection> rc)
      : rc_(std::move(rc)) {
    for (const auto& ch : rc_->channels) {
      stubs_.push_back(ssc::v1::ReportService::NewStub(ch));
    }
  }
  std::string name() const override { return "report"; }
  int mutations_per_flow() const override { return 0; }
  int calls_per_flow() const override { return 1; }
  void RegisterRpcs(RunStats& stats) override {
    stats_ = &stats;
    get_ = stats.Register("GetIndicators");
  }
  void StartFlow(uint64_t n, std::function<void(bool)> done) override {
    using C =
        Call<ssc::v1::GetIndicatorsRequest, ssc::v1::GetIndicatorsResponse>;
    auto* call = new C(get_);
    call->ctx = sscctl::NewCallContext(rc_->conn);
    if (n % 2 == 1) call->request.set_region_code("510524100");
    if ((n / 2) % 2 == 1) call->request.set_as_of("2022-06-30");
    stubs_[n % stubs_.size()]->async()->GetIndicators(
        call->ctx.get(), &call->request, &call->response,
        [this, call, done = std::move(done)](grpc::Status s) {
          call->timer.Finish(s);
          if (!s.ok()) stats_->NoteError("GetIndicators", s);
          delete call;
          done(s.ok());
        });
  }

 private:
  std::shared_ptr<RoleConnection> rc_;
  std::vector<std::unique_ptr<ssc::v1::ReportService::Stub>> stubs_;
  RunStats* stats_ = nullptr;
  RpcStats* get_ = nullptr;
};

Plan SinglePhase(std::unique_ptr<Scenario> s) {
  Plan plan;
  Phase phase;
  phase.scenario = std::move(s);
  plan.phases.push_back(std::move(phase));
  return plan;
}

}  // namespace

absl::StatusOr<Plan> MakePlan(const std::string& name,
                              const ScenarioOptions& options) {
  if (name == "empty") {
    return SinglePhase(std::make_unique<EmptyScenario>(options));
  }
  if (name == "card_flow") {
    return SinglePhase(std::make_unique<CardFlowScenario>(options));
  }
  if (name == "qr") return MakeQrPlan(options);
  if (name == "report") {
    // The statistician's certificate from --certs, else --cert as given.
    auto rc = OpenRole(options, "statistician", 400);
    if (!rc.ok()) return rc.status();
    return SinglePhase(std::make_unique<ReportScenario>(*std::move(rc)));
  }
  return absl::InvalidArgumentError(absl::StrCat("--scenario: unknown '", name,
                                                 "'; one of ", kScenarioNames));
}

}  // namespace ssc::bench
