//! Document Signer (and CSCA) rollover under dual control (issue 9 item 1, rules of issue 8)
//! end to end through the `idstation` binary: a real SoftHSM2 token, the registry file, pcscd +
//! vpcd with `vchip` cards for the card issuances. Oracles: `openssl verify` for the DS
//! certificate chain and the CSCA link certificates, pkilint's RFC 5280 linters (it has no
//! ICAO 9303 linter), and `openssl cms -verify` with the CSCA as the only trust anchor for
//! EF.SOD read from a card through PACE.

use std::path::{Path, PathBuf};
use std::process::Command;

use personalization::apdu::Channel;
use personalization::transport::pcsc::Pcsc;
use personalization::{lds, mrz, sod};

#[path = "common/holder_pin.rs"]
mod holder_pin;
#[path = "common/rotation.rs"]
mod rig;
#[path = "common/software_profiles.rs"]
mod software_profiles;
use rig::*;

impl Station {
    /// File a rotation request for `ca` by `op`; returns the request.
    fn request(&self, op: &str, ca: &str) -> serde_json::Value {
        self.json(op, &["ca", "rotate", "--ca", ca, "--operator", op])
    }

    fn approve(&self, op: &str, id: i64) -> serde_json::Value {
        self.json(op, &["ca", "approve", &id.to_string(), "--operator", op])
    }

    /// Rotate `ca` with admin requesting and bob approving (quorum 1).
    fn rotate(&self, ca: &str) -> serde_json::Value {
        let id = self.request("admin", ca)["id"].as_i64().expect("id");
        let r = self.approve("bob", id);
        assert_eq!(r["request"]["state"], "executed", "{r}");
        r["executed"].clone()
    }

    /// (label, state) of every key of registry CA `ca`, in creation order.
    fn keys(&self, ca: &str) -> Vec<(String, String)> {
        self.registry()
            .ca_keys(ca)
            .expect("ca keys")
            .into_iter()
            .map(|k| (k.label, k.state.as_str().to_string()))
            .collect()
    }

    fn active(&self, ca: &str) -> Vec<String> {
        self.keys(ca)
            .into_iter()
            .filter(|(_, s)| s == "active")
            .map(|(l, _)| l)
            .collect()
    }

    fn ca_pem(&self, label: &str) -> PathBuf {
        self.data.join("ca").join(format!("{label}.pem"))
    }

    fn link(&self, certified: &str, signer: &str) -> PathBuf {
        self.data
            .join("ca")
            .join(format!("link-{certified}-by-{signer}.pem"))
    }

    /// (action, object, details) of every audit event.
    fn audit(&self) -> Vec<(String, String, String)> {
        let reg = self.registry();
        let mut st = reg
            .connection()
            .prepare("SELECT action, object, details FROM audit_events ORDER BY seq")
            .expect("query");
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows")
    }
}

/// `openssl verify` with `trusted` as the only trust anchor and `untrusted` intermediates.
fn verifies(trusted: &Path, untrusted: &[&Path], cert: &Path) -> bool {
    let mut c = Command::new("openssl");
    c.arg("verify").arg("-CAfile").arg(trusted);
    let bundle = cert.with_extension(format!("untrusted-{}.pem", untrusted.len()));
    if !untrusted.is_empty() {
        let mut all = Vec::new();
        for u in untrusted {
            all.extend(std::fs::read(u).expect("read untrusted"));
        }
        std::fs::write(&bundle, all).expect("write bundle");
        c.arg("-untrusted").arg(&bundle);
    }
    c.arg(cert);
    let o = sh(&mut c);
    let _ = std::fs::remove_file(&bundle);
    o.status.success()
}

/// pkilint reports no finding at WARNING or above.
fn pkilint(tool: &str, files: &[&Path]) {
    let o = sh(Command::new(tool)
        .args(["lint", "-s", "WARNING"])
        .args(files));
    assert!(
        o.status.success() && o.stdout.iter().all(u8::is_ascii_whitespace),
        "{tool} found problems in {files:?}:\n{}",
        text(&o)
    );
}

fn subject(cert: &Path) -> String {
    let o = sh_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
            .arg(cert),
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn a_document_signer_rollover_needs_two_ca_admins_and_certifies_the_new_key_under_the_csca() {
    let st = Station::new();
    st.set_rotation(2, 86_400);
    // A clerk cannot even file one (CLI role check, exit 6).
    let o = st.cmd(
        "clerk",
        &["ca", "rotate", "--ca", "ds", "--operator", "clerk"],
    );
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    // The alias `ds` files a request for the registry CA `document-signer`.
    let req = st.request("admin", "ds");
    assert_eq!(req["ca"], "document-signer", "{req}");
    assert_eq!(req["key"], "ds-1", "{req}");
    let id = req["id"].as_i64().expect("id");
    let ids = id.to_string();

    st.refused(
        "admin",
        &["ca", "approve", &ids, "--operator", "admin"],
        "cannot also approve it (dual control)",
    );
    st.refused(
        "clerk",
        &["ca", "approve", &ids, "--operator", "clerk"],
        "role clerk may not approve CA requests (needs ca-admin)",
    );
    let r = st.approve("bob", id);
    assert_eq!(r["request"]["state"], "pending", "{r}");
    st.refused(
        "bob",
        &["ca", "approve", &ids, "--operator", "bob"],
        "bob already approved CA request",
    );
    // A second open DS request is a conflict (exit 5), under either name.
    let o = st.cmd(
        "carol",
        &[
            "ca",
            "rotate",
            "--ca",
            "document-signer",
            "--operator",
            "carol",
        ],
    );
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert_eq!(
        st.active("document-signer"),
        vec!["ds-1"],
        "nothing ran yet"
    );
    let attempts = st
        .audit()
        .into_iter()
        .filter(|(a, o, _)| a == "ca.request.refused-attempt" && *o == format!("ca-request:{id}"))
        .count();
    assert_eq!(attempts, 2, "self-approval and repeat approval are audited");
    assert!(
        st.audit()
            .iter()
            .any(|(a, _, d)| a == "operator.refused" && d.contains("clerk")),
        "the clerk's attempts are audited by the role check"
    );

    let r = st.approve("carol", id);
    assert_eq!(r["request"]["state"], "executed", "{r}");
    let e = &r["executed"];
    assert_eq!(e["key"], "ds-2", "{e}");
    assert_eq!(e["old_key"], "ds-1", "{e}");
    assert_eq!(
        st.keys("document-signer"),
        vec![
            ("ds-1".to_string(), "retired".to_string()),
            ("ds-2".to_string(), "active".to_string())
        ]
    );
    // The key history names the requester and both approvers; ds-1's note says it signs no
    // new EF.SOD.
    let reg = st.registry();
    let notes: Vec<(String, String, String)> = reg
        .connection()
        .prepare(
            "SELECT k.label, s.state, coalesce(s.approvers, '') || ' ' || coalesce(s.note, '')
             FROM ca_key_states s JOIN ca_keys k ON k.id = s.key_id
             WHERE k.ca = 'document-signer' ORDER BY s.id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let retired = notes
        .iter()
        .find(|(l, s, _)| l == "ds-1" && s == "retired")
        .unwrap_or_else(|| panic!("{notes:?}"));
    assert!(retired.2.contains("signs no new EF.SOD"), "{retired:?}");
    assert!(
        retired.2.contains("bob") && retired.2.contains("carol"),
        "{retired:?}"
    );
    let audit = st.audit();
    let rotated = audit
        .iter()
        .find(|(a, o, _)| a == "ca.key.rotated" && o == "ca-key:ds-2")
        .expect("ca.key.rotated audited");
    assert!(
        rotated.2.contains("\"requested_by\":\"admin\""),
        "{rotated:?}"
    );

    // openssl: ds-2 chains to the CSCA (and only to it), ds-1 still does.
    let (csca1, ds1, ds2) = (st.ca_pem("csca-1"), st.ca_pem("ds-1"), st.ca_pem("ds-2"));
    assert!(verifies(&csca1, &[], &ds2));
    assert!(verifies(&csca1, &[], &ds1));
    assert!(!verifies(&st.ca_pem("root-ca-1"), &[], &ds2));
    assert!(
        subject(&ds2).contains("CN=idstation Document Signer 2"),
        "{}",
        subject(&ds2)
    );
    // The registry records ds-2's certificate as issued by csca-1.
    let issuer: String = reg
        .connection()
        .query_row(
            "SELECT k.label FROM certificates c JOIN ca_keys k ON k.id = c.issuer_key_id
             WHERE c.purpose = 'document-signer' ORDER BY c.id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(issuer, "csca-1");
    // pkilint has no ICAO 9303 Part 12 linter: RFC 5280 certificate and issuer/subject lints.
    pkilint("lint_pkix_cert", &[&ds2]);
    pkilint("lint_pkix_signer_signee_cert_chain", &[&csca1, &ds2]);

    // CSCA rollover: csca-2 self-signed plus the link certificates; the active DS is still
    // ds-2 (certified by csca-1) until the next DS rollover, which certifies ds-3 under csca-2.
    st.set_rotation(1, 86_400);
    let e = st.rotate("csca");
    assert_eq!(e["key"], "csca-2", "{e}");
    assert_eq!(st.active("csca"), vec!["csca-2"]);
    assert_eq!(st.active("document-signer"), vec!["ds-2"]);
    let e = st.rotate("ds");
    assert_eq!(e["key"], "ds-3", "{e}");
    let (csca2, ds3) = (st.ca_pem("csca-2"), st.ca_pem("ds-3"));
    let new_with_old = st.link("csca-2", "csca-1"); // ICAO 9303 Part 12 CSCA link certificate
    let old_with_new = st.link("csca-1", "csca-2");
    assert!(verifies(&csca2, &[], &ds3));
    assert!(!verifies(&csca1, &[], &ds3));
    // A relying party that only has csca-1 validates ds-3 through the CSCA link certificate,
    // one that only has csca-2 validates ds-2 through OldWithNew.
    assert!(verifies(&csca1, &[&new_with_old], &ds3));
    assert!(!verifies(&csca2, &[], &ds2));
    assert!(verifies(&csca2, &[&old_with_new], &ds2));
    for f in [&csca2, &new_with_old, &old_with_new, &ds3] {
        pkilint("lint_pkix_cert", &[f]);
    }
    pkilint(
        "lint_pkix_signer_signee_cert_chain",
        &[&csca1, &new_with_old],
    );
    pkilint("lint_pkix_signer_signee_cert_chain", &[&csca2, &ds3]);
}

#[test]
fn a_document_signer_rollover_killed_midway_leaves_one_active_ds_and_recover_finishes_it() {
    let st = Station::new();
    let mut n = 1;
    for point in [
        "rotation.approved",
        "rotation.key-generated",
        "rotation.key-recorded",
        "rotation.cert-signed",
        "rotation.cert-recorded",
    ] {
        let id = st.request("admin", "document-signer")["id"]
            .as_i64()
            .expect("id");
        let o = st.cmd_env(
            "bob",
            &["ca", "approve", &id.to_string(), "--operator", "bob"],
            &[("IDSTATION_FAILPOINT", point)],
        );
        assert_eq!(o.status.code(), None, "{point}: not killed:\n{}", text(&o));
        let old = format!("ds-{n}");
        assert_eq!(
            st.active("document-signer"),
            vec![old.clone()],
            "exactly one active DS after a kill at {point}"
        );
        let r = st.json("clerk", &["recover", "--operator", "clerk"]);
        n += 1;
        let new = format!("ds-{n}");
        assert!(
            r.to_string()
                .contains(&format!("finished: rotate document-signer now {new}")),
            "{point}: {r}"
        );
        assert_eq!(st.active("document-signer"), vec![new.clone()], "{point}");
        assert!(st
            .keys("document-signer")
            .contains(&(old, "retired".to_string())));
        assert!(
            verifies(&st.ca_pem("csca-1"), &[], &st.ca_pem(&new)),
            "{point}"
        );
        let r = st.json("clerk", &["recover", "--operator", "clerk"]);
        assert_eq!(r, serde_json::json!([]), "{point}: nothing left");
    }
    // One HSM key per rollover: labels stay contiguous, one DS certificate per key.
    let labels: Vec<String> = st
        .keys("document-signer")
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    assert_eq!(
        labels,
        (1..=n).map(|i| format!("ds-{i}")).collect::<Vec<_>>()
    );
    let certs: i64 = st
        .registry()
        .connection()
        .query_row(
            "SELECT count(*) FROM certificates WHERE purpose = 'document-signer'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(certs, i64::from(n));
}

// ---------------------------------------------------------------------------------------------
// A card issued after the rollover (pcscd + vpcd + vchip)
// ---------------------------------------------------------------------------------------------

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/holders")
        .join(name)
}

impl Station {
    fn blank_card(&self, serial: u32) -> PathBuf {
        let img = self.dir.join(format!("card-{serial:08X}.img"));
        sh_ok(
            Command::new(testrig::vchip_bin().expect("vchip"))
                .args(["create", "--out"])
                .arg(&img)
                .args(["--serial", &serial.to_string()]),
        );
        img
    }

    /// Issue `holder` onto a fresh card, read its LDS back through PACE with the printed MRZ,
    /// and return the path of EF.SOD's ContentInfo (DER).
    fn issue_and_read_sod(&self, holder: &str, serial: u32) -> PathBuf {
        let slot = testrig::Slot::lease();
        let img = self.blank_card(serial);
        let card = slot.insert(&img, &[]);
        let r = self.json(
            "clerk",
            &[
                "issue",
                "--holder",
                fixture(holder).to_str().unwrap(),
                "--reader",
                &slot.reader_name,
                "--operator",
                "clerk",
            ],
        );
        let doc = r["document"].as_str().expect("document").to_string();
        card.pull();
        let show = self.json(
            "clerk",
            &["show", "--document", &doc, "--operator", "clerk"],
        );
        let mrz: [String; 3] = show["mrz"]
            .as_array()
            .expect("mrz")
            .iter()
            .map(|l| l.as_str().expect("line").to_string())
            .collect::<Vec<_>>()
            .try_into()
            .expect("three lines");
        let card = slot.insert(&img, &[]);
        let read = {
            let pcsc = Pcsc::establish().expect("pcsc");
            let mut c = pcsc.connect(&slot.reader_name).expect("connect");
            let mut tx = c.begin().expect("begin");
            let mut ch = Channel::new(&mut tx);
            let info = mrz::bac_mrz_information(&mrz).expect("mrz");
            let access = personalization::pace::Access::pace_mrz(&info);
            lds::read_lds_with(&mut ch, &access).expect("PACE read")
        };
        card.pull();
        let out = self.dir.join(format!("sod-{serial:08X}.der"));
        std::fs::write(&out, sod::content_info_der(&read.sod).expect("sod")).expect("write");
        out
    }
}

/// `openssl cms -verify` of EF.SOD with only `csca` trusted; returns the signer certificate
/// openssl found in it (PEM path).
fn cms_verify(sod: &Path, csca: &Path) -> Result<PathBuf, String> {
    let signer = sod.with_extension("signer.pem");
    let o = sh(Command::new("openssl")
        .args(["cms", "-verify", "-inform", "DER", "-in"])
        .arg(sod)
        .arg("-CAfile")
        .arg(csca)
        .args(["-binary", "-out", "/dev/null", "-signer"])
        .arg(&signer));
    if o.status.success() {
        Ok(signer)
    } else {
        Err(text(&o))
    }
}

fn fingerprint(cert: &Path) -> String {
    let o = sh_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(cert),
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn cards_issued_after_a_document_signer_rollover_carry_the_new_ds_and_verify_under_the_csca() {
    testrig::ensure_pcscd().expect("pcscd with vpcd readers");
    let st = Station::new();
    st.rotate("ds");
    // Card 1: EF.SOD signed by ds-2, its certificate inside; openssl accepts it with csca-1.
    let sod1 = st.issue_and_read_sod("holder-01.json", 0xD5_0001);
    let signer = cms_verify(&sod1, &st.ca_pem("csca-1")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fingerprint(&signer), fingerprint(&st.ca_pem("ds-2")));
    assert_ne!(fingerprint(&signer), fingerprint(&st.ca_pem("ds-1")));

    // After a CSCA rollover the station keeps signing with ds-2 (certified by csca-1) and its
    // own passive authentication uses the CSCA that certified the DS: card 2 issues.
    st.rotate("csca");
    let sod2 = st.issue_and_read_sod("holder-02.json", 0xD5_0002);
    let signer = cms_verify(&sod2, &st.ca_pem("csca-1")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fingerprint(&signer), fingerprint(&st.ca_pem("ds-2")));

    // The next DS rollover certifies ds-3 under csca-2: card 3 verifies with csca-2 only.
    st.rotate("ds");
    let sod3 = st.issue_and_read_sod("holder-03.json", 0xD5_0003);
    let signer = cms_verify(&sod3, &st.ca_pem("csca-2")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fingerprint(&signer), fingerprint(&st.ca_pem("ds-3")));
    assert!(
        cms_verify(&sod3, &st.ca_pem("csca-1")).is_err(),
        "csca-1 alone is not an anchor for ds-3"
    );
    // ds-2 is now retired; card 1, which it signed, still verifies: a retired DS certificate
    // stays valid for the documents it signed.
    cms_verify(&sod1, &st.ca_pem("csca-1")).unwrap_or_else(|e| panic!("{e}"));
}
