// Fuzz target: CardService requests on CardLogic over a real store (see
// fuzz_store.h for the input layout and what counts as a failure).

#include <cstddef>
#include <cstdint>

#include "services/card/card_logic.h"
#include "tests/fuzz/fuzz_store.h"

namespace ssc::fuzz {
namespace {

ServiceFuzzer MakeFuzzer(FuzzStore* store) {
  using L = card::CardLogic;
  L* c = store->cards();
  const std::string s = "ssc.v1.CardService/";
  return ServiceFuzzer(
      "ssc.v1.CardService",
      {
          {"ApplyCard", Unary(s + "ApplyCard", c, &L::ApplyCard)},
          {"SendToProduction",
           Unary(s + "SendToProduction", c, &L::SendToProduction)},
          {"RecordProduction",
           Unary(s + "RecordProduction", c, &L::RecordProduction)},
          {"IssueCard", Unary(s + "IssueCard", c, &L::IssueCard)},
          {"ActivateCard", Unary(s + "ActivateCard", c, &L::ActivateCard)},
          {"ReportLoss", Unary(s + "ReportLoss", c, &L::ReportLoss)},
          {"CancelLossReport",
           Unary(s + "CancelLossReport", c, &L::CancelLossReport)},
          {"ApplyReplacement",
           Unary(s + "ApplyReplacement", c, &L::ApplyReplacement)},
          {"CancelCard", Unary(s + "CancelCard", c, &L::CancelCard)},
          {"UpdateHolderContact",
           Unary(s + "UpdateHolderContact", c, &L::UpdateHolderContact)},
          {"GetCard", Unary(s + "GetCard", c, &L::GetCard)},
          {"GetPerson", Unary(s + "GetPerson", c, &L::GetPerson)},
          {"ListCardEvents",
           Unary(s + "ListCardEvents", c, &L::ListCardEvents)},
          {"CheckInvalidCard",
           Unary(s + "CheckInvalidCard", c, &L::CheckInvalidCard)},
      },
      {});
}

// Destroyed at exit in reverse order: the fuzzer, then the store (which
// removes its directory).
struct Target {
  FuzzStore store;
  ServiceFuzzer fuzzer = MakeFuzzer(&store);
};

}  // namespace
}  // namespace ssc::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ssc::fuzz::Target target;
  target.fuzzer.Run(data, size);
  return 0;
}
