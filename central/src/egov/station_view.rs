//! The outbox as an enrolled station's operator sees it (`POST /v1/outbox/list`,
//! `POST /v1/outbox/{id}/retry`; docs/egov.md "The station's view"): the same list and retry
//! as `idcentral outbox`, asked over mutual TLS by a station on behalf of its operator.
//!
//! The station logged its operator in and checked the role in its core; the centre does not
//! know the station's operators, so it checks the role the station names against the centre's
//! own rule — a list for ca-admin or auditor, a retry for ca-admin — and refuses anything else
//! (`operator-role-not-permitted`, 403). The events name the station, its operator and that
//! role (`outbox.read`, `outbox.retried`); every refusal is audited by the API layer
//! (`request.refused`).

use centre_api::{
    roles, rules, OutboxList, OutboxListRequest, OutboxMessage, OutboxRetryRequest, WhoAmI,
};

use super::outbox::{self, RetryRefused};
use crate::error::{CentralError, Refusal, Result};
use crate::pki::Centre;

/// The roles that may list the outbox.
const LIST_ROLES: &[&str] = &[roles::CA_ADMIN, roles::AUDITOR];
/// The roles that may retry a dead letter.
const RETRY_ROLES: &[&str] = &[roles::CA_ADMIN];

/// `POST /v1/outbox/list`: every message, or the dead letters only; the read audited.
pub async fn list(centre: &Centre, who: &WhoAmI, req: &OutboxListRequest) -> Result<OutboxList> {
    let actor = crate::operators::station_operator(
        who,
        &req.operator,
        &req.role,
        "read the e-government outbox",
        LIST_ROLES,
    )?;
    let limit = req.limit.unwrap_or(centre_api::OUTBOX_LIST_MAX);
    let (messages, more) = outbox::list(&centre.pool, &actor, req.failed_only, limit, None).await?;
    Ok(OutboxList { messages, more })
}

/// The outbox id in a path: a positive whole number.
pub fn parse_id(id: &str) -> Result<i64> {
    id.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        CentralError::invalid(
            "id",
            format!(
                "{:?} must be an outbox message number (a positive whole number)",
                registry::audit::bounded_name(id)
            ),
        )
    })
}

/// `POST /v1/outbox/{id}/retry`: the dead letter `id` pending again, audited.
pub async fn retry(
    centre: &Centre,
    who: &WhoAmI,
    id: &str,
    req: &OutboxRetryRequest,
) -> Result<OutboxMessage> {
    let id = parse_id(id)?;
    let actor = crate::operators::station_operator(
        who,
        &req.operator,
        &req.role,
        "retry e-government messages",
        RETRY_ROLES,
    )?;
    match outbox::retry_message(&centre.pool, &actor, id).await? {
        Ok(message) => Ok(message),
        Err(why @ RetryRefused::NoSuchMessage) => Err(CentralError::refused(
            Refusal::NotFound,
            rules::OUTBOX_MESSAGE_NOT_FOUND,
            why.sentence(id),
        )),
        Err(why @ RetryRefused::NotFailed(_)) => Err(CentralError::refused(
            Refusal::Conflict,
            rules::OUTBOX_MESSAGE_NOT_FAILED,
            why.sentence(id),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who() -> WhoAmI {
        WhoAmI {
            station: "tas01-st1".into(),
            office: "TAS01".into(),
            state: "enrolled".into(),
        }
    }

    #[test]
    fn the_centre_checks_the_role_the_station_names() {
        let a = crate::operators::station_operator(&who(), "aud1", "auditor", "list", LIST_ROLES)
            .unwrap();
        assert_eq!(
            (a.operator.as_str(), a.role.as_str(), a.station.as_str()),
            ("aud1", "auditor", "tas01-st1")
        );
        let e = crate::operators::station_operator(&who(), "aud1", "auditor", "retry", RETRY_ROLES)
            .unwrap_err();
        assert_eq!(e.rule(), Some(rules::OPERATOR_ROLE_NOT_PERMITTED));
        assert!(
            e.to_string().contains("role: a auditor may not retry"),
            "{e}"
        );
        let e = crate::operators::station_operator(&who(), "clerk1", "clerk", "list", LIST_ROLES)
            .unwrap_err();
        assert_eq!(e.rule(), Some(rules::OPERATOR_ROLE_NOT_PERMITTED));
        let e = crate::operators::station_operator(&who(), "a", "root", "list", LIST_ROLES)
            .unwrap_err();
        assert!(e.to_string().contains("role"), "{e}");
        assert_eq!(e.rule(), Some("invalid-request"));
        let e =
            crate::operators::station_operator(&who(), "Bad Name", "ca-admin", "list", LIST_ROLES)
                .unwrap_err();
        assert!(e.to_string().contains("operator"), "{e}");
    }

    #[test]
    fn an_outbox_id_is_a_positive_whole_number() {
        assert_eq!(parse_id("7").unwrap(), 7);
        for bad in ["0", "-1", "x", ""] {
            let e = parse_id(bad).unwrap_err().to_string();
            assert!(
                e.contains("id") && e.contains("positive whole number"),
                "{e}"
            );
        }
    }
}
