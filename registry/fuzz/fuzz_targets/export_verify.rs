//! libFuzzer target for the offline export verifier (`registry::export::verify_export_files`,
//! docs/audit-format.md section 7): everything an auditor is handed — the root certificate,
//! manifest.json, manifest.sig, chain.pem, the events file, a CRL and a previous head — is
//! untrusted input. The verifier must answer `Ok` or `Err`, never panic or hang, and anything
//! it accepts must be internally consistent (count, sequence range).
//!
//! Input: parts separated by `SEP`: root, manifest.json, manifest.sig, chain.pem, the events
//! file (under whatever name the manifest gives), then optionally a CRL and a previous head
//! (`<seq> <64 hex digits>`). The seed corpus holds a genuine export of a fresh data dir.
//!
//! Run: `scripts/fuzz.sh` (all targets, bounded), or `cd registry/fuzz && cargo +nightly fuzz
//! run export_verify`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use registry::export::{verify_export_files, VerifyChecks};

const SEP: &[u8] = b"\n--idstation-fuzz-part--\n";

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(SEP.len()).position(|w| w == SEP) {
        parts.push(&rest[..i]);
        rest = &rest[i + SEP.len()..];
    }
    parts.push(rest);
    parts
}

fn previous(b: &[u8]) -> Option<(u64, [u8; 32])> {
    let s = std::str::from_utf8(b).ok()?;
    let (seq, hash) = s.trim().split_once(' ')?;
    let mut h = [0u8; 32];
    let bytes: Vec<u8> = (0..hash.len())
        .step_by(2)
        .map(|i| hash.get(i..i + 2).and_then(|x| u8::from_str_radix(x, 16).ok()))
        .collect::<Option<_>>()?;
    if bytes.len() != 32 {
        return None;
    }
    h.copy_from_slice(&bytes);
    Some((seq.parse().ok()?, h))
}

fuzz_target!(|data: &[u8]| {
    let parts = split(data);
    if parts.len() < 5 {
        return;
    }
    let (root, manifest, sig, chain, events) = (parts[0], parts[1], parts[2], parts[3], parts[4]);
    let checks = VerifyChecks {
        crls: parts
            .get(5)
            .filter(|c| !c.is_empty())
            .map(|c| vec![("fuzz.crl".to_string(), c.to_vec())])
            .unwrap_or_default(),
        previous: parts.get(6).and_then(|p| previous(p)),
    };
    let load = |name: &str| -> registry::Result<Vec<u8>> {
        Ok(match name {
            "manifest.json" => manifest.to_vec(),
            "manifest.sig" => sig.to_vec(),
            "chain.pem" => chain.to_vec(),
            _ => events.to_vec(),
        })
    };
    if let Ok(r) = verify_export_files(&load, root, &checks) {
        if r.count > 0 {
            assert_eq!(r.last_seq + 1 - r.first_seq, r.count, "accepted range and count agree");
        }
    }
});
