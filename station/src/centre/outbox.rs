//! The centre's e-government outbox seen from an enrolled station (docs/egov.md "The
//! station's view"): the dead letters and deliveries of `idcentral`'s publisher, listed and
//! retried through `POST /v1/outbox/list` and `POST /v1/outbox/{id}/retry` on behalf of the
//! logged-in operator.
//!
//! The role is checked here, in the core, before anything is asked (a list: ca-admin or
//! auditor; a retry: ca-admin; refusals audited `operator.refused` like every station
//! refusal); the centre checks the role the station names again and audits the read and the
//! retry itself. The station's own log records what its operator did (`outbox.read`,
//! `outbox.retried` with `"at_centre": true`) and a refusal by the centre (`operator.refused`
//! with its rule). A standalone station has no centre: `idstation outbox list` shows its own
//! outbox (`records::outbox_list`).

pub use centre_api::OutboxList;
use centre_api::{paths, OutboxListRequest, OutboxRetryRequest};
/// The wire types of a message, for the station's callers (the GUI names no other crate).
pub use centre_api::{OutboxMessage, OutboxStatus};
use registry::{AuditEntry, Role};

use super::CentreClient;
use crate::error::StationError;
use crate::session::Session;
use crate::Station;

/// Who may list the centre's outbox from a station.
pub const LIST_ROLES: &[Role] = &[Role::CaAdmin, Role::Auditor];
/// Who may put a dead letter back in the queue.
pub const RETRY_ROLES: &[Role] = &[Role::CaAdmin];

const LIST_ACTION: &str = "read the centre's e-government outbox";
const RETRY_ACTION: &str = "retry e-government messages";

/// The centre's outbox: the newest `limit` messages (absent: the most the centre answers,
/// [`centre_api::OUTBOX_LIST_MAX`]), or only the dead letters (`failed_only`), oldest first;
/// `more` when older ones were left out.
/// Not enrolled: `invalid` naming `centre`; the centre down: [`StationError::CentreUnreachable`].
pub fn list(
    st: &mut Station,
    session: &Session,
    failed_only: bool,
    limit: Option<u32>,
) -> Result<OutboxList, StationError> {
    crate::session::require_current(&mut st.registry, session, LIST_ACTION, LIST_ROLES)?;
    if let Some(rule) = limit.and_then(centre_api::outbox_limit_rule) {
        return Err(StationError::invalid("limit", rule));
    }
    let req = OutboxListRequest {
        operator: session.actor().operator.clone(),
        role: session.role().as_str().to_owned(),
        failed_only,
        limit,
    };
    let answer = CentreClient::for_station(st)?.post::<_, OutboxList>(paths::OUTBOX_LIST, &req);
    let list = refused_audited(st, session, LIST_ACTION, "outbox", answer)?;
    let ids: Vec<i64> = list.messages.iter().map(|m| m.id).collect();
    st.registry.audit(&AuditEntry {
        actor: session.actor(),
        action: "outbox.read",
        object: "outbox",
        details: &serde_json::json!({ "at_centre": true, "failed_only": failed_only,
                                      "messages": ids, "more": list.more }),
    })?;
    Ok(list)
}

/// Put the centre's dead letter `id` back in its queue: it is `pending` again, due now.
pub fn retry(st: &mut Station, session: &Session, id: i64) -> Result<OutboxMessage, StationError> {
    crate::session::require_current(&mut st.registry, session, RETRY_ACTION, RETRY_ROLES)?;
    if id <= 0 {
        return Err(StationError::invalid(
            "id",
            format!("{id} must be an outbox message number (a positive whole number)"),
        ));
    }
    let req = OutboxRetryRequest {
        operator: session.actor().operator.clone(),
        role: session.role().as_str().to_owned(),
    };
    let object = format!("outbox:{id}");
    let answer = CentreClient::for_station(st)?.post(&paths::outbox_retry(id), &req);
    let message: OutboxMessage = refused_audited(st, session, RETRY_ACTION, &object, answer)?;
    st.registry.audit(&AuditEntry {
        actor: session.actor(),
        action: "outbox.retried",
        object: &object,
        details: &serde_json::json!({ "at_centre": true, "message": id, "topic": message.topic, "document": message.document }),
    })?;
    Ok(message)
}

/// `answer`, with a refusal by the centre written to the station's log as the operator's
/// refused `action` (its rule and sentence); other errors pass unaudited (nothing was refused).
pub(crate) fn refused_audited<T>(
    st: &mut Station,
    session: &Session,
    action: &str,
    object: &str,
    answer: Result<T, StationError>,
) -> Result<T, StationError> {
    if let Err(StationError::CentreRefused { refusal, .. }) = &answer {
        let details = serde_json::json!({
            "action": action, "reason": "refused by the centre",
            "rule": refusal.rule, "error": refusal.error,
        });
        let audited = st.registry.audit(&AuditEntry {
            actor: session.actor(),
            action: "operator.refused",
            object,
            details: &details,
        });
        if let Err(e) = audited {
            tracing::error!(error = %e, "could not audit the centre's refusal");
        }
    }
    answer
}
