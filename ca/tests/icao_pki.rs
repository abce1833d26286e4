//! The eMRTD PKI's certificates and CRL against ICAO Doc 9303-12 (8th edition) §7.1: the CSCA and
//! Document Signer certificates carry what Table 6 marks mandatory (privateKeyUsagePeriod,
//! subjectAltName and issuerAltName with the State's directory name, cRLDistributionPoints,
//! and for the DS the DocumentType extension), and the CSCA's CRL carries no entry extensions
//! (Table 10). openssl decodes every extension (an independent DER decoder); pkilint has no ICAO
//! linter, so its RFC 5280 certificate, issuer-subject and CRL linters run. Keys in SoftHSM2.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{pkilint, run, run_ok, write};
use hsm::KeyStore;

struct Pki {
    dir: tempfile::TempDir,
    csca: ca::Issuer,
    ds: ca::IssuedCert,
}

fn pki(store: &dyn KeyStore) -> Pki {
    let dir = tempfile::tempdir().expect("tempdir");
    let set = profiles::builtin().expect("builtin profiles");
    let now = SystemTime::now();
    store.generate_p256("csca-1").expect("CSCA key");
    let csca = ca::create_root(store, set.cert("csca").unwrap(), "csca-1", now).unwrap();
    store.generate_p256("ds-1").expect("DS key");
    let spki = store.public_key_spki("ds-1").unwrap();
    let ds = ca::issue_station_cert(
        store,
        set.cert("document-signer").unwrap(),
        &csca,
        &spki,
        "idstation Document Signer 1",
        now,
    )
    .unwrap();
    let d = dir.path();
    write(d, "csca.pem", &ca::cert_pem(csca.cert_der()).unwrap());
    write(d, "ds.pem", &ca::cert_pem(&ds.der).unwrap());
    Pki { dir, csca, ds }
}

/// The line of `openssl x509 -text` containing `heading` and the more indented lines under it:
/// that extension's value as openssl decodes it.
fn extension_text(text: &str, heading: &str) -> String {
    let mut lines = text.lines().skip_while(|l| !l.contains(heading));
    let head = lines
        .next()
        .unwrap_or_else(|| panic!("no {heading:?} in\n{text}"));
    let indent = |l: &str| l.len() - l.trim_start().len();
    let body: Vec<&str> = lines
        .take_while(|l| indent(l) > indent(head))
        .map(str::trim)
        .collect();
    format!("{}\n{}", head.trim(), body.join("\n"))
}

fn openssl_text(dir: &Path, file: &str) -> String {
    run_ok("openssl", &["x509", "-in", file, "-noout", "-text"], dir)
}

/// `openssl x509 -dates` prints notBefore in the form the PKUP lines use.
fn not_before(dir: &Path, file: &str) -> String {
    let out = run_ok(
        "openssl",
        &["x509", "-in", file, "-noout", "-startdate"],
        dir,
    );
    out.trim()
        .strip_prefix("notBefore=")
        .expect("notBefore=")
        .to_owned()
}

fn openssl_date(t: SystemTime) -> String {
    // openssl prints "Mon DD HH:MM:SS YYYY GMT" with the day padded by a space.
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let dt = der::DateTime::from_unix_duration(Duration::from_secs(secs)).unwrap();
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {:>2} {:02}:{:02}:{:02} {} GMT",
        MONTHS[usize::from(dt.month()) - 1],
        dt.day(),
        dt.hour(),
        dt.minutes(),
        dt.seconds(),
        dt.year()
    )
}

/// What Table 6 asks of both certificates: subjectAltName and issuerAltName with the State's
/// directory name (§7.1.1.2, localityName = the MRZ code), cRLDistributionPoints with an http
/// URL of the CSCA's CRL (§7.1.1.4; a DS revocation is listed there, and for the CSCA it is its
/// own), and privateKeyUsagePeriod from notBefore for `usage_days` (§4.1 Table 1).
fn assert_names_crl_and_usage_period(
    d: &Path,
    file: &str,
    text: &str,
    start: SystemTime,
    usage_days: u64,
) {
    for name in ["Subject", "Issuer"] {
        assert_eq!(
            extension_text(text, &format!("X509v3 {name} Alternative Name")),
            format!("X509v3 {name} Alternative Name:\nDirName:/L=UZB")
        );
    }
    assert!(
        extension_text(text, "X509v3 CRL Distribution Points")
            .contains("URI:http://pki.idstation.example.com/crl/csca-1.crl"),
        "{text}"
    );
    let pkup_end = start + Duration::from_secs(usage_days * 86_400 - 1);
    assert_eq!(
        extension_text(text, "X509v3 Private Key Usage Period"),
        format!(
            "X509v3 Private Key Usage Period:\nNot Before: {}, Not After: {}",
            not_before(d, file),
            openssl_date(pkup_end)
        )
    );
}

#[test]
fn the_csca_certificate_carries_what_9303_12_table_6_makes_mandatory() {
    let s = common::softhsm_store();
    let p = pki(&s);
    let d = p.dir.path();
    let text = openssl_text(d, "csca.pem");
    assert!(
        extension_text(&text, "X509v3 Key Usage").contains("critical\nCertificate Sign, CRL Sign"),
        "{text}"
    );
    assert!(
        extension_text(&text, "X509v3 Basic Constraints").contains("critical\nCA:TRUE, pathlen:0"),
        "{text}"
    );
    assert!(text.contains("X509v3 Subject Key Identifier"), "{text}");
    assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
    // Table 1: the CSCA key signs for 5 years of its 15 years 3 months.
    let start = p.csca.certificate().tbs_certificate().validity().not_before;
    assert_names_crl_and_usage_period(d, "csca.pem", &text, start.to_system_time(), 1826);
    assert!(
        !text.contains("2.23.136.1.1.6.2"),
        "no DocumentType: {text}"
    );
    pkilint("lint_pkix_cert", &[], &d.join("csca.pem"));
}

#[test]
fn the_document_signer_certificate_carries_what_9303_12_table_6_makes_mandatory() {
    let s = common::softhsm_store();
    let p = pki(&s);
    let d = p.dir.path();
    assert_eq!(
        run_ok("openssl", &["verify", "-CAfile", "csca.pem", "ds.pem"], d).trim(),
        "ds.pem: OK"
    );
    let text = openssl_text(d, "ds.pem");
    assert!(
        extension_text(&text, "X509v3 Key Usage").contains("critical\nDigital Signature\n")
            || extension_text(&text, "X509v3 Key Usage").ends_with("critical\nDigital Signature"),
        "{text}"
    );
    assert!(!text.contains("Basic Constraints"), "{text}");
    assert!(!text.contains("Extended Key Usage"), "{text}");
    // Table 1, §4.1.1: the DS key signs for 3 months of its 10 years 3 months.
    assert_names_crl_and_usage_period(d, "ds.pem", &text, p.ds.not_before, 92);
    // §7.1.1.6 DocumentType, decoded by openssl asn1parse: the extension's OCTET STRING
    // holds SEQUENCE { INTEGER 0, SET { PrintableString "I" } }.
    let parsed = run_ok("openssl", &["asn1parse", "-in", "ds.pem"], d);
    let lines: Vec<&str> = parsed.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains(":2.23.136.1.1.6.2"))
        .unwrap_or_else(|| panic!("no DocumentType extension:\n{parsed}"));
    let value = lines[at + 1..]
        .iter()
        .find(|l| l.contains("OCTET STRING"))
        .expect("extnValue");
    assert!(
        !lines[at + 1].contains("BOOLEAN"),
        "DocumentType must be non-critical (§7.1.1.6): {}",
        lines[at + 1]
    );
    let offset = value.split(':').next().unwrap().trim();
    let inner = run_ok(
        "openssl",
        &["asn1parse", "-in", "ds.pem", "-strparse", offset],
        d,
    );
    let shape: Vec<String> = inner
        .lines()
        .map(|l| {
            l.split_once("prim:")
                .or_else(|| l.split_once("cons:"))
                .map(|(_, r)| r.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        shape,
        ["SEQUENCE", "INTEGER :00", "SET", "PRINTABLESTRING :I"],
        "{inner}"
    );
    pkilint("lint_pkix_cert", &[], &d.join("ds.pem"));
    let (code, out) = run(
        "lint_pkix_signer_signee_cert_chain",
        &["lint", "-s", "WARNING", "csca.pem", "ds.pem"],
        d,
    );
    assert!(
        code == 0 && out.trim().is_empty(),
        "pkilint issuer-subject findings:\n{out}"
    );
}

#[test]
fn the_csca_crl_lists_a_revoked_document_signer_without_entry_extensions() {
    let s = common::softhsm_store();
    let p = pki(&s);
    let d = p.dir.path();
    let set = profiles::builtin().unwrap();
    let name = profiles::crl_profile_name("csca");
    assert_eq!(name, "csca-crl");
    let now = SystemTime::now();
    let crl = ca::issue_crl(
        &s,
        set.crl(name).unwrap(),
        &p.csca,
        1,
        &[ca::RevokedEntry {
            serial: p.ds.serial.clone(),
            revoked_at: now - Duration::from_secs(5),
            reason: Some(ca::RevocationReason::KeyCompromise),
        }],
        now,
    )
    .unwrap();
    write(d, "csca.crl.pem", &ca::crl_pem(&crl).unwrap());
    let text = run_ok(
        "openssl",
        &[
            "crl",
            "-in",
            "csca.crl.pem",
            "-CAfile",
            "csca.pem",
            "-noout",
            "-text",
        ],
        d,
    );
    assert!(text.contains("verify OK"), "{text}");
    assert!(text.contains(&p.ds.serial_hex().to_uppercase()), "{text}");
    // Table 10: reasonCode (and every other entry extension) is "x".
    assert!(!text.contains("CRL Reason Code"), "{text}");
    assert!(!text.contains("CRL entry extensions"), "{text}");
    assert!(text.contains("X509v3 CRL Number"), "{text}");
    assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
    // §4.1.5: at least every 90 days.
    let info = ca::CrlInfo::parse(&crl).unwrap();
    assert_eq!(info.revoked, 1);
    let (code, out) = run(
        "openssl",
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            "csca.pem",
            "-CRLfile",
            "csca.crl.pem",
            "ds.pem",
        ],
        d,
    );
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("certificate revoked"), "{out}");
    let next = run_ok(
        "openssl",
        &[
            "crl",
            "-in",
            "csca.crl.pem",
            "-noout",
            "-lastupdate",
            "-nextupdate",
        ],
        d,
    );
    let this_update = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let this_update = SystemTime::UNIX_EPOCH + Duration::from_secs(this_update);
    assert!(
        next.contains(&format!(
            "nextUpdate={}",
            openssl_date(this_update + Duration::from_secs(90 * 86_400))
        )),
        "{next} ({info:?})"
    );
    pkilint(
        "lint_crl",
        &["-t", "CRL", "-p", "PKIX"],
        &d.join("csca.crl.pem"),
    );
}

#[test]
fn the_e_signature_crl_keeps_its_reason_codes() {
    let set = profiles::builtin().unwrap();
    for ca in ["root", "esign", "station-ca"] {
        let name = profiles::crl_profile_name(ca);
        assert_eq!(name, "esign-crl");
        assert!(set.crl(name).unwrap().entry_reasons);
    }
    assert!(!set.crl("csca-crl").unwrap().entry_reasons);
}

/// A CSCA rollover's link certificates (Doc 9303-12 §4.1.4, Table 6 "CSCA Link": the same
/// mandatory extensions as the CSCA) keep the certified CSCA's subject, key, alternative names
/// and key usage period, and name the CRL of the CSCA that signed them.
#[test]
fn csca_link_certificates_name_the_crl_of_the_csca_that_signed_them() {
    let s = common::softhsm_store();
    let p = pki(&s);
    let d = p.dir.path();
    let set = profiles::builtin().unwrap();
    let profile = set.cert("csca").unwrap();
    s.generate_p256("csca-2").expect("CSCA key 2");
    let csca2 = ca::create_root(&s, profile, "csca-2", SystemTime::now()).unwrap();
    let links =
        ca::root_link_certificates(&s, &p.csca, &csca2, profile, SystemTime::now()).unwrap();
    write(d, "csca2.pem", &ca::cert_pem(csca2.cert_der()).unwrap());
    for (file, der, signer, trusted) in [
        (
            "new-with-old.pem",
            &links.new_with_old.der,
            "csca-1",
            "csca.pem",
        ),
        (
            "old-with-new.pem",
            &links.old_with_new.der,
            "csca-2",
            "csca2.pem",
        ),
    ] {
        write(d, file, &ca::cert_pem(der).unwrap());
        assert_eq!(
            run_ok(
                "openssl",
                &["verify", "-CAfile", trusted, "-partial_chain", file],
                d
            )
            .trim(),
            format!("{file}: OK")
        );
        let text = openssl_text(d, file);
        let cdp = extension_text(&text, "X509v3 CRL Distribution Points");
        assert!(
            cdp.contains(&format!(
                "URI:http://pki.idstation.example.com/crl/{signer}.crl"
            )),
            "{file}: {cdp}"
        );
        assert_eq!(
            text.matches("X509v3 CRL Distribution Points").count(),
            1,
            "{text}"
        );
        for name in ["Subject", "Issuer"] {
            assert!(
                extension_text(&text, &format!("X509v3 {name} Alternative Name"))
                    .ends_with("DirName:/L=UZB"),
                "{text}"
            );
        }
        assert!(text.contains("X509v3 Private Key Usage Period"), "{text}");
        pkilint("lint_pkix_cert", &[], &d.join(file));
    }
}

/// The Master List Signer's certificate (Doc 9303-12 §5.3, Table 6: keyUsage digitalSignature
/// critical, extendedKeyUsage 2.23.136.1.1.3 critical, the State's alternative names, the
/// CSCA's CRL, no basicConstraints, no DocumentType), and a Master List (§9, Table 18) of two
/// CSCA certificates and the link between them that `openssl cms` verifies to the CSCA that
/// issued its signer, with the structure Table 18 asks for; our own check refuses a list that
/// another CSCA's signer signed, or that was changed, and a signer that is not a Master List
/// Signer.
#[test]
fn the_master_list_and_its_signer_are_what_9303_12_section_9_and_table_6_say() {
    let s = common::softhsm_store();
    let p = pki(&s);
    let d = p.dir.path();
    let set = profiles::builtin().unwrap();
    s.generate_p256("mls-1").expect("Master List Signer key");
    let now = SystemTime::now();
    let mls = ca::issue_station_cert(
        &s,
        set.cert("master-list-signer").unwrap(),
        &p.csca,
        &s.public_key_spki("mls-1").unwrap(),
        "idstation Master List Signer 1",
        now,
    )
    .unwrap();
    write(d, "mls.pem", &ca::cert_pem(&mls.der).unwrap());
    let text = openssl_text(d, "mls.pem");
    assert!(
        extension_text(&text, "X509v3 Key Usage").contains("critical\nDigital Signature"),
        "{text}"
    );
    assert_eq!(
        extension_text(&text, "X509v3 Extended Key Usage"),
        "X509v3 Extended Key Usage: critical\n2.23.136.1.1.3"
    );
    assert!(!text.contains("Basic Constraints") && !text.contains("2.23.136.1.1.6.2"));
    let start = mls.not_before;
    assert_names_crl_and_usage_period(d, "mls.pem", &text, start, 365);
    pkilint("lint_pkix_cert", &[], &d.join("mls.pem"));

    // Two CSCA keys and the link certificate of the new one under the old.
    let profile = set.cert("csca").unwrap();
    s.generate_p256("csca-2").unwrap();
    let csca2 = ca::create_root(&s, profile, "csca-2", now).unwrap();
    let links = ca::root_link_certificates(&s, &p.csca, &csca2, profile, now).unwrap();
    write(d, "csca2.pem", &ca::cert_pem(csca2.cert_der()).unwrap());
    let listed = vec![
        p.csca.cert_der().to_vec(),
        csca2.cert_der().to_vec(),
        links.new_with_old.der.clone(),
        p.csca.cert_der().to_vec(),
    ];
    let sign = |m: &[u8]| s.sign_p256_sha256("mls-1", m).map_err(ca::CaError::from);
    let ml = ca::master_list::build(&listed, &mls.der, p.csca.cert_der(), now, sign).unwrap();
    std::fs::write(d.join("list.ml"), &ml).unwrap();
    let out = run_ok(
        "openssl",
        &[
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            "list.ml",
            "-CAfile",
            "csca.pem",
            "-purpose",
            "any",
            "-out",
            "content.der",
        ],
        d,
    );
    assert!(out.contains("Verification successful"), "{out}");
    // The content openssl took out is our CscaMasterList, duplicates dropped: v0, three
    // certificates.
    let content = std::fs::read(d.join("content.der")).unwrap();
    assert_eq!(content, ca::master_list::content(&listed).unwrap());
    let parsed = run_ok(
        "openssl",
        &["asn1parse", "-inform", "DER", "-in", "content.der", "-i"],
        d,
    );
    let top: Vec<String> = parsed
        .lines()
        .filter(|l| l.contains("d=1") || l.contains("d=2"))
        .map(|l| l.split(':').skip(1).collect::<Vec<_>>().join(":"))
        .collect();
    assert!(
        top[0].contains("INTEGER") && top[0].ends_with(":00"),
        "{parsed}"
    );
    assert!(top[1].contains("SET"), "{parsed}");
    assert_eq!(
        top.iter().filter(|l| l.contains("SEQUENCE")).count(),
        3,
        "{parsed}"
    );
    // Table 18 as openssl prints the SignedData.
    let printed = run_ok(
        "openssl",
        &[
            "cms", "-cmsout", "-print", "-inform", "DER", "-in", "list.ml",
        ],
        d,
    );
    for want in [
        "version: 3",
        "eContentType: undefined (2.23.136.1.1.2)",
        "subjectKeyIdentifier",
        "signingTime",
        "crls:\n      <ABSENT>",
    ] {
        assert!(printed.contains(want), "{want:?} not in\n{printed}");
    }
    assert_eq!(printed.matches("d.certificate:").count(), 2, "{printed}");

    let got = ca::master_list::verify(&ml, &[p.csca.cert_der().to_vec()]).unwrap();
    assert_eq!(got.certificates.len(), 3);
    assert!(got.certificates.contains(&links.new_with_old.der));
    assert_eq!(got.signer, mls.der);
    let refused = |r: ca::Result<ca::master_list::MasterListContent>| r.unwrap_err().to_string();
    let refused_build = |r: ca::Result<Vec<u8>>| r.unwrap_err().to_string();
    assert!(
        refused(ca::master_list::verify(&ml, &[csca2.cert_der().to_vec()]))
            .contains("no trusted CSCA certificate issued the Master List Signer")
    );
    // A changed certificate list: its digest is not the signed one. A changed signature (the
    // last byte of the DER ContentInfo is the signature's): it does not verify.
    let content = ca::master_list::content(&listed).unwrap();
    let at = ml
        .windows(content.len())
        .position(|w| w == content.as_slice())
        .expect("the content in the list")
        + content.len() / 2;
    let mut changed = ml.clone();
    changed[at] ^= 1;
    let anchors = [p.csca.cert_der().to_vec()];
    assert!(refused(ca::master_list::verify(&changed, &anchors)).contains("messageDigest"));
    let mut changed = ml.clone();
    *changed.last_mut().unwrap() ^= 1;
    assert!(refused(ca::master_list::verify(&changed, &anchors)).contains("does not verify"));
    let not_mls = |m: &[u8]| s.sign_p256_sha256("ds-1", m).map_err(ca::CaError::from);
    assert!(refused_build(ca::master_list::build(
        &listed,
        &p.ds.der,
        p.csca.cert_der(),
        now,
        not_mls
    ))
    .contains("id-icao-cscaMasterListSigningKey"));
    assert!(refused_build(ca::master_list::build(
        &listed,
        &mls.der,
        csca2.cert_der(),
        now,
        sign
    ))
    .contains("did not issue"));
}
