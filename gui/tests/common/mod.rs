//! Shared set-up of the GUI tests: one initialised data dir per test process (SoftHSM2 reads
//! its token dir once per process), the three operators, and helpers that click and type like
//! a person.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use gui::{GuiOptions, StationApp};
use zeroize::Zeroizing;

pub const ADMIN_PASSWORD: &str = "admin-password-gui-1";
pub const CLERK_PASSWORD: &str = "clerk-password-gui-2";
pub const AUDITOR_PASSWORD: &str = "auditor-password-gui-3";
pub const HSM_PIN: &str = "hsm-pin-gui-5521";
/// The second ca-admin, created by `init` (a ca-admin added later needs another's approval).
pub const ADMIN2_PASSWORD: &str = "admin2-password-gui-7";

/// The clerk the language tests log in as: choosing a language is remembered per operator, so
/// they do not change the language of "clerk", whom tests running beside them use.
pub const L10N_CLERK: &str = "clerk-lang";

pub struct Rig {
    pub dir: PathBuf,
    pub data: PathBuf,
}

static RIG: OnceLock<Rig> = OnceLock::new();

/// The data dir of this test process: `idstation init` (ca-admins admin and admin2), plus a
/// clerk and an auditor.
pub fn rig() -> &'static Rig {
    RIG.get_or_init(|| {
        let tmp = tempfile::Builder::new()
            .prefix("gui-test-")
            .tempdir_in(
                option_env!("CARGO_TARGET_TMPDIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(std::env::temp_dir),
            )
            .expect("tempdir");
        let dir = tmp.keep();
        let data = dir.join("data");
        let pin_file = dir.join("hsm-pin");
        std::fs::write(&pin_file, HSM_PIN).expect("pin file");
        // Owner-only, or the station refuses to start (docs/security.md).
        std::fs::set_permissions(
            &pin_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod 600 pin file");
        let opts = station::init::InitOptions {
            station_name: "gui-test".into(),
            office: "TAS01".into(),
            series: "AA".into(),
            admin_name: "admin".into(),
            admin_password: Zeroizing::new(ADMIN_PASSWORD.into()),
            second_admin: Some(("admin2".into(), Zeroizing::new(ADMIN2_PASSWORD.into()))),
            hsm_pin: Some(hsm::SecretSource::File(pin_file)),
            hsm_so_pin: None,
            module: PathBuf::from(hsm::pkcs11::SOFTHSM2_MODULE),
            // The token goes where this process's SoftHSM2 configuration points (cargo's
            // runner sets SOFTHSM2_CONF), so the station opens in this process.
            softhsm_dir: Some(
                hsm::pkcs11::SoftHsm2Token::process_dir()
                    .expect("run through cargo (scripts/cargo-runner.sh)"),
            ),
        };
        station::init::init(&data, &opts).expect("init data dir");
        let mut st = station::Station::open(&data).expect("open");
        let admin = st
            .authorize(
                "admin",
                &Zeroizing::new(ADMIN_PASSWORD.into()),
                "add operators",
                &[registry::Role::CaAdmin],
            )
            .expect("admin");
        for (name, role, pw) in [
            ("clerk", registry::Role::Clerk, CLERK_PASSWORD),
            ("auditor", registry::Role::Auditor, AUDITOR_PASSWORD),
            // A clerk whose language the language tests change (the others' stays English).
            (L10N_CLERK, registry::Role::Clerk, CLERK_PASSWORD),
        ] {
            station::operators::add(&mut st, &admin, name, role, &Zeroizing::new(pw.into()))
                .expect("add operator");
        }
        Rig { dir, data }
    })
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../station/tests/fixtures/holders")
        .join(name)
}

pub fn options(reader: Option<&str>, poll: bool) -> GuiOptions {
    let mut o = GuiOptions::new(rig().data.clone());
    o.poll_readers = poll;
    o.reader = reader.map(str::to_owned);
    o
}

pub type H = Harness<'static, StationApp>;

pub fn harness(opts: GuiOptions, size: [f32; 2]) -> H {
    Harness::builder()
        .with_size(size)
        .build_ui_state(|ui, app: &mut StationApp| app.ui(ui), StationApp::new(opts))
}

/// Step the UI until `pred` holds, or panic after `timeout` naming what was awaited.
pub fn wait_for(h: &mut H, what: &str, timeout: Duration, pred: impl Fn(&H) -> bool) {
    let start = Instant::now();
    loop {
        h.step();
        if pred(h) {
            h.step();
            return;
        }
        if start.elapsed() > timeout {
            // What the screen said instead (an error, a pending state), for the report.
            let shown: Vec<String> = h
                .query_all_by_label_contains("")
                .filter_map(|n| {
                    use egui_kittest::kittest::NodeT;
                    n.accesskit_node().label()
                })
                .filter(|l| l.len() > 2)
                .collect();
            panic!("timed out after {timeout:?} waiting for {what}; on screen: {shown:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Some node is labelled exactly `label`.
pub fn has_label(h: &H, label: &str) -> bool {
    h.query_all_by_label(label).next().is_some()
}

/// Some node's label contains `part`.
pub fn has_label_containing(h: &H, part: &str) -> bool {
    h.query_all_by_label_contains(part).next().is_some()
}

/// Click the text field labelled `label` and type `text` into it.
pub fn type_into(h: &mut H, label: &str, text: &str) {
    h.get_by_label(label).click();
    h.step();
    h.get_by_label(label).type_text(text);
    // The frame that takes the text, and the next one that shows its validation.
    h.step();
    h.step();
}

pub fn click(h: &mut H, label: &str) {
    h.get_by_label(label).click();
    h.step();
}

/// Choose `lang` on the log-in screen, then log in as `name` (the workspace's wait is the
/// caller's).
pub fn log_in_in(h: &mut H, lang: gui::i18n::Lang, name: &str, password: &str) {
    click(h, lang.native_name());
    h.step();
    type_into(h, &gui::i18n::tr(lang, "login-operator"), name);
    type_into(h, &gui::i18n::tr(lang, "login-password"), password);
    click(h, &gui::i18n::tr(lang, "login-button"));
}

/// Log in through the form and wait for the workspace heading.
pub fn log_in(h: &mut H, name: &str, password: &str, heading: &str) {
    type_into(h, "Operator", name);
    type_into(h, "Password", password);
    click(h, "Log in");
    wait_for(h, heading, Duration::from_secs(30), |h| {
        has_label(h, heading)
    });
}

/// Times, serials, fingerprints, counts and the temporary data dir's path.
pub fn volatile(text: &str) -> bool {
    text.chars().any(|c| c.is_ascii_digit()) || text.contains('/')
}

pub fn mask_volatile(h: &mut H) {
    let rects: Vec<egui::Rect> = h
        .query_all_by(|n| {
            n.label().is_some_and(|l| volatile(&l)) || n.value().is_some_and(|v| volatile(&v))
        })
        // To the right edge: a volatile text's width varies with its glyphs.
        .map(|n| n.rect().with_max_x(1280.0))
        .collect();
    for r in rects {
        h.mask(r);
    }
}

pub fn settle(h: &mut H) {
    h.remove_cursor();
    for _ in 0..5 {
        h.step();
    }
    mask_volatile(h);
}

/// Labels that reach past `right` or `bottom` (window coordinates), each with where it ends.
/// With `started_inside`, only those that start inside the window (a label wholly below it is
/// further down a scroll area, reached by scrolling). For "nothing is cut off at 1024×768".
pub fn labels_past(h: &H, right: f32, bottom: f32, started_inside: bool) -> Vec<String> {
    use egui_kittest::kittest::NodeT as _;
    h.query_all_by(|n| n.label().is_some_and(|l| !l.is_empty()))
        .filter(|n| !started_inside || (n.rect().min.x < right && n.rect().min.y < bottom))
        .filter(|n| n.rect().max.x > right + 0.5 || n.rect().max.y > bottom + 0.5)
        .map(|n| {
            format!(
                "{:?} ends at {:?}",
                n.accesskit_node().label(),
                n.rect().max
            )
        })
        .collect()
}

/// How long a card service may take (a renewal generates keys on the card and issues).
pub const SERVICE_LONG: Duration = Duration::from_secs(180);
/// How long reading a card may take.
pub const SERVICE_SHORT: Duration = Duration::from_secs(60);

/// A blank `vchip` card image with chip serial `serial`, in `dir`.
pub fn blank_card_in(dir: &Path, serial: u32) -> PathBuf {
    let img = dir.join(format!("card-{serial:08X}.img"));
    let out = std::process::Command::new(testrig::vchip_bin().expect("vchip"))
        .args(["create", "--out"])
        .arg(&img)
        .args(["--serial", &serial.to_string()])
        .output()
        .expect("run vchip create");
    assert!(out.status.success(), "vchip create: {out:?}");
    img
}

/// Holder-01 with PINFL digits 12-13 set to `n` (and the check digit recomputed), written to
/// `dir`: a holder of its own for each test, as one holder has one active card.
pub fn holder_file_in(dir: &Path, n: u32) -> PathBuf {
    let mut rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("holder-01.json")).expect("fixture"))
            .expect("json");
    let base = rec["pinfl"].as_str().expect("pinfl")[..11].to_owned();
    let first13 = format!("{base}{n:02}");
    let digits: Vec<u32> = first13.bytes().map(|c| u32::from(c - b'0')).collect();
    let pinfl = format!("{first13}{}", station::holder::pinfl_check_digit(&digits));
    rec["pinfl"] = pinfl.into();
    let photo = fixture(rec["photo"].as_str().expect("photo"));
    rec["photo"] = photo.to_str().expect("utf-8").into();
    let path = dir.join(format!("svc-holder-{n}.json"));
    std::fs::write(&path, rec.to_string()).expect("write holder");
    path
}

/// Wait for the outcome of a service and for the card to be read again.
pub fn wait_done(h: &mut H, done: &str) {
    wait_for(h, done, SERVICE_LONG, |h| {
        let s = &h.state().services;
        (has_label_containing(h, done) || s.action_failure.is_some() || dialog_error(h).is_some())
            && !s.busy()
    });
    assert!(
        has_label_containing(h, done),
        "{done}: failure {:?}, dialog error {:?}",
        h.state().services.action_failure,
        dialog_error(h)
    );
    // The card is read again after every action.
    wait_for(h, "the card read again", SERVICE_SHORT, |h| {
        !h.state().services.busy()
    });
}

/// The error the open dialog shows under its fields, if any.
pub fn dialog_error(h: &H) -> Option<String> {
    use gui::services::dialogs::Dialog;
    match h.state().services.dialog.as_ref()? {
        Dialog::Unblock { error, .. }
        | Dialog::Resume { error, .. }
        | Dialog::AddressSet { error, .. }
        | Dialog::AddressEnd { error, .. } => error.clone(),
        Dialog::Suspend | Dialog::Returned => None,
    }
}

/// Press a service's button; its dialog (or the PIN window) is laid out in the next frames.
pub fn open(h: &mut H, label: &str) {
    click(h, label);
    h.step();
    h.step();
}

/// Type `pin` into each of the holder PIN window's `fields`, then Continue.
pub fn holder_pin(h: &mut H, fields: &[&str], pin: &str) {
    h.step();
    for f in fields {
        type_into(h, f, pin);
    }
    click(h, "Continue");
}

/// Choose `item` in the combo box labelled `label` from the keyboard, as a clerk can: focus
/// the box, Space opens its list, focus the entry, Space takes it.
pub fn pick(h: &mut H, label: &str, item: &str) {
    h.get_by_label(label).focus();
    h.step();
    h.key_press(egui::Key::Space);
    for _ in 0..3 {
        h.step();
    }
    h.get_by_label(item).focus();
    h.step();
    h.key_press(egui::Key::Space);
    for _ in 0..3 {
        h.step();
    }
    assert!(
        !egui::Popup::is_any_open(&h.ctx),
        "{label}: the list closes once {item} is taken"
    );
}

/// Card services' New address as a clerk fills it: a temporary registration in Yunusobod
/// tumani, Toshkent shahri, at `street` `house`, until 31.12.2030; confirmed, and waited for.
pub fn add_temporary_address(h: &mut H, street: &str, house: &str) {
    open(h, "New address");
    click(h, "Temporary");
    pick(h, "Region", "Toshkent shahri");
    pick(h, "District", "Yunusobod tumani");
    type_into(h, "Street", street);
    type_into(h, "House", house);
    type_into(h, "Registered until", "31122030");
    click(h, "Confirm");
    wait_done(h, "The new address is recorded.");
}
