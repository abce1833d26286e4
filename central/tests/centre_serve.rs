//! `idcentral serve` end to end: a real PostgreSQL cluster (scripts/pg-up.sh), the centre's
//! SoftHSM2 token, and real TLS 1.3 on 127.0.0.1. The test plays a station: its keys are in a
//! SoftHSM2 token of its own, its CSRs are signed there (`ca::csr_for_hsm_key`) and its TLS
//! client signature is made there (`hsm::tls`). openssl checks the issued certificates against
//! the returned trust anchors.

mod common;

use std::sync::Arc;

use common::*;

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
    let rt = test_runtime();

    // The station trusts the Station CA before it enrols (the lead's station side pins the
    // fingerprint instead); here it comes from the database.
    let db = rt.block_on(db(&cluster));
    let station_ca = rt.block_on(station_ca_cert(&db));
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
    // The list says so; a new code is given to the station, in its own office only; the old code
    // stays refused and the new one enrols.
    let list = ok(idcentral(
        &config,
        &["station", "list", "--operator", "admin"],
        &pw,
    ));
    let st3 = list.lines().find(|l| l.contains("tas01-st3")).unwrap();
    assert!(st3.contains("awaiting-enrolment (code expired "), "{list}");
    let tas01_st1 = list.lines().find(|l| l.contains("tas01-st1")).unwrap();
    assert!(
        !tas01_st1.contains("code"),
        "an enrolled station has no code: {list}"
    );
    refused(
        &station_add(&config, "SAM01", "tas01-st3"),
        5,
        "already exists in office TAS01, not SAM01",
    );
    let code3b = add_station(&config, "tas01-st3");
    assert_ne!(code3b, code3);
    refused(
        &station_add(&config, "TAS01", "tas01-st3"),
        5,
        "a new code is given only after it expires",
    );
    assert_refused(
        &enrol_with_new_keys("st3b", "tas01-st3", &code3),
        403,
        "enrolment-code-wrong",
    );
    assert_eq!(
        enrol_with_new_keys("st3c", "tas01-st3", &code3b).unwrap().0,
        200
    );
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
        3,
        "{actions:?}"
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "station.code-renewed")
            .count(),
        1,
        "{actions:?}"
    );
    ok(idcentral(
        &config,
        &["audit", "verify-log", "--operator", "admin"],
        &pw,
    ));
    drop(server);
}
