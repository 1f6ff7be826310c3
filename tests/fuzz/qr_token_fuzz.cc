// Fuzz target: the QR code decoder (services/ecard/qr_token.h) on arbitrary
// text. Besides not crashing, it checks what the decoder promises:
//   - base64url decoding is strict: whatever decodes re-encodes to the same
//     text;
//   - a token that splits is within kMaxTokenChars, names a well-formed key
//     id and carries a 64-byte signature;
//   - claims that parse survive a round trip: encoded and signed again, they
//     split and parse to the same values, and the signature verifies.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "services/ecard/qr_token.h"

namespace ssc::ecard {
namespace {

[[noreturn]] void Fail(const char* what, std::string_view input) {
  std::fprintf(stderr, "qr_token_fuzz: %s for input of %zu bytes\n", what,
               input.size());
  std::abort();
}

const EcKey& Key() {
  static const EcKey* key = [] {
    auto k = EcKey::Generate();
    if (!k.ok()) std::abort();
    return k->release();
  }();
  return *key;
}

bool SameClaims(const QrClaims& a, const QrClaims& b) {
  return a.ecard_id == b.ecard_id && a.nonce == b.nonce &&
         a.issued_at == b.issued_at && a.expires_at == b.expires_at &&
         a.business_type == b.business_type;
}

void CheckBase64(std::string_view text) {
  std::optional<std::string> decoded = Base64UrlDecode(text);
  if (decoded.has_value() && Base64UrlEncode(*decoded) != text) {
    Fail("base64url decoding is not strict", text);
  }
}

void CheckClaims(std::string_view kid, std::string_view payload_json,
                 std::string_view input) {
  std::optional<QrClaims> claims = ParseClaims(payload_json);
  if (!claims.has_value()) return;
  absl::StatusOr<std::string> again = EncodeToken(kid, *claims, Key());
  if (!again.ok()) return;  // a claim the encoder refuses (e.g. too long)
  if (again->size() > kMaxTokenChars) Fail("encoded token too long", input);
  std::optional<SplitToken> split = Split(*again);
  if (!split.has_value()) Fail("re-encoded token does not split", input);
  std::optional<QrClaims> reparsed = ParseClaims(split->payload_json);
  if (!reparsed.has_value() || !SameClaims(*claims, *reparsed)) {
    Fail("claims differ after a round trip", input);
  }
  if (!Key().Verify(split->signing_input, split->signature)) {
    Fail("own signature does not verify", input);
  }
}

}  // namespace
}  // namespace ssc::ecard

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ssc::ecard;  // NOLINT
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  CheckBase64(input);
  (void)ParseFlatJson(input);
  std::optional<SplitToken> split = Split(input);
  if (split.has_value()) {
    if (input.size() > kMaxTokenChars) Fail("long token split", input);
    if (split->kid.empty() || split->kid.size() > kMaxKeyIdChars) {
      Fail("bad key id accepted", input);
    }
    if (split->signature.size() != 64) Fail("bad signature size", input);
    (void)Key().Verify(split->signing_input, split->signature);
    CheckClaims(split->kid, split->payload_json, input);
  }
  // The input as a claims document (the signing round trip is left to the
  // claims of tokens that split: signing costs more than all the rest).
  (void)ParseClaims(input);
  return 0;
}
