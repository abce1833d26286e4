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
    key_from_secret(profile, &secret[..])
}

/// The management key the profile's algorithm takes from a 32-byte derivation output: as many
/// leading bytes as the algorithm's key length.
fn key_from_secret(profile: &CardProfile, secret: &[u8]) -> Result<ManagementKey, StationError> {
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

/// The journal's word for the card key of a card the centre derives (the label of the centre's
/// key), in the details of an issuance job's `card.reset` and `card.prepare` steps.
pub const JOURNALED_CARD_KEY: &str = "card_key";

/// The label of the centre's card key that issuance job `job`'s card is under, as its journal
/// recorded it; `None`: the card is under this station's own key.
pub fn journaled_card_key(job: &registry::Job) -> Option<String> {
    job.steps.iter().find_map(|s| {
        serde_json::from_str::<serde_json::Value>(&s.details)
            .ok()?
            .get(JOURNALED_CARD_KEY)?
            .as_str()
            .map(str::to_owned)
    })
}

/// The management key of the card `request` names, released by the national centre (docs/centre.md
/// "Card management keys"), and the label of the centre's key it derives from. The answer's
/// secret is wiped once the key is made.
pub fn centre_card_key(
    st: &Station,
    profile: &CardProfile,
    request: &centre_api::CardKeyRequest,
) -> Result<(ManagementKey, String), StationError> {
    let answer: centre_api::CardKey = crate::centre::CentreClient::for_station(st)?
        .post_secret(centre_api::paths::CARD_KEY, request)?;
    if !answer
        .card_serial
        .eq_ignore_ascii_case(&request.card_serial)
    {
        return Err(StationError::Other(format!(
            "the centre answered the card key of card {}, not {}",
            answer.card_serial, request.card_serial
        )));
    }
    let secret = zeroize::Zeroizing::new(
        hex::decode(&answer.secret)
            .map_err(|_| StationError::Other("the centre's card key is not hexadecimal".into()))?,
    );
    if secret.len() != 32 {
        return Err(StationError::Other(format!(
            "the centre's card key has {} bytes, not 32",
            secret.len()
        )));
    }
    Ok((key_from_secret(profile, &secret)?, answer.key.clone()))
}
