#include "services/ecard/ecard_observer.h"

#include <algorithm>

#include "services/ecard/ecard_store.h"
#include "services/report/counters.h"

namespace ssc::ecard {

absl::Status ECardObserver::OnCardChange(storage::WriteSet& ws,
                                         const card::CardChange& change) {
  if (change.person_new) {
    // Without any e-card write in the set there is no e-card to follow:
    // decided before building the index key (most imported persons have
    // no e-card, and each of their card steps comes here).
    const std::vector<storage::WriteSet::Op>& ops = ws.ops();
    if (std::none_of(ops.begin(), ops.end(),
                     [](const storage::WriteSet::Op& op) {
                       return op.table == storage::Table::kECards;
                     })) {
      return absl::OkStatus();
    }
  }
  const std::string index_key = PersonIndexKey(change.person_key);
  absl::StatusOr<std::optional<std::string>> ref;
  if (change.person_new) {
    // A person new in this write set has an e-card only if the write set
    // issues it: its pending writes tell, without a read of the store (an
    // import replays five or more changes per card).
    std::optional<std::optional<std::string>> pending =
        ws.Pending(storage::Table::kECards, index_key);
    ref = pending.has_value() ? *std::move(pending)
                              : std::optional<std::string>();
  } else {
    ref = ReadThrough(*engine_, &ws, storage::Table::kECards, index_key);
  }
  if (!ref.ok()) return ref.status();
  if (!ref->has_value()) return absl::OkStatus();  // no e-card

  const std::string key = ECardKey(**ref);
  absl::StatusOr<std::optional<store::ECardRecord>> loaded =
      LoadRecord<store::ECardRecord>(*engine_, &ws, storage::Table::kECards,
                                     key);
  if (!loaded.ok()) return loaded.status();
  if (!loaded->has_value()) {
    return absl::DataLossError("e-card index names a missing e-card");
  }
  store::ECardRecord rec = **std::move(loaded);
  if (rec.revoked()) return absl::OkStatus();  // final

  const card::store::CardRecord& card = change.after;
  const bool followed = card.application_id() == rec.card_application_id();
  const bool successor = !followed && !card.replaces().empty() &&
                         card.replaces() == rec.card_application_id();
  if (!followed && !successor) return absl::OkStatus();

  const EffectiveStatus before = StatusOf(rec, change.time);
  rec.set_card_application_id(card.application_id());
  rec.set_card_state(card.state());
  rec.set_temp_loss_expires_micros(card.state() == ssc::v1::CARD_STATE_TEMP_LOST
                                       ? card.temp_loss_expires_micros()
                                       : 0);
  if (card.state() == ssc::v1::CARD_STATE_CANCELLED) {
    rec.set_revoked(true);
    rec.set_revoke_reason(ssc::v1::E_CARD_STATUS_REASON_CARD_CANCELLED);
    // The person stops being an e-card holder (report counters).
    report::RecordECardHolderChange(ws, change.person.region_code(),
                                    change.time, -1);
  }
  const EffectiveStatus after = StatusOf(rec, change.time);
  if (!(before == after)) {
    rec.set_status_changed_micros(ToMicros(change.time));
    AppendStatusEvent(
        ws, rec, after,
        after.status == ssc::v1::E_CARD_STATUS_ACTIVE    ? "ecard.reinstated"
        : after.status == ssc::v1::E_CARD_STATUS_REVOKED ? "ecard.revoked"
                                                         : "ecard.suspended");
  }
  ws.Put(storage::Table::kECards, key, rec.SerializeAsString());
  return absl::OkStatus();
}

}  // namespace ssc::ecard
