//! The audit log's encodings (normative text: `docs/audit-format.md`): the bytes an event's
//! SHA-256 (FIPS 180-4) hash covers, each field length-prefixed and chained to the previous
//! event's hash; the bytes a checkpoint signature covers; and the canonical JSON of an event's
//! details (RFC 8259 §7 strings, minimal escaping), which refuses keys that name a secret.

use sha2::{Digest, Sha256};

use super::{CHECKPOINT_DOMAIN, EVENT_DOMAIN};
use crate::{Error, Result};

/// Keys that must never appear in details (secrets are never logged).
const SECRET_KEYS: &[&str] = &[
    "pin",
    "puk",
    "password",
    "passphrase",
    "management_key",
    "mgmt_key",
    "hsm_pin",
    "so_pin",
    "user_pin",
];

/// SHA-256 of the canonical encoding of one event:
/// `field(EVENT_DOMAIN) ‖ u64be(seq) ‖ field(time) ‖ field(operator) ‖ field(role) ‖
/// field(station) ‖ field(action) ‖ field(object) ‖ field(details) ‖ prev_hash`,
/// where `field(x) = u32be(len(x)) ‖ x` (UTF-8 bytes).
pub fn event_hash(seq: u64, fields: [&str; 7], prev_hash: &[u8; 32]) -> [u8; 32] {
    EventHasher::default().hash(seq, fields.map(str::as_bytes), prev_hash)
}

/// Reusable encoder for [`event_hash`]: builds the encoding in one buffer and hashes it in one
/// call (much faster than many small `update`s when verifying millions of events).
#[derive(Default)]
pub struct EventHasher {
    buf: Vec<u8>,
}

impl EventHasher {
    /// `fields` are the UTF-8 bytes of time, operator, role, station, action, object, details.
    pub fn hash(&mut self, seq: u64, fields: [&[u8]; 7], prev_hash: &[u8]) -> [u8; 32] {
        let b = &mut self.buf;
        b.clear();
        b.extend_from_slice(&(EVENT_DOMAIN.len() as u32).to_be_bytes());
        b.extend_from_slice(EVENT_DOMAIN.as_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        for f in fields {
            b.extend_from_slice(&(f.len() as u32).to_be_bytes());
            b.extend_from_slice(f);
        }
        b.extend_from_slice(prev_hash);
        Sha256::digest(&b[..]).into()
    }
}

/// The bytes a checkpoint signature covers:
/// `field(CHECKPOINT_DOMAIN) ‖ u64be(seq) ‖ hash ‖ field(time)`.
pub fn checkpoint_message(seq: u64, hash: &[u8; 32], time: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(4 + CHECKPOINT_DOMAIN.len() + 8 + 32 + 4 + time.len());
    m.extend_from_slice(&(CHECKPOINT_DOMAIN.len() as u32).to_be_bytes());
    m.extend_from_slice(CHECKPOINT_DOMAIN.as_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m.extend_from_slice(&(time.len() as u32).to_be_bytes());
    m.extend_from_slice(time.as_bytes());
    m
}

/// Canonical JSON: no whitespace, object keys sorted by their UTF-8 bytes, strings escaped as
/// JSON requires and nothing more (`"` `\` and U+0000..U+001F, the latter as `\b \f \n \r \t`
/// or `\u00xx`), integers in plain decimal; floating-point numbers are refused. Keys naming a
/// secret (`pin`, `puk`, `password`, `management_key`, ...) are refused anywhere in the value.
pub fn canonical_json(v: &serde_json::Value) -> Result<String> {
    let mut out = String::new();
    write_canonical(v, &mut out)?;
    Ok(out)
}

fn write_canonical(v: &serde_json::Value, out: &mut String) -> Result<()> {
    use serde_json::Value;
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else {
                return Err(Error::invalid(
                    "details",
                    n.to_string(),
                    "floating-point numbers are not allowed in canonical JSON (use an integer or a string)",
                ));
            }
        }
        Value::String(s) => json_string(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out)?;
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if SECRET_KEYS.contains(&k.to_ascii_lowercase().as_str()) {
                    return Err(Error::invalid(
                        "details",
                        k.as_str(),
                        "secrets (PIN, PUK, passwords, keys) are never recorded",
                    ));
                }
                if i > 0 {
                    out.push(',');
                }
                json_string(k, out);
                out.push(':');
                // Key exists: taken from the map's own keys.
                if let Some(x) = m.get(k) {
                    write_canonical(x, out)?;
                }
            }
            out.push('}');
        }
    }
    Ok(())
}

/// Append `s` as a JSON string literal (RFC 8259 §7, minimal escaping).
pub(crate) fn json_string(s: &str, out: &mut String) {
    out.push('"');
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(s);
    } else {
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\u{08}' => out.push_str("\\b"),
                '\u{0c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
    }
    out.push('"');
}
