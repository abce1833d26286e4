//! What enrolment leaves in the data dir, beside the registry: `DIR/centre/` (0700) with the
//! Station CA certificate the centre's TLS chain is verified against (`station-ca.pem`), the
//! station's identity certificate (`identity-1.pem`), the Station CA certificates learnt after
//! enrolment (`station-cas.pem`, written by [`super::anchors`]) and, between the centre's
//! answer and the end of a local step that failed, that answer (`enrolment.json`, 0600).

use std::path::{Path, PathBuf};

use crate::error::StationError;

/// The `centre/` folder of a data dir.
#[derive(Debug, Clone)]
pub struct CentreFiles {
    pub dir: PathBuf,
}

impl CentreFiles {
    pub fn new(data_dir: &Path) -> Self {
        CentreFiles {
            dir: data_dir.join("centre"),
        }
    }

    /// The centre's time of the last document changes this station brought into its registry
    /// (`centre sync`; RFC 3339, 0600, replaced atomically).
    pub fn changes_until(&self) -> PathBuf {
        self.dir.join("changes-until")
    }

    /// The Station CA certificate (PEM): the anchor of the centre's TLS certificate.
    pub fn station_ca(&self) -> PathBuf {
        self.dir.join("station-ca.pem")
    }

    /// Station CA certificates learnt after enrolment (PEM, one after another): each checked
    /// to the National Root the station trusts before it was written (0600, atomically).
    pub fn station_cas(&self) -> PathBuf {
        self.dir.join("station-cas.pem")
    }

    /// Every Station CA certificate the centre's TLS certificate may chain to (DER): the one
    /// from enrolment, then those of [`CentreFiles::station_cas`] (none when it is absent).
    pub fn read_all_station_cas(&self) -> Result<Vec<Vec<u8>>, StationError> {
        let mut all = vec![self.read_station_ca()?];
        let path = self.station_cas();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(all),
            Err(e) => return Err(StationError::io(&path, e)),
        };
        for der in pem_chain_to_der(&path.display().to_string(), &text)? {
            if !all.contains(&der) {
                all.push(der);
            }
        }
        Ok(all)
    }

    /// The station's identity certificate (PEM): its TLS client certificate.
    pub fn identity(&self) -> PathBuf {
        self.dir.join(format!("{}.pem", super::IDENTITY_KEY))
    }

    /// The centre's answer to the enrolment, kept until the local step finished.
    pub fn pending_enrolment(&self) -> PathBuf {
        self.dir.join("enrolment.json")
    }

    /// The Station CA certificate, DER.
    pub fn read_station_ca(&self) -> Result<Vec<u8>, StationError> {
        read_pem_cert(&self.station_ca())
    }

    /// The identity certificate, DER.
    pub fn read_identity(&self) -> Result<Vec<u8>, StationError> {
        read_pem_cert(&self.identity())
    }
}

/// One PEM certificate from `path`, as DER.
pub fn read_pem_cert(path: &Path) -> Result<Vec<u8>, StationError> {
    let text = std::fs::read_to_string(path).map_err(|e| StationError::io(path, e))?;
    pem_to_der(&path.display().to_string(), &text)
}

/// A PEM certificate (`-----BEGIN CERTIFICATE-----`) as DER; `field` names it in the error.
pub fn pem_to_der(field: &str, pem: &str) -> Result<Vec<u8>, StationError> {
    use der::{DecodePem, Encode};
    let cert = x509_cert::Certificate::from_pem(pem.as_bytes()).map_err(|e| {
        StationError::invalid(field, format!("is not a PEM X.509 certificate: {e}"))
    })?;
    cert.to_der()
        .map_err(|e| StationError::invalid(field, format!("does not re-encode as DER: {e}")))
}

/// Every PEM certificate of `pem`, as DER; `field` names the text in the error.
pub fn pem_chain_to_der(field: &str, pem: &str) -> Result<Vec<Vec<u8>>, StationError> {
    use der::Encode;
    let certs = x509_cert::Certificate::load_pem_chain(pem.as_bytes())
        .map_err(|e| StationError::invalid(field, format!("is not PEM X.509 certificates: {e}")))?;
    certs
        .iter()
        .map(|c| {
            c.to_der().map_err(|e| {
                StationError::invalid(field, format!("does not re-encode as DER: {e}"))
            })
        })
        .collect()
}
