#pragma once

// Small RETURN_IF_ERROR / ASSIGN_OR_RETURN helpers: Debian 12's Abseil
// (20220623) does not ship them.

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SSC_STATUS_CONCAT_INNER_(a, b) a##b
#define SSC_STATUS_CONCAT_(a, b) SSC_STATUS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                  \
  do {                                         \
    ::absl::Status ssc_status_ = (expr);       \
    if (!ssc_status_.ok()) return ssc_status_; \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, rexpr)                                           \
  SSC_ASSIGN_OR_RETURN_IMPL_(SSC_STATUS_CONCAT_(ssc_statusor_, __LINE__), lhs, \
                             rexpr)

#define SSC_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                               \
  if (!statusor.ok()) return statusor.status();          \
  lhs = std::move(statusor).value()
