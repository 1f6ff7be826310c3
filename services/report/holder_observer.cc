#include "services/report/holder_observer.h"

#include "services/report/counters.h"

namespace ssc::report {

bool HoldsCard(const card::store::CardRecord& card) {
  switch (card.state()) {
    case ssc::v1::CARD_STATE_ISSUED:
    case ssc::v1::CARD_STATE_ACTIVE:
    case ssc::v1::CARD_STATE_TEMP_LOST:
    case ssc::v1::CARD_STATE_LOST:
      return true;
    case ssc::v1::CARD_STATE_APPLIED:
    case ssc::v1::CARD_STATE_IN_PRODUCTION:
    case ssc::v1::CARD_STATE_PRODUCED:
      // A replacement is only ever applied for a card that was handed over.
      return !card.replaces().empty();
    case ssc::v1::CARD_STATE_REPLACED:
    case ssc::v1::CARD_STATE_CANCELLED:
    default:
      return false;
  }
}

absl::Status HolderCounterObserver::OnCardChange(
    storage::WriteSet& ws, const card::CardChange& change) {
  const int before = change.before.has_value() && HoldsCard(*change.before);
  const int after = HoldsCard(change.after);
  AddMetricDelta(ws, Metric::kCardHolders, change.person.region_code(),
                 change.time, after - before);
  return absl::OkStatus();
}

}  // namespace ssc::report
