#pragma once

// Order-preserving key encoding. Fixed-width integers are big-endian so that
// byte order equals numeric order; strings are escaped (0x00 -> 0x00 0xFF) and
// terminated by 0x00 0x01, so a composite key of (string, string, ...) sorts
// component by component and no component is a prefix of another.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ssc::storage {

class KeyBuilder {
 public:
  // Room for a typical key: one allocation per key built.
  KeyBuilder() { key_.reserve(64); }
  KeyBuilder& U64(uint64_t v) &;
  KeyBuilder& I64(int64_t v) &;  // sign bit flipped: negative sorts first
  KeyBuilder& U32(uint32_t v) &;
  KeyBuilder& Str(std::string_view s) &;
  // Raw bytes with no terminator: only as the last component.
  KeyBuilder& Raw(std::string_view s) &;
  // The same on a temporary, which stays one: a chain such as
  // KeyBuilder().Str(a).U64(b).Build() moves the key out instead of
  // copying it.
  KeyBuilder&& U64(uint64_t v) && { return std::move(U64(v)); }
  KeyBuilder&& I64(int64_t v) && { return std::move(I64(v)); }
  KeyBuilder&& U32(uint32_t v) && { return std::move(U32(v)); }
  KeyBuilder&& Str(std::string_view s) && { return std::move(Str(s)); }
  KeyBuilder&& Raw(std::string_view s) && { return std::move(Raw(s)); }
  const std::string& key() const { return key_; }
  std::string Build() && { return std::move(key_); }
  std::string Build() const& { return key_; }

 private:
  std::string key_;
};

// Reads components back in the order they were written.
class KeyReader {
 public:
  explicit KeyReader(std::string_view key) : rest_(key) {}
  std::optional<uint64_t> U64();
  std::optional<int64_t> I64();
  std::optional<uint32_t> U32();
  std::optional<std::string> Str();
  std::string_view Rest() const { return rest_; }
  bool done() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

// The smallest key greater than every key that starts with `prefix`;
// empty when there is none (prefix of all 0xFF).
std::string PrefixSuccessor(std::string_view prefix);

void PutFixed64BE(std::string* out, uint64_t v);
// Appends `s` as KeyBuilder::Str does (escaped, terminated): for building
// keys in a reused buffer.
void AppendKeyString(std::string* out, std::string_view s);
// The same bytes written to `out`, which has room for KeyStringSize(s) of
// them; returns the end of what was written. For keys built in place (the
// store writes its generated keys straight into its arena).
size_t KeyStringSize(std::string_view s);
char* WriteKeyString(char* out, std::string_view s);
uint64_t GetFixed64BE(std::string_view in);  // requires in.size() >= 8

}  // namespace ssc::storage
