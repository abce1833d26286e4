//! CA key rotation under dual control (issue 8) end to end through the `idstation` binary: a
//! real SoftHSM2 token, the registry file, pcscd + vpcd with `vchip` cards for the card
//! issuances, and openssl as the independent oracle for chains, link certificates and CRLs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "common/holder_pin.rs"]
mod holder_pin;
#[path = "common/rotation.rs"]
mod rig;
#[path = "common/software_profiles.rs"]
mod software_profiles;
use rig::*;

impl Station {
    /// File a request by `op`; returns its number.
    fn request(&self, op: &str, args: &[&str]) -> i64 {
        let mut full = args.to_vec();
        full.extend_from_slice(&["--operator", op]);
        let r = self.json(op, &full);
        r["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("no request id in {r}"))
    }

    fn approve(&self, op: &str, id: i64) -> serde_json::Value {
        self.json(op, &["ca", "approve", &id.to_string(), "--operator", op])
    }

    /// Rotate CA `ca` with admin requesting and bob approving; returns the execution report.
    fn rotate(&self, ca: &str) -> serde_json::Value {
        let id = self.request("admin", &["ca", "rotate", "--ca", ca]);
        let r = self.approve("bob", id);
        assert_eq!(r["request"]["state"], "executed", "{r}");
        r["executed"].clone()
    }

    /// (label, state) of every key of CA `ca`.
    fn keys(&self, ca: &str) -> Vec<(String, String)> {
        let show = self.json("admin", &["ca", "show"]);
        show.as_array()
            .expect("array")
            .iter()
            .filter(|k| k["ca"] == ca)
            .map(|k| {
                (
                    k["key_label"].as_str().unwrap_or("").to_string(),
                    k["state"].as_str().unwrap_or("").to_string(),
                )
            })
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

    /// Audit events (action, object, details) from the registry.
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

    /// A holder-sign certificate from `ca issue` for a fresh openssl key; returns the PEM path.
    fn issue_cert(&self, name: &str) -> PathBuf {
        let key = self.dir.join(format!("{name}.key"));
        let csr = self.dir.join(format!("{name}.csr"));
        let out = self.dir.join(format!("{name}.pem"));
        sh_ok(
            Command::new("openssl")
                .args([
                    "ecparam",
                    "-name",
                    "prime256v1",
                    "-genkey",
                    "-noout",
                    "-out",
                ])
                .arg(&key),
        );
        sh_ok(
            Command::new("openssl")
                .args(["req", "-new", "-key"])
                .arg(&key)
                .args([
                    "-subj",
                    "/C=UZ/serialNumber=PNOUZ-41505852610128/GN=Gulnora/SN=Toxtayeva/CN=Gulnora Toxtayeva",
                    "-out",
                ])
                .arg(&csr),
        );
        self.ok(
            "admin",
            &[
                "ca",
                "issue",
                "--csr",
                csr.to_str().unwrap(),
                "--profile",
                "software-holder-sign",
                "--out",
                out.to_str().unwrap(),
                "--operator",
                "admin",
            ],
        );
        out
    }

    /// Write a certificate stored in the registry (by serial) as PEM.
    fn cert_from_registry(&self, serial: &str, name: &str) -> PathBuf {
        let reg = self.registry();
        let c = reg
            .certificates_by_serial(serial)
            .expect("query")
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("certificate {serial} not in the registry"));
        let p = self.dir.join(format!("{name}.pem"));
        std::fs::write(&p, ca::cert_pem(&c.data.der).expect("pem")).expect("write");
        p
    }
}

/// `openssl verify` with `trusted` as the only trust anchor and `untrusted` intermediates.
fn openssl_verify(trusted: &Path, untrusted: &[&Path], crls: &[&Path], cert: &Path) -> Output {
    let bundle = cert.with_extension("untrusted.pem");
    let mut all = Vec::new();
    for u in untrusted {
        all.extend(std::fs::read(u).expect("read untrusted"));
    }
    std::fs::write(&bundle, all).expect("write bundle");
    let mut c = Command::new("openssl");
    c.arg("verify").arg("-CAfile").arg(trusted);
    if !untrusted.is_empty() {
        c.arg("-untrusted").arg(&bundle);
    }
    if !crls.is_empty() {
        c.arg("-crl_check");
        for crl in crls {
            c.arg("-CRLfile").arg(crl);
        }
    }
    c.arg(cert);
    sh(&mut c)
}

/// pkilint reports no finding at WARNING or above.
fn pkilint(tool: &str, args: &[&str], file: &Path) {
    let o = sh(Command::new(tool)
        .args(args)
        .args(["-s", "WARNING"])
        .arg(file));
    assert!(
        o.status.success() && o.stdout.iter().all(u8::is_ascii_whitespace),
        "{tool} {args:?} found problems in {}:\n{}",
        file.display(),
        text(&o)
    );
}

fn verifies(trusted: &Path, untrusted: &[&Path], cert: &Path) -> bool {
    openssl_verify(trusted, untrusted, &[], cert)
        .status
        .success()
}

#[test]
fn a_single_admin_a_clerk_a_repeat_approver_and_an_expired_request_cannot_complete_a_rotation() {
    let st = Station::new();
    st.set_rotation(2, 86_400);
    let id = st.request("admin", &["ca", "rotate", "--ca", "esign"]);
    let ids = id.to_string();

    // The requester alone cannot approve.
    st.refused(
        "admin",
        &["ca", "approve", &ids, "--operator", "admin"],
        "cannot also approve it (dual control)",
    );
    // A clerk cannot approve (the role rule), whatever the quorum.
    st.refused(
        "clerk",
        &["ca", "approve", &ids, "--operator", "clerk"],
        "role clerk may not approve CA requests (needs ca-admin)",
    );
    // Quorum 2: bob's approval counts once, a second one by bob is refused.
    let r = st.approve("bob", id);
    assert_eq!(r["request"]["state"], "pending", "{r}");
    assert_eq!(r["request"]["approvals"], serde_json::json!(["bob"]));
    st.refused(
        "bob",
        &["ca", "approve", &ids, "--operator", "bob"],
        "bob already approved CA request",
    );
    assert_eq!(st.active("esign"), vec!["esign-ca-1"], "nothing ran yet");
    // The second distinct approver completes it.
    let r = st.approve("carol", id);
    assert_eq!(r["request"]["state"], "executed", "{r}");
    assert_eq!(r["executed"]["key"], "esign-ca-2");
    assert_eq!(st.active("esign"), vec!["esign-ca-2"]);
    // Settled: no more approvals.
    st.refused(
        "carol",
        &["ca", "approve", &ids, "--operator", "carol"],
        "is executed, not pending",
    );

    // Expiry: a request not approved in time cannot be approved any more.
    st.set_rotation(1, 1);
    let id2 = st.request("admin", &["ca", "rotate", "--ca", "esign"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    st.refused(
        "bob",
        &["ca", "approve", &id2.to_string(), "--operator", "bob"],
        "expired at",
    );
    // A refused (vetoed) request cannot be approved either.
    st.set_rotation(1, 86_400);
    let id3 = st.request("admin", &["ca", "rotate", "--ca", "esign"]);
    // A second open request for the same CA is a conflict.
    let o = st.cmd(
        "bob",
        &["ca", "rotate", "--ca", "esign", "--operator", "bob"],
    );
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    st.ok(
        "carol",
        &[
            "ca",
            "refuse",
            &id3.to_string(),
            "--note",
            "not scheduled",
            "--operator",
            "carol",
        ],
    );
    st.refused(
        "bob",
        &["ca", "approve", &id3.to_string(), "--operator", "bob"],
        "is refused, not pending",
    );
    // CA revocation is guarded by the same rule.
    let id4 = st.request(
        "admin",
        &[
            "ca",
            "revoke-ca",
            "--ca",
            "esign",
            "--reason",
            "keyCompromise",
        ],
    );
    st.refused(
        "admin",
        &["ca", "approve", &id4.to_string(), "--operator", "admin"],
        "cannot also approve it (dual control)",
    );
    st.ok(
        "admin",
        &["ca", "refuse", &id4.to_string(), "--operator", "admin"],
    );
    assert_eq!(st.active("esign"), vec!["esign-ca-2"]);

    let list = st.json("admin", &["ca", "requests"]);
    let states: Vec<(i64, String)> = list
        .as_array()
        .expect("array")
        .iter()
        // The rig's own request that enabled carol.
        .filter(|r| r["kind"] != "operator-add")
        .map(|r| {
            (
                r["id"].as_i64().unwrap(),
                r["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            // admin filed id4 and refused it: a withdrawal.
            (id4, "withdrawn".into()),
            (id3, "refused".into()),
            (id2, "expired".into()),
            (id, "executed".into())
        ]
    );

    // Every request, approval, refusal, expiry and refused attempt is in the audit log.
    // (Leaving out the rig's request 1, which enabled carol.)
    let audit: Vec<_> = st
        .audit()
        .into_iter()
        .filter(|(_, o, _)| o != "ca-request:1")
        .collect();
    let count = |action: &str| audit.iter().filter(|(a, _, _)| a == action).count();
    assert_eq!(count("ca.request.created"), 4);
    assert_eq!(count("ca.request.approved"), 2);
    assert_eq!(count("ca.request.refused"), 1);
    assert_eq!(count("ca.request.withdrawn"), 1);
    assert_eq!(count("ca.request.expired"), 1);
    // admin self-approval ×2, bob twice, carol after execution, bob on expired and refused.
    assert_eq!(count("ca.request.refused-attempt"), 6, "{audit:#?}");
    assert!(audit.iter().any(|(a, _, d)| a == "operator.refused"
        && d.contains("approve CA requests")
        && d.contains("role clerk")));
    assert_eq!(count("ca.key.generated"), 1);
    assert_eq!(count("ca.key.rotated"), 1);
    let gen = audit
        .iter()
        .find(|(a, _, _)| a == "ca.key.generated")
        .expect("generated");
    assert!(
        gen.2.contains("\"approvers\":[\"bob\",\"carol\"]"),
        "{gen:?}"
    );
    assert!(gen.2.contains("\"requested_by\":\"admin\""), "{gen:?}");
    // The registry's key history names requester and approvers.
    let reg = st.registry();
    let k2 = reg.ca_key_by_label("esign-ca-2").unwrap().unwrap();
    let h = reg.ca_key_history(k2.id).unwrap();
    assert_eq!(h[0].state, "generated");
    assert_eq!(h[0].operator, "admin");
    assert_eq!(h[0].approvers, vec!["bob", "carol"]);
    assert_eq!(h.last().unwrap().state, "active");
    let k1 = reg.ca_key_by_label("esign-ca-1").unwrap().unwrap();
    assert_eq!(
        reg.ca_key_history(k1.id).unwrap().last().unwrap().state,
        "retired"
    );
    reg.verify_audit(&Default::default())
        .expect("audit chain intact");
}

#[test]
fn after_a_root_rollover_link_certificates_let_either_root_validate_both_chains() {
    let st = Station::new();
    let old_chain = st.issue_cert("old-holder");
    let esign1 = st.ca_pem("esign-ca-1");
    let root1 = st.ca_pem("root-ca-1");
    let t0 = std::time::Instant::now();
    let e = st.rotate("root");
    eprintln!(
        "root rollover: {:.2} s (execution {:.2} s)",
        t0.elapsed().as_secs_f64(),
        e["seconds"]
    );
    assert_eq!(e["key"], "root-ca-2");
    assert_eq!(e["old_key"], "root-ca-1");
    let root2 = st.ca_pem("root-ca-2");
    let old_with_new = st.data.join("ca/link-root-ca-1-by-root-ca-2.pem");
    let new_with_old = st.data.join("ca/link-root-ca-2-by-root-ca-1.pem");
    for f in [&root2, &old_with_new, &new_with_old] {
        assert!(f.is_file(), "{} missing", f.display());
    }
    assert_eq!(st.active("root"), vec!["root-ca-2"]);
    for f in [&root2, &old_with_new, &new_with_old] {
        pkilint("lint_pkix_cert", &["lint"], f);
    }
    // The e-Signature CA is then rotated under the new root: a new-chain certificate.
    st.rotate("esign");
    let esign2 = st.ca_pem("esign-ca-2");
    pkilint("lint_pkix_cert", &["lint"], &esign2);
    let new_chain = st.issue_cert("new-holder");

    // Each chain under its own root.
    assert!(verifies(&root1, &[&esign1], &old_chain));
    assert!(verifies(&root2, &[&esign2], &new_chain));
    // Without a link certificate, the other root does not validate it (the oracle is not lax).
    assert!(!verifies(&root2, &[&esign1], &old_chain));
    assert!(!verifies(&root1, &[&esign2], &new_chain));
    // Old chain, only the new root trusted + OldWithNew (old root key certified by the new).
    let o = openssl_verify(&root2, &[&esign1, &old_with_new], &[], &old_chain);
    assert!(
        o.status.success(),
        "old chain under the new root:\n{}",
        text(&o)
    );
    // New chain, only the old root trusted + NewWithOld (new root key certified by the old).
    let o = openssl_verify(&root1, &[&esign2, &new_with_old], &[], &new_chain);
    assert!(
        o.status.success(),
        "new chain under the old root:\n{}",
        text(&o)
    );
    // Link certificates are recorded in the registry with their issuer key.
    let reg = st.registry();
    let links: Vec<(String, String)> = reg
        .connection()
        .prepare("SELECT c.purpose, k.label FROM certificates c JOIN ca_keys k ON k.id = c.issuer_key_id WHERE c.purpose LIKE 'link-%' ORDER BY c.id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        links,
        vec![
            ("link-old-with-new".to_string(), "root-ca-2".to_string()),
            ("link-new-with-old".to_string(), "root-ca-1".to_string())
        ]
    );
    // The retired root still signs its CRL; the new esign key's certificate names root-ca-2.
    let crl = st.dir.join("root1.crl");
    st.ok(
        "admin",
        &[
            "ca",
            "crl",
            "--key",
            "root-ca-1",
            "--out",
            crl.to_str().unwrap(),
            "--operator",
            "admin",
        ],
    );
    sh_ok(
        Command::new("openssl")
            .args(["crl", "-noout", "-inform", "DER", "-in"])
            .arg(&crl)
            .arg("-CAfile")
            .arg(&root1)
            .arg("-verify"),
    );
}

#[test]
fn a_rotation_killed_midway_leaves_one_active_key_and_recover_finishes_it() {
    let st = Station::new();
    let mut expected = 1;
    for point in [
        "rotation.approved",
        "rotation.key-generated",
        "rotation.key-recorded",
        "rotation.cert-signed",
        "rotation.cert-recorded",
    ] {
        let id = st.request("admin", &["ca", "rotate", "--ca", "esign"]);
        let o = st.cmd_env(
            "bob",
            &["ca", "approve", &id.to_string(), "--operator", "bob"],
            &[("IDSTATION_FAILPOINT", point)],
        );
        assert_eq!(o.status.code(), None, "{point}: not killed:\n{}", text(&o));
        // Never neither: the old key is still the one active key, and it still issues.
        let old = format!("esign-ca-{expected}");
        assert_eq!(
            st.active("esign"),
            vec![old.clone()],
            "after a kill at {point}"
        );
        let c = st.issue_cert(&format!("during-{point}"));
        assert!(verifies(&st.ca_pem("root-ca-1"), &[&st.ca_pem(&old)], &c));
        // recover finishes the rotation.
        let r = st.json("clerk", &["recover", "--operator", "clerk"]);
        expected += 1;
        let new = format!("esign-ca-{expected}");
        assert!(
            r.to_string()
                .contains(&format!("finished: rotate esign now {new}")),
            "{point}: {r}"
        );
        assert_eq!(
            st.active("esign"),
            vec![new.clone()],
            "after recover at {point}"
        );
        assert!(st
            .keys("esign")
            .contains(&(old.clone(), "retired".to_string())));
        let c = st.issue_cert(&format!("after-{point}"));
        assert!(verifies(&st.ca_pem("root-ca-1"), &[&st.ca_pem(&new)], &c));
        assert_eq!(
            st.json("admin", &["ca", "requests"])[0]["state"],
            "executed",
            "{point}"
        );
        // Nothing left to do.
        let r = st.json("clerk", &["recover", "--operator", "clerk"]);
        assert_eq!(r, serde_json::json!([]), "{point}");
    }
    // The killed runs generated exactly one HSM key each: labels are contiguous.
    let labels: Vec<String> = st.keys("esign").into_iter().map(|(l, _)| l).collect();
    assert_eq!(
        labels,
        (1..=expected)
            .map(|n| format!("esign-ca-{n}"))
            .collect::<Vec<_>>()
    );

    // A root rollover killed after signing (before the link certificates were recorded).
    let id = st.request("admin", &["ca", "rotate", "--ca", "root"]);
    let o = st.cmd_env(
        "bob",
        &["ca", "approve", &id.to_string(), "--operator", "bob"],
        &[("IDSTATION_FAILPOINT", "rotation.cert-signed")],
    );
    assert_eq!(o.status.code(), None, "not killed:\n{}", text(&o));
    assert_eq!(st.active("root"), vec!["root-ca-1"]);
    let r = st.json("clerk", &["recover", "--operator", "clerk"]);
    assert!(
        r.to_string()
            .contains("finished: rotate root now root-ca-2"),
        "{r}"
    );
    assert_eq!(st.active("root"), vec!["root-ca-2"]);
    for f in [
        "link-root-ca-1-by-root-ca-2.pem",
        "link-root-ca-2-by-root-ca-1.pem",
    ] {
        assert!(st.data.join("ca").join(f).is_file(), "{f}");
    }
    let links: i64 = st
        .registry()
        .connection()
        .query_row(
            "SELECT count(*) FROM certificates WHERE purpose LIKE 'link-%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        links, 2,
        "the resumed step recorded one pair of link certificates"
    );

    // A CA revocation killed after its transaction, before the root's CRL was published.
    let id = st.request(
        "admin",
        &[
            "ca",
            "revoke-ca",
            "--ca",
            "esign",
            "--reason",
            "keyCompromise",
        ],
    );
    let o = st.cmd_env(
        "bob",
        &["ca", "approve", &id.to_string(), "--operator", "bob"],
        &[("IDSTATION_FAILPOINT", "rotation.revoked")],
    );
    assert_eq!(o.status.code(), None, "not killed:\n{}", text(&o));
    let r = st.json("clerk", &["recover", "--operator", "clerk"]);
    assert!(r.to_string().contains("finished: revoke-ca esign"), "{r}");
    let last = format!("esign-ca-{expected}");
    assert!(st
        .keys("esign")
        .contains(&(last.clone(), "revoked".to_string())));
    let serial = {
        let o = sh_ok(
            Command::new("openssl")
                .args(["x509", "-noout", "-serial", "-in"])
                .arg(st.ca_pem(&last)),
        );
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .trim_start_matches("serial=")
            .to_ascii_lowercase()
    };
    assert!(crl_serials(&st.data.join("crl/root-ca-1.crl")).contains(&serial));
    assert_eq!(
        st.json("admin", &["ca", "requests"])[0]["state"],
        "executed"
    );
}

#[test]
fn certificates_issued_while_a_rotation_runs_each_verify_under_exactly_one_key() {
    // Issuance here is `ca issue` in a loop (one process per certificate) on one thread while
    // a rotation is approved on another; card issuance across a rotation is covered by
    // `cards_issued_before_and_after_a_rotation_...`.
    let st = Station::new();
    let id = st.request("admin", &["ca", "rotate", "--ca", "esign"]);
    let done = std::sync::atomic::AtomicBool::new(false);
    let certs = std::thread::scope(|s| {
        let issuer = s.spawn(|| {
            let mut certs = Vec::new();
            let mut after = 0;
            // Keep issuing until two certificates were issued after the rotation finished.
            while after < 2 && certs.len() < 60 {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                certs.push(st.issue_cert(&format!("loop-{}", certs.len())));
                if finished {
                    after += 1;
                }
            }
            certs
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        let r = st.approve("bob", id);
        assert_eq!(r["request"]["state"], "executed", "{r}");
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        issuer.join().expect("issuer thread")
    });
    let root = st.ca_pem("root-ca-1");
    let (k1, k2) = (st.ca_pem("esign-ca-1"), st.ca_pem("esign-ca-2"));
    let mut under = [0, 0];
    for c in &certs {
        let a = verifies(&root, &[&k1], c);
        let b = verifies(&root, &[&k2], c);
        assert!(
            a ^ b,
            "{} verifies under key 1: {a}, key 2: {b}",
            c.display()
        );
        under[usize::from(b)] += 1;
    }
    eprintln!(
        "{} certificates: {} under key 1, {} under key 2",
        certs.len(),
        under[0],
        under[1]
    );
    assert!(under[0] >= 1 && under[1] >= 2, "{under:?}");
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/holders")
        .join(name)
}

/// Serials (lower-case hex) a DER CRL lists, as openssl reads them.
fn crl_serials(crl: &Path) -> Vec<String> {
    let o = sh_ok(
        Command::new("openssl")
            .args(["crl", "-noout", "-text", "-inform", "DER", "-in"])
            .arg(crl),
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Serial Number: "))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect()
}

/// Whether openssl accepts `crl`'s signature under the CA certificate `ca_pem` (OpenSSL 3.0
/// `crl -verify` prints "verify failure" yet may exit 0: the verdict is read from its output).
fn crl_signed_by(crl: &Path, ca_pem: &Path) -> bool {
    let o = sh(Command::new("openssl")
        .args(["crl", "-noout", "-inform", "DER", "-in"])
        .arg(crl)
        .arg("-CAfile")
        .arg(ca_pem)
        .arg("-verify"));
    o.status.success() && text(&o).contains("verify OK")
}

impl Station {
    fn crl(&self, key: &str, name: &str) -> PathBuf {
        let out = self.dir.join(name);
        self.ok(
            "admin",
            &[
                "ca",
                "crl",
                "--key",
                key,
                "--out",
                out.to_str().unwrap(),
                "--operator",
                "admin",
            ],
        );
        out
    }

    /// Issue a card to `holder` on a new blank card in `slot`; returns the `issue --json` report.
    fn issue_card(&self, slot: &testrig::Slot, holder: &str, serial: u32) -> serde_json::Value {
        let img = self.dir.join(format!("card-{serial:08X}.img"));
        sh_ok(
            Command::new(testrig::vchip_bin().expect("vchip"))
                .args(["create", "--out"])
                .arg(&img)
                .args(["--serial", &serial.to_string()]),
        );
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
        card.pull();
        r
    }
}

fn sign_serial(issue_report: &serde_json::Value) -> String {
    issue_report["certificates"]
        .as_array()
        .expect("certificates")
        .iter()
        .find(|c| c["profile"] == "holder-sign")
        .and_then(|c| c["serial"].as_str())
        .expect("holder-sign certificate")
        .to_string()
}

#[test]
fn cards_issued_before_and_after_a_rotation_keep_their_chain_and_crl_and_a_ca_revocation_flags_them(
) {
    testrig::ensure_pcscd().expect("pcscd with vpcd readers");
    let st = Station::new();
    let slot = testrig::Slot::lease();
    let root = st.ca_pem("root-ca-1");
    let k1 = st.ca_pem("esign-ca-1");

    // A card under key 1, a rotation, a card under key 2.
    let r1 = st.issue_card(&slot, "holder-01.json", 0x5207_0001);
    let t0 = std::time::Instant::now();
    let e = st.rotate("esign");
    eprintln!(
        "esign rotation: {:.2} s for request + approval (execution {:.3} s)",
        t0.elapsed().as_secs_f64(),
        e["seconds"]
    );
    let k2 = st.ca_pem("esign-ca-2");
    let r2 = st.issue_card(&slot, "holder-02.json", 0x5207_0002);
    let (s1, s2) = (sign_serial(&r1), sign_serial(&r2));
    let c1 = st.cert_from_registry(&s1, "card1-sign");
    let c2 = st.cert_from_registry(&s2, "card2-sign");
    let reg = st.registry();
    let key_of = |serial: &str| {
        let c = reg.certificates_by_serial(serial).unwrap().remove(0);
        reg.ca_key(c.data.issuer_key_id).unwrap().unwrap().label
    };
    assert_eq!(key_of(&s1), "esign-ca-1");
    assert_eq!(key_of(&s2), "esign-ca-2");
    // Each certificate names its own key's CRL (CRL distribution point per issuer key).
    for (c, label) in [(&c1, "esign-ca-1"), (&c2, "esign-ca-2")] {
        let o = sh_ok(
            Command::new("openssl")
                .args(["x509", "-noout", "-text", "-in"])
                .arg(c),
        );
        assert!(
            String::from_utf8_lossy(&o.stdout).contains(&format!("/crl/{label}.crl")),
            "{label}"
        );
    }

    // Before the revocation both chains verify, with their CRLs checked.
    let crl1 = st.crl("esign-ca-1", "k1-before.crl");
    let crl2 = st.crl("esign-ca-2", "k2-before.crl");
    for c in [&c1, &c2] {
        let o = openssl_verify(&root, &[&k1, &k2], &[&crl1, &crl2], c);
        assert!(o.status.success(), "before revocation:\n{}", text(&o));
    }

    // Revoke the key-1 holder's card (its signature certificate with it).
    let doc1 = r1["document"].as_str().expect("document");
    st.ok(
        "clerk",
        &[
            "revoke",
            "--document",
            doc1,
            "--reason",
            "lost",
            "--operator",
            "clerk",
        ],
    );
    // `ca crl` without --key publishes every key's CRL: the retired key 1 signs its own, which
    // carries the revocation (a CRL of the active key alone would never list it).
    let all = st.dir.join("all-crls");
    let r = st.json(
        "admin",
        &[
            "ca",
            "crl",
            "--out-dir",
            all.to_str().unwrap(),
            "--operator",
            "admin",
        ],
    );
    let published: Vec<&str> = r
        .as_array()
        .expect("one report per key")
        .iter()
        .map(|k| k["issuer_key"].as_str().unwrap())
        .collect();
    assert_eq!(
        published,
        ["root-ca-1", "esign-ca-1", "esign-ca-2", "csca-1"],
        "{r}"
    );
    let (crl1, crl2) = (all.join("esign-ca-1.crl"), all.join("esign-ca-2.crl"));
    assert_eq!(
        std::fs::read(&crl1).unwrap(),
        std::fs::read(st.data.join("crl/esign-ca-1.crl")).unwrap()
    );
    assert!(crl_serials(&crl1).contains(&s1), "key-1 CRL lists it");
    assert!(!crl_serials(&crl2).contains(&s1), "key-2 CRL does not");
    assert!(crl_signed_by(&crl1, &k1), "key-1 CRL signed by key 1");
    assert!(
        !crl_signed_by(&crl1, &k2),
        "key-1 CRL is not signed by key 2"
    );
    assert!(crl_signed_by(&crl2, &k2));
    let o = openssl_verify(&root, &[&k1, &k2], &[&crl1, &crl2], &c2);
    assert!(o.status.success(), "key-2 card:\n{}", text(&o));
    let o = openssl_verify(&root, &[&k1, &k2], &[&crl1, &crl2], &c1);
    assert!(!o.status.success());
    assert!(text(&o).contains("certificate revoked"), "{}", text(&o));

    // Emergency: the e-Signature CA key 2 is revoked under dual control.
    let id = st.request(
        "admin",
        &[
            "ca",
            "revoke-ca",
            "--ca",
            "esign",
            "--reason",
            "keyCompromise",
        ],
    );
    let r = st.approve("carol", id);
    assert_eq!(r["request"]["state"], "executed", "{r}");
    assert_eq!(r["executed"]["key"], "esign-ca-2");
    assert_eq!(
        r["executed"]["reissue_required"], 2,
        "card 2's two certificates"
    );
    // The root's CRL lists the e-Signature CA certificate; the chain of card 2 then fails.
    let root_crl = st.data.join("crl/root-ca-1.crl");
    let esign2_serial = {
        let o = sh_ok(
            Command::new("openssl")
                .args(["x509", "-noout", "-serial", "-in"])
                .arg(&k2),
        );
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .trim_start_matches("serial=")
            .to_ascii_lowercase()
    };
    assert!(crl_serials(&root_crl).contains(&esign2_serial));
    pkilint("lint_crl", &["lint", "-t", "CRL", "-p", "PKIX"], &root_crl);
    assert!(crl_signed_by(&root_crl, &root));
    let o = sh(Command::new("openssl")
        .args(["verify", "-crl_check_all", "-CAfile"])
        .arg(&root)
        .arg("-untrusted")
        .arg(&k2)
        .arg("-CRLfile")
        .arg(&root_crl)
        .arg("-CRLfile")
        .arg(&crl2)
        .arg(&c2));
    assert!(!o.status.success());
    assert!(text(&o).contains("certificate revoked"), "{}", text(&o));
    // The clerks' list names the holder to call back.
    let list = st.json("clerk", &["ca", "reissue-list", "--operator", "clerk"]);
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 2, "{list:?}");
    let holder2: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("holder-02.json")).expect("fixture"))
            .expect("fixture JSON");
    let mut flagged: Vec<&str> = Vec::new();
    for e in list {
        assert_eq!(e["issuer_key"], "esign-ca-2");
        assert_eq!(e["document"].as_str(), r2["document"].as_str(), "{e}");
        assert_eq!(e["pinfl"], holder2["pinfl"], "{e}");
        flagged.push(e["certificate_serial"].as_str().expect("serial"));
    }
    assert!(
        flagged.contains(&s2.as_str()),
        "card 2's signature certificate is listed"
    );
    let o = st.ok("clerk", &["ca", "reissue-list", "--operator", "clerk"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains(r2["document"].as_str().unwrap()));
    // No active e-Signature key: issuance refuses until the CA is rotated.
    let o = st.cmd("admin", &["ca", "show"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("revoked"));
    let audit = st.audit();
    assert!(audit
        .iter()
        .any(|(a, o, _)| a == "ca.revoked" && o == "ca-key:esign-ca-2"));
    let e = st.rotate("esign");
    assert_eq!(e["key"], "esign-ca-3");
    assert_eq!(e["old_key"], serde_json::Value::Null);
    let c3 = st.issue_cert("after-revocation");
    assert!(verifies(&root, &[&st.ca_pem("esign-ca-3")], &c3));
}

#[test]
fn cards_issued_in_a_loop_while_a_rotation_runs_each_verify_under_exactly_one_key() {
    testrig::ensure_pcscd().expect("pcscd with vpcd readers");
    let st = Station::new();
    let slot = testrig::Slot::lease();
    let id = st.request("admin", &["ca", "rotate", "--ca", "esign"]);
    let started = std::sync::atomic::AtomicBool::new(false);
    let reports = std::thread::scope(|s| {
        let approver = s.spawn(|| {
            // The rotation is approved (and runs) while the second card is being issued.
            while !started.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
            st.approve("bob", id)
        });
        let mut reports = Vec::new();
        for (i, h) in ["holder-01.json", "holder-02.json", "holder-03.json"]
            .iter()
            .enumerate()
        {
            if i == 1 {
                started.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            reports.push(st.issue_card(&slot, h, 0x5207_1000 + i as u32));
        }
        let r = approver.join().expect("approver thread");
        assert_eq!(r["request"]["state"], "executed", "{r}");
        reports
    });
    let root = st.ca_pem("root-ca-1");
    let (k1, k2) = (st.ca_pem("esign-ca-1"), st.ca_pem("esign-ca-2"));
    let mut under = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        let mut keys = Vec::new();
        for c in r["certificates"].as_array().expect("certificates") {
            let serial = c["serial"].as_str().expect("serial");
            let pem = st.cert_from_registry(serial, &format!("loop-card-{i}-{serial}"));
            let a = verifies(&root, &[&k1], &pem);
            let b = verifies(&root, &[&k2], &pem);
            assert!(a ^ b, "card {i} {serial}: key 1 {a}, key 2 {b}");
            keys.push(usize::from(b) + 1);
        }
        keys.dedup();
        assert_eq!(
            keys.len(),
            1,
            "card {i}: one issuance used one key: {keys:?}"
        );
        under.push(keys[0]);
    }
    eprintln!("cards issued under keys {under:?}");
    assert_eq!(under[0], 1, "the first card precedes the rotation");
    assert_eq!(under[2], 2, "the last card follows it");
}
