// sscctl audit ...: the tamper-evident audit chain (ssc.v1.AuditService).

#include <iostream>

#include "services/sscctl/rpc_command.h"
#include "ssc/v1/audit.grpc.pb.h"

namespace ssc::sscctl {
namespace {

// `audit verify` fails (exit 1) when the chain is broken, so scripts and cron
// jobs can alert on the exit code alone.
int CheckChain(const google::protobuf::Message& response) {
  ssc::v1::VerifyAuditChainResponse r;
  r.ParseFromString(response.SerializeAsString());
  if (r.ok()) return kExitOk;
  std::cerr << "audit chain BROKEN at record " << r.first_bad_sequence() << ": "
            << r.problem() << "\n";
  return kExitCheckFailed;
}

}  // namespace

ServiceCommands AuditCommands() {
  return {
      .name = "audit",
      .help = "the audit chain (ssc.v1.AuditService; auditor or admin role)",
      .service = ssc::v1::VerifyAuditChainRequest::descriptor()
                     ->file()
                     ->FindServiceByName("AuditService"),
      .commands =
          {
              {"verify", "VerifyAuditChain",
               "recompute the hash chain; exit 1 when it is broken",
               CheckChain},
              {"list", "ListAuditRecords", "audit records in sequence order"},
          },
  };
}

}  // namespace ssc::sscctl
