//! `idstation revoke`: takes a document out of use and revokes its certificates (the work is
//! `station::records::revoke`).

use clap::Args;
use registry::Role;
use station::error::StationError;

use super::{Ctx, OperatorArg};

#[derive(Args)]
pub struct RevokeArgs {
    /// Document number, e.g. AA0000001.
    #[arg(long, value_name = "NUMBER")]
    document: String,
    /// Why: lost or stolen (certificates revoked keyCompromise), damaged or deceased
    /// (cessationOfOperation), replaced (superseded), data-changed (affiliationChanged).
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    op: OperatorArg,
}

pub fn run(ctx: &Ctx, a: &RevokeArgs) -> Result<(), StationError> {
    let (mut st, session) = ctx.open_as(
        &a.op.operator,
        "revoke documents",
        &[Role::Clerk, Role::CaAdmin],
    )?;
    let r = station::records::revoke(&mut st, &session, &a.document, &a.reason)?;
    ctx.print(&r, |r| {
        format!(
            "Document {} is now {}; {} certificate(s) revoked ({}), listed on the next CRL\n",
            r.document,
            r.status,
            r.revoked_certificates.len(),
            r.crl_reason
        )
    })
}
