#include "services/report/report_service.h"

#include <functional>

namespace ssc::report {

// The method names must match the rows of services/common/grpc/authz_table.cc
// (tests/server and tests/report check every ReportService method has one).

grpc::Status ReportServiceImpl::GetIndicators(
    grpc::ServerContext* ctx, const ssc::v1::GetIndicatorsRequest* req,
    ssc::v1::GetIndicatorsResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.ReportService/GetIndicators", *req, resp,
                      std::bind_front(&ReportLogic::GetIndicators, logic_));
}

grpc::Status ReportServiceImpl::GetIndicatorSeries(
    grpc::ServerContext* ctx, const ssc::v1::GetIndicatorSeriesRequest* req,
    ssc::v1::GetIndicatorSeriesResponse* resp) {
  return runner_->Run(
      ctx, "ssc.v1.ReportService/GetIndicatorSeries", *req, resp,
      std::bind_front(&ReportLogic::GetIndicatorSeries, logic_));
}

grpc::Status ReportServiceImpl::GetBreakdown(
    grpc::ServerContext* ctx, const ssc::v1::GetBreakdownRequest* req,
    ssc::v1::GetBreakdownResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.ReportService/GetBreakdown", *req, resp,
                      std::bind_front(&ReportLogic::GetBreakdown, logic_));
}

grpc::Status ReportServiceImpl::SetResidentPopulation(
    grpc::ServerContext* ctx, const ssc::v1::SetResidentPopulationRequest* req,
    ssc::v1::SetResidentPopulationResponse* resp) {
  return runner_->Run(
      ctx, "ssc.v1.ReportService/SetResidentPopulation", *req, resp,
      std::bind_front(&ReportLogic::SetResidentPopulation, logic_));
}

grpc::Status ReportServiceImpl::ListResidentPopulation(
    grpc::ServerContext* ctx, const ssc::v1::ListResidentPopulationRequest* req,
    ssc::v1::ListResidentPopulationResponse* resp) {
  return runner_->Run(
      ctx, "ssc.v1.ReportService/ListResidentPopulation", *req, resp,
      std::bind_front(&ReportLogic::ListResidentPopulation, logic_));
}

grpc::Status ReportServiceImpl::SetTarget(grpc::ServerContext* ctx,
                                          const ssc::v1::SetTargetRequest* req,
                                          ssc::v1::SetTargetResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.ReportService/SetTarget", *req, resp,
                      std::bind_front(&ReportLogic::SetTarget, logic_));
}

grpc::Status ReportServiceImpl::ListTargets(
    grpc::ServerContext* ctx, const ssc::v1::ListTargetsRequest* req,
    ssc::v1::ListTargetsResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.ReportService/ListTargets", *req, resp,
                      std::bind_front(&ReportLogic::ListTargets, logic_));
}

grpc::Status ReportServiceImpl::GetPayoutFigures(
    grpc::ServerContext* ctx, const ssc::v1::GetPayoutFiguresRequest* req,
    ssc::v1::GetPayoutFiguresResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.ReportService/GetPayoutFigures", *req, resp,
                      std::bind_front(&ReportLogic::GetPayoutFigures, logic_));
}

grpc::Status ReportServiceImpl::VerifyCounters(
    grpc::ServerContext* ctx, const ssc::v1::VerifyCountersRequest* req,
    ssc::v1::VerifyCountersResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.ReportService/VerifyCounters", *req, resp,
                      std::bind_front(&ReportLogic::VerifyCounters, logic_));
}

}  // namespace ssc::report
