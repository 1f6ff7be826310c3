// sscctl card ...: every ssc.v1.CardService RPC.

#include "services/sscctl/rpc_command.h"
#include "ssc/v1/card.grpc.pb.h"

namespace ssc::sscctl {

ServiceCommands CardCommands() {
  return {
      .name = "card",
      .help = "social security card lifecycle (ssc.v1.CardService)",
      // Naming a generated message links card.pb.cc, whose descriptors the
      // commands find by reflection.
      .service =
          ssc::v1::ApplyCardRequest::descriptor()->file()->FindServiceByName(
              "CardService"),
      .commands =
          {
              {"apply", "ApplyCard", "申领: apply for a first card"},
              {"send-to-production", "SendToProduction",
               "制卡: send APPLIED cards to production (all or none)"},
              {"record-production", "RecordProduction",
               "数据回盘: record the card bureau's production result"},
              {"issue", "IssueCard", "发卡: hand the card over to the holder"},
              {"activate", "ActivateCard", "启用: activate an issued card"},
              {"report-loss", "ReportLoss",
               "挂失: temporary (7 days) or formal loss"},
              {"cancel-loss", "CancelLossReport", "解挂: cancel a loss report"},
              {"replace", "ApplyReplacement",
               "补卡/换卡: replace a card; the old one becomes void"},
              {"cancel", "CancelCard", "注销: cancel a card for good"},
              {"update-contact", "UpdateHolderContact",
               "change a holder's phone or address"},
              {"get-card", "GetCard", "show a card"},
              {"get-person", "GetPerson", "show a person and their cards"},
              {"events", "ListCardEvents",
               "the event log of a card or of a person's cards"},
              {"check-invalid", "CheckInvalidCard",
               "失效名单: is a card number out of use?"},
          },
  };
}

}  // namespace ssc::sscctl
