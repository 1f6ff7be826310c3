// Data-key rotation for operators, in process over real gRPC (plain-text
// development mode on loopback): AdminService.RotateDataKey and
// GetReencryptionStatus, the background re-encryption of every kind of
// stored record with personal data, its resumption after a restart in the
// middle of the job, writes made while it runs, and bad input.
//
// Whether a value is still under the old key is judged from the store's own
// files, not from the job's report: after the server stops, every value of
// every table is opened (as a protobuf, recursively, and as raw bytes) and
// the key id in the header of each ciphertext found is read.

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "google/protobuf/unknown_field_set.h"
#include "gtest/gtest.h"
#include "services/sscd/server.h"
#include "ssc/v1/admin.grpc.pb.h"
#include "ssc/v1/card.grpc.pb.h"
#include "ssc/v1/payout.grpc.pb.h"
#include "storage/pii_cipher.h"
#include "storage/rocksdb_engine.h"
#include "tests/ops/ops_test_util.h"

namespace ssc::ops {
namespace {

using storage::Table;
using testing::MakeId;
using testing::TempDir;

constexpr int kPersons = 12;
constexpr int kItems = 5;

sscd::ServerConfig Config(const std::string& data_dir) {
  sscd::ServerConfig c;
  c.listen = "127.0.0.1:0";
  c.data_dir = data_dir;
  c.insecure_plaintext = true;
  c.services = {"card", "ecard", "payout", "admin"};
  // Nothing is executed in these tests: the bank is never called.
  c.payout_bank_address = "127.0.0.1:1";
  c.drain_seconds = 1;
  c.log_rpcs = false;
  return c;
}

std::unique_ptr<grpc::ClientContext> Ctx(const std::string& role = "admin") {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("x-ssc-caller", absl::StrCat(role, "-test-01"));
  ctx->AddMetadata("x-ssc-role", role);
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(60));
  return ctx;
}

std::string IdOf(int n) {
  return MakeId("510524", absl::StrCat(1960 + n, "0101"), n);
}

// Persons with cards and bank accounts, and a payout batch with items for
// some of them (the e-card service keeps its encrypted signing key).
void Seed(const std::shared_ptr<grpc::Channel>& channel) {
  ssc::v1::CardService::Stub cards(channel);
  for (int n = 0; n < kPersons; ++n) {
    ssc::v1::ApplyCardRequest req;
    req.set_request_id(absl::StrCat("apply-", n));
    req.mutable_person()->set_id_number(IdOf(n));
    req.mutable_person()->set_name("王小明");
    req.mutable_person()->set_phone("13912345678");
    req.mutable_person()->set_address("叙永镇东大街1号");
    req.mutable_person()->set_region_code("510524100");
    req.set_bank_code("ABC");
    req.set_instant_issuance(true);
    req.set_bank_account(absl::StrCat("62284800", 10000000 + n));
    ssc::v1::ApplyCardResponse resp;
    grpc::Status s = cards.ApplyCard(Ctx("counter").get(), req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  ssc::v1::PayoutService::Stub payout(channel);
  ssc::v1::RegisterProgrammeRequest prog;
  prog.set_request_id("prog-1");
  prog.mutable_programme()->set_code("KNCJ");
  prog.mutable_programme()->set_name("困难残疾人生活补贴");
  prog.mutable_programme()->set_category(
      ssc::v1::PROGRAMME_CATEGORY_AGRICULTURAL_LIVELIHOOD_SUBSIDY);
  prog.mutable_programme()->set_unit(ssc::v1::BENEFICIARY_UNIT_PER_PERSON);
  prog.mutable_programme()->set_max_item_amount_fen(100000);
  ssc::v1::RegisterProgrammeResponse prog_resp;
  grpc::Status s =
      payout.RegisterProgramme(Ctx("finance_maker").get(), prog, &prog_resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ssc::v1::CreateBatchRequest create;
  create.set_request_id("batch-1");
  create.set_programme_code("KNCJ");
  create.set_period("2026-11");
  create.mutable_scheduled_at()->set_seconds(1767225600);
  create.set_control_count(kItems);
  create.set_control_amount_fen(kItems * 5000);
  ssc::v1::CreateBatchResponse batch;
  s = payout.CreateBatch(Ctx("finance_maker").get(), create, &batch);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ssc::v1::UploadItemsResponse uploaded;
  auto ctx = Ctx("finance_maker");
  auto writer = payout.UploadItems(ctx.get(), &uploaded);
  ssc::v1::UploadItemsRequest up;
  up.set_request_id("upload-1");
  up.set_batch_id(batch.batch().batch_id());
  for (int n = 0; n < kItems; ++n) {
    ssc::v1::PayoutItemInput* item = up.add_items();
    item->set_item_id(absl::StrCat("I", n));
    item->set_id_number(IdOf(n));
    item->set_name("王小明");
    item->set_amount_fen(5000);
  }
  ASSERT_TRUE(writer->Write(up));
  ASSERT_TRUE(writer->WritesDone());
  s = writer->Finish();
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(uploaded.new_items(), kItems);
}

// The ciphertexts in `bytes` (by where they start, so none is counted
// twice): the bytes themselves, or else every length-delimited field,
// recursively, if they parse as a protobuf (at the top also after an 8-byte
// prefix, as records with an expiry in front).
void FindCiphertexts(std::string_view bytes, int depth,
                     std::map<const char*, uint32_t>* found) {
  if (std::optional<uint32_t> id = storage::PiiCipher::KeyIdOf(bytes);
      id.has_value() && *id >= 1 && *id <= 16) {
    (*found)[bytes.data()] = *id;
    return;
  }
  if (depth > 4) return;
  for (size_t skip : {size_t{0}, size_t{8}}) {
    if (bytes.size() <= skip || (skip != 0 && depth != 0)) continue;
    google::protobuf::UnknownFieldSet fields;
    if (!fields.ParseFromArray(bytes.data() + skip,
                               static_cast<int>(bytes.size() - skip))) {
      continue;
    }
    for (int i = 0; i < fields.field_count(); ++i) {
      const google::protobuf::UnknownField& f = fields.field(i);
      if (f.type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
        // Views into `bytes`: the parsed copy's offsets are the same.
        const std::string& sub = f.length_delimited();
        const std::string_view whole(bytes.data() + skip, bytes.size() - skip);
        const size_t at = whole.find(sub);
        if (at == std::string_view::npos) continue;
        FindCiphertexts(whole.substr(at, sub.size()), depth + 1, found);
      }
    }
    return;  // parsed: the fields are all there is
  }
}

// Per table, the number of ciphertexts under each key id, read from the
// store's files (the server must be stopped).
std::map<Table, std::map<uint32_t, int>> ScanStore(
    const std::string& data_dir) {
  storage::RocksDbOptions o;
  o.path = data_dir + "/db";
  auto engine = storage::OpenRocksDbEngine(o);
  EXPECT_TRUE(engine.ok()) << engine.status();
  std::map<Table, std::map<uint32_t, int>> out;
  if (!engine.ok()) return out;
  for (int t = 0; t < storage::kTableCount; ++t) {
    const Table table = static_cast<Table>(t);
    absl::Status s = (*engine)->Scan(
        table, "", "", [&](std::string_view, std::string_view value) {
          std::map<const char*, uint32_t> found;
          FindCiphertexts(value, 0, &found);
          for (const auto& [at, id] : found) ++out[table][id];
          return true;
        });
    EXPECT_TRUE(s.ok()) << s;
  }
  return out;
}

int CountUnder(const std::map<Table, std::map<uint32_t, int>>& scan,
               uint32_t key_id) {
  int n = 0;
  for (const auto& [table, ids] : scan) {
    auto it = ids.find(key_id);
    if (it != ids.end()) n += it->second;
  }
  return n;
}

ssc::v1::ReencryptionStatus Status(ssc::v1::AdminService::Stub& admin) {
  ssc::v1::GetReencryptionStatusResponse resp;
  grpc::Status s = admin.GetReencryptionStatus(
      Ctx().get(), ssc::v1::GetReencryptionStatusRequest(), &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return resp.status();
}

// Polls the status until `pred` holds (the job runs on its own thread; no
// time is waited for, only its state). Gives up after many polls.
ssc::v1::ReencryptionStatus PollUntil(
    ssc::v1::AdminService::Stub& admin,
    const std::function<bool(const ssc::v1::ReencryptionStatus&)>& pred) {
  ssc::v1::ReencryptionStatus st;
  for (int i = 0; i < 50000; ++i) {
    st = Status(admin);
    if (pred(st)) return st;
    std::this_thread::yield();
  }
  ADD_FAILURE() << "the re-encryption never got there: " << st.DebugString();
  return st;
}

// The progress of `kind` (an empty one, and a failure, if it is missing).
const ssc::v1::ReencryptionKindProgress* KindOf(
    const ssc::v1::ReencryptionStatus& st, const std::string& kind) {
  for (const auto& k : st.kinds()) {
    if (k.kind() == kind) return &k;
  }
  ADD_FAILURE() << "no kind " << kind << " in " << st.DebugString();
  return &ssc::v1::ReencryptionKindProgress::default_instance();
}

grpc::Status Rotate(ssc::v1::AdminService::Stub& admin,
                    const std::string& request_id,
                    ssc::v1::RotateDataKeyResponse* resp, uint32_t expected = 0,
                    const std::string& role = "admin") {
  ssc::v1::RotateDataKeyRequest req;
  req.set_request_id(request_id);
  req.set_expected_active_key_id(expected);
  return admin.RotateDataKey(Ctx(role).get(), req, resp);
}

TEST(KeyRotation, ReencryptsEveryKindOfRecordOverGrpc) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  {
    auto server = sscd::Server::Start(Config(data));
    ASSERT_TRUE(server.ok()) << server.status();
    Seed(grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->port()),
                             grpc::InsecureChannelCredentials()));
  }
  // Every table with personal data holds it under key 1 now.
  auto before = ScanStore(data);
  for (Table t :
       {Table::kPersons, Table::kCards, Table::kECards, Table::kPayoutItems}) {
    EXPECT_GT(before[t][1], 0) << storage::TableName(t);
  }
  EXPECT_EQ(before[Table::kPersons][1], kPersons * 4);

  {
    auto server = sscd::Server::Start(Config(data));
    ASSERT_TRUE(server.ok()) << server.status();
    auto channel =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->port()),
                            grpc::InsecureChannelCredentials());
    ssc::v1::AdminService::Stub admin(channel);
    EXPECT_FALSE(Status(admin).started());
    ssc::v1::RotateDataKeyResponse rotated;
    grpc::Status s = Rotate(admin, "rotate-1", &rotated, 1);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(rotated.active_key_id(), 2u);
    EXPECT_EQ(rotated.previous_key_id(), 1u);
    ssc::v1::ReencryptionStatus st = PollUntil(
        admin, [](const ssc::v1::ReencryptionStatus& x) { return x.done(); });
    EXPECT_EQ(st.active_key_id(), 2u);
    EXPECT_EQ(st.key_ids_in_use_size(), 0);
    ASSERT_EQ(st.unused_key_ids_size(), 1);
    EXPECT_EQ(st.unused_key_ids(0), 1u);
    EXPECT_TRUE(st.last_error().empty()) << st.last_error();
    // One pass re-encrypted, the next found nothing left.
    EXPECT_EQ(st.pass(), 2u);
    const std::map<std::string, int> records = {{"person", kPersons},
                                                {"card", kPersons},
                                                {"payout_item", kItems},
                                                {"ecard_signing_key", 1}};
    for (const auto& [kind, n] : records) {
      const ssc::v1::ReencryptionKindProgress* k = KindOf(st, kind);
      EXPECT_EQ(k->records_reencrypted(), static_cast<uint64_t>(n)) << kind;
      EXPECT_EQ(k->records_scanned(), static_cast<uint64_t>(2 * n)) << kind;
    }
    // Still readable, in clear for the counter.
    ssc::v1::CardService::Stub cards(channel);
    ssc::v1::GetPersonRequest get;
    get.set_id_number(IdOf(3));
    ssc::v1::GetPersonResponse person;
    s = cards.GetPerson(Ctx("counter").get(), get, &person);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(person.person().name(), "王小明");
    EXPECT_EQ(person.person().address(), "叙永镇东大街1号");
    EXPECT_EQ(person.current_card().bank_account(),
              absl::StrCat("62284800", 10000003));
  }
  auto after = ScanStore(data);
  EXPECT_EQ(CountUnder(after, 1), 0);
  for (Table t :
       {Table::kPersons, Table::kCards, Table::kECards, Table::kPayoutItems}) {
    EXPECT_EQ(after[t][1], 0) << storage::TableName(t);
    EXPECT_EQ(after[t][2], before[t][1]) << storage::TableName(t);
  }
}

TEST(KeyRotation, RotateValidatesAndIsIdempotent) {
  TempDir dir;
  auto server = sscd::Server::Start(Config(dir.path() + "/data"));
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->port()),
                          grpc::InsecureChannelCredentials());
  ssc::v1::AdminService::Stub admin(channel);
  ssc::v1::RotateDataKeyResponse r;
  // Bad input: nothing rotates.
  grpc::Status s = Rotate(admin, "", &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("request_id"), std::string::npos)
      << s.error_message();
  s = Rotate(admin, std::string(65, 'x'), &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  s = Rotate(admin, "rot-bad", &r, 7);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("expected_active_key_id"), std::string::npos)
      << s.error_message();
  s = Rotate(admin, "rot-denied", &r, 0, "counter");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Status(admin).key_ids_size(), 1);

  // Rotated once, however often the request is repeated.
  ssc::v1::RotateDataKeyResponse first, again;
  s = Rotate(admin, "rot-1", &first, 1);
  ASSERT_TRUE(s.ok()) << s.error_message();
  s = Rotate(admin, "rot-1", &again, 1);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(again.SerializeAsString(), first.SerializeAsString());
  EXPECT_EQ(Status(admin).key_ids_size(), 2);
  // The same id with another request.
  s = Rotate(admin, "rot-1", &r, 2);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  // Two operators who both saw key 1 active rotate once.
  s = Rotate(admin, "rot-2", &r, 1);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Status(admin).key_ids_size(), 2);
  ssc::v1::ReencryptionStatus st = PollUntil(
      admin, [](const ssc::v1::ReencryptionStatus& x) { return x.done(); });
  EXPECT_EQ(st.active_key_id(), 2u);
}

TEST(KeyRotation, ResumesWhereItStoppedAfterARestart) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  sscd::ServerConfig config = Config(data);
  config.reencrypt_batch = 2;
  config.reencrypt_stop_after_steps = 3;  // "dies" after three steps
  {
    auto server = sscd::Server::Start(config);
    ASSERT_TRUE(server.ok()) << server.status();
    auto channel =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->port()),
                            grpc::InsecureChannelCredentials());
    Seed(channel);
    ssc::v1::AdminService::Stub admin(channel);
    ssc::v1::RotateDataKeyResponse r;
    grpc::Status s = Rotate(admin, "rotate-1", &r);
    ASSERT_TRUE(s.ok()) << s.error_message();
    // Three steps of two persons, then nothing more.
    ssc::v1::ReencryptionStatus st =
        PollUntil(admin, [](const ssc::v1::ReencryptionStatus& x) {
          return KindOf(x, "person")->records_scanned() == 6;
        });
    EXPECT_FALSE(st.done());
    EXPECT_EQ(KindOf(st, "person")->records_reencrypted(), 6u);
    EXPECT_EQ(st.current_kind(), "person");
    EXPECT_EQ(st.key_ids_in_use_size(), 1);
  }
  auto halfway = ScanStore(data);
  EXPECT_EQ(halfway[Table::kPersons][2], 6 * 4);
  EXPECT_GT(CountUnder(halfway, 1), 0);

  config.reencrypt_stop_after_steps = 0;
  {
    auto server = sscd::Server::Start(config);
    ASSERT_TRUE(server.ok()) << server.status();
    ssc::v1::AdminService::Stub admin(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->port()),
                            grpc::InsecureChannelCredentials()));
    ssc::v1::ReencryptionStatus st = PollUntil(
        admin, [](const ssc::v1::ReencryptionStatus& x) { return x.done(); });
    // Continued from its checkpoint: every record was visited once in the
    // first pass and once in the second, and re-encrypted once.
    EXPECT_EQ(st.pass(), 2u);
    EXPECT_EQ(KindOf(st, "person")->records_scanned(), 2u * kPersons);
    EXPECT_EQ(KindOf(st, "person")->records_reencrypted(),
              static_cast<uint64_t>(kPersons));
    EXPECT_EQ(KindOf(st, "card")->records_scanned(), 2u * kPersons);
    EXPECT_EQ(KindOf(st, "payout_item")->records_reencrypted(),
              static_cast<uint64_t>(kItems));
  }
  EXPECT_EQ(CountUnder(ScanStore(data), 1), 0);
}

TEST(KeyRotation, WritesDuringTheJobAreNotLost) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  sscd::ServerConfig config = Config(data);
  config.reencrypt_batch = 1;  // many small steps between the writes
  {
    auto server = sscd::Server::Start(config);
    ASSERT_TRUE(server.ok()) << server.status();
    auto channel =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->port()),
                            grpc::InsecureChannelCredentials());
    Seed(channel);
    ssc::v1::CardService::Stub cards(channel);
    ssc::v1::AdminService::Stub admin(channel);

    // Writers change the holders' phones and remember the last change each
    // holder got acknowledged.
    std::mutex mu;
    std::map<int, std::string> last_phone;
    std::atomic<bool> stop{false};
    std::atomic<int> acked{0};
    auto writer = [&](int w) {
      for (int i = 0; !stop; ++i) {
        const int n = (i * 2 + w) % kPersons;
        const std::string phone = absl::StrCat("139", 10000000 + i * 2 + w);
        ssc::v1::UpdateHolderContactRequest req;
        req.set_request_id(absl::StrCat("contact-", w, "-", i));
        req.set_id_number(IdOf(n));
        req.set_phone(phone);
        ssc::v1::UpdateHolderContactResponse resp;
        std::lock_guard<std::mutex> lock(mu);  // one writer per holder at once
        if (cards.UpdateHolderContact(Ctx("counter").get(), req, &resp).ok()) {
          last_phone[n] = phone;
          ++acked;
        }
      }
    };
    std::thread w1(writer, 0);
    std::thread w2(writer, 1);
    ssc::v1::RotateDataKeyResponse r;
    grpc::Status s = Rotate(admin, "rotate-1", &r);
    ASSERT_TRUE(s.ok()) << s.error_message();
    const int acked_at_rotation = acked;
    ssc::v1::ReencryptionStatus st = PollUntil(
        admin, [](const ssc::v1::ReencryptionStatus& x) { return x.done(); });
    stop = true;
    w1.join();
    w2.join();
    EXPECT_GT(acked.load(), acked_at_rotation);
    for (int n = 0; n < kPersons; ++n) {
      ssc::v1::GetPersonRequest get;
      get.set_id_number(IdOf(n));
      ssc::v1::GetPersonResponse person;
      s = cards.GetPerson(Ctx("counter").get(), get, &person);
      ASSERT_TRUE(s.ok()) << s.error_message();
      if (last_phone.count(n) != 0) {
        EXPECT_EQ(person.person().phone(), last_phone[n]) << "holder " << n;
      }
      EXPECT_EQ(person.person().name(), "王小明");
    }
  }
  EXPECT_EQ(CountUnder(ScanStore(data), 1), 0);
}

}  // namespace
}  // namespace ssc::ops
