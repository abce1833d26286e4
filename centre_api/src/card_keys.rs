//! `POST /v1/cards/key`: a card's management key, derived by the centre (docs/centre.md "Card
//! management keys").

use serde::{Deserialize, Serialize};

/// `POST /v1/cards/key`: the management key of one card whose key the centre derives
/// (HMAC-SHA256 under the centre's card key, in its HSM), for the station that has the card in
/// its reader. Either the station's own issuance `job` of that card (the card being issued,
/// reset or recovered), or an issued card's `document` with the `certificates` read from it
/// (a renewal or a PIN unblock at any office; the document must be active). Never stored by
/// either side; audited at the centre (`card.key-released`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardKeyRequest {
    pub operator: String,
    /// The chip serial: 8 hexadecimal digits.
    pub card_serial: String,
    /// What the key is for: `issuance`, `renewal` or `unblock`.
    pub purpose: String,
    /// This station's issuance job (UUID) whose card this is (`issuance`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The issued card's document number (`renewal`, `unblock`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
    /// Serials (hex) of the certificates read from the card (`renewal`, `unblock`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<String>,
}

/// The answer to [`CardKeyRequest`]. The secret is wiped when the value is dropped.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardKey {
    pub card_serial: String,
    /// The label of the centre's key it derives from (`card-keys-1`).
    pub key: String,
    /// HMAC-SHA256(card key, "idstation/piv-management-key" ‖ 0x00 ‖ serial (4 bytes, big
    /// endian) ‖ the issuance job's random value (16 bytes)), hex: the station takes as many
    /// leading bytes as the card profile's management key algorithm needs, as for a key it
    /// derives itself.
    pub secret: String,
}

impl std::fmt::Debug for CardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardKey")
            .field("card_serial", &self.card_serial)
            .field("key", &self.key)
            .field("secret", &"<secret>")
            .finish()
    }
}

impl Drop for CardKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}
