//! idstation's application core: opening a station ([`Station`]: configuration, HSM,
//! registry, profiles), the holder record and its views, the issuance job and its recovery,
//! the CA hierarchy and its ceremonies (init, rotation under dual control, CRLs), operators and
//! sessions, the audit log. The `idstation` binary and the GUI only parse input and call into
//! this crate.
//!
//! An issuance talks to certification and registration through two seams,
//! [`certifier::Certifier`] and [`registrar::Registrar`]: today the in-station CA and the local
//! registry, next the national centre.

pub mod audit;
pub mod backup;
pub mod ca_admin;
pub mod card;
pub mod centre;
pub mod certifier;
pub mod config;
pub mod datadir;
pub mod document_signer;
pub mod error;
pub mod failpoint;
pub mod field_change;
pub mod hierarchy;
pub mod holder;
pub mod holder_update;
pub mod holder_views;
pub mod hsm_env;
pub mod init;
pub mod init_centre;
pub mod inspect;
pub mod interactive;
pub mod issuance;
pub mod journal;
pub mod operators;
pub mod pin_letter;
pub mod preferences;
pub mod ra;
pub mod ra_services;
pub mod readers;
pub mod records;
pub mod recovery;
pub mod registrar;
pub mod rotation;
pub mod secret_input;
pub mod service_seam;
pub mod services;
pub mod session;
pub mod time_util;
pub mod translit;

use std::path::Path;

pub use error::StationError;

use config::StationConfig;
use datadir::Layout;

/// An opened station: its configuration, HSM, registry and profiles.
pub struct Station {
    pub layout: Layout,
    pub config: StationConfig,
    pub keys: Box<dyn hsm::KeyStore>,
    pub registry: registry::Registry,
    pub profiles: profiles::ProfileSet,
    /// An enrolled station's client of the centre, kept between calls (its connection too).
    pub centre_client: centre::ClientCache,
}

impl Station {
    /// Open an initialised data dir: read station.toml, log in to the HSM, open the registry.
    pub fn open(data_dir: &Path) -> Result<Self, StationError> {
        Self::open_with(data_dir, |config| Ok(hsm::open(&config.hsm)?), false)
    }

    /// Open a data dir whose registry is a backup copy put back in place, to finish the restore
    /// (`idstation backup restored`; [`crate::backup::restored`]); the HSM is not opened.
    pub fn open_restoring(data_dir: &Path) -> Result<Self, StationError> {
        Self::open_with(data_dir, |_| Ok(Box::new(NoHsm)), true)
    }

    /// Open an initialised data dir for a command that only reads the registry (`show`,
    /// `ca show`, `ca requests`, `operator list`, …): like [`Station::open`] but the HSM is not
    /// opened (no HSM PIN needed); any key operation fails with an HSM error saying so.
    pub fn open_read_only(data_dir: &Path) -> Result<Self, StationError> {
        Self::open_with(data_dir, |_| Ok(Box::new(NoHsm)), false)
    }

    /// Every opening: the configuration, the private-files check (a data dir or HSM PIN file
    /// others can read is refused either way), profiles, `keys`, the registry — refused when it
    /// is a backup copy whose restore is not finished, unless `restoring`.
    fn open_with(
        data_dir: &Path,
        keys: impl FnOnce(&StationConfig) -> Result<Box<dyn hsm::KeyStore>, StationError>,
        restoring: bool,
    ) -> Result<Self, StationError> {
        let layout = Layout::new(data_dir);
        let config = StationConfig::load(data_dir)?;
        datadir::check_private(data_dir, &config.hsm)?;
        let profiles = match &config.profiles.dir {
            Some(dir) => profiles::load_dir_over_builtin(&layout.root.join(dir))?,
            None => profiles::builtin()?,
        };
        let keys = keys(&config)?;
        // An initialised station without its registry has lost it: never a new, empty one in
        // its place (its audit log would start again, its records gone unnoticed).
        if !layout.registry().exists() {
            return Err(StationError::Conflict(format!(
                "registry: {} is missing from this initialised station; put it back, or restore \
                 a backup (docs/station.md \"Backup and restore\")",
                layout.registry().display()
            )));
        }
        let registry = registry::Registry::open(layout.registry())?;
        if !restoring && registry.is_backup_copy()? {
            return Err(StationError::Conflict(format!(
                "registry: {} is a backup copy put back in place; finish the restore first: \
                 `idstation backup restored --operator ADMIN` (on a standalone station with \
                 --next-number, the first document number not yet on any card)",
                layout.registry().display()
            )));
        }
        Ok(Station {
            layout,
            config,
            keys,
            registry,
            profiles,
            centre_client: centre::ClientCache::default(),
        })
    }

    /// The document profile an issuance uses (`profiles/document/id-card.toml`, or the data
    /// dir's override of it).
    pub fn document_profile(&self) -> Result<&profiles::document::DocumentProfile, StationError> {
        Ok(self.profiles.document(profiles::DEFAULT_DOCUMENT)?)
    }

    /// The card profile the document profile names (`profiles/card/card-esign.toml`, or the
    /// data dir's override of it).
    pub fn card_profile(&self) -> Result<&profiles::card::CardProfile, StationError> {
        Ok(self
            .profiles
            .document_and_card(profiles::DEFAULT_DOCUMENT)?
            .1)
    }

    /// Log an operator in for `action`, requiring one of `roles` (refusals are audited).
    pub fn authorize(
        &mut self,
        operator: &str,
        password: &zeroize::Zeroizing<String>,
        action: &str,
        roles: &[registry::Role],
    ) -> Result<session::Session, StationError> {
        let station = self.config.station.name.clone();
        session::authorize(
            &mut self.registry,
            &station,
            operator,
            password,
            action,
            roles,
        )
    }
}

/// The key store of a station opened with [`Station::open_read_only`]: the HSM is never
/// opened, and every key operation is refused.
struct NoHsm;

impl NoHsm {
    fn refuse<T>(op: &'static str) -> hsm::Result<T> {
        Err(hsm::HsmError::Operation {
            op,
            reason: "this command only reads the registry and does not open the HSM".into(),
        })
    }
}

impl hsm::KeyStore for NoHsm {
    fn backend(&self) -> &'static str {
        "none (read-only)"
    }
    fn generate_p256(&self, _label: &str) -> hsm::Result<hsm::KeyInfo> {
        Self::refuse("generate_p256")
    }
    fn generate_hmac_secret(&self, _label: &str) -> hsm::Result<hsm::KeyInfo> {
        Self::refuse("generate_hmac_secret")
    }
    fn find(&self, _label: &str) -> hsm::Result<Option<hsm::KeyInfo>> {
        Self::refuse("find")
    }
    fn list(&self) -> hsm::Result<Vec<hsm::KeyInfo>> {
        Self::refuse("list")
    }
    fn public_key_spki(&self, _label: &str) -> hsm::Result<Vec<u8>> {
        Self::refuse("public_key_spki")
    }
    fn sign_p256_sha256(&self, _label: &str, _message: &[u8]) -> hsm::Result<Vec<u8>> {
        Self::refuse("sign_p256_sha256")
    }
    fn destroy(&self, _label: &str) -> hsm::Result<bool> {
        Self::refuse("destroy")
    }
    fn hmac_sha256(&self, _label: &str, _data: &[u8]) -> hsm::Result<zeroize::Zeroizing<[u8; 32]>> {
        Self::refuse("hmac_sha256")
    }
}

// Re-exports for the GUI: the registry types a front end names, so that `gui` depends on
// `station` only (ARCHITECTURE.md, crate arrows).
pub use registry::{AuditEvent, ExportFormat, Role};
// And the document profile the clerk's form validates against.
pub use profiles::document::DocumentProfile;
/// The official lists the clerk's forms choose from (regions and districts, citizenships).
pub use profiles::regions;
