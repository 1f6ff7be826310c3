// sscctl health: the standard grpc.health.v1.Health/Check. The request and
// response are tiny, so they are encoded by hand instead of compiling
// health.proto: HealthCheckRequest{string service = 1},
// HealthCheckResponse{ServingStatus status = 1}.

#include <future>
#include <iostream>
#include <memory>
#include <string>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/unknown_field_set.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"
#include "services/sscctl/rpc_command.h"

namespace ssc::sscctl {
namespace {

constexpr char kCheckMethod[] = "/grpc.health.v1.Health/Check";

std::string StatusName(uint64_t s) {
  switch (s) {
    case 0:
      return "UNKNOWN";
    case 1:
      return "SERVING";
    case 2:
      return "NOT_SERVING";
    case 3:
      return "SERVICE_UNKNOWN";
    default:
      return "STATUS_" + std::to_string(s);
  }
}

class HealthRunnable final : public Runnable {
 public:
  explicit HealthRunnable(CLI::App& parent) {
    app_ = parent.add_subcommand(
        "health",
        "is sscd serving? (grpc.health.v1.Health/Check); exit 1 if not");
    app_->fallthrough();
    app_->add_option("--service", service_,
                     "service to ask about; empty = the whole server");
  }

  CLI::App* app() const override { return app_; }

  int Run(const GlobalOptions& global) override {
    const Printer printer(global.json);
    auto channel = OpenChannel(global.connection);
    if (!channel.ok()) {
      std::cerr << "error: " << channel.status().message() << "\n";
      return kExitUsage;
    }
    std::string request;
    if (!service_.empty()) {
      google::protobuf::io::StringOutputStream raw(&request);
      google::protobuf::io::CodedOutputStream out(&raw);
      out.WriteTag(10);  // field 1, length-delimited
      out.WriteVarint32(static_cast<uint32_t>(service_.size()));
      out.WriteString(service_);
    }
    grpc::Slice slice(request);
    grpc::ByteBuffer req(&slice, 1);
    grpc::ByteBuffer resp;
    auto ctx = NewCallContext(global.connection);
    grpc::GenericStub stub(*channel);
    std::promise<grpc::Status> done;
    stub.UnaryCall(ctx.get(), kCheckMethod, grpc::StubOptions(), &req, &resp,
                   [&done](grpc::Status s) { done.set_value(std::move(s)); });
    const grpc::Status status = done.get_future().get();
    if (!status.ok()) return printer.PrintRpcError(status);

    std::vector<grpc::Slice> slices;
    std::string bytes;
    if (resp.Dump(&slices).ok()) {
      for (const auto& s : slices) {
        bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
    }
    google::protobuf::UnknownFieldSet fields;
    fields.ParseFromString(bytes);
    uint64_t serving = 0;
    for (int i = 0; i < fields.field_count(); ++i) {
      if (fields.field(i).number() == 1 &&
          fields.field(i).type() ==
              google::protobuf::UnknownField::TYPE_VARINT) {
        serving = fields.field(i).varint();
      }
    }
    const std::string name = StatusName(serving);
    if (printer.json()) {
      std::cout << "{\"status\":\"" << name << "\"}" << std::endl;
    } else {
      std::cout << "status: " << name << std::endl;
    }
    return serving == 1 ? kExitOk : kExitCheckFailed;
  }

 private:
  CLI::App* app_ = nullptr;
  std::string service_;
};

}  // namespace

std::unique_ptr<Runnable> RegisterHealth(CLI::App& parent) {
  return std::make_unique<HealthRunnable>(parent);
}

}  // namespace ssc::sscctl
