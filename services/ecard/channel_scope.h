#pragma once

// The holders a mobile channel may act on in the card service (GetCard,
// ReportLoss): those whose current e-card (not revoked) is bound, actively,
// in the caller's channel (its certificate identity). The same relationship
// limits the channel in the e-card service (ECardLogic). Reads the store
// only; the e-card service changes bindings under the person's lock, which
// card mutations hold while they ask. Thread-safe.

#include <string_view>

#include "absl/status/statusor.h"
#include "services/card/card_logic.h"
#include "services/common/caller.h"
#include "storage/engine.h"

namespace ssc::ecard {

class ChannelHolderScope final : public card::HolderScope {
 public:
  // `engine` must outlive the object.
  explicit ChannelHolderScope(storage::Engine* engine) : engine_(engine) {}

  absl::StatusOr<bool> Covers(const common::Caller& caller,
                              std::string_view person_key) const override;

 private:
  storage::Engine* engine_;
};

}  // namespace ssc::ecard
