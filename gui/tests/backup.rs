//! The registry backup in the CA administrator's workspace (docs/gui.md "CA-admin workspace"),
//! against the real registry file and SoftHSM2 token: the file named, "Back up the registry"
//! writes a private copy that Debian's `sqlite3` reads whole, the backup is audited as the
//! administrator's, and a second backup to the same file is refused in plain words with nothing
//! overwritten. Own process: the audit log's events are this file's.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;
use egui_kittest::kittest::Queryable;

#[test]
fn a_ca_administrator_backs_up_the_registry_from_the_workspace() {
    let dir = rig().dir.join("backups");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let file = dir.join("registry.sqlite");
    let mut h = harness(options(None, false), [1600.0, 1400.0]);
    log_in(&mut h, "admin", ADMIN_PASSWORD, "CA administration");
    wait_for(
        &mut h,
        "the workspace loaded",
        Duration::from_secs(30),
        |h| has_label(h, "Registry backup") && !h.state().busy(),
    );
    h.get_by_label("Back up the registry").scroll_to_me();
    h.step();
    h.step();
    type_into(&mut h, "Backup file", &file.display().to_string());
    click(&mut h, "Back up the registry");
    wait_for(&mut h, "the backup", Duration::from_secs(30), |h| {
        has_label_containing(h, "Backed up to") && !h.state().busy()
    });
    assert_eq!(
        std::fs::metadata(&file)
            .expect("backup")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let sqlite = |sql: &str| {
        let o = std::process::Command::new("sqlite3")
            .arg(&file)
            .arg(sql)
            .output()
            .expect("sqlite3 (Debian sqlite3)");
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    assert_eq!(sqlite("PRAGMA integrity_check"), "ok");
    assert_eq!(sqlite("SELECT count(*) FROM operators"), "5");
    let audited = registry::Registry::open_read_only(rig().data.join("registry.sqlite"))
        .expect("registry")
        .audit_events(1, u64::MAX)
        .expect("audit")
        .into_iter()
        .filter(|e| e.action == "registry.backed-up")
        .map(|e| e.operator)
        .collect::<Vec<_>>();
    assert_eq!(audited, ["admin"]);

    // The same file again: refused, said in plain words, the copy left as it was.
    let before = std::fs::read(&file).expect("read");
    click(&mut h, "Back up the registry");
    wait_for(&mut h, "the refusal", Duration::from_secs(30), |h| {
        !has_label_containing(h, "Backed up to") && !h.state().busy()
    });
    assert!(has_label_containing(
        &h,
        "Backup file: the station does not accept this value."
    ));
    assert_eq!(std::fs::read(&file).expect("read"), before);
}
