#include "tests/fuzz/fuzz_store.h"

#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <iterator>

#include "google/protobuf/descriptor.h"
#include "storage/rocksdb_engine.h"

namespace ssc::fuzz {
namespace {

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "fuzz target: %s\n", why.c_str());
  std::abort();
}

constexpr common::Role kRoles[] = {
    common::Role::kCounter,       common::Role::kCardBureau,
    common::Role::kMobileChannel, common::Role::kTerminal,
    common::Role::kFinanceMaker,  common::Role::kFinanceChecker,
    common::Role::kStatistician,  common::Role::kAuditor,
    common::Role::kAdmin,
};

}  // namespace

FuzzStore::FuzzStore() : cipher_(storage::PiiCipher::ForTesting("fuzz")) {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ =
      std::string(tmp != nullptr ? tmp : "/tmp") + "/ssc-fuzz-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) Die("cannot make a temp dir");
  dir_ = templ;
  engine_ = OpenEngine("db");
  idempotency_ = std::make_unique<storage::Idempotency>(engine_.get(),
                                                        cipher_.get(), &clock_);
  cards_ = std::make_unique<card::CardLogic>(ctx(), &regions_);
}

FuzzStore::~FuzzStore() {
  cards_.reset();
  idempotency_.reset();
  engine_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::unique_ptr<storage::Engine> FuzzStore::OpenEngine(
    const std::string& name) {
  storage::RocksDbOptions o;
  o.path = dir_ + "/" + name;
  o.clock = &clock_;
  o.sync = false;
  o.block_cache_bytes = 8 << 20;
  o.memtable_bytes = 4 << 20;
  auto e = storage::OpenRocksDbEngine(o);
  if (!e.ok()) Die("cannot open the store: " + e.status().ToString());
  return std::move(*e);
}

common::StoreContext FuzzStore::ctx() {
  common::StoreContext c;
  c.engine = engine_.get();
  c.locks = &locks_;
  c.idempotency = idempotency_.get();
  c.cipher = cipher_.get();
  c.clock = &clock_;
  return c;
}

void CheckClientError(std::string_view method, const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kUnimplemented:
      Die(std::string(method) + " answered " + status.ToString());
    default:
      return;
  }
}

ServiceFuzzer::ServiceFuzzer(std::string_view service,
                             std::map<std::string, Call> calls,
                             std::map<std::string, std::string> not_fuzzed) {
  const google::protobuf::ServiceDescriptor* d =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          std::string(service));
  if (d == nullptr) Die("no service " + std::string(service));
  for (int i = 0; i < d->method_count(); ++i) {
    const std::string& name = d->method(i)->name();
    auto c = calls.find(name);
    const bool skipped = not_fuzzed.count(name) > 0;
    if ((c == calls.end()) == !skipped) {
      Die(std::string(service) + "/" + name +
          " must be either fuzzed or listed as not fuzzed");
    }
    if (c == calls.end()) continue;
    names_.push_back(name);
    calls_.push_back(std::move(c->second));
    calls.erase(c);
  }
  if (!calls.empty()) Die("no such method: " + calls.begin()->first);
}

void ServiceFuzzer::Run(const uint8_t* data, size_t size) {
  if (size < 2 || calls_.empty()) return;
  common::Caller caller;
  caller.role = kRoles[data[1] % std::size(kRoles)];
  caller.identity = "fuzz-" + std::string(common::RoleName(caller.role));
  caller.operator_id = "op-fuzz";
  calls_[data[0] % calls_.size()](
      caller,
      std::string_view(reinterpret_cast<const char*>(data) + 2, size - 2));
}

}  // namespace ssc::fuzz
