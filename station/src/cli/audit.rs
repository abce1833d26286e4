//! `idstation audit …` and `idstation outbox …` (arguments and output only; the work is in
//! `station::audit`). Roles (docs/audit.md): checkpoint = clerk or ca-admin; export =
//! auditor or ca-admin; verify-log = any operator; verify = nobody (offline, no database);
//! outbox list = clerk, ca-admin or auditor (its own outbox; on an enrolled station the
//! centre's, ca-admin or auditor, checked in `station::centre::outbox`); outbox retry =
//! ca-admin (enrolled station); outbox ack = clerk or ca-admin.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use registry::{ExportFormat, Role};
use station::audit::{self, Range};
use station::error::StationError;

use super::{Ctx, OperatorArg};

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Sign a checkpoint over the newest audit event with the station's HSM audit key
    /// (clerk or ca-admin).
    Checkpoint {
        #[command(flatten)]
        op: OperatorArg,
    },
    /// Export the audit log for auditors: events, a manifest, its signature by the audit key
    /// and the certificate chain (auditor or ca-admin).
    Export(ExportArgs),
    /// Verify an export folder offline against a trusted root certificate. Needs no database
    /// and no HSM; exit 0 when valid, 2 with the first bad sequence number when not.
    Verify {
        /// The export folder.
        dir: PathBuf,
        /// Trusted root certificate (PEM or DER); default DATA/ca/root-ca-1.pem of --data-dir.
        #[arg(long, value_name = "FILE")]
        root: Option<PathBuf>,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Verify the audit chain in the database, checkpoint signatures included, with the audit
    /// key from its certificate chain checked against the root (any operator).
    VerifyLog {
        /// Trusted root certificate (PEM or DER); default DATA/ca/root-ca-1.pem of --data-dir.
        #[arg(long, value_name = "FILE")]
        root: Option<PathBuf>,
        #[command(flatten)]
        trust: TrustArgs,
        #[command(flatten)]
        op: OperatorArg,
    },
}

/// CRLs and an earlier export, for `audit verify` and `audit verify-log`.
#[derive(Args)]
pub struct TrustArgs {
    /// A CRL (PEM or DER) of a CA in the audit certificate's chain; the audit certificate
    /// (and any link) must not be on it. Repeatable.
    #[arg(long = "crl", value_name = "FILE")]
    crls: Vec<PathBuf>,
    /// An earlier export: the log must still hold its last event, with the same hash, at the
    /// same sequence number (a rewritten or truncated history fails).
    #[arg(long, value_name = "OLD_EXPORT")]
    previous: Option<PathBuf>,
}

impl TrustArgs {
    fn inputs(&self) -> audit::TrustInputs {
        audit::TrustInputs {
            crls: self.crls.clone(),
            previous: self.previous.clone(),
        }
    }
}

#[derive(Args)]
pub struct ExportArgs {
    /// Folder to write (created; must not already hold an export).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// First day or time (inclusive): YYYY-MM-DD or RFC 3339 UTC.
    #[arg(long, value_name = "DATE", conflicts_with_all = ["from_seq", "to_seq"])]
    from: Option<String>,
    /// Last day (inclusive) or time (exclusive): YYYY-MM-DD or RFC 3339 UTC.
    #[arg(long, value_name = "DATE", conflicts_with_all = ["from_seq", "to_seq"])]
    to: Option<String>,
    /// First sequence number (inclusive).
    #[arg(long, value_name = "N")]
    from_seq: Option<u64>,
    /// Last sequence number (inclusive).
    #[arg(long, value_name = "M")]
    to_seq: Option<u64>,
    /// Events file format.
    #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv"])]
    format: String,
    #[command(flatten)]
    op: OperatorArg,
}

#[derive(Subcommand)]
pub enum OutboxCmd {
    /// A standalone station: its messages not yet acknowledged by the receiving system (clerk,
    /// ca-admin or auditor). An enrolled station: the national centre's e-government
    /// deliveries, with what failed and when (ca-admin or auditor). The read is audited.
    List {
        /// Only the dead letters: messages the centre gave up on (enrolled station).
        #[arg(long, conflicts_with = "local")]
        failed: bool,
        /// An enrolled station: this station's own outbox instead of the centre's.
        #[arg(long)]
        local: bool,
        /// An enrolled station: at most this many of the centre's messages, the newest (1 to
        /// 1000; default 1000).
        #[arg(long, value_name = "N", conflicts_with = "local")]
        limit: Option<u32>,
        #[command(flatten)]
        op: OperatorArg,
    },
    /// Put the centre's dead letter ID back in its delivery queue (enrolled station; ca-admin).
    Retry {
        /// Message id (from `outbox list --failed`).
        id: i64,
        #[command(flatten)]
        op: OperatorArg,
    },
    /// Mark a message as delivered (clerk or ca-admin).
    Ack {
        /// Message id (from `outbox list`).
        id: i64,
        #[command(flatten)]
        op: OperatorArg,
    },
}

pub fn run_audit(ctx: &Ctx, cmd: &AuditCmd) -> Result<(), StationError> {
    match cmd {
        AuditCmd::Checkpoint { op } => {
            let (mut st, session) = ctx.open_as(
                &op.operator,
                "sign audit checkpoints",
                &[Role::Clerk, Role::CaAdmin],
            )?;
            let c = audit::checkpoint(&mut st, &session)?;
            ctx.print(&c, |c| {
                format!(
                    "Checkpoint over event {} (hash {}) signed by {} at {}\n",
                    c.seq, c.hash, c.key_label, c.time
                )
            })
        }
        AuditCmd::Export(a) => export(ctx, a),
        AuditCmd::Verify { dir, root, trust } => {
            let root = audit::root_file(root.as_deref(), ctx.data_dir)?;
            let r = audit::verify_with(dir, &root, &trust.inputs())?;
            ctx.print(&r, |r| {
                format!(
                    "OK: {} event(s) {}..{}, last hash {}, {} checkpoint(s)\nSigned by {} at {}; chains to root {} (SHA-256 {})\n",
                    r.export.count,
                    r.export.first_seq,
                    r.export.last_seq,
                    r.export.last_hash,
                    r.export.checkpoints,
                    r.export.signer_subject,
                    r.export.exported_at,
                    r.root.display(),
                    r.root_sha256
                )
            })
        }
        AuditCmd::VerifyLog { root, trust, op } => {
            let root = audit::root_file(root.as_deref(), ctx.data_dir)?;
            let (st, _session) = ctx.open_read_only_as(
                &op.operator,
                "verify the audit log",
                &[Role::Clerk, Role::CaAdmin, Role::Auditor],
            )?;
            let r = audit::verify_log(&st, &root, &trust.inputs())?;
            ctx.print(&r, |r| {
                format!(
                    "OK: {} event(s), last {} (hash {}), {} checkpoint(s) signed by {} verified\n",
                    r.events, r.last_seq, r.last_hash, r.checkpoints, r.key_label
                )
            })
        }
    }
}

/// `audit export`: the range and format from the arguments, then the signed export.
fn export(ctx: &Ctx, a: &ExportArgs) -> Result<(), StationError> {
    let range = match (&a.from, &a.to, a.from_seq, a.to_seq) {
        (None, None, None, None) => Range::All,
        (None, None, from, to) => Range::Seq { from, to },
        (from, to, _, _) => Range::Time {
            from: from.clone(),
            to: to.clone(),
        },
    };
    let format = ExportFormat::parse(&a.format)?;
    let (mut st, session) = ctx.open_as(
        &a.op.operator,
        "export the audit log",
        &[Role::Auditor, Role::CaAdmin],
    )?;
    let r = audit::export(&mut st, &session, &a.out, &range, format)?;
    ctx.print(&r, |r| {
        let range = match (r.first_seq, r.last_seq) {
            (Some(f), Some(l)) => format!("events {f}..{l}"),
            _ => "no events in the range".into(),
        };
        format!(
            "Exported {} event(s) ({range}) as {}; last hash {}; {} checkpoint(s)\nManifest {} signed by {}\n",
            r.count,
            r.format,
            if r.last_hash.is_empty() { "-" } else { &r.last_hash },
            r.checkpoints,
            r.manifest.display(),
            r.signer_key
        )
    })
}

pub fn run_outbox(ctx: &Ctx, cmd: &OutboxCmd) -> Result<(), StationError> {
    match cmd {
        OutboxCmd::List {
            failed,
            local,
            limit,
            op,
        } => {
            let (mut st, session) = ctx.open_read_only_as(
                &op.operator,
                "read the outbox",
                &[Role::Clerk, Role::CaAdmin, Role::Auditor],
            )?;
            if st.config.centre.is_some() && !local {
                let list = station::centre::outbox::list(&mut st, &session, *failed, *limit)?;
                return ctx.print(&list, |l| {
                    let mut out: String = l.messages.iter().map(|m| m.line()).collect();
                    if l.more {
                        out.push_str(&format!(
                            "(the newest {} messages; the centre has older ones: raise --limit)\n",
                            l.messages.len()
                        ));
                    }
                    out
                });
            }
            if *failed {
                return Err(StationError::invalid(
                    "failed",
                    "only an enrolled station lists dead letters: they are the national \
                     centre's (a standalone station's messages wait for `outbox ack`)",
                ));
            }
            let items = station::records::outbox_list(&mut st, &session)?;
            ctx.print(&items, |items| {
                items
                    .iter()
                    .map(|m| format!("{}\t{}\t{}\t{}\n", m.id, m.topic, m.created_at, m.payload))
                    .collect()
            })
        }
        OutboxCmd::Retry { id, op } => {
            let (mut st, session) = ctx.open_read_only_as(
                &op.operator,
                "retry e-government messages",
                &[Role::CaAdmin],
            )?;
            let m = station::centre::outbox::retry(&mut st, &session, *id)?;
            ctx.print(&m, |m| {
                format!(
                    "Outbox message {} is pending again at the centre\n{}",
                    m.id,
                    m.line()
                )
            })
        }
        OutboxCmd::Ack { id, op } => {
            let (mut st, session) = ctx.open_as(
                &op.operator,
                "acknowledge outbox messages",
                &[Role::Clerk, Role::CaAdmin],
            )?;
            let m = audit::outbox_ack(&mut st, &session, *id)?;
            ctx.print(&m, |m| {
                format!("Acknowledged outbox message {} ({})\n", m.id, m.topic)
            })
        }
    }
}
