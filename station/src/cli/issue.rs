//! `idstation issue`: a holder record onto the blank card in a reader (the job is
//! `station::issuance`); progress on stderr, the report on stdout.

use std::path::PathBuf;

use clap::Args;
use registry::Role;
use station::error::StationError;
use station::interactive::holder_policy;
use station::issuance::{IssueInput, IssueReport};

use super::{Ctx, OperatorArg};

#[derive(Args)]
pub struct IssueArgs {
    /// Holder record (JSON).
    #[arg(long, value_name = "FILE")]
    holder: PathBuf,
    /// Reader name (or a unique part of it); default: the one reader holding a card.
    #[arg(long)]
    reader: Option<String>,
    /// The holder is registered with other personal data (name, date of birth, sex,
    /// citizenship, photo…) and the clerk has checked the documents: update the registry
    /// (each change audited). Without it such an issuance is refused (exit 2) naming the
    /// fields that differ.
    #[arg(long)]
    update_holder: bool,
    /// Read the holder's PIN from this file descriptor (one line), e.g. a pipe from the
    /// holder-facing PIN pad; without it the holder types it twice at a masked prompt.
    /// `--pin-fd 0` is the line of standard input after the operator's password.
    #[arg(long, value_name = "N")]
    pin_fd: Option<u32>,
    /// Write the PIN letter (a one-page PDF with the PUK the station draws at random) to
    /// this new file; it must not exist. Hand it to the holder; the station keeps no copy.
    #[arg(long, value_name = "FILE")]
    pin_letter: PathBuf,
    #[command(flatten)]
    op: OperatorArg,
}

pub fn run(ctx: &Ctx, a: &IssueArgs) -> Result<(), StationError> {
    let (mut st, session) = ctx.open_as(&a.op.operator, "issue cards", &[Role::Clerk])?;
    let policy = holder_policy(st.document_profile()?);
    let holder = station::holder::load(&a.holder, &policy).map_err(holder_errors)?;
    let pin = station::pin_letter::read_holder_pin(a.pin_fd)?;
    let input = IssueInput {
        holder,
        reader: a.reader.clone(),
        pin,
        pin_letter: a.pin_letter.clone(),
        update_holder: a.update_holder,
    };
    station::services::mirror::before_issue(&mut st, &session, &input.holder.record.pinfl)?;
    let quiet = ctx.json;
    let r = station::issuance::issue(&mut st, &session, &input, &mut |p| {
        if !quiet {
            match &p.card {
                Some(c) => eprintln!("[{}] {}/{} {}", p.step, c.index, c.total, c.step),
                None => eprintln!("[{}]", p.step),
            }
        }
    })?;
    ctx.print(&r, |r| report_text(r, a))
}

fn report_text(r: &IssueReport, a: &IssueArgs) -> String {
    let mut s = format!(
        "Issued document {} on card {} in {} (job {})\n",
        r.document, r.card_serial, r.reader, r.job_id
    );
    for c in &r.certificates {
        s += &format!(
            "  {} {} certificate serial {}\n",
            c.slot, c.profile, c.serial
        );
    }
    s += &format!(
        "  {} APDUs, {:.0} ms (card {:.0}, HSM {:.0}, registry {:.0})\n",
        r.apdus, r.timings.total_ms, r.timings.card_ms, r.timings.hsm_ms, r.timings.registry_ms
    );
    s += &format!(
        "  PIN letter with the PUK: {} (hand it to the holder, then delete the file)\n",
        a.pin_letter.display()
    );
    s
}

/// Holder validation errors as one `Invalid` error that names each field once:
/// "pinfl: check digit …; sex: …" (the first field is the error's field).
fn holder_errors(errs: Vec<station::holder::FieldError>) -> StationError {
    let mut it = errs.into_iter();
    let Some(first) = it.next() else {
        return StationError::invalid("holder", "the holder record was refused");
    };
    let mut rule = first.rule;
    for e in it {
        rule += &format!("; {e}");
    }
    StationError::invalid(first.field, rule)
}
