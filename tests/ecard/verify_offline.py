#!/usr/bin/python3
"""Offline verification of ssc QR codes by an independent implementation.

Runs ecard_token_tool (the real logic on a real store), then verifies its
codes with Debian's python3-jwt (PyJWT, from the published JWK) and with
python3-cryptography directly (from the published SPKI DER), checks the
claims, and checks that tampered and alg-confused codes are refused.
Must run with /usr/bin/python3 (Debian's packages). Exit 0 = pass.
"""
import base64
import json
import subprocess
import sys
import tempfile

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)


def verify_with_cryptography(token, spki_b64):
    key = load_der_public_key(base64.b64decode(spki_b64))
    check(isinstance(key.curve, ec.SECP256R1), "key is P-256")
    signing_input, _, sig = token.rpartition(".")
    raw = b64url_decode(sig)
    check(len(raw) == 64, "signature is raw r||s, 64 bytes")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"),
                               int.from_bytes(raw[32:], "big"))
    try:
        key.verify(der, signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False


def main():
    tool = sys.argv[1]
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run([tool, d], check=True, capture_output=True,
                             text=True).stdout
    data = json.loads(out)
    now = data["now"]
    keys = {k["kid"]: k for k in data["keys"]}
    check(len(keys) == 2, "old and new key published after rotation")
    check(len(data["codes"]) == 2, "two codes")

    for code, bt in zip(data["codes"], ["02", "04"]):
        token = code["payload"]
        check(len(token) <= 256, "at most 256 characters")
        check(set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
                                "qrstuvwxyz0123456789-_."), "QR alphabet")
        header = jwt.get_unverified_header(token)
        check(header == {"alg": "ES256", "kid": code["kid"]}, "header")
        published = keys[header["kid"]]
        pub = jwt.algorithms.ECAlgorithm.from_jwk(json.dumps(published["jwk"]))
        claims = jwt.decode(token, key=pub, algorithms=["ES256"],
                            options={"verify_exp": False, "verify_iat": False,
                                     "require": ["sub", "jti", "iat", "exp"]})
        check(claims["sub"] == data["ecard_id"], "sub is the e-card")
        check(claims["bt"] == bt, "business type")
        check(claims["iat"] <= now < claims["exp"], "valid at the tool's now")
        check(claims["exp"] - claims["iat"] == 60, "valid 60 s")
        check(claims["exp"] == code["exp"], "exp as reported")
        check(len(b64url_decode(claims["jti"])) == 12, "12-byte nonce")
        check(verify_with_cryptography(token, published["spki"]),
              "cryptography verifies with the SPKI key")

        # Tampered payload: both verifiers refuse.
        h, p, s = token.split(".")
        body = json.loads(b64url_decode(p))
        body["bt"] = "03"
        p2 = base64.urlsafe_b64encode(
            json.dumps(body, separators=(",", ":")).encode()).decode().rstrip("=")
        forged = ".".join([h, p2, s])
        try:
            jwt.decode(forged, key=pub, algorithms=["ES256"],
                       options={"verify_exp": False, "verify_iat": False})
            check(False, "PyJWT refuses a tampered payload")
        except jwt.InvalidSignatureError:
            pass
        check(not verify_with_cryptography(forged, published["spki"]),
              "cryptography refuses a tampered payload")
        # The other key does not verify this code.
        other = [k for k in keys if k != header["kid"]][0]
        check(not verify_with_cryptography(token, keys[other]["spki"]),
              "another key does not verify")

    check(data["codes"][0]["kid"] != data["codes"][1]["kid"],
          "rotation changed the signing key")
    print("OK: %d codes verified offline with PyJWT %s" % (
        len(data["codes"]), jwt.__version__))


if __name__ == "__main__":
    main()
