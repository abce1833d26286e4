//! Operator sessions (ARCHITECTURE "Roles"): logging an operator in with an argon2id-hashed
//! password (PHC strings in the registry), and checking on every command that the session's
//! operator still holds a role it needs. A password is held in a zeroizing buffer and never
//! logged, stored or echoed.

use registry::passwords::{verify_password, DUMMY_HASH};
use registry::{Actor, Registry, Role};
use zeroize::Zeroizing;

use crate::error::StationError;

pub use registry::passwords::MIN_PASSWORD_CHARS;

/// Hash a new operator password ([`registry::passwords::hash_password`]: argon2id, random
/// salt, the rule the centre keeps too); a password that breaks the rule is an invalid
/// `password`, like any other bad input.
pub fn hash_password(password: &str) -> Result<String, StationError> {
    registry::passwords::hash_password(password).map_err(|e| match e {
        registry::Error::Password(rule) => StationError::invalid("password", rule),
        e => e.into(),
    })
}

/// An operator who proved their password, acting from this station.
///
/// A `Session` is made only by a successful log-in ([`authorize`]): its fields are private and
/// it has no public constructor, so library code cannot be handed a session with a role
/// nobody logged in with. This does not compile:
///
/// ```compile_fail,E0451
/// let forged = station::operators::Session {
///     actor: registry::Actor::new("mallory", "ca-admin", "station-1"),
///     role: registry::Role::CaAdmin,
/// };
/// ```
#[derive(Debug, Clone)]
pub struct Session {
    actor: Actor,
    role: Role,
}

impl Session {
    /// Who acts, as the audit log records them.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }
    /// The role the operator logged in with.
    pub fn role(&self) -> Role {
        self.role
    }
    /// The operator's name.
    pub fn operator(&self) -> &str {
        &self.actor.operator
    }
}

/// What every refusal at log-in answers, whatever the reason (unknown name, wrong password,
/// disabled or locked account): the caller cannot tell which.
pub const WRONG_LOGIN: &str = "operator name or password is wrong";

/// Check `name`'s password and that their role is one of `allowed`. Every refusal (unknown
/// operator, wrong password, disabled, locked, wrong role) is written to the audit log before
/// the error returns. Unknown name, wrong password, a disabled and a locked account all answer
/// [`WRONG_LOGIN`] (exit 6) after the same work (one argon2 verification, one counter update,
/// one audit event); the audit event says which it was. The account locks after
/// [`registry::MAX_FAILED_LOGINS`] wrong passwords in a row, until a ca-admin unlocks it.
pub fn authorize(
    reg: &mut Registry,
    station: &str,
    name: &str,
    password: &Zeroizing<String>,
    action: &str,
    allowed: &[Role],
) -> Result<Session, StationError> {
    let op = reg.operator(name).map_err(StationError::from)?;
    let refuse = |reg: &mut Registry, role: &str, why: &str, shown: &str| -> StationError {
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
        StationError::NotPermitted(format!("{name}: {shown}"))
    };
    let Some(op) = op else {
        // Spend the time a verification would take, so a missing name looks like a bad password.
        let _ = verify_password(password, DUMMY_HASH);
        let _ = reg.write(|tx| tx.count_failed_login(name, false));
        return Err(refuse(reg, "unknown", WRONG_LOGIN, WRONG_LOGIN));
    };
    let right = verify_password(password, &op.password_hash);
    // The same statement on every path; it counts only a wrong password.
    let (count, locked) = reg.write(|tx| tx.count_failed_login(name, !right))?;
    if !right {
        if locked && !op.locked {
            let audited = reg.audit(&registry::AuditEntry {
                actor: &Actor::new(name, op.role.as_str(), station),
                action: "operator.locked",
                object: &format!("operator:{name}"),
                details: &serde_json::json!({ "failed_logins": count }),
            });
            if let Err(e) = audited {
                tracing::error!(error = %e, "could not audit a lock");
            }
        }
        let why = format!(
            "{WRONG_LOGIN}: wrong password, {count} in a row (the account locks at {})",
            registry::MAX_FAILED_LOGINS
        );
        return Err(refuse(reg, op.role.as_str(), &why, WRONG_LOGIN));
    }
    if op.locked {
        let why = format!(
            "account locked after {} wrong passwords; a ca-admin must unlock it",
            registry::MAX_FAILED_LOGINS
        );
        return Err(refuse(reg, op.role.as_str(), &why, WRONG_LOGIN));
    }
    if !op.active {
        return Err(refuse(
            reg,
            op.role.as_str(),
            "operator is disabled",
            WRONG_LOGIN,
        ));
    }
    if !allowed.contains(&op.role) {
        let roles: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
        let why = format!(
            "role {} may not {action} (needs {})",
            op.role.as_str(),
            roles.join(" or ")
        );
        return Err(refuse(reg, op.role.as_str(), &why, &why));
    }
    if op.failed_logins > 0 {
        reg.write(|tx| tx.reset_failed_logins(name))?;
    }
    Ok(Session {
        actor: Actor::new(name, op.role.as_str(), station),
        role: op.role,
    })
}

/// Refuse unless `session`'s role is one of `roles`; a refusal is audited
/// (`operator.refused`) like a refused log-in. Every library function that changes state or
/// reads personal data calls this (or [`require_current`]) itself.
pub fn require(
    reg: &mut Registry,
    session: &Session,
    action: &str,
    roles: &[Role],
) -> Result<(), StationError> {
    if roles.contains(&session.role) {
        return Ok(());
    }
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    let why = format!(
        "role {} may not {action} (needs {})",
        session.role.as_str(),
        names.join(" or ")
    );
    refuse_session(reg, session, action, &why);
    Err(StationError::NotPermitted(format!(
        "{}: {why}",
        session.actor.operator
    )))
}

/// [`require`], after checking that the session's account is still what it was at log-in:
/// it exists, is enabled and not locked, and has the same role. A long-lived session (the
/// GUI) calls this before every action, so that disabling an operator or changing their role
/// takes effect at their next click. A stale session is refused like a wrong password.
pub fn require_current(
    reg: &mut Registry,
    session: &Session,
    action: &str,
    roles: &[Role],
) -> Result<(), StationError> {
    let op = reg.operator(&session.actor.operator)?;
    let stale = match &op {
        None => Some("operator no longer exists".to_string()),
        Some(o) if !o.active => Some("operator is disabled".into()),
        Some(o) if o.locked => Some("account is locked".into()),
        Some(o) if o.role != session.role => Some(format!(
            "role changed from {} to {} since log-in",
            session.role.as_str(),
            o.role.as_str()
        )),
        Some(_) => None,
    };
    if let Some(why) = stale {
        refuse_session(reg, session, action, &format!("session ended: {why}"));
        return Err(StationError::NotPermitted(format!(
            "{}: {WRONG_LOGIN}",
            session.actor.operator
        )));
    }
    require(reg, session, action, roles)
}

pub(crate) fn refuse_session(reg: &mut Registry, session: &Session, action: &str, why: &str) {
    let audited = reg.audit(&registry::AuditEntry {
        actor: &session.actor,
        action: "operator.refused",
        object: &format!("operator:{}", session.actor.operator),
        details: &serde_json::json!({ "action": action, "reason": why }),
    });
    if let Err(e) = audited {
        tracing::error!(error = %e, "could not audit a refusal");
    }
}

pub use registry::audit::{bounded_name, MAX_LOGGED_NAME_CHARS};

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
}
