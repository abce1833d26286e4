//! What the host makes of a card profile (`profiles::card::CardProfile`, owned by the
//! `profiles` crate): the transport credentials of a blank card as zeroizing secrets, and the
//! holder's PIN/PUK checked against the profile's policy (SP 800-73-4 Part 2 §2.4.3).

use profiles::card::CardProfile;

use crate::error::Error;
use crate::secret::{ManagementKey, Pin, PinKind};

/// The credentials a card profile gives, as the PIV client takes them.
pub trait Credentials {
    /// The transport management key.
    fn transport_key(&self) -> Result<ManagementKey, Error>;
    /// The transport PIN.
    fn transport_pin(&self) -> Result<Pin, Error>;
    /// The transport PUK.
    fn transport_puk(&self) -> Result<Pin, Error>;
    /// Checks a holder PIN or PUK against the policy; the error names the rule, never the
    /// value.
    fn check_secret(&self, value: &Pin) -> Result<(), Error>;
}

impl Credentials for CardProfile {
    fn transport_key(&self) -> Result<ManagementKey, Error> {
        ManagementKey::from_hex(
            self.transport.management_key_algorithm,
            &self.transport.management_key,
        )
    }

    fn transport_pin(&self) -> Result<Pin, Error> {
        Pin::new(PinKind::Pin, &self.transport.pin)
    }

    fn transport_puk(&self) -> Result<Pin, Error> {
        Pin::new(PinKind::Puk, &self.transport.puk)
    }

    fn check_secret(&self, value: &Pin) -> Result<(), Error> {
        let (pol, transport, field) = match value.kind() {
            PinKind::Pin => (&self.pin, self.transport_pin()?, "PIN"),
            PinKind::Puk => (&self.puk, self.transport_puk()?, "PUK"),
        };
        if value.len() < pol.min_length || value.len() > pol.max_length {
            return Err(Error::Invalid {
                field: field.into(),
                rule: format!(
                    "must be {} to {} characters long",
                    pol.min_length, pol.max_length
                ),
            });
        }
        if pol.numeric && !value.is_numeric() {
            return Err(Error::Invalid {
                field: field.into(),
                rule: "must be digits only".into(),
            });
        }
        if pol.differ_from_transport && value.same_value(&transport) {
            return Err(Error::Invalid {
                field: field.into(),
                rule: "must differ from the transport value".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use profiles::card::MgmtAlgorithm;

    fn shipped() -> CardProfile {
        profiles::builtin()
            .unwrap()
            .card("card-esign")
            .unwrap()
            .clone()
    }

    #[test]
    fn transport_credentials_come_from_the_profile() {
        let p = shipped();
        assert_eq!(
            p.transport_key().unwrap().algorithm(),
            MgmtAlgorithm::TripleDes
        );
        assert!(p.transport_pin().is_ok() && p.transport_puk().is_ok());
    }

    #[test]
    fn holder_pin_policy_is_enforced() {
        let p = shipped();
        assert!(p
            .check_secret(&Pin::new(PinKind::Pin, "918273").unwrap())
            .is_ok());
        let e = p
            .check_secret(&Pin::new(PinKind::Pin, "123456").unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("transport"), "{e}");
        let e = p
            .check_secret(&Pin::new(PinKind::Pin, "12a456").unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("digits"), "{e}");
        assert!(p
            .check_secret(&Pin::new(PinKind::Puk, "1234567").unwrap())
            .is_err());
    }
}
