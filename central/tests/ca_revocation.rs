//! Emergency revocation of a CA certificate at the centre (docs/centre.md "Emergency: CA
//! certificate revocation"): a real PostgreSQL cluster, the centre's SoftHSM2 token, `idcentral
//! serve` with its public listener, an enrolled station issuing cards through the protocol with
//! software card keys (`testrig::egov::issue_without_card`), and openssl as the relying party.
//! Also a CSCA key withdrawn from the Master List: the cards its Document Signer signed flagged,
//! a card signed after voided at `complete`.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use centre_api::EnrolResponse;
use common::*;
use serde_json::{json, Value};
use testrig::egov::{card_key, issue_signed_by, issue_without_card, new_job};

/// The station's side of the test: its TLS configuration against the serving centre.
struct Desk {
    rt: tokio::runtime::Runtime,
    server: Server,
    tls: Arc<rustls::ClientConfig>,
}

impl Desk {
    fn call(&self, path: &str, body: &Value) -> (u16, Value) {
        let tls = Arc::clone(&self.tls);
        let r = self.rt.block_on(https(
            self.server.addr,
            "localhost",
            tls,
            "POST",
            path,
            Some(body),
        ));
        let (status, v, _) = r.unwrap_or_else(|e| panic!("POST {path}: {e}"));
        (status, v)
    }

    fn ok(&self, path: &str, body: &Value) -> Value {
        let (status, v) = self.call(path, body);
        assert_eq!(status, 200, "POST {path}: {v}");
        v
    }

    /// One plain HTTP GET of the public listener: (status, body).
    fn public_get(&self, path: &str) -> (u16, Vec<u8>) {
        use std::io::{Read, Write};
        let addr = self.server.public.expect("the public listener");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        assert!(
            !head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked"),
            "{head}"
        );
        (status, raw[end + 4..].to_vec())
    }
}

fn reserve_body(job: &str, pinfl: &str) -> Value {
    json!({
        "job": job, "operator": "clerk1",
        "holder": { "pinfl": pinfl, "surname": "Tursunov", "given_names": "Bekzod",
                    "patronymic": null, "surname_cyrillic": null, "given_names_cyrillic": null,
                    "patronymic_cyrillic": null, "sex": "M", "date_of_birth": "1988-03-09",
                    "place_of_birth": "Samarkand", "citizenship": "UZB", "photo_sha256": null },
        "address": { "kind": "permanent", "region": "Toshkent", "district": "Yunusobod",
                     "street": "Amir Temur 1", "house": "12", "apartment": null,
                     "registered_on": "2015-06-01", "registered_until": null },
        "update_holder": false, "card_serial": testrig::egov::card_of(job),
    })
}

fn certify_body(job: &str, challenge: &str) -> Value {
    json!({ "operator": "clerk1", "keys": [
        card_key(job, challenge, 0x9a, "holder-auth"),
        card_key(job, challenge, 0x9c, "holder-sign"),
    ]})
}

/// Run openssl in `dir`: (success, stdout + stderr).
fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is required");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), all)
}

/// Fetch `/crl/{key}.crl` into `dir/{key}.crl.pem` (verified by openssl against `ca_file`); its
/// `openssl crl -text`. A key's first CRL is signed by the worker `serve` starts, so a fetch
/// right after the start may hear "not signed yet" (404) for a moment.
fn fetch_crl(desk: &Desk, dir: &Path, key: &str, ca_file: &str) -> String {
    let der = wait_for(
        &format!("the first CRL of {key}"),
        Duration::from_secs(10),
        || {
            let (status, der) = desk.public_get(&format!("/crl/{key}.crl"));
            let body = String::from_utf8_lossy(&der);
            if status == 404 && body.contains("is not signed yet") {
                return None;
            }
            assert_eq!(status, 200, "{body}");
            Some(der)
        },
    );
    std::fs::write(dir.join(format!("{key}.crl")), der).unwrap();
    let (der_file, pem_file) = (format!("{key}.crl"), format!("{key}.crl.pem"));
    let to_pem = ["crl", "-inform", "DER", "-in", &der_file, "-out", &pem_file];
    let (ok, out) = openssl(dir, &to_pem);
    assert!(ok, "openssl crl {key}: {out}");
    let show = [
        "crl", "-in", &pem_file, "-CAfile", ca_file, "-noout", "-text",
    ];
    let (ok, text) = openssl(dir, &show);
    assert!(
        ok && text.contains("verify OK"),
        "openssl crl {key}: {text}"
    );
    text
}

/// Poll (at most `limit`) until `f` gives `Some`.
fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100)); // between polls, under the deadline
    }
}

/// A centre with two ca-admins, serving with its public listener, and one enrolled station
/// whose token is labelled `token` (tests of this binary share a SoftHSM2 directory).
fn set_up(token: &str) -> (tempfile::TempDir, Cluster, std::path::PathBuf, Desk) {
    let (tmp, cluster, config) = centre(
        "\n[server]\npublic_name = \"localhost\"\n\n[public]\nbase_url = \"http://pki.centre.test\"\n",
    );
    let pw = format!("{ADMIN_PASSWORD}\n{ADMIN2_PASSWORD}\n");
    let init = ["init", "--admin", "admin", "--second-admin", "admin2"];
    ok(idcentral(&config, &init, &pw));
    let code = add_station(&config, "tas01-st1");
    let rt = test_runtime();
    let db = rt.block_on(db(&cluster));
    let station_ca = rt.block_on(station_ca_cert(&db));
    let server = Server::start_public(&config);
    let station = Station::new(token);
    let anon = client_config(&station_ca, None);
    let req = station.enrol_request("tas01-st1", &code);
    let enrolled = rt.block_on(https(
        server.addr,
        "localhost",
        anon,
        "POST",
        "/v1/enrol",
        Some(&req),
    ));
    let (status, v, _) = enrolled.unwrap();
    assert_eq!(status, 200, "{v}");
    let resp: EnrolResponse = serde_json::from_value(v).unwrap();
    std::fs::write(tmp.path().join("root.pem"), &resp.trust_anchors.root).unwrap();
    std::fs::write(tmp.path().join("esign.pem"), &resp.trust_anchors.esign).unwrap();
    std::fs::write(tmp.path().join("csca.pem"), &resp.trust_anchors.csca).unwrap();
    std::fs::write(tmp.path().join("ds.pem"), &resp.document_signer_cert).unwrap();
    let id = identity(&station.store, "identity", der_of_pem(&resp.identity_cert));
    let tls = client_config(&der_of_pem(&resp.trust_anchors.station_ca), Some(id));
    (tmp, cluster, config, Desk { rt, server, tls })
}

#[test]
fn an_emergency_revocation_of_the_esign_ca_is_published_flags_cards_and_a_rotation_restores_issuance(
) {
    let (tmp, cluster, config, desk) = set_up("rv-st1");
    let d = tmp.path();
    let db = desk.rt.block_on(db(&cluster));
    let q = |sql: &str| desk.rt.block_on(db.query(sql, &[])).unwrap();

    // Two cards under esign-ca-1, and a job reserved (not certified) before the revocation.
    let post = |path: &str, body: &Value| desk.ok(path, body);
    let doc1 = issue_without_card(&post, "clerk1", "31234567890123");
    let doc2 = issue_without_card(&post, "clerk1", "41234567890124");
    let open_job = new_job();
    let reserved = desk.ok(
        centre_api::paths::RESERVE,
        &reserve_body(&open_job, "51234567890125"),
    );
    let challenge = reserved["challenge"].as_str().unwrap().to_owned();
    let holder_der: Vec<u8> =
        q("SELECT cert_der FROM certificates ORDER BY issued_at LIMIT 1")[0].get(0);
    std::fs::write(d.join("holder.pem"), ca::cert_pem(&holder_der).unwrap()).unwrap();
    fetch_crl(&desk, d, "root-ca-1", "root.pem");
    fetch_crl(&desk, d, "esign-ca-1", "esign.pem");
    let chain = [
        "verify",
        "-x509_strict",
        "-crl_check_all",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "esign.pem",
        "-CRLfile",
        "root-ca-1.crl.pem",
        "-CRLfile",
        "esign-ca-1.crl.pem",
        "holder.pem",
    ];
    let (good, out) = openssl(d, &chain);
    assert!(
        good,
        "before the revocation the chain verifies with its CRLs: {out}"
    );

    refusals(&config, &q);

    // Filed by admin; admin cannot approve it; admin2's approval is killed after the
    // revocation committed.
    let filed = ok(as_operator(
        &config,
        &[
            "ca",
            "revoke-ca",
            "--ca",
            "esign",
            "--reason",
            "keyCompromise",
        ],
        "admin",
        &[],
    ));
    assert!(
        filed.contains("Filed CA request 1: revoke-ca esign esign-ca-1 (keyCompromise)"),
        "{filed}"
    );
    refused(
        &as_operator(&config, &["ca", "approve", "1"], "admin", &[]),
        6,
        "admin requested CA request 1 and cannot also approve it (dual control)",
    );
    let killed = as_operator(
        &config,
        &["ca", "approve", "1"],
        "admin2",
        &[("IDCENTRAL_FAILPOINT", "rotation.revoked")],
    );
    assert_eq!(killed.status.code(), None, "killed: {}", text(&killed));
    let state = |sql: &str| -> String { q(sql)[0].get(0) };
    assert_eq!(
        state("SELECT state FROM ca_requests WHERE id = 1"),
        "approved"
    );
    assert_eq!(
        state("SELECT state FROM ca_keys WHERE label = 'esign-ca-1'"),
        "revoked"
    );
    let recovered = ok(as_operator(&config, &["ca", "recover"], "admin", &[]));
    assert!(
        recovered.contains("Executed CA request 1: esign esign-ca-1 revoked (keyCompromise)")
            && recovered.contains("4 holder certificates flagged"),
        "{recovered}"
    );
    let again = ok(as_operator(&config, &["ca", "recover"], "admin", &[]));
    assert_eq!(again, "Nothing to recover\n");
    assert_eq!(
        state("SELECT state FROM ca_requests WHERE id = 1"),
        "executed"
    );
    let revoked_events = q("SELECT details FROM audit_log WHERE action = 'ca.revoked'");
    assert_eq!(revoked_events.len(), 1, "one revocation, no duplicate");
    let details: Value = serde_json::from_str(revoked_events[0].get(0)).unwrap();
    assert_eq!(
        (
            &details["reason"],
            &details["flagged"],
            &details["requested_by"],
            &details["approved_by"]
        ),
        (
            &json!("keyCompromise"),
            &json!(4),
            &json!("admin"),
            &json!("admin2")
        ),
        "{details}"
    );

    published(&desk, d, &q, &chain);
    issuance_stops_and_resumes(&desk, &config, &q, &open_job, &challenge, [&doc1, &doc2]);
    retired_station_ca(&desk, d, &config);
    ok(as_operator(&config, &["audit", "verify-log"], "admin", &[]));
}

/// The refusals of `revoke-ca`, each naming the field and the rule, each audited.
fn refusals(config: &Path, q: &dyn Fn(&str) -> Vec<tokio_postgres::Row>) {
    let revoke = |extra: &[&str]| {
        let mut args = vec!["ca", "revoke-ca"];
        args.extend(extra);
        as_operator(config, &args, "admin", &[])
    };
    let cases: [(&[&str], i32, &str); 6] = [
        (
            &["--ca", "root", "--reason", "keyCompromise"],
            2,
            "ca: the National Root cannot be revoked with revoke-ca",
        ),
        (
            &["--ca", "csca", "--reason", "keyCompromise"],
            2,
            "ca: the CSCA cannot be revoked with revoke-ca: it is self-signed",
        ),
        (
            &[
                "--ca",
                "esign",
                "--key",
                "esign-ca-9",
                "--reason",
                "keyCompromise",
            ],
            2,
            "key: esign-ca-9 is not a key of the CA esign",
        ),
        (
            &[
                "--ca",
                "esign",
                "--key",
                "root-ca-1",
                "--reason",
                "keyCompromise",
            ],
            2,
            "key: root-ca-1 is not a key of the CA esign",
        ),
        (
            &["--ca", "esign", "--reason", "bogus"],
            2,
            "reason: \"bogus\" is not a CA revocation reason: give one of keyCompromise",
        ),
        (
            &["--ca", "station", "--reason", "keyCompromise"],
            2,
            "key: station-ca-1 is the active Station CA key, which issues the centre's TLS server certificate",
        ),
    ];
    for (args, code, part) in cases {
        refused(&revoke(args), code, part);
    }
    let rules: Vec<String> = q(
        "SELECT details FROM audit_log WHERE action = 'ca.request.refused-attempt' ORDER BY seq",
    )
    .iter()
    .map(|r| {
        serde_json::from_str::<Value>(r.get(0)).unwrap()["rule"]
            .as_str()
            .unwrap()
            .to_owned()
    })
    .collect();
    assert_eq!(
        rules,
        [
            "root not revocable",
            "csca not revocable",
            "unknown key",
            "unknown key",
            "revocation reasons",
            "active station ca"
        ]
    );
    assert!(q("SELECT 1 FROM ca_requests").is_empty(), "nothing filed");
}

/// The root's CRL at the public listener lists the e-Signature CA certificate with its reason
/// (polled), openssl then refuses the holder's chain, and the root's OCSP answer is revoked.
fn published(desk: &Desk, d: &Path, q: &dyn Fn(&str) -> Vec<tokio_postgres::Row>, chain: &[&str]) {
    let (_, serial) = openssl(d, &["x509", "-in", "esign.pem", "-noout", "-serial"]);
    let serial = serial
        .trim()
        .trim_start_matches("serial=")
        .trim_start_matches('0')
        .to_owned();
    let listed = wait_for(
        "the root's CRL lists esign-ca-1",
        Duration::from_secs(10),
        || {
            let text = fetch_crl(desk, d, "root-ca-1", "root.pem");
            text.lines()
                .any(|l| {
                    l.trim()
                        .trim_start_matches("Serial Number: ")
                        .trim_start_matches('0')
                        == serial
                })
                .then_some(text)
        },
    );
    assert!(listed.contains("Key Compromise"), "{listed}");
    fetch_crl(desk, d, "esign-ca-1", "esign.pem");
    let (good, out) = openssl(d, chain);
    assert!(!good && out.contains("certificate revoked"), "{out}");
    wait_for(
        "the root's stored OCSP answer for esign-ca-1",
        Duration::from_secs(10),
        || {
            let rows = q("SELECT status, reason FROM ocsp_responses r JOIN ca_keys k
                      ON r.issuer_key = k.parent_key AND r.serial = k.serial WHERE k.label = 'esign-ca-1'");
            rows.first()
                .map(|r| (r.get::<_, String>(0), r.get::<_, Option<String>>(1)))
                .filter(|s| s.0 == "revoked")
                .map(|s| assert_eq!(s.1.as_deref(), Some("keyCompromise")))
        },
    );
}

/// With no active e-Signature key reserve and certify are refused (409 `no-active-ca-key`);
/// `reissue-list` names the flagged cards; a rotation from the revoked key restores issuance.
fn issuance_stops_and_resumes(
    desk: &Desk,
    config: &Path,
    q: &dyn Fn(&str) -> Vec<tokio_postgres::Row>,
    open_job: &str,
    challenge: &str,
    docs: [&str; 2],
) {
    let certify = centre_api::paths::certify(open_job);
    let body = certify_body(open_job, challenge);
    let (status, v) = desk.call(&certify, &body);
    assert_eq!(
        (status, v["rule"].as_str()),
        (409, Some("no-active-ca-key")),
        "{v}"
    );
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("esign-ca-1 was revoked"),
        "{v}"
    );
    let repeat = desk.ok(
        centre_api::paths::RESERVE,
        &reserve_body(open_job, "51234567890125"),
    );
    assert_eq!(
        repeat["challenge"], challenge,
        "a repeated reserve gets its first answer"
    );
    let (status, v) = desk.call(
        centre_api::paths::RESERVE,
        &reserve_body(&new_job(), "61234567890126"),
    );
    assert_eq!(
        (status, v["rule"].as_str()),
        (409, Some("no-active-ca-key")),
        "{v}"
    );
    let refused_requests = q("SELECT 1 FROM audit_log WHERE action = 'request.refused' AND details LIKE '%no-active-ca-key%'");
    assert_eq!(refused_requests.len(), 2, "both refusals audited");

    // A centre with no active e-Signature key still starts serving.
    drop(Server::start_public(config));

    let list = ok(as_operator(
        config,
        &["--json", "ca", "reissue-list"],
        "admin",
        &[],
    ));
    let items: Vec<Value> = serde_json::from_str(&list).unwrap();
    assert_eq!(items.len(), 4, "{list}");
    for doc in docs {
        assert_eq!(
            items.iter().filter(|i| i["document"] == doc).count(),
            2,
            "{list}"
        );
    }
    assert!(items
        .iter()
        .all(|i| i["issuer_key"] == "esign-ca-1" && i["serial"].as_str().is_some()));
    let shown = q("SELECT object FROM audit_log WHERE action = 'holder.shown' ORDER BY seq");
    let shown: Vec<String> = shown.iter().map(|r| r.get(0)).collect();
    assert_eq!(shown, ["holder:31234567890123", "holder:41234567890124"]);

    let filed = ok(as_operator(
        config,
        &["ca", "rotate", "--ca", "esign"],
        "admin",
        &[],
    ));
    assert!(
        filed.contains("Filed CA request 2: rotate esign (from esign-ca-1)"),
        "{filed}"
    );
    let done = ok(as_operator(config, &["ca", "approve", "2"], "admin2", &[]));
    assert!(
        done.contains("esign esign-ca-2 active, esign-ca-1 revoked"),
        "{done}"
    );
    let c = desk.ok(&certify, &body);
    assert_eq!(c["certificates"].as_array().unwrap().len(), 2, "{c}");
    let issuer = ca::CertInfo::parse(&hex::decode(c["issuer"].as_str().unwrap()).unwrap()).unwrap();
    let key2: Vec<u8> = q("SELECT cert_der FROM ca_keys WHERE label = 'esign-ca-2'")[0].get(0);
    assert_eq!(
        issuer,
        ca::CertInfo::parse(&key2).unwrap(),
        "certified by esign-ca-2"
    );
    // The rotation certified the new key under the centre's profiles: its CRL distribution
    // point and caIssuers at `[public] base_url`, as `init` did for esign-ca-1.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("esign2.pem"), ca::cert_pem(&key2).unwrap()).unwrap();
    let (good, text) = openssl(d, &["x509", "-in", "esign2.pem", "-noout", "-text"]);
    assert!(good, "{text}");
    assert!(
        text.contains("URI:http://pki.centre.test/crl/root-ca-1.crl")
            && text.contains("CA Issuers - URI:http://pki.centre.test/ca/root-ca-1.cer"),
        "{text}"
    );
    // So did `init` for the audit signer and the e-government keys.
    let own = q("SELECT cert_der FROM audit_signer_keys UNION ALL SELECT cert_der FROM egov_keys");
    assert_eq!(own.len(), 3);
    for (i, r) in own.iter().enumerate() {
        let f = d.join(format!("own-{i}.pem"));
        std::fs::write(&f, ca::cert_pem(r.get::<_, &[u8]>(0)).unwrap()).unwrap();
        let (good, text) = openssl(d, &["x509", "-in", f.to_str().unwrap(), "-noout", "-text"]);
        assert!(good, "{text}");
        assert!(
            text.contains("URI:http://pki.centre.test/crl/")
                && !text.contains("pki.idstation.example.com"),
            "{text}"
        );
    }
}

/// After a Station CA rollover the retired station-ca-1 is revoked: the root's CRL lists it
/// beside the e-Signature CA certificate.
fn retired_station_ca(desk: &Desk, d: &Path, config: &Path) {
    ok(as_operator(
        config,
        &["ca", "rotate", "--ca", "station"],
        "admin",
        &[],
    ));
    let done = ok(as_operator(config, &["ca", "approve", "3"], "admin2", &[]));
    assert!(
        done.contains("station-ca-2 active, station-ca-1 retired"),
        "{done}"
    );
    let args = [
        "ca",
        "revoke-ca",
        "--ca",
        "station",
        "--key",
        "station-ca-1",
        "--reason",
        "superseded",
    ];
    let filed = ok(as_operator(config, &args, "admin", &[]));
    assert!(
        filed.contains("Filed CA request 4: revoke-ca station-ca station-ca-1"),
        "{filed}"
    );
    let done = ok(as_operator(config, &["ca", "approve", "4"], "admin2", &[]));
    assert!(
        done.contains("station-ca station-ca-1 revoked (superseded)"),
        "{done}"
    );
    let list = ok(as_operator(config, &["ca", "list"], "admin", &[]));
    assert!(list.contains("station-ca-1  revoked"), "{list}");
    wait_for(
        "the root's CRL lists station-ca-1",
        Duration::from_secs(10),
        || {
            let text = fetch_crl(desk, d, "root-ca-1", "root.pem");
            (text.matches("Serial Number:").count() == 2).then_some(())
        },
    );
    let text = fetch_crl(desk, d, "root-ca-1", "root.pem");
    assert!(
        text.contains("Key Compromise") && text.contains("Superseded"),
        "{text}"
    );
}

/// Whether the `openssl crl -text` output `text` lists the certificate in `pem_file` (in `dir`).
fn crl_lists(dir: &Path, text: &str, pem_file: &str) -> bool {
    let (_, serial) = openssl(dir, &["x509", "-in", pem_file, "-noout", "-serial"]);
    let serial = serial
        .trim()
        .trim_start_matches("serial=")
        .trim_start_matches('0')
        .to_owned();
    text.lines().any(|l| {
        l.trim()
            .trim_start_matches("Serial Number: ")
            .trim_start_matches('0')
            == serial
    })
}

/// A station cut off for cause (docs/centre.md "Cutting a station off"): `station disable
/// --reason keyCompromise` revokes its identity, audit-signer and Document Signer certificates,
/// each on the CRL of the key that issued it. openssl is the relying party: the CSCA's CRL lists
/// the Document Signer (with no reason code, as ICAO Doc 9303-12 Table 10 asks), and `openssl verify -crl_check` refuses the DS
/// certificate that it accepted before. A plain disable revokes nothing (a decommissioned
/// station's cards stay good); a later disable with a reason revokes; a third is refused; a
/// reason that is not one is refused naming the field.
#[test]
fn a_station_disabled_for_key_compromise_has_its_document_signer_on_the_cscas_crl() {
    let (tmp, cluster, config, desk) = set_up("rv-st2");
    let d = tmp.path();
    let verify_ds = [
        "verify",
        "-crl_check",
        "-CAfile",
        "csca.pem",
        "-CRLfile",
        "csca-1.crl.pem",
        "ds.pem",
    ];
    fetch_crl(&desk, d, "csca-1", "csca.pem");
    let (good, out) = openssl(d, &verify_ds);
    assert!(good, "before: the DS verifies with the CSCA's CRL: {out}");
    // Two cards the station issued before it was cut off.
    let post = |path: &str, body: &Value| desk.ok(path, body);
    let cards = [
        issue_without_card(&post, "clerk1", "31234567890123"),
        issue_without_card(&post, "clerk1", "41234567890124"),
    ];

    let disable = |extra: &[&str]| {
        let mut args = vec!["--json", "station", "disable", "--station", "tas01-st1"];
        args.extend(extra);
        as_operator(&config, &args, "admin", &[])
    };
    refused(
        &disable(&["--reason", "cACompromise"]),
        2,
        "reason: \"cACompromise\" is not a reason to revoke a station's certificates: give one of keyCompromise",
    );
    let plain: Value = serde_json::from_str(&ok(disable(&[]))).unwrap();
    assert_eq!(plain["revoked"], json!([]), "{plain}");
    assert_eq!(plain["cards_to_replace"], 0, "{plain}");
    let (status, v) = desk.call(
        centre_api::paths::RESERVE,
        &reserve_body(&new_job(), "61234567890126"),
    );
    assert_eq!(
        (status, v["rule"].as_str()),
        (403, Some("station-disabled")),
        "{v}"
    );

    let done: Value = serde_json::from_str(&ok(disable(&["--reason", "keyCompromise"]))).unwrap();
    let issuers: Vec<(String, String)> = done["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["purpose"].as_str().unwrap().into(),
                c["issuer_key"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        issuers,
        [
            ("audit".to_string(), "root-ca-1".to_string()),
            ("document-signer".into(), "csca-1".into()),
            ("identity".into(), "station-ca-1".into()),
        ],
        "{done}"
    );
    // Its EF.SODs no longer pass passive authentication: both cards are to be replaced.
    assert_eq!(done["cards_to_replace"], 2, "{done}");
    refused(
        &disable(&["--reason", "keyCompromise"]),
        5,
        "station tas01-st1 is already disabled and its certificates are revoked",
    );
    let listed = as_operator(
        &config,
        &[
            "--json",
            "station",
            "cards-to-replace",
            "--station",
            "tas01-st1",
        ],
        "admin",
        &[],
    );
    let listed: Value = serde_json::from_str(&ok(listed)).unwrap();
    let docs: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["document"].as_str().unwrap())
        .collect();
    assert_eq!(docs, cards.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(listed[0]["pinfl"], "31234567890123", "{listed}");
    assert_eq!(
        listed[0]["reason"], "the Document Signer of station tas01-st1 was revoked (keyCompromise)",
        "{listed}"
    );
    let shown = ok(as_operator(
        &config,
        &["show", "--document", &cards[1]],
        "admin",
        &[],
    ));
    assert!(
        shown.contains(
            "to be replaced: the Document Signer of station tas01-st1 was revoked (keyCompromise)"
        ),
        "{shown}"
    );

    let listed = wait_for(
        "the CSCA's CRL lists the DS",
        Duration::from_secs(10),
        || {
            let text = fetch_crl(&desk, d, "csca-1", "csca.pem");
            crl_lists(d, &text, "ds.pem").then_some(text)
        },
    );
    // ICAO Doc 9303-12 §7.1.4 Table 10: the CSCA's CRL entries carry no reason code; the
    // reason stays in the centre's registry.
    assert!(!listed.contains("CRL Reason Code"), "{listed}");
    let (good, out) = openssl(d, &verify_ds);
    assert!(!good && out.contains("certificate revoked"), "after: {out}");
    let db = desk.rt.block_on(db(&cluster));
    let audited = desk.rt.block_on(db.query(
        "SELECT action FROM audit_log WHERE object = 'station:tas01-st1' AND action LIKE 'station.disabled%' ORDER BY seq",
        &[],
    ));
    let actions: Vec<String> = audited.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(actions, ["station.disabled", "station.disabled-revoked"]);
    // The list is a read of personal data: audited with the number of cards.
    let read: String = desk
        .rt
        .block_on(db.query_one(
            "SELECT details::text FROM audit_log WHERE action = 'documents.replacement-listed'",
            &[],
        ))
        .unwrap()
        .get(0);
    let read: Value = serde_json::from_str(&read).unwrap();
    assert_eq!(read["cards"], 2, "{read}");
    let reason: String = desk
        .rt
        .block_on(db.query_one(
            "SELECT revocation_reason FROM station_certs
             WHERE station = 'tas01-st1' AND purpose = 'document-signer'",
            &[],
        ))
        .unwrap()
        .get(0);
    assert_eq!(reason, "keyCompromise");
}

/// Two ca-admins filing for one CA at the same moment: the partial unique index
/// `ca_requests_one_pending` decides, and the one who loses gets the conflict (exit 5, naming
/// the rule, audited as a refused attempt), not a database error. Made deterministic by an
/// uncommitted request of the test's own that the command's insert has to wait behind.
#[test]
fn a_ca_request_filed_at_the_same_moment_as_another_is_a_conflict() {
    let (_tmp, cluster, config) = centre("");
    let pw = format!("{ADMIN_PASSWORD}\n{ADMIN2_PASSWORD}\n");
    ok(idcentral(
        &config,
        &["init", "--admin", "admin", "--second-admin", "admin2"],
        &pw,
    ));
    let rt = test_runtime();
    let mut first = rt.block_on(db(&cluster));
    let watcher = rt.block_on(db(&cluster));
    let tx = rt.block_on(first.transaction()).unwrap();
    rt.block_on(tx.execute(
        "INSERT INTO ca_requests (kind, ca, from_key, state, requested_by, expires_at)
         VALUES ('rotate', 'esign', 'esign-ca-1', 'open', 'admin2', now() + interval '1 hour')",
        &[],
    ))
    .unwrap();
    let cfg = config.clone();
    let filing = std::thread::spawn(move || {
        as_operator(&cfg, &["ca", "rotate", "--ca", "esign"], "admin", &[])
    });
    wait_for(
        "the command's insert waiting behind the open transaction",
        Duration::from_secs(30),
        || {
            let waiting: i64 = rt
                .block_on(watcher.query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO ca_requests%'",
                    &[],
                ))
                .unwrap()
                .get(0);
            (waiting == 1).then_some(())
        },
    );
    rt.block_on(tx.commit()).unwrap();
    let out = filing.join().unwrap();
    refused(
        &out,
        5,
        "another CA request for esign was filed at the same moment: one request per CA at a time",
    );
    let refused_attempts: i64 = rt
        .block_on(watcher.query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'ca.request.refused-attempt'
             AND details::jsonb ->> 'rule' = 'one pending per CA'",
            &[],
        ))
        .unwrap()
        .get(0);
    assert_eq!(refused_attempts, 1);
}

#[test]
fn a_withdrawn_csca_flags_the_cards_its_document_signer_signed_and_voids_a_card_signed_after() {
    let (tmp, cluster, config, desk) = set_up("wd-st1");
    let d = tmp.path();
    let db = desk.rt.block_on(db(&cluster));
    let q = |sql: &str| desk.rt.block_on(db.query(sql, &[])).unwrap();
    let ds_pem = std::fs::read_to_string(d.join("ds.pem")).unwrap();
    let ds = ca::CertInfo::parse(&der_of_pem(&ds_pem))
        .unwrap()
        .serial_hex;

    // The station certificates as a centre older than their `issuer_key` recorded them: a
    // completion finds the Document Signer's issuer by its signature, the withdrawal fills
    // each one in.
    q("UPDATE station_certs SET issuer_key = NULL");

    // One card names its Document Signer at `complete`; two come from a station older than
    // the field and name none, one of them reserved (as the database is made to say) after the
    // Document Signer's 92-day key usage period ended, so another key must have signed it.
    let post = |path: &str, body: &Value| desk.ok(path, body);
    let named = issue_signed_by(&post, "clerk1", "31234567890123", Some(&ds));
    let unnamed = issue_signed_by(&post, "clerk1", "41234567890124", None);
    let later = issue_signed_by(&post, "clerk1", "61234567890126", None);
    q("UPDATE jobs SET created_at = now() + interval '100 days'
       WHERE id = (SELECT job FROM documents ORDER BY id DESC LIMIT 1)");
    let recorded: Vec<Option<String>> =
        q("SELECT encode(document_signer, 'hex') FROM documents ORDER BY id")
            .iter()
            .map(|r| r.get(0))
            .collect();
    assert_eq!(recorded, [Some(ds.clone()), None, None]);
    // The completion without the field, sent again naming the Document Signer (a station's
    // recovery after the centre's upgrade), is the same completion.
    let unnamed_job: String = q("SELECT job FROM documents ORDER BY id LIMIT 1 OFFSET 1")[0].get(0);
    let again = json!({ "operator": "clerk1", "card_serial": testrig::egov::card_of(&unnamed_job),
                        "date_of_issue": "2026-12-02", "date_of_expiry": "2036-12-01",
                        "document_signer": ds });
    let repeated = desk.ok(&centre_api::paths::complete(&unnamed_job), &again);
    assert_eq!(repeated["document"], unnamed.as_str(), "{repeated}");

    // A third job, certified: a completion naming no Document Signer of this station is refused,
    // naming the field, and changes nothing.
    let job = new_job();
    let r = desk.ok(
        centre_api::paths::RESERVE,
        &reserve_body(&job, "51234567890125"),
    );
    let challenge = r["challenge"].as_str().unwrap();
    desk.ok(
        &centre_api::paths::certify(&job),
        &certify_body(&job, challenge),
    );
    let complete = |ds: &str| {
        json!({ "operator": "clerk1", "card_serial": testrig::egov::card_of(&job), "date_of_issue": "2026-12-02",
                "date_of_expiry": "2036-12-01", "document_signer": ds })
    };
    for (bad, why) in [
        ("zz", "not 1-20 bytes in hex"),
        ("0102", "no such certificate"),
    ] {
        let (status, v) = desk.call(&centre_api::paths::complete(&job), &complete(bad));
        assert_eq!(
            (status, v["rule"].as_str()),
            (400, Some("invalid-request")),
            "{v}"
        );
        let error = v["error"].as_str().unwrap();
        assert!(
            error.contains("document_signer") && error.contains(why),
            "{v}"
        );
    }
    let state: String = q(&format!("SELECT state FROM jobs WHERE id = '{job}'"))[0].get(0);
    assert_eq!(state, "certified");

    // The CSCA rotates, then csca-1 is withdrawn (dual control).
    ok(as_operator(
        &config,
        &["ca", "rotate", "--ca", "csca"],
        "admin",
        &[],
    ));
    ok(as_operator(&config, &["ca", "approve", "1"], "admin2", &[]));
    let withdraw = [
        "ca",
        "withdraw-csca",
        "--key",
        "csca-1",
        "--reason",
        "keyCompromise",
    ];
    ok(as_operator(&config, &withdraw, "admin", &[]));
    let done = ok(as_operator(&config, &["ca", "approve", "2"], "admin2", &[]));
    assert!(
        done.contains(&format!("Document Signers it issued: tas01-st1 ({ds})")),
        "{done}"
    );
    assert!(
        done.contains("2 cards whose EF.SOD they signed are flagged for replacement"),
        "{done}"
    );
    let issuers: Vec<(String, String)> =
        q("SELECT purpose, issuer_key FROM station_certs ORDER BY purpose")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    let pair = |p: &str, k: &str| (p.to_owned(), k.to_owned());
    assert_eq!(
        issuers,
        [
            pair("audit", "root-ca-1"),
            pair("document-signer", "csca-1"),
            pair("identity", "station-ca-1")
        ]
    );
    let event = q("SELECT details FROM audit_log WHERE action = 'ca.csca-withdrawn'");
    let details: Value = serde_json::from_str(event[0].get(0)).unwrap();
    assert_eq!(details["cards_to_replace"], 2, "{details}");

    let listed = as_operator(
        &config,
        &["--json", "station", "cards-to-replace"],
        "admin",
        &[],
    );
    let listed: Value = serde_json::from_str(&ok(listed)).unwrap();
    let flagged: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["document"].as_str().unwrap(),
                c["reason"].as_str().unwrap(),
            )
        })
        .collect();
    let because = "the CSCA key csca-1 that certified its Document Signer was withdrawn from the \
                   CSCA Master List (keyCompromise)";
    assert_eq!(flagged.len(), 2, "not {later}: {listed}");
    assert_eq!(flagged[0], (named.as_str(), because), "{listed}");
    assert_eq!(flagged[1].0, unnamed, "{listed}");
    assert!(
        flagged[1].1.starts_with(because) && flagged[1].1.contains("is not recorded"),
        "{listed}"
    );

    // The station's office sees the same two (any of its roles; another role is refused).
    let asked = |role: &str| {
        desk.call(
            centre_api::paths::CARDS_TO_REPLACE,
            &json!({ "operator": "clerk1", "role": role }),
        )
    };
    let (status, office) = asked("clerk");
    assert_eq!(status, 200, "{office}");
    assert_eq!(office["office"], "TAS01", "{office}");
    assert_eq!(office["cards"], listed, "{office}");
    let (status, v) = asked("janitor");
    assert_eq!(
        (status, v["rule"].as_str()),
        (400, Some("invalid-request")),
        "{v}"
    );
    assert!(v["error"].as_str().unwrap().starts_with("role: "), "{v}");
    let reads = q("SELECT details FROM audit_log
                   WHERE action = 'documents.replacement-listed' AND object = 'office:TAS01'
                     AND operator = 'clerk1' AND station = 'tas01-st1'");
    assert_eq!(reads.len(), 1);
    let read: Value = serde_json::from_str(reads[0].get(0)).unwrap();
    assert_eq!(read["documents"], json!([named, unnamed]), "{read}");
    let refused = q("SELECT details FROM audit_log
                     WHERE action = 'request.refused' AND station = 'tas01-st1'
                       AND details::jsonb ->> 'request' = 'cards-to-replace'");
    assert_eq!(refused.len(), 1, "the janitor's refusal audited");

    // The certified job's card, signed by the withdrawn CSCA's Document Signer, is not handed
    // out: the completion aborts the job, its number spoiled and its certificates revoked.
    let (status, v) = desk.call(&centre_api::paths::complete(&job), &complete(&ds));
    assert_eq!(
        (status, v["rule"].as_str()),
        (409, Some("job-aborted")),
        "{v}"
    );
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("the CSCA key csca-1 that certified the Document Signer"),
        "{v}"
    );
    let state: String = q(&format!("SELECT state FROM jobs WHERE id = '{job}'"))[0].get(0);
    assert_eq!(state, "aborted");
    let revoked: i64 = q(&format!(
        "SELECT count(*) FROM certificates WHERE job = '{job}' AND state = 'revoked'"
    ))[0]
        .get(0);
    assert_eq!(revoked, 2);
    // The station's abort of the job the centre voided answers with its state (not as a
    // different request of a step already taken).
    let (status, v) = desk.call(
        &centre_api::paths::abort(&job),
        &json!({ "operator": "clerk1", "reason": "the card was refused", "number": "spoiled" }),
    );
    assert_eq!((status, &v["state"]), (200, &json!("aborted")), "{v}");
    assert_eq!(v["revoked"].as_array().map(Vec::len), Some(2), "{v}");
}
