#include "services/sscd/audit_service.h"

#include <functional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "services/common/errors.h"
#include "services/common/grpc/grpc_status.h"
#include "storage/audit.h"

namespace ssc::sscd {
namespace {

constexpr char kVerifyMethod[] = "ssc.v1.AuditService/VerifyAuditChain";
constexpr char kListMethod[] = "ssc.v1.AuditService/ListAuditRecords";

void SetTimestamp(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t nanos = absl::ToUnixNanos(t);
  int64_t seconds = nanos / 1000000000;
  int64_t rest = nanos % 1000000000;
  if (rest < 0) {
    rest += 1000000000;
    --seconds;
  }
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(rest));
}

}  // namespace

absl::StatusOr<ssc::v1::VerifyAuditChainResponse> AuditLogic::VerifyAuditChain(
    const common::Caller& caller,
    const ssc::v1::VerifyAuditChainRequest&) const {
  absl::StatusOr<storage::AuditVerifyResult> r =
      storage::VerifyAuditChain(*store_.engine);
  if (!r.ok()) return r.status();
  ssc::v1::VerifyAuditChainResponse resp;
  resp.set_ok(r->ok);
  resp.set_records(r->records);
  resp.set_first_bad_sequence(r->first_bad_sequence);
  resp.set_problem(r->problem);
  // Audited after the check so that the record does not count itself.
  absl::Status audited =
      common::AuditRead(store_, caller, kVerifyMethod,
                        absl::StrCat("audit chain, ", r->records, " records, ",
                                     r->ok ? "intact" : "BROKEN"),
                        absl::OkStatus());
  if (!audited.ok()) return audited;
  return resp;
}

absl::StatusOr<ssc::v1::ListAuditRecordsResponse> AuditLogic::ListAuditRecords(
    const common::Caller& caller,
    const ssc::v1::ListAuditRecordsRequest& req) const {
  int page_size = req.page().page_size();
  if (page_size < 0) {
    return common::InvalidField("page.page_size", "must not be negative");
  }
  if (page_size == 0) page_size = kDefaultAuditPageSize;
  if (page_size > kMaxAuditPageSize) page_size = kMaxAuditPageSize;

  uint64_t from = req.from_sequence();
  if (!req.page().page_token().empty()) {
    // The token is the next sequence to read, in decimal.
    if (!absl::SimpleAtoi(req.page().page_token(), &from) || from == 0) {
      return common::InvalidField("page.page_token",
                                  "not a token returned by ListAuditRecords");
    }
  }
  if (from == 0) from = 1;

  // One more than asked for tells whether there is a next page.
  absl::StatusOr<std::vector<storage::AuditRecordView>> records =
      storage::ReadAudit(*store_.engine, from,
                         static_cast<size_t>(page_size) + 1);
  if (!records.ok()) return records.status();

  ssc::v1::ListAuditRecordsResponse resp;
  const size_t n = std::min(records->size(), static_cast<size_t>(page_size));
  for (size_t i = 0; i < n; ++i) {
    const storage::AuditRecordView& v = (*records)[i];
    ssc::v1::AuditRecord* out = resp.add_records();
    out->set_sequence(v.sequence);
    SetTimestamp(v.time, out->mutable_time());
    out->set_caller(v.input.caller);
    out->set_role(v.input.role);
    out->set_operator_id(v.input.operator_id);
    out->set_rpc(v.input.rpc);
    out->set_target(v.input.target);
    out->set_request_id(v.input.request_id);
    out->set_code(v.input.code);
    out->set_code_name(grpc_common::GrpcCodeName(v.input.code));
    out->set_message(v.input.message);
    out->set_hash_hex(v.hash_hex);
  }
  if (records->size() > n) {
    resp.mutable_page()->set_next_page_token(
        absl::StrCat((*records)[n].sequence));
  }
  absl::Status audited = common::AuditRead(
      store_, caller, kListMethod,
      absl::StrCat("audit records from ", from, ", ", n, " returned"),
      absl::OkStatus());
  if (!audited.ok()) return audited;
  return resp;
}

grpc::Status AuditServiceImpl::VerifyAuditChain(
    grpc::ServerContext* ctx, const ssc::v1::VerifyAuditChainRequest* req,
    ssc::v1::VerifyAuditChainResponse* resp) {
  return runner_->Run(ctx, kVerifyMethod, *req, resp,
                      std::bind_front(&AuditLogic::VerifyAuditChain, logic_));
}

grpc::Status AuditServiceImpl::ListAuditRecords(
    grpc::ServerContext* ctx, const ssc::v1::ListAuditRecordsRequest* req,
    ssc::v1::ListAuditRecordsResponse* resp) {
  return runner_->Run(ctx, kListMethod, *req, resp,
                      std::bind_front(&AuditLogic::ListAuditRecords, logic_));
}

}  // namespace ssc::sscd
