#include "services/card/lifecycle.h"

#include <map>
#include <string>
#include <utility>

#include "gtest/gtest.h"
#include "services/common/errors.h"

namespace ssc::card {
namespace {

using ssc::v1::CardState;
using O = Operation;

constexpr CardState kApplied = ssc::v1::CARD_STATE_APPLIED;
constexpr CardState kInProduction = ssc::v1::CARD_STATE_IN_PRODUCTION;
constexpr CardState kProduced = ssc::v1::CARD_STATE_PRODUCED;
constexpr CardState kIssued = ssc::v1::CARD_STATE_ISSUED;
constexpr CardState kActive = ssc::v1::CARD_STATE_ACTIVE;
constexpr CardState kTempLost = ssc::v1::CARD_STATE_TEMP_LOST;
constexpr CardState kLost = ssc::v1::CARD_STATE_LOST;
constexpr CardState kReplaced = ssc::v1::CARD_STATE_REPLACED;
constexpr CardState kCancelled = ssc::v1::CARD_STATE_CANCELLED;
constexpr CardState kUnspecified = ssc::v1::CARD_STATE_UNSPECIFIED;

// domain.md's lifecycle table, written out independently of lifecycle.cc.
// Every pair not listed must be refused.
const std::map<std::pair<CardState, O>, CardState>& Legal() {
  static const auto* m = new std::map<std::pair<CardState, O>, CardState>{
      {{kApplied, O::kSendToProduction}, kInProduction},
      {{kInProduction, O::kRecordProduction}, kProduced},
      {{kProduced, O::kIssue}, kIssued},
      {{kIssued, O::kActivate}, kActive},
      {{kActive, O::kReportTempLoss}, kTempLost},
      {{kActive, O::kReportFormalLoss}, kLost},
      {{kTempLost, O::kReportFormalLoss}, kLost},
      {{kTempLost, O::kCancelLoss}, kActive},
      {{kLost, O::kCancelLoss}, kActive},
      {{kLost, O::kApplyReplacement}, kReplaced},
      {{kActive, O::kApplyReplacement}, kReplaced},
      {{kIssued, O::kApplyReplacement}, kReplaced},
      {{kApplied, O::kCancel}, kCancelled},
      {{kInProduction, O::kCancel}, kCancelled},
      {{kProduced, O::kCancel}, kCancelled},
      {{kIssued, O::kCancel}, kCancelled},
      {{kActive, O::kCancel}, kCancelled},
      {{kTempLost, O::kCancel}, kCancelled},
      {{kLost, O::kCancel}, kCancelled},
  };
  return *m;
}

TEST(LifecycleTest, EveryStateOperationPair) {
  const CardState states[] = {kUnspecified, kApplied,  kInProduction, kProduced,
                              kIssued,      kActive,   kTempLost,     kLost,
                              kReplaced,    kCancelled};
  int legal = 0;
  int refused = 0;
  for (CardState from : states) {
    for (O op : kAllOperations) {
      SCOPED_TRACE(std::string(StateName(from)) + " / " +
                   std::string(OperationName(op)));
      absl::StatusOr<CardState> got = Transition(from, op);
      auto it = Legal().find({from, op});
      if (it != Legal().end()) {
        ASSERT_TRUE(got.ok()) << got.status();
        EXPECT_EQ(*got, it->second);
        ++legal;
      } else {
        ASSERT_FALSE(got.ok());
        EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
        EXPECT_EQ(common::StateOf(got.status()), StateName(from));
        EXPECT_NE(got.status().message().find(std::string(StateName(from))),
                  std::string::npos);
        ++refused;
      }
    }
  }
  EXPECT_EQ(legal, 19);
  EXPECT_EQ(legal + refused, 10 * 9);
}

TEST(LifecycleTest, TerminalStatesRefuseEverything) {
  for (O op : kAllOperations) {
    EXPECT_FALSE(Transition(kReplaced, op).ok());
    EXPECT_FALSE(Transition(kCancelled, op).ok());
  }
}

TEST(LifecycleTest, RefusalsExplainThemselves) {
  absl::Status unblock = Transition(kReplaced, O::kCancelLoss).status();
  EXPECT_NE(unblock.message().find("replacement was applied for"),
            std::string::npos)
      << unblock;
  absl::Status cancel = Transition(kReplaced, O::kCancel).status();
  EXPECT_NE(cancel.message().find("cancel its replacement"), std::string::npos)
      << cancel;
  absl::Status temp = Transition(kTempLost, O::kApplyReplacement).status();
  EXPECT_NE(temp.message().find("formally"), std::string::npos) << temp;
  absl::Status named =
      Transition(kActive, O::kIssue, "card A510524000000001").status();
  EXPECT_NE(named.message().find("card A510524000000001 is in state ACTIVE"),
            std::string::npos)
      << named;
}

TEST(LifecycleTest, InvalidListStates) {
  EXPECT_TRUE(IsInvalidState(kTempLost));
  EXPECT_TRUE(IsInvalidState(kLost));
  EXPECT_TRUE(IsInvalidState(kReplaced));
  EXPECT_TRUE(IsInvalidState(kCancelled));
  for (CardState s : {kApplied, kInProduction, kProduced, kIssued, kActive}) {
    EXPECT_FALSE(IsInvalidState(s)) << StateName(s);
    EXPECT_FALSE(IsTerminalState(s)) << StateName(s);
  }
}

}  // namespace
}  // namespace ssc::card
