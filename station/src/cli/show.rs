//! `idstation show`: a holder, a document or an issuance job with its certificates and status
//! (docs/station.md, "show, revoke"); every read of a holder's record is audited by
//! `station::records`.

use clap::Args;
use registry::Role;
use station::error::StationError;
use station::records::{self, CertView, DocumentView, HolderView, JobView};
use station::session::Session;
use station::Station;

use super::{Ctx, OperatorArg};

#[derive(Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["document", "pinfl", "job"])))]
pub struct ShowArgs {
    /// Document number, e.g. AA0000001: the document, its holder, MRZ and certificates; a
    /// spoiled number says what became of it; on a station enrolled with the national centre
    /// a clerk sees another office's document as the national registry has it.
    #[arg(long, value_name = "NUMBER")]
    document: Option<String>,
    /// The holder's PINFL (14 digits): the holder with every document and issuance job.
    #[arg(long, value_name = "PINFL")]
    pinfl: Option<String>,
    /// Issuance job number (printed by `issue`): its state, steps and certificates.
    #[arg(long, value_name = "ID")]
    job: Option<i64>,
    #[command(flatten)]
    op: OperatorArg,
}

pub fn run(ctx: &Ctx, a: &ShowArgs) -> Result<(), StationError> {
    let (mut st, session) =
        ctx.open_read_only_as(&a.op.operator, "read holder records", records::READ_ROLES)?;
    let (v, text) = match (&a.document, &a.pinfl, a.job) {
        (Some(num), _, _) => {
            let (h, d) = match records::show_document(&mut st, &session, num) {
                Ok(found) => found,
                Err(StationError::NotFound(e)) => {
                    let (v, text) = not_here(&mut st, &session, num, e)?;
                    return ctx.print(&v, |_| text);
                }
                Err(e) => return Err(e),
            };
            let text = format!("{}{}", holder_line(&h), document_text(&d));
            // `mrz` and `can` at the top level too: other tools open the chip with them.
            (
                serde_json::json!({
                    "mrz": d.mrz.clone(),
                    "can": d.can.clone(),
                    "holder": h,
                    "document": d,
                }),
                text,
            )
        }
        (_, Some(p), _) => {
            let h = records::show_pinfl(&mut st, &session, p)?;
            let mut text = holder_line(&h);
            for d in &h.documents {
                text += &document_text(d);
            }
            for j in &h.jobs {
                text += &job_text(j);
            }
            (serde_json::json!({ "holder": h }), text)
        }
        (_, _, Some(j)) => {
            let j = records::show_job(&mut st, &session, j)?;
            let text = job_text(&j);
            (serde_json::json!({ "job": j }), text)
        }
        _ => {
            return Err(StationError::invalid(
                "show",
                "give --document, --pinfl or --job",
            ))
        }
    };
    ctx.print(&v, |_| text)
}

/// A number this station has no document for: a spoiled number says what became of it; on a
/// station enrolled with the national centre a clerk sees the national registry's record
/// (another office's document: whose it is and its state, audited here and at the centre).
fn not_here(
    st: &mut Station,
    session: &Session,
    num: &str,
    not_found: String,
) -> Result<(serde_json::Value, String), StationError> {
    if let Some(s) = station::interactive::spoiled_number(st, session, num)? {
        let text = format!(
            "Document number {} was spoiled: issuance job {} ended at {} without issuing it{}\n",
            s.document,
            s.job_id,
            s.when,
            s.card_serial
                .as_deref()
                .map(|c| format!(" (card {c})"))
                .unwrap_or_default()
        );
        return Ok((serde_json::json!({ "spoiled": s }), text));
    }
    if st.config.centre.is_none() || session.role() != Role::Clerk {
        return Err(StationError::NotFound(not_found));
    }
    let found = station::services::document_at_centre(st, session, num)?;
    let text = at_centre_text(&found);
    Ok((serde_json::json!({ "at_centre": found }), text))
}

/// Another office's document as the national registry has it (`show --document`'s text form).
fn at_centre_text(d: &centre_api::CardAtCentre) -> String {
    let h = &d.holder;
    let mut s = format!(
        "Holder {}: {}, born {} (the national registry's record)\n\
         Document {} {}, office {} (issued at another office), issued {}, expires {}\n",
        h.pinfl,
        full_name(&h.surname, &h.given_names, h.patronymic.as_deref()),
        h.date_of_birth,
        d.document,
        d.state,
        d.office,
        d.date_of_issue,
        d.date_of_expiry
    );
    if let (Some(at), Some(until)) = (&d.suspended_at, &d.release_until) {
        s += &format!("  suspended at {at}; may be resumed until {until}\n");
    }
    s
}

/// "SURNAME GIVEN PATRONYMIC", as the text forms print a holder.
pub(super) fn full_name(surname: &str, given: &str, patronymic: Option<&str>) -> String {
    match patronymic {
        Some(p) => format!("{surname} {given} {p}"),
        None => format!("{surname} {given}"),
    }
}

/// `show`'s text form (docs/station.md, "show, revoke"): one line for the holder.
fn holder_line(h: &HolderView) -> String {
    format!(
        "Holder {}: {}, born {}, citizenship {}\n",
        h.pinfl,
        full_name(&h.surname, &h.given_names, h.patronymic.as_deref()),
        h.date_of_birth,
        h.citizenship
    )
}

fn certificates_text(certs: &[CertView]) -> String {
    certs
        .iter()
        .map(|c| {
            format!(
                "  certificate {} {} {}{}, valid until {}\n",
                c.serial,
                c.profile,
                c.status,
                c.revocation_reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                c.not_after
            )
        })
        .collect()
}

/// A document: status, dates, card, job, MRZ, certificates.
fn document_text(d: &DocumentView) -> String {
    let mut s = format!(
        "Document {} {}, office {}, issued {}, expires {}, card {}, job {}\n",
        d.document,
        d.status,
        d.office,
        if d.date_of_issue.is_empty() {
            "-"
        } else {
            &d.date_of_issue
        },
        if d.date_of_expiry.is_empty() {
            "-"
        } else {
            &d.date_of_expiry
        },
        d.card_serial.as_deref().unwrap_or("-"),
        d.job_id
            .map(|j| j.to_string())
            .unwrap_or_else(|| "-".into())
    );
    if let Some(mrz) = &d.mrz {
        for (i, line) in mrz.iter().enumerate() {
            s += &format!("  {} {line}\n", if i == 0 { "MRZ" } else { "   " });
        }
    }
    if let Some(can) = &d.can {
        s += &format!("  CAN {can} (printed on the card face; opens the chip with PACE)\n");
    }
    s + &certificates_text(&d.certificates)
}

/// An issuance job: state, document, card, operator, steps, error, certificates.
fn job_text(j: &JobView) -> String {
    let mut s = format!(
        "Job {} {}, document {}, card {}, by {} at {}\n",
        j.job_id,
        j.state,
        j.document.as_deref().unwrap_or("-"),
        j.card_serial.as_deref().unwrap_or("-"),
        j.operator,
        j.created_at
    );
    if !j.steps.is_empty() {
        s += &format!("  steps: {}\n", j.steps.join(", "));
    }
    if let Some(e) = &j.error {
        s += &format!("  error: {e}\n");
    }
    s + &certificates_text(&j.certificates)
}
