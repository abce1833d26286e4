//! `idstation centre`: the national centre as this station sees it; the work is in
//! `station::centre`.

use clap::Subcommand;
use station::centre::status::{status, CentreStatus};
use station::error::StationError;
use station::Station;

use super::Ctx;

#[derive(Subcommand)]
pub enum CentreCmd {
    /// Whether the centre answers; the station and office as the centre sees them; the
    /// identity certificate's validity; the numbers left. When the centre cannot be reached,
    /// prints what the station knows and exits 7 at once.
    Status,
    /// Anchor the audit log at the centre now: the events after the head the centre holds, up
    /// to the latest signed checkpoint (issuances do this after each completion; this sends
    /// what an unreachable centre missed).
    PushAudit,
}

pub fn run(ctx: &Ctx, c: &CentreCmd) -> Result<(), StationError> {
    match c {
        CentreCmd::Status => {
            // The HSM is opened by the client alone (its identity key signs the handshake).
            let st = Station::open_read_only(ctx.data_dir)?;
            let (report, unreachable) = status(&st)?;
            ctx.print(&report, text)?;
            match unreachable {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
        CentreCmd::PushAudit => {
            let st = Station::open_read_only(ctx.data_dir)?;
            let p = station::centre::audit_push::push(&st)?;
            ctx.print(&p, |p| {
                format!(
                    "Audit log anchored at the centre up to event {} ({} event(s) sent; it held {} before)\n",
                    p.head_seq, p.events, p.from_seq
                )
            })
        }
    }
}

fn text(r: &CentreStatus) -> String {
    let l = &r.local;
    let mut s = format!(
        "Centre {}: {}\n",
        r.url,
        if r.reachable {
            "reachable"
        } else {
            "NOT reachable"
        }
    );
    s += &format!(
        "Station {} of office {} (this station)\n",
        l.station, l.office
    );
    if let Some(c) = &r.centre {
        s += &format!(
            "The centre knows it as station {} of office {}: {}\n",
            c.station, c.office, c.state
        );
        if let Some(n) = c.numbers_left {
            s += &format!("Numbers left at the centre: {n}\n");
        }
        if let Some(n) = c.open_jobs {
            s += &format!("Open jobs at the centre: {n}\n");
        }
        if let Some(n) = c.audit_head_seq {
            s += &format!("Audit events the centre holds: up to {n}\n");
        }
    }
    s += &format!(
        "Identity certificate {} (serial {}) valid {} to {} ({} days left)\n",
        l.identity.subject,
        l.identity.serial,
        l.identity.not_before,
        l.identity.not_after,
        l.identity.days_left
    );
    s += &format!(
        "Numbers left in the local number block: {}\n",
        l.numbers_left
    );
    for m in &r.missing {
        s += &format!("Unknown: {m}\n");
    }
    s
}
