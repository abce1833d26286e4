//! Operator passwords: argon2id PHC strings (RFC 9106 with the `argon2` crate's defaults),
//! shared by the station and the centre so that both keep one rule and one format.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::{Error, Result};

/// The shortest password an operator may choose.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// The argon2id PHC string of `password` with a fresh random salt; a password shorter than
/// [`MIN_PASSWORD_CHARS`] is refused naming the rule.
pub fn hash_password(password: &str) -> Result<String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::Password(format!(
            "must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    let mut salt_bytes = [0u8; 16];
    getrandom::fill(&mut salt_bytes).map_err(|e| Error::Password(format!("random salt: {e}")))?;
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| Error::Password(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Password(format!("argon2: {e}")))
}

/// Whether `password` matches the PHC string `phc` (false for a malformed `phc`).
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// argon2id hash of a random password nobody knows: verifying against it makes a log-in with an
/// unknown name cost what a wrong password costs.
pub const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$0f1dOTtbq4dAX8LSq0vDr4g3Jp5bd6HsTWkm1nqvDqo";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_short_passwords_are_refused() {
        let h = hash_password("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!h.contains("correct"));
        let e = hash_password("short").expect_err("too short");
        assert_eq!(e.to_string(), "password: must have at least 10 characters");
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
