//! One delivery to the e-government endpoint: `POST` of the compact JWS over HTTPS (hyper's
//! HTTP/1.1 client over tokio-rustls, TLS 1.3, the ring provider), the receiver's certificate
//! verified up to `[egov] ca_file` for the URL's host, the centre's client certificate
//! (`centre-egov-tls-1`) presented with its TLS signature made in the HSM (`hsm::tls`). One
//! connection per message; the whole exchange is bounded by `[egov] timeout_seconds`.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};

use super::keys::EgovKeys;
use crate::config::EgovSection;
use crate::error::{CentralError, Result};

/// The largest receipt kept (bytes of the receiver's answer).
const MAX_RECEIPT: usize = 64 * 1024;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A 2xx answer with a receipt for the message: the receiver has it. The receipt is the
    /// answer's JSON object, which names the message (`"message_id"`), NUL characters taken
    /// out of its strings (PostgreSQL's jsonb cannot hold them).
    Delivered {
        status: u16,
        receipt: serde_json::Value,
    },
    /// No connection, a TLS failure, a timeout or a non-2xx answer: retried later.
    Failed { status: Option<u16>, error: String },
}

/// The configured endpoint with its TLS configuration.
pub struct EgovClient {
    url: String,
    host: String,
    port: u16,
    authority: String,
    path: String,
    server_name: ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
}

impl EgovClient {
    /// A client for `cfg.url`, trusting the certificates of `cfg.ca_file`, presenting the
    /// centre's e-government client key of `store`.
    pub fn new(
        cfg: &EgovSection,
        store: Arc<dyn hsm::KeyStore>,
        keys: &EgovKeys,
    ) -> Result<EgovClient> {
        let bad = |rule: String| CentralError::invalid("egov.url", rule);
        let uri: hyper::Uri = cfg
            .url
            .parse()
            .map_err(|e| bad(format!("{:?} is not a URL: {e}", cfg.url)))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad(format!("{:?} must start with https://", cfg.url)));
        }
        let host = uri
            .host()
            .ok_or_else(|| bad(format!("{:?} has no host", cfg.url)))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_else(|| host.clone());
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".into());
        let server_name = ServerName::try_from(host.clone())
            .map_err(|e| bad(format!("host {host:?} is not usable: {e}")))?;
        let roots = roots(&cfg.ca_file)?;
        let identity = hsm::tls::certified_key(store, &keys.tls_label, &keys.tls_chain)?;
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| CentralError::Other(format!("TLS configuration: {e}")))?
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(identity)));
        Ok(EgovClient {
            url: cfg.url.clone(),
            host,
            port,
            authority,
            path,
            server_name,
            tls: Arc::new(tls),
            timeout: Duration::from_secs(cfg.timeout_seconds),
        })
    }

    /// The endpoint, as configured.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How long one delivery may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `POST` message `id` (its compact JWS) with the idempotency key; never an error: the
    /// outcome says what happened.
    pub async fn deliver(&self, id: i64, jws: &str) -> Outcome {
        match tokio::time::timeout(self.timeout, self.exchange(id, jws)).await {
            Err(_) => Outcome::Failed {
                status: None,
                error: format!("no answer within {} s", self.timeout.as_secs()),
            },
            Ok(Err(error)) => Outcome::Failed {
                status: None,
                error,
            },
            Ok(Ok((status, body))) if (200..300).contains(&status) => match receipt(id, &body) {
                Ok(receipt) => Outcome::Delivered { status, receipt },
                Err(why) => Outcome::Failed {
                    status: Some(status),
                    error: format!("HTTP {status} but {why}"),
                },
            },
            Ok(Ok((status, body))) => Outcome::Failed {
                status: Some(status),
                error: format!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&body)
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(300)
                        .collect::<String>()
                ),
            },
        }
    }

    async fn exchange(&self, id: i64, jws: &str) -> std::result::Result<(u16, Bytes), String> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connect to {}:{}: {e}", self.host, self.port))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let conn = tokio::spawn(conn);
        let req = hyper::Request::builder()
            .method("POST")
            .uri(&self.path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::CONTENT_TYPE, super::CONTENT_TYPE)
            .header(hyper::header::ACCEPT, "application/json")
            .header(super::IDEMPOTENCY_HEADER, id.to_string())
            .body(Full::new(Bytes::from(jws.to_owned())))
            .map_err(|e| format!("request: {e}"))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("POST: {e}"))?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_RECEIPT)
            .collect()
            .await
            .map_err(|e| format!("reading the answer (at most {MAX_RECEIPT} bytes): {e}"))?
            .to_bytes();
        drop(sender);
        conn.abort();
        Ok((status, body))
    }
}

/// The receipt in a 2xx answer to message `id` (see [`Outcome::Delivered`]), or why the answer
/// is none: a 2xx from something else on the way (a gateway's page, an empty body) must not
/// pass for a delivery.
fn receipt(id: i64, body: &[u8]) -> std::result::Result<serde_json::Value, String> {
    let mut v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| format!("the answer is not a JSON receipt for message {id}"))?;
    if v.get("message_id").and_then(serde_json::Value::as_i64) != Some(id) {
        return Err(format!(
            "the answer is not a receipt for message {id} (it names no \"message_id\": {id})"
        ));
    }
    strip_nul(&mut v);
    Ok(v)
}

/// Take NUL characters out of every string and key of `v`.
fn strip_nul(v: &mut serde_json::Value) {
    use serde_json::Value;
    let clean = |s: &str| s.replace('\0', "");
    match v {
        Value::String(s) if s.contains('\0') => *s = clean(s),
        Value::Array(a) => a.iter_mut().for_each(strip_nul),
        Value::Object(o) => {
            let fields = std::mem::take(o);
            for (k, mut x) in fields {
                strip_nul(&mut x);
                o.insert(clean(&k), x);
            }
        }
        _ => {}
    }
}

/// The trust anchors of `[egov] ca_file` (PEM, one or more certificates).
fn roots(file: &std::path::Path) -> Result<rustls::RootCertStore> {
    use der::Encode;
    let pem = std::fs::read(file).map_err(|e| CentralError::io(file, e))?;
    let certs = x509_cert::Certificate::load_pem_chain(&pem).map_err(|e| {
        CentralError::invalid(
            "egov.ca_file",
            format!("{}: not PEM certificates: {e}", file.display()),
        )
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        let der = c
            .to_der()
            .map_err(|e| CentralError::invalid("egov.ca_file", e.to_string()))?;
        roots.add(CertificateDer::from(der)).map_err(|e| {
            CentralError::invalid(
                "egov.ca_file",
                format!("{}: not a usable trust anchor: {e}", file.display()),
            )
        })?;
    }
    if roots.is_empty() {
        return Err(CentralError::invalid(
            "egov.ca_file",
            format!("{}: holds no certificate", file.display()),
        ));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::receipt;
    use serde_json::json;

    #[test]
    fn only_a_json_receipt_naming_the_message_is_a_delivery() {
        let ok = receipt(42, br#"{"receipt":"EGOV-42","message_id":42}"#).unwrap();
        assert_eq!(ok, json!({"receipt": "EGOV-42", "message_id": 42}));
        // A gateway's page, an empty body, another message's receipt, a receipt naming none.
        for (body, why) in [
            (&b"<html>maintenance</html>"[..], "not a JSON receipt"),
            (b"", "not a JSON receipt"),
            (
                br#"{"receipt":"EGOV-41","message_id":41}"#,
                "names no \"message_id\": 42",
            ),
            (br#"{"receipt":"EGOV-42"}"#, "names no \"message_id\": 42"),
            (br#"[42]"#, "names no \"message_id\": 42"),
        ] {
            let e = receipt(42, body).unwrap_err();
            assert!(e.contains(why) && e.contains("message 42"), "{e}");
        }
        // NUL characters, which PostgreSQL's jsonb refuses, are taken out of strings and keys.
        let nul = receipt(
            7,
            br#"{"message_id":7,"note":"a\u0000b","list":["\u0000x"],"k\u0000":{"y":"\u0000"}}"#,
        )
        .unwrap();
        assert_eq!(
            nul,
            json!({"message_id": 7, "note": "ab", "list": ["x"], "k": {"y": ""}})
        );
    }
}
