#include "services/sscctl/output.h"

#include <iostream>
#include <string>

#include "google/protobuf/timestamp.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace ssc::sscctl {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

std::string ScalarText(const Message& m, const FieldDescriptor* f, int index) {
  const Reflection* r = m.GetReflection();
  const bool rep = f->is_repeated();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      return rep ? r->GetRepeatedString(m, f, index) : r->GetString(m, f);
    case FieldDescriptor::CPPTYPE_INT32:
      return std::to_string(rep ? r->GetRepeatedInt32(m, f, index)
                                : r->GetInt32(m, f));
    case FieldDescriptor::CPPTYPE_INT64:
      return std::to_string(rep ? r->GetRepeatedInt64(m, f, index)
                                : r->GetInt64(m, f));
    case FieldDescriptor::CPPTYPE_UINT32:
      return std::to_string(rep ? r->GetRepeatedUInt32(m, f, index)
                                : r->GetUInt32(m, f));
    case FieldDescriptor::CPPTYPE_UINT64:
      return std::to_string(rep ? r->GetRepeatedUInt64(m, f, index)
                                : r->GetUInt64(m, f));
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return std::to_string(rep ? r->GetRepeatedDouble(m, f, index)
                                : r->GetDouble(m, f));
    case FieldDescriptor::CPPTYPE_FLOAT:
      return std::to_string(rep ? r->GetRepeatedFloat(m, f, index)
                                : r->GetFloat(m, f));
    case FieldDescriptor::CPPTYPE_BOOL:
      return (rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f))
                 ? "true"
                 : "false";
    case FieldDescriptor::CPPTYPE_ENUM:
      return (rep ? r->GetRepeatedEnum(m, f, index) : r->GetEnum(m, f))->name();
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  return "";
}

std::string TimestampText(const Message& m) {
  google::protobuf::Timestamp ts;
  ts.ParseFromString(m.SerializeAsString());
  return google::protobuf::util::TimeUtil::ToString(ts);
}

}  // namespace

void PrintText(const Message& m, std::ostream& out, int indent) {
  const std::string pad(indent * 2, ' ');
  std::vector<const FieldDescriptor*> fields;
  m.GetReflection()->ListFields(m, &fields);
  for (const FieldDescriptor* f : fields) {
    const Reflection* r = m.GetReflection();
    const int n = f->is_repeated() ? r->FieldSize(m, f) : 1;
    for (int i = 0; i < n; ++i) {
      if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
        out << pad << f->name() << ": " << ScalarText(m, f, i) << "\n";
        continue;
      }
      const Message& sub = f->is_repeated() ? r->GetRepeatedMessage(m, f, i)
                                            : r->GetMessage(m, f);
      if (sub.GetDescriptor()->full_name() == "google.protobuf.Timestamp") {
        out << pad << f->name() << ": " << TimestampText(sub) << "\n";
      } else {
        out << pad << f->name()
            << (f->is_repeated() ? " [" + std::to_string(i) + "]" : "")
            << ":\n";
        PrintText(sub, out, indent + 1);
      }
    }
  }
}

std::string ToJson(const Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  std::string s;
  if (!google::protobuf::util::MessageToJsonString(m, &s, o).ok()) {
    return "{}";
  }
  return s;
}

void Printer::PrintMessage(const Message& m) const {
  if (json_) {
    std::cout << ToJson(m) << std::endl;
  } else {
    PrintText(m, std::cout);
    std::cout.flush();
  }
}

std::string CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    case grpc::StatusCode::DO_NOT_USE:
      break;
  }
  return "CODE_" + std::to_string(static_cast<int>(code));
}

int Printer::PrintRpcError(const grpc::Status& status,
                           const FlagLookup& flag_for) const {
  google::rpc::Status details;
  if (status.error_details().empty() ||
      !details.ParseFromString(status.error_details())) {
    details.Clear();
  }
  details.set_code(status.error_code());
  details.set_message(status.error_message());

  std::cerr << "error: " << CodeName(status.error_code()) << ": "
            << status.error_message() << "\n";
  for (const auto& any : details.details()) {
    google::rpc::BadRequest bad;
    google::rpc::PreconditionFailure pre;
    if (any.UnpackTo(&bad)) {
      for (const auto& v : bad.field_violations()) {
        std::cerr << "  field: " << v.field();
        const std::string flag = flag_for ? flag_for(v.field()) : "";
        if (!flag.empty()) std::cerr << " (" << flag << ")";
        std::cerr << ": " << v.description() << "\n";
      }
    } else if (any.UnpackTo(&pre)) {
      for (const auto& v : pre.violations()) {
        std::cerr << "  precondition: " << v.type() << " " << v.subject()
                  << ": " << v.description() << "\n";
      }
    }
  }
  std::cerr.flush();
  if (json_) {
    std::string json;
    google::protobuf::util::JsonPrintOptions o;
    o.preserve_proto_field_names = true;
    if (!google::protobuf::util::MessageToJsonString(details, &json, o).ok()) {
      details.clear_details();  // a detail type this build does not know
      json = ToJson(details);
    }
    std::cout << json << std::endl;
  }
  return kExitRpcBase + static_cast<int>(status.error_code());
}

}  // namespace ssc::sscctl
