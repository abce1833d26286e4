//! Tests of writing and verifying exports (tampered folders, CRLs, continuity, CSV).

use super::*;

use std::path::Path;

use der::{Decode, Encode, EncodePem};
use p256::ecdsa::DerSignature;
use serde_json::json;
use sha2::{Digest, Sha256};
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::Certificate;

use super::verify::parse_csv;
use super::write::csv_field;
use crate::audit::tests::{signer, test_key};
use crate::testutil::{actor, temp_registry};
use crate::AuditEntry;
use crate::{audit, Actor, Error, Registry};
use p256::ecdsa::SigningKey;
use std::str::FromStr;
use std::time::Duration;
use x509_cert::builder::{profile::BuilderProfile, Builder, CertificateBuilder};
use x509_cert::ext::pkix::{KeyUsage, KeyUsages};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;

struct Leaf {
    issuer: Name,
    subject: Name,
    audit_eku: bool,
    ca: bool,
}
impl BuilderProfile for Leaf {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }
    fn get_subject(&self) -> Name {
        self.subject.clone()
    }
    fn build_extensions(
        &self,
        _spk: spki::SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: spki::SubjectPublicKeyInfoRef<'_>,
        tbs: &x509_cert::TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let bc = BasicConstraints {
            ca: self.ca,
            path_len_constraint: None,
        }
        .to_extension(tbs.subject(), &[])?;
        let mut v = vec![bc];
        v.push(KeyUsage(KeyUsages::DigitalSignature.into()).to_extension(tbs.subject(), &v)?);
        if self.audit_eku {
            v.push(
                x509_cert::ext::pkix::ExtendedKeyUsage(vec![AUDIT_SIGNING_EKU])
                    .to_extension(tbs.subject(), &v)?,
            );
        }
        Ok(v)
    }
}

pub struct Pki {
    pub root_der: Vec<u8>,
    pub audit_key: SigningKey,
    pub audit_der: Vec<u8>,
}

fn spki_of(k: &SigningKey) -> spki::SubjectPublicKeyInfoOwned {
    use p256::pkcs8::EncodePublicKey;
    let der = k.verifying_key().to_public_key_der().unwrap();
    spki::SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).unwrap()
}

/// Test root + audit certificate built with x509-cert's builder and software P-256 keys.
pub fn pki(root_seed: u8) -> Pki {
    pki_with(root_seed, true)
}

/// As [`pki`]; `audit_eku: false` gives an audit certificate as issued before the
/// audit-signing extended key usage existed.
pub fn pki_with(root_seed: u8, audit_eku: bool) -> Pki {
    let root_key = SigningKey::from_slice(&[root_seed; 32]).unwrap();
    let audit_key = test_key();
    let root_name = Name::from_str("CN=Test National Root CA,O=idstation test,C=UZ").unwrap();
    let validity = Validity::from_now(Duration::from_secs(3600 * 24 * 365)).unwrap();
    let profile = x509_cert::builder::profile::cabf::Root::new(false, root_name.clone()).unwrap();
    let root = CertificateBuilder::new(
        profile,
        SerialNumber::from(1u32),
        validity,
        spki_of(&root_key),
    )
    .unwrap()
    .build::<_, DerSignature>(&root_key)
    .unwrap();
    let leaf = Leaf {
        issuer: root_name,
        subject: Name::from_str("CN=Station TAS01-ST1 audit,O=idstation test,C=UZ").unwrap(),
        audit_eku,
        ca: false,
    };
    let audit = CertificateBuilder::new(
        leaf,
        SerialNumber::from(2u32),
        validity,
        spki_of(&audit_key),
    )
    .unwrap()
    .build::<_, DerSignature>(&root_key)
    .unwrap();
    Pki {
        root_der: root.to_der().unwrap(),
        audit_der: audit.to_der().unwrap(),
        audit_key,
    }
}

fn filled(n: u64, k: &SigningKey) -> (tempfile::TempDir, Registry) {
    let (d, mut reg) = temp_registry();
    let a = actor();
    for i in 1..=n {
        reg.audit(&AuditEntry {
            actor: &a,
            action: "issuance.completed",
            object: &format!("document:AA{i:07}"),
            details: &json!({"job": i, "text": "a,b \"c\"\nd"}),
        })
        .unwrap();
        if i % 10 == 0 {
            reg.audit_checkpoint(&signer(k)).unwrap();
        }
    }
    (d, reg)
}

fn export(
    reg: &Registry,
    p: &Pki,
    dir: &Path,
    range: ExportRange,
    format: ExportFormat,
) -> ExportSummary {
    let a = Actor::new("audrey", "auditor", "TAS01-ST1");
    reg.export_audit(
        &ExportRequest {
            out_dir: dir,
            range,
            format,
            exporter: &a,
            chain_der: &[p.audit_der.clone(), p.root_der.clone()],
        },
        &signer(&p.audit_key),
    )
    .unwrap()
}

#[test]
fn jsonl_and_csv_exports_verify_with_only_the_folder_and_the_root() {
    let p = pki(7);
    let (_d, reg) = filled(35, &p.audit_key);
    for f in [ExportFormat::Jsonl, ExportFormat::Csv] {
        // Export into a folder of its own, away from the database.
        let elsewhere = tempfile::tempdir().unwrap();
        let out = elsewhere.path().join(format!("export-{}", f.as_str()));
        let s = export(&reg, &p, &out, ExportRange::All, f);
        assert_eq!(
            (s.count, s.first_seq, s.last_seq, s.checkpoints),
            (35, 1, 35, 3)
        );
        let root_pem = Certificate::from_der(&p.root_der)
            .unwrap()
            .to_pem(der::pem::LineEnding::LF)
            .unwrap();
        let r = verify_export(&out, root_pem.as_bytes()).unwrap();
        assert_eq!((r.count, r.last_seq, r.checkpoints), (35, 35, 3));
        assert!(r.signer_subject.contains("audit"));
        verify_export(&out, &p.root_der).unwrap();
    }
}

#[test]
fn a_sequence_range_export_starts_from_the_previous_hash() {
    let p = pki(7);
    let (d, reg) = filled(35, &p.audit_key);
    let out = d.path().join("range");
    let s = export(
        &reg,
        &p,
        &out,
        ExportRange::Seq { from: 11, to: 25 },
        ExportFormat::Jsonl,
    );
    assert_eq!((s.count, s.checkpoints), (15, 1), "checkpoint 20 only");
    let r = verify_export(&out, &p.root_der).unwrap();
    assert_eq!((r.first_seq, r.last_seq), (11, 25));
    let out2 = d.path().join("today");
    let today = &crate::now_rfc3339()[..10];
    let s = export(
        &reg,
        &p,
        &out2,
        ExportRange::Time {
            from: Some(today.into()),
            to: Some(today.into()),
        },
        ExportFormat::Csv,
    );
    assert_eq!(s.count, 35);
    verify_export(&out2, &p.root_der).unwrap();
}

fn rewrite(out: &Path, f: impl Fn(&mut Vec<String>)) {
    let p = out.join("events.jsonl");
    let mut lines: Vec<String> = std::fs::read_to_string(&p)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    f(&mut lines);
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
}

#[test]
fn tampered_exports_fail() {
    let p = pki(7);
    let (_d, reg) = filled(35, &p.audit_key);
    let out_root = tempfile::tempdir().unwrap();
    let fresh = |name: &str| {
        let out = out_root.path().join(name);
        export(&reg, &p, &out, ExportRange::All, ExportFormat::Jsonl);
        out
    };
    // A wrong root.
    let other = pki(9);
    let out = fresh("wrong-root");
    let e = verify_export(&out, &other.root_der).unwrap_err();
    assert!(e.to_string().contains("signature does not verify"), "{e}");
    // An edited event: the file no longer matches the signed manifest.
    let out = fresh("edited");
    rewrite(&out, |l| l[4] = l[4].replace("\"alice\"", "\"mallory\""));
    let e = verify_export(&out, &p.root_der).unwrap_err();
    assert!(
        matches!(&e, Error::AuditBroken { reason, .. } if reason.contains("hash does not match")),
        "an edited event is named by its sequence number: {e}"
    );
    // Only the file's bytes changed (a trailing blank line): the file hash still catches it.
    let out = fresh("whitespace");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(out.join("events.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"\n").unwrap();
    let e = verify_export(&out, &p.root_der).unwrap_err();
    assert!(e.to_string().contains("SHA-256 differs"), "{e}");
    // An edited manifest.
    let out = fresh("manifest");
    let m = std::fs::read_to_string(out.join("manifest.json"))
        .unwrap()
        .replace("\"count\":35", "\"count\":34");
    std::fs::write(out.join("manifest.json"), m).unwrap();
    let e = verify_export(&out, &p.root_der).unwrap_err();
    assert!(
        e.to_string().contains("manifest.sig does not verify"),
        "{e}"
    );
}

#[test]
fn event_level_checks_name_the_sequence_number() {
    // Bypass the file hash to exercise the per-event checks: re-sign a manifest whose
    // events_sha256 matches the tampered file (as an insider with the audit key could).
    let p = pki(7);
    let (d, reg) = filled(35, &p.audit_key);
    type Tamper = Box<dyn Fn(&mut Vec<String>)>;
    let cases: Vec<(&str, Tamper, u64)> = vec![
        (
            "edit",
            Box::new(|l: &mut Vec<String>| l[9] = l[9].replace("\"alice\"", "\"mallory\"")),
            10,
        ),
        (
            "delete",
            Box::new(|l: &mut Vec<String>| {
                l.remove(14);
            }),
            15,
        ),
        ("swap", Box::new(|l: &mut Vec<String>| l.swap(19, 21)), 20),
        (
            "truncate",
            Box::new(|l: &mut Vec<String>| l.truncate(28)),
            29,
        ),
    ];
    for (name, f, seq) in cases {
        let out = d.path().join(name);
        export(&reg, &p, &out, ExportRange::All, ExportFormat::Jsonl);
        rewrite(&out, f);
        let data = std::fs::read(out.join("events.jsonl")).unwrap();
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
        m["events_sha256"] = json!(hex::encode(Sha256::digest(&data)));
        let bytes = audit::canonical_json(&m).unwrap().into_bytes();
        std::fs::write(out.join("manifest.json"), &bytes).unwrap();
        std::fs::write(
            out.join("manifest.sig"),
            signer(&p.audit_key)(&bytes).unwrap(),
        )
        .unwrap();
        match verify_export(&out, &p.root_der) {
            Err(Error::AuditBroken { seq: s, .. }) => assert_eq!(s, seq, "{name}"),
            other => panic!("{name}: expected broken chain, got {other:?}"),
        }
    }
}

#[test]
fn exports_verify_with_an_independent_python_and_openssl_verifier() {
    // registry/tests/verify_export.py is written from docs/audit-format.md alone.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/verify_export.py");
    let p = pki(7);
    let (d, reg) = filled(25, &p.audit_key);
    let root_pem = d.path().join("root.pem");
    let pem = Certificate::from_der(&p.root_der)
        .unwrap()
        .to_pem(der::pem::LineEnding::LF)
        .unwrap();
    std::fs::write(&root_pem, pem).unwrap();
    let run = |dir: &Path| {
        let out = std::process::Command::new("python3")
            .arg(&script)
            .arg(dir)
            .arg(&root_pem)
            .output()
            .expect("python3 and openssl are needed for this test");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    for f in [ExportFormat::Jsonl, ExportFormat::Csv] {
        let out = d.path().join(format!("py-{}", f.as_str()));
        export(&reg, &p, &out, ExportRange::Seq { from: 3, to: 25 }, f);
        let (ok, text) = run(&out);
        assert!(ok, "{text}");
        assert_eq!(text.trim(), "OK 23 25");
    }
    let out = d.path().join("py-edited");
    export(&reg, &p, &out, ExportRange::All, ExportFormat::Jsonl);
    rewrite(&out, |l| l[3] = l[3].replace("\"alice\"", "\"mallory\""));
    let (ok, text) = run(&out);
    assert!(!ok && text.contains("FAIL"), "{text}");
}

#[test]
fn a_broken_log_is_not_exported_and_leaves_no_files() {
    let p = pki(7);
    let (d, reg) = filled(15, &p.audit_key);
    reg.connection()
        .execute_batch("DROP TRIGGER audit_events_no_update; UPDATE audit_events SET object = 'x' WHERE seq = 5;")
        .unwrap();
    let out = d.path().join("broken");
    let a = Actor::new("audrey", "auditor", "TAS01-ST1");
    let e = reg
        .export_audit(
            &ExportRequest {
                out_dir: &out,
                range: ExportRange::All,
                format: ExportFormat::Jsonl,
                exporter: &a,
                chain_der: &[p.audit_der.clone(), p.root_der.clone()],
            },
            &signer(&p.audit_key),
        )
        .unwrap_err();
    assert!(matches!(e, Error::AuditBroken { seq: 5, .. }), "{e}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "no files left");
}

#[test]
fn an_audit_certificate_without_the_audit_signing_eku_may_not_sign_an_export() {
    // An audit certificate issued before the marker existed (or any other certificate
    // under the root) is refused, naming the rule.
    let p = pki_with(7, false);
    let (d, reg) = filled(3, &p.audit_key);
    let out = d.path().join("legacy");
    export(&reg, &p, &out, ExportRange::All, ExportFormat::Jsonl);
    let e = verify_export(&out, &p.root_der).unwrap_err().to_string();
    assert!(e.contains("is not a station audit certificate"), "{e}");
    assert!(e.contains("1.3.6.1.4.1.32473.1.3.1"), "{e}");
}

#[test]
fn an_audit_signing_certificate_from_an_issuing_ca_is_not_the_stations() {
    // An issuing CA under the root mints a certificate with the audit-signing mark for a
    // key of its choosing: the path is sound, the mark is there, but the root did not
    // issue it.
    let p = pki(7);
    let root_key = SigningKey::from_slice(&[7u8; 32]).unwrap();
    let ca_key = SigningKey::from_slice(&[9u8; 32]).unwrap();
    let root_name = Name::from_str("CN=Test National Root CA,O=idstation test,C=UZ").unwrap();
    let ca_name = Name::from_str("CN=Test e-Signature CA,O=idstation test,C=UZ").unwrap();
    let validity = Validity::from_now(Duration::from_secs(3600 * 24 * 365)).unwrap();
    let build = |leaf: Leaf, serial: u32, key: &SigningKey, by: &SigningKey| {
        CertificateBuilder::new(leaf, SerialNumber::from(serial), validity, spki_of(key))
            .unwrap()
            .build::<_, DerSignature>(by)
            .unwrap()
            .to_der()
            .unwrap()
    };
    let ca_der = build(
        Leaf {
            issuer: root_name.clone(),
            subject: ca_name.clone(),
            audit_eku: false,
            ca: true,
        },
        3,
        &ca_key,
        &root_key,
    );
    let minted = build(
        Leaf {
            issuer: ca_name,
            subject: Name::from_str("CN=Not the station,O=idstation test,C=UZ").unwrap(),
            audit_eku: true,
            ca: false,
        },
        4,
        &p.audit_key,
        &ca_key,
    );
    let (d, reg) = filled(3, &p.audit_key);
    let out = d.path().join("minted");
    let a = Actor::new("audrey", "auditor", "TAS01-ST1");
    reg.export_audit(
        &ExportRequest {
            out_dir: &out,
            range: ExportRange::All,
            format: ExportFormat::Jsonl,
            exporter: &a,
            chain_der: &[minted, ca_der, p.root_der.clone()],
        },
        &signer(&p.audit_key),
    )
    .unwrap();
    let e = verify_export(&out, &p.root_der).unwrap_err().to_string();
    assert!(
        e.contains("a station audit certificate is issued by the root directly"),
        "{e}"
    );
}

#[test]
fn previous_export_head_catches_a_rewritten_or_truncated_history() {
    let p = pki(7);
    let (d, mut reg) = filled(12, &p.audit_key);
    let old = d.path().join("old");
    let s = export(&reg, &p, &old, ExportRange::All, ExportFormat::Jsonl);
    let head = (s.last_seq, s.last_hash);
    // The same history, later: continuity holds, also for a range that starts right after.
    for i in 13..=15 {
        reg.audit(&AuditEntry {
            actor: &actor(),
            action: "holder.enrolled",
            object: &format!("holder:{i}"),
            details: &json!({}),
        })
        .unwrap();
    }
    let new = d.path().join("new");
    export(&reg, &p, &new, ExportRange::All, ExportFormat::Jsonl);
    let with = |h| VerifyChecks {
        crls: vec![],
        previous: Some(h),
    };
    verify_export_with(&new, &p.root_der, &with(head)).unwrap();
    let next = d.path().join("next");
    export(
        &reg,
        &p,
        &next,
        ExportRange::Seq {
            from: head.0 + 1,
            to: head.0 + 2,
        },
        ExportFormat::Csv,
    );
    verify_export_with(&next, &p.root_der, &with(head)).unwrap();
    // Another hash at the old head's sequence: rewritten.
    let mut other = head;
    other.1[0] ^= 1;
    let e = verify_export_with(&new, &p.root_der, &with(other)).unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("broken at sequence {}", head.0))
            && e.to_string().contains("history rewritten"),
        "{e}"
    );
    // A history that ends before the old head: truncated.
    let e = verify_export_with(&new, &p.root_der, &with((99, head.1))).unwrap_err();
    assert!(e.to_string().contains("history truncated"), "{e}");
}

#[test]
fn csv_parser_round_trips_quotes_commas_and_newlines() {
    let mut line = String::new();
    for v in ["plain", "a,b", "say \"hi\"", "two\nlines"] {
        csv_field(v, &mut line);
        line.push(',');
    }
    line.pop();
    line.push('\n');
    let rows = parse_csv(&line).unwrap();
    assert_eq!(rows, vec![vec!["plain", "a,b", "say \"hi\"", "two\nlines"]]);
}
