//! The environment the station's HSM module reads, for a binary to be started with.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` only from the process environment, once, at `C_Initialize`,
//! and no process of ours changes its own environment (`hsm::process_env`). So `idstation` and
//! `idstation-gui` ask here, before they start any thread, which environment the data dir's HSM
//! needs, and restart themselves with it when they were started without it
//! ([`hsm::process_env::exec_with`]).

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::StationConfig;
use crate::datadir::Layout;
use crate::error::StationError;

/// The environment of the data dir's configured HSM (empty for modules that need none). A data
/// dir without a configuration needs nothing here: the command reports that it is not
/// initialised.
pub fn for_data_dir(data_dir: &Path) -> Result<BTreeMap<String, String>, StationError> {
    if !Layout::new(data_dir).config().exists() {
        return Ok(BTreeMap::new());
    }
    Ok(match StationConfig::load(data_dir)?.hsm {
        hsm::HsmConfig::Pkcs11 { env, .. } => env,
        hsm::HsmConfig::Yubihsm { .. } => BTreeMap::new(),
    })
}

/// The environment `init` will record for the SoftHSM2 token it creates: under `softhsm_dir`
/// when given, else under the data dir's `hsm/`.
pub fn for_init(data_dir: &Path, softhsm_dir: Option<&Path>) -> BTreeMap<String, String> {
    let dir = match softhsm_dir {
        Some(d) => d.to_path_buf(),
        None => Layout::new(data_dir).hsm_dir(),
    };
    hsm::pkcs11::SoftHsm2Token::at(&dir, crate::init::TOKEN_LABEL).env
}

/// Return when the process runs with `env`; else restart it with `env` added (same executable,
/// arguments and open descriptors). For a binary's `main`, before any thread is started.
pub fn restart_with(env: &BTreeMap<String, String>) -> Result<(), StationError> {
    Ok(hsm::process_env::exec_with(env)?)
}
