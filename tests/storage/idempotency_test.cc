#include "storage/idempotency.h"

#include "gtest/gtest.h"
#include "storage/key_codec.h"
#include "storage/pii_cipher.h"
#include "storage/rocksdb_engine.h"
#include "storage/storage.pb.h"
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
    idem_ = std::make_unique<Idempotency>(engine_.get(), cipher_.get(), &clock_,
                                          absl::Hours(24));
  }
  void RecordAndCommit(std::string_view caller, std::string_view id,
                       std::string_view fp, std::string_view response) {
    WriteSet ws;
    ws.Put(Table::kCards, std::string(id), "state");
    ASSERT_TRUE(idem_->Record(ws, caller, id, fp, response).ok());
    ASSERT_TRUE(engine_->Commit(std::move(ws)).ok());
  }

  // The stored value of (caller, id) as raw bytes.
  std::string RawValue(std::string_view caller, std::string_view id) {
    auto v = engine_->Get(Table::kIdempotency,
                          KeyBuilder().Str(caller).Str(id).Build());
    EXPECT_TRUE(v.ok() && v->has_value());
    return v.ok() && v->has_value() ? **v : std::string();
  }

  TempDir dir_;
  ManualClock clock_;
  std::unique_ptr<PiiCipher> cipher_ = PiiCipher::ForTesting("idem");
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

// A response carries personal data (an ApplyCard answer holds the ID number,
// the name, the bank account): the stored record must not hold it in clear.
TEST_F(IdempotencyTest, StoredResponseIsSealedAndBoundToItsRecord) {
  const std::string response = "510524199001011230 name 6222020000000001";
  std::string fp = Idempotency::Fingerprint("svc/Apply", "x");
  RecordAndCommit("CN=a", "req-1", fp, response);
  RecordAndCommit("CN=a", "req-2", fp, response);
  const std::string raw = RawValue("CN=a", "req-1");
  EXPECT_EQ(raw.find("510524199001011230"), std::string::npos);
  EXPECT_EQ(raw.find("6222020000000001"), std::string::npos);
  EXPECT_EQ(*idem_->Check("CN=a", "req-1", fp),
            std::optional<std::string>(response));

  // The ciphertext is bound to its key: moved under another request id it
  // does not decrypt.
  WriteSet ws;
  ws.Put(Table::kIdempotency, KeyBuilder().Str("CN=a").Str("req-2").Build(),
         raw);
  ASSERT_TRUE(engine_->Commit(std::move(ws)).ok());
  EXPECT_EQ(idem_->Check("CN=a", "req-2", fp).status().code(),
            absl::StatusCode::kDataLoss);
}

// Records written before responses were sealed (response in clear) still
// replay after the upgrade, until they expire.
TEST_F(IdempotencyTest, ClearRecordsOfEarlierVersionsStillReplay) {
  std::string fp = Idempotency::Fingerprint("svc/Apply", "x");
  std::string v;
  PutFixed64BE(&v, static_cast<uint64_t>(
                       absl::ToUnixMicros(clock_.Now() + absl::Hours(1))));
  IdempotencyRecord rec;
  rec.set_fingerprint(fp);
  rec.set_response("old-response");
  rec.AppendToString(&v);
  WriteSet ws;
  ws.Put(Table::kIdempotency, KeyBuilder().Str("CN=a").Str("old").Build(), v);
  ASSERT_TRUE(engine_->Commit(std::move(ws)).ok());
  EXPECT_EQ(*idem_->Check("CN=a", "old", fp),
            std::optional<std::string>("old-response"));
  EXPECT_EQ(idem_->Check("CN=a", "old", Idempotency::Fingerprint("m", "y"))
                .status()
                .code(),
            absl::StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace ssc::storage
