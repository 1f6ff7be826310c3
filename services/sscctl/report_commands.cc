// sscctl report ...: one command per method of ssc.v1.ReportService, named
// after the method (see ServiceCommands::commands).

#include "services/sscctl/rpc_command.h"
#include "ssc/v1/report.grpc.pb.h"

namespace ssc::sscctl {

ServiceCommands ReportCommands() {
  return {
      .name = "report",
      .help = "indicators for the county plan (ssc.v1.ReportService)",
      // Naming a generated message links report.pb.cc, whose descriptors the
      // commands find by reflection.
      .service = ssc::v1::GetIndicatorsRequest::descriptor()
                     ->file()
                     ->FindServiceByName("ReportService"),
      .commands = {},
  };
}

}  // namespace ssc::sscctl
