#pragma once

// Keeps the holder counters (counters.h) in step with the card records: a
// card::CardObserver that adds the holder delta of every card change to the
// same write set as the change.
//
// The rule (plan 指标解释 25, domain.md): a person holds a card from the
// moment a first card reaches ISSUED (instant issuance included) until the
// person's card is CANCELLED with no live replacement; a replacement in
// progress still holds, and a replacement card does not count again. Per
// card this is HoldsCard() below; since a person has at most one live card
// (一人一卡), the person's holder status is the sum over their cards, and
// the delta of a change is HoldsCard(after) - HoldsCard(before). A
// replacement reports the old card (ISSUED/ACTIVE/LOST -> REPLACED: -1) and
// the new card (APPLIED with `replaces`: +1) in one write: net 0.
//
// Stateless; thread-safe.

#include "absl/status/status.h"
#include "services/card/card_logic.h"
#include "services/card/card_records.pb.h"
#include "storage/engine.h"

namespace ssc::report {

// Whether this card makes its person a holder: it is live (not REPLACED or
// CANCELLED) and it or the card it replaces has been handed over.
bool HoldsCard(const card::store::CardRecord& card);

class HolderCounterObserver final : public card::CardObserver {
 public:
  absl::Status OnCardChange(storage::WriteSet& ws,
                            const card::CardChange& change) override;
};

}  // namespace ssc::report
