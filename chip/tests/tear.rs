//! Card tearing: for every N over a full yubico-piv-tool personalization, `vchip --tear-after N`
//! drops the connection at APDU N+1 (both before and after executing it). The image must always
//! load, and the card must answer again when re-inserted. Fails (never skips) without pcscd,
//! vpcd, yubico-piv-tool and openssl.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn tool(program: &str, args: &[&str]) -> bool {
    tool_output(program, args).is_ok()
}

/// Runs `program`; `Err` with its exit status and output when it fails.
fn tool_output(program: &str, args: &[&str]) -> Result<(), String> {
    let o = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (install it)"));
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {args:?}: {}\n{}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// The personalization of issue 3, stopping at the first failing step. Returns the number of
/// steps that succeeded.
/// How far the personalization got (5 = all of it), and the failing tool's output.
fn personalize(reader: &str, dir: &Path) -> (usize, String) {
    let pubkey = dir.join("pub.pem");
    let anykey = dir.join("any.key");
    let csr = dir.join("x.csr");
    let cert = dir.join("cert.pem");
    let _ = std::fs::remove_file(&pubkey);
    if let Err(e) = tool_output(
        "yubico-piv-tool",
        &[
            "-r",
            reader,
            "-a",
            "generate",
            "-s",
            "9c",
            "-A",
            "ECCP256",
            "-o",
            p(&pubkey),
        ],
    ) {
        return (0, e);
    }
    assert!(tool(
        "openssl",
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-out",
            p(&anykey)
        ]
    ));
    assert!(tool(
        "openssl",
        &[
            "req",
            "-new",
            "-key",
            p(&anykey),
            "-subj",
            "/CN=Tear",
            "-out",
            p(&csr)
        ]
    ));
    assert!(tool(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            p(&csr),
            "-signkey",
            p(&anykey),
            "-force_pubkey",
            p(&pubkey),
            "-days",
            "3",
            "-out",
            p(&cert)
        ]
    ));
    let steps: [&[&str]; 4] = [
        &["-a", "import-certificate", "-s", "9c", "-i", p(&cert)],
        &["-a", "set-chuid"],
        &["-a", "change-pin", "-P", "123456", "-N", "654321"],
        &["-a", "change-puk", "-P", "12345678", "-N", "87654321"],
    ];
    for (i, step) in steps.iter().enumerate() {
        let mut args = vec!["-r", reader];
        args.extend_from_slice(step);
        if let Err(e) = tool_output("yubico-piv-tool", &args) {
            return (i + 1, e);
        }
    }
    (steps.len() + 1, String::new())
}

fn tear_every_apdu(after_processing: bool) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("card.img");
    let slot = testrig::Slot::lease();
    let reader = slot.reader_name.clone();
    let mut n = 0u64;
    loop {
        chip::Card::new_blank(1000 + n as u32)
            .unwrap()
            .save(&img)
            .unwrap();
        let n_text = n.to_string();
        let mut args = vec!["--tear-after", n_text.as_str()];
        if after_processing {
            args.push("--tear-after-processing");
        }
        let mut card = slot.insert(&img, &args);
        let (done, failed) = personalize(&reader, dir.path());
        if done == 5 {
            // The whole personalization fit in N APDUs: every tear point has been covered.
            assert!(
                card.is_running(),
                "N={n}: personalization completed but vchip ended"
            );
            card.pull();
            assert!(n > 20, "a personalization is more than 20 APDUs (N={n})");
            eprintln!("covered every tear point: the personalization is {n} APDUs");
            break;
        }
        let status = card
            .wait_removed(Duration::from_secs(10))
            .unwrap_or_else(|e| {
                panic!("N={n}: {e}; the tool stopped at step {done} without a tear: {failed}")
            });
        assert!(status.success(), "N={n}: vchip exit {status}");
        // The image is never corrupt...
        let loaded = chip::Card::load(&img).unwrap_or_else(|e| panic!("N={n}: image corrupt: {e}"));
        assert_eq!(loaded.serial(), 1000 + n as u32);
        // ...and the card answers again when re-inserted.
        let again = slot.insert(&img, &[]);
        assert!(
            tool("yubico-piv-tool", &["-r", &reader, "-a", "status"]),
            "N={n}: re-inserted card does not answer"
        );
        again.pull();
        n += 1;
        assert!(n < 1000, "runaway: no personalization completed");
    }
}

#[test]
fn tearing_before_any_apdu_of_a_personalization_never_corrupts_the_card() {
    tear_every_apdu(false);
}

#[test]
fn tearing_after_executing_any_apdu_of_a_personalization_never_corrupts_the_card() {
    tear_every_apdu(true);
}
