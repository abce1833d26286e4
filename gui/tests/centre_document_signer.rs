//! The CA workspace of a station enrolled with the national centre (docs/gui.md "CA
//! workspace"), with real parts: a PostgreSQL cluster, `idcentral serve`, a station enrolled in
//! this process (its SoftHSM2 token) that the GUI's worker opens. The CA administrator sees
//! that the centre holds the CAs (no CRL, revocation or rotation buttons of the station's own),
//! sees until when the active Document Signer signs, renews it with one button, sees the outcome
//! in words and `ds-2` active in the hierarchy; the registry agrees. The station's own
//! certificate revocation, not offered there, is refused by the core and audited. Every wait polls with a deadline.
//!
//! Needs `idcentral` built in the same target dir as the tests build it (`cargo test -p central --no-run`).

mod common;
#[path = "../../station/tests/common/egov_centre.rs"]
mod egov_centre;

use std::time::Duration;

use common::*;
use egov_centre::*;
use gui::i18n::{tr, Lang};
use gui::GuiOptions;

#[test]
fn an_enrolled_stations_ca_admin_renews_the_document_signer_from_the_ca_workspace() {
    let today = || time::OffsetDateTime::now_utc().date();
    let before = today();
    let rig = EgovRig::start("tas01-gui-ds", 2);
    let after = today();
    let mut opts = GuiOptions::new(rig.data.clone());
    opts.poll_readers = false;
    let mut h = harness(opts, [1280.0, 900.0]);
    log_in(
        &mut h,
        "admin",
        EGOV_ADMIN_PASSWORD,
        &tr(Lang::En, "workspace-ca"),
    );
    let renew = tr(Lang::En, "ca-ds-renew");
    wait_for(&mut h, &renew, Duration::from_secs(30), |h| {
        has_label(h, &renew)
    });
    assert!(has_label(&h, &tr(Lang::En, "ca-centre-held")));
    for absent in [
        "ca-request-esign",
        "ca-request-root",
        "ca-request-document-signer",
    ] {
        assert!(!has_label(&h, &tr(Lang::En, absent)), "{absent} shown");
    }
    wait_for(
        &mut h,
        "ds-1 in the hierarchy",
        Duration::from_secs(30),
        |h| has_label(h, "ds-1"),
    );
    // Its key usage end, from the certificate: 92 days from the enrolment (the day before and
    // after it both accepted, for a run across midnight).
    let line = |d: time::Date| {
        let until = gui::i18n::date_of(d + time::Duration::days(92));
        format!("ds-1 signs the chip data of new cards until {until}")
    };
    assert!(
        has_label_containing(&h, &line(before)) || has_label_containing(&h, &line(after)),
        "no line {:?}",
        line(after)
    );

    click(&mut h, &renew);
    let done = "Document Signer ds-2 certified by the centre's csca-1";
    wait_for(&mut h, done, Duration::from_secs(60), |h| {
        has_label_containing(h, done)
    });
    wait_for(
        &mut h,
        "ds-2 in the hierarchy",
        Duration::from_secs(30),
        |h| has_label(h, "ds-2"),
    );
    let reg = registry::Registry::open_read_only(rig.data.join("registry.sqlite")).unwrap();
    let active = reg.active_ca_key("document-signer").unwrap().unwrap();
    assert_eq!(active.label, "ds-2");
    let events = reg.audit_events(1, u64::MAX).unwrap();
    let renewed: Vec<_> = events
        .iter()
        .filter(|e| e.action == "centre.document-signer-renewed")
        .collect();
    assert_eq!(renewed.len(), 1);
    assert_eq!(renewed[0].operator, "admin");

    // The certificate revocation the workspace no longer offers here is refused by the core
    // too (the centre decides what relying parties see), and the refusal is audited.
    let mut st = station::Station::open_read_only(&rig.data).unwrap();
    let admin = rig.session(&mut st, "admin", EGOV_ADMIN_PASSWORD);
    let e = station::interactive::revoke_certificate(&mut st, &admin, "00ff", "keyCompromise")
        .unwrap_err();
    assert!(
        matches!(e, station::error::StationError::NotPermitted(_)),
        "{e}"
    );
    assert!(e.to_string().contains("idstation revoke --document"), "{e}");
    let events = st.registry.audit_events(1, u64::MAX).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.action == "certificate.revoke-refused" && e.object == "certificate:00ff"),
        "no audited refusal"
    );
}
