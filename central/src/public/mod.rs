//! The centre's public services for relying parties (docs/relying-parties.md), on a second,
//! plain-HTTP listener: every answer is signed, so plain HTTP carries it (RFC 5019 §5, RFC 3161
//! §3.4). `idcentral serve` runs it beside the mutual-TLS API (`--public-listen`, `[public]
//! listen`), `idcentral serve --public-only` alone.
//!
//! - `POST /ocsp`, `GET /ocsp/{base64 request}`: [`ocsp`] (RFC 6960, RFC 5019);
//! - `GET /crl/{key}.crl`: the CA key's newest CRL ([`crl`], RFC 5280 §5);
//! - `GET /ca/{key}.cer` (and `.crt`): the CA key's certificate (RFC 5280 §4.2.2.1 caIssuers);
//! - `POST /tsa`: time-stamps ([`tsa`], RFC 3161).
//!
//! What is signed ahead of time (OCSP responses, CRLs) is kept in PostgreSQL and signed again by
//! [`worker`] from a queue the database fills on every issuance and revocation; every `serve`
//! runs the worker, with or without the public listener.
//!
//! Requests are anonymous: a refused one is answered (`malformedRequest`, `unauthorized`, a
//! rejected time-stamp, 404) and logged, not written to the audit chain, which is not theirs to
//! fill (as for the API's refusals before a station is known).

pub mod asn1;
pub mod crl;
pub mod master_list;
pub mod ocsp;
pub mod ocsp_cache;
pub mod replaced_keys;
pub mod responder_keys;
pub mod service_keys;
pub mod tsa;
pub mod tsa_keys;
pub mod worker;

use crate::db::Prepared;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use deadpool_postgres::Pool;
use hsm::KeyStore;

use crate::audit::Actor;
use crate::config::CentreConfig;
use crate::error::{CentralError, Result};
use crate::pki::Centre;

/// The base URL the built-in profiles name for the CRL, CA-certificate and OCSP URLs; the
/// centre puts `[public] base_url` in its place ([`centre_profiles`]).
pub const PROFILE_BASE_URL: &str = "http://pki.idstation.example.com";

/// The centre's profiles: the built-in set, with every certificate profile's
/// `http://pki.idstation.example.com/…` URL (CRL distribution point, AIA caIssuers and OCSP)
/// moved to `[public] base_url` when one is set. The profile text is rewritten before it is
/// parsed, so the profile's digest (what `ca` caches extensions by) is that of the text used.
pub fn centre_profiles(base_url: Option<&str>) -> Result<profiles::ProfileSet> {
    let mut set = profiles::builtin()?;
    let Some(base) = base_url else {
        return Ok(set);
    };
    for (rel, text) in profiles::BUILTIN_FILES {
        let Some(name) = rel.strip_prefix("cert/") else {
            continue;
        };
        let from = format!("\"{PROFILE_BASE_URL}/");
        if !text.contains(&from) {
            continue;
        }
        let rebased = text.replace(&from, &format!("\"{base}/"));
        let file = std::path::Path::new("<builtin>/cert").join(name);
        let p = profiles::parse_cert_profile(&file, &rebased)?;
        set.certs.insert(p.name.clone(), p);
    }
    Ok(set)
}

/// What the public handlers share.
pub struct Public {
    pub centre: Arc<Centre>,
    /// Every CA key the centre has (active or retired), by HSM label; reloaded when a rotation
    /// at the centre adds one ([`Public::reload_keys`]).
    pub issuers: RwLock<Arc<BTreeMap<String, ca::Issuer>>>,
    /// The current delegated responder of each CA key ([`responder_keys::ensure_responders`]).
    pub responders: RwLock<Vec<Arc<ocsp::Responder>>>,
    /// The time-stamping key this process signs with ([`tsa_keys`]); the worker rolls it over.
    pub tsa: tsa_keys::Kept,
    pub ocsp_validity: Duration,
    /// The stored OCSP responses in memory ([`ocsp_cache`]); kept current by
    /// [`spawn_ocsp_cache`], serves nothing without it.
    pub ocsp_cache: Arc<ocsp_cache::OcspCache>,
}

impl Public {
    /// The responders now (a copy of the list: the worker replaces it when one rolls).
    pub fn responders(&self) -> Vec<Arc<ocsp::Responder>> {
        self.responders
            .read()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// The CA keys now (see [`Public::reload_keys`]).
    pub fn issuers(&self) -> Arc<BTreeMap<String, ca::Issuer>> {
        self.issuers
            .read()
            .map(|i| Arc::clone(&i))
            .unwrap_or_default()
    }

    /// Load the CA keys again and make sure each has its responder: a key rotation at the
    /// centre (`idcentral ca approve`) added one while this process serves.
    pub async fn reload_keys(&self) -> Result<()> {
        let c = &self.centre;
        let issuers = load_issuers(&c.pool, c.store.as_ref()).await?;
        let responders = responder_keys::ensure_responders(
            &c.pool,
            &c.store,
            &issuers,
            &c.profiles,
            &c.name,
            &self.responders(),
        )
        .await?;
        tracing::info!(keys = issuers.len(), "CA keys reloaded for OCSP and CRLs");
        if let Ok(mut i) = self.issuers.write() {
            *i = Arc::new(issuers);
        }
        if let Ok(mut r) = self.responders.write() {
            *r = responders;
        }
        Ok(())
    }
}

/// The centre itself as the actor of what the public services record.
pub fn centre_actor(name: &str) -> Actor {
    Actor {
        operator: name.to_owned(),
        role: "centre".into(),
        station: name.to_owned(),
    }
}

/// Every CA key in `ca_keys` as an issuer (the HSM key checked against its certificate); a key
/// the HSM no longer has is left out with a warning.
pub async fn load_issuers(
    pool: &Pool,
    store: &dyn KeyStore,
) -> Result<BTreeMap<String, ca::Issuer>> {
    let client = pool.get().await?;
    let rows = client
        .prepared_query("SELECT label, cert_der FROM ca_keys ORDER BY label", &[])
        .await?;
    let mut out = BTreeMap::new();
    for r in rows {
        let label: String = r.get(0);
        let der: Vec<u8> = r.get(1);
        match ca::Issuer::new(store, &label, &der) {
            Ok(i) => {
                out.insert(label, i);
            }
            Err(e) => {
                tracing::warn!(key = %label, error = %e, "CA key not usable for OCSP and CRLs")
            }
        }
    }
    Ok(out)
}

/// Make sure the responders, the Master List (with its signer) and the TSA exist (keys in the
/// HSM, certificates recorded): what `init` and every `serve` run, so an existing centre gets
/// them on its first `serve`.
pub async fn ensure_keys(
    pool: &Pool,
    store: &Arc<dyn KeyStore>,
    profiles: &profiles::ProfileSet,
    centre_name: &str,
) -> Result<()> {
    let issuers = load_issuers(pool, store.as_ref()).await?;
    responder_keys::ensure_responders(pool, store, &issuers, profiles, centre_name, &[]).await?;
    master_list::ensure(pool, store, &issuers, profiles, centre_name).await?;
    match tsa_keys::ensure_tsa(pool, store, &issuers, profiles, centre_name).await {
        (Some(_), _) => Ok(()),
        (None, Some(e)) => Err(e),
        (None, None) => Err(CentralError::Other("no time-stamping key".into())),
    }
}

/// Build the public services' state over `centre`.
pub async fn prepare(cfg: &CentreConfig, centre: Arc<Centre>) -> Result<Arc<Public>> {
    let issuers = load_issuers(&centre.pool, centre.store.as_ref()).await?;
    let responders = responder_keys::ensure_responders(
        &centre.pool,
        &centre.store,
        &issuers,
        &centre.profiles,
        &centre.name,
        &[],
    )
    .await?;
    // A Master List that cannot be signed now is tried again at each refresh of the worker.
    if let Err(e) = master_list::ensure(
        &centre.pool,
        &centre.store,
        &issuers,
        &centre.profiles,
        &centre.name,
    )
    .await
    {
        tracing::warn!(error = %e, "could not sign the CSCA Master List");
    }
    // No key that can sign leaves /tsa refusing (logged), not the centre down.
    let (tsa, failure) = tsa_keys::ensure_tsa(
        &centre.pool,
        &centre.store,
        &issuers,
        &centre.profiles,
        &centre.name,
    )
    .await;
    Ok(Arc::new(Public {
        centre,
        issuers: RwLock::new(Arc::new(issuers)),
        responders: RwLock::new(responders),
        tsa: tsa_keys::Kept::new(tsa, failure.is_some()),
        ocsp_validity: Duration::from_secs(cfg.public.ocsp_validity_seconds),
        ocsp_cache: Arc::new(ocsp_cache::OcspCache::new(cfg.public.ocsp_cache_entries)),
    }))
}

/// The public routes.
pub fn router(public: Arc<Public>) -> Router {
    Router::new()
        .route("/ocsp", post(ocsp_post))
        .route("/ocsp/", post(ocsp_post))
        .route("/ocsp/{*request}", get(ocsp_get))
        .route("/crl/{file}", get(crl_get))
        .route("/ca/{file}", get(ca_get))
        .route("/tsa", post(tsa_post))
        .with_state(public)
}

/// Bind the public listener; the bound address (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| CentralError::Other(format!("listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| CentralError::Other(format!("listen on {addr}: {e}")))?;
    Ok((listener, bound))
}

/// Start the signing worker ([`worker`]): every `serve` runs one.
pub fn spawn_worker(public: &Arc<Public>, cfg: &CentreConfig) {
    tokio::spawn(worker::run(Arc::clone(public), cfg.database.clone()));
}

/// Keep the OCSP cache current ([`ocsp_cache::listen`]): what a process that serves the public
/// listener runs (nothing when the cache is disabled).
pub fn spawn_ocsp_cache(public: &Arc<Public>, cfg: &CentreConfig) {
    if cfg.public.ocsp_cache_entries > 0 {
        tokio::spawn(ocsp_cache::listen(
            Arc::clone(&public.ocsp_cache),
            cfg.database.clone(),
        ));
    }
}

/// Serve the public routes on `listener` until the process stops.
pub async fn serve(public: Arc<Public>, listener: tokio::net::TcpListener) -> Result<()> {
    axum::serve(listener, router(public))
        .await
        .map_err(|e| CentralError::Other(format!("public listener: {e}")))
}

/// An HTTP date (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&f).unwrap_or_default()
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// How long a cache may keep a CRL before it asks again (its ETag answers a 304 when nothing
/// changed): a CRL is signed again within seconds of a revocation, and a cache that kept it to
/// its nextUpdate (48 hours, 90 days for the CSCA's) would hide that revocation for as long.
pub const CRL_MAX_AGE: Duration = Duration::from_secs(3600);

/// A DER body with its media type and the caching headers of a signed object valid from
/// `this_update` (Last-Modified) to `next_update` (Expires, max-age): RFC 5019 §6.2.
pub fn signed_object(
    content_type: &'static str,
    der: Vec<u8>,
    validity: Option<(SystemTime, SystemTime)>,
) -> Response {
    signed_object_kept(content_type, der, validity, None)
}

/// [`signed_object`] whose max-age is at most `cap`.
pub fn signed_object_kept(
    content_type: &'static str,
    der: Vec<u8>,
    validity: Option<(SystemTime, SystemTime)>,
    cap: Option<Duration>,
) -> Response {
    use sha2::Digest;
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    match validity {
        Some((this_update, next_update)) => {
            let now = SystemTime::now();
            let max_age = next_update
                .duration_since(now)
                .map(|d| d.as_secs())
                .unwrap_or(0)
                .min(cap.map_or(u64::MAX, |c| c.as_secs()));
            let etag = hex::encode(&sha2::Sha256::digest(&der)[..16]);
            headers.insert(header::ETAG, header_value(&format!("\"{etag}\"")));
            headers.insert(header::LAST_MODIFIED, header_value(&http_date(this_update)));
            headers.insert(header::EXPIRES, header_value(&http_date(next_update)));
            headers.insert(
                header::CACHE_CONTROL,
                header_value(&format!(
                    "max-age={max_age}, public, no-transform, must-revalidate"
                )),
            );
        }
        None => {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
    (StatusCode::OK, headers, der).into_response()
}

fn not_found(what: String) -> Response {
    tracing::info!(%what, "public request refused: not found");
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{what}\n"),
    )
        .into_response()
}

async fn ocsp_post(State(p): State<Arc<Public>>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/ocsp-request") {
        tracing::info!(
            content_type,
            "OCSP request with another media type: malformedRequest"
        );
        return ocsp::malformed();
    }
    ocsp::answer(&p, &body).await
}

/// A GET whose `If-None-Match` names the answer's ETag gets 304 Not Modified with the same
/// caching headers and no body (RFC 9110 §13.1.2; RFC 5019 §6.2 caches revalidate this way).
fn conditional(request: &HeaderMap, answer: Response) -> Response {
    let Some(etag) = answer.headers().get(header::ETAG).cloned() else {
        return answer;
    };
    let matches = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || t.trim().as_bytes() == etag.as_bytes());
    if !matches {
        return answer;
    }
    let mut headers = answer.headers().clone();
    headers.remove(header::CONTENT_TYPE);
    (StatusCode::NOT_MODIFIED, headers).into_response()
}

async fn ocsp_get(
    State(p): State<Arc<Public>>,
    Path(request): Path<String>,
    headers: HeaderMap,
) -> Response {
    // RFC 5019 §5 / RFC 6960 Appendix A.1: the URL-encoded base64 of the DER request; the
    // router has percent-decoded it already.
    use base64ct::Encoding;
    let text: String = request.chars().filter(|c| !c.is_whitespace()).collect();
    match base64ct::Base64::decode_vec(&text) {
        Ok(der) => conditional(&headers, ocsp::answer(&p, &der).await),
        Err(_) => {
            tracing::info!("OCSP GET whose path is not base64: malformedRequest");
            ocsp::malformed()
        }
    }
}

/// `{key}.{ext}` → the key label, when `ext` is one of `exts` and the label a CA key's.
fn key_of<'a>(p: &Public, file: &'a str, exts: &[&str]) -> Option<&'a str> {
    let (key, ext) = file.rsplit_once('.')?;
    (exts.contains(&ext) && p.issuers().contains_key(key)).then_some(key)
}

async fn crl_get(
    State(p): State<Arc<Public>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(key) = key_of(&p, &file, &["crl"]) else {
        return not_found(format!(
            "no CRL {file}: the centre's CA keys are {}",
            keys(&p)
        ));
    };
    match crl::newest(&p, key).await {
        Ok(Some(c)) => conditional(
            &headers,
            signed_object_kept(
                "application/pkix-crl",
                c.der,
                Some((c.this_update, c.next_update)),
                Some(CRL_MAX_AGE),
            ),
        ),
        Ok(None) => not_found(format!("the CRL of {key} is not signed yet; try again")),
        Err(e) => internal(e),
    }
}

async fn ca_get(State(p): State<Arc<Public>>, Path(file): Path<String>) -> Response {
    if file == master_list::FILE {
        return master_list_get(&p).await;
    }
    let Some(key) = key_of(&p, &file, &["cer", "crt"]) else {
        return not_found(format!(
            "no CA certificate {file}: the centre's CA keys are {} (KEY.cer or KEY.crt)",
            keys(&p)
        ));
    };
    let der = p.issuers()[key].cert_der().to_vec();
    let mut r = signed_object("application/pkix-cert", der, None);
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=86400, public"),
    );
    r
}

/// The newest CSCA Master List (a CMS SignedData, DER; Doc 9303-12 §9 names no media type).
async fn master_list_get(p: &Public) -> Response {
    match master_list::newest(&p.centre.pool).await {
        Ok(Some((der, signed_at))) => {
            use sha2::Digest;
            let etag = hex::encode(&sha2::Sha256::digest(&der)[..16]);
            let mut r = signed_object("application/octet-stream", der, None);
            let h = r.headers_mut();
            h.insert(header::ETAG, header_value(&format!("\"{etag}\"")));
            h.insert(header::LAST_MODIFIED, header_value(&http_date(signed_at)));
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=300, public"),
            );
            h.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"csca-master-list.ml\""),
            );
            r
        }
        Ok(None) => not_found("no CSCA Master List has been signed yet".into()),
        Err(e) => internal(e),
    }
}

async fn tsa_post(State(p): State<Arc<Public>>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tsa::answer(&p, content_type, &body).await
}

fn keys(p: &Public) -> String {
    p.issuers().keys().cloned().collect::<Vec<_>>().join(", ")
}

/// 500 with the error in the log only.
pub fn internal(e: CentralError) -> Response {
    tracing::error!(error = %e, "public request failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "the centre could not answer; see its log\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_url_replaces_the_profiles_urls_and_nothing_else() {
        let set = centre_profiles(Some("http://pki.example.uz:8080")).unwrap();
        let sign = set.cert("holder-sign").unwrap();
        assert_eq!(
            sign.crl_distribution_point.as_deref(),
            Some("http://pki.example.uz:8080/crl/{issuer_key}.crl")
        );
        let aia = sign.authority_info_access.as_ref().unwrap();
        assert_eq!(aia.ocsp.as_deref(), Some("http://pki.example.uz:8080/ocsp"));
        assert_eq!(
            aia.ca_issuers.as_deref(),
            Some("http://pki.example.uz:8080/ca/{issuer_key}.cer")
        );
        // The CPS is a document, not a service of the listener: it stays.
        assert_eq!(
            sign.policies[0].cps_uri.as_deref(),
            Some("https://pki.idstation.example.com/cps")
        );
        // A rewritten profile is a different profile text: a different digest.
        let builtin = profiles::builtin().unwrap();
        assert_ne!(builtin.cert("holder-sign").unwrap().digest(), sign.digest());
        // Without a base URL the built-in set is used as it is.
        assert_eq!(centre_profiles(None).unwrap(), builtin);
    }

    #[test]
    fn http_dates_are_imf_fixdate() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
