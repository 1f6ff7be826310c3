#!/usr/bin/python3
"""Finance client for ssc one-card payouts (惠民惠农补贴“一卡通”).

Talks to sscd's ssc.v1.PayoutService over mutual TLS with a finance_maker or
finance_checker client certificate. The gRPC stubs are generated at run time
from the repository's proto/ folder into a temporary directory (Debian's
python3-grpcio and python3-grpc-tools; run with /usr/bin/python3).

  ssc_finance.py --addr localhost:7443 --certs /etc/ssc/tls --role finance_maker \
      --operator 0421 \
      register-programme --code LIVING --name 生活补贴 --category agricultural \
      --max-item 100000 --unit person
  ssc_finance.py ... set-budget --programme LIVING --period 2026-11 --amount 5000000
  ssc_finance.py ... upload --programme LIVING --period 2026-11 --csv items.csv
  ssc_finance.py --role finance_checker --operator 0533 ... approve --batch PB00000001
  ssc_finance.py ... watch --batch PB00000001
  ssc_finance.py ... export --batch PB00000001 --out results.csv

The CSV has the header item_id,id_number,name,amount_fen,note (UTF-8).
Amounts are integers in fen. Every mutation carries a fresh request_id; the
upload is safe to repeat (items are idempotent by item id). --operator names
the person at the keyboard (metadata x-ssc-operator): sscd refuses to submit,
approve or reject without it, and a checker operator who submitted a batch
cannot approve it.
"""

import argparse
import csv
import importlib
import os
import sys
import tempfile
import time
import uuid

import grpc
from grpc_tools import protoc
import grpc_tools

REPO_PROTO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "proto")

CATEGORIES = {
    "employment": 1,
    "social_insurance": 2,
    "migrant_wages": 3,
    "agricultural": 4,
    "other": 5,
}
UNITS = {"person": 1, "household": 2}


def load_stubs(proto_dir=REPO_PROTO):
    """Generates the Python stubs of payout.proto into a temp dir and imports them."""
    out = tempfile.mkdtemp(prefix="ssc_stubs_")
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    files = ["ssc/v1/common.proto", "ssc/v1/payout.proto", "ssc/v1/card.proto"]
    rc = protoc.main(["protoc", "-I", proto_dir, "-I", include,
                      "--python_out=" + out, "--grpc_python_out=" + out] + files)
    if rc != 0:
        raise RuntimeError("protoc failed on %s" % proto_dir)
    for pkg in ("ssc", "ssc/v1"):
        open(os.path.join(out, pkg, "__init__.py"), "a").close()
    sys.path.insert(0, out)
    pb = importlib.import_module("ssc.v1.payout_pb2")
    rpc = importlib.import_module("ssc.v1.payout_pb2_grpc")
    return pb, rpc


def channel(addr, certs, role):
    def read(name):
        with open(os.path.join(certs, name), "rb") as f:
            return f.read()
    creds = grpc.ssl_channel_credentials(
        root_certificates=read("ca.crt"),
        private_key=read(role + ".key"),
        certificate_chain=read(role + ".crt"))
    return grpc.secure_channel(addr, creds)


def rid():
    return uuid.uuid4().hex


class FinanceClient:
    """Thin wrapper over PayoutService for the finance office's tasks."""

    def __init__(self, ch, pb, rpc, operator=""):
        self.pb = pb
        self.stub = rpc.PayoutServiceStub(ch)
        # Sent with every mutation: audited, and maker != checker by operator.
        self.md = [("x-ssc-operator", operator)] if operator else []

    def register_programme(self, code, name, category, max_item_fen, unit):
        p = self.pb.Programme(code=code, name=name, category=CATEGORIES[category],
                              max_item_amount_fen=max_item_fen, unit=UNITS[unit])
        return self.stub.RegisterProgramme(
            self.pb.RegisterProgrammeRequest(request_id=rid(), programme=p),
            metadata=self.md).programme

    def set_budget(self, programme, period, amount_fen):
        return self.stub.SetBudget(self.pb.SetBudgetRequest(
            request_id=rid(), programme_code=programme, period=period,
            amount_fen=amount_fen), metadata=self.md).budget

    @staticmethod
    def read_csv(path):
        items = []
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = {"item_id", "id_number", "name", "amount_fen"} - set(reader.fieldnames or [])
            if missing:
                raise ValueError("CSV lacks columns: %s" % ", ".join(sorted(missing)))
            for line, row in enumerate(reader, start=2):
                try:
                    amount = int(row["amount_fen"])
                except ValueError:
                    raise ValueError("line %d: amount_fen %r is not an integer" %
                                     (line, row["amount_fen"]))
                items.append((row["item_id"], row["id_number"], row["name"], amount,
                              row.get("note") or ""))
        return items

    def upload_csv(self, programme, period, path, scheduled_unix=0, chunk=1000,
                   submit=True):
        """Creates a batch with the CSV's control totals, uploads, seals, submits."""
        items = self.read_csv(path)
        total = sum(i[3] for i in items)
        batch = self.stub.CreateBatch(self.pb.CreateBatchRequest(
            request_id=rid(), programme_code=programme, period=period,
            scheduled_at={"seconds": scheduled_unix}, control_count=len(items),
            control_amount_fen=total), metadata=self.md).batch
        upload_id = rid()

        def messages():
            for start in range(0, len(items), chunk):
                m = self.pb.UploadItemsRequest()
                if start == 0:
                    m.request_id = upload_id
                    m.batch_id = batch.batch_id
                for (item_id, id_number, name, amount, note) in items[start:start + chunk]:
                    m.items.add(item_id=item_id, id_number=id_number, name=name,
                                amount_fen=amount, note=note)
                yield m
        self.stub.UploadItems(messages(), metadata=self.md)
        batch = self.stub.SealBatch(self.pb.SealBatchRequest(
            request_id=rid(), batch_id=batch.batch_id), metadata=self.md).batch
        if submit:
            batch = self.stub.SubmitBatch(self.pb.SubmitBatchRequest(
                request_id=rid(), batch_id=batch.batch_id), metadata=self.md).batch
        return batch

    def approve(self, batch_id):
        return self.stub.ApproveBatch(self.pb.ApproveBatchRequest(
            request_id=rid(), batch_id=batch_id), metadata=self.md).batch

    def watch(self, batch_id, out=sys.stderr, width=40):
        """Shows a progress bar until the batch is done; returns the last progress."""
        last = None
        for p in self.stub.WatchBatch(self.pb.WatchBatchRequest(batch_id=batch_id)):
            last = p
            t = p.totals
            done = t.paid_count + t.failed_count
            frac = done / t.valid_count if t.valid_count else 1.0
            bar = "#" * int(frac * width)
            state = self.pb.BatchState.Name(p.state).replace("BATCH_STATE_", "")
            out.write("\r[%-*s] %5.1f%% %s paid %d (%.2f yuan) failed %d remaining %d" % (
                width, bar, frac * 100, state, t.paid_count, t.paid_amount_fen / 100.0,
                t.failed_count, t.remaining_count))
            out.flush()
        out.write("\n")
        return last

    def export(self, batch_id, path):
        """Writes every item with its result to a CSV; returns the row count."""
        n = 0
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["item_id", "id_number", "name", "amount_fen", "status", "reason",
                        "detail", "instruction_id", "bank_reference"])
            for chunk in self.stub.ExportBatchResults(
                    self.pb.ExportBatchResultsRequest(batch_id=batch_id)):
                for i in chunk.items:
                    w.writerow([i.item_id, i.id_number, i.name, i.amount_fen,
                                self.pb.ItemStatus.Name(i.status).replace("ITEM_STATUS_", ""),
                                self.pb.ItemReason.Name(i.reason).replace("ITEM_REASON_", ""),
                                i.reason_detail, i.instruction_id, i.bank_reference])
                    n += 1
        return n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--addr", default="localhost:7443")
    ap.add_argument("--certs", required=True, help="directory with ca.crt, <role>.crt/.key")
    ap.add_argument("--role", default="finance_maker")
    ap.add_argument("--operator", default="",
                    help="operator id (x-ssc-operator); needed to submit, approve")
    ap.add_argument("--proto", default=REPO_PROTO)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("register-programme")
    p.add_argument("--code", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--category", choices=sorted(CATEGORIES), required=True)
    p.add_argument("--max-item", type=int, required=True, help="fen")
    p.add_argument("--unit", choices=sorted(UNITS), default="person")
    p = sub.add_parser("set-budget")
    p.add_argument("--programme", required=True)
    p.add_argument("--period", required=True)
    p.add_argument("--amount", type=int, required=True, help="fen")
    p = sub.add_parser("upload")
    p.add_argument("--programme", required=True)
    p.add_argument("--period", required=True)
    p.add_argument("--csv", required=True)
    p.add_argument("--at", type=int, default=0, help="scheduled time (unix seconds)")
    p = sub.add_parser("approve")
    p.add_argument("--batch", required=True)
    p = sub.add_parser("watch")
    p.add_argument("--batch", required=True)
    p = sub.add_parser("export")
    p.add_argument("--batch", required=True)
    p.add_argument("--out", required=True)
    a = ap.parse_args(argv)

    pb, rpc = load_stubs(a.proto)
    client = FinanceClient(channel(a.addr, a.certs, a.role), pb, rpc, a.operator)
    try:
        if a.cmd == "register-programme":
            print(client.register_programme(a.code, a.name, a.category, a.max_item, a.unit))
        elif a.cmd == "set-budget":
            print(client.set_budget(a.programme, a.period, a.amount))
        elif a.cmd == "upload":
            b = client.upload_csv(a.programme, a.period, a.csv, a.at)
            print(b.batch_id)
            print(b.totals, file=sys.stderr)
        elif a.cmd == "approve":
            print(client.approve(a.batch))
        elif a.cmd == "watch":
            client.watch(a.batch)
        elif a.cmd == "export":
            print(client.export(a.batch, a.out), "items written to", a.out)
    except grpc.RpcError as e:
        print("error: %s: %s" % (e.code().name, e.details()), file=sys.stderr)
        return 1
    except (ValueError, OSError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
