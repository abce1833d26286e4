//! `idstation card …`: the card in a reader as the desk's Card services shows it (`card show`;
//! the work is `station::services::identify`), and what happens to a physical card after its
//! document left use (`card returned`; `station::services::card_returned`).

use clap::{Args, Subcommand};
use registry::Role;
use station::error::StationError;
use station::services::identify::{Blocker, CardIdentity, National, PinState};

use super::{Ctx, OperatorArg};

#[derive(Subcommand)]
pub enum CardCmd {
    /// The issued card in a reader: its holder, document, certificates and addresses, and
    /// which card services apply to it now (each refused one with its reason). On a station
    /// enrolled with the national centre, a card another office issued is shown as the
    /// national registry has it. Reads only; the read of the holder's data is audited.
    Show(ShowArgs),
    /// A card brought back to the office (damaged, replaced, found): recorded as returned and
    /// destroyed. Its document must be out of use (revoked, lost, expired).
    Returned(ReturnedArgs),
}

#[derive(Args)]
pub struct ShowArgs {
    /// The reader holding the card (default: the one reader with a card in it).
    #[arg(long, value_name = "READER")]
    reader: Option<String>,
    #[command(flatten)]
    op: OperatorArg,
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
        CardCmd::Show(a) => {
            let (mut st, session) =
                ctx.open_as(&a.op.operator, "identify cards", &[Role::Clerk])?;
            let id = station::services::identify(&mut st, &session, a.reader.as_deref())?;
            ctx.print(&id, show_text)
        }
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

fn show_text(id: &CardIdentity) -> String {
    let h = &id.holder;
    let mut out = format!(
        "Card {} in {}\nHolder: {} (PINFL {}), born {}\n",
        id.card_serial,
        id.reader,
        super::show::full_name(&h.surname, &h.given_names, h.patronymic.as_deref()),
        h.pinfl,
        h.date_of_birth
    );
    if let Some(office) = &id.issued_elsewhere {
        out += &format!(
            "Issued by office {office}; this station has no record of it: the national registry's record\n"
        );
    }
    let d = &id.document;
    out += &format!(
        "Document {}: {}, issued {}, expires {}\n",
        d.number, d.status, d.date_of_issue, d.date_of_expiry
    );
    if let (Some(since), Some(until)) = (&id.suspended_since, &id.resume_until) {
        out += &format!("Suspended at {since}; may be resumed until {until}\n");
    }
    out += &national_text(id);
    out += &format!(
        "PIN: {}\n",
        match id.pin {
            PinState::Blocked => "blocked".to_owned(),
            PinState::TriesLeft(n) => format!("{n} tries left"),
        }
    );
    for c in &id.certificates {
        let on = if id.on_card.contains(&c.serial) {
            ", on the card"
        } else {
            ""
        };
        let why = c
            .reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        out += &format!(
            "Certificate {} {}: {}{why}, until {}{on}\n",
            c.slot, c.serial, c.status, c.not_after
        );
    }
    for a in &id.addresses {
        let ended = a
            .ended_on
            .as_deref()
            .map(|e| format!(", ended {e}"))
            .unwrap_or_default();
        out += &format!(
            "Address ({}): {}, from {}{ended}\n",
            a.kind, a.text, a.registered_on
        );
    }
    for o in &id.offers {
        let name = format!("{:?}", o.service);
        match &o.refused {
            None => out += &format!("  {name:<13} available\n"),
            Some(b) => out += &format!("  {name:<13} not now: {}\n", blocker_text(b)),
        }
    }
    out
}

/// What the national centre says of the card beyond the record shown (an enrolled station).
fn national_text(id: &CardIdentity) -> String {
    let mut out = String::new();
    if let Some(Some(why)) = id.national.as_ref().map(|n| match n {
        National::Unanswered(why) => Some(why),
        National::Record { .. } => None,
    }) {
        out += &format!(
            "The national centre's record was not read ({why}): shown as this station has it; \
             whether the centre changed or flagged the card is not known\n"
        );
    }
    if let Some(state) = id.national_state_differs() {
        out += &format!(
            "The national registry says the document is {state} (this station's record says {}): \
             the centre's record is the one that counts, and the services follow it\n",
            id.document.status
        );
    }
    if let Some(due) = id.replacement_due() {
        out += &format!(
            "To be replaced: the national centre flagged this card at {}: {}. Its chip data can no \
             longer be authenticated; call the holder in for a new card\n",
            due.flagged_at, due.reason
        );
    }
    out
}

/// Why a service does not apply, in the CLI's words (the desk says it in its own language).
fn blocker_text(b: &Blocker) -> String {
    match b {
        Blocker::DocumentStatus(s) => format!("the document is {s}"),
        Blocker::CardNotLocked(l) => format!("the card was never finished at issuance ({l})"),
        Blocker::PinBlocked => "the PIN is blocked: unblock it first".into(),
        Blocker::Expired(d) => format!("the document expired on {d}"),
        Blocker::SuspensionLimit { days, since } => format!(
            "suspended at {since}, not resumed within {days} day(s): the document must be revoked"
        ),
        Blocker::DocumentInUse(s) => format!("the document is still {s}"),
        Blocker::AlreadyReturned(at) => format!("already returned at {at}"),
        Blocker::NoTemporaryAddress => "no temporary registration in force".into(),
        Blocker::IssuedElsewhere(office) => format!(
            "only at office {office}, which issued the card (its card keys and records are there)"
        ),
    }
}
