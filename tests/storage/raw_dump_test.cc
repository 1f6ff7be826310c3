// Reads every file of a closed store as raw bytes and looks for personal
// data: encrypted values must not leave plaintext anywhere (WAL, SST,
// manifest, logs; SST contents also decoded). The control run with plaintext
// values proves the scan finds what is there.

#include <rocksdb/options.h>
#include <rocksdb/sst_file_reader.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "storage/key_codec.h"
#include "storage/pii_cipher.h"
#include "tests/storage/test_util.h"

namespace ssc::storage {
namespace {

using testing_util::OpenOrDie;
using testing_util::TempDir;

struct Person {
  std::string id_number;
  std::string name;
};

std::vector<Person> People() {
  static const char* kSurnames[] = {"王", "李", "张", "刘", "陈"};
  static const char* kGiven[] = {"秀英", "建国", "丽娟", "志强", "海燕",
                                 "德华", "玉兰", "国庆", "春梅", "永福"};
  std::vector<Person> out;
  for (int i = 0; i < 100; ++i) {
    char id[19];
    std::snprintf(id, sizeof(id), "510524198%d0%02d1%03d", i % 10, i % 12 + 1,
                  i);
    out.push_back(Person{id, std::string(kSurnames[i % 5]) + kGiven[i / 10] +
                                 std::to_string(i)});
  }
  return out;
}

// Every file's raw bytes. SST blocks may be compressed (LZ4), which can hide
// plaintext from a byte search, so the decoded keys and values of every SST
// file are appended as well.
std::string AllFileBytes(const std::string& dir) {
  std::string all;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    all.append(std::istreambuf_iterator<char>(in), {});
    if (entry.path().extension() != ".sst") continue;
    rocksdb::SstFileReader reader{rocksdb::Options()};
    EXPECT_TRUE(reader.Open(entry.path().string()).ok()) << entry.path();
    std::unique_ptr<rocksdb::Iterator> it(
        reader.NewIterator(rocksdb::ReadOptions()));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      all.append(it->key().data(), it->key().size());
      all.append(it->value().data(), it->value().size());
    }
    EXPECT_TRUE(it->status().ok()) << it->status().ToString();
  }
  return all;
}

void StorePeople(const std::string& path, const PiiCipher* cipher, bool flush) {
  ManualClock clock;
  auto engine = OpenOrDie(path, &clock);
  ASSERT_NE(engine, nullptr);
  auto blind = PiiCipher::ForTesting("index");
  for (const Person& p : People()) {
    WriteSet ws;
    std::string key = blind->BlindIndex("id_number", p.id_number);
    std::string id = p.id_number, name = p.name;
    if (cipher != nullptr) {
      auto eid = cipher->Encrypt(p.id_number, key + "/id_number");
      auto ename = cipher->Encrypt(p.name, key + "/name");
      ASSERT_TRUE(eid.ok() && ename.ok());
      id = *eid;
      name = *ename;
    }
    ws.Put(Table::kPersons, key, KeyBuilder().Str(id).Str(name).Build());
    ws.AppendEvent(
        EventInput{"person.registered",
                   "person",
                   absl::BytesToHexString(key).substr(0, 16),
                   "{\"masked\":\"" + MaskIdNumber(p.id_number) + "\"}",
                   {}});
    ASSERT_TRUE(engine->Commit(std::move(ws)).ok());
  }
  if (flush) {
    ASSERT_TRUE(engine->Flush().ok());
  }
}

int CountFound(const std::string& bytes) {
  int found = 0;
  for (const Person& p : People()) {
    if (bytes.find(p.id_number) != std::string::npos) ++found;
    if (bytes.find(p.name) != std::string::npos) ++found;
  }
  return found;
}

class RawDumpTest : public ::testing::TestWithParam<bool> {};

TEST_P(RawDumpTest, ControlFindsPlaintextValues) {
  TempDir dir;
  StorePeople(dir.path(), nullptr, GetParam());
  EXPECT_EQ(CountFound(AllFileBytes(dir.path())), 200);
}

TEST_P(RawDumpTest, EncryptedValuesLeaveNoPlaintextOnDisk) {
  TempDir dir;
  auto cipher = PiiCipher::ForTesting("data");
  StorePeople(dir.path(), cipher.get(), GetParam());
  std::string bytes = AllFileBytes(dir.path());
  EXPECT_GT(bytes.size(), 100u * 50);  // the records are there
  EXPECT_EQ(CountFound(bytes), 0);
}

INSTANTIATE_TEST_SUITE_P(WalAndSst, RawDumpTest, ::testing::Bool(),
                         [](const auto& info) {
                           return info.param ? "Flushed" : "WalOnly";
                         });

}  // namespace
}  // namespace ssc::storage
