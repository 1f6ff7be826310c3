#include "storage/key_codec.h"

#include <cstring>

namespace ssc::storage {
namespace {

constexpr char kEscape = '\x00';
constexpr char kEscapedZero = '\xFF';
constexpr char kTerminator = '\x01';

}  // namespace

void PutFixed64BE(std::string* out, uint64_t v) {
  char buf[8];
  for (int i = 7; i >= 0; --i) {
    buf[i] = static_cast<char>(v & 0xFF);
    v >>= 8;
  }
  out->append(buf, 8);
}

uint64_t GetFixed64BE(std::string_view in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) {
    v = (v << 8) | static_cast<uint8_t>(in[i]);
  }
  return v;
}

KeyBuilder& KeyBuilder::U64(uint64_t v) & {
  PutFixed64BE(&key_, v);
  return *this;
}

KeyBuilder& KeyBuilder::I64(int64_t v) & {
  PutFixed64BE(&key_, static_cast<uint64_t>(v) ^ (uint64_t{1} << 63));
  return *this;
}

KeyBuilder& KeyBuilder::U32(uint32_t v) & {
  for (int shift = 24; shift >= 0; shift -= 8) {
    key_.push_back(static_cast<char>((v >> shift) & 0xFF));
  }
  return *this;
}

void AppendKeyString(std::string* out, std::string_view s) {
  // One encoder for both: the bytes are written in place by WriteKeyString.
  const size_t at = out->size();
  out->resize(at + KeyStringSize(s));
  WriteKeyString(out->data() + at, s);
}

size_t KeyStringSize(std::string_view s) {
  size_t n = s.size() + 2;  // each escape byte gets one more, and the end
  const char* p = s.data();
  const char* const end = p + s.size();
  while (p != end) {
    p = static_cast<const char*>(std::memchr(p, kEscape, end - p));
    if (p == nullptr) break;
    ++n;
    ++p;
  }
  return n;
}

char* WriteKeyString(char* out, std::string_view s) {
  while (!s.empty()) {
    const size_t at = s.find(kEscape);
    if (at == std::string_view::npos) {
      std::memcpy(out, s.data(), s.size());
      out += s.size();
      break;
    }
    std::memcpy(out, s.data(), at + 1);
    out += at + 1;
    *out++ = kEscapedZero;
    s.remove_prefix(at + 1);
  }
  *out++ = kEscape;
  *out++ = kTerminator;
  return out;
}

KeyBuilder& KeyBuilder::Str(std::string_view s) & {
  AppendKeyString(&key_, s);
  return *this;
}

KeyBuilder& KeyBuilder::Raw(std::string_view s) & {
  key_.append(s);
  return *this;
}

std::optional<uint64_t> KeyReader::U64() {
  if (rest_.size() < 8) return std::nullopt;
  uint64_t v = GetFixed64BE(rest_);
  rest_.remove_prefix(8);
  return v;
}

std::optional<int64_t> KeyReader::I64() {
  std::optional<uint64_t> u = U64();
  if (!u) return std::nullopt;
  return static_cast<int64_t>(*u ^ (uint64_t{1} << 63));
}

std::optional<uint32_t> KeyReader::U32() {
  if (rest_.size() < 4) return std::nullopt;
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(rest_[i]);
  rest_.remove_prefix(4);
  return v;
}

std::optional<std::string> KeyReader::Str() {
  std::string out;
  for (size_t i = 0; i < rest_.size(); ++i) {
    char c = rest_[i];
    if (c != kEscape) {
      out.push_back(c);
      continue;
    }
    if (i + 1 >= rest_.size()) return std::nullopt;
    char next = rest_[i + 1];
    if (next == kEscapedZero) {
      out.push_back(kEscape);
      ++i;
    } else if (next == kTerminator) {
      rest_.remove_prefix(i + 2);
      return out;
    } else {
      return std::nullopt;
    }
  }
  return std::nullopt;  // no terminator
}

std::string PrefixSuccessor(std::string_view prefix) {
  std::string s(prefix);
  while (!s.empty()) {
    unsigned char last = static_cast<unsigned char>(s.back());
    if (last != 0xFF) {
      s.back() = static_cast<char>(last + 1);
      return s;
    }
    s.pop_back();
  }
  return s;
}

}  // namespace ssc::storage
