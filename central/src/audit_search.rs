//! `idcentral audit search`: the national audit log filtered for an auditor (or a ca-admin),
//! newest first. The log holds personal data (holders' PINFLs in events' details), so every
//! search is itself audited (`audit.searched`, with the filter and how many events it
//! returned), in the transaction that read them; a refused filter as `audit.search-refused`
//! with the rule it broke. For evidence that leaves the centre, the
//! signed export (`audit export`) is the tool; a search is for finding things.

use deadpool_postgres::Pool;
use serde::Serialize;
use serde_json::json;

use crate::audit;
use crate::db::Prepared;
use crate::error::{CentralError, Result};
use crate::operators::Role;
use crate::operators::Session;

/// The most events one search returns.
pub const MAX_LIMIT: i64 = 10_000;

/// What to look for; every field given must match.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Filter {
    /// An action (`document.held`), or a prefix ending in `*` (`document.*`).
    pub action: Option<String>,
    /// The station that acted (`tas01-st1`; the centre's `[centre] name` for its own
    /// operators).
    pub station: Option<String>,
    /// The operator that acted.
    pub actor: Option<String>,
    /// The object (`document:AA0000001`, `job:…`, `station:…`).
    pub object: Option<String>,
    /// The rule a refusal names in its details (`lookup-limit`, `audit-head-does-not-extend`):
    /// with `request.refused`, what an auditor watches for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// From this day or time (inclusive): `YYYY-MM-DD` or RFC 3339 UTC.
    pub from: Option<String>,
    /// To this day (inclusive) or time (exclusive).
    pub to: Option<String>,
    /// At most this many events, newest first (1 to [`MAX_LIMIT`]).
    pub limit: i64,
}

/// One event as found.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub seq: i64,
    pub time: String,
    pub operator: String,
    pub role: String,
    pub station: String,
    pub action: String,
    pub object: String,
    pub details: serde_json::Value,
}

/// The events a search returned, newest first; `more` when the limit cut it short.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub events: Vec<Found>,
    pub more: bool,
}

fn check_text(field: &'static str, v: &Option<String>) -> Result<()> {
    match v {
        Some(s) if s.is_empty() || s.len() > 200 || s.chars().any(char::is_control) => {
            Err(CentralError::invalid(
                field,
                format!(
                    "{:?} must be 1 to 200 printable characters",
                    registry::audit::bounded_name(s)
                ),
            ))
        }
        _ => Ok(()),
    }
}

impl Filter {
    fn check(&self) -> Result<()> {
        if !(1..=MAX_LIMIT).contains(&self.limit) {
            return Err(CentralError::invalid(
                "limit",
                format!("{} must be 1 to {MAX_LIMIT}", self.limit),
            ));
        }
        check_text("action", &self.action)?;
        if let Some(a) = &self.action {
            let body = a.strip_suffix('*').unwrap_or(a);
            if body.contains('*')
                || !body
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c))
            {
                return Err(CentralError::invalid(
                    "action",
                    format!(
                        "{a:?} must be an action name (lower case, digits, '.', '-', '_'), \
                         or such a prefix followed by one '*'"
                    ),
                ));
            }
        }
        check_text("station", &self.station)?;
        check_text("actor", &self.actor)?;
        check_text("object", &self.object)?;
        check_text("rule", &self.rule)?;
        if let Some(r) = &self.rule {
            if !r
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_".contains(c))
            {
                return Err(CentralError::invalid(
                    "rule",
                    format!("{r:?} must be a rule name (lower case, digits, '-', '_')"),
                ));
            }
        }
        crate::audit_export::check_time_bound("from", self.from.as_deref())?;
        crate::audit_export::check_time_bound("to", self.to.as_deref())?;
        Ok(())
    }
}

/// Search the log as `session` (auditor or ca-admin: the caller logged in with those roles).
pub async fn search(pool: &Pool, session: &Session, filter: &Filter) -> Result<Outcome> {
    session.require(&[Role::Auditor, Role::CaAdmin], "search the audit log")?;
    if let Err(e) = filter.check() {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        // The values as given, each cut to a bounded length (a refused value may be anything).
        let b = |v: &Option<String>| v.as_deref().map(registry::audit::bounded_name);
        let given = json!({ "action": b(&filter.action), "station": b(&filter.station),
            "actor": b(&filter.actor), "object": b(&filter.object), "rule": b(&filter.rule),
            "from": b(&filter.from),
            "to": b(&filter.to), "limit": filter.limit });
        let d = json!({ "filter": given, "error": e.to_string() });
        audit::append(
            &tx,
            session.actor(),
            "audit.search-refused",
            "audit-log",
            &d,
        )
        .await?;
        tx.commit().await?;
        return Err(e);
    }
    let (exact, prefix) = match filter.action.as_deref() {
        Some(a) => match a.strip_suffix('*') {
            Some(p) => (None, Some(p.to_owned())),
            None => (Some(a.to_owned()), None),
        },
        None => (None, None),
    };
    let from = filter.from.as_deref().map(crate::audit_export::bound_text);
    let to = filter.to.as_deref().map(crate::audit_export::day_end);
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .prepared_query(
            "SELECT seq, time, operator, role, station, action, object, details FROM audit_log
             WHERE ($1::text IS NULL OR action = $1)
               AND ($2::text IS NULL OR starts_with(action, $2))
               AND ($3::text IS NULL OR station = $3)
               AND ($4::text IS NULL OR operator = $4)
               AND ($5::text IS NULL OR object = $5)
               AND ($6::text IS NULL OR time >= $6)
               AND ($7::text IS NULL OR time < $7)
               AND ($9::text IS NULL OR details::jsonb ->> 'rule' = $9)
             ORDER BY seq DESC LIMIT $8",
            &[
                &exact,
                &prefix,
                &filter.station,
                &filter.actor,
                &filter.object,
                &from,
                &to,
                &(filter.limit + 1),
                &filter.rule,
            ],
        )
        .await?;
    let more = rows.len() as i64 > filter.limit;
    let events: Vec<Found> = rows
        .iter()
        .take(filter.limit as usize)
        .map(|r| Found {
            seq: r.get(0),
            time: r.get(1),
            operator: r.get(2),
            role: r.get(3),
            station: r.get(4),
            action: r.get(5),
            object: r.get(6),
            details: serde_json::from_str(r.get::<_, &str>(7))
                .unwrap_or_else(|_| json!(r.get::<_, &str>(7))),
        })
        .collect();
    let details = json!({ "filter": filter, "returned": events.len(), "more": more,
        "newest_seq": events.first().map(|e| e.seq), "oldest_seq": events.last().map(|e| e.seq) });
    audit::append(
        &tx,
        session.actor(),
        "audit.searched",
        "audit-log",
        &details,
    )
    .await?;
    tx.commit().await?;
    Ok(Outcome { events, more })
}
