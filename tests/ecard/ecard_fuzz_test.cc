// A bounded, deterministic fuzz loop over the QR decoder and verifier: random
// bytes, random token-alphabet strings and mutations of real codes (byte
// flips, insertions, deletions, splices, re-encoded headers and payloads).
// Every input must map to a defined outcome, never crash, and never be VALID
// unless it is the untouched code.

#include <algorithm>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "services/ecard/qr_token.h"
#include "tests/ecard/ecard_fixture.h"

namespace ssc::ecard {
namespace {

using testing::ECardFixture;
using namespace ssc::v1;  // NOLINT

class ECardFuzzTest : public ECardFixture {};

constexpr char kTokenChars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";

std::string Mutate(const std::string& base, std::mt19937_64& rng,
                   const std::vector<std::string>& corpus) {
  std::string t = base;
  const int edits = 1 + static_cast<int>(rng() % 4);
  for (int e = 0; e < edits; ++e) {
    const size_t pos = t.empty() ? 0 : rng() % t.size();
    switch (rng() % 8) {
      case 0:  // flip a bit
        if (!t.empty()) t[pos] = static_cast<char>(t[pos] ^ (1 << (rng() % 8)));
        break;
      case 1:  // replace with a token character
        if (!t.empty()) t[pos] = kTokenChars[rng() % 65];
        break;
      case 2:  // insert
        t.insert(pos, 1, kTokenChars[rng() % 65]);
        break;
      case 3:  // delete
        if (!t.empty()) t.erase(pos, 1);
        break;
      case 4:  // truncate
        t.resize(pos);
        break;
      case 5: {  // splice with another code
        const std::string& o = corpus[rng() % corpus.size()];
        const size_t cut = o.empty() ? 0 : rng() % o.size();
        t = t.substr(0, pos) + o.substr(cut);
        break;
      }
      case 6: {  // re-encode a decoded part with one byte changed
        const size_t dot = t.find('.');
        if (dot == std::string::npos) break;
        auto part = Base64UrlDecode(t.substr(0, dot));
        if (!part.has_value() || part->empty()) break;
        (*part)[rng() % part->size()] = static_cast<char>(rng() % 128);
        t = Base64UrlEncode(*part) + t.substr(dot);
        break;
      }
      default:  // duplicate a section
        t += t.substr(pos, rng() % 40);
        break;
    }
  }
  return t;
}

bool Defined(QrVerifyOutcome o) {
  return QrVerifyOutcome_IsValid(o) && o != QR_VERIFY_OUTCOME_UNSPECIFIED;
}

TEST_F(ECardFuzzTest, DecoderSurvivesTwoHundredThousandInputs) {
  const std::string id = NewId();
  Holder(id);
  const std::string e = IssueIn(app_a_, id);
  std::vector<std::string> corpus;
  for (BusinessType bt :
       {BUSINESS_TYPE_ENQUIRY, BUSINESS_TYPE_PAYMENT, BUSINESS_TYPE_OTHER,
        BUSINESS_TYPE_MEDICAL_OUT_OF_REGION}) {
    auto qr = Qr(app_a_, e, bt);
    ASSERT_TRUE(qr.ok());
    corpus.push_back(qr->payload());
  }
  const absl::Time now = clock_.Now();
  std::mt19937_64 rng(20260101);  // deterministic
  // 200k by default; SSC_FUZZ_ITERATIONS changes it (e.g. under valgrind).
  int iterations = 200000;
  if (const char* env = std::getenv("SSC_FUZZ_ITERATIONS")) {
    iterations = std::max(1, std::atoi(env));
  }
  int valid = 0;
  for (int i = 0; i < iterations; ++i) {
    std::string input;
    switch (i % 4) {
      case 0: {  // random bytes, random length
        input.resize(rng() % 400);
        for (char& c : input) c = static_cast<char>(rng());
        break;
      }
      case 1: {  // random token-alphabet text
        input.resize(rng() % 300);
        for (char& c : input) c = kTokenChars[rng() % 65];
        break;
      }
      default:
        input = Mutate(corpus[rng() % corpus.size()], rng, corpus);
    }
    const TokenCheck check = ecard_->CheckToken(input, now);
    ASSERT_TRUE(Defined(check.outcome)) << i;
    if (check.outcome == QR_VERIFY_OUTCOME_VALID) {
      // Only an untouched code (a mutation may undo itself) verifies.
      bool original = false;
      for (const std::string& c : corpus) original |= (c == input);
      ASSERT_TRUE(original) << "mutated input verified: " << input;
      ++valid;
    }
  }
  EXPECT_LT(valid, iterations);
}

TEST_F(ECardFuzzTest, FullVerificationOfMutatedCodesNeverSucceeds) {
  const std::string id = NewId();
  Holder(id);
  const std::string e = IssueIn(app_a_, id);
  auto qr = Qr(app_a_, e);
  ASSERT_TRUE(qr.ok());
  std::vector<std::string> corpus = {qr->payload()};
  std::mt19937_64 rng(7);
  for (int i = 0; i < 1500; ++i) {
    std::string input = Mutate(qr->payload(), rng, corpus);
    if (input == qr->payload()) continue;
    auto v = Verify(input);
    ASSERT_TRUE(Defined(v.outcome()));
    EXPECT_NE(v.outcome(), QR_VERIFY_OUTCOME_VALID) << input;
    EXPECT_TRUE(v.holder_id_number().empty());
  }
  // The untouched code was never used up by the failures.
  EXPECT_EQ(Verify(qr->payload()).outcome(), QR_VERIFY_OUTCOME_VALID);
}

}  // namespace
}  // namespace ssc::ecard
