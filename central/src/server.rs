//! `idcentral serve`: the HTTPS API (TLS 1.3, mutual TLS for stations) as a thin axum layer over
//! [`crate::enrol`]. Each connection is accepted by tokio-rustls; the verified client
//! certificate, if any, goes with every request of that connection as a [`ClientCert`].
//!
//! - `POST /v1/enrol` (no client certificate needed): [`crate::enrol::enrol`];
//! - `GET /v1/whoami` (a station's certificate): [`crate::enrol::authenticate`];
//! - `GET /v1/status`: [`crate::issuance::status`];
//! - `POST /v1/jobs/reserve`, `POST /v1/jobs/{job}/certify|complete|abort`, `GET /v1/jobs/{job}`:
//!   [`crate::issuance`];
//! - `POST /v1/audit/push`, `POST /v1/audit/events`: [`crate::audit_push`];
//! - `POST /v1/services/{job}/renew|certify|complete|abort|hold|release|address`,
//!   `GET /v1/services/{job}`: the card services, [`crate::services`];
//! - `POST /v1/outbox/list`, `POST /v1/outbox/{id}/retry`: the e-government outbox for a
//!   station's ca-admin or auditor, [`crate::egov::station_view`].
//! - `GET /v1/anchors`, `POST /v1/identity/renew`: the Station CA and root rollovers,
//!   [`crate::anchors`]; `POST /v1/document-signer/renew`: a station's next Document Signer,
//!   [`crate::document_signer`].
//!
//! Beside them run the job timeout sweep, the audit checkpoints and, with `[egov]`, the
//! e-government publisher ([`crate::egov`]). The public relying-party services (OCSP, CRLs, CA
//! certificates, time-stamps) run on a second, plain-HTTP listener: [`crate::public`]
//! ([`ServeOptions`]).
//!
//! Every endpoint but enrolment authenticates the station by its client certificate first.
//! Refusals are JSON `{"error": "...", "rule": "..."}` (and `"office"` where the rule is about
//! another office's card) with 400, 401, 403, 404 or 409.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::config::CentreConfig;
use crate::enrol::{self, EnrolResponse, WhoAmI};
use crate::error::{CentralError, Refusal, Result};
use crate::pki::{self, Centre};
use crate::{issuance, refusals};

/// How often `serve` signs an audit checkpoint over what the log gained since the last one.
const AUDIT_CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a client may take to finish the TLS handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a request's head may take to arrive, and a kept connection may wait idle for the
/// next one (hyper starts the clock when it waits for a head): longer than a station keeps an
/// idle connection (30 s), short enough that a client trickling bytes cannot hold connections
/// open at will. (Without a timer hyper 1 applies none.)
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The client certificate of the connection a request came on (DER), verified up to a usable
/// Station CA key by the TLS layer ([`crate::tls::LiveTls`]); `None` when the client sent none.
#[derive(Clone, Default)]
pub struct ClientCert(pub Option<Arc<Vec<u8>>>);

/// An error as the HTTP answer: its status, and a JSON body naming the rule.
pub struct ApiError(pub CentralError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, office) = match &self.0 {
            CentralError::Refused { status, office, .. } => (
                match status {
                    Refusal::BadRequest => StatusCode::BAD_REQUEST,
                    Refusal::Unauthenticated => StatusCode::UNAUTHORIZED,
                    Refusal::Forbidden => StatusCode::FORBIDDEN,
                    Refusal::NotFound => StatusCode::NOT_FOUND,
                    Refusal::Conflict => StatusCode::CONFLICT,
                    Refusal::TooMany => StatusCode::TOO_MANY_REQUESTS,
                },
                office.clone(),
            ),
            CentralError::Invalid { .. } => (StatusCode::BAD_REQUEST, None),
            CentralError::NotFound(_) => (StatusCode::NOT_FOUND, None),
            CentralError::Conflict(_) => (StatusCode::CONFLICT, None),
            CentralError::NotPermitted(_) => (StatusCode::FORBIDDEN, None),
            // The database away (a failover, a restart): nothing was changed, try again.
            CentralError::Database(_) => (StatusCode::SERVICE_UNAVAILABLE, None),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, None),
        };
        let rule = match status {
            StatusCode::SERVICE_UNAVAILABLE => "database-unavailable",
            _ => self.0.rule().unwrap_or("internal"),
        };
        let message = if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error = %self.0, "request failed: the database");
            "the centre's database cannot be reached now; nothing was changed, try again".to_owned()
        } else if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self.0, "request failed");
            "the centre could not complete the request; see its log".to_owned()
        } else {
            // The status and the rule only: a refusal's sentence may name a holder.
            tracing::info!(status = status.as_u16(), rule, "request refused");
            self.0.to_string()
        };
        let body = centre_api::Refusal {
            error: message,
            rule: rule.to_owned(),
            office,
        };
        (status, Json(body)).into_response()
    }
}

type Answer<T> = std::result::Result<Json<T>, ApiError>;

/// A JSON body of type `T`; a body that does not parse is `invalid-request` naming the error.
pub(crate) fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| CentralError::invalid("body", e.to_string()))
}

pub(crate) fn client_cert(cert: &ClientCert) -> Option<&[u8]> {
    cert.0.as_deref().map(Vec::as_slice)
}

/// A station's POST of a JSON body to `f`: the station authenticated by its client
/// certificate, the body parsed, a refusal audited as `request` (`crate::refusals`).
async fn station_post<Req, T>(
    centre: &Centre,
    cert: &ClientCert,
    bytes: &Bytes,
    request: &str,
    f: impl AsyncFnOnce(&Centre, &enrol::WhoAmI, &Req) -> Result<T>,
) -> Answer<T>
where
    Req: serde::de::DeserializeOwned,
{
    let run = async {
        let who = enrol::authenticate(centre, client_cert(cert)).await?;
        let r = async { f(centre, &who, &body(bytes)?).await }.await;
        refusals::audited(centre, &who, request, None, bytes, r).await
    };
    run.await.map(Json).map_err(ApiError)
}

async fn enrol_handler(State(centre): State<Arc<Centre>>, bytes: Bytes) -> Answer<EnrolResponse> {
    let run = async { enrol::enrol(&centre, &body(&bytes)?).await };
    run.await.map(Json).map_err(ApiError)
}

async fn whoami_handler(
    State(centre): State<Arc<Centre>>,
    Extension(cert): Extension<ClientCert>,
) -> Answer<WhoAmI> {
    enrol::authenticate(&centre, client_cert(&cert))
        .await
        .map(Json)
        .map_err(ApiError)
}

async fn status_handler(
    State(centre): State<Arc<Centre>>,
    Extension(cert): Extension<ClientCert>,
) -> Answer<centre_api::StationStatus> {
    let run = async {
        let who = enrol::authenticate(&centre, client_cert(&cert)).await?;
        let r = issuance::status::station_status(&centre, &who).await;
        refusals::audited(&centre, &who, "status", None, &[], r).await
    };
    run.await.map(Json).map_err(ApiError)
}

async fn reserve_handler(
    State(centre): State<Arc<Centre>>,
    Extension(cert): Extension<ClientCert>,
    bytes: Bytes,
) -> Answer<centre_api::ReserveResponse> {
    let run = async {
        let who = enrol::authenticate(&centre, client_cert(&cert)).await?;
        let r = async { issuance::reserve::reserve(&centre, &who, &body(&bytes)?).await }.await;
        if r.is_ok() {
            crate::failpoint::hit("reserve");
        }
        refusals::audited(&centre, &who, "reserve", None, &bytes, r).await
    };
    run.await.map(Json).map_err(ApiError)
}

/// `POST /v1/jobs/{job}/{step}`: certify, complete or abort.
async fn step_handler(
    State(centre): State<Arc<Centre>>,
    Extension(cert): Extension<ClientCert>,
    Path((job, step)): Path<(String, String)>,
    bytes: Bytes,
) -> std::result::Result<Response, ApiError> {
    let run = async {
        let who = enrol::authenticate(&centre, client_cert(&cert)).await?;
        let r = run_step(&centre, &who, &job, &step, &bytes).await;
        refusals::audited(&centre, &who, &step, Some(&job), &bytes, r).await
    };
    run.await.map_err(ApiError)
}

/// One step of a job, by its name.
async fn run_step(
    centre: &Arc<Centre>,
    who: &WhoAmI,
    job: &str,
    step: &str,
    bytes: &Bytes,
) -> Result<Response> {
    {
        issuance::check_job_id(job)?;
        let json = |v: serde_json::Value| Json(v).into_response();
        let answer = match step {
            "certify" => json(issuance::json(
                &issuance::certify::certify(centre, who, job, &body(bytes)?).await?,
            )?),
            "complete" => json(issuance::json(
                &issuance::finish::complete(centre, who, job, &body(bytes)?).await?,
            )?),
            "abort" => json(issuance::json(
                &issuance::finish::abort(centre, who, job, &body(bytes)?).await?,
            )?),
            other => {
                return Err(CentralError::refused(
                    Refusal::NotFound,
                    "not-found",
                    format!("a job has no step {other:?} (certify, complete, abort)"),
                ))
            }
        };
        crate::failpoint::hit(step);
        Ok(answer)
    }
}

/// `POST /v1/documents/{document}/revoke`: [`crate::documents::revoke`].
async fn revoke_handler(
    State(centre): State<Arc<Centre>>,
    Extension(cert): Extension<ClientCert>,
    Path(document): Path<String>,
    bytes: Bytes,
) -> Answer<centre_api::RevokeResponse> {
    let run = async {
        let who = enrol::authenticate(&centre, client_cert(&cert)).await?;
        let r = async { crate::documents::revoke(&centre, &who, &document, &body(&bytes)?).await }
            .await;
        refusals::audited(&centre, &who, "revoke", Some(&document), &bytes, r).await
    };
    run.await.map(Json).map_err(ApiError)
}

async fn job_handler(
    State(centre): State<Arc<Centre>>,
    Extension(cert): Extension<ClientCert>,
    Path(job): Path<String>,
) -> Answer<centre_api::JobStatus> {
    let run = async {
        let who = enrol::authenticate(&centre, client_cert(&cert)).await?;
        let r = issuance::status::job_status(&centre, &who, &job).await;
        refusals::audited(&centre, &who, "job", Some(&job), &[], r).await
    };
    run.await.map(Json).map_err(ApiError)
}

async fn audit_events_handler(
    State(centre): State<Arc<Centre>>,
    Extension(cert): Extension<ClientCert>,
    bytes: Bytes,
) -> Answer<centre_api::AuditEvents> {
    station_post(
        &centre,
        &cert,
        &bytes,
        "audit-events",
        crate::audit_push::events_after,
    )
    .await
}

async fn audit_push_handler(
    State(centre): State<Arc<Centre>>,
    Extension(cert): Extension<ClientCert>,
    bytes: Bytes,
) -> Answer<centre_api::AuditHead> {
    station_post(
        &centre,
        &cert,
        &bytes,
        "audit-push",
        crate::audit_push::push,
    )
    .await
}

/// `POST /v1/services/{job}/{step}`: a card service step ([`crate::services`]).
async fn service_handler(
    State(centre): State<Arc<Centre>>,
    Extension(cert): Extension<ClientCert>,
    Path((job, step)): Path<(String, String)>,
    bytes: Bytes,
) -> std::result::Result<Response, ApiError> {
    let run = async {
        let who = enrol::authenticate(&centre, client_cert(&cert)).await?;
        let r = run_service(&centre, &who, &job, &step, &bytes).await;
        refusals::audited(&centre, &who, &step, Some(&job), &bytes, r).await
    };
    run.await.map_err(ApiError)
}

async fn run_service(
    centre: &Arc<Centre>,
    who: &WhoAmI,
    job: &str,
    step: &str,
    bytes: &Bytes,
) -> Result<Response> {
    use crate::services::{address, hold, renew};
    issuance::check_job_id(job)?;
    let json = |v: serde_json::Value| Json(v).into_response();
    let answer = match step {
        "renew" => json(issuance::json(
            &renew::open(centre, who, job, &body(bytes)?).await?,
        )?),
        "certify" => json(issuance::json(
            &renew::certify(centre, who, job, &body(bytes)?).await?,
        )?),
        "complete" => json(issuance::json(
            &renew::complete(centre, who, job, &body(bytes)?).await?,
        )?),
        "abort" => json(issuance::json(
            &renew::abort(centre, who, job, &body(bytes)?).await?,
        )?),
        "hold" | "release" => {
            let kind = if step == "hold" { "hold" } else { "release" };
            json(issuance::json(
                &hold::run(centre, who, job, kind, &body(bytes)?).await?,
            )?)
        }
        "address" => json(issuance::json(
            &address::change(centre, who, job, &body(bytes)?).await?,
        )?),
        other => {
            return Err(CentralError::refused(
                Refusal::NotFound,
                "not-found",
                format!(
                    "a service job has no step {other:?} (renew, certify, complete, abort, hold, release, address)"
                ),
            ))
        }
    };
    crate::failpoint::hit(&format!("service.{step}"));
    Ok(answer)
}

async fn service_job_handler(
    State(centre): State<Arc<Centre>>,
    Extension(cert): Extension<ClientCert>,
    Path(job): Path<String>,
) -> Answer<centre_api::ServiceJobStatus> {
    let run = async {
        let who = enrol::authenticate(&centre, client_cert(&cert)).await?;
        let r = crate::services::renew::status(&centre, &who, &job).await;
        refusals::audited(&centre, &who, "service-job", Some(&job), &[], r).await
    };
    run.await.map(Json).map_err(ApiError)
}

/// `POST /v1/outbox/list`: [`crate::egov::station_view::list`].
async fn outbox_list_handler(
    State(centre): State<Arc<Centre>>,
    Extension(cert): Extension<ClientCert>,
    bytes: Bytes,
) -> Answer<centre_api::OutboxList> {
    station_post(
        &centre,
        &cert,
        &bytes,
        "outbox-list",
        crate::egov::station_view::list,
    )
    .await
}

/// `POST /v1/cards-to-replace`: [`crate::replacements::for_office`].
async fn cards_to_replace_handler(
    State(centre): State<Arc<Centre>>,
    Extension(cert): Extension<ClientCert>,
    bytes: Bytes,
) -> Answer<centre_api::CardsToReplace> {
    station_post(
        &centre,
        &cert,
        &bytes,
        "cards-to-replace",
        crate::replacements::for_office,
    )
    .await
}

/// `POST /v1/documents/changes`: [`crate::services::changes::list`].
async fn document_changes_handler(
    State(centre): State<Arc<Centre>>,
    Extension(cert): Extension<ClientCert>,
    bytes: Bytes,
) -> Answer<centre_api::DocumentChanges> {
    station_post(
        &centre,
        &cert,
        &bytes,
        "document-changes",
        crate::services::changes::list,
    )
    .await
}

/// `POST /v1/cards/lookup`: [`crate::services::lookup::card`].
async fn card_lookup_handler(
    State(centre): State<Arc<Centre>>,
    Extension(cert): Extension<ClientCert>,
    bytes: Bytes,
) -> Answer<centre_api::CardAtCentre> {
    station_post(
        &centre,
        &cert,
        &bytes,
        "card-lookup",
        crate::services::lookup::card,
    )
    .await
}

/// `POST /v1/cards/key`: [`crate::services::card_keys::release`].
async fn card_key_handler(
    State(centre): State<Arc<Centre>>,
    Extension(cert): Extension<ClientCert>,
    bytes: Bytes,
) -> Answer<centre_api::CardKey> {
    station_post(
        &centre,
        &cert,
        &bytes,
        "card-key",
        crate::services::card_keys::release,
    )
    .await
}

/// `POST /v1/documents/lookup`: [`crate::services::lookup::document`].
async fn document_lookup_handler(
    State(centre): State<Arc<Centre>>,
    Extension(cert): Extension<ClientCert>,
    bytes: Bytes,
) -> Answer<centre_api::CardAtCentre> {
    station_post(
        &centre,
        &cert,
        &bytes,
        "document-lookup",
        crate::services::lookup::document,
    )
    .await
}

/// `POST /v1/outbox/{id}/retry`: [`crate::egov::station_view::retry`].
async fn outbox_retry_handler(
    State(centre): State<Arc<Centre>>,
    Extension(cert): Extension<ClientCert>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Answer<centre_api::OutboxMessage> {
    let run = async {
        let who = enrol::authenticate(&centre, client_cert(&cert)).await?;
        let r =
            async { crate::egov::station_view::retry(&centre, &who, &id, &body(&bytes)?).await }
                .await;
        let r = refusals::audited(&centre, &who, "outbox-retry", None, &bytes, r).await;
        if r.is_ok() {
            // As `idcentral outbox retry` does: a checkpoint signed over the retry at once.
            crate::audit::checkpoint_after(
                &centre.pool,
                centre.store.as_ref(),
                &centre.name,
                "outbox.retried",
            )
            .await;
        }
        r
    };
    run.await.map(Json).map_err(ApiError)
}

/// The API's routes over `centre`.
pub fn router(centre: Arc<Centre>) -> Router {
    use centre_api::paths;
    Router::new()
        .route(paths::ENROL, post(enrol_handler))
        .route(paths::WHOAMI, get(whoami_handler))
        .route(paths::STATUS, get(status_handler))
        .route(paths::RESERVE, post(reserve_handler))
        .route("/v1/jobs/{job}", get(job_handler))
        .route("/v1/jobs/{job}/{step}", post(step_handler))
        .route(paths::AUDIT_PUSH, post(audit_push_handler))
        .route(paths::AUDIT_EVENTS, post(audit_events_handler))
        .route("/v1/documents/{document}/revoke", post(revoke_handler))
        .route("/v1/services/{job}", get(service_job_handler))
        .route("/v1/services/{job}/{step}", post(service_handler))
        .route(paths::CARD_LOOKUP, post(card_lookup_handler))
        .route(paths::DOCUMENT_LOOKUP, post(document_lookup_handler))
        .route(paths::CARD_KEY, post(card_key_handler))
        .route(paths::OUTBOX_LIST, post(outbox_list_handler))
        .route(paths::CARDS_TO_REPLACE, post(cards_to_replace_handler))
        .route(paths::DOCUMENT_CHANGES, post(document_changes_handler))
        .route("/v1/outbox/{id}/retry", post(outbox_retry_handler))
        .route(
            centre_api::anchors::ANCHORS_PATH,
            get(anchors_http::anchors),
        )
        .route(
            centre_api::anchors::IDENTITY_RENEW_PATH,
            post(anchors_http::renew),
        )
        .route(
            centre_api::anchors::DOCUMENT_SIGNER_RENEW_PATH,
            post(anchors_http::renew_document_signer),
        )
        .with_state(centre)
}

/// The database (migrated), the HSM, the active CAs and the centre's profiles (the built-in
/// set, its URLs at `[public] base_url`: [`crate::public::centre_profiles`]).
async fn open(
    cfg: &CentreConfig,
) -> Result<(
    deadpool_postgres::Pool,
    Arc<dyn hsm::KeyStore>,
    pki::CentreCas,
    profiles::ProfileSet,
)> {
    let pool = crate::db::pool(&cfg.database)?;
    crate::db::migrate(&pool).await?;
    let store: Arc<dyn hsm::KeyStore> = Arc::from(hsm::open(&cfg.hsm)?);
    let cas = pki::load_cas(&pool, store.as_ref()).await?;
    let profiles = crate::public::centre_profiles(cfg.public.base_url.as_deref())?;
    Ok((pool, store, cas, profiles))
}

/// Open the database and the HSM, make sure the server certificate exists, and build the
/// shared state and the TLS configuration.
pub async fn prepare(cfg: &CentreConfig) -> Result<(Arc<Centre>, Arc<crate::tls::LiveTls>)> {
    let (pool, store, cas, profiles) = open(cfg).await?;
    let server_cert =
        crate::tls::server_certificate(&pool, store.as_ref(), &profiles, &cfg.server).await?;
    let station_cas = crate::tls::usable_station_cas(&pool.get().await?).await?;
    crate::services::card_keys::ensure(&pool, store.as_ref(), &cfg.centre.name).await?;
    let centre = Centre {
        name: cfg.centre.name.clone(),
        pool,
        store: Arc::clone(&store),
        cas,
        profiles,
        tls_fingerprint: ca::fingerprint_sha256(&server_cert.der)?,
        server_anchor: server_cert.issuer.cert_der.clone(),
        issuance: cfg.issuance.clone(),
        active: Default::default(),
    };
    let tls = crate::tls::LiveTls::new(store, server_cert, station_cas)?;
    Ok((Arc::new(centre), Arc::new(tls)))
}

/// What `idcentral serve` runs: the mutual-TLS API on `listen` (default `[server] listen`),
/// and the public relying-party services on `public_listen` (default `[public] listen`; none
/// when neither is set); `public_only` runs the public services alone.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    pub listen: Option<SocketAddr>,
    pub public_listen: Option<SocketAddr>,
    pub public_only: bool,
}

/// Serve the mutual-TLS API until the process is stopped (see [`serve_with`]).
pub async fn serve(cfg: &CentreConfig, listen: Option<SocketAddr>) -> Result<()> {
    serve_with(
        cfg,
        &ServeOptions {
            listen,
            ..Default::default()
        },
    )
    .await
}

/// Serve until the process is stopped. Prints `listening on ADDR` (the bound address, so
/// `--listen 127.0.0.1:0` tells the caller its port) and the server certificate's fingerprint,
/// then `public listening on ADDR` for the public listener (alone with `--public-only`).
pub async fn serve_with(cfg: &CentreConfig, opts: &ServeOptions) -> Result<()> {
    let public_addr = opts.public_listen.or(cfg.public.listen);
    if opts.public_only {
        let addr = public_addr.ok_or_else(|| {
            CentralError::invalid(
                "public-listen",
                "--public-only serves the public listener: give --public-listen ADDR or [public] listen",
            )
        })?;
        let (pool, store, cas, profiles) = open(cfg).await?;
        let centre = Arc::new(Centre {
            name: cfg.centre.name.clone(),
            pool,
            store,
            cas,
            profiles,
            tls_fingerprint: String::new(),
            server_anchor: Vec::new(),
            issuance: cfg.issuance.clone(),
            active: Default::default(),
        });
        let public = crate::public::prepare(cfg, centre).await?;
        crate::public::spawn_worker(&public, cfg);
        crate::public::spawn_ocsp_cache(&public, cfg);
        let (listener, bound) = crate::public::bind(addr).await?;
        println!("public listening on {bound}");
        return crate::public::serve(public, listener).await;
    }
    let (centre, tls) = prepare(cfg).await?;
    crate::egov::spawn(&centre, cfg.egov.as_ref()).await?;
    let addr = opts.listen.unwrap_or(cfg.server.listen);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| CentralError::Other(format!("listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| CentralError::Other(format!("listen on {addr}: {e}")))?;
    // The responders, the TSA and the signing worker run in every `serve` (what is published
    // stays current whichever instance serves it); the public listener only where asked for.
    let public = crate::public::prepare(cfg, Arc::clone(&centre)).await?;
    crate::public::spawn_worker(&public, cfg);
    let public_listener = match public_addr {
        Some(a) => Some(crate::public::bind(a).await?),
        None => None,
    };
    println!("listening on {bound}");
    println!("TLS SHA256 Fingerprint={}", centre.tls_fingerprint);
    if let Some((listener, public_bound)) = public_listener {
        crate::public::spawn_ocsp_cache(&public, cfg);
        println!("public listening on {public_bound}");
        tokio::spawn(async move {
            if let Err(e) = crate::public::serve(public, listener).await {
                tracing::error!(error = %e, "the public listener stopped");
            }
        });
    }
    tokio::spawn(crate::tls::refresh_station_cas(
        Arc::clone(&tls),
        centre.pool.clone(),
    ));
    tokio::spawn(crate::timeouts::run(Arc::clone(&centre)));
    tokio::spawn(crate::audit::run_checkpoints(
        Arc::clone(&centre),
        AUDIT_CHECKPOINT_EVERY,
    ));
    let app = router(centre);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let acceptor = TlsAcceptor::from(tls.current());
        tokio::spawn(connection(acceptor, app.clone(), tcp, peer));
    }
}

/// One connection: the TLS handshake, then HTTP/1.1 with the client certificate attached to
/// every request.
async fn connection(
    acceptor: TlsAcceptor,
    app: Router,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "TLS handshake refused");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "TLS handshake not finished in time");
            return;
        }
    };
    let cert = ClientCert(
        tls.get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| Arc::new(c.as_ref().to_vec())),
    );
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(cert.clone());
            tower::ServiceExt::oneshot(app.clone(), req)
        });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(tls), service)
        .await
    {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// The HTTP layer of the Station CA and root rollovers ([`crate::anchors`]): authenticate, call,
/// audit a refusal.
mod anchors_http {
    use std::sync::Arc;

    use axum::body::Bytes;
    use axum::extract::{Extension, State};
    use axum::Json;
    use centre_api::anchors::{Anchors, DocumentSignerRenewResponse, IdentityRenewResponse};

    use super::{body, client_cert, ApiError, ClientCert};
    use crate::error::CentralError;
    use crate::pki::Centre;
    use crate::refusals;

    type Answer<T> = std::result::Result<Json<T>, ApiError>;

    pub async fn anchors(
        State(centre): State<Arc<Centre>>,
        Extension(cert): Extension<ClientCert>,
    ) -> Answer<Anchors> {
        let run = async {
            let who = crate::enrol::authenticate(&centre, client_cert(&cert)).await?;
            let r = crate::anchors::anchors(&centre).await;
            refusals::audited(&centre, &who, "anchors", None, &[], r).await
        };
        run.await.map(Json).map_err(ApiError)
    }

    pub async fn renew(
        State(centre): State<Arc<Centre>>,
        Extension(cert): Extension<ClientCert>,
        bytes: Bytes,
    ) -> Answer<IdentityRenewResponse> {
        let run = async {
            let presented = client_cert(&cert);
            let who = crate::enrol::authenticate(&centre, presented).await?;
            let presented = presented.ok_or(CentralError::NotInitialised)?;
            let r = async {
                crate::anchors::renew_identity(&centre, &who, presented, &body(&bytes)?).await
            }
            .await;
            refusals::audited(&centre, &who, "identity-renew", None, &bytes, r).await
        };
        run.await.map(Json).map_err(ApiError)
    }

    pub async fn renew_document_signer(
        State(centre): State<Arc<Centre>>,
        Extension(cert): Extension<ClientCert>,
        bytes: Bytes,
    ) -> Answer<DocumentSignerRenewResponse> {
        let run = async {
            let who = crate::enrol::authenticate(&centre, client_cert(&cert)).await?;
            let r =
                async { crate::document_signer::renew(&centre, &who, &body(&bytes)?).await }.await;
            refusals::audited(&centre, &who, "document-signer-renew", None, &bytes, r).await
        };
        run.await.map(Json).map_err(ApiError)
    }
}
