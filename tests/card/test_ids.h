#pragma once

// Test helpers: ID numbers built with an independent implementation of the
// GB 11643 check character, and a temp-dir store for CardLogic tests.

#include <stdlib.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"

namespace ssc::card::testing {

// The check character computed here, not by the code under test.
inline char CheckChar(const std::string& first17) {
  static const int w[17] = {7, 9, 10, 5,  8, 4, 2, 1, 6,
                            3, 7, 9,  10, 5, 8, 4, 2};
  int s = 0;
  for (int i = 0; i < 17; ++i) s += (first17[i] - '0') * w[i];
  return "10X98765432"[s % 11];
}

// region (6) + birth YYYYMMDD + sequence (3), with the right check character.
inline std::string MakeId(const std::string& region, const std::string& birth,
                          int seq) {
  char buf[8];
  snprintf(buf, sizeof(buf), "%03d", seq % 1000);
  std::string first17 = region + birth + buf;
  return first17 + CheckChar(first17);
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "ssc_card_XXXXXX";
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

}  // namespace ssc::card::testing
