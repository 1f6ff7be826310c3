// ReencryptRange over a real store: values under an older data key are
// re-encrypted under the active one, step by step, and a normal write that
// lands between the step's scan and its rewrite is kept.

#include "storage/reencryption.h"

#include "gtest/gtest.h"
#include "tests/storage/test_util.h"

namespace ssc::storage {
namespace {

using testing_util::OpenOrDie;
using testing_util::TempDir;

// Records of one encrypted value each, aad = the key, lock "rec/<key>".
EncryptedRecordLayout Layout(
    std::function<void(std::string_view key)> on_scan = nullptr) {
  EncryptedRecordLayout l;
  l.table = Table::kPersons;
  l.lock_key = [on_scan](std::string_view key, std::string_view) {
    if (on_scan) on_scan(key);
    return std::string("rec/").append(key);
  };
  l.rewrite = [](std::string_view key, std::string* value,
                 CipherFieldFn field) { return field(key, value); };
  return l;
}

class ReencryptRangeTest : public ::testing::Test {
 protected:
  void Put(const std::string& key, const std::string& clear) {
    WriteSet ws;
    ws.Put(Table::kPersons, key, *cipher_->Encrypt(clear, key));
    ASSERT_TRUE(engine_->Commit(std::move(ws)).ok());
  }
  std::string Read(const std::string& key) {
    auto v = engine_->Get(Table::kPersons, key);
    EXPECT_TRUE(v.ok() && v->has_value());
    return **v;
  }

  TempDir dir_;
  ManualClock clock_;
  std::unique_ptr<Engine> engine_ = OpenOrDie(dir_.path(), &clock_);
  KeyLocks locks_;
  std::unique_ptr<PiiCipher> cipher_ = PiiCipher::ForTesting("seed");
};

TEST_F(ReencryptRangeTest, RewritesOldValuesStepByStep) {
  for (const char* k : {"a", "b", "c"}) Put(k, std::string("clear-") + k);
  ASSERT_EQ(*cipher_->RotateDataKey(), 2u);
  auto first = ReencryptRange(engine_.get(), &locks_, *cipher_, Layout(), "",
                              /*limit=*/2);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->scanned, 2u);
  EXPECT_EQ(first->reencrypted, 2u);
  EXPECT_EQ(first->old_values.at(1), 2u);
  EXPECT_EQ(first->next, "c");
  EXPECT_EQ(PiiCipher::KeyIdOf(Read("a")), 2u);
  EXPECT_EQ(PiiCipher::KeyIdOf(Read("c")), 1u);
  auto second = ReencryptRange(engine_.get(), &locks_, *cipher_, Layout(),
                               first->next, 2);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->reencrypted, 1u);
  EXPECT_TRUE(second->next.empty());
  for (const char* k : {"a", "b", "c"}) {
    EXPECT_EQ(PiiCipher::KeyIdOf(Read(k)), 2u) << k;
    EXPECT_EQ(*cipher_->Decrypt(Read(k), k), std::string("clear-") + k);
  }
  // Nothing left: a new pass finds nothing under another key.
  auto again =
      ReencryptRange(engine_.get(), &locks_, *cipher_, Layout(), "", 10);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->scanned, 3u);
  EXPECT_EQ(again->reencrypted, 0u);
  EXPECT_TRUE(again->old_values.empty());
}

TEST_F(ReencryptRangeTest, KeepsAWriteMadeAfterTheScanReadTheRecord) {
  for (const char* k : {"a", "b", "c"}) Put(k, std::string("clear-") + k);
  ASSERT_EQ(*cipher_->RotateDataKey(), 2u);
  // While the step scans, the owner of "b" changes it (under its lock, as
  // every writer of the kind does).
  bool wrote = false;
  auto layout = Layout([&](std::string_view key) {
    if (key != "b" || wrote) return;
    wrote = true;
    KeyLocks::Guard g = locks_.Lock({"rec/b"});
    Put("b", "changed-b");
  });
  auto step = ReencryptRange(engine_.get(), &locks_, *cipher_, layout, "", 10);
  ASSERT_TRUE(step.ok()) << step.status();
  ASSERT_TRUE(wrote);
  EXPECT_EQ(*cipher_->Decrypt(Read("b"), "b"), "changed-b");
  EXPECT_EQ(*cipher_->Decrypt(Read("a"), "a"), "clear-a");
  EXPECT_EQ(PiiCipher::KeyIdOf(Read("a")), 2u);
}

}  // namespace
}  // namespace ssc::storage
