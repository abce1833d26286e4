//! `idstation address set` / `address end`: a holder's registration addresses (the work is
//! `station::services::address`); the chip's DG11 keeps the address printed at issuance.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use registry::Role;
use station::error::StationError;
use station::services::address::{self, AddressReport};

use super::{Ctx, OperatorArg};

#[derive(Subcommand)]
pub enum AddressCmd {
    /// Record a new registration address (permanent, or temporary at the place of stay) from
    /// a JSON file: the `address` object of a holder file. Earlier addresses stay as history;
    /// the change goes to the e-government outbox.
    Set(SetArgs),
    /// Cancel the holder's current temporary registration (--kind temporary); the change goes
    /// to the e-government outbox.
    End(EndArgs),
}

#[derive(Args)]
pub struct SetArgs {
    /// The holder's PINFL (14 digits).
    #[arg(long)]
    pinfl: String,
    /// JSON file with the address: kind, region, district, street, house, apartment?,
    /// registered_on, registered_until (temporary only).
    #[arg(long, value_name = "FILE")]
    holder_address: PathBuf,
    #[command(flatten)]
    op: OperatorArg,
}

#[derive(Args)]
pub struct EndArgs {
    /// The holder's PINFL (14 digits).
    #[arg(long)]
    pinfl: String,
    /// Which registration ends: only `temporary` (a permanent one is replaced with `set`).
    #[arg(long)]
    kind: String,
    /// The date it ends (YYYY-MM-DD; default today).
    #[arg(long, value_name = "DATE")]
    ended_on: Option<String>,
    #[command(flatten)]
    op: OperatorArg,
}

pub fn run(ctx: &Ctx, c: &AddressCmd) -> Result<(), StationError> {
    let r = match c {
        AddressCmd::Set(a) => {
            let new = address::read_address_file(&a.holder_address)?;
            let (mut st, session) =
                ctx.open_as(&a.op.operator, "change addresses", &[Role::Clerk])?;
            address::set(&mut st, &session, &a.pinfl, &new)?
        }
        AddressCmd::End(a) => {
            let (mut st, session) =
                ctx.open_as(&a.op.operator, "change addresses", &[Role::Clerk])?;
            address::end(&mut st, &session, &a.pinfl, &a.kind, a.ended_on.as_deref())?
        }
    };
    ctx.print(&r, report_text)
}

fn report_text(r: &AddressReport) -> String {
    let mut s = format!(
        "Address {} ({}) of holder {}: {}; e-government outbox message {}\n",
        r.address_id,
        r.kind,
        r.pinfl,
        if r.change == "set" {
            "recorded"
        } else {
            "registration ended"
        },
        r.outbox_message
    );
    for h in &r.history {
        s += &format!(
            "  {} {} {} from {}{}{}\n",
            h.address_id,
            h.kind,
            h.text,
            h.registered_on,
            h.registered_until
                .as_deref()
                .map(|u| format!(" until {u}"))
                .unwrap_or_default(),
            h.ended_on
                .as_deref()
                .map(|e| format!(", ended {e}"))
                .unwrap_or_default()
        );
    }
    s
}
