//! The ID card as the station sees it (NIST SP 800-73-4 PIV): its card profile, its per-card
//! management key derived in the HSM, and how the registry names its serial and slots.

use personalization::secret::ManagementKey;
use profiles::card::{CardProfile, Slot};

use crate::error::StationError;
use crate::Station;

/// The purpose string of the per-card PIV management key derivation.
pub const MGMT_KEY_PURPOSE: &str = "piv-management-key";

/// Card serial as the registry records it (8 hex digits).
pub fn serial_text(serial: u32) -> String {
    format!("{serial:08X}")
}

/// A PIV slot as the registry and the reports name it (SP 800-73-4 Table 4b key references).
pub fn slot_name(slot: Slot) -> String {
    match slot {
        Slot::Authentication => "9A".into(),
        Slot::Signature => "9C".into(),
        Slot::KeyManagement => "9D".into(),
        Slot::CardAuthentication => "9E".into(),
    }
}

/// The per-card management key: HMAC-SHA256(master, purpose ‖ serial) in the HSM, first 16
/// bytes as the AES-128 key.
pub fn card_management_key(
    st: &Station,
    profile: &CardProfile,
    serial: u32,
) -> Result<ManagementKey, StationError> {
    let secret = hsm::derive_card_secret(
        st.keys.as_ref(),
        &st.config.ca.card_master_key,
        MGMT_KEY_PURPOSE,
        &serial.to_be_bytes(),
    )?;
    let alg = profile.management_key.algorithm;
    let len = alg.key_len();
    if len > secret.len() {
        return Err(StationError::Other(format!(
            "management key algorithm {} needs {len} bytes",
            alg.name()
        )));
    }
    ManagementKey::new(alg, &secret[..len]).map_err(|e| StationError::card(None, &e))
}
