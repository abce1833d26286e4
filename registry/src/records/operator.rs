//! Operators: role, Argon2 password hash, enabled state and the lock after failed log-ins.

use rusqlite::{params, OptionalExtension, Row};

use super::unique_conflict;
use crate::{now_rfc3339, validate, Actor, Error, Registry, Result, Tx};

/// Operator roles (ARCHITECTURE "Roles").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Clerk,
    CaAdmin,
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Clerk => "clerk",
            Role::CaAdmin => "ca-admin",
            Role::Auditor => "auditor",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "clerk" => Role::Clerk,
            "ca-admin" => Role::CaAdmin,
            "auditor" => Role::Auditor,
            _ => {
                return Err(Error::invalid(
                    "role",
                    s,
                    "must be clerk, ca-admin or auditor",
                ))
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// argon2 PHC string (`$argon2id$...`); never a password.
    pub password_hash: String,
    pub active: bool,
    pub created_at: String,
    pub created_by: Option<String>,
    /// Wrong passwords since the last successful log-in.
    pub failed_logins: u32,
    /// Locked after [`MAX_FAILED_LOGINS`] wrong passwords, until a ca-admin unlocks it.
    pub locked: bool,
    /// Since when the operator holds `role` as an enabled account (created, enabled or given
    /// the role); RFC 3339 UTC like every registry time.
    pub role_since: String,
}

/// Wrong passwords in a row that lock an operator account.
pub const MAX_FAILED_LOGINS: u32 = 5;

fn operator_from_row(r: &Row<'_>) -> rusqlite::Result<Operator> {
    let role: String = r.get(2)?;
    Ok(Operator {
        id: r.get(0)?,
        name: r.get(1)?,
        role: Role::parse(&role).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
        })?,
        password_hash: r.get(3)?,
        active: r.get::<_, i64>(4)? == 1,
        created_at: r.get(5)?,
        created_by: r.get(6)?,
        failed_logins: r.get::<_, i64>(7)?.try_into().unwrap_or(u32::MAX),
        locked: r.get::<_, i64>(8)? == 1,
        role_since: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
    })
}

impl Tx<'_> {
    /// Add an operator. `password_hash` must be an argon2 PHC string (the caller hashes).
    pub fn add_operator(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        by: Option<&Actor>,
    ) -> Result<i64> {
        validate::text("name", name, 64)?;
        if !password_hash.starts_with("$argon2") {
            // The value is not echoed: it might be a password passed by mistake.
            return Err(Error::invalid(
                "password_hash",
                "(not shown)",
                "must be an argon2 PHC string ($argon2id$...)",
            ));
        }
        self.conn()
            .execute(
                "INSERT INTO operators (name, role, password_hash, created_at, created_by, role_since)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?4)",
                params![
                    name,
                    role.as_str(),
                    password_hash,
                    now_rfc3339(),
                    by.map(|a| a.operator.as_str())
                ],
            )
            .map_err(|e| unique_conflict(e, || format!("operator {name} already exists")))?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Enable or disable an operator. Enabling restarts `role_since`: an operator enabled after
    /// a dual-control request was filed cannot approve it.
    pub fn set_operator_active(&self, name: &str, active: bool) -> Result<()> {
        let n = if active {
            self.conn().execute(
                "UPDATE operators SET active = 1, role_since = ?2 WHERE name = ?1",
                params![name, now_rfc3339()],
            )?
        } else {
            self.conn().execute(
                "UPDATE operators SET active = 0 WHERE name = ?1",
                params![name],
            )?
        };
        if n == 0 {
            return Err(Error::NotFound(format!("operator {name}")));
        }
        Ok(())
    }

    /// Give an operator another role; `role_since` restarts.
    pub fn set_operator_role(&self, name: &str, role: Role) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE operators SET role = ?2, role_since = ?3 WHERE name = ?1",
            params![name, role.as_str(), now_rfc3339()],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!("operator {name}")));
        }
        Ok(())
    }

    /// Replace an operator's password hash (an argon2 PHC string; the caller hashes).
    pub fn set_operator_password(&self, name: &str, password_hash: &str) -> Result<()> {
        if !password_hash.starts_with("$argon2") {
            return Err(Error::invalid(
                "password_hash",
                "(not shown)",
                "must be an argon2 PHC string ($argon2id$...)",
            ));
        }
        let n = self.conn().execute(
            "UPDATE operators SET password_hash = ?2 WHERE name = ?1",
            params![name, password_hash],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!("operator {name}")));
        }
        Ok(())
    }

    /// After a log-in attempt: count a wrong password (`wrong`), locking the account at
    /// [`MAX_FAILED_LOGINS`]. The same statement runs whether or not the password was wrong,
    /// so both take the same path. Returns the count and whether the account is locked.
    pub fn count_failed_login(&self, name: &str, wrong: bool) -> Result<(u32, bool)> {
        self.conn().execute(
            "UPDATE operators SET failed_logins = failed_logins + ?3,
                    locked = CASE WHEN failed_logins + ?3 >= ?2 THEN 1 ELSE locked END
             WHERE name = ?1",
            params![name, MAX_FAILED_LOGINS, wrong as i64],
        )?;
        let (n, locked): (i64, i64) = self
            .conn()
            .query_row(
                "SELECT failed_logins, locked FROM operators WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("operator {name}")))?;
        Ok((n.try_into().unwrap_or(u32::MAX), locked == 1))
    }

    /// A successful log-in: the count of wrong passwords restarts.
    pub fn reset_failed_logins(&self, name: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE operators SET failed_logins = 0 WHERE name = ?1 AND failed_logins <> 0",
            params![name],
        )?;
        Ok(())
    }

    /// Lift the lock (and the count of wrong passwords) of an operator.
    pub fn unlock_operator(&self, name: &str) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE operators SET locked = 0, failed_logins = 0 WHERE name = ?1",
            params![name],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!("operator {name}")));
        }
        Ok(())
    }
}

impl Registry {
    pub fn operator(&self, name: &str) -> Result<Option<Operator>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, name, role, password_hash, active, created_at, created_by, failed_logins, locked, role_since FROM operators WHERE name = ?1",
                [name],
                operator_from_row,
            )
            .optional()?)
    }

    pub fn operators(&self) -> Result<Vec<Operator>> {
        let mut st = self.conn.prepare(
            "SELECT id, name, role, password_hash, active, created_at, created_by, failed_logins, locked, role_since FROM operators ORDER BY id",
        )?;
        let rows = st.query_map([], operator_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
