#include "services/card/lifecycle.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "services/common/errors.h"

namespace ssc::card {
namespace {

using ssc::v1::CARD_STATE_ACTIVE;
using ssc::v1::CARD_STATE_APPLIED;
using ssc::v1::CARD_STATE_CANCELLED;
using ssc::v1::CARD_STATE_IN_PRODUCTION;
using ssc::v1::CARD_STATE_ISSUED;
using ssc::v1::CARD_STATE_LOST;
using ssc::v1::CARD_STATE_PRODUCED;
using ssc::v1::CARD_STATE_REPLACED;
using ssc::v1::CARD_STATE_TEMP_LOST;

struct Rule {
  CardState from;
  Operation op;
  CardState to;
};

// domain.md, "Lifecycle". Every legal (state, operation) pair; anything
// else is refused.
constexpr Rule kRules[] = {
    {CARD_STATE_APPLIED, Operation::kSendToProduction,
     CARD_STATE_IN_PRODUCTION},
    {CARD_STATE_IN_PRODUCTION, Operation::kRecordProduction,
     CARD_STATE_PRODUCED},
    {CARD_STATE_PRODUCED, Operation::kIssue, CARD_STATE_ISSUED},
    {CARD_STATE_ISSUED, Operation::kActivate, CARD_STATE_ACTIVE},
    {CARD_STATE_ACTIVE, Operation::kReportTempLoss, CARD_STATE_TEMP_LOST},
    {CARD_STATE_ACTIVE, Operation::kReportFormalLoss, CARD_STATE_LOST},
    {CARD_STATE_TEMP_LOST, Operation::kReportFormalLoss, CARD_STATE_LOST},
    {CARD_STATE_TEMP_LOST, Operation::kCancelLoss, CARD_STATE_ACTIVE},
    {CARD_STATE_LOST, Operation::kCancelLoss, CARD_STATE_ACTIVE},
    {CARD_STATE_LOST, Operation::kApplyReplacement, CARD_STATE_REPLACED},
    {CARD_STATE_ACTIVE, Operation::kApplyReplacement, CARD_STATE_REPLACED},
    {CARD_STATE_ISSUED, Operation::kApplyReplacement, CARD_STATE_REPLACED},
    {CARD_STATE_APPLIED, Operation::kCancel, CARD_STATE_CANCELLED},
    {CARD_STATE_IN_PRODUCTION, Operation::kCancel, CARD_STATE_CANCELLED},
    {CARD_STATE_PRODUCED, Operation::kCancel, CARD_STATE_CANCELLED},
    {CARD_STATE_ISSUED, Operation::kCancel, CARD_STATE_CANCELLED},
    {CARD_STATE_ACTIVE, Operation::kCancel, CARD_STATE_CANCELLED},
    {CARD_STATE_TEMP_LOST, Operation::kCancel, CARD_STATE_CANCELLED},
    {CARD_STATE_LOST, Operation::kCancel, CARD_STATE_CANCELLED},
};

// Why a refused operation is refused, for the states where a plain
// "not allowed" would leave the operator guessing.
std::string Refusal(CardState from, Operation op) {
  if (from == CARD_STATE_REPLACED) {
    if (op == Operation::kCancelLoss) {
      return "a replacement was applied for; the old card is void for ever "
             "and cannot be unblocked";
    }
    if (op == Operation::kCancel) {
      return "a replaced card is void for ever; cancel its replacement "
             "instead";
    }
    return "a replaced card is void for ever";
  }
  if (from == CARD_STATE_CANCELLED) return "a cancelled card is final";
  if (from == CARD_STATE_TEMP_LOST && op == Operation::kApplyReplacement) {
    return "report the loss formally or unblock the card before applying for "
           "a replacement";
  }
  return absl::StrCat(std::string(OperationName(op)),
                      " is not allowed in this state");
}

}  // namespace

absl::StatusOr<CardState> Transition(CardState from, Operation op) {
  return Transition(from, op, "card");
}

absl::StatusOr<CardState> Transition(CardState from, Operation op,
                                     std::string_view subject) {
  for (const Rule& r : kRules) {
    if (r.from == from && r.op == op) return r.to;
  }
  return common::WrongState(subject, StateName(from), Refusal(from, op));
}

std::string_view StateName(CardState s) {
  switch (s) {
    case ssc::v1::CARD_STATE_UNSPECIFIED:
      return "UNSPECIFIED";
    case CARD_STATE_APPLIED:
      return "APPLIED";
    case CARD_STATE_IN_PRODUCTION:
      return "IN_PRODUCTION";
    case CARD_STATE_PRODUCED:
      return "PRODUCED";
    case CARD_STATE_ISSUED:
      return "ISSUED";
    case CARD_STATE_ACTIVE:
      return "ACTIVE";
    case CARD_STATE_TEMP_LOST:
      return "TEMP_LOST";
    case CARD_STATE_LOST:
      return "LOST";
    case CARD_STATE_REPLACED:
      return "REPLACED";
    case CARD_STATE_CANCELLED:
      return "CANCELLED";
    default:
      return "UNKNOWN";
  }
}

std::string_view OperationName(Operation op) {
  switch (op) {
    case Operation::kSendToProduction:
      return "send_to_production";
    case Operation::kRecordProduction:
      return "record_production";
    case Operation::kIssue:
      return "issue";
    case Operation::kActivate:
      return "activate";
    case Operation::kReportTempLoss:
      return "report_temporary_loss";
    case Operation::kReportFormalLoss:
      return "report_formal_loss";
    case Operation::kCancelLoss:
      return "cancel_loss_report";
    case Operation::kApplyReplacement:
      return "apply_replacement";
    case Operation::kCancel:
      return "cancel";
  }
  return "unknown";
}

bool IsInvalidState(CardState s) {
  return s == CARD_STATE_TEMP_LOST || s == CARD_STATE_LOST ||
         s == CARD_STATE_REPLACED || s == CARD_STATE_CANCELLED;
}

bool IsTerminalState(CardState s) {
  return s == CARD_STATE_REPLACED || s == CARD_STATE_CANCELLED;
}

std::string_view ReplacementReasonName(ssc::v1::ReplacementReason r) {
  switch (r) {
    case ssc::v1::REPLACEMENT_REASON_LOST:
      return "LOST";
    case ssc::v1::REPLACEMENT_REASON_DAMAGED:
      return "DAMAGED";
    case ssc::v1::REPLACEMENT_REASON_EXPIRING:
      return "EXPIRING";
    case ssc::v1::REPLACEMENT_REASON_DATA_CHANGE:
      return "DATA_CHANGE";
    case ssc::v1::REPLACEMENT_REASON_BANK_CHANGE:
      return "BANK_CHANGE";
    default:
      return "UNSPECIFIED";
  }
}

std::string_view CancelReasonName(ssc::v1::CancelReason r) {
  switch (r) {
    case ssc::v1::CANCEL_REASON_DEATH:
      return "DEATH";
    case ssc::v1::CANCEL_REASON_MOVED_OUT:
      return "MOVED_OUT";
    case ssc::v1::CANCEL_REASON_EMIGRATED:
      return "EMIGRATED";
    default:
      return "UNSPECIFIED";
  }
}

}  // namespace ssc::card
