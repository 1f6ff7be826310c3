#include "services/ecard/channel_scope.h"

#include <optional>
#include <string>

#include "services/ecard/ecard_records.pb.h"
#include "services/ecard/ecard_store.h"
#include "storage/status_macros.h"

namespace ssc::ecard {

absl::StatusOr<bool> ChannelHolderScope::Covers(
    const common::Caller& caller, std::string_view person_key) const {
  ASSIGN_OR_RETURN(std::optional<std::string> ecard_id,
                   ReadThrough(*engine_, nullptr, storage::Table::kECards,
                               PersonIndexKey(person_key)));
  if (!ecard_id.has_value()) return false;
  ASSIGN_OR_RETURN(
      std::optional<store::ECardRecord> rec,
      LoadRecord<store::ECardRecord>(*engine_, nullptr, storage::Table::kECards,
                                     ECardKey(*ecard_id)));
  if (!rec.has_value() || rec->revoked()) return false;
  ASSIGN_OR_RETURN(std::optional<store::ChannelBindingRecord> binding,
                   LoadRecord<store::ChannelBindingRecord>(
                       *engine_, nullptr, storage::Table::kECards,
                       BindingKey(*ecard_id, caller.identity)));
  return binding.has_value() && binding->active();
}

}  // namespace ssc::ecard
