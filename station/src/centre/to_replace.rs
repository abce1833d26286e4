//! The office's cards the centre flagged for replacement, seen from an enrolled station
//! (`idstation centre cards-to-replace`; docs/centre.md "Cutting a station off"): cards still
//! in use whose EF.SOD can no longer be authenticated — their station's Document Signer was
//! revoked, or the CSCA key that certified it withdrawn from the CSCA Master List — so the
//! office calls their holders in for a replacement.
//!
//! A read of personal data: the station checks the operator's role in its core, the centre
//! checks the role the station names again and audits the read (`documents.replacement-listed`
//! with the station and operator); the station's own log records it too
//! (`documents.replacement-listed` with `"at_centre": true`), and a refusal by the centre as
//! `operator.refused`.

use centre_api::{paths, CardsToReplaceRequest};
/// The wire types, for the station's callers.
pub use centre_api::{CardToReplace, CardsToReplace};
use registry::{AuditEntry, Role};

use super::outbox::refused_audited;
use super::CentreClient;
use crate::error::StationError;
use crate::session::Session;
use crate::Station;

/// Who may list them: every role that serves the office's holders or reviews it.
pub const ROLES: &[Role] = &[Role::Clerk, Role::CaAdmin, Role::Auditor];

const ACTION: &str = "list the cards to replace";

/// The cards of this station's office flagged for replacement at the centre, oldest flag first.
/// Not enrolled: `invalid` naming `centre`; the centre down: [`StationError::CentreUnreachable`].
pub fn list(st: &mut Station, session: &Session) -> Result<CardsToReplace, StationError> {
    ask(st, session, None)
}

/// Document `number` of this office as the centre flagged it for replacement, or `None` when it
/// is not flagged (in use and not replaced): what a replacement the centre recalled checks
/// first. Audited as [`list`] is, naming the document.
pub fn flagged(
    st: &mut Station,
    session: &Session,
    number: &str,
) -> Result<Option<CardToReplace>, StationError> {
    let list = ask(st, session, Some(number))?;
    Ok(list.cards.into_iter().find(|c| c.document == number))
}

fn ask(
    st: &mut Station,
    session: &Session,
    document: Option<&str>,
) -> Result<CardsToReplace, StationError> {
    crate::session::require_current(&mut st.registry, session, ACTION, ROLES)?;
    let req = CardsToReplaceRequest {
        operator: session.actor().operator.clone(),
        role: session.role().as_str().to_owned(),
        document: document.map(str::to_owned),
    };
    let answer =
        CentreClient::for_station(st)?.post::<_, CardsToReplace>(paths::CARDS_TO_REPLACE, &req);
    let object = match document {
        Some(d) => format!("document:{d}"),
        None => format!("office:{}", st.config.station.office),
    };
    let list = refused_audited(st, session, ACTION, &object, answer)?;
    let documents: Vec<&str> = list.cards.iter().map(|c| c.document.as_str()).collect();
    st.registry.audit(&AuditEntry {
        actor: session.actor(),
        action: "documents.replacement-listed",
        object: &object,
        details: &serde_json::json!({ "at_centre": true, "documents": documents }),
    })?;
    Ok(list)
}
