//! `idstation renew`: new key pairs and certificates on an issued card (the work is
//! `station::services::renew`); progress on stderr, the report on stdout.

use clap::Args;
use registry::Role;
use station::error::StationError;
use station::services::{RenewInput, RenewReport};
use zeroize::Zeroizing;

use super::{Ctx, OperatorArg};

#[derive(Args)]
pub struct RenewArgs {
    /// Document number, e.g. AA0000001: its card must be in the reader.
    #[arg(long, value_name = "NUMBER")]
    document: String,
    /// Reader name (or a unique part of it); default: the one reader holding a card.
    #[arg(long)]
    reader: Option<String>,
    /// Read the holder's current PIN (for the test signatures with the new keys) from this
    /// file descriptor (one line); without it the holder types it at a masked prompt.
    /// `--pin-fd 0` is the line of standard input after the operator's password.
    #[arg(long, value_name = "N")]
    pin_fd: Option<u32>,
    #[command(flatten)]
    op: OperatorArg,
}

pub fn run(ctx: &Ctx, a: &RenewArgs) -> Result<(), StationError> {
    let (mut st, session) = ctx.open_as(&a.op.operator, "renew certificates", &[Role::Clerk])?;
    let pin = holder_pin(a.pin_fd)?;
    let input = RenewInput {
        document: a.document.clone(),
        reader: a.reader.clone(),
        pin,
    };
    let quiet = ctx.json;
    let r = station::services::renew(&mut st, &session, &input, &mut |p| {
        if !quiet {
            eprintln!("[{}] {}", p.step, p.detail);
        }
    })?;
    ctx.print(&r, report_text)
}

/// The holder's current PIN: from `--pin-fd`, else typed once at a masked prompt.
fn holder_pin(fd: Option<u32>) -> Result<Zeroizing<String>, StationError> {
    if fd.is_some() {
        return station::pin_letter::read_holder_pin(fd);
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(StationError::invalid(
            "pin",
            "no terminal for the holder to type the PIN on: pass it on --pin-fd N",
        ));
    }
    rpassword::prompt_password("Holder, type your PIN: ")
        .map(Zeroizing::new)
        .map_err(|e| StationError::Other(format!("prompt: {e}")))
}

fn report_text(r: &RenewReport) -> String {
    let whose = match (&r.service_job, &r.issued_by_office) {
        (Some(job), _) => format!("service job {job}"),
        (None, Some(office)) => {
            format!("a card of office {office}, with the national centre's card key")
        }
        (None, None) => "no service job".into(),
    };
    let mut s = format!(
        "Renewed the certificates of document {} on card {} in {} ({whose}{})\n",
        r.document,
        r.card_serial,
        r.reader,
        if r.resumed {
            ", an interrupted renewal finished"
        } else {
            ""
        }
    );
    for c in &r.certificates {
        s += &format!(
            "  {} {} certificate serial {} valid until {}\n",
            c.slot, c.profile, c.serial, c.not_after
        );
    }
    if !r.superseded.is_empty() {
        s += &format!(
            "  revoked as superseded (on the next CRL): {}\n",
            r.superseded.join(", ")
        );
    }
    s += &format!(
        "  {} APDUs, {:.0} ms (card {:.0}, HSM {:.0})\n",
        r.apdus, r.total_ms, r.card_ms, r.hsm_ms
    );
    s
}
