//! `idstation address set` / `address end`: a holder's registration addresses over the card's
//! life (seed decree: permanent and temporary registration, cancellation of a temporary
//! registration at the place of stay). Addresses are history: a new address is a new row, the
//! end of a temporary one is its own row (`address_ends`), nothing is updated or deleted. Each
//! change goes to the e-government outbox (`egov.address-changed`) and the audit log in the
//! same transaction. The chip is not touched: DG11 keeps the address printed at issuance (the
//! LDS is signed in EF.SOD and read-only after issuance; docs/station.md).
//!
//! On a station enrolled to a national centre the change is the centre's
//! ([`crate::service_seam::ServiceSeam::address`]): recorded in the national registry's history
//! and put in the centre's e-government outbox (which delivers it); the station's registry
//! mirrors it when it knows the holder, without a local outbox message (the report names the
//! centre's). A holder this station has no record of is changed at the centre only.

use registry::{AddressKind, AuditEntry, NewAddress, TOPIC_EGOV_ADDRESS_CHANGED};
use serde::Serialize;

use crate::error::StationError;
use crate::session::Session;
use crate::Station;

#[derive(Debug, Clone, Serialize)]
pub struct AddressReport {
    pub pinfl: String,
    /// `set` or `end`.
    pub change: String,
    pub address_id: i64,
    pub kind: String,
    pub outbox_message: i64,
    /// Every registration address of the holder, oldest first, with its end if it ended.
    pub history: Vec<AddressHistoryEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AddressHistoryEntry {
    pub address_id: i64,
    pub kind: String,
    pub text: String,
    pub registered_on: String,
    pub registered_until: Option<String>,
    pub ended_on: Option<String>,
    pub recorded_at: String,
    pub recorded_by: String,
}

/// A holder only the centre knows (no local record): the change made there, audited here.
fn at_centre_only(
    st: &mut Station,
    session: &Session,
    action: &str,
    pinfl: &str,
    set: Option<&NewAddress>,
    end_on: Option<&str>,
) -> Result<Option<AddressReport>, StationError> {
    if st.registry.holder_by_pinfl(pinfl)?.is_some() {
        return Ok(None);
    }
    let seam = crate::ra_services::seam(st);
    let r = match seam.address(st, session.actor(), pinfl, set, end_on) {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(None),
        Err(e) => return Err(refused(st, session, action, pinfl, e)),
    };
    st.registry.audit(&AuditEntry {
        actor: session.actor(),
        action,
        object: &format!("holder:{pinfl}"),
        details: &serde_json::json!({ "at_centre": true, "address_id": r.address_id, "outbox": r.outbox_id }),
    })?;
    Ok(Some(AddressReport {
        pinfl: pinfl.into(),
        change: if set.is_some() { "set" } else { "end" }.into(),
        address_id: r.address_id,
        kind: set.map_or("temporary", |a| a.kind.as_str()).into(),
        outbox_message: r.outbox_id,
        history: Vec::new(),
    }))
}

/// The change made in the national record (`None`: standalone), else refused and audited.
fn national(
    st: &mut Station,
    session: &Session,
    action: &str,
    pinfl: &str,
    set: Option<&NewAddress>,
    end_on: Option<&str>,
) -> Result<Option<centre_api::AddressResponse>, StationError> {
    let seam = crate::ra_services::seam(st);
    seam.address(st, session.actor(), pinfl, set, end_on)
        .map_err(|e| refused(st, session, action, pinfl, e))
}

fn holder(st: &Station, pinfl: &str) -> Result<registry::Holder, StationError> {
    st.registry
        .holder_by_pinfl(pinfl)?
        .ok_or_else(|| StationError::NotFound(format!("pinfl: no holder with PINFL {pinfl}")))
}

pub(crate) fn history(
    st: &Station,
    holder_id: i64,
) -> Result<Vec<AddressHistoryEntry>, StationError> {
    let ends = st.registry.address_ends(holder_id)?;
    Ok(st
        .registry
        .addresses(holder_id)?
        .into_iter()
        .map(|a| AddressHistoryEntry {
            address_id: a.id,
            kind: a.data.kind.as_str().into(),
            text: address_text(&a.data),
            registered_on: a.data.registered_on.clone(),
            registered_until: a.data.registered_until.clone(),
            ended_on: ends
                .iter()
                .find(|e| e.address_id == a.id)
                .map(|e| e.ended_on.clone()),
            recorded_at: a.recorded_at,
            recorded_by: a.recorded_by,
        })
        .collect())
}

pub(super) fn address_text(a: &NewAddress) -> String {
    let mut s = format!("{}, {}, {} {}", a.region, a.district, a.street, a.house);
    if let Some(ap) = &a.apartment {
        s += &format!(", apt {ap}");
    }
    s
}

/// Read a holder-address file: the `address` object of a holder file (kind, region, district,
/// street, house, apartment?, registered_on, registered_until for a temporary one).
pub fn read_address_file(path: &std::path::Path) -> Result<NewAddress, StationError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| StationError::invalid("holder_address", format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        StationError::invalid(
            "holder_address",
            format!("{}: not a registration address ({e})", path.display()),
        )
    })
}

/// `address set`: record `address` as the holder's new registration (permanent: it replaces
/// the permanent one before it; temporary: a registration at the place of stay until its
/// `registered_until`).
pub fn set(
    st: &mut Station,
    session: &Session,
    pinfl: &str,
    address: &NewAddress,
) -> Result<AddressReport, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "change addresses",
        &[registry::Role::Clerk],
    )?;
    if let Some(r) = at_centre_only(st, session, "address.set", pinfl, Some(address), None)? {
        return Ok(r);
    }
    let checked = (|| {
        let h = holder(st, pinfl)?;
        let on = crate::holder::parse_date(&address.registered_on)
            .map_err(|rule| StationError::invalid("address.registered_on", rule))?;
        if on > crate::time_util::today_utc() {
            return Err(StationError::invalid(
                "address.registered_on",
                format!("{} lies in the future", address.registered_on),
            ));
        }
        if address.registered_on.as_str() < h.data.date_of_birth.as_str() {
            return Err(StationError::invalid(
                "address.registered_on",
                format!(
                    "{} is before the holder's birth ({})",
                    address.registered_on, h.data.date_of_birth
                ),
            ));
        }
        Ok(h)
    })();
    let h = checked.map_err(|e| refused(st, session, "address.set", pinfl, e))?;
    let centre = national(st, session, "address.set", pinfl, Some(address), None)?;
    let tx = st.registry.transaction()?;
    let id = tx
        .add_address(h.id, address, session.actor())
        .map_err(StationError::from);
    let id = match id {
        Ok(id) => id,
        Err(e) => {
            drop(tx);
            return Err(refused(st, session, "address.set", pinfl, e));
        }
    };
    let msg = match &centre {
        Some(r) => r.outbox_id,
        None => tx.outbox_push(
            TOPIC_EGOV_ADDRESS_CHANGED,
            &serde_json::json!({
                "pinfl": pinfl,
                "change": "set",
                "address_id": id,
                "address": address,
            }),
        )?,
    };
    tx.audit(&AuditEntry {
        actor: session.actor(),
        action: "address.set",
        object: &format!("holder:{pinfl}"),
        details: &serde_json::json!({ "address_id": id, "kind": address.kind.as_str(), "outbox": msg }),
    })?;
    tx.commit()?;
    Ok(AddressReport {
        pinfl: pinfl.into(),
        change: "set".into(),
        address_id: id,
        kind: address.kind.as_str().into(),
        outbox_message: msg,
        history: history(st, h.id)?,
    })
}

/// `address end --kind temporary`: the holder's current temporary registration cancelled on
/// `ended_on` (default today). A permanent registration is never ended, only replaced.
pub fn end(
    st: &mut Station,
    session: &Session,
    pinfl: &str,
    kind: &str,
    ended_on: Option<&str>,
) -> Result<AddressReport, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "change addresses",
        &[registry::Role::Clerk],
    )?;
    let today = crate::time_util::today_utc();
    let ended_on = match ended_on {
        Some(d) => d.to_string(),
        None => format!(
            "{:04}-{:02}-{:02}",
            today.year(),
            u8::from(today.month()),
            today.day()
        ),
    };
    if kind == "temporary" {
        if let Some(r) = at_centre_only(
            st,
            session,
            "address.end",
            pinfl,
            None,
            Some(ended_on.as_str()),
        )? {
            return Ok(r);
        }
    }
    let checked = (|| {
        if kind != "temporary" {
            return Err(StationError::invalid(
                "kind",
                format!(
                    "{kind:?}: only a temporary registration is cancelled (--kind temporary); a \
                     permanent one is replaced with `idstation address set`"
                ),
            ));
        }
        let on = crate::holder::parse_date(&ended_on)
            .map_err(|rule| StationError::invalid("ended_on", rule))?;
        if on > today {
            return Err(StationError::invalid(
                "ended_on",
                format!("{ended_on} lies in the future"),
            ));
        }
        let h = holder(st, pinfl)?;
        let ends = st.registry.address_ends(h.id)?;
        let current = st
            .registry
            .addresses(h.id)?
            .into_iter()
            .rev()
            .find(|a| {
                a.data.kind == AddressKind::Temporary
                    && !ends.iter().any(|e| e.address_id == a.id)
                    && a.data
                        .registered_until
                        .as_deref()
                        .is_none_or(|u| u >= ended_on.as_str())
            })
            .ok_or_else(|| {
                StationError::Conflict(format!(
                    "kind: holder {pinfl} has no current temporary registration to cancel"
                ))
            })?;
        Ok((h, current))
    })();
    let (h, current) = checked.map_err(|e| refused(st, session, "address.end", pinfl, e))?;
    let centre = national(
        st,
        session,
        "address.end",
        pinfl,
        None,
        Some(ended_on.as_str()),
    )?;
    let tx = st.registry.transaction()?;
    if let Err(e) = tx.end_address(current.id, &ended_on, "cancelled", session.actor()) {
        drop(tx);
        return Err(refused(st, session, "address.end", pinfl, e.into()));
    }
    let msg = match &centre {
        Some(r) => r.outbox_id,
        None => tx.outbox_push(
            TOPIC_EGOV_ADDRESS_CHANGED,
            &serde_json::json!({
                "pinfl": pinfl,
                "change": "end",
                "address_id": current.id,
                "kind": "temporary",
                "ended_on": ended_on,
            }),
        )?,
    };
    tx.audit(&AuditEntry {
        actor: session.actor(),
        action: "address.ended",
        object: &format!("holder:{pinfl}"),
        details: &serde_json::json!({ "address_id": current.id, "ended_on": ended_on, "outbox": msg }),
    })?;
    tx.commit()?;
    Ok(AddressReport {
        pinfl: pinfl.into(),
        change: "end".into(),
        address_id: current.id,
        kind: "temporary".into(),
        outbox_message: msg,
        history: history(st, h.id)?,
    })
}

/// An audited refusal of an address change (object: the holder).
fn refused(
    st: &mut Station,
    session: &Session,
    action: &str,
    pinfl: &str,
    e: StationError,
) -> StationError {
    let (action, object) = (format!("{action}.refused"), format!("holder:{pinfl}"));
    crate::audit::refused(st, session, &action, &object, e)
}
