//! The card's life after the desk (issue 16) end to end through the real parts: the
//! `idstation` binary, pcscd + vpcd with a `vchip` card for the issuance, SoftHSM2, the
//! registry file; openssl as the CRL oracle. Suspend / resume (certificateHold on the CRL and
//! off it again), the suspension limit, a suspended document's renewal refused, address set /
//! end with their history and outbox rows, a damaged card returned. Run under
//! `flock /tmp/idstation-pcsc.lock` (docs/station.md).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const HSM_PIN: &str = "hsm-pin-life-5e1a08";
const ADMIN_PASSWORD: &str = "admin-password-life-1";
const CLERK_PASSWORD: &str = "clerk-password-life-2";
// Eight digits (a six-digit PIN turns up by chance in log timestamps; see issuance_e2e.rs).
const PIN: &str = "48291637";
#[path = "common/holder_pin.rs"]
mod holder_pin;

struct Station {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    data: PathBuf,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/holders")
        .join(name)
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run(cmd: &mut Command) -> Output {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?} failed:\n{}", text(&o));
    o
}

/// The line `idstation: …` of a failed run.
fn error_line(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .find(|l| l.starts_with("idstation: "))
        .unwrap_or_default()
        .to_string()
}

impl Station {
    fn new() -> Self {
        testrig::ensure_pcscd().expect("pcscd with vpcd readers");
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let s = Station {
            data: dir.join("data"),
            dir,
            _tmp: tmp,
        };
        let pin_file = s.dir.join("hsm-pin");
        std::fs::write(&pin_file, format!("{HSM_PIN}\n")).expect("pin file");
        std::fs::set_permissions(
            &pin_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod");
        s.ok(
            &[
                "init",
                "--admin",
                "admin",
                "--station",
                "life",
                "--hsm-pin-file",
                pin_file.to_str().expect("utf-8 path"),
            ],
            &[ADMIN_PASSWORD],
        );
        s.ok(
            &[
                "operator",
                "add",
                "--name",
                "clerk",
                "--role",
                "clerk",
                "--operator",
                "admin",
            ],
            &[ADMIN_PASSWORD, CLERK_PASSWORD],
        );
        s
    }

    /// `idstation ARGS` with `secrets` on standard input, one per line; no secret may appear
    /// in the output.
    fn run(&self, args: &[&str], secrets: &[&str]) -> Output {
        self.run_env(args, secrets, &[])
    }

    fn run_env(&self, args: &[&str], secrets: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_idstation"));
        c.arg("--data-dir").arg(&self.data).args(args);
        c.env("IDSTATION_LOG", "debug");
        for (k, v) in env {
            c.env(k, v);
        }
        let o = holder_pin::output(c, args, &self.dir, secrets, PIN);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        for s in [HSM_PIN, ADMIN_PASSWORD, CLERK_PASSWORD, PIN] {
            assert!(!all.contains(s), "secret {s:?} appeared in output:\n{all}");
        }
        o
    }

    fn ok(&self, args: &[&str], secrets: &[&str]) -> Output {
        let o = self.run(args, secrets);
        assert!(
            o.status.success(),
            "idstation {args:?} failed:\n{}",
            text(&o)
        );
        o
    }

    fn json(&self, args: &[&str], secrets: &[&str]) -> serde_json::Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let o = self.ok(&full, secrets);
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}):\n{}", text(&o)))
    }

    fn blank_card(&self, serial: u32) -> PathBuf {
        let img = self.dir.join(format!("card-{serial:08X}.img"));
        run(Command::new(testrig::vchip_bin().expect("vchip"))
            .args(["create", "--out"])
            .arg(&img)
            .args(["--serial", &serial.to_string()]));
        img
    }

    /// Issue holder-01 on the card in `reader`; the document number.
    fn issue(&self, reader: &str) -> String {
        let r = self.json(
            &[
                "issue",
                "--holder",
                fixture("holder-01.json").to_str().unwrap(),
                "--reader",
                reader,
                "--operator",
                "clerk",
            ],
            &[CLERK_PASSWORD],
        );
        r["document"].as_str().expect("document").to_string()
    }

    /// `idstation --json renew` with the holder's `pin` on `--pin-fd 0`.
    fn renew(&self, document: &str, reader: &str, pin: &str) -> Output {
        self.run(
            &[
                "--json",
                "renew",
                "--document",
                document,
                "--reader",
                reader,
                "--pin-fd",
                "0",
                "--operator",
                "clerk",
            ],
            &[CLERK_PASSWORD, pin],
        )
    }

    /// Serials (lower-case hex, no leading zeros) of document `doc`'s certificates by status.
    fn certificates(&self, doc: &str, status: &str) -> Vec<String> {
        let show = self.json(
            &["show", "--document", doc, "--operator", "clerk"],
            &[CLERK_PASSWORD],
        );
        show["document"]["certificates"]
            .as_array()
            .expect("certificates")
            .iter()
            .filter(|c| c["status"] == status)
            .map(|c| norm(c["serial"].as_str().unwrap_or("")))
            .collect()
    }

    /// The current CRL of the active e-Signature CA key, as `openssl crl -text`.
    fn crl_text(&self) -> String {
        let out = self.dir.join("current.crl.pem");
        let _ = std::fs::remove_file(&out);
        self.ok(
            &[
                "ca",
                "crl",
                "--key",
                "esign-ca-1",
                "--out",
                out.to_str().unwrap(),
                "--operator",
                "admin",
            ],
            &[ADMIN_PASSWORD],
        );
        let o = run(Command::new("openssl")
            .args(["crl", "-noout", "-text", "-in"])
            .arg(&out));
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    fn registry(&self) -> registry::Registry {
        registry::Registry::open_read_only(self.data.join("registry.sqlite")).expect("registry")
    }
}

fn norm(serial: &str) -> String {
    serial
        .to_ascii_lowercase()
        .trim_start_matches('0')
        .to_string()
}

/// The serials (normalised) of the CRL entries in `crl` (openssl crl -text), each with the
/// reason line that follows it.
fn crl_entries(crl: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = crl.lines().map(str::trim).collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some(serial) = l.strip_prefix("Serial Number: ") {
            let reason = lines[i + 1..]
                .iter()
                .take_while(|l| !l.starts_with("Serial Number: "))
                .find(|l| {
                    !l.starts_with("Revocation Date")
                        && !l.starts_with("CRL entry extensions")
                        && !l.starts_with("X509v3 CRL Reason Code")
                })
                .map(|s| s.to_string())
                .unwrap_or_default();
            out.push((norm(serial), reason));
        }
    }
    out
}

/// `[services] suspension_limit_days = days` in the station's configuration.
fn set_suspension_limit(st: &Station, days: u32) {
    let path = st.data.join("station.toml");
    let cfg = std::fs::read_to_string(&path).expect("station.toml");
    assert!(!cfg.contains("[services]"), "{cfg}");
    std::fs::write(
        &path,
        format!("{cfg}\n[services]\nsuspension_limit_days = {days}\n"),
    )
    .expect("station.toml");
}

fn document_status(st: &Station, doc: &str) -> String {
    let show = st.json(
        &["show", "--document", doc, "--operator", "clerk"],
        &[CLERK_PASSWORD],
    );
    show["document"]["status"]
        .as_str()
        .expect("status")
        .to_string()
}

#[test]
fn suspend_puts_both_certificates_on_hold_and_resume_takes_them_off_the_next_crl() {
    let st = Station::new();
    let slot = testrig::Slot::lease();
    let img = st.blank_card(0x5E10_0001);
    let _card = slot.insert(&img, &[]);
    let r = &slot.reader_name;
    let doc = st.issue(r);
    let mut active = st.certificates(&doc, "active");
    active.sort();
    assert_eq!(active.len(), 2);

    let s = st.json(
        &["suspend", "--document", &doc, "--operator", "clerk"],
        &[CLERK_PASSWORD],
    );
    assert_eq!(s["status"], "suspended", "{s}");
    assert_eq!(s["crl_reason"], "certificateHold", "{s}");
    let mut held: Vec<String> = s["held_certificates"]
        .as_array()
        .expect("held")
        .iter()
        .map(|v| norm(v.as_str().unwrap_or("")))
        .collect();
    held.sort();
    assert_eq!(held, active);
    assert_eq!(document_status(&st, &doc), "suspended");
    // The CRL lists both serials with reason certificateHold.
    let crl = st.crl_text();
    let entries = crl_entries(&crl);
    for serial in &active {
        let e = entries
            .iter()
            .find(|(s, _)| s == serial)
            .unwrap_or_else(|| panic!("{serial} not on the CRL:\n{crl}"));
        assert_eq!(e.1, "Certificate Hold", "{crl}");
    }
    // A second suspension is refused, naming the rule.
    let o = st.run(
        &["suspend", "--document", &doc, "--operator", "clerk"],
        &[CLERK_PASSWORD],
    );
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        error_line(&o).contains("document status") && error_line(&o).contains("only an active"),
        "{}",
        text(&o)
    );
    // A suspended document cannot be renewed: refused before the card is touched.
    let o = st.renew(&doc, r, PIN);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        error_line(&o).contains("suspended") && error_line(&o).contains("cannot be renewed"),
        "{}",
        text(&o)
    );
    // Resume needs the holder in person.
    let o = st.run(
        &["resume", "--document", &doc, "--operator", "clerk"],
        &[CLERK_PASSWORD],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        error_line(&o).contains("identity_confirmed"),
        "{}",
        text(&o)
    );
    assert_eq!(document_status(&st, &doc), "suspended");

    let res = st.json(
        &[
            "resume",
            "--document",
            &doc,
            "--identity-confirmed",
            "--operator",
            "clerk",
        ],
        &[CLERK_PASSWORD],
    );
    assert_eq!(res["status"], "active", "{res}");
    assert_eq!(res["identity_confirmed_by"], "clerk", "{res}");
    assert_eq!(document_status(&st, &doc), "active");
    let mut again = st.certificates(&doc, "active");
    again.sort();
    assert_eq!(again, active);
    // Gone from the next (full) CRL.
    let crl = st.crl_text();
    let entries = crl_entries(&crl);
    for serial in &active {
        assert!(
            !entries.iter().any(|(s, _)| s == serial),
            "{serial} still on the CRL:\n{crl}"
        );
    }
    let events = st.registry().audit_events(1, u64::MAX).expect("events");
    assert!(events.iter().any(|e| e.action == "document.suspended"));
    assert!(events.iter().any(|e| e.action == "suspend.refused"));
    assert!(events.iter().any(|e| e.action == "renewal.refused"));
    assert!(events.iter().any(|e| e.action == "resume.refused"));
    let resumed = events
        .iter()
        .find(|e| e.action == "document.resumed")
        .expect("document.resumed audited");
    assert!(
        resumed.details.contains("identity_confirmed_by"),
        "{resumed:?}"
    );
}

#[test]
fn resume_after_the_suspension_limit_is_refused_and_says_to_revoke() {
    let st = Station::new();
    let slot = testrig::Slot::lease();
    let img = st.blank_card(0x5E10_0002);
    let _card = slot.insert(&img, &[]);
    let doc = st.issue(&slot.reader_name);
    // A limit of 0 days: every resume comes after it (no clock to wait for).
    set_suspension_limit(&st, 0);
    st.ok(
        &["suspend", "--document", &doc, "--operator", "clerk"],
        &[CLERK_PASSWORD],
    );
    let o = st.run(
        &[
            "resume",
            "--document",
            &doc,
            "--identity-confirmed",
            "--operator",
            "clerk",
        ],
        &[CLERK_PASSWORD],
    );
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let line = error_line(&o);
    assert!(
        line.contains("suspension_limit_days") && line.contains("idstation revoke"),
        "{}",
        text(&o)
    );
    assert_eq!(document_status(&st, &doc), "suspended");
    // Still on hold: revoked (certificateHold) in the registry.
    assert_eq!(st.certificates(&doc, "revoked").len(), 2);
    // Revoking the suspended document is what remains; its card can then be returned.
    let rv = st.json(
        &[
            "revoke",
            "--document",
            &doc,
            "--reason",
            "damaged",
            "--operator",
            "clerk",
        ],
        &[CLERK_PASSWORD],
    );
    assert_eq!(rv["status"], "revoked", "{rv}");
    // The hold became final: both serials on the next CRL as cessationOfOperation.
    assert_eq!(rv["revoked_certificates"].as_array().map(Vec::len), Some(2));
    let crl = st.crl_text();
    let entries = crl_entries(&crl);
    let held = st.certificates(&doc, "revoked");
    assert_eq!(held.len(), 2);
    for serial in &held {
        let e = entries
            .iter()
            .find(|(s, _)| s == serial)
            .unwrap_or_else(|| panic!("{serial} not on the CRL:\n{crl}"));
        assert_eq!(e.1, "Cessation Of Operation", "{crl}");
    }
    let events = st.registry().audit_events(1, u64::MAX).expect("events");
    let refused = events
        .iter()
        .find(|e| e.action == "resume.refused")
        .expect("resume.refused audited");
    assert!(
        refused.details.contains("suspension_limit_days"),
        "{refused:?}"
    );
}

#[test]
fn address_set_and_end_keep_the_history_and_queue_each_change_in_the_outbox() {
    let st = Station::new();
    let slot = testrig::Slot::lease();
    let img = st.blank_card(0x5E10_0003);
    let _card = slot.insert(&img, &[]);
    let doc = st.issue(&slot.reader_name);
    let pinfl = "41505852610128";
    let temp = st.dir.join("temporary.json");
    std::fs::write(
        &temp,
        serde_json::json!({
            "kind": "temporary",
            "region": "Samarqand viloyati",
            "district": "Samarqand shahri",
            "street": "Registon koʻchasi",
            "house": "5",
            "registered_on": "2025-01-10",
            "registered_until": "2030-01-10"
        })
        .to_string(),
    )
    .expect("write");
    let set = st.json(
        &[
            "address",
            "set",
            "--pinfl",
            pinfl,
            "--holder-address",
            temp.to_str().unwrap(),
            "--operator",
            "clerk",
        ],
        &[CLERK_PASSWORD],
    );
    assert_eq!(set["kind"], "temporary", "{set}");
    let history = set["history"].as_array().expect("history");
    assert_eq!(history.len(), 2, "{set}");
    assert_eq!(history[0]["kind"], "permanent");
    assert_eq!(history[1]["kind"], "temporary");
    assert!(history[1]["ended_on"].is_null());

    let perm = st.dir.join("permanent.json");
    std::fs::write(
        &perm,
        serde_json::json!({
            "kind": "permanent",
            "region": "Toshkent shahri",
            "district": "Chilonzor tumani",
            "street": "Bunyodkor shoh koʻchasi",
            "house": "20",
            "apartment": "7",
            "registered_on": "2025-06-01"
        })
        .to_string(),
    )
    .expect("write");
    st.ok(
        &[
            "address",
            "set",
            "--pinfl",
            pinfl,
            "--holder-address",
            perm.to_str().unwrap(),
            "--operator",
            "clerk",
        ],
        &[CLERK_PASSWORD],
    );
    // A permanent registration is replaced, never ended.
    let o = st.run(
        &[
            "address",
            "end",
            "--pinfl",
            pinfl,
            "--kind",
            "permanent",
            "--operator",
            "clerk",
        ],
        &[CLERK_PASSWORD],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(error_line(&o).contains("kind"), "{}", text(&o));
    // A registration date in the future is refused, naming the field.
    let bad = st.dir.join("future.json");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&perm)
            .expect("read")
            .replace("2025-06-01", "2999-01-01"),
    )
    .expect("write");
    let o = st.run(
        &[
            "address",
            "set",
            "--pinfl",
            pinfl,
            "--holder-address",
            bad.to_str().unwrap(),
            "--operator",
            "clerk",
        ],
        &[CLERK_PASSWORD],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        error_line(&o).contains("address.registered_on"),
        "{}",
        text(&o)
    );

    let end = st.json(
        &[
            "address",
            "end",
            "--pinfl",
            pinfl,
            "--kind",
            "temporary",
            "--ended-on",
            "2026-01-01",
            "--operator",
            "clerk",
        ],
        &[CLERK_PASSWORD],
    );
    let history = end["history"].as_array().expect("history");
    assert_eq!(history.len(), 3, "{end}");
    assert_eq!(history[1]["ended_on"], "2026-01-01", "{end}");
    assert!(history[2]["ended_on"].is_null(), "{end}");
    // Nothing left to cancel.
    let o = st.run(
        &[
            "address",
            "end",
            "--pinfl",
            pinfl,
            "--kind",
            "temporary",
            "--operator",
            "clerk",
        ],
        &[CLERK_PASSWORD],
    );
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        error_line(&o).contains("no current temporary registration"),
        "{}",
        text(&o)
    );

    // Each change is one outbox row.
    let reg = st.registry();
    let changes: Vec<serde_json::Value> = reg
        .outbox_pending()
        .expect("outbox")
        .into_iter()
        .filter(|m| m.topic == registry::TOPIC_EGOV_ADDRESS_CHANGED)
        .map(|m| serde_json::from_str(&m.payload).expect("payload"))
        .collect();
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert_eq!(changes[0]["change"], "set");
    assert_eq!(changes[0]["address"]["kind"], "temporary");
    assert_eq!(changes[1]["address"]["kind"], "permanent");
    assert_eq!(changes[2]["change"], "end");
    assert_eq!(changes[2]["ended_on"], "2026-01-01");
    assert!(changes.iter().all(|c| c["pinfl"] == pinfl));
    // The registry keeps all three addresses (append-only) and the end.
    let holder = reg
        .holder_by_pinfl(pinfl)
        .expect("holder")
        .expect("holder exists");
    assert_eq!(reg.addresses(holder.id).expect("addresses").len(), 3);
    assert_eq!(reg.address_ends(holder.id).expect("ends").len(), 1);
    let events = reg.audit_events(1, u64::MAX).expect("events");
    assert_eq!(
        events.iter().filter(|e| e.action == "address.set").count(),
        2
    );
    assert!(events.iter().any(|e| e.action == "address.ended"));
    assert!(events.iter().any(|e| e.action == "address.set.refused"));
    assert!(events.iter().any(|e| e.action == "address.end.refused"));

    // A damaged card is taken back only after its document left use.
    let o = st.run(
        &[
            "card",
            "returned",
            "--document",
            &doc,
            "--operator",
            "clerk",
        ],
        &[CLERK_PASSWORD],
    );
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(error_line(&o).contains("document status"), "{}", text(&o));
    st.ok(
        &[
            "revoke",
            "--document",
            &doc,
            "--reason",
            "damaged",
            "--operator",
            "clerk",
        ],
        &[CLERK_PASSWORD],
    );
    let ret = st.json(
        &[
            "card",
            "returned",
            "--document",
            &doc,
            "--operator",
            "clerk",
        ],
        &[CLERK_PASSWORD],
    );
    assert_eq!(ret["destroyed"], true, "{ret}");
    assert_eq!(ret["document_status"], "revoked", "{ret}");
    let card = st
        .registry()
        .card(ret["card_serial"].as_str().expect("serial"))
        .expect("card")
        .expect("card on record");
    assert_eq!(card.lifecycle, registry::CardLifecycle::Destroyed);
    let o = st.run(
        &[
            "card",
            "returned",
            "--document",
            &doc,
            "--operator",
            "clerk",
        ],
        &[CLERK_PASSWORD],
    );
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(error_line(&o).contains("already returned"), "{}", text(&o));
    let events = st.registry().audit_events(1, u64::MAX).expect("events");
    assert!(events.iter().any(|e| e.action == "card.returned"));
    assert!(events.iter().any(|e| e.action == "card.returned.refused"));
}

impl Station {
    /// `idstation --json replace` of `doc` for holder-01 onto the blank card in `reader`, the
    /// holder's new PIN on `--pin-fd 0`.
    fn replace_env(&self, doc: &str, reason: &str, reader: &str, env: &[(&str, &str)]) -> Output {
        self.replace_with(doc, reason, &fixture("holder-01.json"), &[], reader, env)
    }

    /// [`Station::replace_env`] with another holder file and `more` arguments.
    fn replace_with(
        &self,
        doc: &str,
        reason: &str,
        holder: &Path,
        more: &[&str],
        reader: &str,
        env: &[(&str, &str)],
    ) -> Output {
        let letter = holder_pin::letter_path(&self.dir);
        let mut args = vec![
            "--json",
            "replace",
            "--document",
            doc,
            "--reason",
            reason,
            "--holder",
            holder.to_str().unwrap(),
            "--reader",
            reader,
            "--pin-fd",
            "0",
            "--pin-letter",
            letter.to_str().unwrap(),
            "--operator",
            "clerk",
        ];
        args.extend_from_slice(more);
        self.run_env(&args, &[CLERK_PASSWORD, PIN], env)
    }

    /// The replacements of document `doc` as (state, new document number).
    fn replacements(&self, doc: &str) -> Vec<(String, Option<String>)> {
        let reg = self.registry();
        let d = reg
            .document(doc.parse().expect("number"))
            .expect("document")
            .expect("on record");
        reg.replacements_of(d.id)
            .expect("replacements")
            .into_iter()
            .map(|r| {
                let new = r.new_document_id.map(|id| {
                    reg.connection()
                        .query_row(
                            "SELECT series || printf('%07d', number) FROM documents WHERE id = ?1",
                            [id],
                            |row| row.get::<_, String>(0),
                        )
                        .expect("new document")
                });
                (r.state, new)
            })
            .collect()
    }
}

#[test]
fn replace_lost_revokes_the_old_keycompromise_issues_a_new_card_and_links_them() {
    let st = Station::new();
    let slot = testrig::Slot::lease();
    let r = &slot.reader_name;
    let old_img = st.blank_card(0x5E10_0004);
    let old_card = slot.insert(&old_img, &[]);
    let old = st.issue(r);
    let mut old_certs = st.certificates(&old, "active");
    old_certs.sort();
    old_card.pull();
    let new_img = st.blank_card(0x5E10_0005);
    let new_card = slot.insert(&new_img, &[]);

    // A reason outside lost, stolen, damaged, name-change, recalled is refused before anything
    // is done; so is a recall on a station without a national centre to have flagged the card.
    let o = st.replace_env(&old, "misplaced", r, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(error_line(&o).contains("reason"), "{}", text(&o));
    let o = st.replace_env(&old, "recalled", r, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        error_line(&o).contains("this station is not enrolled with a centre"),
        "{}",
        text(&o)
    );
    assert_eq!(st.replacements(&old), vec![]);

    let o = st.replace_env(&old, "lost", r, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(rep["old_status"], "lost", "{rep}");
    assert_eq!(rep["crl_reason"], "keyCompromise", "{rep}");
    let new = rep["new"]["document"]
        .as_str()
        .expect("new document")
        .to_string();
    assert_ne!(new, old);
    assert_eq!(
        st.replacements(&old),
        vec![("completed".into(), Some(new.clone()))]
    );
    assert_eq!(document_status(&st, &old), "lost");
    assert_eq!(document_status(&st, &new), "active");
    assert_eq!(st.certificates(&new, "active").len(), 2);
    let mut revoked = st.certificates(&old, "revoked");
    revoked.sort();
    assert_eq!(revoked, old_certs);
    let crl = st.crl_text();
    let entries = crl_entries(&crl);
    for serial in &old_certs {
        let e = entries
            .iter()
            .find(|(s, _)| s == serial)
            .unwrap_or_else(|| panic!("{serial} not on the CRL:\n{crl}"));
        assert_eq!(e.1, "Key Compromise", "{crl}");
    }
    let events = st.registry().audit_events(1, u64::MAX).expect("events");
    assert!(events.iter().any(|e| e.action == "replacement.started"));
    assert!(events.iter().any(|e| e.action == "replace.refused"));
    let replaced = events
        .iter()
        .find(|e| e.action == "document.replaced")
        .expect("document.replaced audited");
    assert!(replaced.details.contains(&new), "{replaced:?}");
    // A replaced document is not replaced twice.
    let o = st.replace_env(&old, "lost", r, &[]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(error_line(&o).contains("document status"), "{}", text(&o));

    // The holder marries: a name-change replacement with the new surname, confirmed, onto a
    // third card. The old card is revoked (superseded), the registry takes the new name.
    new_card.pull();
    let third_card = slot.insert(&st.blank_card(0x5E10_0006), &[]);
    let mut renamed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("holder-01.json")).unwrap()).unwrap();
    renamed["surname"] = "RAHIMOVA".into();
    // The photo is named relative to the holder file.
    let photo = renamed["photo"].as_str().expect("photo").to_owned();
    renamed["photo"] = fixture(&photo).to_str().unwrap().into();
    if renamed
        .get("surname_cyrillic")
        .is_some_and(|v| !v.is_null())
    {
        renamed["surname_cyrillic"] = "РАҲИМОВА".into();
    }
    let holder = st.dir.join("renamed.json");
    std::fs::write(&holder, serde_json::to_vec(&renamed).unwrap()).unwrap();
    let o = st.replace_with(&new, "name-change", &holder, &["--update-holder"], r, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(
        (&rep["old_status"], &rep["crl_reason"]),
        (
            &serde_json::json!("revoked"),
            &serde_json::json!("superseded")
        ),
        "{rep}"
    );
    let third = rep["new"]["document"].as_str().expect("third document");
    assert_eq!(
        st.replacements(&new),
        vec![("completed".into(), Some(third.to_owned()))]
    );
    assert_eq!(document_status(&st, &new), "revoked");
    let pinfl = renamed["pinfl"].as_str().unwrap();
    let h = st
        .registry()
        .holder_by_pinfl(pinfl)
        .expect("holder")
        .expect("on record");
    assert_eq!(h.data.surname, "RAHIMOVA");

    // The third card damaged: replaced without a holder file, from the registry's record of
    // the holder (the new name, the address) and the photo given, onto a fourth card.
    third_card.pull();
    let _fourth = slot.insert(&st.blank_card(0x5E10_0007), &[]);
    let letter = holder_pin::letter_path(&st.dir);
    let photo_file = fixture(&photo);
    let mut args = vec![
        "--json",
        "replace",
        "--document",
        third,
        "--reason",
        "damaged",
        "--reader",
        r,
        "--pin-fd",
        "0",
        "--pin-letter",
        letter.to_str().unwrap(),
        "--operator",
        "clerk",
    ];
    let o = st.run_env(&args, &[CLERK_PASSWORD, PIN], &[]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "neither --holder nor --photo: {}",
        text(&o)
    );
    args.extend(["--photo", photo_file.to_str().unwrap()]);
    let o = st.run_env(&args, &[CLERK_PASSWORD, PIN], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let fourth = rep["new"]["document"].as_str().expect("fourth document");
    assert_eq!(document_status(&st, third), "revoked");
    assert_eq!(document_status(&st, fourth), "active");
    let d = st
        .registry()
        .document(fourth.parse().expect("number"))
        .expect("document")
        .expect("on record");
    assert_eq!(d.holder_id, h.id, "the same holder");
}

#[test]
fn a_replacement_killed_before_or_after_the_issuance_leaves_the_old_or_the_new_card_never_neither()
{
    let st = Station::new();
    let slot = testrig::Slot::lease();
    let r = &slot.reader_name;
    let old_img = st.blank_card(0x5E10_0006);
    let old_card = slot.insert(&old_img, &[]);
    let old = st.issue(r);
    let mut old_certs = st.certificates(&old, "active");
    old_certs.sort();
    old_card.pull();
    let new_img = st.blank_card(0x5E10_0007);
    let _new_card = slot.insert(&new_img, &[]);

    // Killed once the old document is held: recover gives the old card back.
    let o = st.replace_env(
        &old,
        "damaged",
        r,
        &[("IDSTATION_FAILPOINT", "replace.held")],
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert_eq!(document_status(&st, &old), "suspended");
    assert_eq!(st.replacements(&old), vec![("holding".into(), None)]);
    // A held document is not resumed by hand: the replacement decides.
    let o = st.run(
        &[
            "resume",
            "--document",
            &old,
            "--identity-confirmed",
            "--operator",
            "clerk",
        ],
        &[CLERK_PASSWORD],
    );
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(error_line(&o).contains("replacement"), "{}", text(&o));
    let rec = st.json(&["recover", "--operator", "clerk"], &[CLERK_PASSWORD]);
    assert!(
        rec.as_array()
            .expect("array")
            .iter()
            .any(|x| x["outcome"] == "rolled-back" && x["old_document"] == old.as_str()),
        "{rec}"
    );
    assert_eq!(document_status(&st, &old), "active");
    let mut active = st.certificates(&old, "active");
    active.sort();
    assert_eq!(active, old_certs);
    assert_eq!(st.replacements(&old), vec![("rolled-back".into(), None)]);

    // Killed after the new card was issued: recover completes the replacement.
    let o = st.replace_env(
        &old,
        "damaged",
        r,
        &[("IDSTATION_FAILPOINT", "replace.issued")],
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert_eq!(document_status(&st, &old), "suspended");
    let rec = st.json(&["recover", "--operator", "clerk"], &[CLERK_PASSWORD]);
    let done = rec
        .as_array()
        .expect("array")
        .iter()
        .find(|x| x["outcome"] == "completed")
        .unwrap_or_else(|| panic!("no completed replacement in {rec}"))
        .clone();
    let new = done["new_document"].as_str().expect("new").to_string();
    assert_eq!(document_status(&st, &old), "revoked");
    assert_eq!(document_status(&st, &new), "active");
    let states: Vec<String> = st.replacements(&old).into_iter().map(|r| r.0).collect();
    assert_eq!(states, ["rolled-back", "completed"]);
    let crl = st.crl_text();
    let entries = crl_entries(&crl);
    for serial in &old_certs {
        let e = entries
            .iter()
            .find(|(s, _)| s == serial)
            .unwrap_or_else(|| panic!("{serial} not on the CRL:\n{crl}"));
        assert_eq!(e.1, "Cessation Of Operation", "{crl}");
    }
}
