#pragma once

// The physical card's state machine (domain.md, "Lifecycle"), as one table.
// Pure functions; thread-safe.

#include <string_view>

#include "absl/status/statusor.h"
#include "ssc/v1/card.pb.h"

namespace ssc::card {

using CardState = ::ssc::v1::CardState;

// The operations that move an existing card from one state to another.
// Application (creating a card in APPLIED) is not a transition.
enum class Operation {
  kSendToProduction,
  kRecordProduction,
  kIssue,
  kActivate,
  kReportTempLoss,
  kReportFormalLoss,
  kCancelLoss,
  kApplyReplacement,  // the old card's side: it becomes REPLACED
  kCancel,
};
inline constexpr Operation kAllOperations[] = {
    Operation::kSendToProduction,
    Operation::kRecordProduction,
    Operation::kIssue,
    Operation::kActivate,
    Operation::kReportTempLoss,
    Operation::kReportFormalLoss,
    Operation::kCancelLoss,
    Operation::kApplyReplacement,
    Operation::kCancel,
};

// The state after `op`, or FAILED_PRECONDITION naming the current state
// (common::WrongState) when `op` is not allowed from `from`.
// REPLACED and CANCELLED are terminal.
absl::StatusOr<CardState> Transition(CardState from, Operation op);
// Same, with the refusal naming `subject` (e.g. "card A510524000000001").
absl::StatusOr<CardState> Transition(CardState from, Operation op,
                                     std::string_view subject);

// "APPLIED", "ACTIVE", ... (the enum name without the CARD_STATE_ prefix).
std::string_view StateName(CardState s);
// Names of the reasons as they appear in event details ("LOST", "DEATH", ...;
// "UNSPECIFIED" for values outside the enum).
std::string_view ReplacementReasonName(ssc::v1::ReplacementReason r);
std::string_view CancelReasonName(ssc::v1::CancelReason r);
// "send_to_production", "issue", ...
std::string_view OperationName(Operation op);

// States in which a card is on the invalid-card list (失效名单).
bool IsInvalidState(CardState s);
// REPLACED or CANCELLED: the card is void for ever.
bool IsTerminalState(CardState s);

}  // namespace ssc::card
