//! `idstation backup create|verify`: a copy of the registry taken while the station runs, and
//! its check against this station's audit key (the work is `station::backup`).

use std::path::PathBuf;

use clap::Subcommand;
use registry::Role;
use station::backup::{self, BackupReport};
use station::error::StationError;

use super::audit::TrustArgs;
use super::{Ctx, OperatorArg};

#[derive(Subcommand)]
pub enum BackupCmd {
    /// Copy the registry (consistent while the station works) into the new file --out, private
    /// (0600), in a directory only its owner writes to; the copy is checked as `verify` does
    /// and the backup audited (ca-admin: it holds every holder's personal data).
    Create {
        /// The backup file to create (never over an existing file or through a link).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Trusted root certificate (PEM or DER); default DATA/ca/root-ca-1.pem of --data-dir.
        #[arg(long, value_name = "FILE")]
        root: Option<PathBuf>,
        #[command(flatten)]
        trust: TrustArgs,
        #[command(flatten)]
        op: OperatorArg,
    },
    /// Check a backup: the database's integrity, its schema, and its audit chain with the
    /// checkpoints signed by this station's audit key (any operator).
    Verify {
        /// The backup file.
        file: PathBuf,
        /// Trusted root certificate (PEM or DER); default DATA/ca/root-ca-1.pem of --data-dir.
        #[arg(long, value_name = "FILE")]
        root: Option<PathBuf>,
        #[command(flatten)]
        trust: TrustArgs,
        #[command(flatten)]
        op: OperatorArg,
    },
}

pub fn run(ctx: &Ctx, c: &BackupCmd) -> Result<(), StationError> {
    match c {
        BackupCmd::Create {
            out,
            root,
            trust,
            op,
        } => {
            let root = station::audit::root_file(root.as_deref(), ctx.data_dir)?;
            let (mut st, session) =
                ctx.open_as(&op.operator, "back up the registry", &[Role::CaAdmin])?;
            let r = backup::create(&mut st, &session, out, &root, &trust.inputs())?;
            ctx.print(&r, |r| {
                format!(
                    "Backed up the registry to {}\n{}",
                    r.file.display(),
                    text(r)
                )
            })
        }
        BackupCmd::Verify {
            file,
            root,
            trust,
            op,
        } => {
            let root = station::audit::root_file(root.as_deref(), ctx.data_dir)?;
            let (st, _session) = ctx.open_read_only_as(
                &op.operator,
                "verify a backup",
                &[Role::Clerk, Role::CaAdmin, Role::Auditor],
            )?;
            let r = backup::verify(&st, file, &root, &trust.inputs())?;
            ctx.print(&r, |r| format!("OK: {}\n{}", r.file.display(), text(r)))
        }
    }
}

fn text(r: &BackupReport) -> String {
    format!(
        "  {} bytes, SHA-256 {}\n  schema {}, {} holder(s), {} document(s)\n  audit log: {} event(s), last {} (hash {}), {} signed checkpoint(s) verified\n",
        r.bytes, r.sha256, r.schema_version, r.holders, r.documents, r.audit_events, r.last_seq, r.last_hash, r.checkpoints
    )
}
