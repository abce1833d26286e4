#!/usr/bin/env python3
"""A minimal ICAO Doc 9303 BAC reader over PC/SC, written from Part 11 (§4.3, §9.7, §9.8)
with pyscard and the `cryptography` package: an oracle independent of the Rust chip and of
`personalization`. Used by chip/tests/lds_pcsc.rs.

    pyscard_bac.py READER MRZ_INFORMATION FID [FID ...]

Prints {"FID": "hex", ...} as JSON. A refused BAC prints {"error": "SW"} and exits 3.
"""
import hashlib
import json
import os
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, modes
from smartcard.System import readers

try:  # cryptography >= 43 keeps 3DES under "decrepit"
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES


def pad(data):
    data = data + b"\x80"
    return data + b"\x00" * (-len(data) % 8)


def unpad(data):
    return data[: data.rindex(b"\x80")]


def kdf(seed, counter):
    """§9.7.1.1: SHA-1(seed || c), 16 bytes, odd parity."""
    key = bytearray(hashlib.sha1(seed + counter.to_bytes(4, "big")).digest()[:16])
    for i, b in enumerate(key):
        b &= 0xFE
        key[i] = b | (bin(b).count("1") % 2 == 0)
    return bytes(key)


def tdes(key, data, encrypt=True):
    cipher = Cipher(TripleDES(key + key[:8]), modes.CBC(bytes(8)))
    op = cipher.encryptor() if encrypt else cipher.decryptor()
    return op.update(data) + op.finalize()


def des(key8, block, encrypt=True):
    cipher = Cipher(TripleDES(key8 * 3), modes.ECB())
    op = cipher.encryptor() if encrypt else cipher.decryptor()
    return op.update(block) + op.finalize()


def retail_mac(key, msg):
    """ISO/IEC 9797-1 MAC algorithm 3, padding method 2."""
    y = bytes(8)
    for i in range(0, len(pad(msg)), 8):
        block = pad(msg)[i : i + 8]
        y = des(key[:8], bytes(a ^ b for a, b in zip(y, block)))
    return des(key[:8], des(key[8:], y, encrypt=False))


def do(tag, value):
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    elif n < 0x100:
        length = bytes([0x81, n])
    else:
        length = bytes([0x82, n >> 8, n & 0xFF])
    return bytes([tag]) + length + value


def parse_dos(data):
    out = []
    while data:
        tag, first = data[0], data[1]
        if first == 0x81:
            n, h = data[2], 3
        elif first == 0x82:
            n, h = (data[2] << 8) | data[3], 4
        else:
            n, h = first, 2
        out.append((tag, data[h : h + n], data[: h + n]))
        data = data[h + n :]
    return out


class Card:
    def __init__(self, reader_name):
        matches = [r for r in readers() if str(r) == reader_name]
        if not matches:
            raise SystemExit(f"reader {reader_name!r} not found")
        self.conn = matches[0].createConnection()
        self.conn.connect()

    def tx(self, apdu):
        data, sw1, sw2 = self.conn.transmit(list(apdu))
        while sw1 == 0x61:
            more, sw1, sw2 = self.conn.transmit([0x00, 0xC0, 0x00, 0x00, sw2])
            data += more
        return bytes(data), (sw1 << 8) | sw2


class Session:
    def __init__(self, card, ks_enc, ks_mac, ssc):
        self.card, self.ks_enc, self.ks_mac, self.ssc = card, ks_enc, ks_mac, ssc

    def command(self, ins, p1, p2, data=b"", le=None):
        self.ssc += 1
        body = b""
        if data:
            body += do(0x87, b"\x01" + tdes(self.ks_enc, pad(data)))
        if le is not None:
            body += do(0x97, bytes([le]))
        n = self.ssc.to_bytes(8, "big") + pad(bytes([0x0C, ins, p1, p2])) + body
        body += do(0x8E, retail_mac(self.ks_mac, n))
        resp, sw = self.card.tx(bytes([0x0C, ins, p1, p2, len(body)]) + body + b"\x00")
        self.ssc += 1
        if not resp:
            raise SystemExit(f"secure messaging error {sw:04X}")
        k, plain = self.ssc.to_bytes(8, "big"), b""
        for tag, value, raw in parse_dos(resp):
            if tag == 0x87:
                k += raw
                plain = unpad(tdes(self.ks_enc, value[1:], encrypt=False))
            elif tag == 0x99:
                k += raw
            elif tag == 0x8E and retail_mac(self.ks_mac, k) != value:
                raise SystemExit("response MAC does not verify")
        return plain, sw


def bac(card, mrz_information):
    seed = hashlib.sha1(mrz_information.encode()).digest()[:16]
    k_enc, k_mac = kdf(seed, 1), kdf(seed, 2)
    if card.tx(bytes.fromhex("00A4040C07A0000002471001"))[1] != 0x9000:
        raise SystemExit("no LDS application")
    rnd_icc, sw = card.tx(bytes.fromhex("0084000008"))
    if sw != 0x9000:
        return None, sw
    rnd_ifd, k_ifd = os.urandom(8), os.urandom(16)
    e_ifd = tdes(k_enc, rnd_ifd + rnd_icc + k_ifd)
    resp, sw = card.tx(bytes.fromhex("0082000028") + e_ifd + retail_mac(k_mac, e_ifd) + b"\x28")
    if sw != 0x9000:
        return None, sw
    if retail_mac(k_mac, resp[:32]) != resp[32:]:
        raise SystemExit("M_ICC does not verify")
    r = tdes(k_enc, resp[:32], encrypt=False)
    if r[:8] != rnd_icc or r[8:16] != rnd_ifd:
        raise SystemExit("chip did not echo the challenges")
    kseed = bytes(a ^ b for a, b in zip(k_ifd, r[16:]))
    ssc = int.from_bytes(rnd_icc[4:] + rnd_ifd[4:], "big")
    return Session(card, kdf(kseed, 1), kdf(kseed, 2), ssc), 0x9000


def read_ef(session, fid):
    _, sw = session.command(0xA4, 0x02, 0x0C, fid.to_bytes(2, "big"))
    if sw != 0x9000:
        raise SystemExit(f"SELECT {fid:04X}: {sw:04X}")
    out = b""
    while True:
        chunk, sw = session.command(0xB0, len(out) >> 8, len(out) & 0xFF, le=0xE0)
        if sw == 0x6B00:
            return out
        if sw != 0x9000:
            raise SystemExit(f"READ BINARY {fid:04X}: {sw:04X}")
        out += chunk
        if len(chunk) < 0xE0:
            return out


def main():
    reader, mrz_information, fids = sys.argv[1], sys.argv[2], sys.argv[3:]
    card = Card(reader)
    session, sw = bac(card, mrz_information)
    if session is None:
        print(json.dumps({"error": f"{sw:04X}"}))
        sys.exit(3)
    print(json.dumps({f.upper(): read_ef(session, int(f, 16)).hex() for f in fids}))


if __name__ == "__main__":
    main()
