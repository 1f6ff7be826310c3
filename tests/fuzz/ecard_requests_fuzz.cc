// Fuzz target: ECardService requests on ECardLogic (with CardLogic and the
// e-card observer, as sscd wires them) over a real store; see fuzz_store.h.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "services/ecard/ecard_logic.h"
#include "services/ecard/ecard_observer.h"
#include "services/ecard/signing_keys.h"
#include "tests/fuzz/fuzz_store.h"

namespace ssc::fuzz {
namespace {

struct Target {
  Target() {
    store.cards()->AddObserver(&observer);
    ecard::ECardOptions options;
    auto k = ecard::KeyManager::Open(
        store.engine(), store.ctx().cipher, &store.clock(),
        options.code_validity + options.clock_skew);
    if (!k.ok()) std::abort();
    keys = std::move(*k);
    logic = std::make_unique<ecard::ECardLogic>(store.ctx(), store.cards(),
                                                keys.get(), options);
    using L = ecard::ECardLogic;
    L* e = logic.get();
    const std::string s = "ssc.v1.ECardService/";
    fuzzer = std::make_unique<ServiceFuzzer>(
        "ssc.v1.ECardService",
        std::map<std::string, Call>{
            {"IssueECard", Unary(s + "IssueECard", e, &L::IssueECard)},
            {"GetECard", Unary(s + "GetECard", e, &L::GetECard)},
            {"ListChannelBindings",
             Unary(s + "ListChannelBindings", e, &L::ListChannelBindings)},
            {"UnbindChannel", Unary(s + "UnbindChannel", e, &L::UnbindChannel)},
            {"RevokeECard", Unary(s + "RevokeECard", e, &L::RevokeECard)},
            {"AddFamilyMember",
             Unary(s + "AddFamilyMember", e, &L::AddFamilyMember)},
            {"RemoveFamilyMember",
             Unary(s + "RemoveFamilyMember", e, &L::RemoveFamilyMember)},
            {"ListFamilyMembers",
             Unary(s + "ListFamilyMembers", e, &L::ListFamilyMembers)},
            {"GenerateQrCode",
             Unary(s + "GenerateQrCode", e, &L::GenerateQrCode)},
            {"VerifyQrCode", Unary(s + "VerifyQrCode", e, &L::VerifyQrCode)},
            {"GetVerificationKeys",
             Unary(s + "GetVerificationKeys", e, &L::GetVerificationKeys)},
            {"RotateSigningKey",
             Unary(s + "RotateSigningKey", e, &L::RotateSigningKey)},
            {"GetStatusList", Unary(s + "GetStatusList", e, &L::GetStatusList)},
        },
        std::map<std::string, std::string>{});
  }

  // Destroyed in reverse order: the fuzzer and logic before the store.
  FuzzStore store;
  ecard::ECardObserver observer{store.engine()};
  std::unique_ptr<ecard::KeyManager> keys;
  std::unique_ptr<ecard::ECardLogic> logic;
  std::unique_ptr<ServiceFuzzer> fuzzer;
};

}  // namespace
}  // namespace ssc::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ssc::fuzz::Target target;
  target.fuzzer->Run(data, size);
  return 0;
}
