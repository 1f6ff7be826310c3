// Fuzz target: ReportService requests on ReportLogic over a real store with
// the plan's figures seeded, as sscd starts it; see fuzz_store.h.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "services/report/ecard_recount.h"
#include "services/report/report_logic.h"
#include "tests/fuzz/fuzz_store.h"

namespace ssc::fuzz {
namespace {

struct Target {
  Target() {
    logic = std::make_unique<report::ReportLogic>(
        store.ctx(), &store.regions(),
        report::MakeECardHolderScan(store.engine()));
    if (!logic->SeedPlanFigures().ok()) std::abort();
    using L = report::ReportLogic;
    L* r = logic.get();
    const std::string s = "ssc.v1.ReportService/";
    fuzzer = std::make_unique<ServiceFuzzer>(
        "ssc.v1.ReportService",
        std::map<std::string, Call>{
            {"GetIndicators", Unary(s + "GetIndicators", r, &L::GetIndicators)},
            {"GetIndicatorSeries",
             Unary(s + "GetIndicatorSeries", r, &L::GetIndicatorSeries)},
            {"GetBreakdown", Unary(s + "GetBreakdown", r, &L::GetBreakdown)},
            {"SetResidentPopulation",
             Unary(s + "SetResidentPopulation", r, &L::SetResidentPopulation)},
            {"ListResidentPopulation", Unary(s + "ListResidentPopulation", r,
                                             &L::ListResidentPopulation)},
            {"SetTarget", Unary(s + "SetTarget", r, &L::SetTarget)},
            {"ListTargets", Unary(s + "ListTargets", r, &L::ListTargets)},
            {"GetPayoutFigures",
             Unary(s + "GetPayoutFigures", r, &L::GetPayoutFigures)},
            {"VerifyCounters",
             Unary(s + "VerifyCounters", r, &L::VerifyCounters)},
        },
        std::map<std::string, std::string>{});
  }

  FuzzStore store;
  std::unique_ptr<report::ReportLogic> logic;
  std::unique_ptr<ServiceFuzzer> fuzzer;
};

}  // namespace
}  // namespace ssc::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ssc::fuzz::Target target;
  target.fuzzer->Run(data, size);
  return 0;
}
