// sscctl ecard ...: one command per method of ssc.v1.ECardService, named
// after the method (see ServiceCommands::commands).

#include "services/sscctl/rpc_command.h"
#include "ssc/v1/ecard.grpc.pb.h"

namespace ssc::sscctl {

ServiceCommands ECardCommands() {
  return {
      .name = "ecard",
      .help = "electronic social security card (ssc.v1.ECardService)",
      // Naming a generated message links ecard.pb.cc, whose descriptors the
      // commands find by reflection.
      .service =
          ssc::v1::IssueECardRequest::descriptor()->file()->FindServiceByName(
              "ECardService"),
      .commands = {},
  };
}

}  // namespace ssc::sscctl
