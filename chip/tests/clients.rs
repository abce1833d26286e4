//! The virtual card through real pcscd + vpcd with clients we did not write: yubico-piv-tool
//! personalizes it, OpenSC (pkcs15-tool, pkcs11-tool) reads and signs, openssl verifies.
//! Needs the Debian packages pcscd, vsmartcard-vpcd, opensc, yubico-piv-tool and openssl;
//! fails (never skips) without them.

use std::path::{Path, PathBuf};
use std::process::Command;

const PKCS11: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";

fn opensc_conf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/opensc.conf")
}

/// Run a tool; returns (success, stdout+stderr).
fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .env("OPENSC_CONF", opensc_conf())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (install it)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ok(program: &str, args: &[&str]) -> String {
    let (success, text) = run(program, args);
    assert!(success, "{program} {args:?} failed:\n{text}");
    text
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// yubico-piv-tool personalization as in issue 3: transport key, generate P-256 in 9C,
/// import an openssl-made certificate around the public key, CHUID, new PIN and PUK.
fn personalize_with_yubico_piv_tool(reader: &str, dir: &Path) -> PathBuf {
    let pubkey = dir.join("pub.pem");
    let anykey = dir.join("any.key");
    let csr = dir.join("x.csr");
    let cert = dir.join("cert.pem");
    ok(
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
            path(&pubkey),
        ],
    );
    // yubico-piv-tool's selfsign fails before any APDU under OpenSSL 3 (Yubico/yubico-piv-tool
    // #388): make the certificate with openssl around the card's public key.
    ok(
        "openssl",
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-out",
            path(&anykey),
        ],
    );
    ok(
        "openssl",
        &[
            "req",
            "-new",
            "-key",
            path(&anykey),
            "-subj",
            "/CN=Test Holder/serialNumber=PNOUZ-1",
            "-out",
            path(&csr),
        ],
    );
    ok(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            path(&csr),
            "-signkey",
            path(&anykey),
            "-force_pubkey",
            path(&pubkey),
            "-days",
            "30",
            "-out",
            path(&cert),
        ],
    );
    ok(
        "yubico-piv-tool",
        &[
            "-r",
            reader,
            "-a",
            "import-certificate",
            "-s",
            "9c",
            "-i",
            path(&cert),
        ],
    );
    ok("yubico-piv-tool", &["-r", reader, "-a", "set-chuid"]);
    ok(
        "yubico-piv-tool",
        &[
            "-r",
            reader,
            "-a",
            "change-pin",
            "-P",
            "123456",
            "-N",
            "654321",
        ],
    );
    ok(
        "yubico-piv-tool",
        &[
            "-r",
            reader,
            "-a",
            "change-puk",
            "-P",
            "12345678",
            "-N",
            "87654321",
        ],
    );
    cert
}

/// Sign SHA-256(msg) with pkcs11-tool (ECDSA, key id 02 = slot 9C) and verify with openssl.
fn sign_with_pkcs11_and_verify(reader: &str, pin: &str, dir: &Path, cert: &Path) {
    let msg = dir.join("msg.txt");
    let hash = dir.join("msg.sha256");
    let sig = dir.join("msg.sig");
    let certpub = dir.join("certpub.pem");
    std::fs::write(&msg, b"idstation qualified signature test\n").unwrap();
    ok(
        "openssl",
        &[
            "dgst",
            "-sha256",
            "-binary",
            "-out",
            path(&hash),
            path(&msg),
        ],
    );
    let _ = std::fs::remove_file(&sig);
    ok(
        "pkcs11-tool",
        &[
            "--module",
            PKCS11,
            "--slot-description",
            reader,
            "--login",
            "-p",
            pin,
            "--sign",
            "--mechanism",
            "ECDSA",
            "--id",
            "02",
            "--signature-format",
            "openssl",
            "-i",
            path(&hash),
            "-o",
            path(&sig),
        ],
    );
    ok(
        "openssl",
        &[
            "x509",
            "-in",
            path(cert),
            "-noout",
            "-pubkey",
            "-out",
            path(&certpub),
        ],
    );
    let out = ok(
        "openssl",
        &[
            "dgst",
            "-sha256",
            "-verify",
            path(&certpub),
            "-signature",
            path(&sig),
            path(&msg),
        ],
    );
    assert!(out.contains("Verified OK"), "{out}");
}

#[test]
fn yubico_piv_tool_personalizes_then_opensc_lists_and_signs_and_puk_unblocks() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("card.img");
    chip::Card::new_blank(0x0A0B0C0D)
        .unwrap()
        .save(&img)
        .unwrap();
    let slot = testrig::Slot::lease();
    let _card = slot.insert(&img, &[]);
    let r = slot.reader_name.as_str();

    let cert = personalize_with_yubico_piv_tool(r, dir.path());
    let status = ok("yubico-piv-tool", &["-r", r, "-a", "status"]);
    assert!(status.contains("Serial Number:\t168496141"), "{status}");
    assert!(status.contains("Slot 9c"), "{status}");

    // OpenSC sees a PIV card with the certificate.
    let certs = ok("pkcs15-tool", &["--reader", r, "--list-certificates"]);
    assert!(
        certs.contains("Certificate for Digital Signature"),
        "{certs}"
    );
    let objs = ok(
        "pkcs11-tool",
        &[
            "--module",
            PKCS11,
            "--slot-description",
            r,
            "--login",
            "-p",
            "654321",
            "--list-objects",
        ],
    );
    assert!(objs.contains("Private Key Object; EC"), "{objs}");
    assert!(
        objs.contains("always authenticate"),
        "9C needs the PIN per signature: {objs}"
    );
    assert!(
        objs.contains("Certificate Object; type = X.509 cert"),
        "{objs}"
    );
    assert!(objs.contains("CN=Test Holder"), "{objs}");
    sign_with_pkcs11_and_verify(r, "654321", dir.path(), &cert);

    // Wrong PIN three times blocks, the PUK unblocks.
    for _ in 0..3 {
        let (success, _) = run(
            "yubico-piv-tool",
            &["-r", r, "-a", "verify-pin", "-P", "000000"],
        );
        assert!(!success);
    }
    let (success, text) = run(
        "yubico-piv-tool",
        &["-r", r, "-a", "verify-pin", "-P", "654321"],
    );
    assert!(
        !success && text.to_lowercase().contains("blocked"),
        "{text}"
    );
    ok(
        "yubico-piv-tool",
        &[
            "-r",
            r,
            "-a",
            "unblock-pin",
            "-P",
            "87654321",
            "-N",
            "112233",
        ],
    );
    ok(
        "yubico-piv-tool",
        &["-r", r, "-a", "verify-pin", "-P", "112233"],
    );
    sign_with_pkcs11_and_verify(r, "112233", dir.path(), &cert);
}

/// LOCK through PC/SC with our own host code (the clients have no lock command): management key
/// mutual authentication with the transport 3DES key, then `00 44 00 00`.
fn lock_card(reader: &str) {
    use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
    let ctx = pcsc::Context::establish(pcsc::Scope::User).unwrap();
    let name = std::ffi::CString::new(reader).unwrap();
    let card = ctx
        .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::T1)
        .unwrap();
    let mut buf = [0u8; 300];
    let mut tx = |apdu: &[u8]| card.transmit(apdu, &mut buf).unwrap().to_vec();
    assert!(
        tx(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08]).ends_with(&[0x90, 0x00])
    );
    let key = des::TdesEde3::new_from_slice(&chip::mgmt::TRANSPORT_MGMT_KEY).unwrap();
    let r = tx(&[0x00, 0x87, 0x03, 0x9B, 0x04, 0x7C, 0x02, 0x80, 0x00]);
    assert_eq!(&r[r.len() - 2..], &[0x90, 0x00]);
    let mut witness = des::cipher::Array::try_from(&r[4..12]).unwrap();
    key.decrypt_block(&mut witness);
    let challenge = [0x21u8; 8];
    let mut apdu = vec![0x00, 0x87, 0x03, 0x9B, 0x16, 0x7C, 0x14, 0x80, 0x08];
    apdu.extend_from_slice(&witness);
    apdu.extend_from_slice(&[0x81, 0x08]);
    apdu.extend_from_slice(&challenge);
    let r = tx(&apdu);
    assert_eq!(&r[r.len() - 2..], &[0x90, 0x00]);
    let mut expect = des::cipher::Array::from(challenge);
    key.encrypt_block(&mut expect);
    assert_eq!(&r[4..12], &expect[..]);
    assert_eq!(tx(&[0x00, 0x44, 0x00, 0x00]), vec![0x90, 0x00]);
    assert_eq!(
        tx(&[0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xFF, 0x20, 0x00]),
        vec![0x53, 0x01, 0x02, 0x90, 0x00]
    );
}

#[test]
fn after_lock_put_data_and_generate_are_refused_while_pin_change_and_signing_work() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("card.img");
    chip::Card::new_blank(77).unwrap().save(&img).unwrap();
    let slot = testrig::Slot::lease();
    let _card = slot.insert(&img, &[]);
    let r = slot.reader_name.as_str();
    let cert = personalize_with_yubico_piv_tool(r, dir.path());
    lock_card(r);

    let (success, text) = run(
        "yubico-piv-tool",
        &["-r", r, "-a", "generate", "-s", "9a", "-A", "ECCP256"],
    );
    assert!(!success, "GENERATE after lock must fail: {text}");
    let (success, text) = run("yubico-piv-tool", &["-r", r, "-a", "set-chuid"]);
    assert!(!success, "PUT DATA after lock must fail: {text}");
    let (success, text) = run(
        "yubico-piv-tool",
        &[
            "-r",
            r,
            "-a",
            "import-certificate",
            "-s",
            "9c",
            "-i",
            path(&cert),
        ],
    );
    assert!(!success, "certificate import after lock must fail: {text}");

    ok(
        "yubico-piv-tool",
        &["-r", r, "-a", "change-pin", "-P", "654321", "-N", "135790"],
    );
    sign_with_pkcs11_and_verify(r, "135790", dir.path(), &cert);
    let shown = ok(env!("CARGO_BIN_EXE_vchip"), &["show", path(&img)]);
    assert!(shown.contains("lifecycle:  locked"), "{shown}");
    assert!(
        !shown.contains("135790") && !shown.contains("313335373930"),
        "PIN leaked: {shown}"
    );
}
