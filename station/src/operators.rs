//! Operators and roles (ARCHITECTURE "Roles"): clerk, ca-admin, auditor. Passwords are hashed
//! with argon2id (PHC strings in the registry); a password is read from `IDSTATION_PASSWORD` or
//! a prompt, held in a zeroizing buffer, and never logged, stored or echoed.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use registry::{Actor, Registry, Role};
use zeroize::Zeroizing;

use crate::error::StationError;

/// Minimum operator password length.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Hash a new operator password (argon2id, random salt).
pub fn hash_password(password: &str) -> Result<String, StationError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(StationError::invalid(
            "password",
            format!("must have at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    let mut salt_bytes = [0u8; 16];
    getrandom::fill(&mut salt_bytes)
        .map_err(|e| StationError::Other(format!("random salt: {e}")))?;
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| StationError::Other(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StationError::Other(format!("argon2: {e}")))
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// An operator who proved their password, acting from this station.
#[derive(Debug, Clone)]
pub struct Session {
    pub actor: Actor,
    pub role: Role,
}

/// Check `name`'s password and that their role is one of `allowed`. Every refusal (unknown
/// operator, wrong password, disabled, wrong role) is written to the audit log before the error
/// returns, and the error does not say which of name or password was wrong.
pub fn authorize(
    reg: &mut Registry,
    station: &str,
    name: &str,
    password: &Zeroizing<String>,
    action: &str,
    allowed: &[Role],
) -> Result<Session, StationError> {
    let op = reg.operator(name).map_err(StationError::from)?;
    let refuse = |reg: &mut Registry, role: &str, why: &str| -> StationError {
        // A caller may type anything as a name: the log and the message get a bounded one.
        let name = &bounded_name(name);
        let actor = Actor::new(name, role, station);
        let details = serde_json::json!({ "action": action, "reason": why });
        let audited = reg.audit(&registry::AuditEntry {
            actor: &actor,
            action: "operator.refused",
            object: &format!("operator:{name}"),
            details: &details,
        });
        if let Err(e) = audited {
            tracing::error!(error = %e, "could not audit a refusal");
        }
        StationError::NotPermitted(format!("{name}: {why}"))
    };
    let Some(op) = op else {
        // Spend the time a verification would take, so a missing name looks like a bad password.
        let _ = verify_password(password, DUMMY_HASH);
        return Err(refuse(reg, "unknown", "operator name or password is wrong"));
    };
    if !verify_password(password, &op.password_hash) {
        return Err(refuse(
            reg,
            op.role.as_str(),
            "operator name or password is wrong",
        ));
    }
    if !op.active {
        return Err(refuse(reg, op.role.as_str(), "operator is disabled"));
    }
    if !allowed.contains(&op.role) {
        let roles: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
        return Err(refuse(
            reg,
            op.role.as_str(),
            &format!(
                "role {} may not {action} (needs {})",
                op.role.as_str(),
                roles.join(" or ")
            ),
        ));
    }
    Ok(Session {
        actor: Actor::new(name, op.role.as_str(), station),
        role: op.role,
    })
}

/// Add an operator with `role` and a new password (hashed here), audited as `session`'s act.
pub fn add(
    reg: &mut Registry,
    session: &Session,
    name: &str,
    role: Role,
    password: &Zeroizing<String>,
) -> Result<(), StationError> {
    crate::config::check_name("name", name)?;
    let hash = hash_password(password)?;
    let tx = reg.transaction()?;
    tx.add_operator(name, role, &hash, Some(&session.actor))?;
    tx.audit(&registry::AuditEntry {
        actor: &session.actor,
        action: "operator.added",
        object: &format!("operator:{name}"),
        details: &serde_json::json!({ "role": role.as_str() }),
    })?;
    tx.commit()?;
    Ok(())
}

/// Disable an operator (ca-admin): it can no longer log in (`operator.refused`, exit 6). A
/// ca-admin cannot disable themself, so a station never loses its last administrator this way.
pub fn disable(reg: &mut Registry, session: &Session, name: &str) -> Result<(), StationError> {
    crate::config::check_name("name", name)?;
    if name == session.actor.operator {
        return Err(StationError::NotPermitted(format!(
            "{name} cannot disable themself; another ca-admin must do it"
        )));
    }
    let tx = reg.transaction()?;
    tx.set_operator_active(name, false)?;
    tx.audit(&registry::AuditEntry {
        actor: &session.actor,
        action: "operator.disabled",
        object: &format!("operator:{name}"),
        details: &serde_json::json!({}),
    })?;
    tx.commit()?;
    Ok(())
}

/// At most this many characters of a refused caller's name reach the audit log.
pub const MAX_LOGGED_NAME_CHARS: usize = 64;

/// `name` as a refusal records it: unchanged up to [`MAX_LOGGED_NAME_CHARS`] characters,
/// else its first 64 characters and `…(truncated, N bytes)` with the full length in bytes.
pub fn bounded_name(name: &str) -> String {
    match name.char_indices().nth(MAX_LOGGED_NAME_CHARS) {
        None => name.to_string(),
        Some((cut, _)) => format!("{}…(truncated, {} bytes)", &name[..cut], name.len()),
    }
}

// argon2id hash of a random password nobody knows, used to equalise timing for unknown names.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$0f1dOTtbq4dAX8LSq0vDr4g3Jp5bd6HsTWkm1nqvDqo";

/// Read a secret: from the environment variable `env`, else from a masked prompt on the
/// terminal (twice when `confirm`). Never from the command line.
pub fn read_secret(
    env: &str,
    prompt: &str,
    confirm: bool,
) -> Result<Zeroizing<String>, StationError> {
    if let Ok(v) = std::env::var(env) {
        return Ok(Zeroizing::new(v));
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(StationError::invalid(
            env,
            "is not set and there is no terminal to prompt on",
        ));
    }
    let first = Zeroizing::new(
        rpassword::prompt_password(format!("{prompt}: "))
            .map_err(|e| StationError::Other(format!("prompt: {e}")))?,
    );
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password(format!("{prompt} (again): "))
                .map_err(|e| StationError::Other(format!("prompt: {e}")))?,
        );
        if *first != *again {
            return Err(StationError::invalid(env, "the two entries differ"));
        }
    }
    Ok(first)
}

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
        assert!(
            e.to_string()
                .contains("password: must have at least 10 characters"),
            "{e}"
        );
    }

    #[test]
    fn refused_names_are_bounded_and_marked() {
        assert_eq!(bounded_name("clerk1"), "clerk1");
        let long = "é".repeat(5000);
        let b = bounded_name(&long);
        assert_eq!(b, format!("{}…(truncated, 10000 bytes)", "é".repeat(64)));
    }

    #[test]
    fn the_dummy_hash_is_a_valid_phc_string() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
