//! `idstation backup create|verify|restored`: a copy of the registry taken while the station
//! runs, its check against this station's audit key, and the end of a restore (the work is
//! `station::backup`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use registry::Role;
use station::audit::TrustInputs;
use station::backup::{self, BackupReport};
use station::error::StationError;

use super::{Ctx, OperatorArg};

/// The trusted root and CRLs the copy's audit key is checked with.
#[derive(Args)]
pub struct RootArgs {
    /// Trusted root certificate (PEM or DER); default DATA/ca/root-ca-1.pem of --data-dir.
    #[arg(long, value_name = "FILE")]
    root: Option<PathBuf>,
    /// A CRL (PEM or DER) of a CA in the audit certificate's chain. Repeatable.
    #[arg(long = "crl", value_name = "FILE")]
    crls: Vec<PathBuf>,
}

impl RootArgs {
    fn resolve(&self, ctx: &Ctx) -> Result<(PathBuf, TrustInputs), StationError> {
        let root = station::audit::root_file(self.root.as_deref(), ctx.data_dir)?;
        let trust = TrustInputs {
            crls: self.crls.clone(),
            previous: None,
        };
        Ok((root, trust))
    }
}

#[derive(Subcommand)]
pub enum BackupCmd {
    /// Copy the registry (consistent while the station works) into the new file --out, private
    /// (0600), in a directory of this user's only its owner writes to; the copy is marked a
    /// backup copy, checked as `verify` does and audited (ca-admin: it holds every holder's
    /// personal data).
    Create {
        /// The backup file to create (never over an existing file or through a link).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        trust: RootArgs,
        #[command(flatten)]
        op: OperatorArg,
    },
    /// Check a backup: the database's integrity, its schema, its audit chain with the
    /// checkpoints signed by this station's audit key, and whether this station recorded
    /// taking it (any operator).
    Verify {
        /// The backup file.
        file: PathBuf,
        #[command(flatten)]
        trust: RootArgs,
        #[command(flatten)]
        op: OperatorArg,
    },
    /// Finish a restore once a backup copy is in place of DATA/registry.sqlite: its audit chain
    /// verified, on a standalone station the number blocks moved on to --next-number,
    /// `registry.restored` audited, the station usable again (ca-admin of the copy).
    Restored {
        /// Standalone station only: the first document number on no card (e.g. AA0000042).
        #[arg(long, value_name = "DOCUMENT")]
        next_number: Option<String>,
        /// Enrolled station only: finish even when the audit events after the copy's cannot be
        /// taken back from the centre (it cannot be reached, or its log differs; the centre
        /// then refuses this station's pushes).
        #[arg(long)]
        without_centre: bool,
        #[command(flatten)]
        trust: RootArgs,
        #[command(flatten)]
        op: OperatorArg,
    },
}

pub fn run(ctx: &Ctx, c: &BackupCmd) -> Result<(), StationError> {
    match c {
        BackupCmd::Create { out, trust, op } => {
            let (root, trust) = trust.resolve(ctx)?;
            let (mut st, session) =
                ctx.open_as(&op.operator, "back up the registry", &[Role::CaAdmin])?;
            let r = backup::create(&mut st, &session, out, &root, &trust)?;
            ctx.print(&r, |r| {
                format!(
                    "Backed up the registry to {}\n{}",
                    r.file.display(),
                    text(r)
                )
            })
        }
        BackupCmd::Verify { file, trust, op } => {
            let (root, trust) = trust.resolve(ctx)?;
            let (st, _session) = ctx.open_read_only_as(
                &op.operator,
                "verify a backup",
                &[Role::Clerk, Role::CaAdmin, Role::Auditor],
            )?;
            let r = backup::verify(&st, file, &root, &trust)?;
            ctx.print(&r, |r| format!("OK: {}\n{}", r.file.display(), text(r)))
        }
        BackupCmd::Restored {
            next_number,
            without_centre,
            trust,
            op,
        } => {
            let (root, trust) = trust.resolve(ctx)?;
            // Before the log-in, so that a refused one is written after the events taken back.
            let mut before = None;
            let (mut st, session) =
                ctx.open_restoring_as(&op.operator, "finish a restore", &[Role::CaAdmin], |st| {
                    before = Some(backup::take_back(st, *without_centre, &root, &trust)?);
                    Ok(())
                })?;
            let before = before.ok_or_else(|| {
                StationError::Other("the step before the log-in did not run".into())
            })?;
            let r = backup::restored(
                &mut st,
                &session,
                next_number.as_deref(),
                before,
                &root,
                &trust,
            )?;
            ctx.print(&r, |r| {
                let mut s = format!(
                    "Restore finished: the audit log verifies ({} event(s), last {} hash {})\n",
                    r.audit_events, r.last_seq, r.last_hash
                );
                for b in &r.number_blocks {
                    s += &format!(
                        "  number block {} {:07}..{:07}: next {:07} -> {:07}\n",
                        b.series, b.first, b.last, b.next_before, b.next_after
                    );
                }
                if let Some(t) = &r.taken_back {
                    s += &format!(
                        "  taken back from the centre: {} audit event(s) after {} (the centre's head is {})\n",
                        t.events, t.from_seq, t.centre_head_seq
                    );
                }
                if r.enrolled {
                    s += "  enrolled: run `idstation centre sync` to bring back what other offices changed\n";
                }
                s
            })
        }
    }
}

fn text(r: &BackupReport) -> String {
    let recorded = match &r.recorded {
        Some(when) => format!("taken here {when}"),
        None => "not recorded in this station's log".into(),
    };
    format!(
        "  {} bytes, SHA-256 {} ({recorded})\n  schema {}, {} holder(s), {} document(s)\n  audit log: {} event(s), last {} (hash {}), {} signed checkpoint(s) verified\n",
        r.bytes,
        r.sha256,
        r.schema_version,
        r.holders,
        r.documents,
        r.audit_events,
        r.last_seq,
        r.last_hash,
        r.checkpoints
    )
}
