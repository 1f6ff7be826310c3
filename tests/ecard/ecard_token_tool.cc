// Writes QR codes and the published verification keys as JSON to stdout,
// for verify_offline.py (an independent verifier: PyJWT + cryptography).
// Usage: ecard_token_tool <empty directory for the store>
// Runs the real logic on a real store with a ManualClock; the JSON carries
// the clock's time so the verifier checks iat/exp against it, not against
// the wall clock.

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "services/card/card_logic.h"
#include "services/ecard/ecard_logic.h"
#include "services/ecard/ecard_observer.h"
#include "services/ecard/signing_keys.h"
#include "storage/clock.h"
#include "storage/idempotency.h"
#include "storage/key_lock.h"
#include "storage/pii_cipher.h"
#include "storage/rocksdb_engine.h"

namespace {

using namespace ssc;  // NOLINT
using common::Caller;
using common::Role;

int Fail(const std::string& what, const absl::Status& s) {
  std::cerr << what << ": " << s << "\n";
  return 1;
}

std::string Quote(const std::string& s) { return absl::StrCat("\"", s, "\""); }

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: ecard_token_tool <store dir>\n";
    return 2;
  }
  storage::ManualClock clock;
  storage::RocksDbOptions o;
  o.path = std::string(argv[1]) + "/db";
  o.clock = &clock;
  auto engine = storage::OpenRocksDbEngine(o);
  if (!engine.ok()) return Fail("open", engine.status());
  auto cipher = storage::PiiCipher::ForTesting("ecard-tool");
  storage::KeyLocks locks;
  storage::Idempotency idem(engine->get(), cipher.get(), &clock);
  common::StoreContext ctx{engine->get(), &locks, &idem, cipher.get(), &clock};
  card::RegionTable regions = card::RegionTable::Default();
  card::CardLogic cards(ctx, &regions);
  ecard::ECardObserver observer(engine->get());
  cards.AddObserver(&observer);
  ecard::ECardOptions options;
  auto keys =
      ecard::KeyManager::Open(engine->get(), cipher.get(), &clock,
                              options.code_validity + options.clock_skew);
  if (!keys.ok()) return Fail("keys", keys.status());
  ecard::ECardLogic logic(ctx, &cards, keys->get(), options);

  Caller counter{"counter-01", Role::kCounter, ""};
  Caller app{"app-01", Role::kMobileChannel, ""};
  Caller admin{"admin-01", Role::kAdmin, ""};

  v1::ApplyCardRequest apply;
  apply.set_request_id("apply-1");
  apply.mutable_person()->set_id_number("34052419800101001X");
  apply.mutable_person()->set_name("张三");
  apply.mutable_person()->set_region_code("510524100");
  apply.set_bank_code("ICBC");
  apply.set_instant_issuance(true);
  apply.set_bank_account("6222021234567890");
  if (auto r = cards.ApplyCard(counter, apply); !r.ok()) {
    return Fail("apply", r.status());
  }
  v1::IssueECardRequest issue;
  issue.set_request_id("issue-1");
  issue.set_id_number("34052419800101001X");
  issue.set_name("张三");
  issue.mutable_evidence()->set_method(v1::VERIFICATION_METHOD_FACE_LIVENESS);
  issue.mutable_evidence()->set_reference("face-1");
  issue.mutable_evidence()->mutable_verified_at()->set_seconds(
      absl::ToUnixSeconds(clock.Now()));
  auto issued = logic.IssueECard(app, issue);
  if (!issued.ok()) return Fail("issue", issued.status());

  v1::GenerateQrCodeRequest gen;
  gen.set_ecard_id(issued->ecard().ecard_id());
  gen.set_business_type(v1::BUSINESS_TYPE_PAYMENT);
  auto before = logic.GenerateQrCode(app, gen);
  if (!before.ok()) return Fail("qr", before.status());
  v1::RotateSigningKeyRequest rot;
  rot.set_request_id("rotate-1");
  if (auto r = logic.RotateSigningKey(admin, rot); !r.ok()) {
    return Fail("rotate", r.status());
  }
  gen.set_business_type(v1::BUSINESS_TYPE_MEDICAL_OUT_OF_REGION);
  auto after = logic.GenerateQrCode(app, gen);
  if (!after.ok()) return Fail("qr", after.status());
  auto published = logic.GetVerificationKeys(admin, {});
  if (!published.ok()) return Fail("keys", published.status());

  std::string out = absl::StrCat(
      "{\"now\":", absl::ToUnixSeconds(clock.Now()),
      ",\"ecard_id\":", Quote(issued->ecard().ecard_id()), ",\"codes\":[");
  bool first = true;
  for (const auto* c : {&*before, &*after}) {
    absl::StrAppend(&out, first ? "" : ",",
                    "{\"payload\":", Quote(c->payload()),
                    ",\"kid\":", Quote(c->key_id()),
                    ",\"exp\":", c->expires_at().seconds(), "}");
    first = false;
  }
  absl::StrAppend(&out, "],\"keys\":[");
  first = true;
  for (const auto& k : published->keys()) {
    absl::StrAppend(&out, first ? "" : ",", "{\"kid\":", Quote(k.key_id()),
                    ",\"spki\":", Quote(k.public_key_spki()),
                    ",\"jwk\":", k.jwk(), "}");
    first = false;
  }
  absl::StrAppend(&out, "]}\n");
  std::cout << out;
  return 0;
}
