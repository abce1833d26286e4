//! `idcentral init`: the centre's PKI and first operator. Keys are generated in the centre's
//! HSM (non-extractable) and certified through `ca` under the built-in profiles:
//! - National Root CA (`root-ca-1`, profile `root-ca`, self-signed);
//! - e-Signature CA (`esign-ca-1`, `esign-ca`, under the root): holder certificates;
//! - CSCA (`csca-1`, `csca`, self-signed: ICAO 9303-12 §5): the stations' Document Signers;
//! - Station CA (`station-ca-1`, `station-ca`, under the root): station identities.
//!
//! After them, the e-government keys (`crate::egov::keys`: `centre-egov-1` under the root,
//! `centre-egov-tls-1` under the Station CA).
//!
//! The database part (CA keys, the first ca-admin, the audit event) is one transaction; the HSM
//! part comes first, so a failed run leaves keys on the token and nothing in the database, and a
//! second run on the same token is refused naming the key that exists.

use crate::db::Prepared;
use std::time::SystemTime;

use deadpool_postgres::Pool;
use hsm::KeyStore;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::audit::{self, Actor};
use crate::config::CentreConfig;
use crate::db;
use crate::error::{CentralError, Result};
use crate::operators::{check_name, Role};

/// The CAs `init` creates: (registry name, key label, profile, parent registry name).
pub const CAS: &[(&str, &str, &str, Option<&str>)] = &[
    ("root", "root-ca-1", "root-ca", None),
    ("esign", "esign-ca-1", "esign-ca", Some("root")),
    ("csca", "csca-1", "csca", None),
    ("station-ca", "station-ca-1", "station-ca", Some("root")),
];

pub struct InitOptions {
    pub admin: String,
    pub admin_password: Zeroizing<String>,
    /// The second ca-admin of the ceremony, with their password. Adding a ca-admin later needs
    /// a second ca-admin's approval (dual control), so a centre that is to add administrators
    /// names two at `init`.
    pub second_admin: Option<(String, Zeroizing<String>)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaSummary {
    pub ca: String,
    pub key_label: String,
    pub subject: String,
    pub fingerprint_sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct InitReport {
    pub admin: String,
    pub cas: Vec<CaSummary>,
}

pub async fn init(cfg: &CentreConfig, opts: &InitOptions) -> Result<InitReport> {
    check_name("admin", &opts.admin)?;
    let password_hash = registry::passwords::hash_password(&opts.admin_password)
        .map_err(|e| CentralError::invalid("password", strip_field(&e.to_string())))?;
    let second = match &opts.second_admin {
        None => None,
        Some((name, password)) => {
            check_name("second-admin", name)?;
            if *name == opts.admin {
                return Err(CentralError::invalid(
                    "second-admin",
                    "must differ from --admin: dual control needs two people",
                ));
            }
            let hash = registry::passwords::hash_password(password)
                .map_err(|e| CentralError::invalid("password", strip_field(&e.to_string())))?;
            Some((name.clone(), hash))
        }
    };
    let pool = db::pool(&cfg.database)?;
    db::migrate(&pool).await?;
    refuse_if_initialised(&pool, &cfg.database.url).await?;

    let store = open_or_create_token(&cfg.hsm)?;
    let profiles = crate::public::centre_profiles(cfg.public.base_url.as_deref())?;
    let certs = create_cas(store.as_ref(), &profiles)?;

    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let mut cas = Vec::new();
    for ((ca, label, _, _), der) in CAS.iter().zip(&certs) {
        tx.prepared_execute(
            "INSERT INTO ca_keys (label, ca, state, cert_der) VALUES ($1, $2, 'active', $3)",
            &[label, ca, der],
        )
        .await?;
        let info = ca::CertInfo::parse(der)?;
        cas.push(CaSummary {
            ca: (*ca).to_owned(),
            key_label: (*label).to_owned(),
            subject: info.subject.clone(),
            fingerprint_sha256: ca::fingerprint_sha256(der)?,
        });
    }
    tx.prepared_execute(
        "INSERT INTO operators (name, role, password_hash) VALUES ($1, $2, $3)",
        &[&opts.admin, &Role::CaAdmin.as_str(), &password_hash],
    )
    .await?;
    if let Some((name, hash)) = &second {
        tx.prepared_execute(
            "INSERT INTO operators (name, role, password_hash) VALUES ($1, $2, $3)",
            &[name, &Role::CaAdmin.as_str(), hash],
        )
        .await?;
    }
    let actor = Actor {
        operator: opts.admin.clone(),
        role: Role::CaAdmin.as_str().into(),
        station: cfg.centre.name.clone(),
    };
    let details = serde_json::json!({
        "second_admin": second.as_ref().map(|(n, _)| n),
        "cas": cas.iter().map(|c| serde_json::json!({
            "ca": c.ca, "key": c.key_label, "fingerprint_sha256": c.fingerprint_sha256,
        })).collect::<Vec<_>>(),
    });
    audit::append(
        &tx,
        &actor,
        "centre.initialised",
        &format!("centre:{}", cfg.centre.name),
        &details,
    )
    .await?;
    tx.commit().await?;
    // The audit signer first (what every checkpoint needs, the second event of the log), then
    // the e-government keys (JWS signer, TLS client), the OCSP responders and the time-stamping
    // unit. A failure leaves them to later commands: the first checkpoint makes the audit
    // signer, the first `serve` the others (as for a centre initialised before they existed).
    let store: std::sync::Arc<dyn KeyStore> = std::sync::Arc::from(store);
    let keys = async {
        audit::ensure_signer_with(&pool, store.as_ref(), &profiles, &cfg.centre.name).await?;
        crate::egov::keys::ensure(&pool, store.as_ref(), &profiles, &cfg.centre.name).await?;
        crate::public::ensure_keys(&pool, &store, &profiles, &cfg.centre.name).await
    };
    if let Err(e) = keys.await {
        tracing::warn!(error = %e, "could not make the audit, e-government, OCSP or TSA keys yet");
    }
    Ok(InitReport {
        admin: opts.admin.clone(),
        cas,
    })
}

/// "password: rule" → "rule" (the field is named by the caller's error).
fn strip_field(msg: &str) -> String {
    msg.strip_prefix("password: ").unwrap_or(msg).to_owned()
}

async fn refuse_if_initialised(pool: &Pool, url: &str) -> Result<()> {
    let client = pool.get().await?;
    let n: i64 = client
        .prepared_one("SELECT count(*) FROM operators", &[])
        .await?
        .get(0);
    if n > 0 {
        return Err(CentralError::AlreadyInitialised(url.to_owned()));
    }
    Ok(())
}

/// The configured HSM; a SoftHSM2 configuration that does not exist yet (`[hsm.env]`
/// `SOFTHSM2_CONF = "DIR/softhsm2.conf"`) gets its token created first, with a random SO PIN that
/// is used once and forgotten.
fn open_or_create_token(cfg: &hsm::HsmConfig) -> Result<Box<dyn KeyStore>> {
    if let hsm::HsmConfig::Pkcs11 {
        module,
        token_label,
        pin,
        env,
    } = cfg
    {
        let conf = env.get("SOFTHSM2_CONF").map(std::path::PathBuf::from);
        if let Some(conf) = conf.filter(|c| !c.exists()) {
            let dir = conf
                .parent()
                .filter(|_| conf.file_name().is_some_and(|n| n == "softhsm2.conf"))
                .ok_or_else(|| {
                    CentralError::invalid(
                        "hsm.env.SOFTHSM2_CONF",
                        "must name DIR/softhsm2.conf for init to create the token",
                    )
                })?;
            if module != std::path::Path::new(hsm::pkcs11::SOFTHSM2_MODULE) {
                return Err(CentralError::invalid(
                    "hsm.module",
                    "init creates SoftHSM2 tokens only",
                ));
            }
            let mut so = Zeroizing::new([0u8; 16]);
            getrandom::fill(&mut so[..])
                .map_err(|e| CentralError::Other(format!("random SO PIN: {e}")))?;
            let so_pin = Zeroizing::new(hex::encode(&so[..]));
            let user_pin = pin.read()?;
            hsm::pkcs11::SoftHsm2Token::create(dir, token_label, &so_pin, &user_pin)?;
        }
    }
    Ok(hsm::open(cfg)?)
}

/// Generate the four CA keys and certify them; the certificates in [`CAS`] order (DER).
fn create_cas(store: &dyn KeyStore, profiles: &profiles::ProfileSet) -> Result<Vec<Vec<u8>>> {
    let now = SystemTime::now();
    let mut issuers: Vec<(&str, ca::Issuer)> = Vec::new();
    for (name, label, profile, parent) in CAS {
        store.generate_p256(label)?;
        let profile = profiles.cert(profile)?;
        let issuer = match parent {
            None => ca::create_root(store, profile, label, now)?,
            Some(p) => {
                let parent = &issuers
                    .iter()
                    .find(|(n, _)| n == p)
                    .ok_or_else(|| CentralError::Other(format!("CA {p} is made after {name}")))?
                    .1;
                ca::create_subordinate_ca(store, profile, parent, label, now)?
            }
        };
        issuers.push((name, issuer));
    }
    Ok(issuers.iter().map(|(_, i)| i.cert_der().to_vec()).collect())
}
