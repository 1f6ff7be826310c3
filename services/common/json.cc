#include "services/common/json.h"

#include <cstdint>
#include <cstdio>
#include <cstring>

namespace ssc::common {

namespace {

// Whether one of the 8 bytes of `w` needs an escape: a control character
// (< 0x20), '"' or '\\'. Exact (no false positives), so a word without one
// is copied as it is; bytes >= 0x80 (UTF-8) never match.
inline bool NeedsEscape(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  const uint64_t lt20 = (w - kOnes * 0x20) & ~w & kHigh;
  const uint64_t q = w ^ (kOnes * '"');
  const uint64_t bs = w ^ (kOnes * '\\');
  const uint64_t eq = ((q - kOnes) & ~q & kHigh) | ((bs - kOnes) & ~bs & kHigh);
  return (lt20 | eq) != 0;
}

inline bool Plain(char c) {
  return c != '"' && c != '\\' && static_cast<unsigned char>(c) >= 0x20;
}

// The length of the prefix of `s` that needs no escape.
size_t PlainPrefix(std::string_view s) {
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    if (NeedsEscape(w)) break;
  }
  while (i < s.size() && Plain(s[i])) ++i;
  return i;
}

}  // namespace

void AppendJsonQuoted(std::string* out, std::string_view s) {
  size_t j = PlainPrefix(s);
  if (j == s.size() && s.size() <= 62) {
    // The usual case: a short value with nothing to escape, one append.
    char buf[64];
    buf[0] = '"';
    std::memcpy(buf + 1, s.data(), s.size());
    buf[s.size() + 1] = '"';
    out->append(buf, s.size() + 2);
    return;
  }
  out->push_back('"');
  size_t i = 0;
  while (true) {
    // Runs of characters that need no escape are appended whole.
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
    j = i + PlainPrefix(s.substr(i));
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
