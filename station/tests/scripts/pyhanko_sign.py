"""Sign a one-page PDF with the card's 9C key through PKCS#11 (OpenSC) with pyHanko, then
validate the signature against the station's root and e-Signature CA certificates.

Usage: pyhanko_sign.py MODULE SLOT OUT.pdf ROOT.pem ESIGN-CA.pem   (the PIN on standard input)
Prints the signer certificate's serial (lower-case hex) on success.
"""
import io
import sys

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import pkcs11, signers
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from asn1crypto import pem, x509


def one_page_pdf() -> bytes:
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def load_cert(path: str) -> x509.Certificate:
    with open(path, "rb") as f:
        data = f.read()
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    return x509.Certificate.load(data)


def open_session(module: str, slot: str, pin: str):
    """pyHanko's PKCS#11 session on OpenSC. OpenSC's C_GetSlotList lists every PC/SC reader and
    fails as a whole (CKR_DEVICE_ERROR) when one of them changes under it: the test suite runs
    other tests that insert and tear cards in the other virtual readers at the same time. Asked
    again, it answers; anything else, or a third failure, is the test's failure."""
    import time

    import pkcs11 as p11

    for attempt in range(3):
        try:
            return pkcs11.open_pkcs11_session(module, slot_no=int(slot, 0), user_pin=pin)
        except p11.exceptions.DeviceError:
            if attempt == 2:
                raise
            print("C_GetSlotList: CKR_DEVICE_ERROR, asking again", file=sys.stderr)
            time.sleep(0.5)


def main() -> None:
    module, slot, out_path, root, esign = sys.argv[1:6]
    pin = sys.stdin.readline().strip()
    session = open_session(module, slot, pin)
    try:
        # 9C is OpenSC key id 02 with CKA_ALWAYS_AUTHENTICATE: the PIN again for the signature.
        signer = pkcs11.PKCS11Signer(
            session,
            key_id=b"\x02",
            cert_id=b"\x02",
            bulk_fetch=False,
            base_sign_kwargs={"pin": pin},
        )
        meta = signers.PdfSignatureMetadata(field_name="HolderSignature")
        writer = IncrementalPdfFileWriter(io.BytesIO(one_page_pdf()))
        with open(out_path, "wb") as f:
            signers.sign_pdf(writer, meta, signer=signer, output=f)
    finally:
        session.close()
    with open(out_path, "rb") as f:
        reader = PdfFileReader(f)
        sig = reader.embedded_signatures[0]
        vc = ValidationContext(
            trust_roots=[load_cert(root)],
            other_certs=[load_cert(esign)],
            allow_fetching=False,
            revocation_mode="soft-fail",
        )
        status = validate_pdf_signature(sig, vc)
        if not (status.intact and status.valid and status.trusted):
            print(status.pretty_print_details(), file=sys.stderr)
            sys.exit(1)
        print(format(status.signing_cert.serial_number, "x"))


if __name__ == "__main__":
    main()
