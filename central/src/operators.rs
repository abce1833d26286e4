//! The centre's operators (ca-admin, auditor) and their log-in, with the station's rules: argon2id
//! passwords (`registry::passwords`), one answer for every refused log-in, a lock after
//! [`MAX_FAILED_LOGINS`] wrong passwords in a row, and every refusal in the audit log.

use deadpool_postgres::Pool;
use zeroize::Zeroizing;

use crate::audit::{self, Actor};
use crate::error::{CentralError, Result};

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
        .query_opt(
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
            tx.execute(
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
        let needed: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
        return Err(CentralError::NotPermitted(format!(
            "{name} is a {}; {action} needs the role {}",
            role.as_str(),
            needed.join(" or ")
        )));
    }
    if failed > 0 {
        tx.execute(
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
        .query(
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
