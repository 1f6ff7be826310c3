// payout_bench: one-card payouts at scale. N people get issued cards (setup,
// not measured), then N items are uploaded (validated as they arrive, one
// write set per chunk), sealed, submitted, approved and executed against an
// ssc-banksim (BankSim with its own RocksDB, served over loopback gRPC and
// called through the production GrpcBankGateway). Prints items/s per phase
// and end to end, the writes and reads per item of each phase, raw synced
// batched writes of the same bytes through the same engine measured in the
// same run (and the ratio), and the peak RSS of the payout phases (VmHWM
// reset after the setup) and of the whole process.
//
//   payout_bench [--items 1000000] [--chunk 5000] [--bank-chunk 5000]
//                [--pipeline 1] [--dir /tmp/x]
//                [--depth 2] [--keep 1]
//                [--bank-bin path/to/ssc-banksim] [--setup-cache dir]
//
// Upload goes as UploadItems does it: chunks are committed in order while
// the next `--depth` chunks are validated (PayoutOptions::
// upload_prepare_ahead). --pipeline 0 sends execution chunks one at a time.
//
// --setup-cache keeps a backup of the store after the card setup in `dir`
// and restores it on later runs with the same --items instead of issuing
// the cards again (the block cache then starts cold, as in production when a
// payout runs long after the cards were issued).
//
// With --bank-bin the bank simulator runs as its own process (as in
// production) and the RSS printed is the server's alone; its store's writes
// are then not counted (nor in the raw baseline's bytes).

#include <grpcpp/grpcpp.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/synthetic_ids.h"
#include "services/banksim/bank_sim.h"
#include "services/banksim/bank_sim_service.h"
#include "services/card/card_logic.h"
#include "services/payout/grpc_bank_gateway.h"
#include "services/payout/payout_logic.h"
#include "storage/backup.h"
#include "storage/forwarding_engine.h"
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
// A "Name: N kB" field of a /proc/<pid>/status file in MB, 0 if unknown.
long StatusFieldMb(const std::string& path, const char* field) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return 0;
  const std::string format = absl::StrCat(field, ": %ld kB");
  char line[256];
  long kb = 0;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::sscanf(line, format.c_str(), &kb) == 1) break;
  }
  std::fclose(f);
  return kb / 1024;
}
// Current resident set (VmRSS) in MB, 0 if unknown.
long CurrentRssMb() { return StatusFieldMb("/proc/self/status", "VmRSS"); }

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

// Peak resident set (VmHWM) in MB, 0 if unknown. Reset by ResetPeakRss.
long PeakRssSinceResetMb() {
  return StatusFieldMb("/proc/self/status", "VmHWM");
}
// Resets VmHWM to the current RSS (Linux >= 4.0); false if not possible.
bool ResetPeakRss() {
  FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (f == nullptr) return false;
  const bool ok = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && ok;
}

// Counts what the payout asks of a store: writes (puts, deletes, counter
// merges) and their bytes, commits, point reads. Forwards everything.
class CountingEngine : public ssc::storage::ForwardingEngine {
 public:
  struct Counts {
    uint64_t commits = 0, puts = 0, deletes = 0, merges = 0, bytes = 0,
             gets = 0, multigets = 0;  // gets: keys read (batched or not)
  };
  using ForwardingEngine::ForwardingEngine;
  Counts Take() {
    std::lock_guard<std::mutex> l(mu_);
    Counts c = counts_;
    counts_ = Counts();
    return c;
  }
  absl::StatusOr<std::optional<std::string>> Get(
      ssc::storage::Table t, std::string_view key) override {
    {
      std::lock_guard<std::mutex> l(mu_);
      ++counts_.gets;
    }
    return inner()->Get(t, key);
  }
  absl::StatusOr<std::vector<std::optional<std::string>>> MultiGet(
      ssc::storage::Table t,
      const std::vector<std::string_view>& keys) override {
    {
      std::lock_guard<std::mutex> l(mu_);
      counts_.gets += keys.size();
      ++counts_.multigets;
    }
    return inner()->MultiGet(t, keys);
  }
  absl::StatusOr<ssc::storage::CommitResult> Commit(
      ssc::storage::WriteSet ws) override {
    {
      std::lock_guard<std::mutex> l(mu_);
      ++counts_.commits;
      for (const auto& op : ws.ops()) {
        counts_.bytes += op.key.size() + op.value.size();
        switch (op.type) {
          case ssc::storage::WriteSet::OpType::kPut:
            ++counts_.puts;
            break;
          case ssc::storage::WriteSet::OpType::kDelete:
            ++counts_.deletes;
            break;
          case ssc::storage::WriteSet::OpType::kAdd:
            ++counts_.merges;
            break;
        }
      }
    }
    return inner()->Commit(std::move(ws));
  }

 private:
  std::mutex mu_;
  Counts counts_;
};

void PrintCounts(const char* phase, const CountingEngine::Counts& c,
                 int64_t items) {
  const double n = static_cast<double>(std::max<int64_t>(1, items));
  std::printf(
      "  %-22s per item: %.2f puts %.2f deletes %.2f merges %.0f B, %.2f "
      "gets; %llu commits, %llu batched reads\n",
      phase, c.puts / n, c.deletes / n, c.merges / n, c.bytes / n, c.gets / n,
      static_cast<unsigned long long>(c.commits),
      static_cast<unsigned long long>(c.multigets));
}

// The ssc-banksim binary as a child process on a loopback port (plain
// text), stopped with SIGTERM when the object goes.
class BankProcess {
 public:
  ~BankProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  // Returns the port it listens on; exits the bench on failure.
  int Start(const std::string& bin, const std::string& data_dir) {
    int fds[2];
    if (::pipe(fds) != 0) Die(absl::InternalError("pipe"), "bank process");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(fds[1], 1);
      ::close(fds[0]);
      ::close(fds[1]);
      ::execl(bin.c_str(), bin.c_str(), "--data-dir", data_dir.c_str(),
              "--listen", "127.0.0.1:0", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(fds[1]);
    FILE* out = ::fdopen(fds[0], "r");
    char line[256];
    int port = 0;
    while (out != nullptr && std::fgets(line, sizeof(line), out) != nullptr) {
      if (std::sscanf(line, "listening on %d", &port) == 1) break;
    }
    if (port == 0) Die(absl::UnavailableError(bin), "bank process start");
    return port;
  }
  // CPU seconds (user + system) the process used so far (0 if none runs).
  double CpuSeconds() const {
    if (pid_ <= 0) return 0;
    FILE* f = std::fopen(absl::StrFormat("/proc/%d/stat", pid_).c_str(), "r");
    if (f == nullptr) return 0;
    char buf[1024];
    const size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
    std::fclose(f);
    buf[n] = '\0';
    // Fields 14 and 15 (utime, stime) follow the command name in parentheses.
    const char* p = std::strrchr(buf, ')');
    unsigned long long utime = 0, stime = 0;
    if (p == nullptr ||
        std::sscanf(p + 1,
                    " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                    &utime, &stime) != 2) {
      return 0;
    }
    return static_cast<double>(utime + stime) /
           static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  bool running() const { return pid_ > 0; }
  long PeakRssMb() const {
    return StatusFieldMb(absl::StrFormat("/proc/%d/status", pid_), "VmHWM");
  }

 private:
  pid_t pid_ = -1;
};

// RocksDB's counters of a store (Engine::Properties) that tell where a
// phase's time went besides the payout's own work: background compaction
// and flush output, block cache misses, write stalls.
struct StoreTicks {
  uint64_t compact = 0, flush = 0, hits = 0, misses = 0, stall_us = 0;
};
StoreTicks ReadTicks(ssc::storage::Engine& e) {
  std::map<std::string, std::string> p = e.Properties();
  auto get = [&](const char* name) -> uint64_t {
    auto it = p.find(name);
    return it == p.end() ? 0 : std::strtoull(it->second.c_str(), nullptr, 10);
  };
  return {get("rocksdb.compact.write.bytes"), get("rocksdb.flush.write.bytes"),
          get("rocksdb.block.cache.hit"), get("rocksdb.block.cache.miss"),
          get("rocksdb.stall.micros")};
}
void PrintTicks(const char* phase, const StoreTicks& a, const StoreTicks& b) {
  const uint64_t hits = b.hits - a.hits, misses = b.misses - a.misses;
  std::printf(
      "  %-22s compaction wrote %.0f MB, flushes %.0f MB, block cache "
      "%.1f%% misses of %llu, write stalls %.2f s\n",
      phase, (b.compact - a.compact) / 1e6, (b.flush - a.flush) / 1e6,
      100.0 * misses / std::max<uint64_t>(1, hits + misses),
      static_cast<unsigned long long>(hits + misses),
      (b.stall_us - a.stall_us) / 1e6);
}

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
  mallopt(M_ARENA_MAX, 2);  // as sscd's main: the server's memory setting
  int64_t items = 1'000'000;
  int chunk = 5000;  // items per UploadItems message
  // Instructions per call to the bank, as sscd's payout-bank-chunk.
  int bank_chunk = ssc::payout::PayoutOptions().bank_chunk;
  bool pipeline = true;
  // Upload chunks validated ahead of the one committing (as UploadItems).
  int depth = ssc::payout::PayoutOptions().upload_prepare_ahead;
  std::string dir;
  std::string bank_bin;
  std::string setup_cache;
  bool keep = false;  // --keep 1: leave the stores (RocksDB LOGs) behind
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--items")
      items = std::atoll(argv[i + 1]);
    else if (a == "--chunk")
      chunk = std::atoi(argv[i + 1]);
    else if (a == "--bank-chunk")
      bank_chunk = std::atoi(argv[i + 1]);
    else if (a == "--depth")
      depth = std::max(1, std::atoi(argv[i + 1]));
    else if (a == "--pipeline")
      pipeline = std::atoi(argv[i + 1]) != 0;
    else if (a == "--dir")
      dir = argv[i + 1];
    else if (a == "--bank-bin")
      bank_bin = argv[i + 1];
    else if (a == "--setup-cache")
      setup_cache = argv[i + 1];
    else if (a == "--keep")
      keep = std::atoi(argv[i + 1]) != 0;
  }
  if (dir.empty()) {
    std::string tmpl = "/tmp/payout_bench_XXXXXX";
    dir = mkdtemp(tmpl.data());
  }
  using namespace ssc;  // NOLINT
  storage::RocksDbOptions o;
  o.path = dir + "/ssc";
  const std::string setup_tag = absl::StrFormat("holders=%d", items);
  bool restored = false;
  if (!setup_cache.empty()) {
    auto backups = storage::ListBackups(setup_cache);
    if (backups.ok() && !backups->empty() &&
        backups->back().metadata == setup_tag) {
      const auto t_restore = Clock::now();
      Die(storage::RestoreBackup(setup_cache, backups->back().id, o.path),
          "restore setup");
      restored = true;
      std::printf("setup: restored %s from %s in %.1f s\n", setup_tag.c_str(),
                  setup_cache.c_str(), Since(t_restore));
    }
  }
  auto engine = storage::OpenRocksDbEngine(o);
  Die(engine.status(), "open ssc store");
  storage::RocksDbOptions bo;
  bo.path = dir + "/bank";
  // The bank is its own process in production; keep its cache small here.
  bo.block_cache_bytes = 16 << 20;
  auto bank_engine = storage::OpenRocksDbEngine(bo);
  Die(bank_engine.status(), "open bank store");
  // Both stores are counted: writes and reads per item per phase.
  CountingEngine ssc_store(engine->get());
  CountingEngine bank_store(bank_engine->get());
  auto cipher = storage::PiiCipher::ForTesting("bench");
  storage::KeyLocks locks;
  storage::Idempotency idem(&ssc_store, cipher.get(),
                            storage::SystemClock::Get());
  common::StoreContext ctx{&ssc_store, &locks, &idem, cipher.get(),
                           storage::SystemClock::Get()};
  card::RegionTable regions = card::RegionTable::Default();
  card::CardLogic cards(ctx, &regions);

  // The bank simulator over loopback gRPC.
  // In this process, or (--bank-bin) the ssc-banksim binary as a child
  // process: then this process's RSS is the server's alone.
  std::unique_ptr<banksim::BankSim> sim;
  std::unique_ptr<banksim::BankGatewayService> bank_service;
  std::unique_ptr<grpc::Server> bank_server;
  int bank_port = 0;
  BankProcess bank_process;
  std::unique_ptr<storage::PiiCipher> bank_cipher =
      storage::PiiCipher::ForTesting("bank");
  if (bank_bin.empty()) {
    auto created = banksim::BankSim::Create(&bank_store, bank_cipher.get(),
                                            storage::SystemClock::Get(), {});
    Die(created.status(), "bank sim");
    sim = std::move(*created);
    bank_service = std::make_unique<banksim::BankGatewayService>(sim.get());
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &bank_port);
    builder.SetMaxReceiveMessageSize(64 << 20);
    builder.RegisterService(bank_service.get());
    bank_server = builder.BuildAndStart();
  } else {
    bank_port = bank_process.Start(bank_bin, dir + "/bank-process");
  }
  payout::GrpcBankGatewayOptions go;
  go.address = absl::StrFormat("127.0.0.1:%d", bank_port);
  auto gateway = payout::GrpcBankGateway::Create(go);
  Die(gateway.status(), "gateway");

  // Setup: N holders (instant issuance), many writers sharing group commits.
  common::Caller counter{"counter-bench", common::Role::kCounter, ""};
  auto t0 = Clock::now();
  std::atomic<int64_t> next{restored ? items : 0};
  std::vector<std::thread> writers;
  for (int w = 0; w < (restored ? 0 : 64); ++w) {
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
  if (!restored) {
    std::printf("setup: %lld holders in %.1f s\n",
                static_cast<long long>(items), Since(t0));
    if (!setup_cache.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(setup_cache, ec);
      Die(storage::CreateBackup(**engine, setup_cache, setup_tag, 1).status(),
          "backup setup");
    }
  }
  // A county's card register has long been compacted when a payout runs:
  // settle the setup's writes first, so that the phases do not pay for
  // compacting them (they showed ~460 MB of it).
  {
    const auto c0 = Clock::now();
    Die(storage::CompactRocksDbEngine(**engine), "compact setup");
    std::printf("setup: compacted in %.1f s (not measured)\n", Since(c0));
  }
  const uint64_t bytes_before = DirBytes(dir + "/ssc");
  const long rss_after_setup = CurrentRssMb();
  const long setup_peak = PeakRssMb();
  // The peak of the payout alone: VmHWM reset to the current RSS after the
  // setup (which issues N cards with 64 writers and may set the process's
  // high-water mark); the sampler is the fallback.
  const bool hwm_reset = ResetPeakRss();
  auto sampler = std::make_unique<RssSampler>();
  ssc_store.Take();
  bank_store.Take();

  payout::PayoutOptions po;
  po.bank_chunk = bank_chunk;
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

  // Upload as the UploadItems stream does it: chunk i is stored while chunk
  // i+1 is validated (PrepareUpload takes no lock).
  // Phase marks on stderr (unbuffered), e.g. to attach a profiler.
  std::fprintf(stderr, "phase: upload (pid %d)\n", static_cast<int>(getpid()));
  const StoreTicks ticks0 = ReadTicks(**engine);
  const auto t_all = Clock::now();
  auto t = Clock::now();
  const double cpu0 = CpuSeconds();
  auto make_chunk = [&](int64_t start) {
    auto f = std::make_unique<
        google::protobuf::RepeatedPtrField<v1::PayoutItemInput>>();
    for (int64_t n = start; n < std::min<int64_t>(items, start + chunk); ++n) {
      v1::PayoutItemInput* i = f->Add();
      i->set_item_id(absl::StrFormat("it%09d", n));
      i->set_id_number(bench::SyntheticIdNumber(n));
      i->set_name(absl::StrFormat("居民%d", n));
      i->set_amount_fen(1000 + n % 9000);
    }
    return f;
  };
  {
    // Chunks prepared ahead (`depth` of them) while the oldest commits.
    struct Ahead {
      std::unique_ptr<google::protobuf::RepeatedPtrField<v1::PayoutItemInput>>
          items;
      std::future<
          absl::StatusOr<std::shared_ptr<payout::PayoutLogic::PreparedUpload>>>
          prepared;
    };
    std::deque<Ahead> ahead;
    int64_t next_start = 0;
    auto launch = [&] {
      Ahead a;
      a.items = make_chunk(next_start);
      next_start += chunk;
      const auto* in = a.items.get();
      a.prepared = std::async(std::launch::async, [&logic, &maker, &id, in] {
        return logic.PrepareUpload(maker, id, "upload", *in);
      });
      ahead.push_back(std::move(a));
    };
    while (next_start < items && static_cast<int>(ahead.size()) < depth) {
      launch();
    }
    while (!ahead.empty()) {
      Ahead a = std::move(ahead.front());
      ahead.pop_front();
      auto prepared = a.prepared.get();
      Die(prepared.status(), "prepare upload");
      if (next_start < items) launch();
      Die(logic.CommitUpload(**prepared).status(), "upload");
    }
  }
  const double upload_s = Since(t);
  const double upload_cpu = CpuSeconds() - cpu0;
  const CountingEngine::Counts upload_counts = ssc_store.Take();

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
  const CountingEngine::Counts approve_counts = ssc_store.Take();
  if (approved->batch().totals().valid_count() != items) {
    std::fprintf(
        stderr, "payout_bench: only %lld valid items\n",
        static_cast<long long>(approved->batch().totals().valid_count()));
    return 1;
  }

  // The upload's peak; VmHWM starts again for the execution's.
  const long upload_hwm = hwm_reset ? PeakRssSinceResetMb() : 0;
  if (hwm_reset) ResetPeakRss();
  std::fprintf(stderr, "phase: execute\n");
  const StoreTicks ticks1 = ReadTicks(**engine);
  t = Clock::now();
  const double cpu1 = CpuSeconds();
  const double bank_cpu1 = bank_process.CpuSeconds();
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
  const double exec_bank_cpu = bank_process.CpuSeconds() - bank_cpu1;
  const double all_s = Since(t_all);
  const CountingEngine::Counts exec_counts = ssc_store.Take();
  const CountingEngine::Counts bank_counts = bank_store.Take();
  std::fprintf(stderr, "phase: done\n");
  const StoreTicks ticks2 = ReadTicks(**engine);
  const long payout_rss = sampler->Finish();
  const long exec_hwm = hwm_reset ? PeakRssSinceResetMb() : 0;
  const long payout_hwm = std::max(upload_hwm, exec_hwm);
  v1::GetBatchRequest g;
  g.set_batch_id(id);
  auto done = logic.GetBatch(maker, g);
  Die(done.status(), "get batch");
  const uint64_t payout_bytes = DirBytes(dir + "/ssc") - bytes_before;

  // Baseline: raw synced batched writes of the same bytes as the payout
  // wrote (both stores, every phase, keys and values), through the same
  // engine: 3 passes (upload, claim, result) of one put per item, one
  // commit per chunk.
  const uint64_t payout_write_bytes = upload_counts.bytes +
                                      approve_counts.bytes + exec_counts.bytes +
                                      bank_counts.bytes;
  const int64_t key_bytes = 14;  // "0/it000000001"
  const int64_t value_bytes = std::max<int64_t>(
      16, static_cast<int64_t>(payout_write_bytes /
                               (3 * std::max<int64_t>(1, items))) -
              key_bytes);
  storage::RocksDbOptions ro;
  ro.path = dir + "/raw";
  ro.block_cache_bytes = 16 << 20;
  auto raw = storage::OpenRocksDbEngine(ro);
  Die(raw.status(), "open raw");
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

  std::printf("items: %lld (paid %lld), upload chunk %d, bank chunk %d\n",
              static_cast<long long>(items),
              static_cast<long long>(done->batch().totals().paid_count()),
              chunk, bank_chunk);
  std::printf("upload+validate: %8.2f s  %10.0f items/s  (cpu %.2f s)\n",
              upload_s, items / upload_s, upload_cpu);
  std::printf("seal+approve:    %8.2f s  %10.0f items/s\n", approve_s,
              items / std::max(approve_s, 1e-6));
  std::printf(
      "execute:         %8.2f s  %10.0f items/s  (cpu %.2f s%s)\n", exec_s,
      items / exec_s, exec_cpu,
      bank_process.running()
          ? absl::StrFormat("; ssc-banksim cpu %.2f s", exec_bank_cpu).c_str()
          : ", incl. the bank in this process");
  std::printf("end to end:      %8.2f s  %10.0f items/s\n", all_s,
              items / all_s);
  std::printf(
      "raw synced batched writes of the same bytes (3 x %lld puts of %lld B "
      "= %.1f MB): %.2f s  %.0f items/s\n",
      static_cast<long long>(items), static_cast<long long>(value_bytes),
      payout_write_bytes / 1e6, raw_s, items / raw_s);
  std::printf("end to end / raw: %.2f\n", all_s / raw_s);
  std::printf("store writes and reads:\n");
  PrintCounts("upload+validate (ssc)", upload_counts, items);
  PrintCounts("seal+approve (ssc)", approve_counts, items);
  PrintCounts("execute (ssc)", exec_counts, items);
  PrintCounts("execute (bank)", bank_counts, items);
  std::printf("store background work (ssc):\n");
  PrintTicks("upload+validate", ticks0, ticks1);
  PrintTicks("seal+approve+execute", ticks1, ticks2);
  std::printf("store growth during payout: %.1f MB\n", payout_bytes / 1e6);
  std::printf("RSS: %ld MB after card setup (setup peak %ld MB)\n",
              rss_after_setup, setup_peak);
  if (hwm_reset) {
    std::printf(
        "peak RSS of the payout phases: %ld MB (upload %ld MB, seal to "
        "execution %ld MB; VmHWM, reset after the setup and the upload "
        "through /proc/self/clear_refs)\n",
        payout_hwm, upload_hwm, exec_hwm);
  } else {
    std::printf(
        "peak RSS of the payout phases: %ld MB (VmRSS sampled every 50 ms; "
        "VmHWM could not be reset)\n",
        payout_rss);
  }
  std::printf("peak RSS of the whole process (incl. setup): %ld MB%s\n",
              std::max(setup_peak, PeakRssMb()),
              bank_bin.empty() ? " (the bank simulator runs in it)"
                               : " (the bank simulator is a child process)");
  if (!bank_bin.empty()) {
    std::printf("peak RSS of the ssc-banksim process: %ld MB\n",
                bank_process.PeakRssMb());
  }
  if (bank_server) bank_server->Shutdown();
  std::error_code ec;
  if (!keep) std::filesystem::remove_all(dir, ec);
  return 0;
}
