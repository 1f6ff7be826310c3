#include "tests/e2e/sscd_harness.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "google/protobuf/util/json_util.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"

namespace ssc::e2e {
namespace {

// Polls while waiting for sscd: at most kPolls times, kPollInterval apart.
// The interval only paces the polling; no assertion depends on it.
constexpr int kPolls = 600;
constexpr auto kPollInterval = std::chrono::milliseconds(50);

}  // namespace

std::string MakeTempDir(const std::string& tag) {
  std::string templ = testing::TempDir() + "/ssc-e2e-" + tag + "-XXXXXX";
  char* made = mkdtemp(templ.data());
  return made == nullptr ? "" : std::string(made);
}

void RemoveTempDirUnlessFailed(const std::string& dir) {
  if (dir.empty()) return;
  if (testing::Test::HasFailure()) {
    std::fprintf(stderr, "kept %s (sscd logs and data) for inspection\n",
                 dir.c_str());
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

std::string MakeCerts(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return "cannot create " + dir + ": " + ec.message();
  RunResult r = Run({"/bin/sh", SSC_MAKE_CERTS, dir}, dir);
  if (r.exit_code != 0) return "make-certs.sh failed: " + r.out + r.err;
  return "";
}

Sscd::Sscd(std::string data_dir, std::string certs_dir, std::string work_dir)
    : data_dir_(std::move(data_dir)),
      certs_dir_(std::move(certs_dir)),
      work_dir_(std::move(work_dir)) {}

Sscd::~Sscd() = default;  // Child SIGKILLs a server still running

std::string Sscd::log() const { return ReadFileOrEmpty(log_path_); }

std::string Sscd::Start() {
  log_path_ = work_dir_ + "/sscd-" + std::to_string(++starts_) + ".log";
  std::vector<std::string> argv = {
      SSC_SSCD_BIN,
      "--listen",
      "127.0.0.1:0",
      "--data-dir",
      data_dir_,
      "--tls-cert",
      certs_dir_ + "/server.crt",
      "--tls-key",
      certs_dir_ + "/server.key",
      "--tls-client-ca",
      certs_dir_ + "/ca.crt",
      "--drain-seconds",
      "5",
  };
  argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
  if (!child_.Start(argv, log_path_)) return "cannot start " + argv[0];

  // sscd logs "sscd: listening on 127.0.0.1:<port> (mutual TLS), ...".
  const std::regex listening(R"(listening on 127\.0\.0\.1:([0-9]+))");
  port_ = 0;
  for (int i = 0; i < kPolls && port_ == 0; ++i) {
    std::smatch m;
    const std::string text = log();
    if (std::regex_search(text, m, listening)) {
      port_ = std::stoi(m[1]);
      break;
    }
    int status = 0;
    if (child_.TryWait(&status)) {
      return "sscd exited with " + std::to_string(status) + ":\n" + text;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  if (port_ == 0) return "sscd did not report its port:\n" + log();

  for (int i = 0; i < kPolls; ++i) {
    RunResult h = Ctl("admin", {"health"});
    if (h.exit_code == 0 && h.out.find("SERVING") != std::string::npos) {
      return "";
    }
    int status = 0;
    if (child_.TryWait(&status)) {
      return "sscd exited with " + std::to_string(status) + ":\n" + log();
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  return "sscd never became SERVING:\n" + log();
}

int Sscd::Stop() {
  child_.Signal(SIGTERM);
  return child_.Wait();
}

void Sscd::Crash() {
  child_.Signal(SIGKILL);
  child_.Wait();
}

RunResult Sscd::Ctl(const std::string& role,
                    const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {
      SSC_SSCCTL_BIN,
      "--addr",
      addr(),
      "--ca",
      certs_dir_ + "/ca.crt",
      "--cert",
      certs_dir_ + "/" + role + ".crt",
      "--key",
      certs_dir_ + "/" + role + ".key",
      "--operator",
      "op-e2e-01",
      "--deadline",
      "20",
      "--json",
  };
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv, work_dir_);
}

std::shared_ptr<grpc::Channel> Sscd::Channel(const std::string& role) const {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadFileOrEmpty(certs_dir_ + "/ca.crt");
  ssl.pem_cert_chain = ReadFileOrEmpty(certs_dir_ + "/" + role + ".crt");
  ssl.pem_private_key = ReadFileOrEmpty(certs_dir_ + "/" + role + ".key");
  grpc::ChannelArguments args;
  // A new connection per channel: a restarted server must not be reached
  // through a subchannel of the old one.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(addr(), grpc::SslCredentials(ssl), args);
}

bool ParseJson(const std::string& json, google::protobuf::Message* msg,
               std::string* error) {
  google::protobuf::util::JsonParseOptions o;
  o.ignore_unknown_fields = false;
  auto s = google::protobuf::util::JsonStringToMessage(json, msg, o);
  if (!s.ok()) {
    *error = std::string(s.message()) + " in: " + json;
    return false;
  }
  return true;
}

}  // namespace ssc::e2e
