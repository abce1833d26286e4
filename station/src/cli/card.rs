//! `idstation card …`: what happens to a physical card after its document left use
//! (`card returned`; the work is `station::services::card_returned`).

use clap::{Args, Subcommand};
use registry::Role;
use station::error::StationError;

use super::{Ctx, OperatorArg};

#[derive(Subcommand)]
pub enum CardCmd {
    /// A card brought back to the office (damaged, replaced, found): recorded as returned and
    /// destroyed. Its document must be out of use (revoked, lost, expired).
    Returned(ReturnedArgs),
}

#[derive(Args)]
pub struct ReturnedArgs {
    /// Document number of the card, e.g. AA0000001.
    #[arg(long, value_name = "NUMBER")]
    document: String,
    #[command(flatten)]
    op: OperatorArg,
}

pub fn run(ctx: &Ctx, c: &CardCmd) -> Result<(), StationError> {
    match c {
        CardCmd::Returned(a) => {
            let (mut st, session) =
                ctx.open_as(&a.op.operator, "record returned cards", &[Role::Clerk])?;
            let r = station::services::card_returned(&mut st, &session, &a.document)?;
            ctx.print(&r, |r| {
                format!(
                    "Card {} of document {} ({}) recorded as returned and destroyed at {}\n",
                    r.card_serial, r.document, r.document_status, r.returned_at
                )
            })
        }
    }
}
