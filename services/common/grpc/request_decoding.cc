#include "services/common/grpc/request_decoding.h"

#include <grpcpp/support/server_interceptor.h>

#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/stubs/logging.h"
#include "services/common/errors.h"
#include "services/common/grpc/grpc_status.h"

namespace ssc::grpc_common {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

// The full name of the string field protobuf last refused on this thread
// ("ssc.v1.PersonInfo.name").
thread_local std::optional<std::string> refused_field;

google::protobuf::LogHandler* previous_handler = nullptr;

// Protobuf's report is "String field 'ssc.v1.X.y' contains invalid UTF-8
// data when parsing a protocol buffer. ...". Captured, not printed: a client
// could otherwise fill the log; the RPC log line records the refusal.
void CaptureUtf8Reports(google::protobuf::LogLevel level, const char* filename,
                        int line, const std::string& message) {
  constexpr std::string_view kPrefix = "String field '";
  if (std::string_view(message).starts_with(kPrefix) &&
      message.find("invalid UTF-8 data when parsing") != std::string::npos) {
    const size_t end = message.find('\'', kPrefix.size());
    if (end != std::string::npos) {
      refused_field = message.substr(kPrefix.size(), end - kPrefix.size());
      return;
    }
  }
  if (previous_handler != nullptr) {
    previous_handler(level, filename, line, message);
  }
}

void InstallCapture() {
  static std::once_flag once;
  std::call_once(once, [] {
    previous_handler = google::protobuf::SetLogHandler(&CaptureUtf8Reports);
  });
}

bool FindPath(const Descriptor* d, std::string_view type, std::string_view leaf,
              int depth, std::vector<const Descriptor*>& seen,
              std::string* path) {
  if (d->full_name() == type && d->FindFieldByName(std::string(leaf))) {
    *path = std::string(leaf);
    return true;
  }
  if (depth == 0) return false;
  for (const Descriptor* s : seen) {
    if (s == d) return false;
  }
  seen.push_back(d);
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->type() != FieldDescriptor::TYPE_MESSAGE) continue;
    std::string rest;
    if (FindPath(f->message_type(), type, leaf, depth - 1, seen, &rest)) {
      *path = absl::StrCat(f->name(), ".", rest);
      return true;
    }
  }
  seen.pop_back();
  return false;
}

absl::Status RefusedFieldError(const Descriptor* request,
                               const std::string& full_name) {
  return common::InvalidField(
      FieldPathIn(request, full_name),
      "is not valid UTF-8 (string fields must be UTF-8 text)");
}

const Descriptor* RequestTypeOf(const char* method) {
  if (method == nullptr) return nullptr;
  // "/ssc.v1.CardService/ApplyCard"
  std::string_view m(method);
  if (m.starts_with('/')) m.remove_prefix(1);
  const size_t slash = m.rfind('/');
  if (slash == std::string_view::npos) return nullptr;
  const google::protobuf::ServiceDescriptor* s =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          std::string(m.substr(0, slash)));
  if (s == nullptr) return nullptr;
  const google::protobuf::MethodDescriptor* md =
      s->FindMethodByName(std::string(m.substr(slash + 1)));
  return md == nullptr ? nullptr : md->input_type();
}

// Answers a unary request that could not be decoded with INVALID_ARGUMENT.
class DecodeErrorInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit DecodeErrorInterceptor(grpc::experimental::ServerRpcInfo* info)
      : info_(info) {}

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::POST_RECV_MESSAGE)) {
      if (methods->GetRecvMessage() != nullptr) {
        refused_field.reset();  // decoded: nothing of an earlier call lingers
      } else if (info_->type() ==
                     grpc::experimental::ServerRpcInfo::Type::UNARY ||
                 info_->type() == grpc::experimental::ServerRpcInfo::Type::
                                      SERVER_STREAMING) {
        // The request was decoded before the handler (which never ran).
        const Descriptor* request = RequestTypeOf(info_->method());
        if (refused_field.has_value() && request != nullptr) {
          refusal_ = RefusedFieldError(request, *refused_field);
        } else {
          refusal_ = absl::InvalidArgumentError(
              "the request cannot be decoded as the method's request message");
        }
        refused_field.reset();
      }
    }
    if (refusal_.has_value() &&
        methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_STATUS) &&
        methods->GetSendStatus().error_code() == grpc::StatusCode::INTERNAL) {
      methods->ModifySendStatus(ToGrpcStatus(*refusal_));
    }
    methods->Proceed();
  }

 private:
  grpc::experimental::ServerRpcInfo* info_;
  std::optional<absl::Status> refusal_;
};

class DecodeErrorInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new DecodeErrorInterceptor(info);
  }
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeDecodeErrorInterceptor() {
  InstallCapture();
  return std::make_unique<DecodeErrorInterceptorFactory>();
}

absl::Status TakeDecodeError(const Descriptor* request) {
  if (!refused_field.has_value()) return absl::OkStatus();
  const std::string full_name = *std::move(refused_field);
  refused_field.reset();
  return RefusedFieldError(request, full_name);
}

std::string FieldPathIn(const Descriptor* request, std::string_view full_name) {
  const size_t dot = full_name.rfind('.');
  if (request == nullptr || dot == std::string_view::npos) {
    return std::string(full_name);
  }
  std::vector<const Descriptor*> seen;
  std::string path;
  if (FindPath(request, full_name.substr(0, dot), full_name.substr(dot + 1), 8,
               seen, &path)) {
    return path;
  }
  return std::string(full_name);
}

}  // namespace ssc::grpc_common
