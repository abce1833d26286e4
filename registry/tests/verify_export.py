#!/usr/bin/env python3
"""Independent verifier of an idstation audit export, written from docs/audit-format.md only
(standard library + the openssl CLI; shares no code with the Rust implementation).

usage: verify_export.py EXPORT_DIR ROOT_PEM [--crl CRL]... [--previous OLD_EXPORT_DIR]
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
from datetime import datetime, timezone

# id-kp-idstationAuditSigning (docs/audit-format.md, "Object identifiers").
AUDIT_SIGNING_EKU = "1.3.6.1.4.1.32473.1.3.1"


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


def rfc3339(t):
    return datetime.fromisoformat(t.replace("Z", "+00:00"))


def openssl_out(args):
    r = subprocess.run(["openssl"] + args, capture_output=True, text=True)
    if r.returncode != 0:
        fail("openssl %s: %s" % (" ".join(args[:2]), r.stderr.strip()))
    return r.stdout


def cert_time(pem_path, which):
    out = openssl_out(["x509", "-in", pem_path, "-noout", "-" + which]).strip()
    t = out.split("=", 1)[1]
    return datetime.strptime(t, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=timezone.utc)


def cert_field(pem_path, what):
    return openssl_out(["x509", "-in", pem_path, "-noout", "-" + what, "-nameopt", "RFC2253"]).strip().split("=", 1)[1]


def check_crls(t, path_pems, crls):
    """Each CRL must be signed by a certificate of the path; no path certificate issued by
    that CRL's issuer may be listed on it."""
    for n, crl in enumerate(crls):
        fmt = "PEM" if b"-----BEGIN X509 CRL" in open(crl, "rb").read() else "DER"
        issuer = openssl_out(["crl", "-in", crl, "-inform", fmt, "-noout", "-issuer",
                              "-nameopt", "RFC2253"]).strip().split("=", 1)[1]
        signer = None
        for i, p in enumerate(path_pems):
            if cert_field(p, "subject") == issuer:
                r = subprocess.run(["openssl", "crl", "-in", crl, "-inform", fmt, "-noout",
                                    "-CAfile", p], capture_output=True, text=True)
                if r.returncode == 0 and "verify OK" in (r.stdout + r.stderr):
                    signer = i
                    break
        if signer is None:
            fail("CRL %s: not signed by a certificate of the export's chain" % crl)
        text = openssl_out(["crl", "-in", crl, "-inform", fmt, "-noout", "-text"])
        revoked = {line.split(":", 1)[1].strip().upper().lstrip("0")
                   for line in text.splitlines() if line.strip().startswith("Serial Number:")}
        for i, p in enumerate(path_pems[:signer]):
            if cert_field(p, "issuer") == issuer and i + 1 == signer:
                serial = cert_field(p, "serial").upper().lstrip("0")
                if serial in revoked:
                    fail("chain certificate %d: revoked on CRL %s" % (i, crl))


def main():
    args = sys.argv[1:]
    crls, previous, pos = [], None, []
    while args:
        a = args.pop(0)
        if a == "--crl":
            crls.append(args.pop(0))
        elif a == "--previous":
            previous = args.pop(0)
        else:
            pos.append(a)
    d, root = pos[0], pos[1]
    head = None
    if previous is not None:
        pc, pl, ph = verify(previous, root, crls, None)
        if pc == 0:
            fail("previous export holds no events")
        head = (pl, ph)
    count, last, _ = verify(d, root, crls, head)
    print("OK %d %d" % (count, last))


def verify(d, root, crls, head):
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
        eku = openssl_out(["x509", "-in", leaf, "-noout", "-ext", "extendedKeyUsage"])
        if AUDIT_SIGNING_EKU not in eku:
            fail("signer is not a station audit certificate (no extendedKeyUsage %s)" % AUDIT_SIGNING_EKU)
        if cert_field(leaf, "issuer") != cert_field(root, "subject"):
            fail("signer is not a station audit certificate: not issued by the root directly")
        path_pems = []
        for i, c in enumerate(certs):
            p = os.path.join(t, "c%d.pem" % i)
            open(p, "w").write(c)
            path_pems.append(p)
        path_pems.append(root)
        check_crls(t, path_pems, crls)
        not_before, not_after = cert_time(leaf, "startdate"), cert_time(leaf, "enddate")
        subprocess.run(["openssl", "x509", "-in", leaf, "-pubkey", "-noout", "-out", pub], check=True)
        mbytes = open(os.path.join(d, "manifest.json"), "rb").read()
        if not openssl_verify_sig(pub, mbytes, open(os.path.join(d, "manifest.sig"), "rb").read()):
            fail("manifest.sig")
        m = json.loads(mbytes)
        for c in m["checkpoints"]:
            if not (not_before <= rfc3339(c["time"]) <= not_after):
                fail("checkpoint %d signed outside the signer certificate's validity" % c["seq"])
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
    seen_head = False
    if head is not None and m["first_seq"] and head[0] == m["first_seq"] - 1:
        if head[1] != m["first_prev_hash"]:
            fail("seq %d: history rewritten (first_prev_hash)" % head[0])
        seen_head = True
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
        if head is not None and head[0] == seq:
            if head[1] != h.hex():
                fail("seq %d: history rewritten (differs from the previous export)" % seq)
            seen_head = True
        prev, expected = h, seq + 1
    if len(events) != m["count"] or prev.hex() != m["last_hash"]:
        fail("count or last_hash")
    if events and rfc3339(m["exported_at"]) < rfc3339(events[-1]["time"]):
        fail("exported_at before the last event")
    if head is not None and not seen_head:
        if events and head[0] > expected - 1:
            fail("history truncated: previous export ends at %d, this one at %d" % (head[0], expected - 1))
        fail("previous export's last event %d is not in this export" % head[0])
    return len(events), expected - 1, prev.hex()


if __name__ == "__main__":
    main()
