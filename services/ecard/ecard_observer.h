#pragma once

// Makes the e-card status follow the physical card, inside the card
// operation's own write set (so both commit atomically):
//   loss (temporary or formal)         -> SUSPENDED (a temporary loss ends by
//                                         itself, read lazily like the card)
//   unblock / temporary loss expired   -> ACTIVE
//   replacement                        -> SUSPENDED while the new card is
//                                         made; ACTIVE on the new card once it
//                                         is handed over (no new application)
//   cancellation                       -> REVOKED (final)
// The e-card follows one card (its application id); a change of another card
// is ignored unless that card replaces the followed one, in which case the
// e-card moves to it. Runs under the person's lock (CardLogic holds it).
// For a person new in the write set (CardChange::person_new: imports) only
// the write set's pending writes are looked at, not the store.
// Thread-safe.

#include "absl/status/status.h"
#include "services/card/card_logic.h"
#include "storage/engine.h"

namespace ssc::ecard {

class ECardObserver final : public card::CardObserver {
 public:
  explicit ECardObserver(storage::Engine* engine) : engine_(engine) {}

  absl::Status OnCardChange(storage::WriteSet& ws,
                            const card::CardChange& change) override;

 private:
  storage::Engine* engine_;
};

}  // namespace ssc::ecard
