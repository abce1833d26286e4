//! `idcentral` end to end on a real PostgreSQL cluster (scripts/pg-up.sh, started by the test)
//! and a real SoftHSM2 token: init, stations with one-time enrolment codes, operators' refusals,
//! the append-only audit chain; openssl checks the CA certificates independently.

use std::path::Path;
use std::process::{Command, Output};

mod common;

use common::*;

fn openssl(args: &[&str], dir: &Path) -> Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (scripts/install-deps.sh installs it)")
}

#[test]
fn the_centre_initialises_adds_and_disables_stations_and_keeps_an_append_only_audit_chain() {
    let (tmp, cluster, config) = centre("");
    let pw = format!("{ADMIN_PASSWORD}\n");

    // init: four CAs, printed with fingerprints; a second init is refused.
    let out = ok(idcentral(&config, &["init", "--admin", "admin"], &pw));
    for ca in ["root-ca-1", "esign-ca-1", "csca-1", "station-ca-1"] {
        assert!(out.contains(ca), "{out}");
    }
    refused(
        &idcentral(&config, &["init", "--admin", "admin"], &pw),
        2,
        "already initialised",
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(db(&cluster));

    // openssl: the root and the CSCA are self-signed, the e-Signature and Station CAs chain to
    // the root, and each printed fingerprint is openssl's.
    let rows = rt
        .block_on(client.query(
            "SELECT label, cert_der FROM ca_keys WHERE state = 'active'",
            &[],
        ))
        .unwrap();
    assert_eq!(rows.len(), 4);
    for r in &rows {
        let label: String = r.get(0);
        std::fs::write(
            tmp.path().join(format!("{label}.der")),
            r.get::<_, Vec<u8>>(1),
        )
        .unwrap();
        let o = openssl(
            &[
                "x509",
                "-inform",
                "DER",
                "-in",
                &format!("{label}.der"),
                "-out",
                &format!("{label}.pem"),
            ],
            tmp.path(),
        );
        assert!(o.status.success());
        let fp = openssl(
            &[
                "x509",
                "-in",
                &format!("{label}.pem"),
                "-noout",
                "-fingerprint",
                "-sha256",
            ],
            tmp.path(),
        );
        let fp = String::from_utf8_lossy(&fp.stdout)
            .trim()
            .replace("sha256 Fingerprint=", "")
            .replace("SHA256 Fingerprint=", "");
        assert!(
            out.contains(&fp),
            "fingerprint of {label} ({fp}) not printed:\n{out}"
        );
    }
    for (ca, anchor) in [
        ("root-ca-1", "root-ca-1"),
        ("csca-1", "csca-1"),
        ("esign-ca-1", "root-ca-1"),
        ("station-ca-1", "root-ca-1"),
    ] {
        let o = openssl(
            &[
                "verify",
                "-x509_strict",
                "-CAfile",
                &format!("{anchor}.pem"),
                &format!("{ca}.pem"),
            ],
            tmp.path(),
        );
        assert!(
            o.status.success(),
            "openssl verify {ca}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }

    // A wrong password: refused like an unknown name, exit 6, audited.
    let wrong = idcentral(
        &config,
        &[
            "station",
            "add",
            "--office",
            "TAS01",
            "--station",
            "tas01-st1",
            "--operator",
            "admin",
        ],
        "not-the-password\n",
    );
    refused(&wrong, 6, "admin: operator name or password is wrong");
    let ghost = idcentral(&config, &["station", "list", "--operator", "ghost"], &pw);
    refused(&ghost, 6, "ghost: operator name or password is wrong");

    // Bad input names the field.
    refused(
        &idcentral(
            &config,
            &[
                "station",
                "add",
                "--office",
                "tas1",
                "--station",
                "x",
                "--operator",
                "admin",
            ],
            &pw,
        ),
        2,
        "office: ",
    );
    refused(
        &idcentral(
            &config,
            &[
                "station",
                "add",
                "--office",
                "TAS01",
                "--station",
                "TAS 1",
                "--operator",
                "admin",
            ],
            &pw,
        ),
        2,
        "station: ",
    );

    // add: a one-time code, printed once, stored only as its SHA-256.
    let code = add_station(&config, "tas01-st1");
    assert_eq!(code.len(), 29, "{code}");
    let stored: Vec<u8> = rt
        .block_on(client.query_one(
            "SELECT enrolment_code_sha256 FROM stations WHERE name = 'tas01-st1'",
            &[],
        ))
        .unwrap()
        .get(0);
    assert_eq!(stored, central::stations::code_digest(&code));
    let dump = rt
        .block_on(client.query("SELECT row_to_json(s)::text FROM stations s", &[]))
        .unwrap();
    assert!(dump.iter().all(|r| !r.get::<_, String>(0).contains(&code)));
    refused(
        &idcentral(
            &config,
            &[
                "station",
                "add",
                "--office",
                "TAS01",
                "--station",
                "tas01-st1",
                "--operator",
                "admin",
            ],
            &pw,
        ),
        5,
        "already exists",
    );

    let list = ok(idcentral(
        &config,
        &["station", "list", "--operator", "admin"],
        &pw,
    ));
    assert!(
        list.contains("TAS01  tas01-st1") && list.contains("awaiting-enrolment"),
        "{list}"
    );

    // disable: the code stops working; twice is refused.
    disable_station(&config, "tas01-st1");
    let row = rt
        .block_on(client.query_one(
            "SELECT state, enrolment_code_sha256 IS NULL FROM stations WHERE name = 'tas01-st1'",
            &[],
        ))
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "disabled");
    assert!(row.get::<_, bool>(1));
    refused(
        &idcentral(
            &config,
            &[
                "station",
                "disable",
                "--station",
                "tas01-st1",
                "--operator",
                "admin",
            ],
            &pw,
        ),
        5,
        "already disabled",
    );
    refused(
        &idcentral(
            &config,
            &[
                "station",
                "disable",
                "--station",
                "nowhere",
                "--operator",
                "admin",
            ],
            &pw,
        ),
        2,
        "not known",
    );

    // The audit chain holds and records every step, refusals included; the table is append-only.
    let verified = ok(idcentral(
        &config,
        &["audit", "verify-log", "--operator", "admin"],
        &pw,
    ));
    assert!(verified.contains("the chain holds"), "{verified}");
    let actions = rt.block_on(audit_actions(&client));
    assert_eq!(
        actions.first().map(String::as_str),
        Some("centre.initialised")
    );
    for a in ["operator.refused", "station.added", "station.disabled"] {
        assert!(
            actions.iter().any(|x| x == a),
            "{a} missing from {actions:?}"
        );
    }
    for sql in [
        "UPDATE audit_log SET operator = 'mallory'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        let e = rt.block_on(client.execute(sql, &[])).expect_err(sql);
        let msg = e
            .as_db_error()
            .map(|d| d.message().to_owned())
            .unwrap_or_default();
        assert!(msg.contains("append-only"), "{sql}: {e}");
    }
    // The centre's own sessions act as idcentral_app, which may not even try: no UPDATE,
    // DELETE or TRUNCATE on the audit tables (migration V6), whatever the triggers.
    let db = central::config::DatabaseSection {
        url: cluster.url(),
        password_file: Some(cluster.dir.join("password")),
        pool_size: 1,
    };
    let pool = central::db::pool(&db).unwrap();
    let app = rt.block_on(pool.get()).unwrap();
    let who: String = rt
        .block_on(app.query_one("SELECT current_user::text", &[]))
        .unwrap()
        .get(0);
    assert_eq!(who, central::db::APP_ROLE);
    for sql in [
        "UPDATE audit_log SET operator = 'mallory'",
        "DELETE FROM audit_checkpoints",
        "TRUNCATE station_audit_events",
    ] {
        let e = rt.block_on(app.execute(sql, &[])).expect_err(sql);
        let msg = e
            .as_db_error()
            .map(|d| d.message().to_owned())
            .unwrap_or_default();
        assert!(msg.contains("permission denied"), "{sql}: {e}");
    }
    // It still reads and appends what the centre needs.
    let n: i64 = rt
        .block_on(app.query_one("SELECT count(*) FROM audit_log", &[]))
        .unwrap()
        .get(0);
    assert!(n > 0);
    drop(app);
    drop(pool);
    drop(client);
    drop(cluster);
}
