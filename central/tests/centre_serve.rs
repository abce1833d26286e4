//! `idcentral serve` end to end: a real PostgreSQL cluster (scripts/pg-up.sh), the centre's
//! SoftHSM2 token, and real TLS 1.3 on 127.0.0.1. The test plays a station: its keys are in a
//! SoftHSM2 token of its own, its CSRs are signed there (`ca::csr_for_hsm_key`) and its TLS
//! client signature is made there (`hsm::tls`). openssl checks the issued certificates against
//! the returned trust anchors.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use common::*;

use hsm::KeyStore;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use zeroize::Zeroizing;

const STATION_PIN: &str = "station-pin-9d3e";

/// The `idcentral serve` child, killed and reaped when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    fingerprint: String,
}

impl Server {
    fn start(config: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_idcentral"))
            .arg("--config")
            .arg(config)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("IDCENTRAL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start idcentral serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut next = || {
            lines
                .next()
                .and_then(|l| l.ok())
                .unwrap_or_else(|| panic!("idcentral serve stopped before it listened"))
        };
        let first = next();
        let addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .parse()
            .unwrap();
        let second = next();
        let fingerprint = second
            .strip_prefix("TLS SHA256 Fingerprint=")
            .unwrap_or_else(|| panic!("unexpected second line {second:?}"))
            .to_owned();
        Server {
            child,
            addr,
            fingerprint,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The station side: keys in its own SoftHSM2 token.
struct Station {
    store: Arc<dyn hsm::KeyStore>,
}

impl Station {
    fn new(label: &str) -> Station {
        let dir = hsm::pkcs11::SoftHsm2Token::process_dir()
            .expect("run through cargo: the runner sets SOFTHSM2_CONF");
        std::fs::create_dir_all(&dir).unwrap();
        let token = hsm::pkcs11::SoftHsm2Token::create(&dir, label, "so-pin-1234", STATION_PIN)
            .expect("station token");
        let store = token.open(Zeroizing::new(STATION_PIN.to_owned())).unwrap();
        for key in ["identity", "audit", "ds"] {
            store.generate_p256(key).unwrap();
        }
        Station {
            store: Arc::new(store),
        }
    }

    fn csr(&self, key: &str) -> String {
        hex::encode(ca::csr_for_hsm_key(self.store.as_ref(), key, "station request").unwrap())
    }

    fn enrol_request(&self, station: &str, code: &str) -> serde_json::Value {
        serde_json::json!({
            "station": station, "enrolment_code": code,
            "identity_csr": self.csr("identity"), "audit_csr": self.csr("audit"),
            "document_signer_csr": self.csr("ds"),
        })
    }
}

fn der_of_pem(pem: &str) -> Vec<u8> {
    use der::DecodePem;
    let cert = x509_cert::Certificate::from_pem(pem.as_bytes()).unwrap();
    der::Encode::to_der(&cert).unwrap()
}

/// The HSM key `key` of `store` with its certificate, as a TLS client identity.
fn identity(
    store: &Arc<dyn hsm::KeyStore>,
    key: &str,
    cert: Vec<u8>,
) -> rustls::sign::CertifiedKey {
    hsm::tls::certified_key(Arc::clone(store), key, &[cert]).unwrap()
}

/// A TLS 1.3 client trusting `anchor` (DER), optionally presenting `identity`.
fn client_config(
    anchor: &[u8],
    identity: Option<rustls::sign::CertifiedKey>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(anchor.to_vec())).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots);
    Arc::new(match identity {
        None => builder.with_no_client_auth(),
        Some(ck) => {
            builder.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(ck)))
        }
    })
}

/// One HTTPS request; `Err` when the TLS connection was refused. Also returns the server's
/// certificate (DER).
async fn https(
    addr: SocketAddr,
    name: &str,
    tls: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<(u16, serde_json::Value, Vec<u8>), String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(server_name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let server_cert = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", name)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .unwrap();
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::json!({ "raw": String::from_utf8_lossy(&bytes) }));
    Ok((status, json, server_cert))
}

fn assert_refused(r: &Result<(u16, serde_json::Value, Vec<u8>), String>, status: u16, rule: &str) {
    let (s, body, _) = r
        .as_ref()
        .unwrap_or_else(|e| panic!("wanted HTTP {status}, got {e}"));
    assert_eq!((*s, body["rule"].as_str()), (status, Some(rule)), "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
}

fn openssl_verify(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .arg("verify")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_station_enrols_once_over_mutual_tls_and_is_refused_when_it_should_be() {
    let (tmp, cluster, config) = centre("\n[server]\npublic_name = \"localhost\"\n");
    let d = tmp.path();
    let pw = format!("{ADMIN_PASSWORD}\n");
    ok(idcentral(&config, &["init", "--admin", "admin"], &pw));
    let code1 = add_station(&config, "tas01-st1");
    let code2 = add_station(&config, "tas01-st2");
    let code3 = add_station(&config, "tas01-st3");
    let code4 = add_station(&config, "tas01-st4");
    let server = Server::start(&config);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    // The station trusts the Station CA before it enrols (the lead's station side pins the
    // fingerprint instead); here it comes from the database.
    let db = rt.block_on(db(&cluster));
    let station_ca: Vec<u8> = rt
        .block_on(db.query_one("SELECT cert_der FROM ca_keys WHERE ca = 'station-ca'", &[]))
        .unwrap()
        .get(0);
    let anon = client_config(&station_ca, None);
    let call = |tls: &Arc<rustls::ClientConfig>, method, path, body: Option<&serde_json::Value>| {
        rt.block_on(https(
            server.addr,
            "localhost",
            Arc::clone(tls),
            method,
            path,
            body,
        ))
    };

    // Enrolment: three certificates, the anchors, and the fingerprint of the certificate the
    // connection was made with.
    let st1 = Station::new("st1");
    let req1 = st1.enrol_request("tas01-st1", &code1.to_lowercase());
    let (status, body, served) = call(&anon, "POST", "/v1/enrol", Some(&req1)).unwrap();
    assert_eq!(status, 200, "{body}");
    let resp: central::enrol::EnrolResponse = serde_json::from_value(body).unwrap();
    assert_eq!(resp.centre_tls_fingerprint_sha256, server.fingerprint);
    assert_eq!(ca::fingerprint_sha256(&served).unwrap(), server.fingerprint);
    assert_eq!(resp.office, "TAS01");

    // openssl: each certificate chains to its anchor and serves its purpose; the server's
    // certificate names localhost and 127.0.0.1.
    let files = [
        ("root.pem", &resp.trust_anchors.root),
        ("csca.pem", &resp.trust_anchors.csca),
        ("station-ca.pem", &resp.trust_anchors.station_ca),
        ("identity.pem", &resp.identity_cert),
        ("audit.pem", &resp.audit_cert),
        ("ds.pem", &resp.document_signer_cert),
    ];
    for (f, pem) in files {
        std::fs::write(d.join(f), pem).unwrap();
    }
    std::fs::write(d.join("server.pem"), ca::cert_pem(&served).unwrap()).unwrap();
    let strict = [
        "-x509_strict",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "station-ca.pem",
    ];
    for args in [
        [&strict[..], &["-purpose", "sslclient", "identity.pem"]].concat(),
        [
            &strict[..],
            &[
                "-purpose",
                "sslserver",
                "-verify_hostname",
                "localhost",
                "server.pem",
            ],
        ]
        .concat(),
        [
            &strict[..],
            &[
                "-purpose",
                "sslserver",
                "-verify_ip",
                "127.0.0.1",
                "server.pem",
            ],
        ]
        .concat(),
        vec!["-x509_strict", "-CAfile", "root.pem", "audit.pem"],
        vec!["-x509_strict", "-CAfile", "csca.pem", "ds.pem"],
    ] {
        let (ok, out) = openssl_verify(d, &args);
        assert!(ok, "openssl verify {args:?}: {out}");
    }
    // The identity certificate certifies the station's HSM key, with CN = the station's name.
    let identity_der = der_of_pem(&resp.identity_cert);
    let info = ca::CertInfo::parse(&identity_der).unwrap();
    assert!(info.subject.contains("CN=tas01-st1"), "{}", info.subject);

    // whoami with the identity: the TLS client signature is made in the station's HSM.
    let anchor = der_of_pem(&resp.trust_anchors.station_ca);
    let id = client_config(
        &anchor,
        Some(identity(&st1.store, "identity", identity_der.clone())),
    );
    let (status, who, _) = call(&id, "GET", "/v1/whoami", None).unwrap();
    assert_eq!(status, 200, "{who}");
    assert_eq!(
        who,
        serde_json::json!({ "station": "tas01-st1", "office": "TAS01", "state": "enrolled" })
    );
    // Reached by its IP address too (the SAN's iPAddress).
    let by_ip = rt.block_on(https(
        server.addr,
        "127.0.0.1",
        Arc::clone(&id),
        "GET",
        "/v1/whoami",
        None,
    ));
    assert_eq!(by_ip.unwrap().0, 200);

    // Refused: whoami without a client certificate; the code a second time; a wrong code; a
    // tampered request.
    assert_refused(
        &call(&anon, "GET", "/v1/whoami", None),
        401,
        "client-certificate-required",
    );
    assert_refused(
        &call(&anon, "POST", "/v1/enrol", Some(&req1)),
        409,
        "enrolment-code-used",
    );
    let wrong = st1.enrol_request("tas01-st2", &code1);
    assert_refused(
        &call(&anon, "POST", "/v1/enrol", Some(&wrong)),
        403,
        "enrolment-code-wrong",
    );
    let mut tampered = Station::new("st2").enrol_request("tas01-st2", &code2);
    let mut csr = hex::decode(tampered["audit_csr"].as_str().unwrap()).unwrap();
    let last = csr.len() - 1;
    csr[last] ^= 1;
    tampered["audit_csr"] = hex::encode(csr).into();
    assert_refused(
        &call(&anon, "POST", "/v1/enrol", Some(&tampered)),
        400,
        "invalid-request",
    );

    // A client certificate from another CA (the same profile, a rogue root): refused at the
    // TLS handshake.
    let rogue = Station::new("rogue");
    let set = profiles::builtin().unwrap();
    let now = std::time::SystemTime::now();
    rogue.store.generate_p256("rogue-root").unwrap();
    let rogue_root = ca::create_root(
        rogue.store.as_ref(),
        set.cert("root-ca").unwrap(),
        "rogue-root",
        now,
    )
    .unwrap();
    let rogue_cert = ca::issue_station_cert(
        rogue.store.as_ref(),
        set.cert("station-identity").unwrap(),
        &rogue_root,
        &rogue.store.public_key_spki("identity").unwrap(),
        "tas01-st1",
        now,
    )
    .unwrap();
    let forged = client_config(
        &anchor,
        Some(identity(&rogue.store, "identity", rogue_cert.der)),
    );
    let r = call(&forged, "GET", "/v1/whoami", None);
    assert!(
        r.is_err(),
        "a certificate from another CA was accepted: {r:?}"
    );

    // The same code sent twice at once: the row lock makes one enrolment, the other is told
    // the code is used.
    let (a, b) = (Station::new("st4a"), Station::new("st4b"));
    let (ra, rb) = (
        a.enrol_request("tas01-st4", &code4),
        b.enrol_request("tas01-st4", &code4),
    );
    let (ra, rb) = rt.block_on(async {
        tokio::join!(
            https(
                server.addr,
                "localhost",
                Arc::clone(&anon),
                "POST",
                "/v1/enrol",
                Some(&ra)
            ),
            https(
                server.addr,
                "localhost",
                Arc::clone(&anon),
                "POST",
                "/v1/enrol",
                Some(&rb)
            ),
        )
    });
    let mut statuses = [ra.unwrap().0, rb.unwrap().0];
    statuses.sort();
    assert_eq!(statuses, [200, 409]);

    // An expired code, and a disabled station's code.
    rt.block_on(db.execute(
        "UPDATE stations SET enrolment_expires_at = now() - interval '1 minute' WHERE name = 'tas01-st3'",
        &[],
    ))
    .unwrap();
    let enrol_with_new_keys = |token: &str, station: &str, code: &str| {
        let req = Station::new(token).enrol_request(station, code);
        call(&anon, "POST", "/v1/enrol", Some(&req))
    };
    let r = enrol_with_new_keys("st3", "tas01-st3", &code3);
    assert_refused(&r, 403, "enrolment-code-expired");
    disable_station(&config, "tas01-st2");
    let r = enrol_with_new_keys("st2b", "tas01-st2", &code2);
    assert_refused(&r, 403, "station-disabled");

    // Disabling the enrolled station cuts it off.
    disable_station(&config, "tas01-st1");
    assert_refused(
        &call(&id, "GET", "/v1/whoami", None),
        403,
        "station-disabled",
    );

    // The enrolment is in the audit log, and the chain holds.
    let actions = rt.block_on(audit_actions(&db));
    assert_eq!(
        actions.iter().filter(|a| *a == "station.enrolled").count(),
        2,
        "{actions:?}"
    );
    ok(idcentral(
        &config,
        &["audit", "verify-log", "--operator", "admin"],
        &pw,
    ));
    drop(server);
}
