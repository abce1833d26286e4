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

fn refuse_session(reg: &mut Registry, session: &Session, action: &str, why: &str) {
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

/// What adding, enabling or changing the role of an operator did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    pub name: String,
    pub role: String,
    /// `active`, `disabled`, or `pending` (a ca-admin waiting for another ca-admin's approval).
    pub state: String,
    /// The dual-control request that must be approved first (a ca-admin).
    pub request: Option<crate::rotation::RequestView>,
}

fn other_operator(
    reg: &mut Registry,
    session: &Session,
    name: &str,
    action: &str,
) -> Result<registry::Operator, StationError> {
    crate::config::check_name("name", name)?;
    if name == session.actor.operator {
        let why = format!("{name} cannot {action} themself; another ca-admin must do it");
        refuse_session(reg, session, action, &why);
        return Err(StationError::NotPermitted(why));
    }
    reg.operator(name)?
        .ok_or_else(|| StationError::NotFound(format!("operator {name}")))
}

/// Add an operator with `role` and a new password (hashed here), audited as `session`'s act
/// (ca-admin). A clerk or auditor is active at once. A ca-admin is added disabled and a
/// dual-control request (`operator-add`, see [`crate::rotation`]) is filed: it becomes active
/// only when another ca-admin, who already held the role when the request was filed,
/// approves it (`ca approve N`).
pub fn add(
    st: &mut crate::Station,
    session: &Session,
    name: &str,
    role: Role,
    password: &Zeroizing<String>,
) -> Result<Change, StationError> {
    require_current(&mut st.registry, session, "add operators", &[Role::CaAdmin])?;
    crate::config::check_name("name", name)?;
    let hash = hash_password(password)?;
    let pending = role == Role::CaAdmin;
    let tx = st.registry.transaction()?;
    tx.add_operator(name, role, &hash, Some(&session.actor))?;
    if pending {
        tx.set_operator_active(name, false)?;
    }
    tx.audit(&registry::AuditEntry {
        actor: &session.actor,
        action: "operator.added",
        object: &format!("operator:{name}"),
        details: &serde_json::json!({ "role": role.as_str(), "active": !pending }),
    })?;
    tx.commit()?;
    let request = if pending {
        Some(crate::rotation::request_operator_change(
            st,
            session,
            crate::rotation::KIND_OPERATOR_ADD,
            name,
            role,
        )?)
    } else {
        None
    };
    Ok(Change {
        name: name.into(),
        role: role.as_str().into(),
        state: if pending { "pending" } else { "active" }.into(),
        request,
    })
}

/// Disable an operator (ca-admin): it can no longer log in (answered like a wrong password,
/// exit 6). A ca-admin cannot disable themself, so a station never loses its last
/// administrator this way.
pub fn disable(st: &mut crate::Station, session: &Session, name: &str) -> Result<(), StationError> {
    require_current(
        &mut st.registry,
        session,
        "disable operators",
        &[Role::CaAdmin],
    )?;
    other_operator(&mut st.registry, session, name, "disable")?;
    let tx = st.registry.transaction()?;
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

/// Enable a disabled operator (ca-admin, not oneself). A clerk or auditor is enabled at once;
/// a ca-admin only through a dual-control request (`operator-enable`) another ca-admin approves.
pub fn enable(
    st: &mut crate::Station,
    session: &Session,
    name: &str,
) -> Result<Change, StationError> {
    require_current(
        &mut st.registry,
        session,
        "enable operators",
        &[Role::CaAdmin],
    )?;
    let op = other_operator(&mut st.registry, session, name, "enable")?;
    if op.active {
        return Err(StationError::Conflict(format!(
            "operator {name} is already enabled"
        )));
    }
    if op.role == Role::CaAdmin {
        let r = crate::rotation::request_operator_change(
            st,
            session,
            crate::rotation::KIND_OPERATOR_ENABLE,
            name,
            op.role,
        )?;
        return Ok(Change {
            name: name.into(),
            role: op.role.as_str().into(),
            state: "pending".into(),
            request: Some(r),
        });
    }
    let tx = st.registry.transaction()?;
    tx.set_operator_active(name, true)?;
    tx.audit(&registry::AuditEntry {
        actor: &session.actor,
        action: "operator.enabled",
        object: &format!("operator:{name}"),
        details: &serde_json::json!({ "role": op.role.as_str() }),
    })?;
    tx.commit()?;
    Ok(Change {
        name: name.into(),
        role: op.role.as_str().into(),
        state: "active".into(),
        request: None,
    })
}

/// Give an operator another role (ca-admin, not oneself). Between clerk and auditor it takes
/// effect at once; to or from ca-admin only through a dual-control request (`operator-role`).
pub fn set_role(
    st: &mut crate::Station,
    session: &Session,
    name: &str,
    role: Role,
) -> Result<Change, StationError> {
    require_current(
        &mut st.registry,
        session,
        "change operator roles",
        &[Role::CaAdmin],
    )?;
    let op = other_operator(&mut st.registry, session, name, "change the role of")?;
    if op.role == role {
        return Err(StationError::Conflict(format!(
            "operator {name} already has role {}",
            role.as_str()
        )));
    }
    if op.role == Role::CaAdmin || role == Role::CaAdmin {
        let r = crate::rotation::request_operator_change(
            st,
            session,
            crate::rotation::KIND_OPERATOR_ROLE,
            name,
            role,
        )?;
        return Ok(Change {
            name: name.into(),
            role: op.role.as_str().into(),
            state: "pending".into(),
            request: Some(r),
        });
    }
    let tx = st.registry.transaction()?;
    tx.set_operator_role(name, role)?;
    tx.audit(&registry::AuditEntry {
        actor: &session.actor,
        action: "operator.role-changed",
        object: &format!("operator:{name}"),
        details: &serde_json::json!({ "from": op.role.as_str(), "to": role.as_str() }),
    })?;
    tx.commit()?;
    Ok(Change {
        name: name.into(),
        role: role.as_str().into(),
        state: if op.active { "active" } else { "disabled" }.into(),
        request: None,
    })
}

/// Unlock an operator locked by wrong passwords (ca-admin, not oneself).
pub fn unlock(st: &mut crate::Station, session: &Session, name: &str) -> Result<(), StationError> {
    require_current(
        &mut st.registry,
        session,
        "unlock operators",
        &[Role::CaAdmin],
    )?;
    let op = other_operator(&mut st.registry, session, name, "unlock")?;
    let tx = st.registry.transaction()?;
    tx.unlock_operator(name)?;
    tx.audit(&registry::AuditEntry {
        actor: &session.actor,
        action: "operator.unlocked",
        object: &format!("operator:{name}"),
        details: &serde_json::json!({ "was_locked": op.locked, "failed_logins": op.failed_logins }),
    })?;
    tx.commit()?;
    Ok(())
}

/// Change a password: one's own (any role, after logging in with the old one), or, for a
/// ca-admin, reset a clerk's or an auditor's. Another ca-admin's password is never reset by a
/// ca-admin: that would let one administrator act as two.
pub fn passwd(
    st: &mut crate::Station,
    session: &Session,
    name: Option<&str>,
    new_password: &Zeroizing<String>,
) -> Result<String, StationError> {
    let name = name.unwrap_or(&session.actor.operator).to_owned();
    let own = name == session.actor.operator;
    if own {
        require_current(
            &mut st.registry,
            session,
            "change their password",
            &[Role::Clerk, Role::CaAdmin, Role::Auditor],
        )?;
    } else {
        require_current(
            &mut st.registry,
            session,
            "reset another operator's password",
            &[Role::CaAdmin],
        )?;
        crate::config::check_name("name", &name)?;
        let op = st
            .registry
            .operator(&name)?
            .ok_or_else(|| StationError::NotFound(format!("operator {name}")))?;
        if op.role == Role::CaAdmin {
            let why = format!(
                "{name} is a ca-admin: only {name} can change their password (one ca-admin must not be able to act as two)"
            );
            refuse_session(&mut st.registry, session, "reset a password", &why);
            return Err(StationError::NotPermitted(why));
        }
    }
    let hash = hash_password(new_password)?;
    let tx = st.registry.transaction()?;
    tx.set_operator_password(&name, &hash)?;
    tx.audit(&registry::AuditEntry {
        actor: &session.actor,
        action: "operator.password-changed",
        object: &format!("operator:{name}"),
        details: &serde_json::json!({ "own": own }),
    })?;
    tx.commit()?;
    Ok(name)
}

/// An operator as `operator list` shows it (no password hash).
#[derive(Debug, Clone, serde::Serialize)]
pub struct OperatorView {
    pub name: String,
    pub role: String,
    /// `active`, `disabled` or `locked`.
    pub state: String,
    pub active: bool,
    pub locked: bool,
    pub created_at: String,
    pub role_since: String,
}

/// Every operator (ca-admin or auditor).
pub fn list(st: &mut crate::Station, session: &Session) -> Result<Vec<OperatorView>, StationError> {
    require_current(
        &mut st.registry,
        session,
        "list operators",
        &[Role::CaAdmin, Role::Auditor],
    )?;
    Ok(st
        .registry
        .operators()?
        .into_iter()
        .map(|o| OperatorView {
            state: if o.locked {
                "locked"
            } else if o.active {
                "active"
            } else {
                "disabled"
            }
            .into(),
            name: o.name,
            role: o.role.as_str().into(),
            active: o.active,
            locked: o.locked,
            created_at: o.created_at,
            role_since: o.role_since,
        })
        .collect())
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
