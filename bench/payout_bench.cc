// payout_bench: one-card payouts at scale. N people get issued cards (setup,
// not measured), then N items are uploaded (validated as they arrive, one
// write set per chunk), sealed, submitted, approved and executed against an
// ssc-banksim (BankSim with its own RocksDB, served over loopback gRPC and
// called through the production GrpcBankGateway). Prints items/s per phase
// and end to end, next to raw synced batched writes of the same number of
// bytes through the same engine, and the peak RSS.
//
//   payout_bench [--items 1000000] [--chunk 5000] [--pipeline 1] [--dir /tmp/x]

#include <grpcpp/grpcpp.h>
#include <stdlib.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "bench/synthetic_ids.h"
#include "services/banksim/bank_sim.h"
#include "services/banksim/bank_sim_service.h"
#include "services/card/card_logic.h"
#include "services/payout/grpc_bank_gateway.h"
#include "services/payout/payout_logic.h"
#include "storage/idempotency.h"
#include "storage/key_lock.h"
#include "storage/pii_cipher.h"
#include "storage/rocksdb_engine.h"

namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}
void Die(const absl::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "payout_bench: %s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}
// CPU seconds (user + system) used by the process so far: with other work
// on the machine, a steadier measure of a phase's cost than wall time.
double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec +
         (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}
long PeakRssMb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024;
}
// Current resident set (VmRSS) in MB, 0 if unknown.
long CurrentRssMb() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  long kb = 0;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
  }
  std::fclose(f);
  return kb / 1024;
}

// Samples VmRSS every 50 ms while alive and keeps the maximum: the peak of
// the payout phases alone (the card setup's high-water mark cannot be reset).
class RssSampler {
 public:
  RssSampler() : thread_([this] { Run(); }) {}
  ~RssSampler() { Finish(); }
  long Finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return max_mb_;
  }

 private:
  void Run() {
    while (!stop_) {
      max_mb_ = std::max<long>(max_mb_, CurrentRssMb());
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    max_mb_ = std::max<long>(max_mb_, CurrentRssMb());
  }
  std::atomic<bool> stop_{false};
  std::atomic<long> max_mb_{0};
  std::thread thread_;
};

uint64_t DirBytes(const std::string& dir) {
  uint64_t n = 0;
  std::error_code ec;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir, ec)) {
    if (e.is_regular_file(ec)) n += e.file_size(ec);
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t items = 1'000'000;
  int chunk = 5000;
  bool pipeline = true;
  std::string dir;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--items")
      items = std::atoll(argv[i + 1]);
    else if (a == "--chunk")
      chunk = std::atoi(argv[i + 1]);
    else if (a == "--pipeline")
      pipeline = std::atoi(argv[i + 1]) != 0;
    else if (a == "--dir")
      dir = argv[i + 1];
  }
  if (dir.empty()) {
    std::string tmpl = "/tmp/payout_bench_XXXXXX";
    dir = mkdtemp(tmpl.data());
  }
  using namespace ssc;  // NOLINT
  storage::RocksDbOptions o;
  o.path = dir + "/ssc";
  auto engine = storage::OpenRocksDbEngine(o);
  Die(engine.status(), "open ssc store");
  storage::RocksDbOptions bo;
  bo.path = dir + "/bank";
  // The bank is its own process in production; keep its cache small here.
  bo.block_cache_bytes = 16 << 20;
  auto bank_engine = storage::OpenRocksDbEngine(bo);
  Die(bank_engine.status(), "open bank store");
  auto cipher = storage::PiiCipher::ForTesting("bench");
  storage::KeyLocks locks;
  storage::Idempotency idem(engine->get(), storage::SystemClock::Get());
  common::StoreContext ctx{engine->get(), &locks, &idem, cipher.get(),
                           storage::SystemClock::Get()};
  card::RegionTable regions = card::RegionTable::Default();
  card::CardLogic cards(ctx, &regions);

  // The bank simulator over loopback gRPC.
  auto sim = banksim::BankSim::Create(bank_engine->get(),
                                      storage::SystemClock::Get(), {});
  Die(sim.status(), "bank sim");
  banksim::BankGatewayService bank_service(sim->get());
  grpc::ServerBuilder builder;
  int bank_port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &bank_port);
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.RegisterService(&bank_service);
  auto bank_server = builder.BuildAndStart();
  payout::GrpcBankGatewayOptions go;
  go.address = absl::StrFormat("127.0.0.1:%d", bank_port);
  auto gateway = payout::GrpcBankGateway::Create(go);
  Die(gateway.status(), "gateway");

  // Setup: N holders (instant issuance), many writers sharing group commits.
  common::Caller counter{"counter-bench", common::Role::kCounter, ""};
  auto t0 = Clock::now();
  std::atomic<int64_t> next{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 64; ++w) {
    writers.emplace_back([&, w] {
      for (int64_t n = next++; n < items; n = next++) {
        v1::ApplyCardRequest r;
        r.set_request_id(absl::StrFormat("a%d", n));
        r.mutable_person()->set_id_number(bench::SyntheticIdNumber(n));
        r.mutable_person()->set_name(absl::StrFormat("居民%d", n));
        r.mutable_person()->set_region_code("510524100");
        r.set_bank_code("ICBC");
        r.set_instant_issuance(true);
        r.set_bank_account(absl::StrFormat("6222%012d", n));
        auto a = cards.ApplyCard(counter, r);
        if (!a.ok()) Die(a.status(), "apply card");
      }
      (void)w;
    });
  }
  for (auto& t : writers) t.join();
  std::printf("setup: %lld holders in %.1f s\n", static_cast<long long>(items),
              Since(t0));
  const uint64_t bytes_before = DirBytes(dir + "/ssc");
  const long rss_after_setup = CurrentRssMb();
  auto sampler = std::make_unique<RssSampler>();

  payout::PayoutOptions po;
  po.bank_chunk = chunk;
  po.max_upload_chunk = chunk;
  po.pipeline_chunks = pipeline;
  payout::PayoutLogic logic(ctx, &cards, gateway->get(), po);
  common::Caller maker{"maker-bench", common::Role::kFinanceMaker, ""};
  common::Caller checker{"checker-bench", common::Role::kFinanceChecker, ""};
  {
    v1::RegisterProgrammeRequest r;
    r.set_request_id("p");
    r.mutable_programme()->set_code("BENCH");
    r.mutable_programme()->set_name("bench");
    r.mutable_programme()->set_category(v1::PROGRAMME_CATEGORY_OTHER);
    r.mutable_programme()->set_unit(v1::BENEFICIARY_UNIT_PER_PERSON);
    r.mutable_programme()->set_max_item_amount_fen(1'000'000);
    Die(logic.RegisterProgramme(maker, r).status(), "programme");
    v1::SetBudgetRequest b;
    b.set_request_id("b");
    b.set_programme_code("BENCH");
    b.set_period("2026-11");
    b.set_amount_fen(int64_t{1} << 50);
    Die(logic.SetBudget(maker, b).status(), "budget");
  }
  int64_t total = 0;
  for (int64_t n = 0; n < items; ++n) total += 1000 + n % 9000;
  v1::CreateBatchRequest cb;
  cb.set_request_id("c");
  cb.set_programme_code("BENCH");
  cb.set_period("2026-11");
  cb.mutable_scheduled_at()->set_seconds(0);
  cb.set_control_count(items);
  cb.set_control_amount_fen(total);
  auto batch = logic.CreateBatch(maker, cb);
  Die(batch.status(), "create batch");
  const std::string id = batch->batch().batch_id();

  // Upload (validation overlapped: each chunk is validated as it arrives).
  const auto t_all = Clock::now();
  auto t = Clock::now();
  const double cpu0 = CpuSeconds();
  for (int64_t start = 0; start < items; start += chunk) {
    google::protobuf::RepeatedPtrField<v1::PayoutItemInput> f;
    for (int64_t n = start; n < std::min<int64_t>(items, start + chunk); ++n) {
      v1::PayoutItemInput* i = f.Add();
      i->set_item_id(absl::StrFormat("it%09d", n));
      i->set_id_number(bench::SyntheticIdNumber(n));
      i->set_name(absl::StrFormat("居民%d", n));
      i->set_amount_fen(1000 + n % 9000);
    }
    Die(logic.UploadChunk(maker, id, "upload", f).status(), "upload");
  }
  const double upload_s = Since(t);
  const double upload_cpu = CpuSeconds() - cpu0;

  t = Clock::now();
  v1::SealBatchRequest sr;
  sr.set_request_id("s");
  sr.set_batch_id(id);
  Die(logic.SealBatch(maker, sr).status(), "seal");
  v1::SubmitBatchRequest sb;
  sb.set_request_id("sb");
  sb.set_batch_id(id);
  Die(logic.SubmitBatch(maker, sb).status(), "submit");
  v1::ApproveBatchRequest ar;
  ar.set_request_id("ap");
  ar.set_batch_id(id);
  auto approved = logic.ApproveBatch(checker, ar);
  Die(approved.status(), "approve");
  const double approve_s = Since(t);
  if (approved->batch().totals().valid_count() != items) {
    std::fprintf(
        stderr, "payout_bench: only %lld valid items\n",
        static_cast<long long>(approved->batch().totals().valid_count()));
    return 1;
  }

  t = Clock::now();
  const double cpu1 = CpuSeconds();
  for (int i = 0; i < 1000; ++i) {
    Die(logic.RunExecutorOnce(), "execute");
    v1::GetBatchRequest g;
    g.set_batch_id(id);
    auto b = logic.GetBatch(maker, g);
    Die(b.status(), "get batch");
    if (b->batch().state() == v1::BATCH_STATE_COMPLETED) break;
  }
  const double exec_s = Since(t);
  const double exec_cpu = CpuSeconds() - cpu1;
  const double all_s = Since(t_all);
  const long payout_rss = sampler->Finish();
  v1::GetBatchRequest g;
  g.set_batch_id(id);
  auto done = logic.GetBatch(maker, g);
  Die(done.status(), "get batch");
  const uint64_t payout_bytes = DirBytes(dir + "/ssc") - bytes_before;

  // Baseline: raw synced batched writes of the same bytes (one put per item
  // per written phase: upload, SENT, result), same engine, same chunking.
  storage::RocksDbOptions ro;
  ro.path = dir + "/raw";
  ro.block_cache_bytes = 16 << 20;
  auto raw = storage::OpenRocksDbEngine(ro);
  Die(raw.status(), "open raw");
  const int64_t value_bytes = 300;  // about one encrypted item record
  const std::string value(value_bytes, 'x');
  t = Clock::now();
  for (int phase = 0; phase < 3; ++phase) {
    for (int64_t start = 0; start < items; start += chunk) {
      storage::WriteSet ws;
      for (int64_t n = start; n < std::min<int64_t>(items, start + chunk);
           ++n) {
        ws.Put(storage::Table::kPayoutItems,
               absl::StrFormat("%d/it%09d", phase, n), value);
      }
      Die((*raw)->Commit(std::move(ws)).status(), "raw commit");
    }
  }
  const double raw_s = Since(t);

  std::printf(
      "items: %lld (paid %lld), chunk %d\n", static_cast<long long>(items),
      static_cast<long long>(done->batch().totals().paid_count()), chunk);
  std::printf("upload+validate: %8.2f s  %10.0f items/s  (cpu %.2f s)\n",
              upload_s, items / upload_s, upload_cpu);
  std::printf("seal+approve:    %8.2f s\n", approve_s);
  std::printf(
      "execute:         %8.2f s  %10.0f items/s  (cpu %.2f s, incl. bank)\n",
      exec_s, items / exec_s, exec_cpu);
  std::printf("end to end:      %8.2f s  %10.0f items/s\n", all_s,
              items / all_s);
  std::printf(
      "raw synced batched writes (3 x %lld x %lld B): %.2f s  %.0f items/s\n",
      static_cast<long long>(items), static_cast<long long>(value_bytes), raw_s,
      items / raw_s);
  std::printf("store growth during payout: %.1f MB\n", payout_bytes / 1e6);
  std::printf(
      "RSS: %ld MB after card setup, max %ld MB sampled during the payout "
      "phases; peak of the whole process %ld MB\n",
      rss_after_setup, payout_rss, PeakRssMb());
  bank_server->Shutdown();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
