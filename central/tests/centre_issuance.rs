//! The issuance protocol end to end (docs/centre.md, "Issuance"): a real PostgreSQL cluster,
//! the centre's SoftHSM2 token, `idcentral serve` over TLS 1.3 on 127.0.0.1, and two (three)
//! enrolled stations whose identity and audit keys are in SoftHSM2 tokens of the test. Card keys
//! are software P-256 keys that sign the centre's proof digest as a PIV card would (the digest
//! as the ECDSA hash value).

mod common;

use std::sync::Arc;

use centre_api::{
    AbortResponse, AuditHead, CertifyResponse, EnrolResponse, JobStatus, NumberBlock,
    ReserveResponse, StationStatus,
};
use common::*;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::pkcs8::EncodePublicKey;
use registry::{AddressKind, NewAddress, NewHolder};
use serde_json::{json, Value};

type Reply = Result<(u16, Value, Vec<u8>), String>;

/// An enrolled station: its keys, its TLS client configuration, its enrolment answer.
struct Enrolled {
    station: Station,
    tls: Arc<rustls::ClientConfig>,
    resp: EnrolResponse,
}

/// The test's world: the runtime, the server, the anonymous TLS configuration.
struct World {
    rt: tokio::runtime::Runtime,
    server: Server,
    anon: Arc<rustls::ClientConfig>,
}

impl World {
    fn call(
        &self,
        tls: &Arc<rustls::ClientConfig>,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Reply {
        self.rt.block_on(https(
            self.server.addr,
            "localhost",
            Arc::clone(tls),
            method,
            path,
            body,
        ))
    }

    /// A call that must answer 200; its body.
    fn ok(
        &self,
        tls: &Arc<rustls::ClientConfig>,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Value {
        let (status, v, _) = self.call(tls, method, path, body).unwrap();
        assert_eq!(status, 200, "{method} {path}: {v}");
        v
    }

    fn enrol(&self, token: &str, name: &str, code: &str) -> Enrolled {
        let station = Station::new(token);
        let req = station.enrol_request(name, code);
        let resp: EnrolResponse =
            serde_json::from_value(self.ok(&self.anon, "POST", "/v1/enrol", Some(&req))).unwrap();
        let id = identity(&station.store, "identity", der_of_pem(&resp.identity_cert));
        let tls = client_config(&der_of_pem(&resp.trust_anchors.station_ca), Some(id));
        Enrolled { station, tls, resp }
    }
}

fn holder(pinfl: &str, surname: &str) -> NewHolder {
    NewHolder {
        pinfl: pinfl.into(),
        surname: surname.into(),
        given_names: "Dilnoza".into(),
        sex: "F".into(),
        date_of_birth: "1990-04-12".into(),
        place_of_birth: "Tashkent".into(),
        citizenship: "UZB".into(),
        ..Default::default()
    }
}

fn address(street: &str) -> NewAddress {
    NewAddress {
        kind: AddressKind::Permanent,
        region: "Toshkent".into(),
        district: "Yunusobod".into(),
        street: street.into(),
        house: "12".into(),
        apartment: None,
        registered_on: "2015-06-01".into(),
        registered_until: None,
    }
}

fn reserve_body(job: &str, h: &NewHolder, update: bool) -> Value {
    json!({
        "job": job, "operator": "clerk1", "holder": h, "address": address("Amir Temur 1"),
        "update_holder": update, "card_serial": testrig::egov::card_of(job),
    })
}

use testrig::egov::new_job;

/// A card key: a software P-256 key.
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
    /// The key for `slot` with its proof over the job's challenge.
    fn entry(&self, job: &str, challenge: &str, slot: u8, profile: &str) -> Value {
        let digest =
            centre_api::proof_digest(job, &hex::decode(challenge).unwrap(), slot, &self.spki());
        let sig: p256::ecdsa::DerSignature = self.0.sign_prehash(&digest).unwrap();
        json!({ "slot": format!("{slot:02X}"), "profile": profile,
                "public_key": hex::encode(self.spki()), "proof": hex::encode(sig.as_bytes()) })
    }
}

fn certify_body(keys: Vec<Value>) -> Value {
    json!({ "operator": "clerk1", "keys": keys })
}

fn complete_body(job: &str) -> Value {
    json!({ "operator": "clerk1", "card_serial": testrig::egov::card_of(job),
            "date_of_issue": "2026-12-02", "date_of_expiry": "2036-12-01" })
}

fn abort_body(number: &str) -> Value {
    json!({ "operator": "clerk1", "reason": "card pulled", "number": number })
}

/// Reserve `h` at `st` under a new job; the answer.
fn reserve(w: &World, st: &Enrolled, h: &NewHolder) -> ReserveResponse {
    let job = new_job();
    serde_json::from_value(w.ok(
        &st.tls,
        "POST",
        "/v1/jobs/reserve",
        Some(&reserve_body(&job, h, false)),
    ))
    .unwrap()
}

/// Certify both card keys of a reserved job; the answer.
fn certify(w: &World, st: &Enrolled, r: &ReserveResponse) -> CertifyResponse {
    let (a, s) = (CardKey::new(), CardKey::new());
    let body = certify_body(vec![
        a.entry(&r.job, &r.challenge, 0x9a, "holder-auth"),
        s.entry(&r.job, &r.challenge, 0x9c, "holder-sign"),
    ]);
    serde_json::from_value(w.ok(
        &st.tls,
        "POST",
        &centre_api::paths::certify(&r.job),
        Some(&body),
    ))
    .unwrap()
}

async fn count(db: &tokio_postgres::Client, sql: &str, job: &str) -> i64 {
    db.query_one(sql, &[&job]).await.unwrap().get(0)
}

#[test]
fn stations_reserve_certify_and_complete_once_per_holder_in_the_country() {
    let (tmp, cluster, config) =
        centre("\n[server]\npublic_name = \"localhost\"\n\n[issuance]\nblock_size = 3\n");
    let pw = format!("{ADMIN_PASSWORD}\n");
    ok(idcentral(&config, &["init", "--admin", "admin"], &pw));
    let code1 = add_station_at(&config, "TAS01", "tas01-st1");
    let code2 = add_station_at(&config, "SAM02", "sam02-st1");
    let code3 = add_station_at(&config, "TAS01", "tas01-st3");
    let rt = test_runtime();
    let db = rt.block_on(db(&cluster));
    let station_ca = rt.block_on(station_ca_cert(&db));
    let w = World {
        server: Server::start(&config),
        anon: client_config(&station_ca, None),
        rt,
    };

    // Enrolment hands out non-overlapping number blocks and the e-Signature CA.
    let st1 = w.enrol("i-st1", "tas01-st1", &code1);
    let st2 = w.enrol("i-st2", "sam02-st1", &code2);
    let st3 = w.enrol("i-st3", "tas01-st3", &code3);
    let block = |first, last| NumberBlock {
        series: "AA".into(),
        first,
        last,
        next: first,
    };
    assert_eq!(st1.resp.number_block, block(1, 3));
    assert_eq!(st2.resp.number_block, block(4, 6));
    assert!(st1
        .resp
        .trust_anchors
        .esign
        .starts_with("-----BEGIN CERTIFICATE-----"));

    // reserve: a number of the station's block and a challenge; the same request again gets the
    // same answer; another request under the same UUID is a conflict.
    let a = holder("31234567890123", "Karimova");
    let job = new_job();
    let body = reserve_body(&job, &a, false);
    let first = w.ok(&st1.tls, "POST", "/v1/jobs/reserve", Some(&body));
    let r1: ReserveResponse = serde_json::from_value(first.clone()).unwrap();
    assert_eq!((r1.document.as_str(), r1.number), ("AA0000001", 1));
    assert_eq!(hex::decode(&r1.challenge).unwrap().len(), 32);
    assert_eq!(
        w.ok(&st1.tls, "POST", "/v1/jobs/reserve", Some(&body)),
        first
    );
    let mut other = body.clone();
    other["card_serial"] = "0A1B2C3E".into();
    assert_refused(
        &w.call(&st1.tls, "POST", "/v1/jobs/reserve", Some(&other)),
        409,
        "job-conflict",
    );

    // Refused: bad fields name themselves; another station's job; an unknown job; no client
    // certificate; a disabled station.
    let mut bad = reserve_body(&new_job(), &holder("3123456789012", "Karimova"), false);
    let (s, v, _) = w
        .call(&st1.tls, "POST", "/v1/jobs/reserve", Some(&bad))
        .unwrap();
    assert_eq!(
        (s, v["rule"].as_str()),
        (400, Some("invalid-request")),
        "{v}"
    );
    assert!(v["error"].as_str().unwrap().contains("pinfl"), "{v}");
    bad["job"] = "NOT-A-UUID".into();
    assert_refused(
        &w.call(&st1.tls, "POST", "/v1/jobs/reserve", Some(&bad)),
        400,
        "invalid-request",
    );
    assert_refused(
        &w.call(&st2.tls, "GET", &centre_api::paths::job(&job), None),
        403,
        "job-of-another-station",
    );
    assert_refused(
        &w.call(
            &st2.tls,
            "POST",
            &centre_api::paths::abort(&job),
            Some(&abort_body("released")),
        ),
        403,
        "job-of-another-station",
    );
    assert_refused(
        &w.call(&st1.tls, "GET", &centre_api::paths::job(&new_job()), None),
        404,
        "job-not-found",
    );
    assert_refused(
        &w.call(&w.anon, "POST", "/v1/jobs/reserve", Some(&body)),
        401,
        "client-certificate-required",
    );
    disable_station(&config, "tas01-st3");
    let other_holder = reserve_body(&new_job(), &holder("41234567890123", "Aliyev"), false);
    assert_refused(
        &w.call(&st3.tls, "POST", "/v1/jobs/reserve", Some(&other_holder)),
        403,
        "station-disabled",
    );

    // certify: a proof over another challenge, a CA profile, and one key for two slots are
    // refused; then both keys are certified, once.
    let (ka, ks) = (CardKey::new(), CardKey::new());
    let certify_path = centre_api::paths::certify(&job);
    let wrong_challenge = hex::encode([7u8; 32]);
    let forged = certify_body(vec![ka.entry(&job, &wrong_challenge, 0x9a, "holder-auth")]);
    assert_refused(
        &w.call(&st1.tls, "POST", &certify_path, Some(&forged)),
        400,
        "proof-of-possession-failed",
    );
    let ca_profile = certify_body(vec![ka.entry(&job, &r1.challenge, 0x9a, "esign-ca")]);
    let (s, v, _) = w
        .call(&st1.tls, "POST", &certify_path, Some(&ca_profile))
        .unwrap();
    assert_eq!(
        (s, v["rule"].as_str()),
        (400, Some("invalid-request")),
        "{v}"
    );
    assert!(v["error"].as_str().unwrap().contains("keys.profile"), "{v}");
    let twice = certify_body(vec![
        ka.entry(&job, &r1.challenge, 0x9a, "holder-auth"),
        ka.entry(&job, &r1.challenge, 0x9c, "holder-sign"),
    ]);
    assert_refused(
        &w.call(&st1.tls, "POST", &certify_path, Some(&twice)),
        400,
        "invalid-request",
    );
    let good = certify_body(vec![
        ka.entry(&job, &r1.challenge, 0x9a, "holder-auth"),
        ks.entry(&job, &r1.challenge, 0x9c, "holder-sign"),
    ]);
    let certified = w.ok(&st1.tls, "POST", &certify_path, Some(&good));
    assert_eq!(
        w.ok(&st1.tls, "POST", &certify_path, Some(&good)),
        certified
    );
    let c1: CertifyResponse = serde_json::from_value(certified).unwrap();
    assert_eq!(c1.certificates.len(), 2);
    let n = w.rt.block_on(count(
        &db,
        "SELECT count(*) FROM certificates WHERE job = $1",
        &job,
    ));
    assert_eq!(n, 2, "a repeated certify made another certificate");
    let again = certify_body(vec![ka.entry(&job, &r1.challenge, 0x9a, "holder-auth")]);
    assert_refused(
        &w.call(&st1.tls, "POST", &certify_path, Some(&again)),
        409,
        "job-conflict",
    );

    // The certificates chain to the root through the e-Signature CA (openssl) and name the holder.
    let d = tmp.path();
    std::fs::write(d.join("root.pem"), &st1.resp.trust_anchors.root).unwrap();
    std::fs::write(
        d.join("esign.pem"),
        ca::cert_pem(&hex::decode(&c1.issuer).unwrap()).unwrap(),
    )
    .unwrap();
    for c in &c1.certificates {
        let der = hex::decode(&c.der).unwrap();
        let f = format!("holder-{}.pem", c.slot);
        std::fs::write(d.join(&f), ca::cert_pem(&der).unwrap()).unwrap();
        let (ok, out) = openssl_verify(
            d,
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
        let info = ca::CertInfo::parse(&der).unwrap();
        assert!(
            info.subject.contains("Dilnoza Karimova"),
            "{}",
            info.subject
        );
        assert_eq!(info.serial_hex.to_uppercase(), c.serial);
    }

    // complete: once; a repeat gets the same answer; aborting a completed job is a conflict.
    let complete_path = centre_api::paths::complete(&job);
    let done = w.ok(&st1.tls, "POST", &complete_path, Some(&complete_body(&job)));
    assert_eq!(
        done,
        json!({ "job": job, "document": "AA0000001", "state": "completed" })
    );
    assert_eq!(
        w.ok(&st1.tls, "POST", &complete_path, Some(&complete_body(&job))),
        done
    );
    assert_refused(
        &w.call(
            &st1.tls,
            "POST",
            &centre_api::paths::abort(&job),
            Some(&abort_body("spoiled")),
        ),
        409,
        "job-conflict",
    );
    let status: JobStatus =
        serde_json::from_value(w.ok(&st1.tls, "GET", &centre_api::paths::job(&job), None)).unwrap();
    assert_eq!(
        (status.state, status.certificates.len()),
        (centre_api::JobState::Completed, 2)
    );
    let active = w.rt.block_on(count(
        &db,
        "SELECT count(*) FROM certificates WHERE job = $1 AND state = 'active'",
        &job,
    ));
    assert_eq!(active, 2);
    let outbox = w.rt.block_on(count(
        &db,
        "SELECT count(*) FROM outbox WHERE job = $1",
        &job,
    ));
    assert_eq!(outbox, 1);

    // The holder has an active card of TAS01: the other office is told so.
    let (s, v, _) = w
        .call(
            &st2.tls,
            "POST",
            "/v1/jobs/reserve",
            Some(&reserve_body(&new_job(), &a, false)),
        )
        .unwrap();
    assert_eq!(
        (s, v["rule"].as_str(), v["office"].as_str()),
        (409, Some("holder-has-active-card"), Some("TAS01")),
        "{v}"
    );

    // The same new holder at both stations at once, through two centre instances: exactly one
    // reservation.
    let b = holder("51234567890123", "Rahimov");
    let (b1, b2) = (
        reserve_body(&new_job(), &b, false),
        reserve_body(&new_job(), &b, false),
    );
    // Station 2 talks to a second centre instance on the same database: the holder's lock
    // is PostgreSQL's, not the process's.
    let instance2 = Server::start(&config);
    let replies: Vec<Reply> = std::thread::scope(|s| {
        let t1 = s.spawn(|| w.call(&st1.tls, "POST", "/v1/jobs/reserve", Some(&b1)));
        let t2 = s.spawn(|| {
            w.rt.block_on(https(
                instance2.addr,
                "localhost",
                Arc::clone(&st2.tls),
                "POST",
                "/v1/jobs/reserve",
                Some(&b2),
            ))
        });
        vec![t1.join().unwrap(), t2.join().unwrap()]
    });
    drop(instance2);
    let mut statuses: Vec<u16> = replies.iter().map(|r| r.as_ref().unwrap().0).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{replies:?}");
    let (winner, loser) = if replies[0].as_ref().unwrap().0 == 200 {
        (&st1, 1)
    } else {
        (&st2, 0)
    };
    assert_eq!(
        replies[loser].as_ref().unwrap().1["rule"],
        "holder-has-pending-issuance"
    );
    let rb: ReserveResponse =
        serde_json::from_value(replies[1 - loser].as_ref().unwrap().1.clone()).unwrap();

    // abort before certify: the number is released, and not handed out again.
    let aborted: AbortResponse = serde_json::from_value(w.ok(
        &winner.tls,
        "POST",
        &centre_api::paths::abort(&rb.job),
        Some(&abort_body("released")),
    ))
    .unwrap();
    assert!(aborted.revoked.is_empty());
    let c = holder("61234567890123", "Yusupova");
    let rc = reserve(&w, winner, &c);
    assert_ne!(
        rc.document, rb.document,
        "a released number is not handed out again"
    );

    // abort after certify: the certificates are revoked (cessationOfOperation), the number spoiled.
    let cc = certify(&w, winner, &rc);
    let abort_path = centre_api::paths::abort(&rc.job);
    let ab = w.ok(
        &winner.tls,
        "POST",
        &abort_path,
        Some(&abort_body("spoiled")),
    );
    assert_eq!(
        w.ok(
            &winner.tls,
            "POST",
            &abort_path,
            Some(&abort_body("spoiled"))
        ),
        ab
    );
    let ab: AbortResponse = serde_json::from_value(ab).unwrap();
    let mut serials: Vec<String> = cc.certificates.iter().map(|c| c.serial.clone()).collect();
    serials.sort();
    let mut revoked = ab.revoked.clone();
    revoked.sort();
    assert_eq!(revoked, serials);
    let why = w.rt.block_on(count(
        &db,
        "SELECT count(*) FROM certificates WHERE job = $1 AND state = 'revoked' AND revocation_reason = 'cessationOfOperation'",
        &rc.job,
    ));
    assert_eq!(why, 2);
    let spoiled: String =
        w.rt.block_on(db.query_one(
            "SELECT state FROM document_numbers WHERE job = $1",
            &[&rc.job],
        ))
        .unwrap()
        .get(0);
    assert_eq!(spoiled, "spoiled");
    assert_refused(
        &w.call(
            &winner.tls,
            "POST",
            &centre_api::paths::certify(&rc.job),
            Some(&certify_body(vec![])),
        ),
        409,
        "job-aborted",
    );

    // A registered holder with other data: refused naming the field, unless confirmed.
    let changed = NewHolder {
        surname: "Yusupova-Karimova".into(),
        ..c.clone()
    };
    let (s, v, _) = w
        .call(
            &st1.tls,
            "POST",
            "/v1/jobs/reserve",
            Some(&reserve_body(&new_job(), &changed, false)),
        )
        .unwrap();
    assert_eq!(
        (s, v["rule"].as_str()),
        (409, Some("holder-data-differs")),
        "{v}"
    );
    assert!(v["error"].as_str().unwrap().contains("surname"), "{v}");
    let rd = w.ok(
        &st1.tls,
        "POST",
        "/v1/jobs/reserve",
        Some(&reserve_body(&new_job(), &changed, true)),
    );
    let surname: String =
        w.rt.block_on(db.query_one("SELECT surname FROM holders WHERE pinfl = $1", &[&c.pinfl]))
            .unwrap()
            .get(0);
    assert_eq!(surname, "Yusupova-Karimova");

    // Station 1's first block (1..3) is used up by now or soon: it gets a new block, never
    // overlapping station 2's.
    let e = holder("71234567890123", "Tursunov");
    let re = reserve(&w, &st1, &e);
    let status: StationStatus =
        serde_json::from_value(w.ok(&st1.tls, "GET", "/v1/status", None)).unwrap();
    assert_eq!(
        (status.station.as_str(), status.office.as_str()),
        ("tas01-st1", "TAS01")
    );
    assert!(status.open_jobs >= 2, "{status:?}");
    let numbers: Vec<u32> = [&rd["number"]]
        .iter()
        .map(|n| n.as_u64().unwrap() as u32)
        .chain([re.number])
        .collect();
    for b in &status.number_blocks {
        assert!(
            b.last < 4 || b.first > 6,
            "station 1's block {b:?} overlaps station 2's"
        );
    }
    for n in numbers {
        assert!(
            status
                .number_blocks
                .iter()
                .any(|b| (b.first..=b.last).contains(&n)),
            "{n} {status:?}"
        );
    }

    // The audit log names every step, and the chain holds.
    let actions = w.rt.block_on(audit_actions(&db));
    for a in [
        "job.reserved",
        "job.certified",
        "job.completed",
        "job.aborted",
        "holder.updated",
        "job.shown",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} missing: {actions:?}");
    }
    // Every refusal of an enrolled station is audited with its rule, station and operator.
    let refusals: Vec<(String, String, String)> = w
        .rt
        .block_on(db.query(
            "SELECT station, operator, details FROM audit_log WHERE action = 'request.refused' ORDER BY seq",
            &[],
        ))
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let has = |station: &str, operator: &str, rule: &str| {
        refusals.iter().any(|(s, o, d)| {
            s == station && o == operator && d.contains(&format!("\"rule\":\"{rule}\""))
        })
    };
    assert!(
        has("sam02-st1", "clerk1", "holder-has-active-card"),
        "{refusals:?}"
    );
    assert!(
        has("sam02-st1", "clerk1", "job-of-another-station"),
        "{refusals:?}"
    );
    assert!(
        has("tas01-st1", "clerk1", "proof-of-possession-failed"),
        "{refusals:?}"
    );
    assert!(has("tas01-st1", "clerk1", "job-conflict"), "{refusals:?}");
    assert!(
        has("tas01-st1", "clerk1", "invalid-request"),
        "{refusals:?}"
    );
    assert!(
        has("tas01-st3", "tas01-st3", "station-disabled"),
        "{refusals:?}"
    );
    ok(idcentral(
        &config,
        &["audit", "verify-log", "--operator", "admin"],
        &pw,
    ));

    show(&config, &db, &w, &a, &c);

    // Anchoring station 1's audit log, then the timeout sweep.
    audit_push(&w, &st1);
    timeout_sweep(&w, &st2, &config, &db);
}

/// Events 1..=n of a station's log, chained from the genesis hash.
fn events(station: &str, from: u64, to: u64, mut prev: [u8; 32]) -> (Vec<Value>, [u8; 32]) {
    let mut out = Vec::new();
    for seq in from..=to {
        let f = [
            "2026-12-02T12:00:00Z",
            "clerk1",
            "clerk",
            station,
            "holder.enrolled",
            "holder:1",
            "{}",
        ];
        let hash = registry::audit::event_hash(seq, f, &prev);
        out.push(json!({ "seq": seq, "time": f[0], "operator": f[1], "role": f[2], "station": f[3],
            "action": f[4], "object": f[5], "details": f[6], "prev_hash": hex::encode(prev), "hash": hex::encode(hash) }));
        prev = hash;
    }
    (out, prev)
}

fn push_body(st: &Enrolled, events: Vec<Value>, seq: u64, hash: [u8; 32]) -> Value {
    let time = "2026-12-02T12:00:01Z";
    let msg = registry::audit::checkpoint_message(seq, &hash, time);
    let sig = st.station.store.sign_p256_sha256("audit", &msg).unwrap();
    json!({ "events": events, "checkpoint": { "seq": seq, "hash": hex::encode(hash), "time": time, "signature": hex::encode(sig) } })
}

fn audit_push(w: &World, st: &Enrolled) {
    let name = st.resp.station.as_str();
    let (evs, h3) = events(name, 1, 3, registry::audit::GENESIS_PREV_HASH);
    let body = push_body(st, evs, 3, h3);
    let head: AuditHead =
        serde_json::from_value(w.ok(&st.tls, "POST", "/v1/audit/push", Some(&body))).unwrap();
    assert_eq!((head.seq, head.hash.clone()), (3, hex::encode(h3)));
    // The same push again is accepted and changes nothing.
    let again: AuditHead =
        serde_json::from_value(w.ok(&st.tls, "POST", "/v1/audit/push", Some(&body))).unwrap();
    assert_eq!(again.seq, 3);
    // Events that do not chain from the head, a checkpoint that is not the last event's hash,
    // and a signature by another key are refused.
    let (forked, hf) = events(name, 4, 5, [9u8; 32]);
    assert_refused(
        &w.call(
            &st.tls,
            "POST",
            "/v1/audit/push",
            Some(&push_body(st, forked, 5, hf)),
        ),
        409,
        "audit-head-does-not-extend",
    );
    let (next, h5) = events(name, 4, 5, h3);
    assert_refused(
        &w.call(
            &st.tls,
            "POST",
            "/v1/audit/push",
            Some(&push_body(st, next.clone(), 5, [1u8; 32])),
        ),
        409,
        "audit-head-does-not-extend",
    );
    let mut wrong_key = push_body(st, next.clone(), 5, h5);
    let msg = registry::audit::checkpoint_message(5, &h5, "2026-12-02T12:00:01Z");
    wrong_key["checkpoint"]["signature"] =
        hex::encode(st.station.store.sign_p256_sha256("ds", &msg).unwrap()).into();
    assert_refused(
        &w.call(&st.tls, "POST", "/v1/audit/push", Some(&wrong_key)),
        409,
        "audit-head-does-not-extend",
    );
    let mut malformed = push_body(st, next.clone(), 5, h5);
    malformed["checkpoint"]["hash"] = "xyz".into();
    assert_refused(
        &w.call(&st.tls, "POST", "/v1/audit/push", Some(&malformed)),
        400,
        "invalid-request",
    );
    let head: AuditHead = serde_json::from_value(w.ok(
        &st.tls,
        "POST",
        "/v1/audit/push",
        Some(&push_body(st, next, 5, h5)),
    ))
    .unwrap();
    assert_eq!(head.seq, 5);
    let status: StationStatus =
        serde_json::from_value(w.ok(&st.tls, "GET", "/v1/status", None)).unwrap();
    assert_eq!(status.audit_head_seq, 5);
}

/// A second centre instance on the same database with a 2-second job timeout aborts a job left
/// open; the job then shows aborted with the reason, its number released.
fn timeout_sweep(w: &World, st: &Enrolled, config: &std::path::Path, db: &tokio_postgres::Client) {
    let text = std::fs::read_to_string(config)
        .unwrap()
        .replace("block_size = 3", "block_size = 3\njob_timeout_seconds = 2");
    let short = config.with_file_name("centre-short-timeout.toml");
    std::fs::write(&short, text).unwrap();
    let second = Server::start(&short);
    let r = reserve(w, st, &holder("81234567890123", "Nazarova"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        let s: JobStatus =
            serde_json::from_value(w.ok(&st.tls, "GET", &centre_api::paths::job(&r.job), None))
                .unwrap();
        if s.state == centre_api::JobState::Aborted {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the job was not aborted in time: {s:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(
        status
            .abort_reason
            .as_deref()
            .unwrap_or("")
            .contains("timeout"),
        "{status:?}"
    );
    let number: String =
        w.rt.block_on(db.query_one(
            "SELECT state FROM document_numbers WHERE job = $1",
            &[&r.job],
        ))
        .unwrap()
        .get(0);
    assert_eq!(number, "released");
    // The station's own abort afterwards is answered with the job's state.
    let ab: AbortResponse = serde_json::from_value(w.ok(
        &st.tls,
        "POST",
        &centre_api::paths::abort(&r.job),
        Some(&abort_body("released")),
    ))
    .unwrap();
    assert_eq!(ab.state, centre_api::JobState::Aborted);
    drop(second);
}

/// `idcentral show`: by PINFL (JSON) and by document (text); unknown and malformed look-ups are
/// refused; every look-up is audited.
fn show(
    config: &std::path::Path,
    db: &tokio_postgres::Client,
    w: &World,
    a: &NewHolder,
    c: &NewHolder,
) {
    let pw = format!("{ADMIN_PASSWORD}\n");
    let args = [
        "--json",
        "show",
        "--pinfl",
        a.pinfl.as_str(),
        "--operator",
        "admin",
    ];
    let v: Value = serde_json::from_str(&ok(idcentral(config, &args, &pw))).unwrap();
    assert_eq!(v["holder"]["surname"], "Karimova");
    assert_eq!(v["addresses"][0]["street"], "Amir Temur 1");
    assert_eq!(v["addresses"][0]["station"], "tas01-st1");
    let d = &v["documents"][0];
    assert_eq!(
        (
            d["document"].as_str(),
            d["state"].as_str(),
            d["office"].as_str()
        ),
        (Some("AA0000001"), Some("active"), Some("TAS01")),
        "{v}"
    );
    assert_eq!(
        (d["date_of_issue"].as_str(), d["date_of_expiry"].as_str()),
        (Some("2026-12-02"), Some("2036-12-01"))
    );
    let certs = v["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 2);
    assert!(certs.iter().all(|c| c["state"] == "active"), "{v}");
    // The other holder's aborted issuances show their revoked certificates.
    let args = [
        "--json",
        "show",
        "--pinfl",
        c.pinfl.as_str(),
        "--operator",
        "admin",
    ];
    let v: Value = serde_json::from_str(&ok(idcentral(config, &args, &pw))).unwrap();
    assert!(
        v["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["state"] == "revoked" && c["revocation_reason"] == "cessationOfOperation"),
        "{v}"
    );
    let text = ok(idcentral(
        config,
        &["show", "--document", "AA0000001", "--operator", "admin"],
        &pw,
    ));
    assert!(
        text.contains("Karimova")
            && text.contains("AA0000001 active")
            && text.contains("holder-sign"),
        "{text}"
    );
    let out = idcentral(
        config,
        &["show", "--pinfl", "99999999999999", "--operator", "admin"],
        &pw,
    );
    refused(&out, 2, "not in the national registry");
    let out = idcentral(
        config,
        &["show", "--document", "AA42", "--operator", "admin"],
        &pw,
    );
    refused(&out, 2, "document: ");
    let out = idcentral(
        config,
        &["show", "--pinfl", a.pinfl.as_str(), "--operator", "admin"],
        "wrong-password\n",
    );
    refused(&out, 6, "operator name or password is wrong");
    let shown =
        w.rt.block_on(audit_actions(db))
            .iter()
            .filter(|a| *a == "holder.shown")
            .count();
    assert_eq!(
        shown, 5,
        "every look-up that got past the log-in is audited"
    );
}

const ADMIN2_PASSWORD: &str = "centre-second-admin-pw-5e91";

/// `idcentral ARGS` with `secrets` as standard input and `env`; the second admin's password never
/// shows in the output.
fn as_admin(
    config: &std::path::Path,
    args: &[&str],
    secret: &str,
    env: &[(&str, &str)],
) -> std::process::Output {
    let out = idcentral_env(config, args, &format!("{secret}\n"), env);
    assert!(!text(&out).contains(ADMIN2_PASSWORD), "{}", text(&out));
    out
}

/// `openssl verify -x509_strict -CAfile ca -untrusted … leaf` in `d` (PEM files written there).
fn verifies(d: &std::path::Path, ca_file: &str, untrusted: Option<&str>, leaf: &str) {
    let mut args = vec!["-x509_strict", "-CAfile", ca_file];
    if let Some(u) = untrusted {
        args.extend(["-untrusted", u]);
    }
    args.push(leaf);
    let (ok, out) = openssl_verify(d, &args);
    assert!(ok, "openssl verify {leaf}: {out}");
}

#[test]
fn a_rotation_under_dual_control_switches_the_serving_centres_keys_and_recovers_after_a_crash() {
    let (tmp, cluster, config) = centre("\n[server]\npublic_name = \"localhost\"\n");
    let d = tmp.path();
    let pw = format!("{ADMIN_PASSWORD}\n{ADMIN2_PASSWORD}\n");
    ok(idcentral(
        &config,
        &["init", "--admin", "admin", "--second-admin", "admin2"],
        &pw,
    ));
    let code1 = add_station_at(&config, "TAS01", "tas01-st1");
    let code2 = add_station_at(&config, "TAS01", "tas01-st2");
    let rt = test_runtime();
    let db = rt.block_on(db(&cluster));
    let station_ca = rt.block_on(station_ca_cert(&db));
    let w = World {
        server: Server::start_public(&config),
        anon: client_config(&station_ca, None),
        rt,
    };
    let st1 = w.enrol("r-st1", "tas01-st1", &code1);
    std::fs::write(d.join("root.pem"), &st1.resp.trust_anchors.root).unwrap();

    // A job certified under esign-ca-1 before the rotation.
    let r1 = reserve(&w, &st1, &holder("31234567890123", "Karimova"));
    let (a, s) = (CardKey::new(), CardKey::new());
    let body1 = certify_body(vec![
        a.entry(&r1.job, &r1.challenge, 0x9a, "holder-auth"),
        s.entry(&r1.job, &r1.challenge, 0x9c, "holder-sign"),
    ]);
    let path1 = centre_api::paths::certify(&r1.job);
    let c1: CertifyResponse =
        serde_json::from_value(w.ok(&st1.tls, "POST", &path1, Some(&body1))).unwrap();
    let esign1 = ca::cert_pem(&hex::decode(&c1.issuer).unwrap()).unwrap();
    assert_eq!(esign1, st1.resp.trust_anchors.esign);

    // Dual control: the requester cannot approve, a second request for the CA waits, the
    // second ca-admin's approval executes it while the centre serves.
    let filed = ok(as_admin(
        &config,
        &["ca", "rotate", "--ca", "esign", "--operator", "admin"],
        ADMIN_PASSWORD,
        &[],
    ));
    assert!(
        filed.contains("Filed CA request 1: rotate esign (from esign-ca-1)"),
        "{filed}"
    );
    refused(
        &as_admin(
            &config,
            &["ca", "approve", "1", "--operator", "admin"],
            ADMIN_PASSWORD,
            &[],
        ),
        6,
        "cannot also approve it (dual control)",
    );
    refused(
        &as_admin(
            &config,
            &["ca", "rotate", "--ca", "esign", "--operator", "admin2"],
            ADMIN2_PASSWORD,
            &[],
        ),
        5,
        "still pending",
    );
    let done = ok(as_admin(
        &config,
        &["ca", "approve", "1", "--operator", "admin2"],
        ADMIN2_PASSWORD,
        &[],
    ));
    assert!(
        done.contains("Executed CA request 1: esign esign-ca-2 active, esign-ca-1 retired"),
        "{done}"
    );
    refused(
        &as_admin(
            &config,
            &["ca", "approve", "1", "--operator", "admin2"],
            ADMIN2_PASSWORD,
            &[],
        ),
        6,
        "CA request 1 is executed",
    );
    let list = ok(as_admin(
        &config,
        &["ca", "list", "--operator", "admin"],
        ADMIN_PASSWORD,
        &[],
    ));
    assert!(
        list.contains("esign-ca-1    retired") && list.contains("esign-ca-2    active"),
        "{list}"
    );

    // The repeat of the earlier certify names the key that issued it; a new job is issued by
    // esign-ca-2, whose certificate the root signed.
    let again: CertifyResponse =
        serde_json::from_value(w.ok(&st1.tls, "POST", &path1, Some(&body1))).unwrap();
    assert_eq!(
        (again.issuer.as_str(), again.certificates.len()),
        (c1.issuer.as_str(), 2)
    );
    let r2 = reserve(&w, &st1, &holder("31234567890124", "Rahimov"));
    let c2 = certify(&w, &st1, &r2);
    assert_ne!(c2.issuer, c1.issuer);
    std::fs::write(
        d.join("esign2.pem"),
        ca::cert_pem(&hex::decode(&c2.issuer).unwrap()).unwrap(),
    )
    .unwrap();
    for c in &c2.certificates {
        let f = format!("new-{}.pem", c.slot);
        std::fs::write(
            d.join(&f),
            ca::cert_pem(&hex::decode(&c.der).unwrap()).unwrap(),
        )
        .unwrap();
        verifies(d, "root.pem", Some("esign2.pem"), &f);
    }
    let issuer_key: String =
        w.rt.block_on(db.query_one(
            "SELECT issuer_key FROM certificates WHERE job = $1 LIMIT 1",
            &[&r2.job],
        ))
        .unwrap()
        .get(0);
    assert_eq!(issuer_key, "esign-ca-2");
    // The serving centre's OCSP responder answers for the new key's certificates too (openssl
    // as the relying party; the responder of esign-ca-2 is made when its first certificate is).
    let mut chain = st1.resp.trust_anchors.root.clone();
    chain.push_str(&std::fs::read_to_string(d.join("esign2.pem")).unwrap());
    std::fs::write(d.join("chain2.pem"), chain).unwrap();
    let url = format!("http://{}/ocsp", w.server.public.unwrap());
    let start = std::time::Instant::now();
    loop {
        let o = std::process::Command::new("openssl")
            .args([
                "ocsp",
                "-issuer",
                "esign2.pem",
                "-CAfile",
                "chain2.pem",
                "-no_nonce",
                "-url",
                &url,
                "-cert",
                "new-9C.pem",
            ])
            .current_dir(d)
            .output()
            .unwrap();
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        if out.contains("new-9C.pem: good") && out.contains("Response verify OK") {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "no good answer for a certificate of esign-ca-2:\n{out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // A CSCA rotation killed after its certificate was signed: the old key stays active until
    // `ca recover` finishes the switch from the journal (the key is not generated twice).
    ok(as_admin(
        &config,
        &["ca", "rotate", "--ca", "csca", "--operator", "admin2"],
        ADMIN2_PASSWORD,
        &[],
    ));
    let killed = as_admin(
        &config,
        &["ca", "approve", "2", "--operator", "admin"],
        ADMIN_PASSWORD,
        &[("IDCENTRAL_FAILPOINT", "rotation.cert-signed")],
    );
    assert_eq!(killed.status.code(), None, "{}", text(&killed));
    let list = ok(as_admin(
        &config,
        &["ca", "list", "--operator", "admin"],
        ADMIN_PASSWORD,
        &[],
    ));
    assert!(
        list.contains("csca-1        active") && !list.contains("csca-2"),
        "{list}"
    );
    let requests = ok(as_admin(
        &config,
        &["ca", "requests", "--operator", "admin"],
        ADMIN_PASSWORD,
        &[],
    ));
    assert!(
        requests.contains("2  approved rotate csca → csca-2"),
        "{requests}"
    );
    let rec = ok(as_admin(
        &config,
        &["ca", "recover", "--operator", "admin"],
        ADMIN_PASSWORD,
        &[],
    ));
    assert!(
        rec.contains("Executed CA request 2: csca csca-2 active, csca-1 retired")
            && rec.contains("new-with-old, old-with-new"),
        "{rec}"
    );
    // The recovery signed the CSCA Master List again at once: both CSCAs and the link, by a
    // signer the new CSCA key certified.
    let services: serde_json::Value = serde_json::from_str(&ok(as_admin(
        &config,
        &["--json", "ca", "services", "--operator", "admin"],
        ADMIN_PASSWORD,
        &[],
    )))
    .unwrap();
    assert_eq!(
        services["master_list"]["csca_certificates"], 3,
        "{services}"
    );
    assert_eq!(
        services["master_list_signers"][0]["csca_key"], "csca-2",
        "{services}"
    );
    let out = d.join("csca-certs");
    ok(as_admin(
        &config,
        &[
            "ca",
            "certs",
            "--key",
            "csca-2",
            "--out",
            out.to_str().unwrap(),
            "--operator",
            "admin",
        ],
        ADMIN_PASSWORD,
        &[],
    ));
    ok(as_admin(
        &config,
        &[
            "ca",
            "certs",
            "--key",
            "csca-1",
            "--out",
            d.join("csca-old").to_str().unwrap(),
            "--operator",
            "admin",
        ],
        ADMIN_PASSWORD,
        &[],
    ));
    std::fs::copy(d.join("csca-old/csca-1.pem"), out.join("csca-1.pem")).unwrap();
    // ICAO 9303-12's link certificate: a relying party holding only the old CSCA reaches the new.
    verifies(&out, "csca-1.pem", None, "link-csca-2-by-csca-1.pem");
    verifies(&out, "csca-2.pem", None, "link-csca-1-by-csca-2.pem");

    // A station enrolled after the rotation gets its Document Signer from csca-2 and the new anchors.
    let st2 = w.enrol("r-st2", "tas01-st2", &code2);
    assert_eq!(
        der_of_pem(&st2.resp.trust_anchors.csca),
        der_of_pem(&std::fs::read_to_string(out.join("csca-2.pem")).unwrap())
    );
    assert_eq!(
        der_of_pem(&st2.resp.trust_anchors.esign),
        hex::decode(&c2.issuer).unwrap()
    );
    std::fs::write(out.join("ds2.pem"), &st2.resp.document_signer_cert).unwrap();
    verifies(&out, "csca-2.pem", None, "ds2.pem");

    let actions = w.rt.block_on(audit_actions(&db));
    for a in [
        "ca.request.created",
        "ca.request.refused-attempt",
        "ca.request.approved",
        "ca.key.rotated",
    ] {
        assert!(actions.iter().any(|x| x == a), "no {a} in {actions:?}");
    }
    let verify = ok(as_admin(
        &config,
        &["audit", "verify-log", "--operator", "admin"],
        ADMIN_PASSWORD,
        &[],
    ));
    assert!(verify.contains("the chain holds"), "{verify}");
}
