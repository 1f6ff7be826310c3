#!/usr/bin/python3
"""Runs the finance client against a real sscd and ssc-banksim (mutual TLS).

Environment: SSC_SSCD_BIN, SSC_BANKSIM_BIN, SSC_MAKE_CERTS (set by CTest).
"""

import csv
import importlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ssc_finance  # noqa: E402


def check_char(first17):
    w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return "10X98765432"[sum(int(c) * x for c, x in zip(first17, w)) % 11]


def make_id(n):
    first17 = "510524" + "19850101" + "%03d" % n
    return first17 + check_char(first17)


def wait_port(log_path, pattern, proc, polls=400):
    for _ in range(polls):
        if proc.poll() is not None:
            break
        with open(log_path, encoding="utf-8", errors="replace") as f:
            m = re.search(pattern, f.read())
        if m:
            return int(m.group(1))
        time.sleep(0.05)
    with open(log_path, encoding="utf-8", errors="replace") as f:
        raise RuntimeError("no port in log:\n" + f.read())


class FinanceClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="ssc_py_finance_")
        cls.certs = os.path.join(cls.dir, "certs")
        subprocess.run(["sh", os.environ["SSC_MAKE_CERTS"], cls.certs], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c = cls.certs
        cls.bank_log = os.path.join(cls.dir, "bank.log")
        cls.logs = [open(cls.bank_log, "w"), open(os.path.join(cls.dir, "sscd.log"), "w")]
        cls.bank = subprocess.Popen(
            [os.environ["SSC_BANKSIM_BIN"], "--data-dir", os.path.join(cls.dir, "bank"),
             "--listen", "127.0.0.1:0", "--tls-cert", c + "/server.crt",
             "--tls-key", c + "/server.key", "--tls-client-ca", c + "/ca.crt",
             "--closed-accounts", "6222020000000003"],
            stdout=cls.logs[0], stderr=subprocess.STDOUT)
        bank_port = wait_port(cls.bank_log, r"listening on (\d+)", cls.bank)
        cls.sscd_log = os.path.join(cls.dir, "sscd.log")
        cls.sscd = subprocess.Popen(
            [os.environ["SSC_SSCD_BIN"], "--data-dir", os.path.join(cls.dir, "ssc"),
             "--listen", "127.0.0.1:0", "--tls-cert", c + "/server.crt",
             "--tls-key", c + "/server.key", "--tls-client-ca", c + "/ca.crt",
             "--services", "card,payout",
             "--payout-bank-address", "localhost:%d" % bank_port,
             "--payout-bank-ca", c + "/ca.crt", "--payout-bank-cert", c + "/admin.crt",
             "--payout-bank-key", c + "/admin.key"],
            stdout=cls.logs[1], stderr=subprocess.STDOUT)
        cls.addr = "localhost:%d" % wait_port(
            cls.sscd_log, r"listening on 127\.0\.0\.1:(\d+)", cls.sscd)
        cls.pb, cls.rpc = ssc_finance.load_stubs()
        cls.card_pb = importlib.import_module("ssc.v1.card_pb2")
        cls.card_rpc = importlib.import_module("ssc.v1.card_pb2_grpc")
        cards = cls.card_rpc.CardServiceStub(ssc_finance.channel(cls.addr, c, "counter"))
        for n in range(1, 6):
            cards.ApplyCard(cls.card_pb.ApplyCardRequest(
                request_id="apply-%d" % n,
                person=cls.card_pb.PersonInput(id_number=make_id(n), name="居民%d" % n,
                                               region_code="510524100"),
                bank_code="ICBC", instant_issuance=True,
                bank_account="62220200%08d" % n), timeout=30)

    @classmethod
    def tearDownClass(cls):
        for p in (cls.sscd, cls.bank):
            p.kill()
            p.wait()
        for f in cls.logs:
            f.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def client(self, role):
        return ssc_finance.FinanceClient(
            ssc_finance.channel(self.addr, self.certs, role), self.pb, self.rpc,
            operator="op-" + role)

    def test_register_upload_watch_export(self):
        maker = self.client("finance_maker")
        prog = maker.register_programme("PY-LIVING", "生活补贴", "agricultural", 50000, "person")
        self.assertEqual(prog.code, "PY-LIVING")
        budget = maker.set_budget("PY-LIVING", "2026-11", 1000000)
        self.assertEqual(budget.available_fen, 1000000)
        path = os.path.join(self.dir, "items.csv")
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["item_id", "id_number", "name", "amount_fen", "note"])
            w.writerow(["a1", make_id(1), "居民1", "9000", "第202611期"])
            w.writerow(["a2", make_id(2), "居民二", "9000", ""])  # name mismatch
            w.writerow(["a3", make_id(3), "居民3", "9000", ""])   # closed at the bank
            w.writerow(["a4", make_id(4), "居民4", "60000", ""])  # above maximum
            w.writerow(["a5", make_id(5), "居民5", "9000", ""])
        batch = maker.upload_csv("PY-LIVING", "2026-11", path, chunk=2)
        self.assertEqual(batch.state, self.pb.BATCH_STATE_PENDING_APPROVAL)
        self.assertEqual(batch.totals.received_count, 5)
        self.assertEqual(batch.totals.valid_count, 3)
        self.assertEqual(batch.totals.rejected_count, 2)
        # The maker cannot approve.
        import grpc
        with self.assertRaises(grpc.RpcError) as e:
            maker.approve(batch.batch_id)
        self.assertEqual(e.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        approved = self.client("finance_checker").approve(batch.batch_id)
        self.assertEqual(approved.reserved_amount_fen, 27000)
        out = io.StringIO()
        last = maker.watch(batch.batch_id, out=out)
        self.assertTrue(last.done)
        self.assertIn("100.0%", out.getvalue())
        self.assertEqual(last.totals.paid_count, 2)
        self.assertEqual(last.totals.failed_count, 1)
        result = os.path.join(self.dir, "results.csv")
        self.assertEqual(maker.export(batch.batch_id, result), 5)
        with open(result, encoding="utf-8") as f:
            rows = {r["item_id"]: r for r in csv.DictReader(f)}
        self.assertEqual(rows["a1"]["status"], "PAID")
        self.assertTrue(rows["a1"]["bank_reference"].startswith("BR"))
        self.assertEqual(rows["a2"]["reason"], "NAME_MISMATCH")
        self.assertEqual(rows["a3"]["status"], "FAILED")
        self.assertEqual(rows["a3"]["reason"], "BANK_ACCOUNT_CLOSED")
        self.assertEqual(rows["a4"]["reason"], "AMOUNT_ABOVE_MAXIMUM")
        self.assertTrue(rows["a5"]["id_number"].startswith("510524****"))

    def test_bad_csv_is_refused_before_any_call(self):
        path = os.path.join(self.dir, "bad.csv")
        with open(path, "w", encoding="utf-8") as f:
            f.write("item_id,id_number,name,amount_fen\nb1,%s,居民1,12.50\n" % make_id(1))
        with self.assertRaises(ValueError):
            ssc_finance.FinanceClient.read_csv(path)
        with open(path, "w", encoding="utf-8") as f:
            f.write("item_id,name\nb1,x\n")
        with self.assertRaises(ValueError):
            ssc_finance.FinanceClient.read_csv(path)

    def test_cli_reports_errors(self):
        rc = ssc_finance.main(["--addr", self.addr, "--certs", self.certs,
                               "--role", "finance_maker", "set-budget",
                               "--programme", "NOPE", "--period", "2026-11",
                               "--amount", "1"])
        self.assertEqual(rc, 1)


if __name__ == "__main__":
    unittest.main()
