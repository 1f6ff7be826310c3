// sscctl: the operator's command-line client for sscd.
//
//   sscctl [connection flags] <group> <command> [flags]
//   sscctl card apply --id-number 34052419800101001X --name 张三 ...
//   sscctl audit verify
//   sscctl health
//
// See `sscctl --help` and `sscctl card apply --help`.

#include <iostream>
#include <memory>
#include <vector>

#include "CLI/CLI.hpp"
#include "services/ops/sscctl_ops.h"
#include "services/report/report_cli.h"
#include "services/sscctl/connection.h"
#include "services/sscctl/output.h"
#include "services/sscctl/rpc_command.h"

int main(int argc, char** argv) {
  using namespace ssc::sscctl;

  CLI::App app{
      "sscctl: operator client for the ssc social security card service"};
  app.footer(
      "Exit codes: 0 ok; 1 a check failed (audit chain broken, not SERVING); "
      "2 bad flags or local setup; 10 + gRPC code when a call fails "
      "(13 INVALID_ARGUMENT, 15 NOT_FOUND, 17 PERMISSION_DENIED, "
      "19 FAILED_PRECONDITION, 24 UNAVAILABLE).");
  app.require_subcommand(1);
  GlobalOptions global;
  AddConnectionFlags(app, global.connection);
  app.add_flag("--json", global.json, "print responses as JSON");
  app.add_option("--request-id", global.request_id,
                 "id of a mutation (retry with the same id to repeat it "
                 "safely); default: a new random id, printed on stderr");

  std::vector<std::unique_ptr<Runnable>> runnables;
  // One line per service; the commands come from its table.
  RegisterService(app, CardCommands(), runnables);
  RegisterService(app, AuditCommands(), runnables);
  RegisterService(app, ECardCommands(), runnables);
  RegisterService(app, PayoutCommands(), runnables);
  // Reports are for people and documents: tables, CSV and SVG charts.
  ssc::report::ReportCli report_cli(
      app, {[&] { return OpenChannel(global.connection); },
            [&] { return NewCallContext(global.connection); },
            [&] {
              return global.request_id.empty() ? NewRequestId()
                                               : global.request_id;
            },
            [&](const grpc::Status& s, const FlagLookup& flag_for) {
              return Printer(global.json).PrintRpcError(s, flag_for);
            },
            [&] { return global.json; }});
  runnables.push_back(RegisterHealth(app));
  ssc::ops::RegisterOpsCommands(app, runnables);  // import, backup

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  for (auto& r : runnables) {
    if (r->app()->parsed()) return r->Run(global);
  }
  if (report_cli.app()->parsed()) return report_cli.Run(std::cout, std::cerr);
  std::cerr << app.help();
  return kExitUsage;
}
