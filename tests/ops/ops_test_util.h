#pragma once

// A store for ops tests: RocksDB in a temp dir, a manual clock, the card
// logic with the report's holder counters and the e-card observer attached
// (as sscd attaches them).

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "services/card/card_logic.h"
#include "services/card/regions.h"
#include "services/ecard/ecard_observer.h"
#include "services/report/holder_observer.h"
#include "storage/clock.h"
#include "storage/idempotency.h"
#include "storage/key_lock.h"
#include "storage/pii_cipher.h"
#include "storage/rocksdb_engine.h"

namespace ssc::ops::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "ssc_ops_XXXXXX";
    char* p = ::mkdtemp(tmpl.data());
    EXPECT_NE(p, nullptr);
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

// Independent GB 11643 check character.
inline std::string MakeId(const std::string& region, const std::string& birth,
                          int seq) {
  static const int w[17] = {7, 9, 10, 5,  8, 4, 2, 1, 6,
                            3, 7, 9,  10, 5, 8, 4, 2};
  char buf[8];
  snprintf(buf, sizeof(buf), "%03d", seq % 1000);
  std::string first17 = region + birth + buf;
  int s = 0;
  for (int i = 0; i < 17; ++i) s += (first17[i] - '0') * w[i];
  return first17 + "10X98765432"[s % 11];
}

struct TestStore {
  explicit TestStore(const std::string& path, storage::ManualClock* clock,
                     bool sync = false)
      : clock(clock),
        regions(card::RegionTable::Default()),
        cipher(storage::PiiCipher::ForTesting("ops-test")) {
    storage::RocksDbOptions o;
    o.path = path;
    o.clock = clock;
    o.sync = sync;
    // Every import batch as table files, however small (production: 4096
    // writes and more), so that the tests go through that path.
    o.bulk_load_min_writes = 1;
    o.block_cache_bytes = 16 << 20;
    auto e = storage::OpenRocksDbEngine(o);
    EXPECT_TRUE(e.ok()) << e.status();
    engine = std::move(*e);
    idem = std::make_unique<storage::Idempotency>(engine.get(), cipher.get(),
                                                  clock);
    ctx.engine = engine.get();
    ctx.locks = &locks;
    ctx.idempotency = idem.get();
    ctx.cipher = cipher.get();
    ctx.clock = clock;
    ecard_observer = std::make_unique<ecard::ECardObserver>(engine.get());
    cards = std::make_unique<card::CardLogic>(ctx, &regions);
    cards->AddObserver(&holders);
    cards->AddObserver(ecard_observer.get());
  }

  storage::ManualClock* clock;
  card::RegionTable regions;
  std::unique_ptr<storage::PiiCipher> cipher;
  std::unique_ptr<storage::Engine> engine;
  storage::KeyLocks locks;
  std::unique_ptr<storage::Idempotency> idem;
  common::StoreContext ctx;
  report::HolderCounterObserver holders;
  std::unique_ptr<ecard::ECardObserver> ecard_observer;
  std::unique_ptr<card::CardLogic> cards;
};

}  // namespace ssc::ops::testing
