// Where the time of a QR verification goes: base64/JSON decoding, the
// ECDSA P-256 verification, the store-free check as a whole, and the full
// VerifyQrCode (single-use record + audit record committed to RocksDB), with
// and without a synced WAL. Signing for comparison.
//
//   build-*/bench/ecard_bench --benchmark_min_time=1

#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/card/card_logic.h"
#include "services/ecard/ecard_logic.h"
#include "services/ecard/ecard_observer.h"
#include "services/ecard/qr_token.h"
#include "services/ecard/signing_keys.h"
#include "storage/clock.h"
#include "storage/idempotency.h"
#include "storage/key_lock.h"
#include "storage/pii_cipher.h"
#include "storage/rocksdb_engine.h"

namespace ssc::ecard {
namespace {

QrClaims Claims(int i) {
  QrClaims c;
  c.ecard_id = "E7Q2M9X0KD4T1RZC";
  c.nonce = absl::StrCat("nonce", 10000000000 + i).substr(0, 16);
  c.issued_at = 1767225600;
  c.expires_at = 1767225660;
  c.business_type = 2;
  return c;
}

struct Codec {
  Codec() {
    key = *EcKey::Generate();
    pub = *EcKey::FromPublicDer(key->public_der());
    token = *EncodeToken("1", Claims(0), *key);
    split = *Split(token);
  }
  std::unique_ptr<EcKey> key;
  std::unique_ptr<EcKey> pub;
  std::string token;
  SplitToken split;
};

Codec& TheCodec() {
  static Codec* c = new Codec();
  return *c;
}

void BM_SplitAndParse(benchmark::State& state) {
  Codec& c = TheCodec();
  for (auto _ : state) {
    auto s = Split(c.token);
    auto claims = ParseClaims(s->payload_json);
    benchmark::DoNotOptimize(claims);
  }
}
BENCHMARK(BM_SplitAndParse);

void BM_EcdsaVerify(benchmark::State& state) {
  Codec& c = TheCodec();
  for (auto _ : state) {
    bool ok = c.pub->Verify(c.split.signing_input, c.split.signature);
    benchmark::DoNotOptimize(ok);
  }
}
BENCHMARK(BM_EcdsaVerify)->ThreadRange(1, 2);

void BM_EcdsaSign(benchmark::State& state) {
  Codec& c = TheCodec();
  for (auto _ : state) {
    auto sig = c.key->Sign(c.split.signing_input);
    benchmark::DoNotOptimize(sig);
  }
}
BENCHMARK(BM_EcdsaSign);

// A real store with one holder and an e-card; codes signed ahead of time.
struct Store {
  explicit Store(bool sync) {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "ssc_ecard_bench_XXXXXX")
            .string();
    dir = ::mkdtemp(tmpl.data());
    storage::RocksDbOptions o;
    o.path = dir + "/db";
    o.sync = sync;
    o.clock = &clock;
    engine = *storage::OpenRocksDbEngine(o);
    cipher = storage::PiiCipher::ForTesting("bench");
    idem = std::make_unique<storage::Idempotency>(engine.get(), cipher.get(),
                                                  &clock);
    ctx = common::StoreContext{engine.get(), &locks, idem.get(), cipher.get(),
                               &clock};
    cards = std::make_unique<card::CardLogic>(ctx, &regions);
    observer = std::make_unique<ECardObserver>(engine.get());
    cards->AddObserver(observer.get());
    keys = *KeyManager::Open(engine.get(), cipher.get(), &clock,
                             absl::Seconds(65));
    logic = std::make_unique<ECardLogic>(ctx, cards.get(), keys.get());
    v1::ApplyCardRequest a;
    a.set_request_id("a");
    a.mutable_person()->set_id_number("34052419800101001X");
    a.mutable_person()->set_name("张三");
    a.mutable_person()->set_region_code("510524100");
    a.set_bank_code("ICBC");
    a.set_instant_issuance(true);
    a.set_bank_account("6222021234567890");
    (void)cards->ApplyCard(counter, a);
    v1::IssueECardRequest r;
    r.set_request_id("i");
    r.set_id_number("34052419800101001X");
    r.set_name("张三");
    r.mutable_evidence()->set_method(v1::VERIFICATION_METHOD_FACE_LIVENESS);
    r.mutable_evidence()->set_reference("f");
    r.mutable_evidence()->mutable_verified_at()->set_seconds(
        absl::ToUnixSeconds(clock.Now()));
    ecard_id = logic->IssueECard(app, r)->ecard().ecard_id();
  }
  ~Store() {
    logic.reset();
    keys.reset();
    cards.reset();
    engine.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::string Code(int i) {
    QrClaims c = Claims(i);
    c.ecard_id = ecard_id;
    c.issued_at = absl::ToUnixSeconds(clock.Now());
    c.expires_at = c.issued_at + 60;
    const SigningKey* k = keys->ring()->active();
    return *EncodeToken(k->kid, c, *k->key);
  }

  std::string dir;
  storage::ManualClock clock;
  storage::KeyLocks locks;
  card::RegionTable regions = card::RegionTable::Default();
  std::unique_ptr<storage::Engine> engine;
  std::unique_ptr<storage::PiiCipher> cipher;
  std::unique_ptr<storage::Idempotency> idem;
  common::StoreContext ctx;
  std::unique_ptr<card::CardLogic> cards;
  std::unique_ptr<ECardObserver> observer;
  std::unique_ptr<KeyManager> keys;
  std::unique_ptr<ECardLogic> logic;
  std::string ecard_id;
  common::Caller counter{"counter-01", common::Role::kCounter, ""};
  common::Caller app{"app-01", common::Role::kMobileChannel, ""};
  common::Caller terminal{"terminal-01", common::Role::kTerminal, ""};
};

void BM_CheckToken(benchmark::State& state) {
  static Store* s = new Store(false);
  const std::string code = s->Code(0);
  for (auto _ : state) {
    TokenCheck c = s->logic->CheckToken(code, s->clock.Now());
    benchmark::DoNotOptimize(c);
  }
}
BENCHMARK(BM_CheckToken);

void VerifyFull(benchmark::State& state, bool sync) {
  Store s(sync);
  std::vector<std::string> codes;
  for (int i = 0; i < 20000; ++i) codes.push_back(s.Code(i));
  size_t i = 0;
  for (auto _ : state) {
    v1::VerifyQrCodeRequest r;
    r.set_request_id(absl::StrCat("bench-verify-", i));
    r.set_payload(codes[i++ % codes.size()]);
    r.set_business_type(v1::BUSINESS_TYPE_PAYMENT);
    auto resp = s.logic->VerifyQrCode(s.terminal, r);
    benchmark::DoNotOptimize(resp);
  }
}
void BM_VerifyQrCodeNoSync(benchmark::State& state) {
  VerifyFull(state, false);
}
void BM_VerifyQrCodeSynced(benchmark::State& state) { VerifyFull(state, true); }
BENCHMARK(BM_VerifyQrCodeNoSync)->Iterations(20000);
BENCHMARK(BM_VerifyQrCodeSynced)->Iterations(2000);

}  // namespace
}  // namespace ssc::ecard

BENCHMARK_MAIN();
