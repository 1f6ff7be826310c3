#include "services/sscctl/rpc_command.h"

#include <cctype>
#include <cstdlib>
#include <future>
#include <iostream>

#include "google/protobuf/dynamic_message.h"
#include "grpcpp/completion_queue.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "services/sscctl/proto_flags.h"

namespace ssc::sscctl {
namespace {

// A wrong command table is a programming error: stop at once, loudly.
void Require(bool ok, const std::string& what) {
  if (!ok) {
    std::cerr << "sscctl: internal error: " << what << "\n";
    std::abort();
  }
}

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::MethodDescriptor;

constexpr char kRequestIdField[] = "request_id";

bool HasRequestId(const google::protobuf::Descriptor* d) {
  const FieldDescriptor* f = d->FindFieldByName(kRequestIdField);
  return f != nullptr && f->cpp_type() == FieldDescriptor::CPPTYPE_STRING &&
         !f->is_repeated();
}

// One RPC subcommand.
class RpcRunnable final : public Runnable {
 public:
  RpcRunnable(CLI::App* parent, const MethodDescriptor* method,
              const RpcCommand& spec)
      : method_(method),
        full_method_("/" + method->service()->full_name() + "/" +
                     method->name()),
        check_(spec.check) {
    const std::string where = "[" + method->full_name() + "]";
    app_ = parent->add_subcommand(
        spec.name, spec.help.empty() ? where : spec.help + "  " + where);
    app_->fallthrough();
    flags_ = std::make_unique<RequestFlags>(
        app_, method->input_type(), std::set<std::string>{kRequestIdField});
  }

  CLI::App* app() const override { return app_; }

  int Run(const GlobalOptions& global) override {
    const Printer printer(global.json);
    auto channel = OpenChannel(global.connection);
    if (!channel.ok()) {
      std::cerr << "error: " << channel.status().message() << "\n";
      return kExitUsage;
    }
    const Message* proto =
        google::protobuf::MessageFactory::generated_factory()->GetPrototype(
            method_->input_type());
    const Message* out_proto =
        google::protobuf::MessageFactory::generated_factory()->GetPrototype(
            method_->output_type());
    Require(proto != nullptr && out_proto != nullptr,
            method_->full_name() + " types are not linked in");
    std::unique_ptr<Message> request(proto->New());
    std::unique_ptr<Message> response(out_proto->New());
    if (absl::Status s = flags_->Fill(request.get()); !s.ok()) {
      std::cerr << "error: " << s.message() << "\n";
      return kExitUsage;
    }
    if (HasRequestId(method_->input_type())) {
      const std::string id =
          global.request_id.empty() ? NewRequestId() : global.request_id;
      request->GetReflection()->SetString(
          request.get(),
          method_->input_type()->FindFieldByName(kRequestIdField), id);
      // On stderr so that --json output stays one JSON document; a retry
      // with the same --request-id is answered without a second effect.
      std::cerr << "request_id: " << id << "\n";
    }
    auto ctx = NewCallContext(global.connection);
    const auto flag_for = [this](const std::string& f) {
      return flags_->FlagFor(f);
    };
    if (method_->server_streaming()) {
      // Each message as it arrives (--json: one JSON object per line).
      int rc = kExitOk;
      const grpc::Status status =
          CallServerStreaming(**channel, *ctx, full_method_, *request,
                              response.get(), [&](const Message& m) {
                                printer.PrintMessage(m);
                                if (check_ && rc == kExitOk) rc = check_(m);
                              });
      if (!status.ok()) return printer.PrintRpcError(status, flag_for);
      return rc;
    }
    const grpc::Status status =
        CallUnary(**channel, *ctx, full_method_, *request, response.get());
    if (!status.ok()) return printer.PrintRpcError(status, flag_for);
    printer.PrintMessage(*response);
    return check_ ? check_(*response) : kExitOk;
  }

 private:
  const MethodDescriptor* method_;
  const std::string full_method_;
  ResponseCheck check_;
  CLI::App* app_ = nullptr;
  std::unique_ptr<RequestFlags> flags_;
};

}  // namespace

void RegisterService(CLI::App& parent, const ServiceCommands& group,
                     std::vector<std::unique_ptr<Runnable>>& out) {
  Require(group.service != nullptr, group.name + ": no service descriptor");
  CLI::App* sub = parent.add_subcommand(group.name, group.help);
  sub->fallthrough();
  sub->require_subcommand(1);
  std::vector<RpcCommand> commands = group.commands;
  if (commands.empty()) {
    for (int i = 0; i < group.service->method_count(); ++i) {
      const MethodDescriptor* m = group.service->method(i);
      if (m->client_streaming()) continue;
      commands.push_back({KebabCase(m->name()), m->name(), ""});
    }
  }
  for (const RpcCommand& c : commands) {
    const MethodDescriptor* m = group.service->FindMethodByName(c.method);
    Require(m != nullptr, group.service->full_name() + " has no " + c.method);
    Require(!m->client_streaming(),
            c.method + ": client-streaming methods have no command form");
    out.push_back(std::make_unique<RpcRunnable>(sub, m, c));
  }
}

std::string KebabCase(const std::string& method) {
  std::string out;
  for (size_t i = 0; i < method.size(); ++i) {
    const char c = method[i];
    if (std::isupper(static_cast<unsigned char>(c)) && i > 0) {
      const bool after_lower =
          std::islower(static_cast<unsigned char>(method[i - 1]));
      // "ECard": a capital followed by a capital+lower starts a word only
      // after a lower-case letter, so acronym-like prefixes stay together.
      if (after_lower) out.push_back('-');
    }
    out.push_back(
        static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return out;
}

grpc::Status CallUnary(grpc::Channel& channel, grpc::ClientContext& ctx,
                       const std::string& full_method, const Message& request,
                       Message* response) {
  grpc::TemplatedGenericStub<Message, Message> stub(
      std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {}));
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, full_method, grpc::StubOptions(), &request, response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  return done.get_future().get();
}

grpc::Status CallServerStreaming(
    grpc::Channel& channel, grpc::ClientContext& ctx,
    const std::string& full_method, const Message& request, Message* scratch,
    const std::function<void(const Message&)>& on_message) {
  grpc::TemplatedGenericStub<Message, Message> stub(
      std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {}));
  grpc::CompletionQueue cq;
  // One operation at a time, so every tag is this one; `ok` says whether it
  // succeeded.
  void* const tag = &cq;
  const auto wait = [&cq]() {
    void* got = nullptr;
    bool ok = false;
    return cq.Next(&got, &ok) && ok;
  };
  auto call = stub.PrepareCall(&ctx, full_method, &cq);
  call->StartCall(tag);
  grpc::Status status;
  if (wait()) {
    call->WriteLast(request, grpc::WriteOptions(), tag);
    if (wait()) {
      for (;;) {
        call->Read(scratch, tag);
        if (!wait()) break;  // the server finished the stream
        on_message(*scratch);
        scratch->Clear();
      }
    }
  }
  call->Finish(&status, tag);
  wait();
  cq.Shutdown();
  void* ignored_tag;
  bool ignored_ok;
  while (cq.Next(&ignored_tag, &ignored_ok)) {
  }
  return status;
}

}  // namespace ssc::sscctl
