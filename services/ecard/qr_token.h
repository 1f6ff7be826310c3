#pragma once

// The QR code payload: a JWS compact serialization (RFC 7515) signed with
// ES256 (RFC 7518 §3.4: ECDSA P-256 + SHA-256, signature = raw r || s, 64
// bytes), base64url without padding. Claim names are short so a whole code
// stays within kMaxTokenChars:
//
//   header  {"alg":"ES256","kid":"<key id>"}
//   payload {"sub":"<e-card id>","jti":"<nonce>","iat":<unix s>,
//            "exp":<unix s>,"bt":"<01..04>"}
//
// The decoder is strict and bounded: the size is checked before anything is
// decoded, the algorithm is fixed (a header naming any other algorithm is
// malformed; it is never used to choose how to verify), only the exact
// claims above are accepted, and no input can crash it.
//
// EcKey wraps one parsed OpenSSL key; it is parsed once and reused.
// Thread-safe: EcKey is immutable after construction; the functions are pure.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace ssc::ecard {

// Longest payload ssc emits and the decoder accepts.
inline constexpr size_t kMaxTokenChars = 256;
// Limits that keep every code within kMaxTokenChars (the longest possible
// code is 253 characters; tests/ecard checks it): key ids of 1..4 characters
// of [0-9A-Za-z], e-card ids of 1..16 of [0-9A-Z], times below 10^10 (the
// year 2286).
inline constexpr size_t kMaxKeyIdChars = 4;
inline constexpr size_t kMaxECardIdChars = 16;
inline constexpr int64_t kMaxUnixSeconds = 9'999'999'999;

// An ECDSA P-256 key (private or public only).
class EcKey {
 public:
  ~EcKey();
  EcKey(const EcKey&) = delete;
  EcKey& operator=(const EcKey&) = delete;

  // A fresh random private key.
  static absl::StatusOr<std::unique_ptr<EcKey>> Generate();
  // PKCS#8 DER private key.
  static absl::StatusOr<std::unique_ptr<EcKey>> FromPrivateDer(
      std::string_view der);
  // SubjectPublicKeyInfo DER public key.
  static absl::StatusOr<std::unique_ptr<EcKey>> FromPublicDer(
      std::string_view der);

  bool has_private() const { return has_private_; }
  absl::StatusOr<std::string> PrivateDer() const;                // PKCS#8
  const std::string& public_der() const { return public_der_; }  // SPKI
  // {"kty":"EC","crv":"P-256","x":"..","y":"..","kid":"..","alg":"ES256",
  //  "use":"sig"}
  std::string Jwk(std::string_view kid) const;

  // ES256 signature of `data`: 64 bytes r || s.
  absl::StatusOr<std::string> Sign(std::string_view data) const;
  // Whether `raw_signature` (64 bytes r || s) is a valid ES256 signature.
  bool Verify(std::string_view data, std::string_view raw_signature) const;

 private:
  EcKey(EVP_PKEY* pkey, bool has_private);
  absl::Status Init();

  EVP_PKEY* pkey_;
  bool has_private_;
  std::string public_der_;
  std::string x_, y_;  // raw 32-byte coordinates
};

// The claims of a QR code.
struct QrClaims {
  std::string ecard_id;    // "sub"
  std::string nonce;       // "jti": base64url of 12 random bytes
  int64_t issued_at = 0;   // "iat", unix seconds
  int64_t expires_at = 0;  // "exp", unix seconds
  int business_type = 0;   // "bt": 1..4, written "01".."04"
};

// A token split into its parts, signature not yet checked.
struct SplitToken {
  std::string kid;
  std::string_view signing_input;  // header "." payload, inside the token
  std::string payload_json;
  std::string signature;  // 64 raw bytes
};

// Builds and signs a token. INVALID_ARGUMENT if a claim cannot be encoded.
absl::StatusOr<std::string> EncodeToken(std::string_view kid,
                                        const QrClaims& claims,
                                        const EcKey& key);

// Splits a token and checks its header (alg must be ES256, kid well-formed).
// nullopt: malformed.
std::optional<SplitToken> Split(std::string_view token);

// Parses the payload claims strictly. nullopt: malformed.
std::optional<QrClaims> ParseClaims(std::string_view payload_json);

// A random nonce: base64url of 12 bytes (16 characters).
absl::StatusOr<std::string> NewNonce();

// base64url without padding (RFC 4648 §5). Decode is strict: no padding, no
// other characters, no non-zero trailing bits; nullopt otherwise.
std::string Base64UrlEncode(std::string_view data);
std::optional<std::string> Base64UrlDecode(std::string_view text);
// Standard base64 with padding (for SPKI DER in responses).
std::string Base64Encode(std::string_view data);

// A flat JSON object whose values are strings of [A-Za-z0-9_-] (no escapes)
// or non-negative integers of at most 15 digits; no whitespace, no duplicate
// keys. Used for the token claims and the e-card event payloads.
struct FlatJsonValue {
  bool is_number = false;
  std::string text;
  int64_t number = 0;
};
using FlatJson = std::vector<std::pair<std::string, FlatJsonValue>>;
std::optional<FlatJson> ParseFlatJson(std::string_view json);
const FlatJsonValue* FindJson(const FlatJson& json, std::string_view key);

}  // namespace ssc::ecard
