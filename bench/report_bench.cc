// Report query latency against the number of holders (issue 5): two stores
// in temp dirs, one with 10,000 holders and one with --large holders (default
// 10,000,000), both loaded in process through the bulk importer
// (services/ops/importer.h) from register rows in the documented CSV format
// (deploy/import-format.md): valid synthetic ID numbers spread over the 23
// townships, cards ACTIVE with histories dated 2019-01-01 .. 2025-12-31.
// Then GetIndicators for the county and for one township, as at a fixed past
// date and as at today, side by side: p50/p99 and the ratio large/small.
// Goal: large within 1.5x of small, p99 < 5 ms.
//
//   report_bench [--large 10000000] [--small 10000] [--queries 2000]
//                [--threads 2] [--dir D]
//
// GetIndicators is the audited call the RPC makes (one synced audit write
// per read, as in sscd); FiguresAt, the same figures without the audit, is
// printed next to it to show the cost of the read itself.

#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "bench/histogram.h"
#include "bench/synthetic_ids.h"
#include "services/card/card_logic.h"
#include "services/card/regions.h"
#include "services/ecard/ecard_observer.h"
#include "services/ops/importer.h"
#include "services/report/holder_observer.h"
#include "services/report/report_logic.h"
#include "storage/clock.h"
#include "storage/idempotency.h"
#include "storage/key_lock.h"
#include "storage/pii_cipher.h"
#include "storage/rocksdb_engine.h"

namespace ssc::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

double Seconds(SteadyClock::time_point a, SteadyClock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

constexpr char kHeader[] =
    "id_number,name,phone,region_code,application_id,state,bank_code,"
    "bank_account,card_number,identification_code,valid_from,applied_at,"
    "sent_at,produced_at,issued_at,activated_at";

// Days 2019-01-01 + [0, kDaySpan) for the application; the history takes
// 32 more days, so the last activation is on 2025-12-31 at the latest.
constexpr int64_t kDaySpan = 2556 - 32;

// Register row i: an ACTIVE card with its full history.
std::string RegisterRow(uint64_t i, const std::vector<std::string>& towns) {
  // A multiplicative spread so that neighbouring rows get unrelated dates.
  const absl::CivilDay applied =
      absl::CivilDay(2019, 1, 1) +
      static_cast<int64_t>((i * 7919) % static_cast<uint64_t>(kDaySpan));
  auto day = [&](int offset) {
    return absl::FormatCivilTime(applied + offset);
  };
  return absl::StrCat(
      SyntheticIdNumber(i), ",测试", i % 1000, ",138",
      absl::StrFormat("%08d", i % 100000000), ",", towns[i % towns.size()],
      ",A510524", absl::StrFormat("%09d", i + 1), ",ACTIVE,ABC,62284800",
      absl::StrFormat("%010d", i), ",", SyntheticCardNumber('B', i), ",",
      SyntheticIdentificationCode(i), ",", day(19), ",", day(0), ",", day(1),
      ",", day(19), ",", day(31), ",", day(32));
}

// One store in a temp dir, wired as sscd wires it (holder counters and the
// e-card observer on the card logic), with a report logic on top.
struct Store {
  explicit Store(const std::string& path)
      : regions(card::RegionTable::Default()),
        cipher(storage::PiiCipher::ForTesting("report-bench")) {
    storage::RocksDbOptions o;
    o.path = path;
    o.sync = true;  // as sscd
    auto e = storage::OpenRocksDbEngine(o);
    if (!e.ok()) {
      std::fprintf(stderr, "open %s: %s\n", path.c_str(),
                   e.status().ToString().c_str());
      std::exit(1);
    }
    engine = std::move(*e);
    idem = std::make_unique<storage::Idempotency>(engine.get(), cipher.get(),
                                                  clock);
    ctx = common::StoreContext{engine.get(), &locks, idem.get(), cipher.get(),
                               clock};
    ecard_observer = std::make_unique<ecard::ECardObserver>(engine.get());
    cards = std::make_unique<card::CardLogic>(ctx, &regions);
    cards->AddObserver(&holders);
    cards->AddObserver(ecard_observer.get());
    report = std::make_unique<report::ReportLogic>(ctx, &regions);
    // As sscd on first start: the plan's population and targets, so that
    // GetIndicators computes coverage and progress as in production.
    if (absl::Status s = report->SeedPlanFigures(); !s.ok()) {
      std::fprintf(stderr, "seed: %s\n", s.ToString().c_str());
      std::exit(1);
    }
  }

  const storage::Clock* clock = storage::SystemClock::Get();
  card::RegionTable regions;
  std::unique_ptr<storage::PiiCipher> cipher;
  std::unique_ptr<storage::Engine> engine;
  storage::KeyLocks locks;
  std::unique_ptr<storage::Idempotency> idem;
  common::StoreContext ctx;
  report::HolderCounterObserver holders;
  std::unique_ptr<ecard::ECardObserver> ecard_observer;
  std::unique_ptr<card::CardLogic> cards;
  std::unique_ptr<report::ReportLogic> report;
};

struct LoadResult {
  double seconds = 0;  // import only (row generation excluded)
  uint64_t accepted = 0, rejected = 0;
};

LoadResult Load(Store& store, uint64_t rows, int threads,
                const std::vector<std::string>& towns) {
  ops::ImportOptions o;
  o.threads = threads;
  ops::Importer importer(store.ctx, &store.regions, "510524",
                         store.cards->observers(), o);
  const common::Caller admin{"report-bench", common::Role::kAdmin, ""};
  auto session = importer.Begin(admin, absl::StrCat("report-bench-", rows),
                                ssc::v1::IMPORT_FORMAT_CSV, kHeader);
  if (!session.ok()) {
    std::fprintf(stderr, "import begin: %s\n",
                 session.status().ToString().c_str());
    std::exit(1);
  }
  std::vector<ops::BatchResult> out;
  LoadResult r;
  double generating = 0;
  const auto t0 = SteadyClock::now();
  uint64_t reported = 0;
  for (uint64_t i = 0; i < rows; ++i) {
    const auto g0 = SteadyClock::now();
    const std::string line = RegisterRow(i, towns);
    generating += Seconds(g0, SteadyClock::now());
    absl::Status s = (*session)->Add(i + 2, line, &out);
    if (!s.ok()) {
      std::fprintf(stderr, "import line %llu: %s\n",
                   static_cast<unsigned long long>(i + 2),
                   s.ToString().c_str());
      std::exit(1);
    }
    if (rows >= 1000000 && i - reported >= 1000000) {
      reported = i;
      std::fprintf(stderr, "  ... %llu rows, %.0f s\n",
                   static_cast<unsigned long long>(i),
                   Seconds(t0, SteadyClock::now()));
    }
  }
  absl::Status s = (*session)->Finish(&out);
  if (!s.ok()) {
    std::fprintf(stderr, "import finish: %s\n", s.ToString().c_str());
    std::exit(1);
  }
  r.seconds = Seconds(t0, SteadyClock::now()) - generating;
  r.accepted = out.back().totals.accepted;
  r.rejected = out.back().totals.rejected;
  for (const auto& b : out) {
    for (const auto& rej : b.rejects) {
      std::fprintf(stderr, "reject line %llu %s: %s\n",
                   static_cast<unsigned long long>(rej.line), rej.field.c_str(),
                   rej.reason.c_str());
      break;
    }
  }
  return r;
}

struct Query {
  std::string label;
  std::string region;  // empty: the county
  std::string as_of;   // empty: today
};

struct Latency {
  double p50_ms = 0, p99_ms = 0;
  int64_t holders = -1;
};

// `queries` calls of GetIndicators (audited) or FiguresAt (not audited).
Latency Measure(Store& store, const Query& q, int queries, bool audited) {
  const common::Caller stat{"statistician-01", common::Role::kStatistician, ""};
  ssc::v1::GetIndicatorsRequest req;
  req.set_region_code(q.region);
  req.set_as_of(q.as_of);
  const std::string region =
      q.region.empty() ? store.regions.County().code : q.region;
  absl::CivilDay day;
  if (q.as_of.empty()) {
    day = absl::ToCivilDay(absl::Now(), absl::FixedTimeZone(8 * 3600));
  } else if (!absl::ParseCivilTime(q.as_of, &day)) {
    std::fprintf(stderr, "bad date %s\n", q.as_of.c_str());
    std::exit(1);
  }
  LatencyHistogram h;
  Latency l;
  for (int i = 0; i < queries; ++i) {
    const auto t0 = SteadyClock::now();
    int64_t holders = -1;
    if (audited) {
      auto resp = store.report->GetIndicators(stat, req);
      if (!resp.ok()) {
        std::fprintf(stderr, "GetIndicators: %s\n",
                     resp.status().ToString().c_str());
        std::exit(1);
      }
      holders = resp->figures().card_holders();
    } else {
      auto f = store.report->FiguresAt(region, day);
      if (!f.ok()) {
        std::fprintf(stderr, "FiguresAt: %s\n", f.status().ToString().c_str());
        std::exit(1);
      }
      holders = f->card_holders();
    }
    h.Record(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(
            SteadyClock::now() - t0)
            .count()));
    l.holders = holders;
  }
  l.p50_ms = h.Percentile(0.50) / 1000.0;
  l.p99_ms = h.Percentile(0.99) / 1000.0;
  return l;
}

class TempDir {
 public:
  explicit TempDir(std::string base) {
    if (base.empty()) {
      const char* t = std::getenv("TMPDIR");
      base = t != nullptr ? t : "/tmp";
    }
    std::string tmpl = base + "/ssc_report_bench_XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::fprintf(stderr, "mkdtemp in %s failed\n", base.c_str());
      std::exit(1);
    }
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

int Main(int argc, char** argv) {
  CLI::App app{"report_bench: report query latency at 10k and N holders"};
  uint64_t small = 10000, large = 10000000;
  int queries = 2000, threads = 2;
  std::string dir;
  app.add_option("--small", small, "holders in the small store")
      ->check(CLI::Range(uint64_t{1}, uint64_t{20000000}))
      ->capture_default_str();
  app.add_option("--large", large, "holders in the large store")
      ->check(CLI::Range(uint64_t{1}, uint64_t{20000000}))
      ->capture_default_str();
  app.add_option("--queries", queries, "calls per query and store")
      ->check(CLI::Range(10, 1000000))
      ->capture_default_str();
  app.add_option("--threads", threads, "importer threads")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--dir", dir, "where the temp stores go (default $TMPDIR)");
  CLI11_PARSE(app, argc, argv);

  const card::RegionTable regions = card::RegionTable::Default();
  std::vector<std::string> towns;
  for (const card::RegionEntry* t : regions.Townships()) {
    towns.push_back(t->code);
  }
  TempDir tmp(dir);
  std::printf(
      "report_bench: %llu vs %llu holders, %zu townships, %d "
      "queries each, stores in %s (synced, as sscd)\n",
      static_cast<unsigned long long>(small),
      static_cast<unsigned long long>(large), towns.size(), queries,
      tmp.path().c_str());
  std::fflush(stdout);

  Store small_store(tmp.path() + "/small");
  Store large_store(tmp.path() + "/large");
  struct Side {
    const char* name;
    Store* store;
    uint64_t rows;
  };
  const Side sides[2] = {{"small", &small_store, small},
                         {"large", &large_store, large}};
  for (const Side& s : sides) {
    const LoadResult r = Load(*s.store, s.rows, threads, towns);
    std::printf(
        "load %-5s: %llu rows in %.2f s = %.0f rows/s (accepted "
        "%llu, rejected %llu; %d importer threads)\n",
        s.name, static_cast<unsigned long long>(s.rows), r.seconds,
        static_cast<double>(s.rows) / r.seconds,
        static_cast<unsigned long long>(r.accepted),
        static_cast<unsigned long long>(r.rejected), threads);
    std::fflush(stdout);
    if (r.accepted != s.rows) {
      std::fprintf(stderr, "not every row was accepted\n");
      return 1;
    }
  }

  const std::vector<Query> qs = {
      {"county, as of 2022-06-30", "", "2022-06-30"},
      {"county, today", "", ""},
      {absl::StrCat("township ", towns[1], ", 2022-06-30"), towns[1],
       "2022-06-30"},
      {absl::StrCat("township ", towns[1], ", today"), towns[1], ""},
  };
  bool goal = true;
  for (const bool audited : {true, false}) {
    std::printf("%s\n", audited ? "GetIndicators (audited, as the RPC):"
                                : "FiguresAt (the read without the audit):");
    std::printf("  %-34s %21s %21s %12s\n", "query", "small p50/p99 ms",
                "large p50/p99 ms", "ratio p50/p99");
    for (const Query& q : qs) {
      // Warm-up, then the measured calls, alternating stores so that
      // machine noise hits both alike.
      Measure(small_store, q, 20, audited);
      Measure(large_store, q, 20, audited);
      const Latency a = Measure(small_store, q, queries, audited);
      const Latency b = Measure(large_store, q, queries, audited);
      const double r50 = b.p50_ms / std::max(a.p50_ms, 0.001);
      const double r99 = b.p99_ms / std::max(a.p99_ms, 0.001);
      std::printf(
          "  %-34s %9.3f / %9.3f %9.3f / %9.3f %5.2f / %5.2f"
          "   (holders %lld / %lld)\n",
          q.label.c_str(), a.p50_ms, a.p99_ms, b.p50_ms, b.p99_ms, r50, r99,
          static_cast<long long>(a.holders), static_cast<long long>(b.holders));
      if (audited && (r50 > 1.5 || b.p99_ms >= 5.0)) goal = false;
    }
  }
  std::printf(
      "goal (GetIndicators: large p50 within 1.5x of small, large "
      "p99 < 5 ms): %s\n",
      goal ? "met" : "NOT met");
  return 0;
}

}  // namespace
}  // namespace ssc::bench

int main(int argc, char** argv) { return ssc::bench::Main(argc, argv); }
