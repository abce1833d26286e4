//! Operators and roles (ARCHITECTURE "Roles"): clerk, ca-admin, auditor. The operator commands
//! (add, disable, enable, change role, unlock, change password, list; a ca-admin change goes
//! through a dual-control request in [`crate::rotation`]); passwords are read by
//! [`crate::secret_input`], log-in, sessions and role checks are [`crate::session`]'s.
//! A password is held in a zeroizing buffer and never logged, stored or echoed.

use registry::{Registry, Role};
use zeroize::Zeroizing;

use crate::error::StationError;
use crate::session::refuse_session;
pub use crate::session::{
    authorize, bounded_name, hash_password, require, require_current, Session,
    MAX_LOGGED_NAME_CHARS, MIN_PASSWORD_CHARS, WRONG_LOGIN,
};

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
    if name == session.actor().operator {
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
    tx.add_operator(name, role, &hash, Some(session.actor()))?;
    if pending {
        tx.set_operator_active(name, false)?;
    }
    tx.audit(&registry::AuditEntry {
        actor: session.actor(),
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
        actor: session.actor(),
        action: "operator.disabled",
        object: &format!("operator:{name}"),
        details: &serde_json::json!({}),
    })?;
    tx.commit()?;
    Ok(())
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
        actor: session.actor(),
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
        actor: session.actor(),
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
        actor: session.actor(),
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
    let name = name.unwrap_or(&session.actor().operator).to_owned();
    let own = name == session.actor().operator;
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
        actor: session.actor(),
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
