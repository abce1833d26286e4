//! The signer's certificate path of an export or of the audit log: each link checked up to the
//! trusted root (RFC 5280 §6 basics), the audit-signing extended key usage, and CRLs.

use der::{Decode, Encode};
use p256::ecdsa::VerifyingKey;
use p256::pkcs8::DecodePublicKey;
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::Certificate;

use super::{bad, AUDIT_SIGNING_EKU, ECDSA_WITH_SHA256};
use crate::audit::verify_der;
use crate::Result;

pub(super) fn parse_certs(bytes: &[u8], what: &str) -> Result<Vec<Certificate>> {
    let is_pem = std::str::from_utf8(bytes)
        .map(|s| s.contains("-----BEGIN CERTIFICATE"))
        .unwrap_or(false);
    if is_pem {
        let v = Certificate::load_pem_chain(bytes)
            .map_err(|e| bad(format!("{what}: not PEM certificates: {e}")))?;
        if v.is_empty() {
            return Err(bad(format!("{what}: no certificate found")));
        }
        Ok(v)
    } else {
        Ok(vec![Certificate::from_der(bytes).map_err(|e| {
            bad(format!("{what}: not a DER certificate: {e}"))
        })?])
    }
}

pub(super) fn key_of(c: &Certificate) -> Result<VerifyingKey> {
    let spki = c
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| bad(e.to_string()))?;
    VerifyingKey::from_public_key_der(&spki).map_err(|_| {
        bad(format!(
            "{}: public key is not ECDSA P-256",
            c.tbs_certificate().subject()
        ))
    })
}

/// Check `child` was issued and signed by `parent` and both are valid at `at` (unix seconds).
pub(super) fn check_link(
    child: &Certificate,
    parent: &Certificate,
    at: u64,
    idx: usize,
) -> Result<()> {
    let (ct, pt) = (child.tbs_certificate(), parent.tbs_certificate());
    let who = format!("chain certificate {idx} ({})", ct.subject());
    if ct.issuer() != pt.subject() {
        return Err(bad(format!(
            "{who}: issuer {} is not the next certificate's subject {}",
            ct.issuer(),
            pt.subject()
        )));
    }
    if child.signature_algorithm().oid != ECDSA_WITH_SHA256 {
        return Err(bad(format!(
            "{who}: signature algorithm {} is not ecdsa-with-SHA256",
            child.signature_algorithm().oid
        )));
    }
    match pt.get_extension::<BasicConstraints>() {
        Ok(Some((_, bc))) if bc.ca => {}
        _ => {
            return Err(bad(format!(
                "{who}: its issuer {} is not a CA (basicConstraints cA)",
                pt.subject()
            )))
        }
    }
    let tbs = ct.to_der().map_err(|e| bad(format!("{who}: {e}")))?;
    let sig = child
        .signature()
        .as_bytes()
        .ok_or_else(|| bad(format!("{who}: signature bit string has unused bits")))?;
    if !verify_der(&key_of(parent)?, &tbs, sig) {
        return Err(bad(format!(
            "{who}: signature does not verify with {}'s key",
            pt.subject()
        )));
    }
    let nb = ct.validity().not_before.to_unix_duration().as_secs();
    let na = ct.validity().not_after.to_unix_duration().as_secs();
    if at < nb || at > na {
        return Err(bad(format!("{who}: not valid at the export time")));
    }
    Ok(())
}

/// The signer must be a station audit certificate: its extendedKeyUsage holds
/// `id-kp-idstationAuditSigning` (no holder, CA or Document Signer certificate carries it).
pub(super) fn check_audit_signer(signer: &Certificate) -> Result<()> {
    let tbs = signer.tbs_certificate();
    let eku = tbs
        .get_extension::<x509_cert::ext::pkix::ExtendedKeyUsage>()
        .map_err(|e| {
            bad(format!(
                "chain.pem: signer {}: extendedKeyUsage: {e}",
                tbs.subject()
            ))
        })?;
    match eku {
        Some((_, eku)) if eku.0.contains(&AUDIT_SIGNING_EKU) => Ok(()),
        _ => Err(bad(format!(
            "chain.pem: signer {} is not a station audit certificate: its extendedKeyUsage lacks \
             id-kp-idstationAuditSigning ({AUDIT_SIGNING_EKU}); only the audit-signer profile may sign an export \
             (an audit certificate issued before this rule must be re-certified, docs/audit.md)",
            tbs.subject()
        ))),
    }
}

/// Check `path` (signer first, then its issuers, `root` last) against `crls`: each CRL must be
/// signed by a certificate of the path, and no certificate of the path may be on a CRL of its
/// issuer.
pub(super) fn check_crls(path: &[&Certificate], crls: &[(String, Vec<u8>)]) -> Result<()> {
    use der::DecodePem as _;
    use x509_cert::crl::CertificateList;
    for (name, bytes) in crls {
        let crl = match std::str::from_utf8(bytes)
            .ok()
            .filter(|s| s.contains("-----BEGIN X509 CRL"))
        {
            Some(pem) => CertificateList::from_pem(pem.as_bytes()),
            None => CertificateList::from_der(bytes),
        }
        .map_err(|e| bad(format!("CRL {name}: not a CRL (PEM or DER): {e}")))?;
        let issuer = &crl.tbs_cert_list.issuer;
        let candidates: Vec<&&Certificate> = path
            .iter()
            .filter(|c| c.tbs_certificate().subject() == issuer)
            .collect();
        if candidates.is_empty() {
            return Err(bad(format!(
                "CRL {name}: issuer {issuer} is not a certificate of the export's chain"
            )));
        }
        if crl.signature_algorithm.oid != ECDSA_WITH_SHA256 {
            return Err(bad(format!(
                "CRL {name}: signature algorithm {} is not ecdsa-with-SHA256",
                crl.signature_algorithm.oid
            )));
        }
        let tbs = crl
            .tbs_cert_list
            .to_der()
            .map_err(|e| bad(format!("CRL {name}: {e}")))?;
        let sig = crl
            .signature
            .as_bytes()
            .ok_or_else(|| bad(format!("CRL {name}: signature bit string has unused bits")))?;
        let Some(crl_signer) = candidates.iter().find(|c| {
            key_of(c)
                .map(|k| verify_der(&k, &tbs, sig))
                .unwrap_or(false)
        }) else {
            return Err(bad(format!(
                "CRL {name}: signature does not verify with the key of {issuer} in the chain"
            )));
        };
        let signer_key = crl_signer.tbs_certificate().subject_public_key_info();
        for (i, c) in path.iter().enumerate() {
            let ct = c.tbs_certificate();
            if ct.issuer() != issuer {
                continue;
            }
            // Only certificates that this CRL's key issued (the next certificate in the path
            // with that key is the issuer).
            let issued_by_it = path
                .get(i + 1)
                .map(|p| p.tbs_certificate().subject_public_key_info() == signer_key)
                .unwrap_or(false);
            if !issued_by_it {
                continue;
            }
            if let Some(r) = crl
                .tbs_cert_list
                .revoked_certificates
                .iter()
                .flatten()
                .find(|r| r.serial_number == *ct.serial_number())
            {
                return Err(bad(format!(
                    "chain certificate {i} ({}): serial {} is revoked on CRL {name} (since {}); \
                     a revoked certificate cannot vouch for an export",
                    ct.subject(),
                    ct.serial_number(),
                    r.revocation_date
                )));
            }
        }
    }
    Ok(())
}

/// Check a signer path (the signer first, then link certificates, then its root, as in
/// chain.pem) against the trusted `root` at `at` (unix seconds): every link, the signer's
/// audit-signing extended key usage, and `crls`.
pub(super) fn signer_path(
    path: &[Certificate],
    root: &Certificate,
    at: u64,
    crls: &[(String, Vec<u8>)],
) -> Result<()> {
    // Certificate chain: signer → ... → the trusted root. The path ends at the first
    // certificate the trusted root issued: after a root rollover the chain is [signer, link
    // "old root key by new root", …, old root], so a verifier trusting the old root stops at
    // the signer and one trusting the new root follows the links (docs/audit-format.md).
    let root_der = root.to_der().map_err(|e| bad(e.to_string()))?;
    if path.is_empty() || path[0].to_der().ok() == Some(root_der.clone()) {
        return Err(bad("chain.pem: the signer must not be the root itself"));
    }
    // Each step either reaches the trusted root or links to the next certificate; the last
    // certificate must reach the root (its error is the one reported).
    for i in 0..path.len() {
        match check_link(&path[i], root, at, i) {
            Ok(()) => break,
            Err(e) if i + 1 == path.len() => return Err(e),
            Err(_) => check_link(&path[i], &path[i + 1], at, i)?,
        }
    }
    let signer = &path[0];
    check_audit_signer(signer)?;
    // The audit-signer profile is issued by the root directly (after a root rollover the
    // root's name stays, only its key changes): an audit-signing certificate some issuing CA
    // minted is not the station's.
    let (issuer, root_name) = (
        signer.tbs_certificate().issuer(),
        root.tbs_certificate().subject(),
    );
    if issuer != root_name {
        return Err(bad(format!(
            "chain.pem: signer {} was issued by {issuer}, not by the root {root_name}: a station \
             audit certificate is issued by the root directly",
            signer.tbs_certificate().subject()
        )));
    }
    // The certificates actually used: the path up to the one that links to the root, then
    // the root.
    let mut used: Vec<&Certificate> = Vec::new();
    for c in path {
        used.push(c);
        if check_link(c, root, at, 0).is_ok() {
            break;
        }
    }
    used.push(root);
    check_crls(&used, crls)?;
    Ok(())
}

/// The audit public key from its certificate chain (DER, signer first, as `chain.pem`),
/// checked against the trusted root (PEM or DER) at `at` (unix seconds) like an export's
/// signer (docs/audit-format.md section 7, step 1), CRLs included. `audit verify-log` takes
/// the key from here, never from a key table in the database.
pub fn audit_key_from_chain(
    chain_der: &[Vec<u8>],
    root: &[u8],
    at: u64,
    crls: &[(String, Vec<u8>)],
) -> Result<VerifyingKey> {
    let roots = parse_certs(root, "root certificate")?;
    let path = chain_der
        .iter()
        .map(|d| Certificate::from_der(d).map_err(|e| bad(format!("audit chain: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    signer_path(&path, &roots[0], at, crls)?;
    key_of(&path[0])
}

/// Parse a root certificate given as PEM or DER (for callers that want to check it early).
pub fn parse_root(bytes: &[u8]) -> Result<Vec<u8>> {
    let c = parse_certs(bytes, "root certificate")?;
    c[0].to_der().map_err(|e| bad(e.to_string()))
}
