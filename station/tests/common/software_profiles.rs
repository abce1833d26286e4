//! Test profiles `software-holder-sign` and `software-holder-auth` (station/tests/fixtures/profiles):
//! the holder profiles with `key_origin = "any"`, so that `ca issue` may certify an openssl key
//! with them. The real holder profiles certify only keys generated on a card by the issuance
//! job, and `ca issue` refuses them. Included with
//! `#[path = "common/software_profiles.rs"] mod software_profiles;`.
#![allow(dead_code)]

use std::path::Path;

/// Install the test profiles into `data`'s profile override directory (`[profiles] dir`).
pub fn install(data: &Path) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/profiles/cert");
    let dir = data.join("test-profiles/cert");
    std::fs::create_dir_all(&dir).expect("profile dir");
    for name in ["software-holder-sign.toml", "software-holder-auth.toml"] {
        std::fs::copy(fixtures.join(name), dir.join(name)).expect("copy test profile");
    }
    let cfg_path = data.join("station.toml");
    let cfg = std::fs::read_to_string(&cfg_path).expect("station.toml");
    assert!(cfg.contains("[profiles]\n"), "{cfg}");
    std::fs::write(
        &cfg_path,
        cfg.replace("[profiles]\n", "[profiles]\ndir = \"test-profiles\"\n"),
    )
    .expect("station.toml");
}
