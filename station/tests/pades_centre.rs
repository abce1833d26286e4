//! Issue 21, what a relying party sees: a citizen signs a PDF with the card's 9C key through
//! OpenSC in pyHanko, with a time-stamp from the centre's `/tsa` and the revocation information
//! fetched through the certificate's AIA (OCSP, caIssuers) and CRL distribution point — all at
//! the centre's public listener — embedded as PAdES B-LTA. pyHanko is the oracle twice: `pyhanko
//! sign validate` (on line: intact, trusted, time-stamped, valid) and pyHanko's ETSI EN 319 102-1
//! § 5.6.3 LTA validation on the document's own validation information (PASSED). After the card
//! is revoked, a new signature validates as revoked, while the first one still passes the LTA
//! validation at its time-stamped signing time.
//!
//! Real parts throughout: PostgreSQL and `idcentral serve` with its public listener
//! (testrig::centre), an enrolled station, pcscd + vpcd + vchip, OpenSC's PKCS#11 module.
//! Needs `idcentral` built in the same target dir as the tests build it (`cargo test -p central --no-run`) and
//! the pcsc lock (`flock /tmp/idstation-pcsc.lock`) like the other card tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use testrig::centre::Centre;

#[path = "common/enrolled.rs"]
mod enrolled;
use enrolled::*;

const OPENSC: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";

fn opensc_conf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../chip/tests/opensc.conf")
}

/// The PKCS#11 slot OpenSC gives the card in `reader`.
fn p11_slot(reader: &str) -> String {
    let out = Command::new("pkcs11-tool")
        .env("OPENSC_CONF", opensc_conf())
        .args(["--module", OPENSC, "-L"])
        .output()
        .expect("pkcs11-tool");
    assert!(out.status.success(), "{}", text(&out));
    let list = String::from_utf8_lossy(&out.stdout);
    list.lines()
        .filter(|l| l.starts_with("Slot ") && l.contains(reader))
        .find_map(|l| l.split(['(', ')']).nth(1).map(str::to_string))
        .unwrap_or_else(|| panic!("no PKCS#11 slot for {reader:?} in:\n{list}"))
}

/// `pades_sign.py` in `mode` (`lta` or `t`): the signer certificate's serial, lower-case hex.
fn sign(st: &Station, reader: &str, out: &Path, tsa: &str, mode: &str) -> String {
    let mut py = Command::new("python3");
    py.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/pades_sign.py"))
        .arg(OPENSC)
        .arg(p11_slot(reader))
        .arg(out)
        .arg(st.ca_file("root"))
        .arg(st.ca_file("esign"))
        .args([tsa, mode])
        .env("OPENSC_CONF", opensc_conf());
    let o = holder_pin::with_stdin(py, &[PIN]);
    assert!(o.status.success(), "pyHanko {mode}:\n{}", text(&o));
    assert!(!text(&o).contains(PIN), "the PIN in pyHanko's output");
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// `pyhanko sign validate` with the centre's root as the only trust anchor: AdES validation,
/// revocation information required, fetched on line where the document does not embed it.
fn validate(st: &Station, pdf: &Path) -> Output {
    Command::new("pyhanko")
        .args([
            "sign",
            "validate",
            "--pretty-print",
            "--trust-replace",
            "--trust",
        ])
        .arg(st.ca_file("root"))
        .arg("--other-certs")
        .arg(st.ca_file("esign"))
        .arg(pdf)
        .output()
        .expect("the pyhanko command (pyhanko-cli, scripts/install-deps.sh)")
}

/// `pades_validate_lta.py`: pyHanko's ETSI EN 319 102-1 § 5.6.3 validation on the document's own
/// validation information (nothing fetched), exit 0 only on PASSED.
fn validate_lta(st: &Station, pdf: &Path) -> Output {
    Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/pades_validate_lta.py"))
        .arg(pdf)
        .arg(st.ca_file("root"))
        .arg(st.ca_file("esign"))
        .output()
        .expect("python3 with pyHanko (scripts/install-deps.sh)")
}

/// `openssl ocsp` at the centre's public listener for the certificate `cert` (PEM) until it
/// answers `revoked`; the answer's text.
fn wait_revoked(st: &Station, cert: &Path, url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = Command::new("openssl")
            .args(["ocsp", "-no_nonce", "-url", url, "-issuer"])
            .arg(st.ca_file("esign"))
            .arg("-CAfile")
            .arg(st.ca_file("root"))
            .arg("-cert")
            .arg(cert)
            .output()
            .expect("openssl ocsp");
        let answer = text(&o);
        if answer.contains(": revoked") {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "no `revoked` OCSP answer 10 s after the revocation:\n{answer}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_citizen_signs_pades_b_lta_through_the_centres_services_and_it_outlives_the_revocation() {
    let mut centre = Centre::start_public();
    let base = centre.public_base().expect("a public listener").to_owned();
    centre.serve();
    let st = Station::enrol(&centre, "TAS01", "tas01-st1");
    let slot = testrig::Slot::lease();
    let card = slot.insert(&st.blank_card(0x5B00_0001), &[]);
    let o = st.issue("holder-01.json", &slot.reader_name, &[]);
    assert!(o.status.success(), "issue:\n{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let document = r["document"].as_str().unwrap().to_owned();
    let tsa = format!("{base}/tsa");

    // PAdES B-LTA: signed on the card, time-stamped by the centre, the OCSP response, CRL and CA
    // certificates fetched through the certificate's own AIA and CDP and embedded.
    let before = st.dir.join("signed-before.pdf");
    let serial = sign(&st, &slot.reader_name, &before, &tsa, "lta");
    let o = validate(&st, &before);
    let report = text(&o);
    assert!(o.status.success(), "pyhanko validate (B-LTA):\n{report}");
    for expected in [
        "The signer's certificate is trusted.",
        "The signature is cryptographically sound.",
        "This timestamp is backed by a time stamping authority.",
        "The signature is judged VALID.",
    ] {
        assert!(
            report.contains(expected),
            "{expected:?} missing in:\n{report}"
        );
    }
    let o = validate_lta(&st, &before);
    assert!(o.status.success(), "AdES-LTA validation:\n{}", text(&o));
    assert!(text(&o).contains("subindication: OK"), "{}", text(&o));

    // The card is revoked (lost); the centre's OCSP says so for the signing certificate.
    let o = st.run(
        &[
            "--json",
            "revoke",
            "--document",
            &document,
            "--reason",
            "lost",
            "--operator",
            "clerk",
        ],
        &[CLERK_PASSWORD],
        &[],
    );
    assert!(o.status.success(), "revoke:\n{}", text(&o));
    let sign_cert = st
        .certificates_of(&document)
        .into_iter()
        .find(|der| {
            use x509_cert::der::Decode;
            let c = x509_cert::Certificate::from_der(der).expect("a certificate");
            let hex: String = c
                .tbs_certificate()
                .serial_number()
                .as_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            hex.trim_start_matches('0') == serial.trim_start_matches('0')
        })
        .unwrap_or_else(|| panic!("the signing certificate {serial} is not {document}'s"));
    let pem = st.dir.join("sign-cert.pem");
    let o = Command::new("openssl")
        .args(["x509", "-inform", "DER", "-out"])
        .arg(&pem)
        .arg("-in")
        .arg({
            let der = st.dir.join("sign-cert.der");
            std::fs::write(&der, &sign_cert).unwrap();
            der
        })
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let answer = wait_revoked(&st, &pem, &format!("{base}/ocsp"));
    assert!(answer.contains("Reason: keyCompromise"), "{answer}");

    // A signature made now (B-T: the card still signs) validates as revoked.
    let after = st.dir.join("signed-after.pdf");
    assert_eq!(sign(&st, &slot.reader_name, &after, &tsa, "t"), serial);
    let o = validate(&st, &after);
    let report = text(&o);
    assert!(!o.status.success(), "a revoked signer validated:\n{report}");
    assert!(
        report.to_ascii_lowercase().contains("revoked"),
        "the report does not say revoked:\n{report}"
    );
    // and the LTA oracle is no rubber stamp: a B-T signature of a revoked card carries no
    // long-term validation material and fails it.
    let o = validate_lta(&st, &after);
    assert!(!o.status.success(), "B-T passed as LTA:\n{}", text(&o));

    // The B-LTA signature made before the revocation stays valid at its time-stamped time, on
    // the validation information it carries alone.
    let o = validate_lta(&st, &before);
    assert!(
        o.status.success(),
        "the B-LTA signature made before the revocation:\n{}",
        text(&o)
    );
    card.pull();
}
