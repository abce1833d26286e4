//! `idstation replace`: a new card for the same holder in place of a lost, stolen or damaged
//! one, or after a name change, in one job (the work is `station::services::replace`); progress on stderr, the report
//! on stdout.

use std::path::PathBuf;

use clap::Args;
use registry::Role;
use station::error::StationError;
use station::interactive::holder_policy;
use station::issuance::IssueInput;
use station::services::{ReplaceInput, ReplaceReport};

use super::{Ctx, OperatorArg};

#[derive(Args)]
pub struct ReplaceArgs {
    /// The document replaced, e.g. AA0000001.
    #[arg(long, value_name = "NUMBER")]
    document: String,
    /// lost or stolen (the old certificates revoked keyCompromise), damaged
    /// (cessationOfOperation), name-change (superseded; the holder file carries the new
    /// name, confirmed with --update-holder) or recalled (superseded: a card the national
    /// centre flagged for replacement, on an enrolled station).
    #[arg(long)]
    reason: String,
    /// The holder's personal data changed (a new name): the registry takes the holder file's
    /// data, each change audited. Confirm it against the holder's documents first.
    #[arg(long)]
    update_holder: bool,
    /// The holder record (JSON) for the new card: the same PINFL as the old document's holder.
    /// Without it, the registry's record of the holder of this station's document, with --photo.
    #[arg(long, value_name = "FILE", required_unless_present = "photo")]
    holder: Option<PathBuf>,
    /// The holder's photo for the new card (JPEG), when --holder is not given: everything else
    /// comes from this station's record of the holder (names, birth, address).
    #[arg(long, value_name = "FILE", conflicts_with = "holder")]
    photo: Option<PathBuf>,
    /// Reader with the blank card (or a unique part of its name); default: the one reader
    /// holding a card.
    #[arg(long)]
    reader: Option<String>,
    /// Read the holder's new PIN from this file descriptor (one line); without it the holder
    /// types it twice at a masked prompt.
    #[arg(long, value_name = "N")]
    pin_fd: Option<u32>,
    /// Write the new card's PIN letter to this new file.
    #[arg(long, value_name = "FILE")]
    pin_letter: PathBuf,
    #[command(flatten)]
    op: OperatorArg,
}

pub fn run(ctx: &Ctx, a: &ReplaceArgs) -> Result<(), StationError> {
    let (mut st, session) = ctx.open_as(&a.op.operator, "replace documents", &[Role::Clerk])?;
    let policy = holder_policy(st.document_profile()?);
    let checked = match (&a.holder, &a.photo) {
        (Some(file), _) => station::holder::load(file, &policy),
        (None, photo) => {
            let photo = photo
                .as_deref()
                .ok_or_else(|| StationError::invalid("photo", "give --holder or --photo"))?;
            let mut record =
                station::interactive::holder_record_of_document(&mut st, &session, &a.document)?
                    .ok_or_else(|| {
                        StationError::invalid(
                            "holder",
                            format!(
                                "this station has no record of document {}'s holder (another \
                                 office's card): give --holder, a holder file with the holder's \
                                 current address",
                                a.document
                            ),
                        )
                    })?;
            let photo = std::path::absolute(photo)
                .map_err(|e| StationError::invalid("photo", e.to_string()))?;
            record.photo = Some(photo.to_string_lossy().into_owned());
            station::holder::validate(&record, &policy, Some(std::path::Path::new("/")))
        }
    };
    let holder = checked.map_err(|errs| {
        let mut it = errs.into_iter();
        match it.next() {
            Some(first) => {
                let mut rule = first.rule;
                for e in it {
                    rule += &format!("; {e}");
                }
                StationError::invalid(first.field, rule)
            }
            None => StationError::invalid("holder", "the holder record was refused"),
        }
    })?;
    let pin = station::pin_letter::read_holder_pin(a.pin_fd)?;
    let input = ReplaceInput {
        document: a.document.clone(),
        reason: a.reason.clone(),
        issue: IssueInput {
            holder,
            reader: a.reader.clone(),
            pin,
            pin_letter: a.pin_letter.clone(),
            update_holder: a.update_holder,
        },
    };
    let quiet = ctx.json;
    let r = station::services::replace(&mut st, &session, &input, &mut |p| {
        if !quiet {
            match &p.card {
                Some(c) => eprintln!("[{}] {}/{} {}", p.step, c.index, c.total, c.step),
                None => eprintln!("[{}]", p.step),
            }
        }
    })?;
    ctx.print(&r, |r| report_text(r, a))
}

fn report_text(r: &ReplaceReport, a: &ReplaceArgs) -> String {
    format!(
        "Document {} replaced ({}): now {}, {} certificate(s) revoked {} (on the next CRL)\n\
         New document {} on card {} in {} (issuance job {}, replacement {})\n\
         PIN letter with the PUK: {} (hand it to the holder, then delete the file)\n",
        r.old_document,
        r.reason,
        r.old_status,
        r.revoked_certificates.len(),
        r.crl_reason,
        r.new.document,
        r.new.card_serial,
        r.new.reader,
        r.new.job_id,
        r.replacement,
        a.pin_letter.display()
    )
}
