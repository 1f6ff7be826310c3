// UploadItems as a stream over a real gRPC server in this process
// (PayoutServiceImpl over the fixture's store; plaintext, the caller named
// in metadata as in development mode). The stream stores messages in
// order while the next ones are validated ahead: a bad message stops the
// upload with a clear error after the messages before it are stored, and
// nothing of it or after it is. The stream is exactly-once per
// (caller, request_id): a retry gets the original answer with nothing
// written, the id with other messages ALREADY_EXISTS.

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "services/common/grpc/caller_identity.h"
#include "services/common/grpc/rpc_runner.h"
#include "services/payout/payout_service.h"
#include "tests/payout/payout_fixture.h"

namespace ssc::payout::testing {
namespace {

constexpr char kProg[] = "DISABLED-LIVING";
constexpr char kPeriod[] = "2026-11";
constexpr int kPerMessage = 3;

class PayoutStreamTest : public PayoutFixture {
 protected:
  void SetUp() override {
    PayoutFixture::SetUp();
    RegisterProgramme(kProg, 10000);
    ASSERT_TRUE(SetBudget(kProg, kPeriod, 1'000'000).ok());
    grpc_common::RpcRunnerOptions ro;
    ro.plaintext_dev_mode = true;
    runner_ = std::make_unique<grpc_common::RpcRunner>(ctx_, ro);
    service_ =
        std::make_unique<PayoutServiceImpl>(payout_.get(), runner_.get());
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(service_.get());
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = PayoutService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
    for (int n = 1; n <= 6 * kPerMessage; ++n) {
      const std::string name = absl::StrFormat("居民%d", n);
      specs_.push_back(
          {absl::StrFormat("it%03d", n), AddHolder(n, name), name, 100 + n});
    }
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  // Message m of the upload (items m*kPerMessage+1 ...), naming the batch
  // and request only in the first one, as clients do.
  UploadItemsRequest Message(const std::string& batch, int m,
                             const std::string& request_id = "upload-1") {
    UploadItemsRequest r;
    if (m == 0) {
      r.set_batch_id(batch);
      r.set_request_id(request_id);
    }
    for (int k = 0; k < kPerMessage; ++k) {
      *r.add_items() = Item(specs_[m * kPerMessage + k]);
    }
    return r;
  }

  // Sends `messages` as one stream; the call's status and response.
  grpc::Status Stream(const std::vector<UploadItemsRequest>& messages,
                      UploadItemsResponse* resp) {
    grpc::ClientContext c;
    c.AddMetadata(grpc_common::kDevCallerMetadata, "finance-maker-01");
    c.AddMetadata(grpc_common::kDevRoleMetadata, "finance_maker");
    auto w = stub_->UploadItems(&c, resp);
    for (const auto& m : messages) {
      if (!w->Write(m)) break;
    }
    w->WritesDone();
    return w->Finish();
  }

  // Every record of the store, table by table, but the audit chain (and
  // kMeta, its head): what a write would change.
  std::string StoreState(bool with_audit) {
    std::string out;
    for (int t = 0; t < storage::kTableCount; ++t) {
      const auto table = static_cast<storage::Table>(t);
      if (!with_audit &&
          (table == storage::Table::kAudit || table == storage::Table::kMeta)) {
        continue;
      }
      EXPECT_TRUE(engine_
                      ->Scan(table, "", "",
                             [&](std::string_view k, std::string_view v) {
                               absl::StrAppend(&out, t, "|", k.size(), ":",
                                               std::string(k), "=", v.size(),
                                               ":", std::string(v), "\n");
                               return true;
                             })
                      .ok());
    }
    return out;
  }

  std::vector<UploadItemsRequest> Messages(const std::string& batch, int from,
                                           int to, const std::string& rid) {
    std::vector<UploadItemsRequest> out;
    for (int m = from; m < to; ++m) out.push_back(Message(batch, m, rid));
    if (!out.empty()) {
      out[0].set_batch_id(batch);
      out[0].set_request_id(rid);
    }
    return out;
  }

  std::string NewBatch() {
    auto b = CreateBatch(kProg, kPeriod, 6 * kPerMessage, 100'000);
    EXPECT_TRUE(b.ok()) << b.status();
    return b.ok() ? b->batch_id() : "";
  }

  std::unique_ptr<grpc_common::RpcRunner> runner_;
  std::unique_ptr<PayoutServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<PayoutService::Stub> stub_;
  std::vector<ItemSpec> specs_;
};

TEST_F(PayoutStreamTest, MessagesAreStoredInOrderAndARetryChangesNothing) {
  const std::string id = NewBatch();
  std::vector<UploadItemsRequest> messages;
  for (int m = 0; m < 6; ++m) messages.push_back(Message(id, m));
  UploadItemsResponse resp;
  grpc::Status s = Stream(messages, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.new_items(), 6 * kPerMessage);
  EXPECT_EQ(resp.totals().received_count(), 6 * kPerMessage);
  EXPECT_EQ(resp.totals().valid_count(), 6 * kPerMessage);
  // Upload order names the sequence (and so the instruction ids).
  auto items = Items(id);
  ASSERT_EQ(items.size(), 6u * kPerMessage);
  // The same items in a stream of its own (another request id): every
  // item is known with the same content.
  UploadItemsResponse again;
  s = Stream(Messages(id, 0, 6, "upload-2"), &again);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(again.new_items(), 0);
  EXPECT_EQ(again.repeated_items(), 6 * kPerMessage);
  EXPECT_EQ(Get(id).totals().received_count(), 6 * kPerMessage);
}

TEST_F(PayoutStreamTest, ARetryOfAStreamGetsTheOriginalAnswerAndWritesNothing) {
  int64_t total = 0;
  for (const ItemSpec& spec : specs_) total += spec.amount;
  auto batch = CreateBatch(kProg, kPeriod, 6 * kPerMessage, total);
  ASSERT_TRUE(batch.ok()) << batch.status();
  const std::string id = batch->batch_id();
  const std::vector<UploadItemsRequest> messages = Messages(id, 0, 6, "up");
  UploadItemsResponse first;
  grpc::Status s = Stream(messages, &first);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(first.new_items(), 6 * kPerMessage);
  EXPECT_EQ(first.repeated_items(), 0);
  // The answer's totals are the batch's after the stream.
  EXPECT_EQ(first.totals().SerializeAsString(),
            Get(id).totals().SerializeAsString());
  const std::string before = StoreState(/*with_audit=*/true);
  for (int retry = 0; retry < 2; ++retry) {
    SCOPED_TRACE(retry);
    UploadItemsResponse again;
    s = Stream(messages, &again);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(again.SerializeAsString(), first.SerializeAsString());
    EXPECT_TRUE(StoreState(/*with_audit=*/true) == before)
        << "the store changed";
  }
  // Still the original answer after the batch moved on.
  absl::Status sealing = Seal(id);
  ASSERT_TRUE(sealing.ok()) << sealing;
  UploadItemsResponse sealed;
  s = Stream(messages, &sealed);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(sealed.SerializeAsString(), first.SerializeAsString());
}

TEST_F(PayoutStreamTest, TheSameRequestIdWithOtherMessagesIsAlreadyExists) {
  struct Case {
    const char* what;
    std::function<void(std::vector<UploadItemsRequest>&)> change;
  };
  const std::vector<Case> cases = {
      {"more messages",
       [&](std::vector<UploadItemsRequest>& ms) {
         for (int m = 3; m < 6; ++m) ms.push_back(Message("", m));
       }},
      {"an item of the last message changed",
       [](std::vector<UploadItemsRequest>& ms) {
         ms.back().mutable_items(2)->set_note("changed");
       }},
      {"the same items in other messages",
       [](std::vector<UploadItemsRequest>& ms) {
         *ms[0].add_items() = ms[1].items(0);
         ms[1].mutable_items()->DeleteSubrange(0, 1);
       }},
      {"fewer messages",
       [](std::vector<UploadItemsRequest>& ms) { ms.pop_back(); }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string id = NewBatch();
    const std::string rid = absl::StrCat("up-", c.what);
    std::vector<UploadItemsRequest> messages = Messages(id, 0, 3, rid);
    UploadItemsResponse first;
    grpc::Status s = Stream(messages, &first);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(first.new_items(), 3 * kPerMessage);
    const std::string before = StoreState(/*with_audit=*/false);
    c.change(messages);
    UploadItemsResponse other;
    s = Stream(messages, &other);
    ASSERT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS)
        << s.error_message();
    EXPECT_NE(s.error_message().find(rid), std::string::npos)
        << s.error_message();
    // Nothing of it is stored (its refusal is audited).
    EXPECT_TRUE(StoreState(/*with_audit=*/false) == before)
        << "the refused stream changed the store";
    EXPECT_EQ(Get(id).totals().received_count(), 3 * kPerMessage);
  }
}

// A stream that broke off has stored the messages before the break; its
// retry finds them as repeated items, stores the rest, and its answer is the
// one every later retry gets.
TEST_F(PayoutStreamTest, ARetryAfterABrokenStreamCompletesItOnce) {
  const std::string id = NewBatch();
  const std::vector<UploadItemsRequest> messages = Messages(id, 0, 6, "up");
  std::vector<UploadItemsRequest> broken = messages;
  broken[3].set_batch_id("PB99999999");  // stops the stream after 3 messages
  UploadItemsResponse resp;
  grpc::Status s = Stream(broken, &resp);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << s.error_message();
  ASSERT_EQ(Get(id).totals().received_count(), 3 * kPerMessage);
  UploadItemsResponse done;
  s = Stream(messages, &done);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(done.new_items(), 3 * kPerMessage);
  EXPECT_EQ(done.repeated_items(), 3 * kPerMessage);
  EXPECT_EQ(done.totals().received_count(), 6 * kPerMessage);
  const std::string before = StoreState(/*with_audit=*/true);
  UploadItemsResponse again;
  s = Stream(messages, &again);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(again.SerializeAsString(), done.SerializeAsString());
  EXPECT_TRUE(StoreState(/*with_audit=*/true) == before) << "the store changed";
}

TEST_F(PayoutStreamTest, ABadMessageStopsTheUploadAfterTheOnesBeforeIt) {
  struct Case {
    const char* what;
    int bad_message;  // index of the bad message
    std::function<void(UploadItemsRequest&)> spoil;
    const char* field;
  };
  const std::vector<Case> cases = {
      {"another batch", 3,
       [](UploadItemsRequest& m) { m.set_batch_id("PB99999999"); }, "batch_id"},
      {"another request id", 1,
       [](UploadItemsRequest& m) { m.set_request_id("other"); }, "request_id"},
      {"an item without id", 4,
       [](UploadItemsRequest& m) { m.mutable_items(1)->clear_item_id(); },
       "items[1].item_id"},
      {"an amount past the declared total", 2,
       [](UploadItemsRequest& m) {
         m.mutable_items(0)->set_amount_fen(9'000'000'000'000'000'000);
       },
       "past the declared 100000 fen"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string id = NewBatch();
    std::vector<UploadItemsRequest> messages;
    for (int m = 0; m < 6; ++m) messages.push_back(Message(id, m));
    c.spoil(messages[c.bad_message]);
    UploadItemsResponse resp;
    grpc::Status s = Stream(messages, &resp);
    ASSERT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << s.error_message();
    EXPECT_NE(s.error_message().find(c.field), std::string::npos)
        << s.error_message();
    // The messages before the bad one are stored, nothing else.
    const int stored = c.bad_message * kPerMessage;
    EXPECT_EQ(Get(id).totals().received_count(), stored);
    auto items = Items(id);
    EXPECT_EQ(items.size(), static_cast<size_t>(stored));
    for (int n = 0; n < stored; ++n) {
      EXPECT_EQ(items.count(specs_[n].item_id), 1u) << specs_[n].item_id;
    }
  }
}

// An empty stream carries no request id: refused like any mutating request
// without one (the RPC runner checks it before the logic).
TEST_F(PayoutStreamTest, AnEmptyStreamIsRefusedNamingTheRequestId) {
  UploadItemsResponse resp;
  grpc::Status s = Stream({}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("request_id"), std::string::npos)
      << s.error_message();
}

}  // namespace
}  // namespace ssc::payout::testing
