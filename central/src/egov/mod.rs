//! The e-government publisher (docs/egov.md): every message of the centre's `outbox` (one per
//! completed issuance) is delivered by a task of `idcentral serve` to the endpoint of `[egov]`,
//! over HTTPS with mutual TLS, as a JSON document signed by the centre (JWS, RFC 7515, ES256 of
//! RFC 7518 §3.4, the key in the HSM).
//!
//! - [`keys`]: the two HSM keys and their certificates (the JWS signer under the National Root,
//!   the TLS client under the Station CA), made by `init` or the first `serve` of an older centre;
//! - [`jws`]: the compact JWS, signed in the HSM, and its verification;
//! - [`message`]: what the decree asks of a message, read from the registry;
//! - [`outbox`]: the delivery state in PostgreSQL (claims with `FOR UPDATE SKIP LOCKED`, leases,
//!   backoff, the dead letter) and the operators' `outbox list` / `outbox retry`;
//! - [`station_view`]: the same list and retry asked by an enrolled station for its operator
//!   (`/v1/outbox/…`);
//! - [`client`]: one delivery over HTTPS;
//! - [`publisher`]: the loop `serve` runs.

pub mod client;
pub mod jws;
pub mod keys;
pub mod message;
pub mod outbox;
pub mod publisher;
pub mod station_view;

pub use publisher::spawn;

/// HSM label of the key that signs the messages (JWS `kid`).
pub const JWS_KEY_LABEL: &str = "centre-egov-1";
/// HSM label of the client key of the mutual TLS connection to the receiver.
pub const TLS_KEY_LABEL: &str = "centre-egov-tls-1";
/// The HTTP header carrying the idempotency key (the outbox id).
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// The media type of a compact JWS (RFC 7515 §9.2.1).
pub const CONTENT_TYPE: &str = "application/jose";
