#pragma once

// `sscctl report ...`: the reporting subcommands, with output made for
// people (aligned tables in the terminal), spreadsheets (--csv FILE) and
// documents (--svg FILE: holders and e-card coverage by period with the
// plan's target lines, and a township bar chart).
//
//   sscctl report indicators [--region R] [--as-of YYYY-MM-DD] [--csv F]
//   sscctl report series --from D [--to D] [--region R]
//                        [--granularity month|quarter|year] [--csv F] [--svg F]
//   sscctl report breakdown [--as-of D] [--csv F] [--svg F]
//   sscctl report chart --from D [--to D] [--region R] --out F.svg
//   sscctl report population set --region R --year Y --population N [--source
//   S] sscctl report population list [--region R] sscctl report target set
//   --indicator card-holders|ecard-holders|
//                        holder-coverage|ecard-coverage --region R
//                        --target-year Y --target-value V [--baseline-year Y
//                        --baseline-value V] --source S [--note N]
//   sscctl report target list [--region R]
//   sscctl report payouts [--programme P] [--period P] [--region R] [--csv F]
//   sscctl report verify          (exit 1 when counters and records disagree)
//
// With sscctl's --json every command prints its response as JSON instead of
// the table; a field the server rejects is printed with its flag
// ("field: as_of (--as-of): ...").
//
// sscctl owns the connection: it passes hooks that open the channel and
// build call contexts from its global flags. Not thread-safe (main thread).

#include <functional>
#include <iosfwd>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"
#include "ssc/v1/report.grpc.pb.h"

namespace ssc::report {

// Exit codes, as sscctl's: 0 ok, 1 a check failed, 2 bad flags or local
// failure (e.g. a file cannot be written); failed RPCs: print_error's code.
inline constexpr int kCliOk = 0;
inline constexpr int kCliCheckFailed = 1;
inline constexpr int kCliUsage = 2;

struct ReportCliHooks {
  // Opens the channel to sscd (from sscctl's connection flags).
  std::function<absl::StatusOr<std::shared_ptr<grpc::Channel>>()> open_channel;
  // A context for one call (deadline, operator id, identity metadata).
  std::function<std::unique_ptr<grpc::ClientContext>()> new_context;
  // The request id of a mutation (sscctl's --request-id or a new one).
  std::function<std::string()> request_id;
  // Prints a failed call and returns the exit code; `flag_for` maps a
  // field the server names (e.g. "as_of") to the flag that sets it
  // ("--as-of"), empty when no flag does.
  std::function<int(const grpc::Status&, const std::function<std::string(
                                             const std::string&)>& flag_for)>
      print_error;
  // True when the answer is to be printed as JSON (sscctl --json): the
  // response in the proto3 JSON mapping with the proto field names, on
  // stdout, instead of the table. Files (--csv, --svg, --out) are written
  // either way. Null means tables.
  std::function<bool()> json;
};

class ReportCli {
 public:
  // Adds the "report" subcommand group to `parent`.
  ReportCli(CLI::App& parent, ReportCliHooks hooks);
  ReportCli(const ReportCli&) = delete;
  ReportCli& operator=(const ReportCli&) = delete;

  // The "report" group.
  CLI::App* app() const { return group_; }
  // Runs the subcommand that was parsed; returns the exit code.
  int Run(std::ostream& out, std::ostream& err);

 private:
  struct Command {
    CLI::App* app;
    std::function<int(std::ostream&, std::ostream&)> run;
  };
  void Add(CLI::App* app, std::function<int(std::ostream&, std::ostream&)> run);
  // Add for a command that calls sscd: opens the channel (reporting a
  // failure to open it) and hands `call` a ReportService stub.
  void AddCall(CLI::App* app, std::function<int(ssc::v1::ReportService::Stub&,
                                                std::ostream&, std::ostream&)>
                                  call);
  // A failed call of the command `app`, with its fields named by their flags.
  int PrintError(const CLI::App* app, const grpc::Status& status) const;
  // Where a command prints its table: `out`, or with --json a stream that
  // discards it, once `response` has been printed as JSON on `out`.
  std::ostream& TextOut(const google::protobuf::Message& response,
                        std::ostream& out);

  ReportCliHooks hooks_;
  CLI::App* group_;
  std::vector<Command> commands_;
  const CLI::App* running_ = nullptr;  // the command Run is running
  std::ostream discard_{nullptr};      // no buffer: writes go nowhere

  // Flag values (CLI11 binds to these addresses).
  std::string region_, as_of_, from_, to_, granularity_ = "month", csv_, svg_,
                                           out_;
  std::string programme_, period_, source_, note_, indicator_;
  int year_ = 0, target_year_ = 0, baseline_year_ = 0;
  int64_t population_ = 0;
  double target_value_ = 0, baseline_value_ = 0;
  CLI::Option* baseline_year_opt_ = nullptr;
  CLI::Option* baseline_value_opt_ = nullptr;
};

}  // namespace ssc::report
