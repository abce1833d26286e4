//! `idstation recover`: resolves interrupted issuance jobs, CA requests, replacements and card
//! services (renew, unblock: `station::services::recover`) (the work is
//! `station::recovery`; docs/rotation.md for the CA requests).

use clap::Args;
use registry::Role;
use station::error::StationError;
use station::recovery::{self, Mode};

use super::{Ctx, OperatorArg};

#[derive(Args)]
pub struct RecoverArgs {
    /// Roll back jobs whose card is not in a reader (their certificates are revoked).
    #[arg(long)]
    without_card: bool,
    #[command(flatten)]
    op: OperatorArg,
}

pub fn run(ctx: &Ctx, a: &RecoverArgs) -> Result<(), StationError> {
    let (mut st, session) = ctx.open_as(
        &a.op.operator,
        "recover issuances",
        &[Role::Clerk, Role::CaAdmin],
    )?;
    let mode = if a.without_card {
        Mode::WithoutCardRollsBack
    } else {
        Mode::LookForCards
    };
    let r = recovery::recover(&mut st, &session, mode)?;
    // Interrupted CA key rotations and revocations (docs/rotation.md).
    let rot = recovery::recover_ca_requests(&mut st, &session)?;
    // Interrupted replacements (after their issuance jobs above).
    let rep = station::services::replace::recover(&mut st, &session)?;
    // Interrupted renewals and unblocks.
    let svc = station::services::recover(&mut st, &session)?;
    let mut all: Vec<serde_json::Value> = r
        .iter()
        .map(|x| serde_json::to_value(x).unwrap_or_default())
        .collect();
    all.extend(
        rot.iter()
            .map(|x| serde_json::to_value(x).unwrap_or_default()),
    );
    all.extend(
        rep.iter()
            .map(|x| serde_json::to_value(x).unwrap_or_default()),
    );
    all.extend(
        svc.iter()
            .map(|x| serde_json::to_value(x).unwrap_or_default()),
    );
    let failed = rep.iter().filter(|x| x.outcome == "failed").count();
    ctx.print(&all, |_| {
        if r.is_empty() && rot.is_empty() && rep.is_empty() && svc.is_empty() {
            "Nothing to recover\n".into()
        } else {
            r.iter()
                .map(|x| format!("job {}: {} ({})\n", x.job_id, x.outcome, x.detail))
                .chain(
                    rot.iter()
                        .map(|x| format!("CA request {}: {}\n", x.request_id, x.outcome)),
                )
                .chain(rep.iter().map(|x| {
                    let why = x
                        .error
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default();
                    format!(
                        "replacement {} of document {}: {}{why}\n",
                        x.replacement, x.old_document, x.outcome
                    )
                }))
                .chain(svc.iter().map(|x| {
                    format!(
                        "{} job {} of document {}: {} ({})\n",
                        x.kind, x.service_job, x.document, x.outcome, x.detail
                    )
                }))
                .collect()
        }
    })?;
    if failed > 0 {
        return Err(StationError::Other(format!(
            "{failed} replacement(s) could not be settled now (see above); `idstation recover` \
             tries again"
        )));
    }
    Ok(())
}
