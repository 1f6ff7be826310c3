#pragma once

// The gRPC adapter of ssc.v1.ReportService over ReportLogic. Every handler
// is one line through grpc_common::RpcRunner (identify, authorize against
// authz_table.cc, deadline, status mapping); all rules live in ReportLogic.
// Synchronous API, like the card adapter: report reads scan bounded counter
// ranges and VerifyCounters scans every card, so they run on the sync
// server's own thread pool rather than on a callback thread.
// Thread-safe: gRPC calls the handlers concurrently.

#include <grpcpp/server_context.h>

#include "services/common/grpc/rpc_runner.h"
#include "services/report/report_logic.h"
#include "ssc/v1/report.grpc.pb.h"

namespace ssc::report {

class ReportServiceImpl final : public ssc::v1::ReportService::Service {
 public:
  // `logic` and `runner` must outlive the service.
  ReportServiceImpl(ReportLogic* logic, const grpc_common::RpcRunner* runner)
      : logic_(logic), runner_(runner) {}

  grpc::Status GetIndicators(grpc::ServerContext* ctx,
                             const ssc::v1::GetIndicatorsRequest* req,
                             ssc::v1::GetIndicatorsResponse* resp) override;
  grpc::Status GetIndicatorSeries(
      grpc::ServerContext* ctx, const ssc::v1::GetIndicatorSeriesRequest* req,
      ssc::v1::GetIndicatorSeriesResponse* resp) override;
  grpc::Status GetBreakdown(grpc::ServerContext* ctx,
                            const ssc::v1::GetBreakdownRequest* req,
                            ssc::v1::GetBreakdownResponse* resp) override;
  grpc::Status SetResidentPopulation(
      grpc::ServerContext* ctx,
      const ssc::v1::SetResidentPopulationRequest* req,
      ssc::v1::SetResidentPopulationResponse* resp) override;
  grpc::Status ListResidentPopulation(
      grpc::ServerContext* ctx,
      const ssc::v1::ListResidentPopulationRequest* req,
      ssc::v1::ListResidentPopulationResponse* resp) override;
  grpc::Status SetTarget(grpc::ServerContext* ctx,
                         const ssc::v1::SetTargetRequest* req,
                         ssc::v1::SetTargetResponse* resp) override;
  grpc::Status ListTargets(grpc::ServerContext* ctx,
                           const ssc::v1::ListTargetsRequest* req,
                           ssc::v1::ListTargetsResponse* resp) override;
  grpc::Status GetPayoutFigures(
      grpc::ServerContext* ctx, const ssc::v1::GetPayoutFiguresRequest* req,
      ssc::v1::GetPayoutFiguresResponse* resp) override;
  grpc::Status VerifyCounters(grpc::ServerContext* ctx,
                              const ssc::v1::VerifyCountersRequest* req,
                              ssc::v1::VerifyCountersResponse* resp) override;

 private:
  ReportLogic* logic_;
  const grpc_common::RpcRunner* runner_;
};

}  // namespace ssc::report
