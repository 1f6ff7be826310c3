#include "services/ecard/qr_token.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <array>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace ssc::ecard {
namespace {

constexpr char kB64Url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// Largest number accepted in a claim: 15 digits keep it far from overflow.
constexpr int kMaxDigits = 15;

// SHA-256, fetched once for the process (the fetch takes a lock).
const EVP_MD* Sha256() {
  static const EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

bool Digest(std::string_view data, unsigned char out[32]) {
  const EVP_MD* md = Sha256();
  if (md == nullptr) return false;
  unsigned int len = 0;
  return EVP_Digest(data.data(), data.size(), out, &len, md, nullptr) == 1 &&
         len == 32;
}

std::string OpenSslError(std::string_view what) {
  return absl::StrCat(std::string(what), " failed (OpenSSL)");
}

// Appends the DER INTEGER of a 32-byte unsigned big-endian value.
void AppendDerInteger(std::string* out, const unsigned char* v) {
  size_t skip = 0;
  while (skip < 31 && v[skip] == 0) ++skip;
  const bool pad = (v[skip] & 0x80) != 0;
  out->push_back(0x02);
  out->push_back(static_cast<char>(32 - skip + (pad ? 1 : 0)));
  if (pad) out->push_back('\0');
  out->append(reinterpret_cast<const char*>(v + skip), 32 - skip);
}

// Raw r || s (64 bytes) -> DER ECDSA-Sig-Value (at most 72 bytes).
std::string RawToDer(std::string_view raw) {
  std::string body;
  body.reserve(70);
  const auto* p = reinterpret_cast<const unsigned char*>(raw.data());
  AppendDerInteger(&body, p);
  AppendDerInteger(&body, p + 32);
  std::string der;
  der.reserve(body.size() + 2);
  der.push_back(0x30);
  der.push_back(static_cast<char>(body.size()));
  der += body;
  return der;
}

// Reads one DER INTEGER into 32 bytes; false if it does not fit.
bool ReadDerInteger(const unsigned char*& p, const unsigned char* end,
                    unsigned char out[32]) {
  if (end - p < 2 || p[0] != 0x02) return false;
  size_t len = p[1];
  p += 2;
  if (len == 0 || static_cast<size_t>(end - p) < len) return false;
  const unsigned char* v = p;
  p += len;
  while (len > 0 && *v == 0) {
    ++v;
    --len;
  }
  if (len > 32) return false;
  std::memset(out, 0, 32);
  std::memcpy(out + 32 - len, v, len);
  return true;
}

bool IsB64UrlChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' ||
         c == '_';
}

bool IsAlnumText(std::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool IsB64UrlText(std::string_view s) {
  for (char c : s) {
    if (!IsB64UrlChar(c)) return false;
  }
  return true;
}

absl::StatusOr<std::string> BignumParam(EVP_PKEY* pkey, const char* name) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1 || bn == nullptr) {
    return absl::InternalError(OpenSslError("reading the public key"));
  }
  std::string out(32, '\0');
  int n = BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), 32);
  BN_free(bn);
  if (n != 32) return absl::InternalError(OpenSslError("encoding the key"));
  return out;
}

bool IsP256(EVP_PKEY* pkey) {
  if (pkey == nullptr || EVP_PKEY_is_a(pkey, "EC") != 1) return false;
  char group[64] = {0};
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                     sizeof(group), &len) != 1) {
    return false;
  }
  return std::string_view(group, len) == "prime256v1" ||
         std::string_view(group, len) == "P-256";
}

}  // namespace

EcKey::EcKey(EVP_PKEY* pkey, bool has_private)
    : pkey_(pkey), has_private_(has_private) {}

EcKey::~EcKey() { EVP_PKEY_free(pkey_); }

absl::Status EcKey::Init() {
  if (!IsP256(pkey_)) {
    return absl::InvalidArgumentError("not an ECDSA P-256 key");
  }
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(pkey_, &der);
  if (len <= 0) return absl::InternalError(OpenSslError("encoding SPKI"));
  public_der_.assign(reinterpret_cast<char*>(der), len);
  OPENSSL_free(der);
  auto x = BignumParam(pkey_, OSSL_PKEY_PARAM_EC_PUB_X);
  if (!x.ok()) return x.status();
  auto y = BignumParam(pkey_, OSSL_PKEY_PARAM_EC_PUB_Y);
  if (!y.ok()) return y.status();
  x_ = *std::move(x);
  y_ = *std::move(y);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<EcKey>> EcKey::Generate() {
  EVP_PKEY* pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  if (pkey == nullptr) {
    return absl::InternalError(OpenSslError("generating a P-256 key"));
  }
  std::unique_ptr<EcKey> key(new EcKey(pkey, true));
  if (absl::Status s = key->Init(); !s.ok()) return s;
  return key;
}

absl::StatusOr<std::unique_ptr<EcKey>> EcKey::FromPrivateDer(
    std::string_view der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  EVP_PKEY* pkey =
      d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(der.size()));
  if (pkey == nullptr ||
      p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    EVP_PKEY_free(pkey);
    return absl::InvalidArgumentError("not a PKCS#8 DER private key");
  }
  std::unique_ptr<EcKey> key(new EcKey(pkey, true));
  if (absl::Status s = key->Init(); !s.ok()) return s;
  return key;
}

absl::StatusOr<std::unique_ptr<EcKey>> EcKey::FromPublicDer(
    std::string_view der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  EVP_PKEY* pkey = d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size()));
  if (pkey == nullptr ||
      p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    EVP_PKEY_free(pkey);
    return absl::InvalidArgumentError("not an SPKI DER public key");
  }
  std::unique_ptr<EcKey> key(new EcKey(pkey, false));
  if (absl::Status s = key->Init(); !s.ok()) return s;
  return key;
}

absl::StatusOr<std::string> EcKey::PrivateDer() const {
  if (!has_private_) return absl::FailedPreconditionError("no private key");
  PKCS8_PRIV_KEY_INFO* p8 = EVP_PKEY2PKCS8(pkey_);
  if (p8 == nullptr) return absl::InternalError(OpenSslError("PKCS#8"));
  unsigned char* der = nullptr;
  int len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
  PKCS8_PRIV_KEY_INFO_free(p8);
  if (len <= 0) return absl::InternalError(OpenSslError("PKCS#8 encoding"));
  std::string out(reinterpret_cast<char*>(der), len);
  OPENSSL_clear_free(der, len);
  return out;
}

std::string EcKey::Jwk(std::string_view kid) const {
  return absl::StrCat(R"({"kty":"EC","crv":"P-256","x":")", Base64UrlEncode(x_),
                      R"(","y":")", Base64UrlEncode(y_), R"(","kid":")",
                      std::string(kid), R"(","alg":"ES256","use":"sig"})");
}

absl::StatusOr<std::string> EcKey::Sign(std::string_view data) const {
  if (!has_private_) return absl::FailedPreconditionError("no private key");
  unsigned char digest[32];
  if (!Digest(data, digest))
    return absl::InternalError(OpenSslError("SHA-256"));
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, pkey_, nullptr);
  if (ctx == nullptr) return absl::InternalError(OpenSslError("signing"));
  unsigned char der[80];
  size_t der_len = sizeof(der);
  const bool ok = EVP_PKEY_sign_init(ctx) == 1 &&
                  EVP_PKEY_sign(ctx, der, &der_len, digest, 32) == 1;
  EVP_PKEY_CTX_free(ctx);
  if (!ok) return absl::InternalError(OpenSslError("signing"));
  // DER SEQUENCE { INTEGER r, INTEGER s } -> r || s.
  const unsigned char* p = der;
  const unsigned char* end = der + der_len;
  if (end - p < 2 || p[0] != 0x30 || p[1] != der_len - 2) {
    return absl::InternalError("unexpected ECDSA signature encoding");
  }
  p += 2;
  unsigned char raw[64];
  if (!ReadDerInteger(p, end, raw) || !ReadDerInteger(p, end, raw + 32) ||
      p != end) {
    return absl::InternalError("unexpected ECDSA signature encoding");
  }
  return std::string(reinterpret_cast<char*>(raw), 64);
}

bool EcKey::Verify(std::string_view data,
                   std::string_view raw_signature) const {
  if (raw_signature.size() != 64) return false;
  unsigned char digest[32];
  if (!Digest(data, digest)) return false;
  const std::string der = RawToDer(raw_signature);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, pkey_, nullptr);
  if (ctx == nullptr) return false;
  const bool ok =
      EVP_PKEY_verify_init(ctx) == 1 &&
      EVP_PKEY_verify(ctx, reinterpret_cast<const unsigned char*>(der.data()),
                      der.size(), digest, 32) == 1;
  EVP_PKEY_CTX_free(ctx);
  return ok;
}

std::string Base64UrlEncode(std::string_view data) {
  std::string out;
  out.reserve((data.size() * 4 + 2) / 3);
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v = (p[i] << 16) | (p[i + 1] << 8) | p[i + 2];
    out.push_back(kB64Url[(v >> 18) & 63]);
    out.push_back(kB64Url[(v >> 12) & 63]);
    out.push_back(kB64Url[(v >> 6) & 63]);
    out.push_back(kB64Url[v & 63]);
  }
  const size_t rest = data.size() - i;
  if (rest == 1) {
    uint32_t v = p[i] << 16;
    out.push_back(kB64Url[(v >> 18) & 63]);
    out.push_back(kB64Url[(v >> 12) & 63]);
  } else if (rest == 2) {
    uint32_t v = (p[i] << 16) | (p[i + 1] << 8);
    out.push_back(kB64Url[(v >> 18) & 63]);
    out.push_back(kB64Url[(v >> 12) & 63]);
    out.push_back(kB64Url[(v >> 6) & 63]);
  }
  return out;
}

std::optional<std::string> Base64UrlDecode(std::string_view text) {
  static const std::array<int8_t, 256> kTable = [] {
    std::array<int8_t, 256> t;
    t.fill(-1);
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kB64Url[i])] = i;
    return t;
  }();
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = kTable[static_cast<unsigned char>(c)];
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  // Leftover bits must be zero: one encoding per byte string.
  if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

std::string Base64Encode(std::string_view data) {
  std::string out = Base64UrlEncode(data);
  for (char& c : out) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  while (out.size() % 4 != 0) out.push_back('=');
  return out;
}

std::optional<FlatJson> ParseFlatJson(std::string_view json) {
  // Bounded: nothing ssc parses this way is larger.
  if (json.size() < 2 || json.size() > 1024) return std::nullopt;
  if (json.front() != '{' || json.back() != '}') return std::nullopt;
  FlatJson out;
  size_t i = 1;
  const size_t end = json.size() - 1;
  auto read_string = [&](std::string* s) -> bool {
    if (i >= end || json[i] != '"') return false;
    size_t start = ++i;
    while (i < end && json[i] != '"') {
      if (!IsB64UrlChar(json[i])) return false;
      ++i;
    }
    if (i >= end) return false;
    s->assign(json.substr(start, i - start));
    ++i;
    return true;
  };
  if (i == end) return out;  // {}
  while (true) {
    std::string key;
    if (!read_string(&key) || key.empty()) return std::nullopt;
    if (i >= end || json[i] != ':') return std::nullopt;
    ++i;
    FlatJsonValue value;
    if (i < end && json[i] == '"') {
      if (!read_string(&value.text)) return std::nullopt;
    } else {
      size_t start = i;
      while (i < end && json[i] >= '0' && json[i] <= '9') ++i;
      size_t digits = i - start;
      if (digits == 0 || digits > kMaxDigits) return std::nullopt;
      if (digits > 1 && json[start] == '0') return std::nullopt;
      value.is_number = true;
      value.text.assign(json.substr(start, digits));
      for (char c : value.text) value.number = value.number * 10 + (c - '0');
    }
    for (const auto& [k, v] : out) {
      if (k == key) return std::nullopt;
    }
    out.emplace_back(std::move(key), std::move(value));
    if (i == end) return out;
    if (json[i] != ',') return std::nullopt;
    ++i;
  }
}

const FlatJsonValue* FindJson(const FlatJson& json, std::string_view key) {
  for (const auto& [k, v] : json) {
    if (k == key) return &v;
  }
  return nullptr;
}

absl::StatusOr<std::string> EncodeToken(std::string_view kid, const QrClaims& c,
                                        const EcKey& key) {
  if (kid.empty() || kid.size() > kMaxKeyIdChars || !IsAlnumText(kid)) {
    return absl::InvalidArgumentError("invalid key id");
  }
  if (c.ecard_id.empty() || c.ecard_id.size() > kMaxECardIdChars ||
      !IsAlnumText(c.ecard_id)) {
    return absl::InvalidArgumentError("invalid e-card id");
  }
  if (c.nonce.size() != 16 || !IsB64UrlText(c.nonce)) {
    return absl::InvalidArgumentError("invalid nonce");
  }
  if (c.issued_at < 0 || c.expires_at <= c.issued_at ||
      c.expires_at > kMaxUnixSeconds) {
    return absl::InvalidArgumentError("invalid times");
  }
  if (c.business_type < 1 || c.business_type > 4) {
    return absl::InvalidArgumentError("invalid business type");
  }
  const std::string header =
      absl::StrCat(R"({"alg":"ES256","kid":")", std::string(kid), R"("})");
  const std::string payload =
      absl::StrCat(R"({"sub":")", c.ecard_id, R"(","jti":")", c.nonce,
                   R"(","iat":)", c.issued_at, R"(,"exp":)", c.expires_at,
                   R"(,"bt":"0)", c.business_type, R"("})");
  std::string token =
      absl::StrCat(Base64UrlEncode(header), ".", Base64UrlEncode(payload));
  absl::StatusOr<std::string> sig = key.Sign(token);
  if (!sig.ok()) return sig.status();
  absl::StrAppend(&token, ".", Base64UrlEncode(*sig));
  if (token.size() > kMaxTokenChars) {
    return absl::InternalError("QR payload longer than 256 characters");
  }
  return token;
}

std::optional<SplitToken> Split(std::string_view token) {
  // Size first: nothing is decoded from an oversized input.
  if (token.empty() || token.size() > kMaxTokenChars) return std::nullopt;
  const size_t dot1 = token.find('.');
  if (dot1 == std::string_view::npos) return std::nullopt;
  const size_t dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos) return std::nullopt;
  if (token.find('.', dot2 + 1) != std::string_view::npos) return std::nullopt;
  const std::string_view h = token.substr(0, dot1);
  const std::string_view p = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view s = token.substr(dot2 + 1);
  if (h.empty() || p.empty() || s.size() != 86) return std::nullopt;

  std::optional<std::string> header = Base64UrlDecode(h);
  if (!header.has_value()) return std::nullopt;
  std::optional<FlatJson> hj = ParseFlatJson(*header);
  if (!hj.has_value() || hj->size() != 2) return std::nullopt;
  const FlatJsonValue* alg = FindJson(*hj, "alg");
  const FlatJsonValue* kid = FindJson(*hj, "kid");
  // The algorithm is fixed: anything but ES256 (none, HS256, ...) is refused.
  if (alg == nullptr || alg->is_number || alg->text != "ES256") {
    return std::nullopt;
  }
  if (kid == nullptr || kid->is_number || kid->text.empty() ||
      kid->text.size() > kMaxKeyIdChars || !IsAlnumText(kid->text)) {
    return std::nullopt;
  }
  std::optional<std::string> payload = Base64UrlDecode(p);
  if (!payload.has_value()) return std::nullopt;
  std::optional<std::string> sig = Base64UrlDecode(s);
  if (!sig.has_value() || sig->size() != 64) return std::nullopt;

  SplitToken out;
  out.kid = kid->text;
  out.signing_input = token.substr(0, dot2);
  out.payload_json = *std::move(payload);
  out.signature = *std::move(sig);
  return out;
}

std::optional<QrClaims> ParseClaims(std::string_view payload_json) {
  std::optional<FlatJson> j = ParseFlatJson(payload_json);
  if (!j.has_value() || j->size() != 5) return std::nullopt;
  const FlatJsonValue* sub = FindJson(*j, "sub");
  const FlatJsonValue* jti = FindJson(*j, "jti");
  const FlatJsonValue* iat = FindJson(*j, "iat");
  const FlatJsonValue* exp = FindJson(*j, "exp");
  const FlatJsonValue* bt = FindJson(*j, "bt");
  if (sub == nullptr || jti == nullptr || iat == nullptr || exp == nullptr ||
      bt == nullptr) {
    return std::nullopt;
  }
  if (sub->is_number || sub->text.empty() ||
      sub->text.size() > kMaxECardIdChars || !IsAlnumText(sub->text)) {
    return std::nullopt;
  }
  if (jti->is_number || jti->text.size() != 16) return std::nullopt;
  if (!iat->is_number || !exp->is_number) return std::nullopt;
  if (bt->is_number || bt->text.size() != 2 || bt->text[0] != '0' ||
      bt->text[1] < '1' || bt->text[1] > '4') {
    return std::nullopt;
  }
  QrClaims c;
  c.ecard_id = sub->text;
  c.nonce = jti->text;
  c.issued_at = iat->number;
  c.expires_at = exp->number;
  c.business_type = bt->text[1] - '0';
  return c;
}

absl::StatusOr<std::string> NewNonce() {
  unsigned char buf[12];
  if (RAND_bytes(buf, sizeof(buf)) != 1) {
    return absl::InternalError(OpenSslError("random nonce"));
  }
  return Base64UrlEncode(
      std::string_view(reinterpret_cast<char*>(buf), sizeof(buf)));
}

}  // namespace ssc::ecard
