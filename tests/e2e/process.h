#pragma once

// Child processes for the end-to-end tests: run a program to completion and
// capture its output, or start one in the background (sscd) and signal it.
// Not thread-safe per object.

#include <sys/types.h>

#include <string>
#include <vector>

namespace ssc::e2e {

struct RunResult {
  int exit_code = -1;  // -1: killed by a signal or not started
  std::string out;
  std::string err;
};

// Runs `argv` (argv[0] is a path) to completion; stdout and stderr are
// captured through temporary files in `scratch_dir`.
RunResult Run(const std::vector<std::string>& argv,
              const std::string& scratch_dir);

// A background child with stdout and stderr appended to `log_path`.
class Child {
 public:
  Child() = default;
  ~Child();  // SIGKILLs and reaps a child still running
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  bool Start(const std::vector<std::string>& argv, const std::string& log_path);
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  void Signal(int sig) const;
  // Waits for the child to end. Returns its exit code, or 128 + signal
  // number when a signal ended it.
  int Wait();
  // Non-blocking: true (and *status as in Wait) if the child has ended.
  bool TryWait(int* status);

 private:
  pid_t pid_ = -1;
};

std::string ReadFileOrEmpty(const std::string& path);

}  // namespace ssc::e2e
