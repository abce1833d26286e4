"""Validate the first signature of a PDF as PAdES B-LTA with pyHanko's implementation of ETSI EN
319 102-1, section 5.6.3 (validation of a signature providing long-term availability and
integrity of validation material): revocation information is required for every certificate and
is taken only from the document (its DSS and the signature), never fetched on line, so the answer
is the one a relying party gets years later with the centre unreachable.

Usage: pades_validate_lta.py IN.pdf ROOT.pem ESIGN-CA.pem
Prints the AdES indication and subindication, the best signature time and the oldest document
time-stamp; exits 0 only on PASSED (AdESPassed.OK).
"""
import asyncio
import sys

from asn1crypto import pem, x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation.ades import ades_lta_validation
from pyhanko.sign.validation.policy_decl import (
    LocalKnowledge,
    PdfSignatureValidationSpec,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
)
from pyhanko.sign.validation.ades import AdESPassed
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy
from pyhanko_certvalidator.registry import SimpleTrustManager


def load_cert(path: str) -> x509.Certificate:
    with open(path, "rb") as f:
        data = f.read()
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    return x509.Certificate.load(data)


async def main() -> int:
    pdf, root, esign = sys.argv[1:4]
    policy = CertValidationPolicySpec(
        trust_manager=SimpleTrustManager.build(trust_roots=[load_cert(root)]),
        revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO),
    )
    spec = PdfSignatureValidationSpec(
        SignatureValidationSpec(
            cert_validation_policy=policy,
            revinfo_gathering_policy=RevocationInfoGatheringSpec(
                online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY
            ),
            local_knowledge=LocalKnowledge(known_certs=[load_cert(esign)]),
        )
    )
    with open(pdf, "rb") as f:
        reader = PdfFileReader(f)
        sig = reader.embedded_signatures[0]
        result = await ades_lta_validation(sig, spec)
    print(f"indication: {result.ades_subindic.status.name}")
    print(f"subindication: {result.ades_subindic.name}")
    print(f"best signature time: {result.best_signature_time.isoformat()}")
    oldest = result.oldest_evidence_record_timestamp
    print(f"oldest document time-stamp: {oldest.isoformat() if oldest else 'none'}")
    return 0 if result.ades_subindic == AdESPassed.OK else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
