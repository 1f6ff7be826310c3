#include "services/sscctl/proto_flags.h"

#include <cctype>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "google/protobuf/timestamp.pb.h"
#include "google/protobuf/util/time_util.h"

namespace ssc::sscctl {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

constexpr int kMaxDepth = 4;

bool IsTimestamp(const Descriptor* d) {
  return d->full_name() == "google.protobuf.Timestamp";
}

bool IsLeaf(const FieldDescriptor* f) {
  return f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE ||
         IsTimestamp(f->message_type());
}

// The prefix shared by all values, e.g. "LOSS_KIND_".
std::string EnumPrefix(const EnumDescriptor* e) {
  std::string prefix;
  if (e->value_count() > 0) {
    const std::string& first = e->value(0)->name();
    const size_t us = first.rfind('_');
    if (us != std::string::npos) prefix = first.substr(0, us + 1);
  }
  // Shrink until every value starts with it.
  for (int i = 0; i < e->value_count() && !prefix.empty(); ++i) {
    while (!prefix.empty() && !absl::StartsWith(e->value(i)->name(), prefix)) {
      prefix.pop_back();
      const size_t us = prefix.rfind('_');
      prefix = us == std::string::npos ? "" : prefix.substr(0, us + 1);
    }
  }
  return prefix;
}

const EnumValueDescriptor* ParseEnum(const EnumDescriptor* e,
                                     const std::string& text) {
  std::string upper = absl::AsciiStrToUpper(text);
  absl::StrReplaceAll({{"-", "_"}}, &upper);
  if (const auto* v = e->FindValueByName(upper)) return v;
  if (const auto* v = e->FindValueByName(EnumPrefix(e) + upper)) return v;
  int number = 0;
  if (absl::SimpleAtoi(text, &number)) return e->FindValueByNumber(number);
  return nullptr;
}

std::string TypeHint(const FieldDescriptor* f) {
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_ENUM:
      return "one of: " + EnumChoices(f->enum_type());
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return "RFC 3339 time, e.g. 2025-12-31T16:00:00Z";
    default:
      return f->cpp_type_name();
  }
}

absl::Status BadValue(const std::string& flag, const std::string& value,
                      const std::string& why) {
  return absl::InvalidArgumentError(
      absl::StrCat(flag, ": '", value, "' is not ", why));
}

}  // namespace

std::string EnumChoices(const EnumDescriptor* e) {
  const std::string prefix = EnumPrefix(e);
  std::vector<std::string> names;
  for (int i = 0; i < e->value_count(); ++i) {
    if (e->value(i)->number() == 0) continue;  // *_UNSPECIFIED
    names.push_back(
        absl::AsciiStrToLower(e->value(i)->name().substr(prefix.size())));
  }
  return absl::StrJoin(names, ", ");
}

RequestFlags::RequestFlags(CLI::App* cmd, const Descriptor* type,
                           const std::set<std::string>& skip) {
  std::vector<const FieldDescriptor*> prefix;
  Collect(type, prefix, skip);

  // Short names (the leaf field name) unless two leaves share one.
  std::map<std::string, int> uses;
  for (const auto& l : leaves_) ++uses[l->path.back()->name()];
  for (auto& l : leaves_) {
    std::string name = uses[l->path.back()->name()] > 1
                           ? absl::StrReplaceAll(l->dotted, {{".", "_"}})
                           : l->path.back()->name();
    absl::StrReplaceAll({{"_", "-"}}, &name);
    l->flag = "--" + name;
  }

  for (auto& l : leaves_) {
    const FieldDescriptor* f = l->path.back();
    const std::string help = absl::StrCat(l->dotted, " (", TypeHint(f), ")");
    if (f->is_repeated()) {
      l->option = cmd->add_option(l->flag, l->values, help + ", repeatable")
                      ->delimiter(',');
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_BOOL) {
      l->option = cmd->add_flag(l->flag, l->flag_value, help);
    } else {
      l->option = cmd->add_option(l->flag, l->values, help)->expected(1);
    }
  }

  // Fields of one oneof exclude each other (e.g. --application-id and
  // --card-number of a CardSelector).
  for (auto& a : leaves_) {
    for (auto& b : leaves_) {
      const auto* oa = a->path.back()->containing_oneof();
      if (a != b && oa != nullptr && oa == b->path.back()->containing_oneof() &&
          a->path.size() == b->path.size()) {
        a->option->excludes(b->option);
      }
    }
  }
}

void RequestFlags::Collect(const Descriptor* type,
                           std::vector<const FieldDescriptor*>& prefix,
                           const std::set<std::string>& skip) {
  for (int i = 0; i < type->field_count(); ++i) {
    const FieldDescriptor* f = type->field(i);
    if (prefix.empty() && skip.count(f->name()) > 0) continue;
    if (f->is_map()) continue;
    prefix.push_back(f);
    if (IsLeaf(f)) {
      auto leaf = std::make_unique<Leaf>();
      leaf->path = prefix;
      std::vector<std::string> names;
      for (const auto* p : prefix) names.push_back(p->name());
      leaf->dotted = absl::StrJoin(names, ".");
      leaves_.push_back(std::move(leaf));
    } else if (!f->is_repeated() &&
               static_cast<int>(prefix.size()) < kMaxDepth) {
      // Repeated messages cannot be given as flags; none of the requests has
      // one that an operator would type.
      Collect(f->message_type(), prefix, skip);
    }
    prefix.pop_back();
  }
}

absl::Status RequestFlags::Fill(Message* msg) const {
  for (const auto& l : leaves_) {
    if (l->option->count() == 0) continue;
    if (absl::Status s = SetLeaf(*l, msg); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status RequestFlags::SetLeaf(const Leaf& leaf, Message* msg) {
  for (size_t i = 0; i + 1 < leaf.path.size(); ++i) {
    msg = msg->GetReflection()->MutableMessage(msg, leaf.path[i]);
  }
  const FieldDescriptor* f = leaf.path.back();
  const Reflection* r = msg->GetReflection();

  if (f->cpp_type() == FieldDescriptor::CPPTYPE_BOOL) {
    if (f->is_repeated()) {
      for (const auto& v : leaf.values) {
        bool b = false;
        if (!absl::SimpleAtob(v, &b)) return BadValue(leaf.flag, v, "a bool");
        r->AddBool(msg, f, b);
      }
    } else {
      r->SetBool(msg, f, leaf.flag_value);
    }
    return absl::OkStatus();
  }

  for (const std::string& v : leaf.values) {
    const bool rep = f->is_repeated();
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        rep ? r->AddString(msg, f, v) : r->SetString(msg, f, v);
        break;
      case FieldDescriptor::CPPTYPE_INT32: {
        int32_t x;
        if (!absl::SimpleAtoi(v, &x)) return BadValue(leaf.flag, v, "an int32");
        rep ? r->AddInt32(msg, f, x) : r->SetInt32(msg, f, x);
        break;
      }
      case FieldDescriptor::CPPTYPE_INT64: {
        int64_t x;
        if (!absl::SimpleAtoi(v, &x)) return BadValue(leaf.flag, v, "an int64");
        rep ? r->AddInt64(msg, f, x) : r->SetInt64(msg, f, x);
        break;
      }
      case FieldDescriptor::CPPTYPE_UINT32: {
        uint32_t x;
        if (!absl::SimpleAtoi(v, &x)) return BadValue(leaf.flag, v, "a uint32");
        rep ? r->AddUInt32(msg, f, x) : r->SetUInt32(msg, f, x);
        break;
      }
      case FieldDescriptor::CPPTYPE_UINT64: {
        uint64_t x;
        if (!absl::SimpleAtoi(v, &x)) return BadValue(leaf.flag, v, "a uint64");
        rep ? r->AddUInt64(msg, f, x) : r->SetUInt64(msg, f, x);
        break;
      }
      case FieldDescriptor::CPPTYPE_DOUBLE: {
        double x;
        if (!absl::SimpleAtod(v, &x)) return BadValue(leaf.flag, v, "a number");
        rep ? r->AddDouble(msg, f, x) : r->SetDouble(msg, f, x);
        break;
      }
      case FieldDescriptor::CPPTYPE_FLOAT: {
        float x;
        if (!absl::SimpleAtof(v, &x)) return BadValue(leaf.flag, v, "a number");
        rep ? r->AddFloat(msg, f, x) : r->SetFloat(msg, f, x);
        break;
      }
      case FieldDescriptor::CPPTYPE_ENUM: {
        const EnumValueDescriptor* e = ParseEnum(f->enum_type(), v);
        if (e == nullptr) {
          return BadValue(leaf.flag, v,
                          "one of: " + EnumChoices(f->enum_type()));
        }
        rep ? r->AddEnum(msg, f, e) : r->SetEnum(msg, f, e);
        break;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE: {  // google.protobuf.Timestamp
        google::protobuf::Timestamp ts;
        if (!google::protobuf::util::TimeUtil::FromString(v, &ts)) {
          return BadValue(leaf.flag, v, "an RFC 3339 time");
        }
        Message* dst = rep ? r->AddMessage(msg, f) : r->MutableMessage(msg, f);
        dst->ParseFromString(ts.SerializeAsString());
        break;
      }
      case FieldDescriptor::CPPTYPE_BOOL:
        break;  // handled above
    }
  }
  return absl::OkStatus();
}

std::string RequestFlags::FlagFor(const std::string& path) const {
  for (const auto& l : leaves_) {
    if (l->dotted == path) return l->flag;
  }
  return "";
}

}  // namespace ssc::sscctl
