#pragma once

// Helpers shared by the storage tests.

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "storage/clock.h"
#include "storage/rocksdb_engine.h"

namespace ssc::storage::testing_util {

// A fresh directory under the test temp dir, removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "ssc_storage_XXXXXX";
    char* p = ::mkdtemp(tmpl.data());
    EXPECT_NE(p, nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline std::unique_ptr<Engine> OpenOrDie(const std::string& path,
                                         const Clock* clock,
                                         RocksDbOptions base = {}) {
  base.path = path;
  base.clock = clock;
  base.block_cache_bytes = 8 << 20;
  auto e = OpenRocksDbEngine(base);
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? std::move(*e) : nullptr;
}

// Two empty stores on one manual clock, for comparing what two ways of
// writing the same things leave behind.
struct StorePair {
  TempDir dir_a, dir_b;
  ManualClock clock;
  std::unique_ptr<Engine> a = OpenOrDie(dir_a.path(), &clock);
  std::unique_ptr<Engine> b = OpenOrDie(dir_b.path(), &clock);
  bool ok() const { return a != nullptr && b != nullptr; }
};

}  // namespace ssc::storage::testing_util
