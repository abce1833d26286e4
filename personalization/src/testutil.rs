//! Test-only helpers: a software test CA (x509-cert builder, P-256 key in memory) that issues
//! certificates for public keys generated on the card.

use std::str::FromStr;
use std::time::Duration;

use der::Encode;
use p256::ecdsa::{DerSignature, SigningKey};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::builder::{profile::BuilderProfile, Builder, CertificateBuilder};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;

pub(crate) struct TestCa {
    key: SigningKey,
    name: Name,
    serial: u32,
}

struct Leaf {
    issuer: Name,
    subject: Name,
}

impl BuilderProfile for Leaf {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }
    fn get_subject(&self) -> Name {
        self.subject.clone()
    }
    fn build_extensions(
        &self,
        _spk: spki::SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: spki::SubjectPublicKeyInfoRef<'_>,
        _tbs: &x509_cert::TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<x509_cert::ext::Extension>> {
        Ok(Vec::new())
    }
}

impl TestCa {
    pub(crate) fn new() -> Self {
        loop {
            let mut b = [0u8; 32];
            getrandom::fill(&mut b).unwrap();
            if let Ok(key) = SigningKey::from_slice(&b) {
                return Self {
                    key,
                    name: Name::from_str("CN=Personalization Test CA,O=idstation tests").unwrap(),
                    serial: 1,
                };
            }
        }
    }

    /// A certificate for `spki_der` with subject CN=`cn`.
    pub(crate) fn issue(&mut self, spki_der: &[u8], cn: &str) -> Vec<u8> {
        let subject = Name::from_str(&format!("CN={cn}")).unwrap();
        self.issue_to(spki_der, subject)
    }

    /// The CA's own certificate (self-signed; e.g. the CSCA of a passive authentication).
    pub(crate) fn self_certificate(&mut self) -> Vec<u8> {
        use p256::pkcs8::EncodePublicKey;
        let spki = self
            .key
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
            .to_vec();
        let subject = self.name.clone();
        self.issue_to(&spki, subject)
    }

    fn issue_to(&mut self, spki_der: &[u8], subject: Name) -> Vec<u8> {
        use der::Decode;
        self.serial += 1;
        let spki = SubjectPublicKeyInfoOwned::from_der(spki_der).unwrap();
        let profile = Leaf {
            issuer: self.name.clone(),
            subject,
        };
        let builder = CertificateBuilder::new(
            profile,
            SerialNumber::from(self.serial),
            Validity::from_now(Duration::from_secs(86400 * 365)).unwrap(),
            spki,
        )
        .unwrap();
        let cert = builder.build::<_, DerSignature>(&self.key).unwrap();
        cert.to_der().unwrap()
    }
}
