//! libFuzzer target for the host's secure-messaging response reader
//! (`personalization::bac::SmSession::unprotect`, ICAO Doc 9303-11 §9.8.6.2).
//!
//! The first input byte picks the mode:
//! - even: the rest is a response body as a card (or anyone on the wire) could send it; the
//!   reader must answer with `Ok` or `Err`, never panic, and accept nothing whose MAC fails;
//! - odd: the next byte is a length `t`; the rest is a response whose last `t` bytes are put
//!   after a genuine DO'8E' that the target computes over the bytes before it with the
//!   session's MAC key, so that the parsing and decryption behind the MAC check (DO'87',
//!   padding, DO'99') are reached. An accepted response must have nothing after DO'8E' and
//!   data shorter than its DO'87'.
//!
//! Run: see docs/personalization.md "Fuzzing".
#![no_main]

use libfuzzer_sys::fuzz_target;
use personalization::status::StatusWord;
use personalization::bac::{retail_mac, SmSession};

const KS_ENC: [u8; 16] = [
    0x97, 0x9E, 0xC1, 0x3B, 0x1C, 0xBF, 0xE9, 0xDC, 0xD0, 0x1A, 0xB0, 0xFE, 0xD3, 0x07, 0xEA, 0xE5,
];
const KS_MAC: [u8; 16] = [
    0xF1, 0xCB, 0x1F, 0x1F, 0xB5, 0xAD, 0xF2, 0x08, 0x80, 0x6B, 0x89, 0xDC, 0x57, 0x9D, 0xC1, 0xF8,
];
const SSC: u64 = 0x8870_2212_0C06_C227;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut s = SmSession::from_parts(KS_ENC, KS_MAC, SSC);
    if mode % 2 == 0 {
        if let Ok((plain, _)) = s.unprotect(rest, StatusWord::Ok) {
            // Only a response carrying a correct MAC over exactly what precedes DO'8E' opens;
            // random bytes that do are a MAC forgery, which must not happen.
            let mut n = (SSC + 1).to_be_bytes().to_vec();
            let end = rest.len() - 10;
            n.extend_from_slice(&rest[..end]);
            assert_eq!(&rest[end..end + 2], &[0x8E, 0x08], "DO'8E' is last");
            assert_eq!(retail_mac(&KS_MAC, &n)[..], rest[end + 2..], "MAC verified");
            assert!(plain.len() < rest.len());
        }
        assert_eq!(s.ssc(), SSC + 1);
        return;
    }
    let Some((&cut, rest)) = rest.split_first() else {
        return;
    };
    let (before, after) = rest.split_at(rest.len() - usize::from(cut).min(rest.len()));
    let mut n = (SSC + 1).to_be_bytes().to_vec();
    n.extend_from_slice(before);
    let mut body = before.to_vec();
    body.extend_from_slice(&[0x8E, 0x08]);
    body.extend_from_slice(&retail_mac(&KS_MAC, &n));
    body.extend_from_slice(after);
    if let Ok((plain, _sw)) = s.unprotect(&body, StatusWord::Ok) {
        // Nothing may follow DO'8E': the MAC does not cover it.
        assert!(after.is_empty(), "accepted {after:02X?} after DO'8E'");
        // Data comes only from a DO'87' before DO'8E', next to a DO'99': its header (3 bytes),
        // at least one byte of padding and DO'99' (4 bytes) are not data.
        assert!(plain.is_empty() || plain.len() + 8 <= before.len());
    }
    assert_eq!(s.ssc(), SSC + 1);
});
