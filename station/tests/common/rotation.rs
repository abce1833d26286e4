//! The harness the CA-rotation end-to-end tests share (`cli_rotation.rs`, `cli_ds_rotation.rs`):
//! a data dir with ca-admins admin, bob (init's second), carol (enabled by dual-control
//! request 1) and a clerk, the `idstation` binary run as one of
//! them (every run checked for leaked passwords and the HSM PIN), and station.toml's
//! `[rotation]` settings. Included with `#[path = "common/rotation.rs"] mod rig;`, beside
//! `common/holder_pin.rs` (`mod holder_pin`) and `common/software_profiles.rs`
//! (`mod software_profiles`), which it uses.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

pub const HSM_PIN: &str = "hsm-pin-rot-5c2e81";
pub const PASSWORDS: &[(&str, &str)] = &[
    ("admin", "admin-password-rot-1"),
    ("bob", "bob-password-rot-22"),
    ("carol", "carol-password-rot-3"),
    ("clerk", "clerk-password-rot-4"),
];
// Eight digits: a six-digit PIN also turns up by chance as the microseconds of a log timestamp.
pub const PIN: &str = "48291637";
pub const PUK: &str = "73015528";

pub fn password(op: &str) -> &'static str {
    PASSWORDS
        .iter()
        .find(|(n, _)| *n == op)
        .map(|(_, p)| *p)
        .unwrap_or("no-such-operator-pw")
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn sh(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

pub fn sh_ok(cmd: &mut Command) -> Output {
    let o = sh(cmd);
    assert!(o.status.success(), "{cmd:?} failed:\n{}", text(&o));
    o
}

pub struct Station {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub data: PathBuf,
}

impl Station {
    /// A new data dir with ca-admins admin, bob, carol and a clerk.
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let data = dir.join("data");
        let s = Station {
            _tmp: tmp,
            dir,
            data,
        };
        // bob is the ceremony's second ca-admin; carol, a third, is added by admin and
        // enabled by bob's approval (dual control, docs/rotation.md).
        let o = s.cmd_new(
            "admin",
            &[
                "init",
                "--admin",
                "admin",
                "--second-admin",
                "bob",
                "--station",
                "rot",
            ],
            password("bob"),
        );
        assert!(o.status.success(), "{}", text(&o));
        // `ca issue` certifies openssl keys with the test profiles (the holder profiles are
        // the issuance job's alone).
        crate::software_profiles::install(&s.data);
        for (name, role) in [("carol", "ca-admin"), ("clerk", "clerk")] {
            let o = s.cmd_new(
                "admin",
                &[
                    "--json",
                    "operator",
                    "add",
                    "--name",
                    name,
                    "--role",
                    role,
                    "--operator",
                    "admin",
                ],
                password(name),
            );
            assert!(o.status.success(), "{}", text(&o));
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
            if let Some(id) = v["request"]["id"].as_i64() {
                s.ok(
                    "bob",
                    &["ca", "approve", &id.to_string(), "--operator", "bob"],
                );
            }
        }
        s
    }

    /// `idstation ARGS` as `op` with a new password (`operator add`, `passwd`; `init`'s second
    /// admin) as the second line of standard input.
    pub fn cmd_new(&self, op: &str, args: &[&str], new_password: &str) -> Output {
        self.run(args, &[password(op), new_password], &[])
    }

    /// `idstation ARGS` as `op` with `env` set (test-only switches such as a failpoint; never a
    /// secret).
    pub fn cmd_env(&self, op: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.run(args, &[password(op)], env)
    }

    fn run(&self, args: &[&str], secrets: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_idstation"));
        c.arg("--data-dir").arg(&self.data).args(args);
        c.env("IDSTATION_LOG", "debug");
        for (k, v) in env {
            c.env(k, v);
        }
        let o = crate::holder_pin::output(c, args, &self.dir, secrets, PIN);
        let all = text(&o);
        for (_, p) in PASSWORDS {
            assert!(
                !all.contains(p),
                "a password appeared in the output:\n{all}"
            );
        }
        assert!(
            !all.contains(&self.hsm_pin()),
            "the HSM PIN appeared:\n{all}"
        );
        o
    }

    /// The HSM user PIN `init` drew into `DATA/secrets/hsm-pin` (a placeholder before init).
    pub fn hsm_pin(&self) -> String {
        std::fs::read_to_string(self.data.join("secrets/hsm-pin"))
            .map(|p| p.trim().to_owned())
            .unwrap_or_else(|_| HSM_PIN.to_owned())
    }

    pub fn cmd(&self, op: &str, args: &[&str]) -> Output {
        self.cmd_env(op, args, &[])
    }

    pub fn ok(&self, op: &str, args: &[&str]) -> Output {
        let o = self.cmd(op, args);
        assert!(
            o.status.success(),
            "idstation {args:?} failed:\n{}",
            text(&o)
        );
        o
    }

    pub fn json(&self, op: &str, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let o = self.ok(op, &full);
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}):\n{}", text(&o)))
    }

    /// Refused with exit 6, the error naming `rule`.
    pub fn refused(&self, op: &str, args: &[&str], rule: &str) {
        let o = self.cmd(op, args);
        assert_eq!(o.status.code(), Some(6), "{args:?} by {op}:\n{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(rule),
            "{args:?} by {op}: expected {rule:?} in:\n{err}"
        );
    }

    pub fn registry(&self) -> registry::Registry {
        registry::Registry::open_read_only(self.data.join("registry.sqlite")).expect("registry")
    }

    pub fn set_rotation(&self, quorum: u32, expiry: u64) {
        let p = self.data.join("station.toml");
        let mut t = std::fs::read_to_string(&p).expect("station.toml");
        if let Some(i) = t.find("\n[rotation]") {
            t.truncate(i + 1);
        }
        t.push_str(&format!(
            "\n[rotation]\nquorum = {quorum}\nrequest_expiry_seconds = {expiry}\n"
        ));
        std::fs::write(&p, t).expect("write station.toml");
    }
}
