//! Many processes on one SoftHSM2 token at once never see a spurious HSM error.
//!
//! Eight lanes run side by side; each lane starts 25 processes one after another, and each
//! process does one round of what a station process does: load the module (`C_Initialize`
//! enumerates the tokens), find the token, open a session and log in (SoftHSM2 rewrites
//! `token.object` at every log-in), sign with a shared key, create an object (generate a key
//! pair: new object files), close. Before the cross-process token lock, a process whose
//! `C_Initialize` read `token.object` while another rewrote it lost the token for its whole
//! life ("HSM token not found"); see `hsm/src/pkcs11/token_lock.rs` for the cause in
//! SoftHSM2's source.
//!
//! The child is this test binary again (the ignored test `child_round`), told what to do by
//! environment variables that hold no secret; the user PIN reaches it on standard input.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hsm::pkcs11::SoftHsm2Token;
use hsm::KeyStore;
use zeroize::Zeroizing;

const LANES: usize = 8;
const ROUNDS: usize = 25;
const SO_PIN: &str = "contention-so-7d1c";
const USER_PIN: &str = "contention-user-5e2b";
const SHARED_KEY: &str = "shared-signing-key";
/// One round takes tens of milliseconds; a child still running after this is hung.
const CHILD_LIMIT: Duration = Duration::from_secs(60);

const ENV_DIR: &str = "IDSTATION_CONTENTION_DIR";
const ENV_LABEL: &str = "IDSTATION_CONTENTION_LABEL";
const ENV_ROUND: &str = "IDSTATION_CONTENTION_ROUND";

#[test]
fn eight_processes_times_25_rounds_on_one_token_never_fail() {
    // The process's own token dir (cargo's runner sets SOFTHSM2_CONF); the children are
    // started with the same configuration.
    let dir = SoftHsm2Token::process_dir().expect("run through cargo (scripts/cargo-runner.sh)");
    let label = "contention";
    let token = SoftHsm2Token::create(&dir, label, SO_PIN, USER_PIN).expect("initialise token");
    {
        let store = token
            .open(Zeroizing::new(USER_PIN.to_owned()))
            .expect("open token");
        store.generate_p256(SHARED_KEY).expect("shared key");
    }

    let exe = std::env::current_exe().expect("test binary path");
    let started = Instant::now();
    let lanes: Vec<_> = (0..LANES)
        .map(|lane| {
            let exe = exe.clone();
            let dir = dir.clone();
            std::thread::spawn(move || {
                (0..ROUNDS)
                    .filter_map(|round| one_round(&exe, &dir, label, lane * ROUNDS + round).err())
                    .collect::<Vec<String>>()
            })
        })
        .collect();
    let failures: Vec<String> = lanes
        .into_iter()
        .flat_map(|h| h.join().expect("lane thread"))
        .collect();
    let took = started.elapsed();
    eprintln!(
        "{} rounds in {LANES} lanes took {:.1} s, {} failed",
        LANES * ROUNDS,
        took.as_secs_f64(),
        failures.len()
    );
    for f in &failures {
        eprintln!("FAILED {f}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} rounds failed (each listed above)",
        failures.len(),
        LANES * ROUNDS
    );

    // Every round's key is there, and the token still opens and signs.
    let store = token
        .open(Zeroizing::new(USER_PIN.to_owned()))
        .expect("open token after the storm");
    let keys = store.list().expect("list keys");
    assert_eq!(
        keys.len(),
        1 + LANES * ROUNDS,
        "one key per round + the shared one"
    );
    store
        .sign_p256_sha256(SHARED_KEY, b"after")
        .expect("sign after the storm");
}

/// Start one child process for `round` and wait for it; `Err` with its output if it failed.
fn one_round(exe: &Path, dir: &Path, label: &str, round: usize) -> Result<(), String> {
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "child_round",
            "--ignored",
            "--nocapture",
            "--quiet",
        ])
        .env(ENV_DIR, dir)
        .env(ENV_LABEL, label)
        .env(ENV_ROUND, round.to_string())
        .env("SOFTHSM2_CONF", dir.join("softhsm2.conf"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("round {round}: cannot start: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(USER_PIN.as_bytes())
            .map_err(|e| format!("round {round}: cannot hand over the PIN: {e}"))?;
    }
    let deadline = Instant::now() + CHILD_LIMIT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("round {round}: hung past {CHILD_LIMIT:?}"));
            }
            Err(e) => return Err(format!("round {round}: wait: {e}")),
        }
    };
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut out);
    }
    if status.success() && out.contains("ROUND-OK") {
        Ok(())
    } else {
        // The child's panic message is the line after "panicked at".
        let why = out
            .lines()
            .skip_while(|l| !l.contains("panicked at"))
            .nth(1)
            .unwrap_or(out.trim());
        Err(format!("round {round}: {status}: {why}"))
    }
}

/// The child half: one round on the token named by the environment. Run only by the test
/// above, as a separate process.
#[test]
#[ignore = "the child process of eight_processes_times_25_rounds_on_one_token_never_fail"]
fn child_round() {
    let dir = PathBuf::from(std::env::var(ENV_DIR).expect("run by the parent test"));
    let label = std::env::var(ENV_LABEL).expect("label");
    let round = std::env::var(ENV_ROUND).expect("round");
    let mut pin = Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut pin)
        .expect("PIN on stdin");
    let token = SoftHsm2Token::at(&dir, &label);
    let store = match token.open(pin) {
        Ok(s) => s,
        Err(e) => panic!("open and log in: {e}"),
    };
    if let Err(e) = store.sign_p256_sha256(SHARED_KEY, round.as_bytes()) {
        panic!("sign: {e}");
    }
    let own = format!("round-{round}");
    if let Err(e) = store.generate_p256(&own) {
        panic!("create object: {e}");
    }
    drop(store);
    println!("ROUND-OK");
}
