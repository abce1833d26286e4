//! `centre.toml`: where the centre's database, HSM and listener are. Secrets (the database
//! password, the HSM PIN) are named by file, never written here.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CentralError, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentreConfig {
    pub centre: CentreSection,
    pub database: DatabaseSection,
    pub hsm: hsm::HsmConfig,
    /// The HTTPS server (`idcentral serve`); defaults when the section is absent.
    #[serde(default)]
    pub server: ServerSection,
    /// The issuance protocol; defaults when the section is absent.
    #[serde(default)]
    pub issuance: IssuanceSection,
    /// The e-government publisher (docs/egov.md); without this section `serve` delivers nothing
    /// and the outbox only fills.
    #[serde(default)]
    pub egov: Option<EgovSection>,
    /// The public services for relying parties (OCSP, CRLs, CA certificates, time-stamps) on
    /// a second, plain-HTTP listener; absent: no public listener unless `--public-listen`.
    #[serde(default)]
    pub public: PublicSection,
}

/// `[egov]`: where and how `idcentral serve` delivers the outbox (docs/egov.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgovSection {
    /// The receiver's endpoint, `https://HOST[:PORT]/PATH`; each message is POSTed there.
    pub url: String,
    /// The CA certificate(s) (PEM) the receiver's TLS server certificate must chain to.
    pub ca_file: PathBuf,
    /// How long one delivery (connection, TLS handshake, request and answer) may take.
    #[serde(default = "default_egov_timeout")]
    pub timeout_seconds: u64,
    /// Failed attempts after which a message is `failed` (the dead letter).
    #[serde(default = "default_egov_attempts")]
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles after each further one ...
    #[serde(default = "default_egov_retry_initial")]
    pub retry_initial_ms: u64,
    /// ... up to this.
    #[serde(default = "default_egov_retry_max")]
    pub retry_max_ms: u64,
    /// How often the publisher looks for due messages.
    #[serde(default = "default_egov_poll")]
    pub poll_interval_ms: u64,
}

impl EgovSection {
    /// The section's rules, each refusal naming its key.
    pub fn check(&self) -> std::result::Result<(), String> {
        let url = &self.url;
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| format!("egov.url: {url:?} must start with https:// (mutual TLS)"))?;
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        if authority.is_empty() || authority.contains('@') {
            return Err(format!(
                "egov.url: {url:?} must name a host (and no user name or password)"
            ));
        }
        if !(1..=300).contains(&self.timeout_seconds) {
            return Err("egov.timeout_seconds: must be 1 to 300".into());
        }
        if !(1..=1000).contains(&self.max_attempts) {
            return Err("egov.max_attempts: must be 1 to 1000".into());
        }
        if !(1..=86_400_000).contains(&self.retry_initial_ms) {
            return Err("egov.retry_initial_ms: must be 1 to 86400000 (a day)".into());
        }
        if !(self.retry_initial_ms..=7 * 86_400_000).contains(&self.retry_max_ms) {
            return Err(
                "egov.retry_max_ms: must be at least retry_initial_ms and at most 604800000 (a week)"
                    .into(),
            );
        }
        if !(10..=3_600_000).contains(&self.poll_interval_ms) {
            return Err("egov.poll_interval_ms: must be 10 to 3600000".into());
        }
        Ok(())
    }
}

fn default_egov_timeout() -> u64 {
    10
}

fn default_egov_attempts() -> u32 {
    10
}

fn default_egov_retry_initial() -> u64 {
    2_000
}

fn default_egov_retry_max() -> u64 {
    3_600_000
}

fn default_egov_poll() -> u64 {
    2_000
}

/// `[public]`: the plain-HTTP listener of the relying-party services (docs/relying-parties.md)
/// and the base URL certificates name for them (AIA, CRL distribution point).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicSection {
    /// Address and port of the public listener (`--public-listen` overrides it).
    #[serde(default)]
    pub listen: Option<std::net::SocketAddr>,
    /// `http://host[:port][/path]` relying parties reach the listener at: certificates issued
    /// from now on name `BASE/ocsp`, `BASE/crl/<key>.crl` and `BASE/ca/<key>.cer`. Absent: the
    /// profiles' own URLs stay.
    #[serde(default)]
    pub base_url: Option<String>,
    /// How long a signed OCSP response is valid (thisUpdate to nextUpdate); responses are signed
    /// again when less than half of it is left.
    #[serde(default = "default_ocsp_validity")]
    pub ocsp_validity_seconds: u64,
    /// How many stored OCSP responses each process keeps in memory (about 1 KB each), so that
    /// a request for one needs no database round trip; 0: none (every request reads the
    /// database).
    #[serde(default = "default_ocsp_cache_entries")]
    pub ocsp_cache_entries: usize,
}

impl Default for PublicSection {
    fn default() -> Self {
        PublicSection {
            listen: None,
            base_url: None,
            ocsp_validity_seconds: default_ocsp_validity(),
            ocsp_cache_entries: default_ocsp_cache_entries(),
        }
    }
}

fn default_ocsp_validity() -> u64 {
    4 * 3600
}

/// The most entries of the OCSP cache by default (about 100 MB).
fn default_ocsp_cache_entries() -> usize {
    100_000
}

/// The most entries of the OCSP cache a configuration may ask for (about 10 GB).
const MAX_OCSP_CACHE_ENTRIES: usize = 10_000_000;

impl PublicSection {
    /// The section's rules, each refusal naming its key.
    pub fn check(&self) -> std::result::Result<(), String> {
        if let Some(url) = &self.base_url {
            let host = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"));
            if !host.is_some_and(|h| !h.is_empty() && !h.starts_with('/'))
                || !url.is_ascii()
                || url.contains(|c: char| c.is_whitespace() || matches!(c, '"' | '{' | '}' | '\\'))
                || url.ends_with('/')
            {
                return Err(format!(
                    "public.base_url: `{url}` must be http://HOST[:PORT][/PATH] (or https://), ASCII, without a trailing slash"
                ));
            }
        }
        if !(60..=7 * 86_400).contains(&self.ocsp_validity_seconds) {
            return Err(
                "public.ocsp_validity_seconds: must be 60 to 604800 (7 days, RFC 5019 §6)".into(),
            );
        }
        if self.ocsp_cache_entries > MAX_OCSP_CACHE_ENTRIES {
            return Err(format!(
                "public.ocsp_cache_entries: must be 0 to {MAX_OCSP_CACHE_ENTRIES} (about 1 KB each)"
            ));
        }
        Ok(())
    }
}

/// `[issuance]`: the document series, the size of the number blocks stations get, and how long
/// a job may stay open before the centre aborts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuanceSection {
    /// Two capital letters (ICAO 9303 document number prefix), e.g. "AA".
    #[serde(default = "default_series")]
    pub series: String,
    /// Numbers in each block a station is assigned.
    #[serde(default = "default_block_size")]
    pub block_size: u32,
    /// A job reserved or certified longer than this is aborted by the centre.
    #[serde(default = "default_job_timeout")]
    pub job_timeout_seconds: u64,
    /// A renewal of an issued card's certificates (a service job) reserved or certified longer
    /// than this is aborted by the centre, which revokes what it issued for it: until then the
    /// document can be renewed at no other office.
    #[serde(default = "default_renewal_timeout")]
    pub renewal_timeout_seconds: u64,
    /// A held (suspended) document may be released within this many days of the hold; after
    /// that it must be revoked.
    #[serde(default = "default_suspension_limit")]
    pub suspension_limit_days: u32,
    /// Distinct document numbers one station may look up (`POST /v1/documents/lookup`) in an
    /// hour; a new number beyond them is refused (`lookup-limit`) until the hour has room again,
    /// a number looked up within the hour is answered again.
    #[serde(default = "default_lookups_per_hour")]
    pub document_lookups_per_hour: u32,
    /// Of those, the distinct numbers one operator of a station may look up in an hour (at most
    /// `document_lookups_per_hour`; unset: 40, or `document_lookups_per_hour` when that is
    /// lower): one clerk does not spend the office's hour alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_lookups_per_operator_per_hour: Option<u32>,
}

fn default_lookups_per_hour() -> u32 {
    120
}

/// `document_lookups_per_operator_per_hour` when unset (never above the station's).
const DEFAULT_LOOKUPS_PER_OPERATOR: u32 = 40;

fn default_suspension_limit() -> u32 {
    30
}

impl Default for IssuanceSection {
    fn default() -> Self {
        IssuanceSection {
            series: default_series(),
            block_size: default_block_size(),
            job_timeout_seconds: default_job_timeout(),
            renewal_timeout_seconds: default_renewal_timeout(),
            suspension_limit_days: default_suspension_limit(),
            document_lookups_per_hour: default_lookups_per_hour(),
            document_lookups_per_operator_per_hour: None,
        }
    }
}

impl IssuanceSection {
    /// The distinct numbers one operator may look up in an hour (see the field).
    pub fn lookups_per_operator(&self) -> u32 {
        self.document_lookups_per_operator_per_hour
            .unwrap_or(DEFAULT_LOOKUPS_PER_OPERATOR.min(self.document_lookups_per_hour))
    }

    /// The section's rules, each refusal naming its key.
    pub fn check(&self) -> std::result::Result<(), String> {
        let s = self.series.as_bytes();
        if !(s.len() == 2 && s.iter().all(u8::is_ascii_uppercase)) {
            return Err("issuance.series: must be two capital letters (e.g. AA)".into());
        }
        if !(1..=1_000_000).contains(&self.block_size) {
            return Err("issuance.block_size: must be 1 to 1000000".into());
        }
        if !(1..=30 * 86_400).contains(&self.job_timeout_seconds) {
            return Err("issuance.job_timeout_seconds: must be 1 to 2592000 (30 days)".into());
        }
        if !(1..=30 * 86_400).contains(&self.renewal_timeout_seconds) {
            return Err("issuance.renewal_timeout_seconds: must be 1 to 2592000 (30 days)".into());
        }
        if !(1..=100_000).contains(&self.document_lookups_per_hour) {
            return Err("issuance.document_lookups_per_hour: must be 1 to 100000".into());
        }
        if !(1..=self.document_lookups_per_hour).contains(&self.lookups_per_operator()) {
            return Err(format!(
                "issuance.document_lookups_per_operator_per_hour: must be 1 to \
                 issuance.document_lookups_per_hour ({})",
                self.document_lookups_per_hour
            ));
        }
        Ok(())
    }
}

fn default_series() -> String {
    "AA".into()
}

fn default_block_size() -> u32 {
    10_000
}

fn default_job_timeout() -> u64 {
    3600
}

fn default_renewal_timeout() -> u64 {
    86_400
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Address and port to listen on (`--listen` overrides it).
    #[serde(default = "default_listen")]
    pub listen: std::net::SocketAddr,
    /// The name stations connect to: a DNS name or an IP address, put in the TLS server
    /// certificate's subjectAltName (with 127.0.0.1).
    #[serde(default = "default_public_name")]
    pub public_name: String,
    /// The Station CA key (`station-ca-N`) that issues the TLS server certificate. Unset: the
    /// key that issued the current one while it is valid and not revoked, else the active key
    /// (docs/centre.md "Station CA rollover": set it to the new key once every station has the
    /// new anchor).
    #[serde(default)]
    pub station_ca_key: Option<String>,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: default_listen(),
            public_name: default_public_name(),
            station_ca_key: None,
        }
    }
}

fn default_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 8443))
}

fn default_public_name() -> String {
    "localhost".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentreSection {
    /// Name of this centre in audit events (e.g. "centre").
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    /// `postgres://USER@HOST:PORT/DB` (several hosts for a standby: `host=a,b` with
    /// `target_session_attrs=read-write`); no password in it.
    pub url: String,
    /// File holding the database password (first line), owner-only.
    pub password_file: Option<PathBuf>,
    /// Connections in the pool.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
}

fn default_pool_size() -> usize {
    8
}

impl CentreConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| CentralError::io(path, e))?;
        let cfg: CentreConfig = toml::from_str(&text).map_err(|e| CentralError::Config {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        if url_has_password(&cfg.database.url) {
            return Err(CentralError::Config {
                path: path.to_owned(),
                reason: "database.url: must not contain a password; name a password_file".into(),
            });
        }
        if cfg.database.pool_size == 0 {
            return Err(CentralError::Config {
                path: path.to_owned(),
                reason: "database.pool_size: must be at least 1".into(),
            });
        }
        cfg.issuance
            .check()
            .and_then(|()| cfg.public.check())
            .map_err(|reason| CentralError::Config {
                path: path.to_owned(),
                reason,
            })?;
        if let Some(egov) = &cfg.egov {
            egov.check().map_err(|reason| CentralError::Config {
                path: path.to_owned(),
                reason,
            })?;
        }
        Ok(cfg)
    }
}

/// `postgres://user:password@host/...` carries a password between `//` and `@`.
fn url_has_password(url: &str) -> bool {
    let Some(rest) = url.split_once("://").map(|(_, r)| r) else {
        return url.contains("password=");
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let in_userinfo = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    in_userinfo || url.contains("password=")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuance_section_has_defaults_and_rules() {
        let d = IssuanceSection::default();
        assert_eq!(
            (d.series.as_str(), d.block_size, d.job_timeout_seconds),
            ("AA", 10_000, 3600)
        );
        assert_eq!(d.renewal_timeout_seconds, 86_400);
        assert!(d.check().is_ok());
        let bad = IssuanceSection {
            renewal_timeout_seconds: 0,
            ..d.clone()
        };
        assert!(bad
            .check()
            .unwrap_err()
            .starts_with("issuance.renewal_timeout_seconds"));
        let bad = IssuanceSection {
            series: "A1".into(),
            ..d.clone()
        };
        assert!(bad.check().unwrap_err().starts_with("issuance.series"));
        let bad = IssuanceSection {
            block_size: 0,
            ..d.clone()
        };
        assert!(bad.check().unwrap_err().starts_with("issuance.block_size"));
        assert_eq!(
            (d.document_lookups_per_hour, d.lookups_per_operator()),
            (120, 40)
        );
        // A centre configured before the setting, with fewer per station: as many per operator.
        let few = IssuanceSection {
            document_lookups_per_hour: 20,
            ..d.clone()
        };
        assert_eq!((few.check(), few.lookups_per_operator()), (Ok(()), 20));
        for per_operator in [0, 121] {
            let bad = IssuanceSection {
                document_lookups_per_operator_per_hour: Some(per_operator),
                ..d.clone()
            };
            assert_eq!(
                bad.check().unwrap_err(),
                "issuance.document_lookups_per_operator_per_hour: must be 1 to \
                 issuance.document_lookups_per_hour (120)"
            );
        }
    }

    #[test]
    fn the_egov_section_has_defaults_and_rules() {
        let e: EgovSection =
            toml::from_str("url = \"https://egov.example:8443/v1/messages\"\nca_file = \"/x.pem\"")
                .unwrap();
        assert_eq!(
            (
                e.timeout_seconds,
                e.max_attempts,
                e.retry_initial_ms,
                e.retry_max_ms
            ),
            (10, 10, 2_000, 3_600_000)
        );
        assert!(e.check().is_ok());
        let bad = EgovSection {
            url: "http://egov.example/v1".into(),
            ..e.clone()
        };
        assert!(bad.check().unwrap_err().starts_with("egov.url"));
        let bad = EgovSection {
            url: "https://user:pw@egov.example/v1".into(),
            ..e.clone()
        };
        assert!(bad.check().unwrap_err().starts_with("egov.url"));
        let bad = EgovSection {
            max_attempts: 0,
            ..e.clone()
        };
        assert!(bad.check().unwrap_err().starts_with("egov.max_attempts"));
        let bad = EgovSection {
            retry_max_ms: 1,
            ..e
        };
        assert!(bad.check().unwrap_err().starts_with("egov.retry_max_ms"));
    }

    #[test]
    fn the_public_base_url_must_be_an_http_url_without_a_trailing_slash() {
        let ok = PublicSection {
            base_url: Some("http://pki.example.uz:8080".into()),
            ..Default::default()
        };
        assert!(ok.check().is_ok());
        for bad in [
            "pki.example.uz",
            "http://",
            "http://pki.example.uz/",
            "ftp://x",
            "http://a b",
        ] {
            let s = PublicSection {
                base_url: Some(bad.into()),
                ..Default::default()
            };
            assert!(
                s.check().unwrap_err().starts_with("public.base_url"),
                "{bad}"
            );
        }
        let s = PublicSection {
            ocsp_validity_seconds: 10,
            ..Default::default()
        };
        assert!(s
            .check()
            .unwrap_err()
            .starts_with("public.ocsp_validity_seconds"));
        let s = PublicSection {
            ocsp_cache_entries: 20_000_000,
            ..Default::default()
        };
        assert!(s
            .check()
            .unwrap_err()
            .starts_with("public.ocsp_cache_entries"));
        let off = PublicSection {
            ocsp_cache_entries: 0,
            ..Default::default()
        };
        assert!(off.check().is_ok());
    }

    #[test]
    fn a_password_in_the_url_is_found() {
        assert!(url_has_password("postgres://u:secret@127.0.0.1:5432/db"));
        assert!(url_has_password("host=a user=u password=x"));
        assert!(!url_has_password("postgres://u@127.0.0.1:5432/db"));
        assert!(!url_has_password(
            "postgres://u@a:1,b:2/db?target_session_attrs=read-write"
        ));
    }
}
