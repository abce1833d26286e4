"""Sign a one-page PDF with the card's 9C key through PKCS#11 (OpenSC) with pyHanko, as a
citizen's signing application would: PAdES with a time-stamp from the centre's TSA and, for
B-LTA, the validation information (OCSP responses, CRLs, CA certificates) fetched through the
certificates' AIA and CRL distribution points, embedded in the document security store and
sealed with a document time-stamp.

Usage: pades_sign.py MODULE SLOT OUT.pdf ROOT.pem ESIGN-CA.pem TSA-URL lta|t   (the PIN on stdin)
  lta  PAdES B-LTA (fails if the signer's revocation status cannot be fetched or is not good)
  t    PAdES B-T (time-stamped signature only; nothing fetched at signing time)
Prints the signer certificate's serial (lower-case hex) on success. Validation is done apart,
with `pyhanko sign validate`.
"""
import io
import sys

from asn1crypto import pem, x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, pkcs11, signers, timestamps
from pyhanko_certvalidator import ValidationContext

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from pyhanko_sign import one_page_pdf, open_session  # noqa: E402


def load_cert(path: str) -> x509.Certificate:
    with open(path, "rb") as f:
        data = f.read()
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    return x509.Certificate.load(data)


def main() -> None:
    module, slot, out_path, root, esign, tsa_url, mode = sys.argv[1:8]
    if mode not in ("lta", "t"):
        sys.exit(f"mode must be lta or t, not {mode!r}")
    pin = sys.stdin.readline().strip()
    root_cert, esign_cert = load_cert(root), load_cert(esign)
    lta = mode == "lta"
    vc = ValidationContext(
        trust_roots=[root_cert],
        other_certs=[esign_cert],
        allow_fetching=True,
        revocation_mode="hard-fail",
    )
    meta = signers.PdfSignatureMetadata(
        field_name="CitizenSignature",
        subfilter=fields.SigSeedSubFilter.PADES,
        embed_validation_info=lta,
        use_pades_lta=lta,
        validation_context=vc if lta else None,
    )
    session = open_session(module, slot, pin)
    try:
        # 9C is OpenSC key id 02 with CKA_ALWAYS_AUTHENTICATE: the PIN again for the signature.
        signer = pkcs11.PKCS11Signer(
            session,
            key_id=b"\x02",
            cert_id=b"\x02",
            ca_chain=[esign_cert],
            bulk_fetch=False,
            base_sign_kwargs={"pin": pin},
        )
        writer = IncrementalPdfFileWriter(io.BytesIO(one_page_pdf()))
        with open(out_path, "wb") as f:
            signers.sign_pdf(
                writer,
                meta,
                signer=signer,
                timestamper=timestamps.HTTPTimeStamper(tsa_url),
                output=f,
            )
        print(format(signer.signing_cert.serial_number, "x"))
    finally:
        session.close()


if __name__ == "__main__":
    main()
