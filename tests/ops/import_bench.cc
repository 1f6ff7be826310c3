// Import benchmark: N persons, each with an ACTIVE card and its full
// history (5 events), imported with durable (synced) batches, against raw
// RocksDB batched writes of exactly the same key/value bytes in the same run
// (the imported store is scanned and rewritten into a fresh RocksDB with
// WriteBatch, one synced write per batch of the same size).
//
//   import_bench [--persons 1000000] [--batch 20000] [--threads 2] [--dir D]
//                [--raw 0]  (the import alone, for profiling)
//
// Prints rows/s of both and their ratio. Includes RocksDB directly (like
// the storage tests that look at raw files): it measures RocksDB itself.

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "services/common/metrics.h"
#include "services/ops/importer.h"
#include "storage/engine.h"
#include "storage/rocksdb_engine.h"
#include "tests/ops/ops_test_util.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Row i of a register of `n`, in application order: applications spread
// over 2010..2025 (each card's later steps at the usual delays), so the
// report counters see the days a real register's history spans.
std::string CsvLine(int i, int n) {
  // Birth dates spread over 1950..1999, sequence from i.
  const int year = 1950 + i % 50;
  const int month = 1 + (i / 50) % 12;
  const int day = 1 + (i / 600) % 28;
  const std::string birth = absl::StrFormat("%04d%02d%02d", year, month, day);
  const std::string id =
      ssc::ops::testing::MakeId("510524", birth, (i / 16800) % 1000);
  static const char* kTowns[] = {"510524100", "510524101", "510524102",
                                 "510524103", "510524104", "510524105"};
  const absl::CivilDay applied =
      absl::CivilDay(2010, 1, 1) + static_cast<int64_t>(i) * 5800 / n;
  auto date = [&applied](int days_later) {
    return absl::FormatCivilTime(applied + days_later);
  };
  return absl::StrCat(
      id, ",测试", i % 1000, ",138", absl::StrFormat("%08d", i), ",",
      kTowns[i % 6], ",A510524", absl::StrFormat("%09d", i + 1),
      ",ACTIVE,ABC,62284800", absl::StrFormat("%010d", i), ",B",
      absl::StrFormat("%08d", i), ",510524D156000005",
      absl::StrFormat("%016X", i), ",", date(19), ",", date(0), ",", date(1),
      ",", date(19), ",", date(31), ",", date(32));
}

}  // namespace

int main(int argc, char** argv) {
  int persons = 1000000;
  size_t batch = 20000;
  int threads = 2;
  std::string dir;
  bool raw = true;  // --raw 0: the import alone (for profiling)
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--persons")) persons = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--batch")) batch = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--dir")) dir = argv[i + 1];
    if (!std::strcmp(argv[i], "--raw")) raw = std::atoi(argv[i + 1]) != 0;
  }
  ssc::ops::testing::TempDir tmp;
  if (dir.empty()) dir = tmp.path();

  // The register (ids are unique: 50 years x 12 x 28 x 1000 sequences).
  std::vector<std::string> lines;
  lines.reserve(persons);
  for (int i = 0; i < persons; ++i) lines.push_back(CsvLine(i, persons));
  const std::string header =
      "id_number,name,phone,region_code,application_id,state,bank_code,"
      "bank_account,card_number,identification_code,valid_from,applied_at,"
      "sent_at,produced_at,issued_at,activated_at";

  double import_s = 0;
  uint64_t accepted = 0;
  {
    ssc::storage::ManualClock clock(absl::FromUnixSeconds(1767225600));
    ssc::ops::testing::TestStore store(dir + "/import", &clock, /*sync=*/true);
    ssc::ops::ImportOptions o;
    o.batch_rows = batch;
    o.threads = threads;
    ssc::ops::Importer importer(store.ctx, &store.regions, "510524",
                                store.cards->observers(), o);
    const ssc::common::Caller admin{"bench", ssc::common::Role::kAdmin, ""};
    auto session =
        importer.Begin(admin, "bench", ssc::v1::IMPORT_FORMAT_CSV, header);
    if (!session.ok()) {
      std::fprintf(stderr, "begin: %s\n", session.status().ToString().c_str());
      return 1;
    }
    std::vector<ssc::ops::BatchResult> out;
    const auto t0 = Clock::now();
    for (size_t i = 0; i < lines.size(); ++i) {
      absl::Status s = (*session)->Add(i + 2, lines[i], &out);
      if (!s.ok()) {
        std::fprintf(stderr, "add: %s\n", s.ToString().c_str());
        return 1;
      }
    }
    absl::Status s = (*session)->Finish(&out);
    import_s = Seconds(t0, Clock::now());
    if (!s.ok()) {
      std::fprintf(stderr, "finish: %s\n", s.ToString().c_str());
      return 1;
    }
    accepted = out.back().totals.accepted;
    if (out.back().totals.rejected > 0) {
      for (const auto& b : out) {
        for (const auto& r : b.rejects) {
          std::fprintf(stderr, "reject line %llu %s: %s\n",
                       static_cast<unsigned long long>(r.line), r.field.c_str(),
                       r.reason.c_str());
          break;
        }
      }
    }
    std::printf(
        "import: %d rows in %.2f s = %.0f rows/s (accepted %llu, "
        "rejected %llu; batch %zu, %d threads, synced)\n",
        persons, import_s, persons / import_s,
        static_cast<unsigned long long>(accepted),
        static_cast<unsigned long long>(out.back().totals.rejected), batch,
        threads);
  }

  // Where the batches' time went (sums over all batches, seconds).
  for (const absl::string_view line :
       absl::StrSplit(ssc::common::Metrics().Render(), '\n')) {
    if (absl::StartsWith(line, "ssc_import_batch_seconds_sum")) {
      std::printf("  %.*s\n", static_cast<int>(line.size()), line.data());
    }
  }
  std::fflush(stdout);
  if (!raw) return 0;
  // Raw RocksDB: the same bytes, batched the same way. The imported store
  // is read back through the engine (its counters through the merge
  // operator) and written into a fresh RocksDB, one synced batch per
  // import batch's worth of bytes.
  std::vector<std::vector<std::pair<std::string, std::string>>> tables(
      ssc::storage::kTableCount);
  uint64_t total_bytes = 0, total_keys = 0;
  {
    ssc::storage::RocksDbOptions o;
    o.path = dir + "/import";
    auto engine = ssc::storage::OpenRocksDbEngine(o);
    if (!engine.ok()) {
      std::fprintf(stderr, "reopen: %s\n", engine.status().ToString().c_str());
      return 1;
    }
    for (int t = 0; t < ssc::storage::kTableCount; ++t) {
      absl::Status s = (*engine)->Scan(
          static_cast<ssc::storage::Table>(t), "", "",
          [&](std::string_view k, std::string_view v) {
            tables[t].emplace_back(std::string(k), std::string(v));
            total_bytes += k.size() + v.size();
            ++total_keys;
            return true;
          });
      if (!s.ok()) return 1;
    }
  }
  for (int t = 0; t < ssc::storage::kTableCount; ++t) {
    uint64_t bytes = 0;
    for (const auto& [k, v] : tables[t]) bytes += k.size() + v.size();
    if (tables[t].empty()) continue;
    std::printf(
        "  table %-12s %9zu keys %8.1f MB (%.2f keys, %.0f bytes per row)\n",
        ssc::storage::TableName(static_cast<ssc::storage::Table>(t)),
        tables[t].size(), bytes / 1e6,
        static_cast<double>(tables[t].size()) / persons,
        static_cast<double>(bytes) / persons);
  }
  rocksdb::DBOptions dbo;
  dbo.create_if_missing = true;
  dbo.create_missing_column_families = true;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (int t = 0; t < ssc::storage::kTableCount; ++t) {
    cfs.emplace_back(
        ssc::storage::TableName(static_cast<ssc::storage::Table>(t)),
        rocksdb::ColumnFamilyOptions());
  }
  std::vector<rocksdb::ColumnFamilyHandle*> dst_h;
  rocksdb::DB* dst = nullptr;
  rocksdb::Status st = rocksdb::DB::Open(dbo, dir + "/raw", cfs, &dst_h, &dst);
  if (!st.ok()) {
    std::fprintf(stderr, "open raw: %s\n", st.ToString().c_str());
    return 1;
  }
  const uint64_t batches = std::max<uint64_t>(1, (persons + batch - 1) / batch);
  const uint64_t batch_bytes = total_bytes / batches;
  double raw_s = 0;
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::WriteBatch wb;
  auto flush = [&] {
    const auto t0 = Clock::now();
    rocksdb::Status s = dst->Write(wo, &wb);
    raw_s += Seconds(t0, Clock::now());
    if (!s.ok()) std::fprintf(stderr, "raw write: %s\n", s.ToString().c_str());
    wb.Clear();
  };
  // Each batch takes its share of every table, as an import batch does,
  // in a shuffled order: an import writes persons in file order, so keys
  // (blind indexes, entity ids) arrive unordered, and writing them sorted
  // would flatter the baseline.
  std::vector<size_t> pos(ssc::storage::kTableCount, 0);
  std::mt19937_64 rng(42);
  for (uint64_t b = 0; b < batches; ++b) {
    std::vector<std::pair<int, size_t>> order;
    for (int t = 0; t < ssc::storage::kTableCount; ++t) {
      const size_t end = b + 1 == batches
                             ? tables[t].size()
                             : tables[t].size() * (b + 1) / batches;
      for (; pos[t] < end; ++pos[t]) order.emplace_back(t, pos[t]);
    }
    std::shuffle(order.begin(), order.end(), rng);
    const auto t0 = Clock::now();
    for (const auto& [t, i] : order) {
      wb.Put(dst_h[t], tables[t][i].first, tables[t][i].second);
    }
    raw_s += Seconds(t0, Clock::now());  // building the batch counts too
    flush();
  }
  std::printf(
      "raw rocksdb: %llu keys, %.1f MB in %.2f s = %.0f rows/s "
      "equivalent (%llu synced batches of %.1f MB)\n",
      static_cast<unsigned long long>(total_keys), total_bytes / 1e6, raw_s,
      persons / raw_s, static_cast<unsigned long long>(batches),
      batch_bytes / 1e6);
  std::printf(
      "ratio import/raw: %.2f (import takes %.1fx the raw write time)\n",
      (persons / import_s) / (persons / raw_s), import_s / raw_s);
  for (auto* h : dst_h) dst->DestroyColumnFamilyHandle(h);
  delete dst;
  return 0;
}
