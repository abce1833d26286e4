//! CA key rotation at the centre, under dual control (`idcentral ca rotate|approve|refuse|
//! requests|recover|list`; docs/centre.md "CA key rotation").
//!
//! A ca-admin files a request to replace the active key of the e-Signature CA, the CSCA, the
//! Station CA or the National Root; a second ca-admin approves it, and the approval executes
//! it. The rules are the station's (docs/rotation.md): the requester never approves their own
//! request (also a CHECK in the database); only an operator who was already a ca-admin when the
//! request was filed may approve it; a request expires after [`REQUEST_EXPIRY_HOURS`]; one
//! pending request per CA; a refused, expired or executed request cannot be approved. Every
//! refusal is audited (`ca.request.refused-attempt`, with the rule).
//!
//! Execution is journaled in the request's row, each step committed before the next side
//! effect: (1) the new key's label (`esign-ca-<N+1>`, `csca-<N+1>`, `station-ca-<N+1>`,
//! `root-ca-<N+1>`) → (2) the key generated in the HSM (non-extractable; a key already there
//! under the journaled label is used, never made twice) → (3) its certificate signed (the
//! e-Signature CA and the Station CA by the active root, the CSCA and the root self-signed with
//! both link certificates) and recorded → (4) the switch: one transaction retires the old key
//! and makes the new one active, marks the request executed and audits `ca.key.rotated`. A
//! crash leaves the old key the one active key; `idcentral ca recover` finishes the request
//! from its journal. Running centres pick the new key up at their next issuance
//! (`Centre::active_issuer` reads the active key in the issuance's transaction; the TLS
//! verifier reads the Station CA keys every 2 s): the retired key keeps its certificate and
//! signs nothing new.

use crate::db::Prepared;
use std::time::SystemTime;

use deadpool_postgres::Pool;
use hsm::KeyStore;
use serde::Serialize;
use serde_json::json;
use tokio_postgres::Row;

use crate::audit::{self, Actor};
use crate::error::{CentralError, Result};
use crate::operators::{Role, Session};

/// How long a filed request may wait for its approval.
pub const REQUEST_EXPIRY_HOURS: i32 = 24;

/// The CAs whose keys rotate at the centre, with the profile their new certificate takes.
/// The Station CA's new key is certified by the active root like the e-Signature CA's; while
/// the retired key is valid and not revoked the centre still accepts the identities it issued
/// and keeps its TLS server certificate under it (`crate::tls`, docs/centre.md "Station CA
/// rollover"). The National Root self-signs its new key like the CSCA, with both link
/// certificates (RFC 4210 §4.4: stations learn the new root only through NewWithOld); the CAs
/// it certified keep their old-root chains until their own next rotation.
pub const ROTATING: &[(&str, &str)] = &[
    ("esign", "esign-ca"),
    ("csca", "csca"),
    ("station-ca", "station-ca"),
    ("root", "root-ca"),
];

/// Whether `ca`'s keys are self-signed (a new key comes with link certificates).
fn self_signed(ca: &str) -> bool {
    matches!(ca, "csca" | "root")
}

/// The CA a `--ca` value names (`station` is the Station CA).
pub fn ca_name(given: &str) -> &str {
    match given {
        "station" => "station-ca",
        other => other,
    }
}

/// Advisory lock space of an executing request (beside the audit lock): one executor at a time.
const EXECUTE_LOCK_BASE: i64 = 0x6964_6361_0000_0000;

/// A request as `ca requests` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestView {
    pub id: i64,
    pub kind: String,
    pub ca: String,
    pub from_key: String,
    pub state: String,
    pub requested_by: String,
    pub created_at: String,
    pub expires_at: String,
    pub approved_by: Option<String>,
    pub refused_by: Option<String>,
    pub note: Option<String>,
    pub new_key: Option<String>,
    pub executed_at: Option<String>,
    /// `revoke-ca` only: the RFC 5280 reason.
    pub reason: Option<String>,
}

/// What an executed rotation did.
#[derive(Debug, Clone, Serialize)]
pub struct Execution {
    pub request: i64,
    pub ca: String,
    pub old_key: String,
    pub new_key: String,
    pub subject: String,
    pub certificate_sha256: String,
    /// Link certificates made (CSCA): `new-with-old`, `old-with-new`.
    pub links: Vec<String>,
    /// The old key's state after the switch: `retired`, or `revoked` when it was revoked before.
    pub old_state: String,
}

/// What an executed request did: a rotation, a CA certificate's revocation or a TSA key's
/// destruction.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Executed {
    Rotation(Execution),
    Revocation(crate::revocation::Revocation),
    Destruction(crate::key_destruction::Destruction),
    Withdrawal(crate::csca_withdrawal::Withdrawal),
}

/// One CA key as `ca list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    pub ca: String,
    pub label: String,
    pub state: String,
    pub subject: String,
    pub not_after: String,
    pub fingerprint_sha256: String,
    pub created_at: String,
    pub retired_at: Option<String>,
    /// A CSCA key taken off the Master List (`ca withdraw-csca`).
    pub withdrawn_at: Option<String>,
}

const REQUEST_COLUMNS: &str = "id, kind, ca, from_key, state, requested_by, \
    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
    to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
    approved_by, refused_by, note, new_key, \
    to_char(executed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), reason";

fn view(r: &Row) -> RequestView {
    RequestView {
        id: r.get(0),
        kind: r.get(1),
        ca: r.get(2),
        from_key: r.get(3),
        state: r.get(4),
        requested_by: r.get(5),
        created_at: r.get(6),
        expires_at: r.get(7),
        approved_by: r.get(8),
        refused_by: r.get(9),
        note: r.get(10),
        new_key: r.get(11),
        executed_at: r.get(12),
        reason: r.get(13),
    }
}

fn profile_of(ca: &str) -> Option<&'static str> {
    ROTATING.iter().find(|(c, _)| *c == ca).map(|(_, p)| *p)
}

/// Audit a refused attempt (in its own transaction) and give `err` back.
async fn refuse_attempt(
    pool: &Pool,
    actor: &Actor,
    attempt: &str,
    object: &str,
    rule: &str,
    err: CentralError,
) -> CentralError {
    let log = async {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        let details = json!({ "attempt": attempt, "rule": rule, "reason": err.to_string() });
        audit::append(&tx, actor, "ca.request.refused-attempt", object, &details).await?;
        tx.commit().await?;
        Ok::<_, CentralError>(())
    };
    if let Err(e) = log.await {
        tracing::error!(error = %e, "could not audit a refused CA request attempt");
    }
    err
}

/// The session must be a ca-admin (the CLI logs in with that role; checked again here).
async fn require_ca_admin(pool: &Pool, s: &Session, attempt: &str, object: &str) -> Result<()> {
    if s.role() == Role::CaAdmin {
        return Ok(());
    }
    let why = format!(
        "{}: role {} may not {attempt} (needs ca-admin)",
        s.actor().operator,
        s.role().as_str()
    );
    let e = CentralError::NotPermitted(why);
    Err(refuse_attempt(pool, s.actor(), attempt, object, "role", e).await)
}

/// Mark overdue open requests expired (audited), before any list, approval or refusal.
async fn expire_overdue(pool: &Pool) -> Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .prepared_query(
            "UPDATE ca_requests SET state = 'expired'
             WHERE state = 'open' AND expires_at <= now() RETURNING id, ca",
            &[],
        )
        .await?;
    let system = Actor {
        operator: "system".into(),
        role: "system".into(),
        station: "centre".into(),
    };
    for r in &rows {
        let (id, ca): (i64, String) = (r.get(0), r.get(1));
        audit::append(
            &tx,
            &system,
            "ca.request.expired",
            &format!("ca-request:{id}"),
            &json!({ "ca": ca }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// File a request to rotate `ca`'s active key.
pub async fn request_rotation(pool: &Pool, s: &Session, ca: &str) -> Result<RequestView> {
    let ca = ca_name(ca);
    let object = format!("ca:{ca}");
    require_ca_admin(pool, s, "file CA requests", &object).await?;
    if profile_of(ca).is_none() {
        let why = format!("{ca} does not rotate at the centre: give esign, csca, station or root");
        let e = CentralError::invalid("ca", why);
        return Err(refuse_attempt(pool, s.actor(), "file", &object, "rotating CAs", e).await);
    }
    expire_overdue(pool).await?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // The active key; after an emergency revocation (no active key) the newest revoked one.
    let active: String = tx
        .prepared_opt(
            "SELECT label FROM ca_keys WHERE ca = $1 AND state IN ('active', 'revoked')
             ORDER BY state = 'active' DESC, created_at DESC LIMIT 1",
            &[&ca],
        )
        .await?
        .ok_or(CentralError::NotInitialised)?
        .get(0);
    if let Some(e) = pending(&tx, ca).await? {
        drop(tx);
        return Err(
            refuse_attempt(pool, s.actor(), "file", &object, "one pending per CA", e).await,
        );
    }
    let details = json!({ "kind": "rotate", "ca": ca, "from_key": active });
    let refusal = ("file", object.as_str());
    file(pool, tx, s, ("rotate", ca, &active, None), details, refusal).await
}

/// Insert an open request (kind, CA, key, reason) filed by `s` and audit `ca.request.created`
/// with `details` and the request's expiry, in `tx`, then commit. A race lost to another
/// request is refused as the filing's `(attempt, object)` names its other refusals.
async fn file(
    pool: &Pool,
    tx: deadpool_postgres::Transaction<'_>,
    s: &Session,
    request: (&str, &str, &str, Option<&str>),
    details: serde_json::Value,
    (attempt, object): (&str, &str),
) -> Result<RequestView> {
    match insert_request(tx, s, request, details).await {
        // Another ca-admin's request for the same CA committed between the pending check and
        // this insert (the partial unique index `ca_requests_one_pending` decides).
        Err(e @ CentralError::Conflict(_)) => {
            Err(refuse_attempt(pool, s.actor(), attempt, object, "one pending per CA", e).await)
        }
        r => r,
    }
}

/// File a request for one key (kind, CA, key, reason) unless `refused` says why not or another
/// request of the CA is pending: then the attempt is refused and audited as `(attempt, object)`.
async fn file_checked(
    pool: &Pool,
    tx: deadpool_postgres::Transaction<'_>,
    s: &Session,
    refused: Option<(&'static str, CentralError)>,
    request: (&str, &str, &str, Option<&str>),
    details: serde_json::Value,
    (attempt, object): (&str, &str),
) -> Result<RequestView> {
    let refused = match refused {
        Some(r) => Some(r),
        None => pending(&tx, request.1)
            .await?
            .map(|e| ("one pending per CA", e)),
    };
    if let Some((rule, e)) = refused {
        drop(tx);
        return Err(refuse_attempt(pool, s.actor(), attempt, object, rule, e).await);
    }
    file(pool, tx, s, request, details, (attempt, object)).await
}

async fn insert_request(
    tx: deadpool_postgres::Transaction<'_>,
    s: &Session,
    (kind, ca, key, reason): (&str, &str, &str, Option<&str>),
    mut details: serde_json::Value,
) -> Result<RequestView> {
    let sql = format!(
        "INSERT INTO ca_requests (kind, ca, from_key, state, requested_by, expires_at, reason)
         VALUES ($1, $2, $3, 'open', $4, now() + make_interval(hours => $5), $6)
         RETURNING {REQUEST_COLUMNS}"
    );
    let args: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
        &kind,
        &ca,
        &key,
        &s.actor().operator,
        &REQUEST_EXPIRY_HOURS,
        &reason,
    ];
    let row = tx.query_one(&sql, &args).await.map_err(|e| {
        if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
            CentralError::Conflict(format!(
                "another CA request for {ca} was filed at the same moment: one request per CA \
                 at a time (see `idcentral ca requests`)"
            ))
        } else {
            e.into()
        }
    })?;
    let v = view(&row);
    details["expires_at"] = json!(v.expires_at);
    let object = format!("ca-request:{}", v.id);
    audit::append(&tx, s.actor(), "ca.request.created", &object, &details).await?;
    tx.commit().await?;
    Ok(v)
}

/// The refusal of a new request for `ca` while another is pending (open or approved).
pub(crate) async fn pending(
    tx: &tokio_postgres::Transaction<'_>,
    ca: &str,
) -> Result<Option<CentralError>> {
    let row = tx
        .query_opt(
            "SELECT id FROM ca_requests WHERE ca = $1 AND state IN ('open', 'approved')",
            &[&ca],
        )
        .await?;
    Ok(row.map(|p| {
        let id: i64 = p.get(0);
        CentralError::Conflict(format!(
            "CA request {id} for {ca} is still pending: one request per CA at a time (approve, refuse or let it expire)"
        ))
    }))
}

/// File a request to revoke the certificate of `ca`'s key `key` (default: the active key) with
/// the RFC 5280 `reason` (`crate::revocation`); a second ca-admin's approval executes it.
pub async fn request_revocation(
    pool: &Pool,
    s: &Session,
    ca: &str,
    key: Option<&str>,
    reason: &str,
) -> Result<RequestView> {
    let ca = ca_name(ca);
    let object = format!("ca:{ca}");
    require_ca_admin(pool, s, "file CA requests", &object).await?;
    let checked = match crate::revocation::target_refusal(ca) {
        Some(refused) => Err(refused),
        None => crate::revocation::check_reason(reason),
    };
    if let Err((rule, e)) = checked {
        return Err(refuse_attempt(pool, s.actor(), "file revoke-ca", &object, rule, e).await);
    }
    expire_overdue(pool).await?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let target = match crate::revocation::target_key(&tx, ca, key).await {
        Ok(label) => pending(&tx, ca)
            .await?
            .map_or(Ok(label), |e| Err(("one pending per CA", e))),
        Err(refused) => Err(refused),
    };
    let label = match target {
        Ok(label) => label,
        Err((rule, e)) => {
            drop(tx);
            return Err(refuse_attempt(pool, s.actor(), "file revoke-ca", &object, rule, e).await);
        }
    };
    let details = json!({ "kind": "revoke-ca", "ca": ca, "key": label, "reason": reason });
    file(
        pool,
        tx,
        s,
        ("revoke-ca", ca, &label, Some(reason)),
        details,
        ("file revoke-ca", &object),
    )
    .await
}

/// File a request to destroy the retired TSA key `key` (`crate::key_destruction`); a second
/// ca-admin's approval executes it.
pub async fn request_tsa_key_destruction(
    pool: &Pool,
    s: &Session,
    key: &str,
) -> Result<RequestView> {
    use crate::key_destruction::{CA, KIND};
    let object = format!("tsa:{}", registry::audit::bounded_name(key));
    require_ca_admin(pool, s, "file CA requests", &object).await?;
    expire_overdue(pool).await?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let refused = crate::key_destruction::refusal(&tx, key).await?;
    let details = json!({ "kind": KIND, "ca": CA, "key": key });
    let request = (KIND, CA, key, None);
    let attempt = ("file destroy-tsa-key", object.as_str());
    file_checked(pool, tx, s, refused, request, details, attempt).await
}

/// File a request to withdraw the retired CSCA key `key` from the Master List for `reason`
/// (`crate::csca_withdrawal`); a second ca-admin's approval executes it.
pub async fn request_csca_withdrawal(
    pool: &Pool,
    s: &Session,
    key: &str,
    reason: &str,
) -> Result<RequestView> {
    use crate::csca_withdrawal::{CA, KIND};
    let object = format!("ca-key:{}", registry::audit::bounded_name(key));
    require_ca_admin(pool, s, "file CA requests", &object).await?;
    let attempt = "file withdraw-csca";
    if let Err((rule, e)) = crate::revocation::check_reason(reason) {
        return Err(refuse_attempt(pool, s.actor(), attempt, &object, rule, e).await);
    }
    expire_overdue(pool).await?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let refused = crate::csca_withdrawal::refusal(&tx, key).await?;
    let details = json!({ "kind": KIND, "ca": CA, "key": key, "reason": reason });
    let request = (KIND, CA, key, Some(reason));
    file_checked(pool, tx, s, refused, request, details, (attempt, &object)).await
}

/// Every request, newest first (overdue ones expired first).
pub async fn list(pool: &Pool) -> Result<Vec<RequestView>> {
    expire_overdue(pool).await?;
    let client = pool.get().await?;
    let sql = format!("SELECT {REQUEST_COLUMNS} FROM ca_requests ORDER BY id DESC");
    Ok(client.query(&sql, &[]).await?.iter().map(view).collect())
}

/// Why `s` may not settle request `r` (approve or refuse), as (rule, sentence); `None` if it may.
fn settle_rule(
    r: &RequestView,
    s: &Session,
    approving: bool,
    since_ok: bool,
) -> Option<(&'static str, String)> {
    let me = &s.actor().operator;
    if r.state != "open" {
        return Some((
            "settled",
            format!(
                "CA request {} is {}: only an open request can be approved or refused",
                r.id, r.state
            ),
        ));
    }
    if approving && &r.requested_by == me {
        return Some((
            "dual control",
            format!(
                "{me} requested CA request {} and cannot also approve it (dual control)",
                r.id
            ),
        ));
    }
    if approving && !since_ok {
        return Some((
            "approver since",
            format!(
                "{me} became a ca-admin after CA request {} was filed at {}; only an operator who was already a ca-admin then may approve it",
                r.id, r.created_at
            ),
        ));
    }
    None
}

/// Lock request `id` in `tx` and check `s` may settle it.
async fn lock_for_settling(
    tx: &tokio_postgres::Transaction<'_>,
    s: &Session,
    id: i64,
    approving: bool,
) -> std::result::Result<RequestView, (&'static str, CentralError)> {
    let sql = format!("SELECT {REQUEST_COLUMNS} FROM ca_requests WHERE id = $1 FOR UPDATE");
    let row = tx
        .query_opt(&sql, &[&id])
        .await
        .map_err(|e| ("database", CentralError::from(e)))?
        .ok_or_else(|| {
            (
                "unknown",
                CentralError::NotFound(format!("no CA request {id}")),
            )
        })?;
    let r = view(&row);
    let since_ok: bool = tx
        .query_one(
            "SELECT role = 'ca-admin' AND active AND created_at <= (SELECT created_at FROM ca_requests WHERE id = $1)
             FROM operators WHERE name = $2",
            &[&id, &s.actor().operator],
        )
        .await
        .map_err(|e| ("database", CentralError::from(e)))?
        .get(0);
    match settle_rule(&r, s, approving, since_ok) {
        None => Ok(r),
        Some((rule, why)) => Err((rule, CentralError::NotPermitted(why))),
    }
}

/// Refuse (veto) request `id`; the requester may withdraw their own.
pub async fn refuse(pool: &Pool, s: &Session, id: i64, note: Option<&str>) -> Result<RequestView> {
    let object = format!("ca-request:{id}");
    require_ca_admin(pool, s, "refuse CA requests", &object).await?;
    expire_overdue(pool).await?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    if let Err((rule, e)) = lock_for_settling(&tx, s, id, false).await {
        drop(tx);
        return Err(refuse_attempt(pool, s.actor(), "refuse", &object, rule, e).await);
    }
    let sql = format!(
        "UPDATE ca_requests SET state = 'refused', refused_by = $2, note = $3 WHERE id = $1
         RETURNING {REQUEST_COLUMNS}"
    );
    let note = note.map(registry::audit::bounded_name);
    let v = view(
        &tx.query_one(&sql, &[&id, &s.actor().operator, &note])
            .await?,
    );
    audit::append(
        &tx,
        s.actor(),
        "ca.request.refused",
        &object,
        &json!({ "ca": v.ca, "note": note }),
    )
    .await?;
    tx.commit().await?;
    Ok(v)
}

/// Approve request `id` as the second ca-admin, and execute it.
pub async fn approve(
    pool: &Pool,
    store: &dyn KeyStore,
    profiles: &profiles::ProfileSet,
    s: &Session,
    id: i64,
) -> Result<(RequestView, Executed)> {
    let object = format!("ca-request:{id}");
    require_ca_admin(pool, s, "approve CA requests", &object).await?;
    expire_overdue(pool).await?;
    {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        if let Err((rule, e)) = lock_for_settling(&tx, s, id, true).await {
            drop(tx);
            return Err(refuse_attempt(pool, s.actor(), "approve", &object, rule, e).await);
        }
        let r = tx
            .prepared_one(
                "UPDATE ca_requests SET state = 'approved', approved_by = $2, approved_at = now()
                 WHERE id = $1 RETURNING ca, requested_by",
                &[&id, &s.actor().operator],
            )
            .await?;
        let (ca, requester): (String, String) = (r.get(0), r.get(1));
        let details = json!({ "ca": ca, "requested_by": requester });
        audit::append(&tx, s.actor(), "ca.request.approved", &object, &details).await?;
        tx.commit().await?;
    }
    crate::failpoint::hit("rotation.approved");
    let done = execute(pool, store, profiles, s.actor(), id).await?;
    let client = pool.get().await?;
    let sql = format!("SELECT {REQUEST_COLUMNS} FROM ca_requests WHERE id = $1");
    Ok((view(&client.query_one(&sql, &[&id]).await?), done))
}

/// Finish every approved request a crash left unexecuted (ca-admin).
pub async fn recover(
    pool: &Pool,
    store: &dyn KeyStore,
    profiles: &profiles::ProfileSet,
    s: &Session,
) -> Result<Vec<Executed>> {
    require_ca_admin(pool, s, "recover CA requests", "ca-requests").await?;
    let ids: Vec<i64> = pool
        .get()
        .await?
        .prepared_query(
            "SELECT id FROM ca_requests WHERE state = 'approved' ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut done = Vec::new();
    for id in ids {
        done.push(execute(pool, store, profiles, s.actor(), id).await?);
    }
    Ok(done)
}

/// The journal of one approved request, as read at the start of an execution.
struct Journal {
    kind: String,
    reason: Option<String>,
    /// `revoke-ca`: whether the revocation committed.
    revoked: bool,
    ca: String,
    from_key: String,
    approved_by: String,
    requested_by: String,
    new_key: Option<String>,
    new_cert: Option<Vec<u8>>,
    links: Option<(Vec<u8>, Vec<u8>)>,
}

/// Execute approved request `id` from wherever its journal stands (see the module docs).
async fn execute(
    pool: &Pool,
    store: &dyn KeyStore,
    profiles: &profiles::ProfileSet,
    actor: &Actor,
    id: i64,
) -> Result<Executed> {
    // One executor per request: a session-level advisory lock on a connection of our own.
    let lock = pool.get().await?;
    let got: bool = lock
        .prepared_one(
            "SELECT pg_try_advisory_lock($1)",
            &[&(EXECUTE_LOCK_BASE + id)],
        )
        .await?
        .get(0);
    if !got {
        return Err(CentralError::Conflict(format!(
            "CA request {id} is being executed by another process; run `idcentral ca recover` later if it does not finish"
        )));
    }
    let r = execute_locked(pool, store, profiles, actor, id).await;
    let _ = lock
        .prepared_execute(
            "SELECT pg_advisory_unlock($1)",
            &[&(EXECUTE_LOCK_BASE + id)],
        )
        .await;
    r
}

async fn read_journal(pool: &Pool, id: i64) -> Result<Journal> {
    let client = pool.get().await?;
    let r = client
        .prepared_opt(
            "SELECT ca, from_key, state, approved_by, requested_by, new_key, new_cert_der,
                    link_new_with_old, link_old_with_new, kind, reason, revoked_at IS NOT NULL
             FROM ca_requests WHERE id = $1",
            &[&id],
        )
        .await?
        .ok_or_else(|| CentralError::NotFound(format!("no CA request {id}")))?;
    let state: String = r.get(2);
    if state != "approved" {
        return Err(CentralError::Conflict(format!(
            "CA request {id} is {state}: only an approved request is executed"
        )));
    }
    let links = match (
        r.get::<_, Option<Vec<u8>>>(7),
        r.get::<_, Option<Vec<u8>>>(8),
    ) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => None,
    };
    Ok(Journal {
        kind: r.get(9),
        reason: r.get(10),
        revoked: r.get(11),
        ca: r.get(0),
        from_key: r.get(1),
        approved_by: r.get(3),
        requested_by: r.get(4),
        new_key: r.get(5),
        new_cert: r.get(6),
        links,
    })
}

/// Step 1: the new key's label, `<prefix>-<N+1>` after the highest key of the CA.
async fn choose_label(pool: &Pool, id: i64, j: &Journal) -> Result<String> {
    if let Some(l) = &j.new_key {
        return Ok(l.clone());
    }
    let client = pool.get().await?;
    let labels: Vec<String> = client
        .prepared_query("SELECT label FROM ca_keys WHERE ca = $1", &[&j.ca])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let prefix = j
        .from_key
        .rsplit_once('-')
        .map(|(p, _)| p.to_owned())
        .ok_or_else(|| CentralError::Other(format!("key label {} has no number", j.from_key)))?;
    let n = labels
        .iter()
        .filter_map(|l| l.strip_prefix(&format!("{prefix}-"))?.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    let label = format!("{prefix}-{}", n + 1);
    client
        .prepared_execute(
            "UPDATE ca_requests SET new_key = $2 WHERE id = $1 AND new_key IS NULL",
            &[&id, &label],
        )
        .await?;
    Ok(label)
}

/// The active root as an issuer (it certifies a new e-Signature CA key).
async fn active_root(pool: &Pool, store: &dyn KeyStore) -> Result<ca::Issuer> {
    let client = pool.get().await?;
    let r = client
        .prepared_one(
            "SELECT label, cert_der FROM ca_keys WHERE ca = 'root' AND state = 'active'",
            &[],
        )
        .await?;
    Ok(ca::Issuer::new(store, r.get(0), r.get::<_, &[u8]>(1))?)
}

/// The issuer of key `label` (its certificate from `ca_keys`).
async fn issuer_of(pool: &Pool, store: &dyn KeyStore, label: &str) -> Result<ca::Issuer> {
    let client = pool.get().await?;
    let r = client
        .prepared_one("SELECT cert_der FROM ca_keys WHERE label = $1", &[&label])
        .await?;
    Ok(ca::Issuer::new(store, label, r.get::<_, &[u8]>(0))?)
}

/// Steps 2 and 3: the key in the HSM and its certificate(s), recorded in the journal.
async fn sign_new(
    pool: &Pool,
    store: &dyn KeyStore,
    profiles: &profiles::ProfileSet,
    id: i64,
    j: &Journal,
    label: &str,
) -> Result<(Vec<u8>, Option<(Vec<u8>, Vec<u8>)>)> {
    if let Some(cert) = &j.new_cert {
        return Ok((cert.clone(), j.links.clone()));
    }
    if store.find(label)?.is_none() {
        store.generate_p256(label)?;
    }
    crate::failpoint::hit("rotation.key-generated");
    // The centre's profiles: their URLs at `[public] base_url`, as at `init`.
    let profile = profiles.cert(profile_of(&j.ca).ok_or(CentralError::NotInitialised)?)?;
    let now = SystemTime::now();
    let (cert, links) = if self_signed(&j.ca) {
        let new = ca::create_root(store, profile, label, now)?;
        let old = issuer_of(pool, store, &j.from_key).await?;
        let l = ca::root_link_certificates(store, &old, &new, profile, now)?;
        (
            new.cert_der().to_vec(),
            Some((l.new_with_old.der, l.old_with_new.der)),
        )
    } else {
        let root = active_root(pool, store).await?;
        let new = ca::create_subordinate_ca(store, profile, &root, label, now)?;
        (new.cert_der().to_vec(), None)
    };
    let client = pool.get().await?;
    client
        .prepared_execute(
            "UPDATE ca_requests SET new_cert_der = $2, link_new_with_old = $3, link_old_with_new = $4
             WHERE id = $1 AND new_cert_der IS NULL",
            &[&id, &cert, &links.as_ref().map(|l| &l.0), &links.as_ref().map(|l| &l.1)],
        )
        .await?;
    crate::failpoint::hit("rotation.cert-signed");
    Ok((cert, links))
}

async fn execute_locked(
    pool: &Pool,
    store: &dyn KeyStore,
    profiles: &profiles::ProfileSet,
    actor: &Actor,
    id: i64,
) -> Result<Executed> {
    let j = read_journal(pool, id).await?;
    if j.kind == "revoke-ca" {
        let job = crate::revocation::Job {
            id,
            ca: &j.ca,
            key: &j.from_key,
            reason: j.reason.as_deref().unwrap_or("unspecified"),
            requested_by: &j.requested_by,
            approved_by: &j.approved_by,
            revoked: j.revoked,
        };
        let done = crate::revocation::execute(pool, actor, &job).await?;
        return Ok(Executed::Revocation(done));
    }
    if j.kind == crate::csca_withdrawal::KIND {
        let job = crate::csca_withdrawal::Job {
            id,
            key: &j.from_key,
            reason: j.reason.as_deref().unwrap_or("unspecified"),
            requested_by: &j.requested_by,
            approved_by: &j.approved_by,
        };
        let done = crate::csca_withdrawal::execute(pool, actor, &job).await?;
        return Ok(Executed::Withdrawal(done));
    }
    if j.kind == crate::key_destruction::KIND {
        let job = crate::key_destruction::Job {
            id,
            key: &j.from_key,
            requested_by: &j.requested_by,
            approved_by: &j.approved_by,
        };
        let done = crate::key_destruction::execute(pool, store, actor, &job).await?;
        return Ok(Executed::Destruction(done));
    }
    rotate(pool, store, profiles, actor, id, j)
        .await
        .map(Executed::Rotation)
}

async fn rotate(
    pool: &Pool,
    store: &dyn KeyStore,
    profiles: &profiles::ProfileSet,
    actor: &Actor,
    id: i64,
    j: Journal,
) -> Result<Execution> {
    let label = choose_label(pool, id, &j).await?;
    let (cert, links) = sign_new(pool, store, profiles, id, &j, &label).await?;
    // Step 4: the switch, in one transaction.
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.prepared_execute(
        "UPDATE ca_keys SET state = 'retired', retired_at = now() WHERE label = $1 AND state = 'active'",
        &[&j.from_key],
    )
    .await?;
    tx.prepared_execute(
        "INSERT INTO ca_keys (label, ca, state, cert_der) VALUES ($1, $2, 'active', $3)",
        &[&label, &j.ca, &cert],
    )
    .await?;
    let mut made = Vec::new();
    if let Some((new_with_old, old_with_new)) = &links {
        tx.prepared_execute(
            "INSERT INTO ca_links (certified_key, signer_key, kind, cert_der) VALUES ($1, $2, 'new-with-old', $3), ($2, $1, 'old-with-new', $4)",
            &[&label, &j.from_key, new_with_old, old_with_new],
        )
        .await?;
        made = vec!["new-with-old".to_owned(), "old-with-new".to_owned()];
    }
    tx.prepared_execute(
        "UPDATE ca_requests SET state = 'executed', executed_at = now() WHERE id = $1",
        &[&id],
    )
    .await?;
    let old_state: String = tx
        .prepared_one("SELECT state FROM ca_keys WHERE label = $1", &[&j.from_key])
        .await?
        .get(0);
    let info = ca::CertInfo::parse(&cert)?;
    let fingerprint = ca::fingerprint_sha256(&cert)?;
    let details = json!({
        "ca": j.ca, "from": j.from_key, "to": label, "certificate_sha256": fingerprint,
        "requested_by": j.requested_by, "approved_by": j.approved_by, "links": made,
    });
    audit::append(
        &tx,
        actor,
        "ca.key.rotated",
        &format!("ca-request:{id}"),
        &details,
    )
    .await?;
    tx.commit().await?;
    crate::failpoint::hit("rotation.switched");
    Ok(Execution {
        request: id,
        ca: j.ca,
        old_key: j.from_key,
        new_key: label,
        subject: info.subject,
        certificate_sha256: fingerprint,
        links: made,
        old_state,
    })
}

/// Every CA key with its state (`ca list`).
pub async fn keys(pool: &Pool) -> Result<Vec<KeyView>> {
    let client = pool.get().await?;
    let rows = client
        .prepared_query(
            "SELECT ca, label, state, cert_der,
                    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    to_char(retired_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    to_char(withdrawn_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             FROM ca_keys ORDER BY ca, created_at, label",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let der: &[u8] = r.get(3);
            let info = ca::CertInfo::parse(der)?;
            Ok(KeyView {
                ca: r.get(0),
                label: r.get(1),
                state: r.get(2),
                subject: info.subject,
                not_after: info.not_after,
                fingerprint_sha256: ca::fingerprint_sha256(der)?,
                created_at: r.get(4),
                retired_at: r.get(5),
                withdrawn_at: r.get(6),
            })
        })
        .collect()
}

/// The certificate of key `label` and the link certificates that name it, DER.
pub async fn certificates(pool: &Pool, label: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let client = pool.get().await?;
    let key = client
        .prepared_opt("SELECT cert_der FROM ca_keys WHERE label = $1", &[&label])
        .await?
        .ok_or_else(|| CentralError::NotFound(format!("key: no CA key {label}")))?;
    let mut out = vec![(label.to_owned(), key.get::<_, Vec<u8>>(0))];
    for r in client
        .prepared_query(
            "SELECT certified_key, signer_key, cert_der FROM ca_links
             WHERE certified_key = $1 OR signer_key = $1 ORDER BY certified_key",
            &[&label],
        )
        .await?
    {
        let (c, s): (String, String) = (r.get(0), r.get(1));
        out.push((format!("link-{c}-by-{s}"), r.get(2)));
    }
    Ok(out)
}
