#include "storage/idempotency.h"

#include "gtest/gtest.h"
#include "storage/rocksdb_engine.h"
#include "tests/storage/test_util.h"

namespace ssc::storage {
namespace {

using testing_util::OpenOrDie;
using testing_util::TempDir;

class IdempotencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    engine_ = OpenOrDie(dir_.path(), &clock_);
    ASSERT_NE(engine_, nullptr);
    idem_ =
        std::make_unique<Idempotency>(engine_.get(), &clock_, absl::Hours(24));
  }
  void RecordAndCommit(std::string_view caller, std::string_view id,
                       std::string_view fp, std::string_view response) {
    WriteSet ws;
    ws.Put(Table::kCards, std::string(id), "state");
    idem_->Record(ws, caller, id, fp, response);
    ASSERT_TRUE(engine_->Commit(std::move(ws)).ok());
  }

  TempDir dir_;
  ManualClock clock_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Idempotency> idem_;
};

TEST_F(IdempotencyTest, FingerprintSeparatesMethodAndRequest) {
  std::string fp = Idempotency::Fingerprint("svc/Apply", "abc");
  EXPECT_EQ(fp.size(), 32u);
  EXPECT_EQ(fp, Idempotency::Fingerprint("svc/Apply", "abc"));
  EXPECT_NE(fp, Idempotency::Fingerprint("svc/Appl", "yabc"));
  EXPECT_NE(fp, Idempotency::Fingerprint("svc/Apply", "abd"));
  EXPECT_NE(Idempotency::LockKey("a", "bc"), Idempotency::LockKey("ab", "c"));
}

TEST_F(IdempotencyTest, ReplaysSameRequestAndRejectsDifferentOne) {
  std::string fp = Idempotency::Fingerprint("svc/Apply", "req-bytes");
  auto first = idem_->Check("CN=a", "req-1", fp);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, std::nullopt);
  RecordAndCommit("CN=a", "req-1", fp, "response-bytes");

  auto again = idem_->Check("CN=a", "req-1", fp);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, std::optional<std::string>("response-bytes"));

  auto conflict = idem_->Check("CN=a", "req-1",
                               Idempotency::Fingerprint("svc/Apply", "other"));
  EXPECT_EQ(conflict.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(conflict.status().message().find("req-1"), std::string::npos)
      << conflict.status();

  // Another caller's ids are independent.
  auto other = idem_->Check("CN=b", "req-1", fp);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(*other, std::nullopt);
}

TEST_F(IdempotencyTest, ExpiredRecordsAreIgnoredAndCompactedAway) {
  std::string fp = Idempotency::Fingerprint("svc/Apply", "x");
  RecordAndCommit("CN=a", "old", fp, "resp");
  clock_.Advance(absl::Hours(23));
  EXPECT_EQ(*idem_->Check("CN=a", "old", fp),
            std::optional<std::string>("resp"));
  RecordAndCommit("CN=a", "young", fp, "resp2");
  clock_.Advance(absl::Hours(2));  // "old" is 25 h old, "young" 2 h
  // Expired: a new request, even with another fingerprint.
  EXPECT_EQ(*idem_->Check("CN=a", "old", fp), std::nullopt);
  EXPECT_EQ(*idem_->Check("CN=a", "old", Idempotency::Fingerprint("m", "y")),
            std::nullopt);

  // Count raw records before and after compaction.
  auto count = [&] {
    int n = 0;
    EXPECT_TRUE(engine_
                    ->Scan(Table::kIdempotency, "", "",
                           [&](std::string_view, std::string_view) {
                             ++n;
                             return true;
                           })
                    .ok());
    return n;
  };
  EXPECT_EQ(count(), 2);
  ASSERT_TRUE(engine_->Flush().ok());
  ASSERT_TRUE(CompactRocksDbEngine(*engine_).ok());
  EXPECT_EQ(count(), 1);  // the filter dropped "old" only
  EXPECT_EQ(*idem_->Check("CN=a", "young", fp),
            std::optional<std::string>("resp2"));
}

}  // namespace
}  // namespace ssc::storage
