//! `idstation operator …`: operators, their roles, state and passwords (the work is in
//! `station::operators`; a change to or from ca-admin waits for another ca-admin's approval).

use clap::Subcommand;
use registry::Role;
use station::error::StationError;
use station::operators::{self, Change, Session};
use station::secret_input::read_secret;
use station::Station;

use super::{Ctx, OperatorArg};

#[derive(Subcommand)]
pub enum OperatorCmd {
    /// Add an operator. ca-admin only. Secrets: your password, then the new operator's
    /// (masked prompts, typed twice; without a terminal, one line each on standard input). A
    /// new ca-admin stays disabled until another ca-admin approves the request this files
    /// (`ca approve N`).
    Add {
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = ["clerk", "ca-admin", "auditor"])]
        role: String,
        #[command(flatten)]
        op: OperatorArg,
    },
    /// List operators (names, roles, state). ca-admin or auditor.
    List {
        #[command(flatten)]
        op: OperatorArg,
    },
    /// Disable an operator: it can no longer log in. ca-admin only, not oneself.
    Disable {
        /// The operator to disable.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        op: OperatorArg,
    },
    /// Enable a disabled operator. ca-admin only, not oneself; a ca-admin is enabled only when
    /// another ca-admin approves the request this files.
    Enable {
        /// The operator to enable.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        op: OperatorArg,
    },
    /// Give an operator another role. ca-admin only, not oneself; to or from ca-admin only
    /// when another ca-admin approves the request this files.
    Role {
        /// The operator.
        #[arg(long)]
        name: String,
        /// The new role.
        #[arg(long, value_parser = ["clerk", "ca-admin", "auditor"])]
        role: String,
        #[command(flatten)]
        op: OperatorArg,
    },
    /// Change your password; a ca-admin may reset a clerk's or an auditor's with --name.
    /// Secrets: your password, then the new one (masked prompts; without a terminal, one line
    /// each on standard input).
    Passwd {
        /// Whose password (default: the operator's own).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        op: OperatorArg,
    },
    /// Unlock an operator locked after 5 wrong passwords. ca-admin only, not oneself.
    Unlock {
        /// The operator to unlock.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        op: OperatorArg,
    },
}

pub fn run(ctx: &Ctx, cmd: &OperatorCmd) -> Result<(), StationError> {
    match cmd {
        OperatorCmd::Add { name, role, op } => {
            let c = as_ca_admin(ctx, op, "add operators", "operator.added", |st, s| {
                let new_password = read_secret(
                    "new operator's password",
                    &format!("Password for {name}"),
                    true,
                )?;
                operators::add(st, s, name, Role::parse(role)?, &new_password)
            })?;
            ctx.print(&c, |c| change_text("Added", c))
        }
        OperatorCmd::List { op } => list(ctx, op),
        OperatorCmd::Disable { name, op } => {
            as_ca_admin(
                ctx,
                op,
                "disable operators",
                "operator.disabled",
                |st, s| operators::disable(st, s, name),
            )?;
            ctx.print(
                &serde_json::json!({ "name": name, "active": false }),
                |_| format!("Disabled operator {name}\n"),
            )
        }
        OperatorCmd::Enable { name, op } => {
            let c = as_ca_admin(ctx, op, "enable operators", "operator.enabled", |st, s| {
                operators::enable(st, s, name)
            })?;
            ctx.print(&c, |c| change_text("Enabled", c))
        }
        OperatorCmd::Role { name, role, op } => {
            let event = "operator.role-changed";
            let c = as_ca_admin(ctx, op, "change operator roles", event, |st, s| {
                operators::set_role(st, s, name, Role::parse(role)?)
            })?;
            ctx.print(&c, |c| change_text("Changed the role of", c))
        }
        OperatorCmd::Passwd { name, op } => passwd(ctx, name.as_deref(), op),
        OperatorCmd::Unlock { name, op } => {
            as_ca_admin(ctx, op, "unlock operators", "operator.unlocked", |st, s| {
                operators::unlock(st, s, name)
            })?;
            ctx.print(
                &serde_json::json!({ "name": name, "locked": false }),
                |_| format!("Unlocked operator {name}\n"),
            )
        }
    }
}

/// Log `op` in as a ca-admin for `action`, make the change, then sign an audit checkpoint
/// after `event` (docs/audit.md).
fn as_ca_admin<T>(
    ctx: &Ctx,
    op: &OperatorArg,
    action: &str,
    event: &str,
    change: impl FnOnce(&mut Station, &Session) -> Result<T, StationError>,
) -> Result<T, StationError> {
    let (mut st, session) = ctx.open_as(&op.operator, action, &[Role::CaAdmin])?;
    let r = change(&mut st, &session)?;
    station::audit::checkpoint_after(&mut st, event);
    Ok(r)
}

fn list(ctx: &Ctx, op: &OperatorArg) -> Result<(), StationError> {
    let (mut st, session) = ctx.open_read_only_as(
        &op.operator,
        "list operators",
        &[Role::CaAdmin, Role::Auditor],
    )?;
    let ops = operators::list(&mut st, &session)?;
    ctx.print(&ops, |ops| {
        ops.iter()
            .map(|o| format!("{}\t{}\t{}\n", o.name, o.role, o.state))
            .collect()
    })
}

/// One's own password (any role), or a clerk's or an auditor's reset by a ca-admin.
fn passwd(ctx: &Ctx, name: Option<&str>, op: &OperatorArg) -> Result<(), StationError> {
    let own = name.is_none_or(|n| n == op.operator);
    let roles: &[Role] = if own {
        &[Role::Clerk, Role::CaAdmin, Role::Auditor]
    } else {
        &[Role::CaAdmin]
    };
    let (mut st, session) = ctx.open_as(&op.operator, "change passwords", roles)?;
    let whose = name.unwrap_or(&op.operator);
    let new_password = read_secret("new password", &format!("New password for {whose}"), true)?;
    let n = operators::passwd(&mut st, &session, name, &new_password)?;
    station::audit::checkpoint_after(&mut st, "operator.password-changed");
    ctx.print(&serde_json::json!({ "name": n }), |_| {
        format!("Changed the password of {n}\n")
    })
}

/// `operator add|enable|role`'s text: done, or waiting for another ca-admin's approval.
fn change_text(verb: &str, c: &Change) -> String {
    match &c.request {
        Some(r) => format!(
            "{verb} operator {} ({}): waits for another ca-admin's approval\n{}",
            c.name,
            c.role,
            super::ca::request_text(r, "Filed")
        ),
        None => format!("{verb} operator {} ({}), {}\n", c.name, c.role, c.state),
    }
}
