#!/usr/bin/env python3
"""Independent verifier of an idstation audit export, written from docs/audit-format.md only
(standard library + the openssl CLI; shares no code with the Rust implementation).

usage: verify_export.py EXPORT_DIR ROOT_PEM
Exit 0 and print "OK <count> <last_seq>" when the export verifies; exit 1 with the reason else.
"""
import csv
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import tempfile


def field(s):
    b = s.encode("utf-8")
    return struct.pack(">I", len(b)) + b


def event_hash(e, prev):
    m = field("idstation-audit-event-v1") + struct.pack(">Q", int(e["seq"]))
    for k in ("time", "operator", "role", "station", "action", "object", "details"):
        m += field(e[k])
    return hashlib.sha256(m + prev).digest()


def checkpoint_message(seq, h, time):
    return field("idstation-audit-checkpoint-v1") + struct.pack(">Q", seq) + h + field(time)


def fail(msg):
    print("FAIL " + msg)
    sys.exit(1)


def openssl_verify_sig(pub_pem, message, sig):
    with tempfile.TemporaryDirectory() as d:
        mp, sp = os.path.join(d, "m"), os.path.join(d, "s")
        open(mp, "wb").write(message)
        open(sp, "wb").write(sig)
        r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", pub_pem, "-signature", sp, mp],
                           capture_output=True)
        return r.returncode == 0


def main():
    d, root = sys.argv[1], sys.argv[2]
    chain = os.path.join(d, "chain.pem")
    certs = open(chain).read().split("-----END CERTIFICATE-----")
    certs = [c + "-----END CERTIFICATE-----\n" for c in certs if "BEGIN CERTIFICATE" in c]
    with tempfile.TemporaryDirectory() as t:
        leaf = os.path.join(t, "leaf.pem")
        untrusted = os.path.join(t, "untrusted.pem")
        pub = os.path.join(t, "pub.pem")
        open(leaf, "w").write(certs[0])
        open(untrusted, "w").write("".join(certs[1:]) or certs[0])
        r = subprocess.run(["openssl", "verify", "-CAfile", root, "-untrusted", untrusted, leaf],
                           capture_output=True, text=True)
        if r.returncode != 0:
            fail("certificate chain: " + r.stdout + r.stderr)
        subprocess.run(["openssl", "x509", "-in", leaf, "-pubkey", "-noout", "-out", pub], check=True)
        mbytes = open(os.path.join(d, "manifest.json"), "rb").read()
        if not openssl_verify_sig(pub, mbytes, open(os.path.join(d, "manifest.sig"), "rb").read()):
            fail("manifest.sig")
        m = json.loads(mbytes)
        for c in m["checkpoints"]:
            msg = checkpoint_message(c["seq"], bytes.fromhex(c["hash"]), c["time"])
            if not openssl_verify_sig(pub, msg, bytes.fromhex(c["signature"])):
                fail("checkpoint %d signature" % c["seq"])
    data = open(os.path.join(d, m["events_file"]), "rb").read()
    if hashlib.sha256(data).hexdigest() != m["events_sha256"]:
        fail("events_sha256")
    text = data.decode("utf-8")
    if m["events_format"] == "jsonl":
        events = [json.loads(line) for line in text.splitlines() if line]
    else:
        rows = list(csv.reader(io.StringIO(text, newline="")))
        header, rows = rows[0], rows[1:]
        events = [dict(zip(header, r)) for r in rows]
    prev = bytes.fromhex(m["first_prev_hash"])
    expected = m["first_seq"] or 1
    cps = {c["seq"]: c["hash"] for c in m["checkpoints"]}
    for e in events:
        seq = int(e["seq"])
        if seq != expected:
            fail("seq %d: expected %d" % (seq, expected))
        if bytes.fromhex(e["prev_hash"]) != prev:
            fail("seq %d: prev_hash" % seq)
        h = event_hash(e, prev)
        if h.hex() != e["hash"]:
            fail("seq %d: hash" % seq)
        if seq in cps and cps[seq] != h.hex():
            fail("seq %d: checkpoint" % seq)
        prev, expected = h, seq + 1
    if len(events) != m["count"] or prev.hex() != m["last_hash"]:
        fail("count or last_hash")
    print("OK %d %d" % (len(events), expected - 1))


if __name__ == "__main__":
    main()
