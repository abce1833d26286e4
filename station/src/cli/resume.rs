//! `idstation resume`: a suspended document active again, its certificates released from hold
//! (the work is `station::services::resume`).

use clap::Args;
use registry::Role;
use station::error::StationError;
use station::services::ResumeInput;

use super::{Ctx, OperatorArg};

#[derive(Args)]
pub struct ResumeArgs {
    /// Document number, e.g. AA0000001.
    #[arg(long, value_name = "NUMBER")]
    document: String,
    /// The clerk has checked the holder's identity in person (recorded in the audit log);
    /// resume is refused without it.
    #[arg(long)]
    identity_confirmed: bool,
    #[command(flatten)]
    op: OperatorArg,
}

pub fn run(ctx: &Ctx, a: &ResumeArgs) -> Result<(), StationError> {
    let (mut st, session) = ctx.open_as(&a.op.operator, "resume documents", &[Role::Clerk])?;
    let input = ResumeInput {
        document: a.document.clone(),
        identity_confirmed: a.identity_confirmed,
    };
    let r = station::services::resume(&mut st, &session, &input)?;
    ctx.print(&r, |r| {
        format!(
            "Document {} is active again (suspended at {}); {} certificate(s) released from hold, absent from the next CRL\n",
            r.document,
            r.suspended_at,
            r.released_certificates.len()
        )
    })
}
