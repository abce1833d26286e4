//! `idstation inspect`: the card in a reader read as an inspection system reads it, each check
//! reported (the work is `station::inspect`). The CAN comes from a file descriptor, never the
//! command line; the exit code is not 0 unless every check passed.

use clap::Args;
use station::error::StationError;
use station::inspect::{InspectAccess, InspectInput, InspectReport};
use station::records;

use super::{Ctx, OperatorArg};

#[derive(Args)]
#[command(group(clap::ArgGroup::new("access").required(true).args(["can_fd", "mrz_from_registry"])))]
pub struct InspectArgs {
    /// Reader name (or a unique part of it); default: the one reader holding a card.
    #[arg(long)]
    reader: Option<String>,
    /// Open the chip with PACE and the CAN printed on the card face, read as one line from
    /// this file descriptor (`--can-fd 0`: the line of standard input after the operator's
    /// password).
    #[arg(long, value_name = "N")]
    can_fd: Option<u32>,
    /// Open the chip with the MRZ of the document the registry has for this card (PACE with
    /// the MRZ; BAC on a card that offers no PACE).
    #[arg(long)]
    mrz_from_registry: bool,
    #[command(flatten)]
    op: OperatorArg,
}

pub fn run(ctx: &Ctx, a: &InspectArgs) -> Result<(), StationError> {
    let (mut st, session) =
        ctx.open_read_only_as(&a.op.operator, "inspect cards", records::READ_ROLES)?;
    let access = match a.can_fd {
        Some(fd) => InspectAccess::Can(station::secret_input::fd_line(fd, "can-fd")?),
        None => InspectAccess::MrzFromRegistry,
    };
    let input = InspectInput {
        reader: a.reader.clone(),
        access,
    };
    let r = station::inspect::inspect(&mut st, &session, &input)?;
    ctx.print(&r, report_text)?;
    if r.passed {
        Ok(())
    } else {
        Err(StationError::Conflict(format!(
            "inspection of the card in {}: not every check passed (see the report)",
            r.reader
        )))
    }
}

fn check_text(c: &personalization::pace::inspect::Check) -> String {
    use personalization::pace::inspect::Check;
    match c {
        Check::Passed => "passed".into(),
        Check::Failed(why) => format!("FAILED: {why}"),
        Check::NotOffered(why) => format!("not run: {why}"),
    }
}

fn report_text(r: &InspectReport) -> String {
    let i = &r.inspection;
    let mut s = format!(
        "Card {} in {}{}\n",
        r.card_serial.as_deref().unwrap_or("(no PIV serial)"),
        r.reader,
        r.document
            .as_deref()
            .map(|d| format!(", document {d}"))
            .unwrap_or_default()
    );
    s += &format!(
        "  access control         {}{}\n",
        i.access_control,
        i.pace_domain.map(|d| format!(" ({d})")).unwrap_or_default()
    );
    s += &format!(
        "  chip authentication    {}\n",
        check_text(&i.chip_authentication)
    );
    s += &format!(
        "  active authentication  {}\n",
        check_text(&i.active_authentication)
    );
    s += &format!(
        "  passive authentication {}\n",
        check_text(&i.passive_authentication)
    );
    for d in &i.data_groups {
        s += &format!(
            "  DG{:<2} {:>6} bytes  sha256 {}  {}\n",
            d.number,
            d.length,
            d.sha256,
            if d.matches_sod {
                "matches EF.SOD"
            } else {
                "DOES NOT MATCH EF.SOD"
            }
        );
    }
    s += if r.passed {
        "All checks passed.\n"
    } else {
        "NOT every check passed.\n"
    };
    s
}
