#include "services/report/ecard_recount.h"

#include "services/ecard/ecard_records.pb.h"
#include "storage/key_codec.h"
#include "storage/status_macros.h"

namespace ssc::report {

ECardHolderScan MakeECardHolderScan(storage::Engine* engine) {
  return [engine](const std::function<void(std::string_view)>& visit,
                  int64_t* ecards_scanned) -> absl::Status {
    // The e-card records: keys "e" + Str(e-card id) (ecard_store.h).
    const std::string prefix = storage::KeyBuilder().Str("e").Build();
    bool corrupt = false;
    int64_t n = 0;
    RETURN_IF_ERROR(engine->Scan(
        storage::Table::kECards, prefix, storage::PrefixSuccessor(prefix),
        [&](std::string_view, std::string_view value) {
          ecard::store::ECardRecord r;
          if (!r.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
            corrupt = true;
            return false;
          }
          ++n;
          if (!r.revoked()) visit(r.person_key());
          return true;
        }));
    if (corrupt) return absl::DataLossError("unreadable e-card record");
    *ecards_scanned = n;
    return absl::OkStatus();
  };
}

}  // namespace ssc::report
