//! The holder's secrets as the card takes them: the PIN the holder chose and the PUK the
//! station draws, each checked against the card profile. Errors name the rule, never the value.

use personalization::plan::Credentials;
use personalization::secret::{Pin, PinKind};
use profiles::card::CardProfile;
use zeroize::Zeroizing;

use crate::error::StationError;

/// Check PIN and PUK against the card profile before anything is written anywhere.
/// The holder's PIN as the card takes it: the card profile's rules, then the weak-PIN rules
/// (one digit, a run, the holder's birth date). Errors name the rule, never the value.
pub fn check_pin(
    profile: &CardProfile,
    pin: &str,
    date_of_birth: time::Date,
) -> Result<Pin, StationError> {
    let checked =
        Pin::new(PinKind::Pin, pin).map_err(|e| StationError::invalid("pin", e.to_string()))?;
    profile
        .check_secret(&checked)
        .map_err(|e| StationError::invalid("pin", e.to_string()))?;
    crate::pin_letter::check_holder_pin(pin, date_of_birth)?;
    Ok(checked)
}

/// A PUK drawn at random, as long as the card profile allows, checked against it.
pub(super) fn random_puk(profile: &CardProfile) -> Result<(Pin, Zeroizing<String>), StationError> {
    let text = crate::pin_letter::generate_puk(profile.puk.max_length)?;
    let puk =
        Pin::new(PinKind::Puk, &text).map_err(|e| StationError::invalid("puk", e.to_string()))?;
    profile
        .check_secret(&puk)
        .map_err(|e| StationError::invalid("puk", e.to_string()))?;
    Ok((puk, text))
}
