#pragma once

// Minimal JSON output for event details and log lines: string quoting and a
// flat object builder. Reading JSON is not needed on these paths.
// Not thread-safe (a JsonObject is built on one thread).

#include <cstdint>
#include <string>
#include <string_view>

namespace ssc::common {

// `s` as a JSON string literal, quotes included; control characters escaped.
std::string JsonQuote(std::string_view s);
void AppendJsonQuoted(std::string* out, std::string_view s);

// A flat JSON object: {"key":value,...} in insertion order.
class JsonObject {
 public:
  JsonObject& Str(std::string_view key, std::string_view value);
  JsonObject& Bool(std::string_view key, bool value);
  JsonObject& Int(std::string_view key, int64_t value);
  // `raw_json` must already be valid JSON.
  JsonObject& Raw(std::string_view key, std::string_view raw_json);
  bool empty() const { return out_.empty(); }
  std::string Done() const;

 private:
  void Key(std::string_view key);
  std::string out_;
};

}  // namespace ssc::common
