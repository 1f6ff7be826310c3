// Micro-benchmark of the commit path: Engine::Commit (group commit, synced
// WAL, with event, index and audit records) against a raw synced RocksDB
// WriteBatch carrying the same number of entries and bytes. Both run with
// 1..16 threads so the effect of sharing one fsync shows.

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include "benchmark/benchmark.h"
#include "storage/engine.h"
#include "storage/key_codec.h"
#include "storage/rocksdb_engine.h"

namespace ssc::storage {
namespace {

std::string MakeDir() {
  std::string tmpl = std::filesystem::temp_directory_path().string() +
                     "/ssc_storage_bench_XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) abort();
  return tmpl;
}

const std::string kRecord(300, 'r');  // a card record's size
std::atomic<uint64_t> next_id{0};

WriteSet MakeWriteSet(uint64_t id) {
  WriteSet ws;
  std::string key = KeyBuilder().Str("A").U64(id).Build();
  ws.Put(Table::kCards, key, kRecord);
  ws.Put(Table::kIndex, KeyBuilder().Str("cardno").U64(id).Build(), key);
  ws.AddCounter(Table::kCounters, "holders", 1);
  EventInput e;
  e.type = "card.applied";
  e.entity_type = "card";
  e.entity_id = std::to_string(id);
  e.payload = std::string(120, 'p');
  e.also_index.push_back({"person", std::to_string(id)});
  ws.AppendEvent(std::move(e));
  AuditInput a;
  a.caller = "CN=counter-01";
  a.rpc = "ssc.v1.CardService/ApplyCard";
  a.request_id = std::to_string(id);
  ws.AppendAudit(std::move(a));
  return ws;
}

std::string engine_dir;
std::unique_ptr<Engine> engine;

void EngineSetup(const benchmark::State&) {
  engine_dir = MakeDir();
  RocksDbOptions o;
  o.path = engine_dir;
  auto e = OpenRocksDbEngine(o);
  if (!e.ok()) abort();
  engine = std::move(*e);
}

void EngineTeardown(const benchmark::State&) {
  engine.reset();
  std::filesystem::remove_all(engine_dir);
}

void BM_EngineCommit(benchmark::State& state) {
  for (auto _ : state) {
    auto r = engine->Commit(MakeWriteSet(next_id++));
    if (!r.ok()) state.SkipWithError("commit failed");
  }
  if (state.thread_index() == 0) {
    EngineStats s = engine->Stats();
    state.counters["commits_per_sync"] =
        s.group_writes == 0 ? 0.0
                            : static_cast<double>(s.commits) / s.group_writes;
  }
}
BENCHMARK(BM_EngineCommit)
    ->Setup(EngineSetup)
    ->Teardown(EngineTeardown)
    ->ThreadRange(1, 16)
    ->UseRealTime();

std::string raw_dir;
rocksdb::DB* raw_db = nullptr;

void RawSetup(const benchmark::State&) {
  raw_dir = MakeDir();
  rocksdb::Options o;
  o.create_if_missing = true;
  o.max_background_jobs = 2;
  if (!rocksdb::DB::Open(o, raw_dir, &raw_db).ok()) abort();
}

void RawTeardown(const benchmark::State&) {
  delete raw_db;
  raw_db = nullptr;
  std::filesystem::remove_all(raw_dir);
}

// The same entries as MakeWriteSet after sequencing: 2 puts, 1 counter (as a
// put), the event, 2 index entries, the audit record and the chain head.
void BM_RawSyncedWriteBatch(benchmark::State& state) {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  for (auto _ : state) {
    uint64_t id = next_id++;
    rocksdb::WriteBatch b;
    std::string key = KeyBuilder().Str("A").U64(id).Build();
    b.Put(key, kRecord);
    b.Put(KeyBuilder().Str("cardno").U64(id).Build(), key);
    b.Put("holders", std::string(8, '\1'));
    b.Put(KeyBuilder().Str("ev").U64(id).Build(), std::string(170, 'e'));
    b.Put(KeyBuilder().Str("card").Str(std::to_string(id)).U64(id).Build(), "");
    b.Put(KeyBuilder().Str("person").Str(std::to_string(id)).U64(id).Build(),
          "");
    b.Put(KeyBuilder().Str("au").U64(id).Build(), std::string(150, 'a'));
    b.Put("audit_head", std::string(40, 'h'));
    if (!raw_db->Write(wo, &b).ok()) state.SkipWithError("write failed");
  }
}
BENCHMARK(BM_RawSyncedWriteBatch)
    ->Setup(RawSetup)
    ->Teardown(RawTeardown)
    ->ThreadRange(1, 16)
    ->UseRealTime();

}  // namespace
}  // namespace ssc::storage

BENCHMARK_MAIN();
