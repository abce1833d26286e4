//! `station.toml`: the one configuration file of a station's data dir.
//!
//! It names the HSM (backend, module, token, where its PIN comes from — never the PIN itself),
//! the key labels of the CA hierarchy, the office this station issues for, and where profiles
//! come from. `idstation init` writes it last, so its presence marks an initialised data dir.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::StationError;

pub const CONFIG_FILE: &str = "station.toml";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationConfig {
    pub station: StationSection,
    pub hsm: hsm::HsmConfig,
    pub ca: CaSection,
    #[serde(default)]
    pub profiles: ProfilesSection,
    /// Dual control of CA key changes (issue 8); defaults when absent.
    #[serde(default, skip_serializing_if = "RotationSection::is_default")]
    pub rotation: RotationSection,
    /// Card services (issue 16); defaults when absent.
    #[serde(default, skip_serializing_if = "ServicesSection::is_default")]
    pub services: ServicesSection,
    /// The national centre this station is enrolled with (`init --centre`); absent for a
    /// standalone station.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub centre: Option<CentreSection>,
}

/// `[centre]`: where the national centre is and how its first TLS certificate looked. After
/// enrolment the server's chain is verified up to the Station CA received then
/// (`DIR/centre/station-ca.pem`), for the URL's host name; the fingerprint is kept as a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentreSection {
    /// `https://HOST[:PORT]`.
    pub url: String,
    /// SHA-256 of the centre's TLS certificate at enrolment (upper-case hex with colons).
    pub fingerprint_sha256: String,
    /// Other instances of the same centre (`https://HOST[:PORT]`, the same TLS certificate
    /// names): a request the centre at `url` does not answer is sent to each in turn (every
    /// request of the protocol may be repeated: the centre answers a repeat with its first
    /// answer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_urls: Vec<String>,
    /// How long one request may take, in seconds (default 30).
    #[serde(
        default = "CentreSection::default_request_timeout",
        skip_serializing_if = "CentreSection::is_default_request_timeout"
    )]
    pub request_timeout_seconds: u64,
    /// How often the station GUI brings the registry up to date with what other offices
    /// changed at the centre (`idstation centre sync`), in seconds, while a clerk or ca-admin
    /// is logged in: at the log-in and then every this often (default 300; 0: only when asked).
    #[serde(
        default = "CentreSection::default_sync_every",
        skip_serializing_if = "CentreSection::is_default_sync_every"
    )]
    pub sync_every_seconds: u64,
    /// From how many days before its key usage period ends the station renews its Document
    /// Signer by itself (docs/centre.md "Document Signer renewal"): at a `centre sync` (the
    /// GUI's automatic one included) or an issuance once that many days or fewer are left
    /// (default 14; 0: only a ca-admin's `centre renew-document-signer`).
    #[serde(
        default = "CentreSection::default_renew_ds",
        skip_serializing_if = "CentreSection::is_default_renew_ds"
    )]
    pub renew_document_signer_days: u32,
}

impl CentreSection {
    pub const DEFAULT_REQUEST_TIMEOUT_SECONDS: u64 = 30;
    pub const DEFAULT_SYNC_EVERY_SECONDS: u64 = 300;
    pub const DEFAULT_RENEW_DOCUMENT_SIGNER_DAYS: u32 = 14;
    /// The most `renew_document_signer_days` may be: under half of ICAO's three months, so a
    /// Document Signer just renewed is never due again at once.
    pub const MAX_RENEW_DOCUMENT_SIGNER_DAYS: u32 = 45;

    fn default_renew_ds() -> u32 {
        Self::DEFAULT_RENEW_DOCUMENT_SIGNER_DAYS
    }

    fn is_default_renew_ds(v: &u32) -> bool {
        *v == Self::DEFAULT_RENEW_DOCUMENT_SIGNER_DAYS
    }

    fn default_sync_every() -> u64 {
        Self::DEFAULT_SYNC_EVERY_SECONDS
    }

    fn is_default_sync_every(v: &u64) -> bool {
        *v == Self::DEFAULT_SYNC_EVERY_SECONDS
    }

    /// The interval of the GUI's automatic sync; `None` when it is off.
    pub fn sync_every(&self) -> Option<std::time::Duration> {
        (self.sync_every_seconds > 0)
            .then(|| std::time::Duration::from_secs(self.sync_every_seconds))
    }

    fn default_request_timeout() -> u64 {
        Self::DEFAULT_REQUEST_TIMEOUT_SECONDS
    }

    fn is_default_request_timeout(v: &u64) -> bool {
        *v == Self::DEFAULT_REQUEST_TIMEOUT_SECONDS
    }

    /// Refuse a timeout of 0 or above 10 minutes.
    pub fn check(&self, path: &Path) -> Result<(), StationError> {
        for u in std::iter::once(&self.url).chain(&self.other_urls) {
            if let Err(e) = crate::centre::client::parse_url(u) {
                return Err(StationError::Config {
                    path: path.to_path_buf(),
                    reason: format!("centre: {e}"),
                });
            }
        }
        if !(1..=600).contains(&self.request_timeout_seconds) {
            return Err(StationError::Config {
                path: path.to_path_buf(),
                reason: format!(
                    "centre.request_timeout_seconds = {}: must be 1..600",
                    self.request_timeout_seconds
                ),
            });
        }
        if self.sync_every_seconds != 0 && !(10..=86_400).contains(&self.sync_every_seconds) {
            return Err(StationError::Config {
                path: path.to_path_buf(),
                reason: format!(
                    "centre.sync_every_seconds = {}: must be 0 (only when asked) or 10..86400",
                    self.sync_every_seconds
                ),
            });
        }
        if self.renew_document_signer_days > Self::MAX_RENEW_DOCUMENT_SIGNER_DAYS {
            return Err(StationError::Config {
                path: path.to_path_buf(),
                reason: format!(
                    "centre.renew_document_signer_days = {}: must be 0 (only by hand) or 1..{}",
                    self.renew_document_signer_days,
                    Self::MAX_RENEW_DOCUMENT_SIGNER_DAYS
                ),
            });
        }
        Ok(())
    }
}

/// `[services]`: limits of the card services on issued cards (docs/station.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServicesSection {
    /// How long a suspended document may be resumed, in days (default 30); after it resume
    /// is refused and the document must be revoked.
    pub suspension_limit_days: u32,
}

impl Default for ServicesSection {
    fn default() -> Self {
        ServicesSection {
            suspension_limit_days: 30,
        }
    }
}

impl ServicesSection {
    fn is_default(&self) -> bool {
        *self == ServicesSection::default()
    }
}

/// Dual control of CA key rotation, root rollover and CA revocation (docs/rotation.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RotationSection {
    /// Approvals needed from distinct ca-admins other than the requester (M; default 1, so
    /// two persons in total).
    pub quorum: u32,
    /// How long a request can be approved, in seconds (default 24 h).
    pub request_expiry_seconds: u64,
}

impl Default for RotationSection {
    fn default() -> Self {
        RotationSection {
            quorum: 1,
            request_expiry_seconds: 24 * 3600,
        }
    }
}

impl RotationSection {
    fn is_default(&self) -> bool {
        *self == RotationSection::default()
    }

    /// Refuse settings that would defeat dual control.
    pub fn check(&self, path: &Path) -> Result<(), StationError> {
        let bad = |reason: String| StationError::Config {
            path: path.to_path_buf(),
            reason,
        };
        if self.quorum < 1 || self.quorum > 16 {
            return Err(bad(format!(
                "rotation.quorum = {}: must be 1..16 approvals by ca-admins other than the requester (dual control needs at least one)",
                self.quorum
            )));
        }
        if self.request_expiry_seconds < 1 || self.request_expiry_seconds > 30 * 86_400 {
            return Err(bad(format!(
                "rotation.request_expiry_seconds = {}: must be 1..2592000 (30 days)",
                self.request_expiry_seconds
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationSection {
    /// Name of this station, recorded in every audit event.
    pub name: String,
    /// Office code of the issuance office this station belongs to.
    pub office: String,
}

/// Key labels that do not rotate through the registry. The CA keys themselves (root,
/// e-Signature CA, ...) are recorded in the registry with their state, so that a rotation
/// switches keys in one transaction; the registry, not this file, says which key is active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaSection {
    /// HSM label of the master secret per-card management keys are derived from.
    pub card_master_key: String,
    /// HSM label of the station audit-signing key.
    pub audit_key: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilesSection {
    /// A directory of profile TOML files overriding the built-in ones (optional).
    pub dir: Option<PathBuf>,
}

impl StationConfig {
    pub fn load(data_dir: &Path) -> Result<Self, StationError> {
        let path = data_dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StationError::NotInitialised {
                    data_dir: data_dir.to_path_buf(),
                }
            } else {
                StationError::io(&path, e)
            }
        })?;
        refuse_env_secrets(&path, &text)?;
        let cfg: StationConfig = toml::from_str(&text).map_err(|e| StationError::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        cfg.rotation.check(&path)?;
        if let Some(c) = &cfg.centre {
            c.check(&path)?;
        }
        Ok(cfg)
    }

    pub fn to_toml(&self) -> Result<String, StationError> {
        toml::to_string_pretty(self)
            .map_err(|e| StationError::Other(format!("serialising station.toml: {e}")))
    }
}

/// A station.toml written when secrets could come from the environment (`[hsm] pin = { env =
/// "NAME" }`, `[hsm] password = { env = ... }`) is refused naming the field, the rule and the
/// fix; the `hsm` crate refuses the form too, but its message cannot name the field.
fn refuse_env_secrets(path: &Path, text: &str) -> Result<(), StationError> {
    let Ok(doc) = text.parse::<toml::Table>() else {
        return Ok(()); // the typed parse that follows reports the syntax error
    };
    let Some(hsm) = doc.get("hsm").and_then(|h| h.as_table()) else {
        return Ok(());
    };
    for field in ["pin", "password"] {
        if hsm
            .get(field)
            .and_then(|v| v.as_table())
            .is_some_and(|t| t.contains_key("env"))
        {
            return Err(StationError::Config {
                path: path.to_path_buf(),
                reason: format!(
                    "[hsm] {field} = {{ env = ... }} is refused: {}",
                    hsm::ENV_SOURCE_REFUSED
                ),
            });
        }
    }
    Ok(())
}

/// Names of stations and operators: 1–64 characters, letters, digits, `.`, `_`, `-`.
pub fn check_name(field: &str, v: &str) -> Result<(), StationError> {
    let ok = !v.is_empty()
        && v.chars().count() <= 64
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(StationError::invalid(
            field,
            format!("{v:?} must be 1-64 characters of A-Z a-z 0-9 . _ -"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hsm_secret_from_the_environment_is_refused_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let toml = "[station]\nname = \"s\"\noffice = \"TAS01\"\n\
                    [hsm]\nbackend = \"pkcs11\"\nmodule = \"/m\"\ntoken_label = \"t\"\n\
                    pin = { env = \"IDSTATION_HSM_PIN\" }\n\
                    [ca]\ncard_master_key = \"k\"\naudit_key = \"a\"\n";
        std::fs::write(dir.path().join(CONFIG_FILE), toml).unwrap();
        let e = StationConfig::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("[hsm] pin = { env = ... } is refused"), "{e}");
        assert!(e.contains("never come from environment variables"), "{e}");
        assert!(e.contains("chmod 600"), "{e}");
        // The same file with a 0600 file as the source loads.
        let fixed = toml.replace(
            "pin = { env = \"IDSTATION_HSM_PIN\" }",
            "pin = { file = \"/p\" }",
        );
        std::fs::write(dir.path().join(CONFIG_FILE), fixed).unwrap();
        StationConfig::load(dir.path()).unwrap();
    }

    #[test]
    fn a_centre_section_round_trips_with_the_default_timeout_and_refuses_zero() {
        let dir = tempfile::tempdir().unwrap();
        let base = "[station]\nname = \"s\"\noffice = \"TAS01\"\n\
                    [hsm]\nbackend = \"pkcs11\"\nmodule = \"/m\"\ntoken_label = \"t\"\n\
                    pin = { file = \"/p\" }\n\
                    [ca]\ncard_master_key = \"k\"\naudit_key = \"a\"\n";
        std::fs::write(dir.path().join(CONFIG_FILE), base).unwrap();
        assert_eq!(StationConfig::load(dir.path()).unwrap().centre, None);
        let with =
            format!("{base}[centre]\nurl = \"https://c:8443\"\nfingerprint_sha256 = \"AB\"\n");
        std::fs::write(dir.path().join(CONFIG_FILE), &with).unwrap();
        let cfg = StationConfig::load(dir.path()).unwrap();
        let c = cfg.centre.clone().unwrap();
        assert_eq!(c.request_timeout_seconds, 30);
        assert_eq!(c.url, "https://c:8443");
        let again: StationConfig = toml::from_str(&cfg.to_toml().unwrap()).unwrap();
        assert_eq!(again, cfg);
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            format!("{with}request_timeout_seconds = 0\n"),
        )
        .unwrap();
        let e = StationConfig::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("centre.request_timeout_seconds = 0"), "{e}");
        assert_eq!(c.sync_every(), Some(std::time::Duration::from_secs(300)));
        for (every, said) in [
            (0, None),
            (5, Some("must be 0 (only when asked) or 10..86400")),
        ] {
            std::fs::write(
                dir.path().join(CONFIG_FILE),
                format!("{with}sync_every_seconds = {every}\n"),
            )
            .unwrap();
            match (StationConfig::load(dir.path()), said) {
                (Ok(cfg), None) => assert_eq!(cfg.centre.unwrap().sync_every(), None),
                (Err(e), Some(rule)) => {
                    let e = e.to_string();
                    assert!(
                        e.contains(&format!("centre.sync_every_seconds = {every}: {rule}")),
                        "{e}"
                    );
                }
                (got, _) => panic!("sync_every_seconds = {every}: {got:?}"),
            }
        }
        assert_eq!(c.renew_document_signer_days, 14);
        for (days, ok) in [(0, true), (45, true), (46, false)] {
            std::fs::write(
                dir.path().join(CONFIG_FILE),
                format!("{with}renew_document_signer_days = {days}\n"),
            )
            .unwrap();
            match StationConfig::load(dir.path()) {
                Ok(cfg) => {
                    assert!(ok, "{days} taken");
                    assert_eq!(cfg.centre.unwrap().renew_document_signer_days, days);
                }
                Err(e) => {
                    let e = e.to_string();
                    assert!(!ok, "{days}: {e}");
                    let rule = "must be 0 (only by hand) or 1..45";
                    assert!(
                        e.contains(&format!(
                            "centre.renew_document_signer_days = {days}: {rule}"
                        )),
                        "{e}"
                    );
                }
            }
        }
    }

    #[test]
    fn rotation_defaults_to_two_persons_and_24_hours_and_refuses_a_quorum_of_zero() {
        let d = RotationSection::default();
        assert_eq!((d.quorum, d.request_expiry_seconds), (1, 86_400));
        let p = Path::new("station.toml");
        assert!(d.check(p).is_ok());
        let e = RotationSection {
            quorum: 0,
            ..d.clone()
        }
        .check(p)
        .unwrap_err();
        assert!(e.to_string().contains("rotation.quorum = 0"), "{e}");
        let e = RotationSection {
            request_expiry_seconds: 0,
            ..d
        }
        .check(p)
        .unwrap_err();
        assert!(
            e.to_string().contains("rotation.request_expiry_seconds"),
            "{e}"
        );
        let parsed: RotationSection = toml::from_str("quorum = 2").unwrap();
        assert_eq!(parsed.quorum, 2);
        assert_eq!(parsed.request_expiry_seconds, 86_400);
        assert!(toml::from_str::<RotationSection>("quorom = 2").is_err());
    }
}
