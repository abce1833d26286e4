//! The card services through the centre end to end (docs/centre.md, "Card services"): a real
//! PostgreSQL cluster, the centre's SoftHSM2 token, `idcentral serve` over TLS 1.3 with its
//! public plain-HTTP listener, two enrolled stations of two offices, and software P-256 card
//! keys that sign the centre's proof digest as a PIV card would. Oracles: openssl (`verify`
//! of the renewed certificates up to the root, `crl` of the published CRL, `ocsp` against the
//! public responder) and the centre's tables.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use centre_api::{
    CertifyResponse, EnrolResponse, HoldResponse, RenewResponse, ReserveResponse,
    ServiceFinishResponse,
};
use common::*;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::pkcs8::EncodePublicKey;
use serde_json::{json, Value};

type Reply = Result<(u16, Value, Vec<u8>), String>;

struct Enrolled {
    _station: Station,
    tls: Arc<rustls::ClientConfig>,
}

struct World {
    rt: tokio::runtime::Runtime,
    server: Server,
    anon: Arc<rustls::ClientConfig>,
}

impl World {
    fn call(&self, tls: &Arc<rustls::ClientConfig>, path: &str, body: &Value) -> Reply {
        self.rt.block_on(https(
            self.server.addr,
            "localhost",
            Arc::clone(tls),
            "POST",
            path,
            Some(body),
        ))
    }

    fn ok(&self, tls: &Arc<rustls::ClientConfig>, path: &str, body: &Value) -> Value {
        let (status, v, _) = self.call(tls, path, body).unwrap();
        assert_eq!(status, 200, "POST {path}: {v}");
        v
    }

    fn enrol(&self, token: &str, name: &str, code: &str) -> Enrolled {
        let station = Station::new(token);
        let req = station.enrol_request(name, code);
        let resp: EnrolResponse =
            serde_json::from_value(self.ok(&self.anon, "/v1/enrol", &req)).unwrap();
        let id = identity(&station.store, "identity", der_of_pem(&resp.identity_cert));
        let tls = client_config(&der_of_pem(&resp.trust_anchors.station_ca), Some(id));
        Enrolled {
            _station: station,
            tls,
        }
    }

    /// A plain HTTP GET on the public listener: the body.
    fn public_get(&self, path: &str) -> Vec<u8> {
        let addr = self.server.public.expect("public listener");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        use std::io::{Read, Write};
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        let at = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&all[..at]).to_string();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            !head.to_lowercase().contains("transfer-encoding: chunked"),
            "{head}"
        );
        all[at..].to_vec()
    }
}

use testrig::egov::new_job;

struct CardKey(p256::ecdsa::SigningKey);

impl CardKey {
    fn new() -> CardKey {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).unwrap();
        CardKey(p256::ecdsa::SigningKey::from_slice(&b).unwrap())
    }
    fn spki(&self) -> Vec<u8> {
        self.0
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
            .to_vec()
    }
    fn entry(&self, job: &str, challenge: &str, slot: u8, profile: &str) -> Value {
        let digest =
            centre_api::proof_digest(job, &hex::decode(challenge).unwrap(), slot, &self.spki());
        let sig: p256::ecdsa::DerSignature = self.0.sign_prehash(&digest).unwrap();
        json!({ "slot": format!("{slot:02X}"), "profile": profile,
                "public_key": hex::encode(self.spki()), "proof": hex::encode(sig.as_bytes()) })
    }
}

fn keys_body(job: &str, challenge: &str) -> Value {
    json!({ "operator": "clerk1", "keys": [
        CardKey::new().entry(job, challenge, 0x9a, "holder-auth"),
        CardKey::new().entry(job, challenge, 0x9c, "holder-sign")] })
}

fn date(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn pem(der: &[u8]) -> String {
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der).unwrap()
}

/// Run a tool in `dir`: (success, stdout + stderr).
fn tool(dir: &Path, program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} could not be started ({e}): it is required"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `openssl ocsp` for `cert` (a PEM file in `dir`) until it says `want`.
fn ocsp_until(w: &World, dir: &Path, cert: &str, want: &str) -> String {
    let url = format!("http://{}/ocsp", w.server.public.unwrap());
    let start = Instant::now();
    loop {
        let (_, out) = tool(
            dir,
            "openssl",
            &[
                "ocsp",
                "-issuer",
                "esign.pem",
                "-CAfile",
                "chain.pem",
                "-url",
                &url,
                "-no_nonce",
                "-cert",
                cert,
            ],
        );
        if out.contains(want) {
            assert!(out.contains("Response verify OK"), "{out}");
            return out;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "OCSP never said {want:?}; last answer:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The published CRL of esign-ca-1 (verified by openssl against the chain) until `until` holds
/// for its text.
fn crl_until(w: &World, dir: &Path, until: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        std::fs::write(dir.join("esign.crl"), w.public_get("/crl/esign-ca-1.crl")).unwrap();
        let (ok, text) = tool(
            dir,
            "openssl",
            &[
                "crl",
                "-in",
                "esign.crl",
                "-inform",
                "DER",
                "-CAfile",
                "chain.pem",
                "-noout",
                "-text",
            ],
        );
        assert!(ok && text.contains("verify OK"), "{text}");
        if until(&text) {
            return text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the CRL never got there:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The CRL's entry of `serial` (upper-case hex): the lines up to the next serial.
fn crl_entry(text: &str, serial: &str) -> Option<String> {
    let at = text.find(&format!("Serial Number: {serial}"))?;
    let rest = &text[at + 15..];
    let end = rest.find("Serial Number:").unwrap_or(rest.len());
    Some(text[at..at + 15 + end].to_owned())
}

#[test]
fn renewal_hold_release_and_address_changes_through_the_centre() {
    let (tmp, cluster, config) = centre(
        "\n[server]\npublic_name = \"localhost\"\n\n[issuance]\ndocument_lookups_per_hour = 4\n\
         document_lookups_per_operator_per_hour = 3\n",
    );
    let dir = tmp.path();
    ok(idcentral(
        &config,
        &["init", "--admin", "admin"],
        &format!("{ADMIN_PASSWORD}\n"),
    ));
    let code_tas = add_station_at(&config, "TAS01", "tas01-st1");
    let code_sam = add_station_at(&config, "SAM01", "sam01-st1");
    let rt = test_runtime();
    let db = rt.block_on(db(&cluster));
    let ca_cert = |ca: &str| -> Vec<u8> {
        rt.block_on(db.query_one(
            "SELECT cert_der FROM ca_keys WHERE ca = $1 AND state = 'active'",
            &[&ca],
        ))
        .unwrap()
        .get(0)
    };
    let (root, esign, station_ca) = (ca_cert("root"), ca_cert("esign"), ca_cert("station-ca"));
    std::fs::write(dir.join("esign.pem"), pem(&esign)).unwrap();
    std::fs::write(dir.join("root.pem"), pem(&root)).unwrap();
    std::fs::write(dir.join("chain.pem"), pem(&root) + &pem(&esign)).unwrap();
    let w = World {
        server: Server::start_public(&config),
        anon: client_config(&station_ca, None),
        rt,
    };
    let tas = w.enrol("cs-tas", "tas01-st1", &code_tas);
    let sam = w.enrol("cs-sam", "sam01-st1", &code_sam);

    // A card issued at TAS01 that expires in 400 days (shorter than a certificate's validity).
    let expiry = time::OffsetDateTime::now_utc().date() + time::Duration::days(400);
    let job = new_job();
    let holder = json!({ "pinfl": "31234567890123", "surname": "Karimova", "given_names": "Dilnoza",
        "sex": "F", "date_of_birth": "1990-04-12", "place_of_birth": "Tashkent", "citizenship": "UZB" });
    let address = json!({ "kind": "permanent", "region": "Toshkent", "district": "Yunusobod",
        "street": "Amir Temur 1", "house": "12", "registered_on": "2015-06-01" });
    let r: ReserveResponse = serde_json::from_value(w.ok(
        &tas.tls,
        "/v1/jobs/reserve",
        &json!({ "job": job, "operator": "clerk1", "holder": holder, "address": address,
                 "update_holder": false, "card_serial": "0A1B2C3D" }),
    ))
    .unwrap();
    let first: CertifyResponse = serde_json::from_value(w.ok(
        &tas.tls,
        &centre_api::paths::certify(&job),
        &keys_body(&job, &r.challenge),
    ))
    .unwrap();
    w.ok(
        &tas.tls,
        &centre_api::paths::complete(&job),
        &json!({ "operator": "clerk1", "card_serial": "0A1B2C3D",
                 "date_of_issue": date(time::OffsetDateTime::now_utc().date()),
                 "date_of_expiry": date(expiry) }),
    );
    let doc = r.document.clone();
    let old: Vec<String> = first
        .certificates
        .iter()
        .map(|c| c.serial.clone())
        .collect();

    // Renewal at SAM01 (another office: any office serves any holder).
    let rj = new_job();
    let path = |step: &str| centre_api::paths::service(&rj, step);
    let renew = json!({ "operator": "clerk2", "document": doc, "card_serial": "0A1B2C3D" });
    assert_refused(
        &w.call(
            &sam.tls,
            &path("renew"),
            &json!({ "operator": "clerk2", "document": doc, "card_serial": "FFFF0000" }),
        ),
        409,
        "card-not-the-documents",
    );
    let opened: RenewResponse =
        serde_json::from_value(w.ok(&sam.tls, &path("renew"), &renew)).unwrap();
    assert_eq!(opened.date_of_expiry, date(expiry));
    let again: RenewResponse =
        serde_json::from_value(w.ok(&sam.tls, &path("renew"), &renew)).unwrap();
    assert_eq!(again, opened, "a repeated renew gets the same answer");
    // Another station may not touch SAM01's job.
    assert_refused(
        &w.call(
            &tas.tls,
            &path("certify"),
            &keys_body(&rj, &opened.challenge),
        ),
        403,
        "job-of-another-station",
    );
    // A proof over another challenge proves nothing.
    assert_refused(
        &w.call(
            &sam.tls,
            &path("certify"),
            &keys_body(&rj, &"00".repeat(32)),
        ),
        400,
        "proof-of-possession-failed",
    );
    let body = keys_body(&rj, &opened.challenge);
    let renewed: CertifyResponse =
        serde_json::from_value(w.ok(&sam.tls, &path("certify"), &body)).unwrap();
    let repeat: CertifyResponse =
        serde_json::from_value(w.ok(&sam.tls, &path("certify"), &body)).unwrap();
    assert_eq!(
        repeat, renewed,
        "a repeated certify gets the same certificates"
    );
    assert_eq!(renewed.certificates.len(), 2);
    for c in &renewed.certificates {
        let f = format!("new-{}.pem", c.slot);
        std::fs::write(dir.join(&f), pem(&hex::decode(&c.der).unwrap())).unwrap();
        let (ok, out) = openssl_verify(
            dir,
            &[
                "-x509_strict",
                "-CAfile",
                "root.pem",
                "-untrusted",
                "esign.pem",
                &f,
            ],
        );
        assert!(ok, "openssl verify {f}: {out}");
        // Capped at the document's expiry.
        let (_, end) = tool(dir, "openssl", &["x509", "-in", &f, "-noout", "-enddate"]);
        let (_, check) = tool(
            dir,
            "openssl",
            &[
                "x509",
                "-in",
                &f,
                "-noout",
                "-checkend",
                &(401 * 86_400).to_string(),
            ],
        );
        assert!(check.contains("will expire"), "{f} {end}: {check}");
    }
    let done: ServiceFinishResponse = serde_json::from_value(w.ok(
        &sam.tls,
        &path("complete"),
        &json!({ "operator": "clerk2" }),
    ))
    .unwrap();
    let mut old_sorted = old.clone();
    old_sorted.sort();
    assert_eq!(done.revoked, old_sorted, "the old certificates superseded");
    assert_eq!(done.active.len(), 2);
    let crl = crl_until(&w, dir, |t| old.iter().all(|s| t.contains(s.as_str())));
    for s in &old {
        let entry = crl_entry(&crl, s).unwrap();
        assert!(entry.contains("Superseded"), "{s}: {entry}");
    }
    let sign_pem = "new-9C.pem";
    ocsp_until(&w, dir, sign_pem, &format!("{sign_pem}: good"));
    let office: String =
        w.rt.block_on(db.query_one("SELECT office FROM service_jobs WHERE id = $1", &[&rj]))
            .unwrap()
            .get(0);
    assert_eq!(office, "SAM01", "the centre records which office renewed");

    // Hold at TAS01: OCSP says revoked, certificateHold; a renewal is refused; release (the
    // holder in person) and OCSP says good again, the CRL drops the hold.
    let hold: HoldResponse = serde_json::from_value(w.ok(
        &tas.tls,
        &centre_api::paths::service(&new_job(), "hold"),
        &json!({ "operator": "clerk1", "document": doc }),
    ))
    .unwrap();
    assert_eq!(hold.state, "suspended");
    assert_eq!(hold.certificates, done.active);

    // SAM01's clerk reads the card TAS01 issued: the national registry's record of it, found
    // by chip serial and checked against the certificates on the card; the read is audited.
    let lookup = |serial: &str, certs: &[String]| {
        w.call(
            &sam.tls,
            centre_api::paths::CARD_LOOKUP,
            &json!({ "operator": "clerk2", "card_serial": serial, "certificates": certs }),
        )
    };
    let seen: centre_api::CardAtCentre = serde_json::from_value(w.ok(
        &sam.tls,
        centre_api::paths::CARD_LOOKUP,
        &json!({ "operator": "clerk2", "card_serial": "0a1b2c3d", "certificates": done.active }),
    ))
    .unwrap();
    assert_eq!(
        (
            seen.document.as_str(),
            seen.state.as_str(),
            seen.office.as_str()
        ),
        (doc.as_str(), "suspended", "TAS01")
    );
    assert_eq!(seen.holder.pinfl, "31234567890123");
    assert_eq!(
        seen.suspended_at.as_deref(),
        Some(hold.suspended_at.as_str())
    );
    assert_eq!(
        seen.release_until.as_deref(),
        Some(hold.release_until.as_str())
    );
    // Every certificate of the document, the renewal's on hold and the first ones superseded.
    assert_eq!(seen.certificates.len(), 4, "{seen:?}");
    for c in &seen.certificates {
        let want = if done.active.contains(&c.serial) {
            ("revoked", Some("certificateHold"))
        } else {
            ("revoked", Some("superseded"))
        };
        assert_eq!((c.state.as_str(), c.reason.as_deref()), want, "{c:?}");
        assert!(c.not_after.ends_with('Z'), "{c:?}");
    }
    assert_eq!(seen.addresses.len(), 1, "{seen:?}");
    assert_eq!(seen.addresses[0].address.district, "Yunusobod");
    assert_eq!(seen.addresses[0].recorded_by, "tas01-st1/clerk1");
    // A certificate that is not the document's and an unknown card get the same answer, which
    // names no document; a bad serial is refused naming the field and the rule. Each refusal
    // is audited with its request.
    let wrong = lookup("0A1B2C3D", &[old[0].clone(), "0123ABCD".into()]);
    let unknown = lookup("FFFF0000", &old);
    assert_refused(&wrong, 404, "document-not-found");
    assert_refused(&unknown, 404, "document-not-found");
    let said = |r: &Reply| r.as_ref().unwrap().1["error"].as_str().unwrap().to_owned();
    assert_eq!(
        said(&wrong).replace("0A1B2C3D", "X"),
        said(&unknown).replace("FFFF0000", "X")
    );
    assert!(!said(&wrong).contains(&doc), "{}", said(&wrong));
    let bad = lookup("0A1B-2C3D", &old);
    assert_refused(&bad, 400, "invalid-request");
    assert_eq!(said(&bad), "card_serial: must be 8 hexadecimal digits");
    // By number (a clerk's look-up): the same record; an unknown or malformed number refused.
    let by_number: centre_api::CardAtCentre = serde_json::from_value(w.ok(
        &sam.tls,
        centre_api::paths::DOCUMENT_LOOKUP,
        &json!({ "operator": "clerk2", "document": doc }),
    ))
    .unwrap();
    // Whose it is and its state; not the addresses or certificates (no card, no proof).
    assert_eq!(
        by_number,
        centre_api::CardAtCentre {
            certificates: Vec::new(),
            addresses: Vec::new(),
            ..seen.clone()
        }
    );
    let lookup_as = |operator: &str, number: &str| {
        w.call(
            &sam.tls,
            centre_api::paths::DOCUMENT_LOOKUP,
            &json!({ "operator": operator, "document": number }),
        )
    };
    let by = |number: &str| lookup_as("clerk2", number);
    assert_refused(&by("ZZ9999999"), 404, "document-not-found");
    let bad = by("aa1");
    assert_refused(&bad, 400, "invalid-request");
    assert!(
        said(&bad).starts_with("document: must be a series"),
        "{}",
        said(&bad)
    );
    let numbered: Vec<(String, String, String)> =
        w.rt.block_on(db.query(
            "SELECT object, details::jsonb->>'holder', details::jsonb->>'issued_by_office'
             FROM audit_log WHERE action = 'document.looked-up'
             AND operator = 'clerk2' AND station = 'sam01-st1'",
            &[],
        ))
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        numbered,
        [(
            format!("document:{doc}"),
            "31234567890123".to_string(),
            "TAS01".to_string()
        )]
    );
    let lookup_refusals: i64 =
        w.rt.block_on(db.query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'request.refused'
             AND details LIKE '%document-lookup%'",
            &[],
        ))
        .unwrap()
        .get(0);
    assert_eq!(lookup_refusals, 2);
    let refusals: Vec<String> =
        w.rt.block_on(db.query(
            "SELECT details FROM audit_log WHERE action = 'request.refused'
             AND details LIKE '%card-lookup%' ORDER BY seq",
            &[],
        ))
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(refusals.len(), 3, "{refusals:?}");
    let looked: Vec<[String; 5]> =
        w.rt.block_on(db.query(
            "SELECT station, operator, object, details::jsonb->>'issued_by_office',
                    details::jsonb->>'holder'
             FROM audit_log WHERE action = 'card.looked-up'",
            &[],
        ))
        .unwrap()
        .iter()
        .map(|r| [r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)])
        .collect();
    assert_eq!(
        looked,
        [[
            "sam01-st1".to_string(),
            "clerk2".into(),
            format!("document:{doc}"),
            "TAS01".into(),
            "31234567890123".into()
        ]]
    );

    // The number look-ups are limited per station ([issuance] document_lookups_per_hour = 4
    // here), counting distinct numbers: SAM01 has looked up two (the unknown number counts, the
    // malformed one does not); the same number again (a retry) is answered and not counted;
    // two more numbers are, the fifth refused with the time the hour has room again, and
    // counted separately for each station. Within the station's hour one operator may look up
    // three (document_lookups_per_operator_per_hour = 3): clerk2's fourth is refused, clerk3
    // of the same station looks it up.
    for _ in 0..2 {
        assert_eq!(by(&doc).as_ref().map(|r| r.0), Ok(200));
    }
    assert_refused(&by("ZZ9999998"), 404, "document-not-found");
    let mine = by("ZZ9999997");
    assert_refused(&mine, 429, "lookup-limit");
    let why = said(&mine);
    assert!(
        why.starts_with(
            "operator clerk2 of station sam01-st1 has looked up 3 document numbers in the last hour"
        ) && why.contains("document_lookups_per_operator_per_hour")
            && why.contains(" again after 20"),
        "{why}"
    );
    let by3 = |number: &str| lookup_as("clerk3", number);
    assert_refused(&by3("ZZ9999997"), 404, "document-not-found");
    let limited = by3("ZZ9999996");
    assert_refused(&limited, 429, "lookup-limit");
    let why = said(&limited);
    assert!(
        why.starts_with("station sam01-st1 has looked up 4 document numbers in the last hour")
            && why.contains("document_lookups_per_hour")
            && why.contains(" again after 20"),
        "{why}"
    );
    assert_refused(&by("ZZ9999995"), 429, "lookup-limit");
    // A number looked up within the hour is still answered: it teaches nothing new.
    assert_eq!(by(&doc).as_ref().map(|r| r.0), Ok(200));
    assert_refused(&by("ZZ9999999"), 404, "document-not-found");
    let counted: i64 =
        w.rt.block_on(db.query_one(
            "SELECT count(*) FROM document_lookups WHERE station = 'sam01-st1'",
            &[],
        ))
        .unwrap()
        .get(0);
    assert_eq!(counted, 4);
    let tas_by = w.call(
        &tas.tls,
        centre_api::paths::DOCUMENT_LOOKUP,
        &json!({ "operator": "clerk1", "document": doc }),
    );
    assert_eq!(tas_by.as_ref().map(|r| r.0), Ok(200));
    let limit_refusals: i64 =
        w.rt.block_on(db.query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'request.refused'
             AND station = 'sam01-st1' AND details::jsonb->>'rule' = 'lookup-limit'",
            &[],
        ))
        .unwrap()
        .get(0);
    assert_eq!(limit_refusals, 3);
    // What an auditor watches for: the refusals by rule, through `audit search --rule`.
    let found: Value = serde_json::from_str(&ok(idcentral(
        &config,
        &[
            "--json",
            "audit",
            "search",
            "--action",
            "request.refused",
            "--rule",
            "lookup-limit",
            "--operator",
            "admin",
        ],
        &format!("{ADMIN_PASSWORD}\n"),
    )))
    .unwrap();
    let stations: Vec<&str> = found["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["station"].as_str().unwrap())
        .collect();
    assert_eq!(stations, ["sam01-st1"; 3], "{found}");
    let bad = idcentral(
        &config,
        &[
            "audit",
            "search",
            "--rule",
            "Lookup Limit",
            "--operator",
            "admin",
        ],
        &format!("{ADMIN_PASSWORD}\n"),
    );
    assert_eq!(
        bad.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    let out = ocsp_until(&w, dir, sign_pem, &format!("{sign_pem}: revoked"));
    assert!(out.contains("Reason: certificateHold"), "{out}");
    let new_sign = renewed
        .certificates
        .iter()
        .find(|c| c.slot == "9C")
        .unwrap()
        .serial
        .clone();
    let held = crl_until(&w, dir, |t| t.contains(new_sign.as_str()));
    assert!(
        crl_entry(&held, &new_sign)
            .unwrap()
            .contains("Certificate Hold"),
        "{held}"
    );
    assert_refused(
        &w.call(
            &sam.tls,
            &centre_api::paths::service(&new_job(), "renew"),
            &renew,
        ),
        409,
        "document-suspended",
    );
    assert_refused(
        &w.call(
            &tas.tls,
            &centre_api::paths::service(&new_job(), "release"),
            &json!({ "operator": "clerk1", "document": doc }),
        ),
        400,
        "identity-not-confirmed",
    );
    let released: HoldResponse = serde_json::from_value(w.ok(
        &tas.tls,
        &centre_api::paths::service(&new_job(), "release"),
        &json!({ "operator": "clerk1", "document": doc, "identity_confirmed": true }),
    ))
    .unwrap();
    assert_eq!(
        (released.state.as_str(), &released.certificates),
        ("active", &done.active)
    );
    ocsp_until(&w, dir, sign_pem, &format!("{sign_pem}: good"));
    crl_until(&w, dir, |t| !t.contains(new_sign.as_str()));
    assert_refused(
        &w.call(
            &tas.tls,
            &centre_api::paths::service(&new_job(), "release"),
            &json!({ "operator": "clerk1", "document": doc, "identity_confirmed": true }),
        ),
        409,
        "document-not-suspended",
    );

    // A renewal aborted: its certificates revoked (cessationOfOperation), the card's stay.
    let aj = new_job();
    let o: RenewResponse =
        serde_json::from_value(w.ok(&tas.tls, &centre_api::paths::service(&aj, "renew"), &renew))
            .unwrap();
    let c: CertifyResponse = serde_json::from_value(w.ok(
        &tas.tls,
        &centre_api::paths::service(&aj, "certify"),
        &keys_body(&aj, &o.challenge),
    ))
    .unwrap();
    let ab: ServiceFinishResponse = serde_json::from_value(w.ok(
        &tas.tls,
        &centre_api::paths::service(&aj, "abort"),
        &json!({ "operator": "clerk1", "reason": "card pulled during card.install" }),
    ))
    .unwrap();
    let mut aborted: Vec<String> = c.certificates.iter().map(|c| c.serial.clone()).collect();
    aborted.sort();
    assert_eq!(ab.revoked, aborted);
    let states: Vec<(String, Option<String>)> = w
        .rt
        .block_on(db.query(
            "SELECT state, revocation_reason FROM certificates WHERE service_job = $1 OR service_job = $2 ORDER BY service_job = $1, slot",
            &[&aj, &rj],
        ))
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        states,
        [
            ("active".into(), None),
            ("active".into(), None),
            ("revoked".into(), Some("cessationOfOperation".into())),
            ("revoked".into(), Some("cessationOfOperation".into())),
        ]
    );

    // Address changes: a temporary registration set at SAM01, ended at TAS01; each in the
    // national history and the e-government outbox.
    let temp = json!({ "kind": "temporary", "region": "Samarqand", "district": "Samarqand",
        "street": "Registon 5", "house": "3", "registered_on": "2026-01-10",
        "registered_until": "2027-01-10" });
    let set = w.ok(
        &sam.tls,
        &centre_api::paths::service(&new_job(), "address"),
        &json!({ "operator": "clerk2", "pinfl": "31234567890123", "set": temp }),
    );
    let ended = w.ok(
        &tas.tls,
        &centre_api::paths::service(&new_job(), "address"),
        &json!({ "operator": "clerk1", "pinfl": "31234567890123", "end_temporary_on": "2026-06-01" }),
    );
    assert_eq!(set["address_id"], ended["address_id"]);
    assert_refused(
        &w.call(
            &tas.tls,
            &centre_api::paths::service(&new_job(), "address"),
            &json!({ "operator": "clerk1", "pinfl": "31234567890123", "end_temporary_on": "2026-06-02" }),
        ),
        409,
        "no-temporary-address",
    );
    assert_refused(
        &w.call(
            &tas.tls,
            &centre_api::paths::service(&new_job(), "address"),
            &json!({ "operator": "clerk1", "pinfl": "39999999999999", "end_temporary_on": "2026-06-02" }),
        ),
        404,
        "holder-not-found",
    );
    let history: Vec<(String, String, String)> = w
        .rt
        .block_on(db.query(
            "SELECT a.kind, a.street, a.station FROM holder_addresses a JOIN holders h ON h.id = a.holder_id
             WHERE h.pinfl = '31234567890123' ORDER BY a.id",
            &[],
        ))
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        history,
        [
            (
                "permanent".into(),
                "Amir Temur 1".into(),
                "tas01-st1".into()
            ),
            ("temporary".into(), "Registon 5".into(), "sam01-st1".into()),
        ]
    );
    let outbox: Vec<(String, Value)> =
        w.rt.block_on(db.query(
            "SELECT topic, payload FROM outbox WHERE topic = 'address.changed' ORDER BY id",
            &[],
        ))
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(outbox.len(), 2, "{outbox:?}");
    assert_eq!(outbox[0].1["change"], "set");
    assert_eq!(outbox[0].1["office"], "SAM01");
    assert_eq!(outbox[1].1["change"], "end");
    assert_eq!(outbox[1].1["ended_on"], "2026-06-01");

    // Every refusal is audited with its rule; every service names the office that did it.
    let refusals: Vec<String> =
        w.rt.block_on(db.query(
            "SELECT details FROM audit_log WHERE action = 'request.refused' ORDER BY seq",
            &[],
        ))
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for rule in [
        "card-not-the-documents",
        "job-of-another-station",
        "proof-of-possession-failed",
        "document-suspended",
        "identity-not-confirmed",
        "document-not-suspended",
        "no-temporary-address",
        "holder-not-found",
    ] {
        assert!(
            refusals
                .iter()
                .any(|d| d.contains(&format!("\"rule\":\"{rule}\""))),
            "{rule} not audited: {refusals:?}"
        );
    }
    let served: Vec<(String, String)> = w
        .rt
        .block_on(db.query(
            "SELECT action, details FROM audit_log WHERE action IN
               ('renewal.completed', 'document.held', 'document.released', 'address.set', 'address.ended')
             ORDER BY seq",
            &[],
        ))
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let offices: Vec<(&str, bool)> = served
        .iter()
        .map(|(a, d)| (a.as_str(), d.contains("\"office\":\"SAM01\"")))
        .collect();
    assert_eq!(
        offices,
        [
            ("renewal.completed", true),
            ("document.held", false),
            ("document.released", false),
            ("address.set", true),
            ("address.ended", false),
        ]
    );
}

/// An initialised centre serving with its public listener, TAS01 and SAM01 enrolled (their
/// tokens `{tag}-tas`, `{tag}-sam`), and a client of its database.
struct TwoStations {
    _tmp: tempfile::TempDir,
    _cluster: Cluster,
    w: World,
    db: tokio_postgres::Client,
    tas: Enrolled,
    sam: Enrolled,
}

fn two_stations(tag: &str) -> TwoStations {
    let (tmp, cluster, config) = centre("");
    ok(idcentral(
        &config,
        &["init", "--admin", "admin"],
        &format!("{ADMIN_PASSWORD}\n"),
    ));
    let code_tas = add_station_at(&config, "TAS01", "tas01-st1");
    let code_sam = add_station_at(&config, "SAM01", "sam01-st1");
    let rt = test_runtime();
    let db = rt.block_on(db(&cluster));
    let station_ca: Vec<u8> = rt
        .block_on(db.query_one(
            "SELECT cert_der FROM ca_keys WHERE ca = 'station-ca' AND state = 'active'",
            &[],
        ))
        .unwrap()
        .get(0);
    let w = World {
        server: Server::start_public(&config),
        anon: client_config(&station_ca, None),
        rt,
    };
    let tas = w.enrol(&format!("{tag}-tas"), "tas01-st1", &code_tas);
    let sam = w.enrol(&format!("{tag}-sam"), "sam01-st1", &code_sam);
    TwoStations {
        _tmp: tmp,
        _cluster: cluster,
        w,
        db,
        tas,
        sam,
    }
}

/// Issue a card at the station `tls` is for, to holder `pinfl`, through the protocol; its
/// document number.
fn issue(w: &World, tls: &Arc<rustls::ClientConfig>, pinfl: &str, serial: &str) -> String {
    issue_card(w, tls, pinfl, serial, false).0
}

/// `reserve` of a new job for holder `pinfl` (the same record each time) on chip `serial`.
fn reserve_job(
    w: &World,
    tls: &Arc<rustls::ClientConfig>,
    pinfl: &str,
    serial: &str,
) -> (String, ReserveResponse) {
    let job = new_job();
    let holder = json!({ "pinfl": pinfl, "surname": "Aliyev", "given_names": "Bobur",
        "sex": "M", "date_of_birth": "1988-02-03", "place_of_birth": "Samarkand", "citizenship": "UZB" });
    let address = json!({ "kind": "permanent", "region": "Toshkent", "district": "Yunusobod",
        "street": "Amir Temur 1", "house": "3", "registered_on": "2015-06-01" });
    let r: ReserveResponse = serde_json::from_value(w.ok(
        tls,
        "/v1/jobs/reserve",
        &json!({ "job": job, "operator": "clerk1", "holder": holder, "address": address,
                 "update_holder": false, "card_serial": serial }),
    ))
    .unwrap();
    (job, r)
}

/// [`issue`], asking for the card's key from the centre first when `with_key`: the document
/// number and the certificate serials.
fn issue_card(
    w: &World,
    tls: &Arc<rustls::ClientConfig>,
    pinfl: &str,
    serial: &str,
    with_key: bool,
) -> (String, Vec<String>) {
    let (job, r) = reserve_job(w, tls, pinfl, serial);
    if with_key {
        w.ok(
            tls,
            centre_api::paths::CARD_KEY,
            &json!({ "operator": "clerk1", "card_serial": serial, "purpose": "issuance", "job": job }),
        );
    }
    let c: CertifyResponse = serde_json::from_value(w.ok(
        tls,
        &centre_api::paths::certify(&job),
        &keys_body(&job, &r.challenge),
    ))
    .unwrap();
    let today = time::OffsetDateTime::now_utc().date();
    w.ok(
        tls,
        &centre_api::paths::complete(&job),
        &json!({ "operator": "clerk1", "card_serial": serial, "date_of_issue": date(today),
                 "date_of_expiry": date(today + time::Duration::days(3650)) }),
    );
    (
        r.document,
        c.certificates.iter().map(|c| c.serial.clone()).collect(),
    )
}

/// `POST /v1/documents/changes` (docs/centre.md "What other offices changed"): a station lists
/// the changes of its own documents only, oldest first, to its clerk or ca-admin (an auditor
/// and an unknown role refused, a bad `since` or `limit` named); `limit` pages the list, and a
/// page ends with every change of its last change's time, so that changes made at the same
/// instant are neither lost nor listed for ever. Each read is audited with its count.
#[test]
fn a_station_pages_through_the_changes_of_its_documents() {
    let TwoStations {
        _tmp,
        _cluster,
        w,
        db,
        tas,
        sam,
    } = two_stations("ch");
    let docs: Vec<String> = (1..=3)
        .map(|i| {
            issue(
                &w,
                &tas.tls,
                &format!("3123456789012{i}"),
                &format!("0A1B2C3{i}"),
            )
        })
        .collect();
    // SAM01 (another office) declares each lost, one after the other.
    for d in &docs {
        w.ok(
            &sam.tls,
            &centre_api::paths::revoke(d),
            &json!({ "operator": "clerk2", "reason": "lost" }),
        );
    }
    let changes = |tls: &Arc<rustls::ClientConfig>, body: Value| {
        w.call(tls, centre_api::paths::DOCUMENT_CHANGES, &body)
    };
    let listed = |v: &Value| -> Vec<(String, String, String)> {
        v["documents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let s = |k: &str| c[k].as_str().unwrap().to_owned();
                (s("document"), s("state"), s("changed_by"))
            })
            .collect()
    };
    let lost = |d: &String| (d.clone(), "lost".to_owned(), "sam01-st1/clerk2".to_owned());

    // Every change, oldest first, to TAS01; none to SAM01, which issued none of them.
    let all = w.ok(
        &tas.tls,
        centre_api::paths::DOCUMENT_CHANGES,
        &json!({ "operator": "clerk1", "role": "clerk" }),
    );
    assert_eq!(
        listed(&all),
        docs.iter().map(lost).collect::<Vec<_>>(),
        "{all}"
    );
    assert_eq!(all["more"], false, "{all}");
    let theirs = w.ok(
        &sam.tls,
        centre_api::paths::DOCUMENT_CHANGES,
        &json!({ "operator": "clerk2", "role": "ca-admin" }),
    );
    assert_eq!(listed(&theirs), vec![], "{theirs}");

    // Who may ask, and what is refused.
    let refused = |body: Value, status: u16, rule: &str, field: &str| {
        let r = changes(&tas.tls, body);
        assert_refused(&r, status, rule);
        let (_, v, _) = r.unwrap();
        assert!(v["error"].as_str().unwrap().starts_with(field), "{v}");
    };
    refused(
        json!({ "operator": "aud1", "role": "auditor" }),
        403,
        "operator-role-not-permitted",
        "",
    );
    refused(
        json!({ "operator": "clerk1", "role": "janitor" }),
        400,
        "invalid-request",
        "role: ",
    );
    refused(
        json!({ "operator": "clerk1", "role": "clerk", "since": "yesterday" }),
        400,
        "invalid-request",
        "since: ",
    );
    for limit in [0, 1001] {
        refused(
            json!({ "operator": "clerk1", "role": "clerk", "limit": limit }),
            400,
            "invalid-request",
            "limit: ",
        );
    }

    // Two per page: two, then from the second's time the third.
    let page = |since: Option<&str>, limit: u32| {
        let mut body = json!({ "operator": "clerk1", "role": "clerk", "limit": limit });
        if let Some(s) = since {
            body["since"] = s.into();
        }
        w.ok(&tas.tls, centre_api::paths::DOCUMENT_CHANGES, &body)
    };
    let first = page(None, 2);
    assert_eq!(
        listed(&first),
        docs[..2].iter().map(lost).collect::<Vec<_>>()
    );
    assert_eq!(first["more"], true, "{first}");
    assert_eq!(
        first["until"], first["documents"][1]["changed_at"],
        "{first}"
    );
    let rest = page(first["until"].as_str(), 2);
    assert_eq!(listed(&rest), vec![lost(&docs[2])], "{rest}");
    assert_eq!(rest["more"], false, "{rest}");

    // The three changed at one instant (one transaction's time): a page of two holds all three,
    // and the next, after that instant, none.
    rt_exec(
        &w.rt,
        &db,
        "UPDATE documents SET state_changed_at = now() - interval '1 hour'
         WHERE station = 'tas01-st1'",
    );
    let tied = page(None, 2);
    assert_eq!(
        listed(&tied),
        docs.iter().map(lost).collect::<Vec<_>>(),
        "{tied}"
    );
    assert_eq!(tied["more"], true, "{tied}");
    let after = page(tied["until"].as_str(), 2);
    assert_eq!(
        (listed(&after), &after["more"]),
        (vec![], &json!(false)),
        "{after}"
    );

    // Every read audited with its count; the refusals as refusals.
    let reads: Vec<i64> =
        w.rt.block_on(db.query(
            "SELECT (details::jsonb ->> 'documents')::bigint FROM audit_log
             WHERE action = 'documents.changes-read' ORDER BY seq",
            &[],
        ))
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(reads, vec![3, 0, 2, 1, 3, 0]);
}

fn rt_exec(rt: &tokio::runtime::Runtime, db: &tokio_postgres::Client, sql: &str) {
    rt.block_on(db.execute(sql, &[])).unwrap();
}

/// `POST /v1/cards/key` (docs/centre.md "Card management keys"): the centre releases a card's
/// management key to the station whose issuance job the card is, while the job is reserved
/// (recorded on the job with a random value of its own) and again later (the same key); for an
/// issued card to any station that names the active document and certificates read from it;
/// the same card gets the same key, another card another, and the same chip serial in another
/// job another. Refused, and audited as such: another station's job, another card
/// than the job's, a malformed request (the field named), a certificate that is not the
/// document's, a document out of use, a card issued without a key of the centre. Each release
/// is audited `card.key-released` with the station and the purpose.
#[test]
fn the_centre_releases_a_card_key_only_for_the_card_a_station_holds() {
    let TwoStations {
        _tmp,
        _cluster,
        w,
        db,
        tas,
        sam,
    } = two_stations("ck");
    let key = |tls: &Arc<rustls::ClientConfig>, body: Value| {
        w.call(tls, centre_api::paths::CARD_KEY, &body)
    };
    let secret = |v: &Value| v["secret"].as_str().unwrap().to_owned();

    // TAS01 reserves a job for card 0A1B2C41 and asks for the card's key.
    let job = new_job();
    let holder = json!({ "pinfl": "31234567890141", "surname": "Aliyev", "given_names": "Bobur",
        "sex": "M", "date_of_birth": "1988-02-03", "place_of_birth": "Samarkand", "citizenship": "UZB" });
    let address = json!({ "kind": "permanent", "region": "Toshkent", "district": "Yunusobod",
        "street": "Amir Temur 1", "house": "3", "registered_on": "2015-06-01" });
    let r: ReserveResponse = serde_json::from_value(w.ok(
        &tas.tls,
        "/v1/jobs/reserve",
        &json!({ "job": job, "operator": "clerk1", "holder": holder, "address": address,
                 "update_holder": false, "card_serial": "0A1B2C41" }),
    ))
    .unwrap();
    let for_job = |serial: &str, job: &str| json!({ "operator": "clerk1", "card_serial": serial, "purpose": "issuance", "job": job });
    let issued = w.ok(
        &tas.tls,
        centre_api::paths::CARD_KEY,
        &for_job("0a1b2c41", &job),
    );
    assert_eq!(
        (&issued["card_serial"], &issued["key"]),
        (&json!("0A1B2C41"), &json!("card-keys-1")),
        "{issued}"
    );
    let first = secret(&issued);
    assert_eq!(first.len(), 64, "32 bytes, hex");
    assert_refused(
        &key(&sam.tls, for_job("0A1B2C41", &job)),
        403,
        "job-of-another-station",
    );
    assert_refused(
        &key(&tas.tls, for_job("0A1B2C42", &job)),
        409,
        "card-not-the-documents",
    );
    assert_refused(
        &key(&tas.tls, for_job("0A1B2C41", &new_job())),
        404,
        "job-not-found",
    );
    for (body, field) in [
        (
            json!({ "operator": "clerk1", "card_serial": "0A1B2C41", "purpose": "x", "job": job }),
            "purpose",
        ),
        (
            json!({ "operator": "clerk1", "card_serial": "0A1B2C41", "purpose": "issuance" }),
            "job",
        ),
        (
            json!({ "operator": "clerk1", "card_serial": "0A1B", "purpose": "issuance", "job": job }),
            "card_serial",
        ),
        (
            json!({ "operator": "clerk1", "card_serial": "0A1B2C41", "purpose": "unblock",
                 "document": "AA0000001", "certificates": [] }),
            "certificates",
        ),
    ] {
        let r = key(&tas.tls, body);
        assert_refused(&r, 400, "invalid-request");
        let said = r.as_ref().unwrap().1["error"].as_str().unwrap().to_owned();
        assert!(said.starts_with(&format!("{field}:")), "{said}");
    }

    // Certified and completed: the same key again for the job, and for the issued card to
    // SAM01 with its certificates.
    let certified: CertifyResponse = serde_json::from_value(w.ok(
        &tas.tls,
        &centre_api::paths::certify(&job),
        &keys_body(&job, &r.challenge),
    ))
    .unwrap();
    let today = time::OffsetDateTime::now_utc().date();
    w.ok(
        &tas.tls,
        &centre_api::paths::complete(&job),
        &json!({ "operator": "clerk1", "card_serial": "0A1B2C41", "date_of_issue": date(today),
                 "date_of_expiry": date(today + time::Duration::days(3650)) }),
    );
    let again = w.ok(
        &tas.tls,
        centre_api::paths::CARD_KEY,
        &for_job("0A1B2C41", &job),
    );
    assert_eq!(secret(&again), first, "the job's card, the same key");
    let serials: Vec<String> = certified
        .certificates
        .iter()
        .map(|c| c.serial.clone())
        .collect();
    let for_document = |document: &str, certificates: &[String]| {
        json!({ "operator": "clerk2", "card_serial": "0A1B2C41", "purpose": "unblock",
                "document": document, "certificates": certificates })
    };
    let at_sam = w.ok(
        &sam.tls,
        centre_api::paths::CARD_KEY,
        &for_document(&r.document, &serials),
    );
    assert_eq!(secret(&at_sam), first, "the same card at another office");
    assert_refused(
        &key(&sam.tls, for_document(&r.document, &["7E57".to_owned()])),
        404,
        "document-not-found",
    );

    // A card issued without asking for a key (as before the centre derived them): its
    // station's own key; and another card gets another key.
    let older = issue(&w, &tas.tls, "31234567890142", "0A1B2C43");
    let older_certs: Vec<String> = rt_rows(
        &w.rt,
        &db,
        &format!(
            "SELECT encode(c.serial, 'hex') FROM certificates c JOIN documents d ON d.job = c.job
             WHERE d.series || lpad(d.number::text, 7, '0') = '{older}'"
        ),
    );
    let mut refused_older = for_document(&older, &older_certs);
    refused_older["card_serial"] = json!("0A1B2C43");
    assert_refused(
        &key(&sam.tls, refused_older),
        409,
        "card-key-of-issuing-station",
    );
    let other_job = new_job();
    let holder2 = json!({ "pinfl": "31234567890143", "surname": "Aliyeva", "given_names": "Nodira",
        "sex": "F", "date_of_birth": "1990-02-03", "place_of_birth": "Samarkand", "citizenship": "UZB" });
    let other_reserved: ReserveResponse = serde_json::from_value(w.ok(
        &sam.tls,
        "/v1/jobs/reserve",
        &json!({ "job": other_job, "operator": "clerk2", "holder": holder2, "address": address,
                 "update_holder": false, "card_serial": "0A1B2C44" }),
    ))
    .unwrap();
    let other = w.ok(
        &sam.tls,
        centre_api::paths::CARD_KEY,
        &for_job("0A1B2C44", &other_job),
    );
    assert_ne!(secret(&other), first, "another card, another key");
    // The same chip serial in a second reservation (a blank card named by another station
    // before its issuance) gets another key: each job draws its own value, so a key released for
    // one job opens no card another job prepared.
    let twin_job = new_job();
    let holder4 = json!({ "pinfl": "31234567890145", "surname": "Karimova", "given_names": "Zarina",
        "sex": "F", "date_of_birth": "1992-02-03", "place_of_birth": "Samarkand", "citizenship": "UZB" });
    w.ok(
        &tas.tls,
        "/v1/jobs/reserve",
        &json!({ "job": twin_job, "operator": "clerk1", "holder": holder4, "address": address,
                 "update_holder": false, "card_serial": "0A1B2C44" }),
    );
    let twin = w.ok(
        &tas.tls,
        centre_api::paths::CARD_KEY,
        &for_job("0A1B2C44", &twin_job),
    );
    assert_ne!(
        secret(&twin),
        secret(&other),
        "the same chip serial, another job"
    );

    // A reservation naming the chip serial of a card another job issued is refused; and once
    // one of two jobs on the same blank card completes, the other gets no key for that card.
    let stolen_job = new_job();
    let holder3 = json!({ "pinfl": "31234567890144", "surname": "Karimov", "given_names": "Aziz",
        "sex": "M", "date_of_birth": "1991-02-03", "place_of_birth": "Samarkand", "citizenship": "UZB" });
    let stolen = w.call(
        &sam.tls,
        "/v1/jobs/reserve",
        &json!({ "job": stolen_job, "operator": "clerk2", "holder": holder3, "address": address,
                 "update_holder": false, "card_serial": "0a1b2c41" }),
    );
    assert_refused(&stolen, 409, "card-already-issued");
    let said = stolen.unwrap().1;
    assert_eq!(said["office"], "TAS01", "{said}");
    assert!(
        said["error"]
            .as_str()
            .unwrap()
            .starts_with("card_serial: card 0a1b2c41 was issued at office TAS01"),
        "{said}"
    );
    w.ok(
        &sam.tls,
        &centre_api::paths::certify(&other_job),
        &keys_body(&other_job, &other_reserved.challenge),
    );
    w.ok(
        &sam.tls,
        &centre_api::paths::complete(&other_job),
        &json!({ "operator": "clerk2", "card_serial": "0A1B2C44", "date_of_issue": date(today),
                 "date_of_expiry": date(today + time::Duration::days(3650)) }),
    );
    assert_refused(
        &key(&tas.tls, for_job("0A1B2C44", &twin_job)),
        409,
        "card-not-the-documents",
    );

    // Out of use: no key.
    w.ok(
        &sam.tls,
        &centre_api::paths::revoke(&r.document),
        &json!({ "operator": "clerk2", "reason": "lost" }),
    );
    assert_refused(
        &key(&sam.tls, for_document(&r.document, &serials)),
        409,
        "document-not-active",
    );

    let released = rt_rows(
        &w.rt,
        &db,
        "SELECT station || ' ' || (details::json ->> 'purpose') FROM audit_log
         WHERE action = 'card.key-released' ORDER BY seq",
    );
    assert_eq!(
        released,
        [
            "tas01-st1 issuance",
            "tas01-st1 issuance",
            "sam01-st1 unblock",
            "sam01-st1 issuance",
            "tas01-st1 issuance"
        ],
    );
    let refused = rt_rows(
        &w.rt,
        &db,
        "SELECT count(*)::text FROM audit_log WHERE action = 'request.refused'
         AND details LIKE '%card-key%'",
    );
    assert!(refused[0].parse::<u32>().unwrap() >= 10, "{refused:?}");
}

/// The first column (text) of every row `sql` returns.
fn rt_rows(rt: &tokio::runtime::Runtime, db: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    rt.block_on(db.query(sql, &[]))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

/// A card issued through the protocol with the centre's card key asked for (as an enrolled
/// station's issuance does): its document number and certificate serials.
fn issue_under_card_key(
    w: &World,
    tls: &Arc<rustls::ClientConfig>,
    pinfl: &str,
    serial: &str,
) -> (String, Vec<String>) {
    issue_card(w, tls, pinfl, serial, true)
}

/// A renewal left open is aborted by the centre after `[issuance] renewal_timeout_seconds`
/// (here by a second instance with a 1-second timeout, as the sweep of every `serve` does): one
/// left reserved and one left certified, whose certificates are revoked (cessationOfOperation)
/// while the document's previous ones stay active; the station's `complete` is then refused,
/// saying the centre aborted it, and its status says why. The card may carry the aborted
/// renewal's certificates, so they still get its key released — at any office — until a renewal
/// of the document completes; a renewal its station aborted proves nothing.
#[test]
fn a_renewal_left_open_is_aborted_by_the_centre_and_its_card_still_served() {
    let TwoStations {
        _tmp,
        _cluster,
        w,
        db,
        tas,
        sam,
    } = two_stations("rt");
    let (doc, first) = issue_under_card_key(&w, &tas.tls, "41234567890121", "0B1C2D31");
    let (doc2, _) = issue_under_card_key(&w, &tas.tls, "41234567890122", "0B1C2D32");
    let (doc3, _) = issue_under_card_key(&w, &tas.tls, "41234567890123", "0B1C2D33");
    let renew = |tls: &Arc<rustls::ClientConfig>, doc: &str, serial: &str| {
        let job = new_job();
        let o: RenewResponse = serde_json::from_value(w.ok(
            tls,
            &centre_api::paths::service(&job, "renew"),
            &json!({ "operator": "clerk1", "document": doc, "card_serial": serial }),
        ))
        .unwrap();
        (job, o.challenge)
    };
    let certify = |tls: &Arc<rustls::ClientConfig>, job: &str, challenge: &str| -> Vec<String> {
        let c: CertifyResponse = serde_json::from_value(w.ok(
            tls,
            &centre_api::paths::service(job, "certify"),
            &keys_body(job, challenge),
        ))
        .unwrap();
        c.certificates.iter().map(|c| c.serial.clone()).collect()
    };
    let (left, challenge) = renew(&tas.tls, &doc, "0B1C2D31");
    let on_card = certify(&tas.tls, &left, &challenge);
    let (reserved, _) = renew(&tas.tls, &doc2, "0B1C2D32");
    // Another office cannot renew the document while the renewal is open.
    assert_refused(
        &w.call(
            &sam.tls,
            &centre_api::paths::service(&new_job(), "renew"),
            &json!({ "operator": "clerk2", "document": doc, "card_serial": "0B1C2D31" }),
        ),
        409,
        "job-conflict",
    );

    // `idcentral renewals list --open` shows the three open ones; a ca-admin aborts the third at
    // once (a holder who lost the card mid-renewal), which the timeout then leaves alone.
    let (lost, lost_challenge) = renew(&sam.tls, &doc3, "0B1C2D33");
    let lost_certs = certify(&sam.tls, &lost, &lost_challenge);
    let config = _tmp.path().join("centre.toml");
    let pw = format!("{ADMIN_PASSWORD}\n");
    let admin = |args: &[&str]| {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        all.extend(["--operator", "admin"]);
        idcentral(&config, &all, &pw)
    };
    let open: Value = serde_json::from_str(&ok(admin(&["renewals", "list", "--open"]))).unwrap();
    let open_jobs: Vec<&str> = open
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["job"].as_str().unwrap())
        .collect();
    assert_eq!(
        open_jobs,
        [left.as_str(), reserved.as_str(), lost.as_str()],
        "{open}"
    );
    let of_doc3: Value =
        serde_json::from_str(&ok(admin(&["renewals", "list", "--document", &doc3]))).unwrap();
    assert_eq!(of_doc3.as_array().map(Vec::len), Some(1), "{of_doc3}");
    assert_eq!(of_doc3[0]["job"], lost.as_str());
    let first_two = ok(idcentral(
        &config,
        &[
            "renewals",
            "list",
            "--open",
            "--limit",
            "2",
            "--operator",
            "admin",
        ],
        &pw,
    ));
    assert!(
        first_two.lines().count() == 3 && first_two.contains("(the oldest 2: there may be more"),
        "{first_two}"
    );
    let no_limit = admin(&["renewals", "list", "--limit", "0"]);
    assert_eq!(no_limit.status.code(), Some(2), "{no_limit:?}");
    let aborted_now: Value = serde_json::from_str(&ok(admin(&[
        "renewals",
        "abort",
        &lost,
        "--reason",
        "the holder lost the card",
    ])))
    .unwrap();
    assert_eq!(
        (
            &aborted_now["state"],
            &aborted_now["timed_out"],
            &aborted_now["office"]
        ),
        (&json!("aborted"), &json!(false), &json!("SAM01")),
        "{aborted_now}"
    );
    assert_eq!(
        aborted_now["abort_reason"],
        "aborted by admin at the centre: the holder lost the card"
    );
    let again = admin(&["renewals", "abort", &lost, "--reason", "twice"]);
    assert_eq!(again.status.code(), Some(5), "{again:?}");
    let unknown = admin(&["renewals", "abort", &new_job(), "--reason", "x"]);
    assert_eq!(unknown.status.code(), Some(2), "{unknown:?}");
    let no_reason = admin(&["renewals", "abort", &left, "--reason", " "]);
    assert_eq!(no_reason.status.code(), Some(2), "{no_reason:?}");
    // Its certificates, which the card may carry, still get the card's key (at another office).
    let (code, said, _) = w
        .call(
            &tas.tls,
            centre_api::paths::CARD_KEY,
            &json!({ "operator": "clerk1", "card_serial": "0B1C2D33", "purpose": "renewal",
                     "document": doc3, "certificates": lost_certs }),
        )
        .unwrap();
    assert_eq!(code, 200, "{said}");

    let short = config.with_file_name("centre-short-renewal-timeout.toml");
    let base = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &short,
        format!("{base}\n[issuance]\nrenewal_timeout_seconds = 1\n"),
    )
    .unwrap();
    let sweeper = Server::start(&short);
    let status = |job: &str| -> centre_api::ServiceJobStatus {
        let (code, v, _) =
            w.rt.block_on(https(
                w.server.addr,
                "localhost",
                Arc::clone(&tas.tls),
                "GET",
                &centre_api::paths::service_job(job),
                None,
            ))
            .unwrap();
        assert_eq!(code, 200, "{v}");
        serde_json::from_value(v).unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while [&left, &reserved]
        .iter()
        .any(|j| status(j).state != centre_api::JobState::Aborted)
    {
        assert!(Instant::now() < deadline, "the renewals were not aborted");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(sweeper);
    let s = status(&left);
    assert!(s.timed_out, "{s:?}");
    assert!(
        s.abort_reason
            .as_deref()
            .unwrap_or_default()
            .starts_with("timeout: the renewal stayed open longer than 1 seconds"),
        "{s:?}"
    );
    let states = rt_rows(
        &w.rt,
        &db,
        &format!(
            "SELECT encode(serial, 'hex') || ' ' || state || ' ' || coalesce(revocation_reason, '-')
             FROM certificates WHERE service_job = '{left}' OR job = (SELECT job FROM documents
               WHERE series || lpad(number::text, 7, '0') = '{doc}') ORDER BY 1"
        ),
    );
    let upper = |s: &str| s.split(' ').next().unwrap().to_uppercase();
    assert_eq!(states.len(), 4, "{states:?}");
    for row in &states {
        let expected = if on_card.contains(&upper(row)) {
            "revoked cessationOfOperation"
        } else {
            assert!(first.contains(&upper(row)), "{row}");
            "active -"
        };
        assert!(row.ends_with(expected), "{row}");
    }
    let refused = w.call(
        &tas.tls,
        &centre_api::paths::service(&left, "complete"),
        &json!({ "operator": "clerk1" }),
    );
    assert_refused(&refused, 409, "job-aborted");
    let said = refused.unwrap().1["error"].as_str().unwrap().to_owned();
    assert!(said.contains("aborted by the centre (timeout"), "{said}");

    // The card with the aborted renewal's certificates on it: its key, at another office.
    let key = |certificates: &[String]| {
        w.call(
            &sam.tls,
            centre_api::paths::CARD_KEY,
            &json!({ "operator": "clerk2", "card_serial": "0B1C2D31", "purpose": "renewal",
                     "document": doc, "certificates": certificates }),
        )
    };
    let with_first = key(&first).unwrap();
    assert_eq!(with_first.0, 200, "{:?}", with_first.1);
    let with_left = key(&on_card).unwrap();
    assert_eq!(with_left.0, 200, "{:?}", with_left.1);
    assert_eq!(with_left.1["secret"], with_first.1["secret"]);

    // A renewal its station aborted: its certificates prove nothing.
    let (aborted, challenge) = renew(&sam.tls, &doc, "0B1C2D31");
    let never_on_card = certify(&sam.tls, &aborted, &challenge);
    w.ok(
        &sam.tls,
        &centre_api::paths::service(&aborted, "abort"),
        &json!({ "operator": "clerk2", "reason": "card pulled" }),
    );
    assert_refused(&key(&never_on_card), 404, "document-not-found");
    assert_eq!(key(&on_card).unwrap().0, 200);
    // Once a renewal of the document completes, the timed-out one's certificates are history.
    let (done, challenge) = renew(&sam.tls, &doc, "0B1C2D31");
    let renewed = certify(&sam.tls, &done, &challenge);
    w.ok(
        &sam.tls,
        &centre_api::paths::service(&done, "complete"),
        &json!({ "operator": "clerk2" }),
    );
    assert_refused(&key(&on_card), 404, "document-not-found");
    assert_eq!(key(&renewed).unwrap().0, 200);

    let audited = rt_rows(
        &w.rt,
        &db,
        "SELECT station || ' ' || (details::json ->> 'service_job') || ' '
                || coalesce(details::json ->> 'timed_out', 'false')
         FROM audit_log WHERE action = 'renewal.aborted' AND role <> 'ca-admin' ORDER BY seq",
    );
    let mut by_centre = vec![
        format!("centre {left} true"),
        format!("centre {reserved} true"),
    ];
    by_centre.sort();
    let mut first_two = audited[..2].to_vec();
    first_two.sort();
    assert_eq!(first_two, by_centre, "{audited:?}");
    assert_eq!(audited[2], format!("sam01-st1 {aborted} false"));

    let by_admin = rt_rows(
        &w.rt,
        &db,
        "SELECT operator || ' ' || (details::json ->> 'service_job') FROM audit_log
         WHERE action = 'renewal.aborted' AND role = 'ca-admin'",
    );
    assert_eq!(by_admin, [format!("admin {lost}")]);

    // `idcentral show` lists the document's renewals, the timed-out one saying so.
    let args = ["--json", "show", "--document", &doc, "--operator", "admin"];
    let v: Value = serde_json::from_str(&ok(idcentral(&config, &args, &pw))).unwrap();
    let d = v["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["document"] == doc.as_str())
        .unwrap();
    let listed: Vec<(String, String, bool)> = d["renewals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["job"].as_str().unwrap().to_owned(),
                format!(
                    "{} {}",
                    r["office"].as_str().unwrap(),
                    r["state"].as_str().unwrap()
                ),
                r["timed_out"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (left.clone(), "TAS01 aborted".to_owned(), true),
            (aborted.clone(), "SAM01 aborted".to_owned(), false),
            (done.clone(), "SAM01 completed".to_owned(), false),
        ],
        "{v}"
    );
    let text = ok(idcentral(&config, &args[1..], &pw));
    assert!(
        text.contains(&format!(
            "renewal {left} of {doc} aborted at office TAS01 (tas01-st1/clerk1)"
        )) && text.contains(": aborted by the centre (timeout: the renewal stayed open"),
        "{text}"
    );
}

/// A hold aborts the document's open renewal (its certificates, perhaps on the card already,
/// must not stay good while the card is held): revoked cessationOfOperation, the job aborted at
/// the centre naming the hold, the station's `complete` refused. A release waits for an
/// issuance in progress for the holder (a replacement card): refused `holder-has-pending-
/// issuance` naming the office, as `reserve` is refused while the other way round.
#[test]
fn a_hold_aborts_an_open_renewal_and_a_release_waits_for_a_pending_issuance() {
    let TwoStations {
        _tmp,
        _cluster,
        w,
        db,
        tas,
        sam,
    } = two_stations("hr");
    let (doc, first) = issue_under_card_key(&w, &tas.tls, "41234567890131", "0B1C2D41");
    // A renewal at TAS01, certified (its certificates on the card, `issued`), not completed.
    let job = new_job();
    let r: RenewResponse = serde_json::from_value(w.ok(
        &tas.tls,
        &centre_api::paths::service(&job, "renew"),
        &json!({ "operator": "clerk1", "document": doc, "card_serial": "0B1C2D41" }),
    ))
    .unwrap();
    let c: CertifyResponse = serde_json::from_value(w.ok(
        &tas.tls,
        &centre_api::paths::service(&job, "certify"),
        &keys_body(&job, &r.challenge),
    ))
    .unwrap();
    let renewed: Vec<String> = c.certificates.iter().map(|c| c.serial.clone()).collect();
    // SAM01 holds the document (the holder reported the card lost there).
    let hold: HoldResponse = serde_json::from_value(w.ok(
        &sam.tls,
        &centre_api::paths::service(&new_job(), "hold"),
        &json!({ "operator": "clerk2", "document": doc }),
    ))
    .unwrap();
    assert_eq!(hold.state, "suspended");
    let state_of = |serials: &[String]| -> Vec<String> {
        serials
            .iter()
            .map(|s| {
                let r =
                    w.rt.block_on(db.query_one(
                        "SELECT state || '/' || coalesce(revocation_reason, '') FROM certificates
                         WHERE serial = decode($1, 'hex')",
                        &[s],
                    ))
                    .unwrap();
                r.get(0)
            })
            .collect()
    };
    assert_eq!(
        state_of(&first),
        ["revoked/certificateHold", "revoked/certificateHold"]
    );
    assert_eq!(
        state_of(&renewed),
        [
            "revoked/cessationOfOperation",
            "revoked/cessationOfOperation"
        ],
        "the open renewal's certificates"
    );
    let (code, status, _) =
        w.rt.block_on(https(
            w.server.addr,
            "localhost",
            Arc::clone(&tas.tls),
            "GET",
            &centre_api::paths::service_job(&job),
            None,
        ))
        .unwrap();
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["state"], "aborted", "{status}");
    assert!(
        status["abort_reason"]
            .as_str()
            .is_some_and(|r| r.contains("suspended by sam01-st1/clerk2")),
        "{status}"
    );
    assert_refused(
        &w.call(
            &tas.tls,
            &centre_api::paths::service(&job, "complete"),
            &json!({ "operator": "clerk1" }),
        ),
        409,
        "job-aborted",
    );
    let aborted: i64 =
        w.rt.block_on(db.query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'renewal.aborted'
               AND details::jsonb->>'by_hold' = 'true' AND details::jsonb->>'service_job' = $1",
            &[&job],
        ))
        .unwrap()
        .get(0);
    assert_eq!(aborted, 1);
    // The status read names the holder's certificates: audited.
    let shown: i64 =
        w.rt.block_on(db.query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'service-job.shown' AND object = $1",
            &[&format!("service-job:{job}")],
        ))
        .unwrap()
        .get(0);
    assert_eq!(shown, 1);

    // A replacement card reserved at TAS01 for the holder: the release waits for it.
    let (replacement, _) = reserve_job(&w, &tas.tls, "41234567890131", "0B1C2D42");
    let refused = w.call(
        &sam.tls,
        &centre_api::paths::service(&new_job(), "release"),
        &json!({ "operator": "clerk2", "document": doc, "identity_confirmed": true }),
    );
    assert_refused(&refused, 409, "holder-has-pending-issuance");
    let body = &refused.as_ref().unwrap().1;
    assert_eq!(body["office"], "TAS01", "{body}");
    // The replacement given up: the release goes through.
    w.ok(
        &tas.tls,
        &centre_api::paths::abort(&replacement),
        &json!({ "operator": "clerk1", "reason": "the holder found the card", "number": "released" }),
    );
    let released: HoldResponse = serde_json::from_value(w.ok(
        &sam.tls,
        &centre_api::paths::service(&new_job(), "release"),
        &json!({ "operator": "clerk2", "document": doc, "identity_confirmed": true }),
    ))
    .unwrap();
    assert_eq!(released.state, "active");
}

/// Two open jobs may name one blank card (neither `reserve` saw a document on it): the first
/// `complete` gets it, the second is refused `card-already-issued` naming the office, and the
/// chip serial is on one document only.
#[test]
fn a_blank_card_reserved_twice_is_completed_once() {
    let TwoStations {
        _tmp,
        _cluster,
        w,
        db,
        tas,
        sam,
    } = two_stations("bc");
    let reserve = |tls: &Arc<rustls::ClientConfig>, pinfl: &str| -> (String, Vec<String>) {
        let (job, r) = reserve_job(&w, tls, pinfl, "0B1C2D51");
        let c: CertifyResponse = serde_json::from_value(w.ok(
            tls,
            &centre_api::paths::certify(&job),
            &keys_body(&job, &r.challenge),
        ))
        .unwrap();
        (
            job,
            c.certificates.iter().map(|c| c.serial.clone()).collect(),
        )
    };
    let (first, _) = reserve(&tas.tls, "41234567890141");
    let (second, _) = reserve(&sam.tls, "41234567890142");
    let today = time::OffsetDateTime::now_utc().date();
    let complete = json!({ "operator": "clerk1", "card_serial": "0B1C2D51",
        "date_of_issue": date(today), "date_of_expiry": date(today + time::Duration::days(3650)) });
    w.ok(&tas.tls, &centre_api::paths::complete(&first), &complete);
    let refused = w.call(&sam.tls, &centre_api::paths::complete(&second), &complete);
    assert_refused(&refused, 409, "card-already-issued");
    assert_eq!(refused.as_ref().unwrap().1["office"], "TAS01");
    let on_serial: i64 =
        w.rt.block_on(db.query_one(
            "SELECT count(*) FROM documents WHERE upper(card_serial) = '0B1C2D51'",
            &[],
        ))
        .unwrap()
        .get(0);
    assert_eq!(on_serial, 1);
}
