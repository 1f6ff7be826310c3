#pragma once

// sscctl's operations commands: `import` (streams a register file to
// AdminService.Import with a progress bar, writes the reject file, resumes
// after a crash) and `backup create|list|verify|restore`. Compiled into the
// sscctl executable (services/ops/CMakeLists.txt); main.cc registers them.

#include <memory>
#include <vector>

#include "CLI/CLI.hpp"
#include "services/sscctl/rpc_command.h"

namespace ssc::ops {

void RegisterOpsCommands(CLI::App& app,
                         std::vector<std::unique_ptr<sscctl::Runnable>>& out);

}  // namespace ssc::ops
