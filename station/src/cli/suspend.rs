//! `idstation suspend`: the document's certificates on hold (certificateHold), the document
//! SUSPENDED (the work is `station::services::suspend`).

use clap::Args;
use registry::Role;
use station::error::StationError;

use super::{Ctx, OperatorArg};

#[derive(Args)]
pub struct SuspendArgs {
    /// Document number, e.g. AA0000001.
    #[arg(long, value_name = "NUMBER")]
    document: String,
    #[command(flatten)]
    op: OperatorArg,
}

pub fn run(ctx: &Ctx, a: &SuspendArgs) -> Result<(), StationError> {
    let (mut st, session) = ctx.open_as(&a.op.operator, "suspend documents", &[Role::Clerk])?;
    let r = station::services::suspend(&mut st, &session, &a.document)?;
    ctx.print(&r, |r| {
        format!(
            "Document {} is suspended; {} certificate(s) on hold ({}), listed on the next CRL: {}\n  resume (the holder in person) until {}\n",
            r.document,
            r.held_certificates.len(),
            r.crl_reason,
            r.held_certificates.join(", "),
            r.resume_until
        )
    })
}
