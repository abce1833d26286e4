//! `idstation unblock`: a new PIN on an issued card after the clerk confirmed the holder's
//! identity (the work is `station::services::unblock`).

use std::path::PathBuf;

use clap::Args;
use registry::Role;
use station::error::StationError;
use station::services::{UnblockInput, UnblockReport};

use super::{Ctx, OperatorArg};

#[derive(Args)]
pub struct UnblockArgs {
    /// Document number, e.g. AA0000001: its card must be in the reader.
    #[arg(long, value_name = "NUMBER")]
    document: String,
    /// Reader name (or a unique part of it); default: the one reader holding a card.
    #[arg(long)]
    reader: Option<String>,
    /// The clerk has checked the holder's identity in person (recorded in the audit log);
    /// without it the unblock is refused (exit 2).
    #[arg(long)]
    identity_confirmed: bool,
    /// Also set a new random PUK and print it into a new PIN letter (needs --pin-letter).
    #[arg(long, requires = "pin_letter")]
    new_puk: bool,
    /// Where the new PIN letter is written (a new file; with --new-puk).
    #[arg(long, value_name = "FILE", requires = "new_puk")]
    pin_letter: Option<PathBuf>,
    /// Read the holder's new PIN from this file descriptor (one line); without it the holder
    /// types it twice at a masked prompt. `--pin-fd 0` is the line of standard input after
    /// the operator's password.
    #[arg(long, value_name = "N")]
    pin_fd: Option<u32>,
    #[command(flatten)]
    op: OperatorArg,
}

pub fn run(ctx: &Ctx, a: &UnblockArgs) -> Result<(), StationError> {
    let (mut st, session) = ctx.open_as(&a.op.operator, "unblock PINs", &[Role::Clerk])?;
    let new_pin = station::pin_letter::read_holder_pin(a.pin_fd)?;
    let input = UnblockInput {
        document: a.document.clone(),
        reader: a.reader.clone(),
        identity_confirmed: a.identity_confirmed,
        new_pin,
        new_puk_letter: if a.new_puk {
            a.pin_letter.clone()
        } else {
            None
        },
    };
    let quiet = ctx.json;
    let r = station::services::unblock(&mut st, &session, &input, &mut |p| {
        if !quiet {
            eprintln!("[{}] {}", p.step, p.detail);
        }
    })?;
    ctx.print(&r, report_text)
}

fn report_text(r: &UnblockReport) -> String {
    let whose = match (&r.service_job, &r.issued_by_office) {
        (Some(job), _) => format!("service job {job}"),
        (None, Some(office)) => {
            format!("a card of office {office}, with the national centre's card key")
        }
        (None, None) => "no service job".into(),
    };
    let mut s = format!(
        "PIN of document {} on card {} in {} unblocked: the holder's new PIN is set ({whose})\n",
        r.document, r.card_serial, r.reader
    );
    if let Some(p) = &r.pin_letter {
        s += &format!(
            "  new PUK in the PIN letter {} (hand it to the holder, then delete the file)\n",
            p.display()
        );
    }
    s
}
