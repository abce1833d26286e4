//! idstation's application core: configuration, the holder record, the CA ceremonies and
//! (with later issues) the issuance job, recovery, operators and roles. The `idstation` binary
//! only parses arguments and calls into this crate.

pub mod audit;
pub mod ca_admin;
pub mod config;
pub mod datadir;
pub mod document;
pub mod error;
pub mod gui_support;
pub mod holder;
pub mod holder_update;
pub mod init;
pub mod issuance;
pub mod operators;
pub mod records;
pub mod recovery;
pub mod rotation;
pub mod time_util;

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
}

impl Station {
    /// Open an initialised data dir: read station.toml, log in to the HSM, open the registry.
    pub fn open(data_dir: &Path) -> Result<Self, StationError> {
        let layout = Layout::new(data_dir);
        let config = StationConfig::load(data_dir)?;
        datadir::check_private(data_dir, &config.hsm)?;
        let profiles = match &config.profiles.dir {
            Some(dir) => profiles::load_dir_over_builtin(&layout.root.join(dir))?,
            None => profiles::builtin()?,
        };
        let keys = hsm::open(&config.hsm)?;
        let registry = registry::Registry::open(layout.registry())?;
        Ok(Station {
            layout,
            config,
            keys,
            registry,
            profiles,
        })
    }

    /// Log an operator in for `action`, requiring one of `roles` (refusals are audited).
    pub fn authorize(
        &mut self,
        operator: &str,
        password: &zeroize::Zeroizing<String>,
        action: &str,
        roles: &[registry::Role],
    ) -> Result<operators::Session, StationError> {
        let station = self.config.station.name.clone();
        operators::authorize(
            &mut self.registry,
            &station,
            operator,
            password,
            action,
            roles,
        )
    }
}
