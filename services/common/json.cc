#include "services/common/json.h"

#include <cstdio>

namespace ssc::common {

void AppendJsonQuoted(std::string* out, std::string_view s) {
  out->push_back('"');
  // Runs of characters that need no escape are appended whole.
  auto plain = [](char c) {
    return c != '"' && c != '\\' && static_cast<unsigned char>(c) >= 0x20;
  };
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    while (j < s.size() && plain(s[j])) ++j;
    out->append(s.data() + i, j - i);
    if (j == s.size()) break;
    i = j + 1;
    const char c = s[j];
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      default: {
        char buf[8];  // the other control characters
        std::snprintf(buf, sizeof(buf), "\\u%04x",
                      static_cast<unsigned>(static_cast<unsigned char>(c)));
        *out += buf;
      }
    }
  }
  out->push_back('"');
}

std::string JsonQuote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  AppendJsonQuoted(&out, s);
  return out;
}

void JsonObject::Key(std::string_view key) {
  if (!out_.empty()) out_.push_back(',');
  AppendJsonQuoted(&out_, key);
  out_.push_back(':');
}

JsonObject& JsonObject::Str(std::string_view key, std::string_view value) {
  Key(key);
  AppendJsonQuoted(&out_, value);
  return *this;
}

JsonObject& JsonObject::Bool(std::string_view key, bool value) {
  Key(key);
  out_ += value ? "true" : "false";
  return *this;
}

JsonObject& JsonObject::Int(std::string_view key, int64_t value) {
  Key(key);
  out_ += std::to_string(value);
  return *this;
}

JsonObject& JsonObject::Raw(std::string_view key, std::string_view raw_json) {
  Key(key);
  out_.append(raw_json.data(), raw_json.size());
  return *this;
}

std::string JsonObject::Done() const { return "{" + out_ + "}"; }

}  // namespace ssc::common
