// sscctl payout ...: one command per method of ssc.v1.PayoutService, named
// after the method (see ServiceCommands::commands).

#include "services/sscctl/rpc_command.h"
#include "ssc/v1/payout.grpc.pb.h"

namespace ssc::sscctl {

ServiceCommands PayoutCommands() {
  return {
      .name = "payout",
      .help = "one-card subsidy payouts (ssc.v1.PayoutService)",
      // Naming a generated message links payout.pb.cc, whose descriptors the
      // commands find by reflection.
      .service = ssc::v1::RegisterProgrammeRequest::descriptor()
                     ->file()
                     ->FindServiceByName("PayoutService"),
      .commands = {},
  };
}

}  // namespace ssc::sscctl
