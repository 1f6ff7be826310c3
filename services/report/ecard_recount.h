#pragma once

// The e-card side of ReportLogic::VerifyCounters: a scan of the e-card
// service's records (kECards "e" + e-card id -> ECardRecord) that visits the
// person of every e-card that is not revoked. Kept in its own library
// (ssc_report_ecard) so ssc_report does not depend on the e-card service,
// which calls report::RecordECardHolderChange (counters.h). Thread-safe.

#include "services/report/report_logic.h"
#include "storage/engine.h"

namespace ssc::report {

// `engine` must outlive the returned function.
ECardHolderScan MakeECardHolderScan(storage::Engine* engine);

}  // namespace ssc::report
