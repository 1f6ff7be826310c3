#!/usr/bin/python3
"""Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/).

Run from the repository root when a request message or an RPC changes:
    /usr/bin/python3 tests/fuzz/make_seeds.py
Request messages are written in protobuf text format here and encoded with
protoc (--encode), prefixed with the two selector bytes of fuzz_store.h: the
RPC's index among the service's fuzzed methods (proto order) and the role.
Regression inputs found by fuzzing are added to the corpus by hand (named
regression-*) and are not touched by this script.
"""
import base64
import json
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests/fuzz/corpus")
ROLES = ["counter", "card_bureau", "mobile_channel", "terminal", "finance_maker",
         "finance_checker", "statistician", "auditor", "admin"]
NOT_FUZZED = {"admin": {"CreateBackup"}}
ID = "34052419800101001X"


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def encode(message, text):
    r = subprocess.run(
        ["protoc", "-I", os.path.join(ROOT, "proto"), "-I", "/usr/include",
         "--encode=ssc.v1." + message] +
        ["ssc/v1/%s.proto" % p for p in
         ("common", "card", "ecard", "report", "payout", "admin")],
        input=text.encode(), capture_output=True)
    if r.returncode != 0:
        raise SystemExit("%s: %s" % (message, r.stderr.decode()))
    return r.stdout


def methods(service):
    text = open(os.path.join(ROOT, "proto/ssc/v1/%s.proto" % service)).read()
    names = re.findall(r"^\s*rpc (\w+)\(", text, re.M)
    return [n for n in names if n not in NOT_FUZZED.get(service, set())]


def rpc_seed(service, method, role, text, message=None):
    index = methods(service).index(method)
    body = encode(message or method + "Request", text)
    write(service + "_requests", "%s-%s" % (method, role),
          bytes([index, ROLES.index(role)]) + body)


def varint(n):
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main():
    person = ('person { id_number: "%s" name: "张三" phone: "13800138000" '
              'address: "叙永镇 正东街 1号" region_code: "510524100" }' % ID)
    rpc_seed("card", "ApplyCard", "counter",
             'request_id: "r1" %s bank_code: "ICBC" instant_issuance: true '
             'bank_account: "6222020000000001"' % person)
    rpc_seed("card", "ApplyCard", "counter",
             'request_id: "r2" %s bank_code: "ICBC"' % person)
    rpc_seed("card", "ReportLoss", "mobile_channel",
             'request_id: "r3" card { card_number: "X00000001" } '
             'kind: LOSS_KIND_TEMPORARY')
    rpc_seed("card", "GetCard", "auditor",
             'application_id: "A510524100000000001"')
    rpc_seed("card", "GetPerson", "counter", 'id_number: "%s"' % ID)
    rpc_seed("card", "CheckInvalidCard", "terminal",
             'card_number: "X00000001"')

    rpc_seed("ecard", "IssueECard", "mobile_channel",
             'request_id: "e1" id_number: "%s" name: "张三" evidence { '
             'method: VERIFICATION_METHOD_FACE_LIVENESS reference: "LV-1" '
             'verified_at { seconds: 1767225600 } }' % ID)
    rpc_seed("ecard", "GetECard", "counter", 'id_number: "%s"' % ID)
    rpc_seed("ecard", "GenerateQrCode", "mobile_channel",
             'ecard_id: "E0000000001" business_type: BUSINESS_TYPE_PAYMENT')
    rpc_seed("ecard", "VerifyQrCode", "terminal",
             'payload: "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.e30.AAAA" '
             'business_type: BUSINESS_TYPE_ENQUIRY request_id: "v1"')
    rpc_seed("ecard", "GetVerificationKeys", "terminal", "")

    rpc_seed("report", "GetIndicators", "statistician",
             'region_code: "510524" as_of: "2026-01-01"')
    rpc_seed("report", "GetBreakdown", "statistician", 'as_of: "2026-01-01"')
    rpc_seed("report", "SetResidentPopulation", "admin",
             'request_id: "p1" region_code: "510524100" year: 2025 '
             'population: 40000 source: "census"')
    rpc_seed("report", "ListTargets", "statistician", "")
    rpc_seed("report", "VerifyCounters", "auditor", "")

    rpc_seed("payout", "RegisterProgramme", "finance_maker",
             'request_id: "g1" programme { code: "LIVELIHOOD" name: "惠民补贴" '
             'category: PROGRAMME_CATEGORY_AGRICULTURAL_LIVELIHOOD_SUBSIDY '
             'unit: BENEFICIARY_UNIT_PER_PERSON max_item_amount_fen: 100000 }')
    rpc_seed("payout", "SetBudget", "finance_maker",
             'request_id: "g2" programme_code: "LIVELIHOOD" period: "2026Q1" '
             'amount_fen: 1000000')
    rpc_seed("payout", "CreateBatch", "finance_maker",
             'request_id: "g3" programme_code: "LIVELIHOOD" period: "2026Q1" '
             'control_count: 1 control_amount_fen: 1000')
    rpc_seed("payout", "UploadItems", "finance_maker",
             'request_id: "g4" batch_id: "B000001" items { item_id: "i1" '
             'id_number: "%s" name: "张三" amount_fen: 1000 }' % ID)
    rpc_seed("payout", "GetBatch", "finance_checker", 'batch_id: "B000001"')
    rpc_seed("payout", "ApproveBatch", "finance_checker",
             'request_id: "g5" batch_id: "B000001"')

    csv = open(os.path.join(ROOT, "deploy/register-example.csv")).read()
    csv_lines = csv.splitlines()
    start = encode("ImportRequest", 'start { import_id: "imp-1" '
                   'format: IMPORT_FORMAT_CSV csv_header: %s }'
                   % json.dumps(csv_lines[0]))
    chunk = encode("ImportRequest", "chunk { first_line: 2 %s }" % " ".join(
        "lines: %s" % json.dumps(l, ensure_ascii=False) for l in csv_lines[1:4]))
    write("admin_requests", "Import-csv", bytes([0, ROLES.index("admin")]) +
          varint(len(start)) + start + varint(len(chunk)) + chunk)
    rpc_seed("admin", "GetImportStatus", "admin", 'import_id: "imp-1"')
    rpc_seed("admin", "ListBackups", "admin", "")
    rpc_seed("admin", "VerifyBackup", "admin", "backup_id: 1")

    write("import_csv", "example", "\n".join(csv_lines[:6]) + "\n")
    write("import_csv", "quoted", csv_lines[0] + '\n"card",' + '"a""b",' * 3 + "\n")
    jsonl = open(os.path.join(ROOT, "deploy/register-example.jsonl")).read()
    write("import_jsonl", "example", "\n".join(jsonl.splitlines()[:6]) + "\n")
    write("import_jsonl", "escapes",
          '{"kind": "card", "name": "\\u5f20\\u4e09", "id_number": "%s"}\n' % ID)

    header = b64(b'{"alg":"ES256","kid":"k1"}')
    claims = b64(b'{"sub":"E0000000001","jti":"AAAAAAAAAAAAAAAA",'
                 b'"iat":1767225600,"exp":1767225660,"bt":"02"}')
    write("qr_token", "token", "%s.%s.%s" % (header, claims, b64(bytes(64))))
    write("qr_token", "claims", b'{"sub":"E0000000001","jti":"AAAAAAAAAAAAAAAA",'
          b'"iat":1767225600,"exp":1767225660,"bt":"02"}')
    write("qr_token", "alg-none",
          "%s.%s." % (b64(b'{"alg":"none","kid":"k1"}'), claims))
    write("qr_token", "empty", b"")


if __name__ == "__main__":
    main()
