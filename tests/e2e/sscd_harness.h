#pragma once

// Runs the real sscd binary for end-to-end tests: TLS material from
// deploy/make-certs.sh, a listen port picked by sscd (port 0, read back from
// its log), readiness through `sscctl health`, and the real sscctl binary to
// talk to it. Paths of the binaries come from CMake (generator expressions).
// Not thread-safe, except the read-only accessors.

#include <memory>
#include <string>
#include <vector>

#include "google/protobuf/message.h"
#include "grpcpp/channel.h"
#include "tests/e2e/process.h"

namespace ssc::e2e {

// A fresh directory under the test's temporary directory.
std::string MakeTempDir(const std::string& tag);

// Deletes `dir` if the current test passed; otherwise keeps it (logs, data)
// and says where it is.
void RemoveTempDirUnlessFailed(const std::string& dir);

// Runs deploy/make-certs.sh into `dir`; empty string on success, else the
// script's output.
std::string MakeCerts(const std::string& dir);

class Sscd {
 public:
  Sscd(std::string data_dir, std::string certs_dir, std::string work_dir);
  ~Sscd();

  // Starts sscd with mutual TLS on 127.0.0.1 and a free port, and waits
  // (bounded number of polls) until `sscctl health` says SERVING. Returns an
  // error description, or empty on success.
  std::string Start();
  // Flags added to sscd's command line from the next Start() on (e.g.
  // {"--services", "card,audit,report"}).
  void AddArgs(const std::vector<std::string>& args) {
    extra_args_.insert(extra_args_.end(), args.begin(), args.end());
  }
  // SIGTERM and wait: the exit code.
  int Stop();
  // SIGKILL and wait (simulated crash).
  void Crash();

  int port() const { return port_; }
  std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& certs_dir() const { return certs_dir_; }
  std::string log() const;

  // Runs sscctl as `role` (client certificate <role>.crt) with --json.
  RunResult Ctl(const std::string& role,
                const std::vector<std::string>& args) const;

  // A channel with the client certificate of `role`.
  std::shared_ptr<grpc::Channel> Channel(const std::string& role) const;

 private:
  std::string data_dir_, certs_dir_, work_dir_;
  Child child_;
  int port_ = 0;
  int starts_ = 0;
  std::string log_path_;
  std::vector<std::string> extra_args_;
};

// Parses sscctl --json output into `msg`; false (and the reason in *error)
// when it is not valid JSON for that message.
bool ParseJson(const std::string& json, google::protobuf::Message* msg,
               std::string* error);

}  // namespace ssc::e2e
