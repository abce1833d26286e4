//! The centre's operators (ca-admin, auditor) and their log-in, with the station's rules: argon2id
//! passwords (`registry::passwords`), one answer for every refused log-in, a lock after
//! [`MAX_FAILED_LOGINS`] wrong passwords in a row, and every refusal in the audit log.
//!
//! The operator commands keep the station's rules: only a ca-admin changes operators, never
//! themself (another ca-admin must); a new or re-enabled ca-admin needs a second ca-admin's
//! approval given at once (dual control: both log in); the last active ca-admin cannot be
//! disabled; a password is changed only by its owner. Each change and each refusal is audited.

use crate::db::Prepared;
use deadpool_postgres::Pool;
use zeroize::Zeroizing;

use crate::audit::{self, Actor};
use crate::error::{CentralError, Refusal, Result};
use centre_api::{roles, rules, WhoAmI};

/// Wrong passwords in a row after which an account is locked.
pub const MAX_FAILED_LOGINS: i32 = 5;

/// The roles of the centre's operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    CaAdmin,
    Auditor,
}

impl Role {
    /// The stored and printed form.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::CaAdmin => "ca-admin",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "ca-admin" => Some(Role::CaAdmin),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }
}

/// An operator who proved their password. Made only by [`log_in`].
#[derive(Debug, Clone)]
pub struct Session {
    actor: Actor,
    role: Role,
}

impl Session {
    pub fn actor(&self) -> &Actor {
        &self.actor
    }
    pub fn role(&self) -> Role {
        self.role
    }
    /// The library's own role check, behind the one [`log_in`] made: refused unless this
    /// operator's role is one of `roles`.
    pub fn require(&self, roles: &[Role], action: &str) -> Result<()> {
        if roles.contains(&self.role) {
            return Ok(());
        }
        Err(role_refusal(&self.actor.operator, self.role, action, roles))
    }
}

/// `NAME is a ROLE; ACTION needs the role A or B`: what a refused role is told.
fn role_refusal(name: &str, role: Role, action: &str, allowed: &[Role]) -> CentralError {
    let needed: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
    CentralError::NotPermitted(format!(
        "{name} is a {}; {action} needs the role {}",
        role.as_str(),
        needed.join(" or ")
    ))
}

/// Operator names: 1–64 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn check_name(field: &'static str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(CentralError::invalid(
            field,
            format!(
                "{:?} must be 1-64 of a-z 0-9 . _ - starting with a letter or digit",
                registry::audit::bounded_name(name)
            ),
        ))
    }
}

/// Log `name` in for `action`, which needs one of `allowed`. Every refusal is audited (as
/// `operator.refused`, with the reason) and answered alike for a wrong name, a wrong password, a
/// disabled and a locked account.
pub async fn log_in(
    pool: &Pool,
    centre: &str,
    name: &str,
    password: &Zeroizing<String>,
    action: &str,
    allowed: &[Role],
) -> Result<Session> {
    let mut client = pool.get().await?;
    let row = client
        .prepared_opt(
            "SELECT role, password_hash, active, failed_logins FROM operators WHERE name = $1",
            &[&name],
        )
        .await?;
    let (role, phc, active, failed): (Option<String>, String, bool, i32) = match &row {
        Some(r) => (Some(r.get(0)), r.get(1), r.get(2), r.get(3)),
        None => (None, registry::passwords::DUMMY_HASH.to_owned(), false, 0),
    };
    let password_ok = registry::passwords::verify_password(password, &phc);
    let refused = |reason: &str| serde_json::json!({ "action": action, "reason": reason });
    let tx = client.transaction().await?;
    let who = Actor {
        operator: registry::audit::bounded_name(name),
        role: role.clone().unwrap_or_else(|| "unknown".into()),
        station: centre.to_owned(),
    };
    let reason = match (&role, password_ok, active, failed >= MAX_FAILED_LOGINS) {
        (None, ..) => Some("unknown operator"),
        (Some(_), _, _, true) => Some("account locked"),
        (Some(_), false, _, _) => Some("wrong password"),
        (Some(_), true, false, _) => Some("account disabled"),
        (Some(_), true, true, false) => None,
    };
    if let Some(reason) = reason {
        if reason == "wrong password" {
            tx.prepared_execute(
                "UPDATE operators SET failed_logins = failed_logins + 1 WHERE name = $1",
                &[&name],
            )
            .await?;
        }
        audit::append(
            &tx,
            &who,
            "operator.refused",
            &format!("operator:{}", who.operator),
            &refused(reason),
        )
        .await?;
        tx.commit().await?;
        return Err(CentralError::NotPermitted(format!(
            "{}: operator name or password is wrong",
            registry::audit::bounded_name(name)
        )));
    }
    let role = role
        .as_deref()
        .and_then(Role::parse)
        .ok_or_else(|| CentralError::Database(format!("operator {name} has an unknown role")))?;
    if !allowed.contains(&role) {
        audit::append(
            &tx,
            &who,
            "operator.refused",
            &format!("operator:{name}"),
            &refused("role"),
        )
        .await?;
        tx.commit().await?;
        return Err(role_refusal(name, role, action, allowed));
    }
    if failed > 0 {
        tx.prepared_execute(
            "UPDATE operators SET failed_logins = 0 WHERE name = $1",
            &[&name],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Session {
        actor: Actor {
            operator: name.to_owned(),
            role: role.as_str().to_owned(),
            station: centre.to_owned(),
        },
        role,
    })
}

/// One operator as `operator list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OperatorInfo {
    pub name: String,
    pub role: String,
    pub active: bool,
    pub locked: bool,
}

pub async fn list(pool: &Pool) -> Result<Vec<OperatorInfo>> {
    let client = pool.get().await?;
    let rows = client
        .prepared_query(
            "SELECT name, role, active, failed_logins FROM operators ORDER BY name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| OperatorInfo {
            name: r.get(0),
            role: r.get(1),
            active: r.get(2),
            locked: r.get::<_, i32>(3) >= MAX_FAILED_LOGINS,
        })
        .collect())
}

/// What adding or enabling an operator did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    pub name: String,
    pub role: String,
    pub active: bool,
    /// The second ca-admin who approved it (a ca-admin added or enabled).
    pub approved_by: Option<String>,
}

/// Record a refusal of `session`'s `action` (its own transaction: the refused change rolled
/// back) and return it as [`CentralError::NotPermitted`] or `err`.
async fn refuse(
    pool: &Pool,
    session: &Session,
    action: &str,
    object: &str,
    reason: &str,
    err: CentralError,
) -> CentralError {
    let log = async {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        audit::append(
            &tx,
            session.actor(),
            "operator.refused",
            object,
            &serde_json::json!({ "action": action, "reason": reason }),
        )
        .await?;
        tx.commit().await?;
        Ok::<_, CentralError>(())
    };
    if let Err(e) = log.await {
        tracing::error!(error = %e, "could not audit a refusal");
    }
    err
}

/// The dual-control rule for a ca-admin: `approver` is a second ca-admin who logged in too.
async fn check_approval(
    pool: &Pool,
    session: &Session,
    approver: Option<&Session>,
    action: &str,
    name: &str,
) -> Result<Option<String>> {
    let object = format!("operator:{name}");
    match approver {
        None => {
            let why = format!(
                "{action} {name} as a ca-admin needs a second ca-admin's approval (dual control): give --approved-by"
            );
            let e = CentralError::invalid("approved-by", why.clone());
            Err(refuse(pool, session, action, &object, "no second ca-admin", e).await)
        }
        Some(a) if a.actor().operator == session.actor().operator || a.actor().operator == name => {
            let why = format!(
                "approved-by: {} cannot approve this; dual control needs a second ca-admin, neither the one acting nor {name}",
                a.actor().operator
            );
            Err(refuse(
                pool,
                session,
                action,
                &object,
                "approver not a second ca-admin",
                CentralError::NotPermitted(why),
            )
            .await)
        }
        Some(a) if a.role() != Role::CaAdmin => {
            let why = format!(
                "approved-by: {} is a {}; only a ca-admin may approve a ca-admin",
                a.actor().operator,
                a.role().as_str()
            );
            Err(refuse(
                pool,
                session,
                action,
                &object,
                "approver not a ca-admin",
                CentralError::NotPermitted(why),
            )
            .await)
        }
        Some(a) => Ok(Some(a.actor().operator.clone())),
    }
}

/// `session` (a ca-admin) acting on `name`: not on themself.
async fn other_operator(pool: &Pool, session: &Session, name: &str, action: &str) -> Result<()> {
    check_name("name", name)?;
    if name == session.actor().operator {
        let why = format!("{name} cannot {action} themself; another ca-admin must do it");
        let e = CentralError::NotPermitted(why);
        return Err(refuse(
            pool,
            session,
            action,
            &format!("operator:{name}"),
            "oneself",
            e,
        )
        .await);
    }
    Ok(())
}

/// Inside `tx`: every operator (name, role, active), their rows locked so that concurrent
/// changes go one after the other.
async fn lock_operators(
    tx: &tokio_postgres::Transaction<'_>,
) -> Result<Vec<(String, String, bool)>> {
    let rows = tx
        .query(
            "SELECT name, role, active FROM operators ORDER BY name FOR UPDATE",
            &[],
        )
        .await?;
    let all: Vec<(String, String, bool)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    Ok(all)
}

/// `session`'s operator is still an active operator of its role (a session made before another
/// ca-admin disabled them does not act).
fn still_current(
    all: &[(String, String, bool)],
    session: &Session,
) -> std::result::Result<(), String> {
    let me = &session.actor().operator;
    match all.iter().find(|(n, _, _)| n == me) {
        Some((_, role, true)) if role == session.role().as_str() => Ok(()),
        _ => Err(format!(
            "{me} is no longer an active {}: log in again",
            session.role().as_str()
        )),
    }
}

/// [`still_current`] inside `tx`; a refusal ends `tx` (its row locks) before it is audited.
async fn require_current<T>(
    pool: &Pool,
    tx: T,
    all: &[(String, String, bool)],
    session: &Session,
    action: &str,
    name: &str,
) -> Result<T> {
    match still_current(all, session) {
        Ok(()) => Ok(tx),
        Err(why) => {
            drop(tx);
            let e = CentralError::NotPermitted(why);
            let object = format!("operator:{name}");
            Err(refuse(
                pool,
                session,
                action,
                &object,
                "session no longer current",
                e,
            )
            .await)
        }
    }
}

/// Add operator `name` with `role` and `password` (hashed here). `session` must be a ca-admin;
/// a new ca-admin also needs `approver`, a second ca-admin (dual control).
pub async fn add(
    pool: &Pool,
    session: &Session,
    name: &str,
    role: Role,
    password: &Zeroizing<String>,
    approver: Option<&Session>,
) -> Result<Change> {
    check_name("name", name)?;
    let approved_by = if role == Role::CaAdmin {
        check_approval(pool, session, approver, "add", name).await?
    } else {
        None
    };
    let hash = hash_password(password)?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let all = lock_operators(&tx).await?;
    let tx = require_current(pool, tx, &all, session, "add", name).await?;
    if all.iter().any(|(n, _, _)| n == name) {
        return Err(CentralError::Conflict(format!(
            "operator {name} already exists"
        )));
    }
    tx.prepared_execute(
        "INSERT INTO operators (name, role, password_hash) VALUES ($1, $2, $3)",
        &[&name, &role.as_str(), &hash],
    )
    .await?;
    audit::append(
        &tx,
        session.actor(),
        "operator.added",
        &format!("operator:{name}"),
        &serde_json::json!({ "role": role.as_str(), "approved_by": approved_by }),
    )
    .await?;
    tx.commit().await?;
    Ok(Change {
        name: name.to_owned(),
        role: role.as_str().to_owned(),
        active: true,
        approved_by,
    })
}

/// Disable `name` (ca-admin, not oneself): it can no longer log in. The last active ca-admin
/// is never disabled.
pub async fn disable(pool: &Pool, session: &Session, name: &str) -> Result<()> {
    other_operator(pool, session, name, "disable").await?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let all = lock_operators(&tx).await?;
    let Some((_, role, active)) = all.iter().find(|(n, _, _)| n == name) else {
        return Err(CentralError::NotFound(format!(
            "operator {name} does not exist"
        )));
    };
    if !active {
        return Err(CentralError::Conflict(format!(
            "operator {name} is already disabled"
        )));
    }
    let others = all
        .iter()
        .filter(|(n, r, a)| n != name && r == Role::CaAdmin.as_str() && *a)
        .count();
    if role == Role::CaAdmin.as_str() && others == 0 {
        drop(tx);
        let why = format!(
            "{name} is the last active ca-admin; the centre must keep one (enable or add another first)"
        );
        let e = CentralError::Conflict(why);
        return Err(refuse(
            pool,
            session,
            "disable",
            &format!("operator:{name}"),
            "last active ca-admin",
            e,
        )
        .await);
    }
    let tx = require_current(pool, tx, &all, session, "disable", name).await?;
    tx.prepared_execute(
        "UPDATE operators SET active = FALSE WHERE name = $1",
        &[&name],
    )
    .await?;
    audit::append(
        &tx,
        session.actor(),
        "operator.disabled",
        &format!("operator:{name}"),
        &serde_json::json!({ "role": role }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Enable a disabled operator (ca-admin, not oneself); a ca-admin only with `approver`, a
/// second ca-admin (dual control).
pub async fn enable(
    pool: &Pool,
    session: &Session,
    name: &str,
    approver: Option<&Session>,
) -> Result<Change> {
    other_operator(pool, session, name, "enable").await?;
    let role = {
        let client = pool.get().await?;
        let row = client
            .prepared_opt("SELECT role FROM operators WHERE name = $1", &[&name])
            .await?
            .ok_or_else(|| CentralError::NotFound(format!("operator {name} does not exist")))?;
        row.get::<_, String>(0)
    };
    let approved_by = if role == Role::CaAdmin.as_str() {
        check_approval(pool, session, approver, "enable", name).await?
    } else {
        None
    };
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let all = lock_operators(&tx).await?;
    let tx = require_current(pool, tx, &all, session, "enable", name).await?;
    match all.iter().find(|(n, _, _)| n == name) {
        None => {
            return Err(CentralError::NotFound(format!(
                "operator {name} does not exist"
            )))
        }
        Some((_, _, true)) => {
            return Err(CentralError::Conflict(format!(
                "operator {name} is already enabled"
            )))
        }
        Some((_, r, false)) if *r != role => {
            return Err(CentralError::Conflict(format!(
                "operator {name} changed role while this ran; try again"
            )))
        }
        Some(_) => {}
    }
    tx.prepared_execute(
        "UPDATE operators SET active = TRUE WHERE name = $1",
        &[&name],
    )
    .await?;
    audit::append(
        &tx,
        session.actor(),
        "operator.enabled",
        &format!("operator:{name}"),
        &serde_json::json!({ "role": role, "approved_by": approved_by }),
    )
    .await?;
    tx.commit().await?;
    Ok(Change {
        name: name.to_owned(),
        role,
        active: true,
        approved_by,
    })
}

/// Unlock `name` after wrong passwords (ca-admin, not oneself): its count starts again.
pub async fn unlock(pool: &Pool, session: &Session, name: &str) -> Result<()> {
    other_operator(pool, session, name, "unlock").await?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let all = lock_operators(&tx).await?;
    let tx = require_current(pool, tx, &all, session, "unlock", name).await?;
    let row = tx
        .prepared_opt(
            "SELECT failed_logins FROM operators WHERE name = $1",
            &[&name],
        )
        .await?
        .ok_or_else(|| CentralError::NotFound(format!("operator {name} does not exist")))?;
    let failed: i32 = row.get(0);
    tx.prepared_execute(
        "UPDATE operators SET failed_logins = 0 WHERE name = $1",
        &[&name],
    )
    .await?;
    audit::append(
        &tx,
        session.actor(),
        "operator.unlocked",
        &format!("operator:{name}"),
        &serde_json::json!({ "was_locked": failed >= MAX_FAILED_LOGINS, "failed_logins": failed }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Change `session`'s own password (any role; the log-in proved the old one).
pub async fn change_password(
    pool: &Pool,
    session: &Session,
    new_password: &Zeroizing<String>,
) -> Result<()> {
    let hash = hash_password(new_password)?;
    let me = &session.actor().operator;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let n = tx
        .prepared_execute(
            "UPDATE operators SET password_hash = $2 WHERE name = $1 AND active",
            &[me, &hash],
        )
        .await?;
    if n != 1 {
        return Err(CentralError::NotPermitted(format!(
            "{me}: operator name or password is wrong"
        )));
    }
    audit::append(
        &tx,
        session.actor(),
        "operator.password-changed",
        &format!("operator:{me}"),
        &serde_json::json!({ "own": true }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A new password hashed ([`registry::passwords::hash_password`]); one that breaks the rule is
/// an invalid `password`.
fn hash_password(password: &Zeroizing<String>) -> Result<String> {
    registry::passwords::hash_password(password).map_err(|e| match e {
        registry::Error::Password(rule) => CentralError::invalid("password", rule),
        e => CentralError::Other(e.to_string()),
    })
}

/// The station's operator as the audit log names them, after the name and role rules: the
/// operator-name rule (`operator: …`, 400), a known station role (`role: …`, 400), and one of
/// `allowed` (`operator-role-not-permitted`, 403).
pub(crate) fn station_operator(
    who: &WhoAmI,
    operator: &str,
    role: &str,
    action: &str,
    allowed: &[&str],
) -> Result<Actor> {
    check_name("operator", operator)?;
    if ![roles::CA_ADMIN, roles::AUDITOR, roles::CLERK].contains(&role) {
        return Err(CentralError::invalid(
            "role",
            format!(
                "{:?} must be one of ca-admin, auditor, clerk",
                registry::audit::bounded_name(role)
            ),
        ));
    }
    if !allowed.contains(&role) {
        return Err(CentralError::refused(
            Refusal::Forbidden,
            rules::OPERATOR_ROLE_NOT_PERMITTED,
            format!(
                "role: a {role} may not {action} at the centre (only {})",
                allowed.join(" or ")
            ),
        ));
    }
    Ok(Actor {
        operator: operator.to_owned(),
        role: role.to_owned(),
        station: who.station.clone(),
    })
}
