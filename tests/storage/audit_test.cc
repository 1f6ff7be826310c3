#include "storage/audit.h"

#include <rocksdb/db.h>

#include <functional>

#include "gtest/gtest.h"
#include "storage/key_codec.h"
#include "storage/storage.pb.h"
#include "tests/storage/test_util.h"

namespace ssc::storage {
namespace {

using testing_util::OpenOrDie;
using testing_util::TempDir;

// Writes `n` audit records (one per commit, the last commit with two).
void WriteRecords(const std::string& path, const Clock* clock, int n) {
  auto engine = OpenOrDie(path, clock);
  for (int i = 1; i <= n - 1; ++i) {
    WriteSet ws;
    AuditInput a;
    a.caller = "CN=counter-01";
    a.rpc = "ssc.v1.CardService/ApplyCard";
    a.request_id = "r" + std::to_string(i);
    a.message = "ok";
    ws.AppendAudit(a);
    ASSERT_TRUE(engine->Commit(std::move(ws)).ok());
  }
  WriteSet ws;
  AuditInput a;
  a.rpc = "ssc.v1.CardService/ReportLoss";
  a.request_id = "last-a";
  ws.AppendAudit(a);
  ASSERT_TRUE(engine->Commit(std::move(ws)).ok());
}

// Opens the closed store with RocksDB directly, as an attacker with file
// access would, and lets `fn` change it.
void Tamper(const std::string& path,
            const std::function<void(rocksdb::DB*, rocksdb::ColumnFamilyHandle*,
                                     rocksdb::ColumnFamilyHandle*)>& fn) {
  std::vector<std::string> names;
  ASSERT_TRUE(
      rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : names)
    descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(
      rocksdb::DB::Open(rocksdb::DBOptions(), path, descs, &handles, &db).ok());
  rocksdb::ColumnFamilyHandle* audit = nullptr;
  rocksdb::ColumnFamilyHandle* meta = nullptr;
  for (auto* h : handles) {
    if (h->GetName() == TableName(Table::kAudit)) audit = h;
    if (h->GetName() == TableName(Table::kMeta)) meta = h;
  }
  ASSERT_NE(audit, nullptr);
  ASSERT_NE(meta, nullptr);
  fn(db, audit, meta);
  for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
  ASSERT_TRUE(db->Close().ok());
  delete db;
}

AuditVerifyResult Verify(const std::string& path, const Clock* clock) {
  auto engine = OpenOrDie(path, clock);
  auto r = VerifyAuditChain(*engine);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : AuditVerifyResult{};
}

std::string Key(uint64_t seq) { return KeyBuilder().U64(seq).Build(); }

TEST(AuditTest, SealChainsHashes) {
  AuditInput in;
  in.rpc = "x";
  absl::Time t = absl::FromUnixSeconds(1000);
  SealedAudit a = SealAudit(1, t, "", in);
  SealedAudit b = SealAudit(2, t, a.hash, in);
  SealedAudit b2 = SealAudit(2, t, std::string(32, 'x'), in);
  EXPECT_EQ(a.hash.size(), 32u);
  EXPECT_NE(b.hash, b2.hash);  // the previous hash is part of the input
  EXPECT_EQ(SealAudit(2, t, a.hash, in).value, b.value);  // deterministic
  AuditRecord r;
  ASSERT_TRUE(r.ParseFromString(b.value));
  EXPECT_EQ(r.prev_hash(), a.hash);
  EXPECT_EQ(r.hash(), b.hash);
  EXPECT_EQ(b.key, Key(2));
}

TEST(AuditTest, EmptyAndIntactChainsVerify) {
  TempDir dir;
  ManualClock clock;
  EXPECT_TRUE(Verify(dir.path(), &clock).ok);
  WriteRecords(dir.path(), &clock, 5);
  AuditVerifyResult r = Verify(dir.path(), &clock);
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.records, 5u);
  EXPECT_EQ(r.first_bad_sequence, 0u);

  auto engine = OpenOrDie(dir.path(), &clock);
  auto recs = ReadAudit(*engine, 2, 2);
  ASSERT_TRUE(recs.ok());
  ASSERT_EQ(recs->size(), 2u);
  EXPECT_EQ((*recs)[0].sequence, 2u);
  EXPECT_EQ((*recs)[0].input.request_id, "r2");
  EXPECT_EQ((*recs)[0].input.caller, "CN=counter-01");
  EXPECT_EQ((*recs)[0].time, clock.Now());
}

TEST(AuditTest, DetectsEditedRecord) {
  TempDir dir;
  ManualClock clock;
  WriteRecords(dir.path(), &clock, 5);
  Tamper(dir.path(), [](rocksdb::DB* db, auto* audit, auto*) {
    std::string v;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), audit, Key(2), &v).ok());
    AuditRecord r;
    ASSERT_TRUE(r.ParseFromString(v));
    r.set_code(0);
    r.set_message("nothing happened");
    ASSERT_TRUE(
        db->Put(rocksdb::WriteOptions(), audit, Key(2), r.SerializeAsString())
            .ok());
  });
  AuditVerifyResult r = Verify(dir.path(), &clock);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_sequence, 2u);
  EXPECT_NE(r.problem.find("modified"), std::string::npos) << r.problem;
}

TEST(AuditTest, DetectsEditedRecordWithRecomputedHash) {
  TempDir dir;
  ManualClock clock;
  WriteRecords(dir.path(), &clock, 5);
  Tamper(dir.path(), [](rocksdb::DB* db, auto* audit, auto*) {
    std::string v;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), audit, Key(3), &v).ok());
    AuditRecord r;
    ASSERT_TRUE(r.ParseFromString(v));
    AuditInput in;
    in.request_id = "forged";
    SealedAudit forged = SealAudit(3, absl::FromUnixNanos(r.time_unix_nanos()),
                                   r.prev_hash(), in);
    ASSERT_TRUE(
        db->Put(rocksdb::WriteOptions(), audit, Key(3), forged.value).ok());
  });
  AuditVerifyResult r = Verify(dir.path(), &clock);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_sequence, 4u);  // record 4 no longer links
}

TEST(AuditTest, DetectsDeletedMiddleRecord) {
  TempDir dir;
  ManualClock clock;
  WriteRecords(dir.path(), &clock, 5);
  Tamper(dir.path(), [](rocksdb::DB* db, auto* audit, auto*) {
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), audit, Key(3)).ok());
  });
  AuditVerifyResult r = Verify(dir.path(), &clock);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_sequence, 3u);
  EXPECT_EQ(r.records, 2u);
}

TEST(AuditTest, DetectsDeletedTail) {
  TempDir dir;
  ManualClock clock;
  WriteRecords(dir.path(), &clock, 5);
  Tamper(dir.path(), [](rocksdb::DB* db, auto* audit, auto*) {
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), audit, Key(5)).ok());
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), audit, Key(4)).ok());
  });
  AuditVerifyResult r = Verify(dir.path(), &clock);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_sequence, 4u);
  EXPECT_NE(r.problem.find("head"), std::string::npos) << r.problem;
}

TEST(AuditTest, DetectsDeletedHeadAndNewRecordsDoNotOverwrite) {
  TempDir dir;
  ManualClock clock;
  WriteRecords(dir.path(), &clock, 3);
  Tamper(dir.path(), [](rocksdb::DB* db, auto*, auto* meta) {
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), meta, AuditHeadKey()).ok());
  });
  EXPECT_FALSE(Verify(dir.path(), &clock).ok);
  // The engine continues after the last stored record, not at 1.
  auto engine = OpenOrDie(dir.path(), &clock);
  WriteSet ws;
  ws.AppendAudit(AuditInput{});
  auto c = engine->Commit(std::move(ws));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->first_audit_sequence, 4u);
  EXPECT_EQ((*ReadAudit(*engine, 1, 10)).size(), 4u);
}

}  // namespace
}  // namespace ssc::storage
