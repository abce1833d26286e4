//! `idstation init`: a new station data dir with its HSM token, CA hierarchy, registry and
//! first ca-admin.
//!
//! Order of work: everything that can be checked without side effects first (data dir, HSM
//! module, office code, admin password); then the private SoftHSM2 token, the keys, the
//! certificates, the registry; `station.toml` last. A failure at any point removes what this
//! run created, so a refused or failed init leaves the data dir as it found it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use hsm::pkcs11::{Pkcs11Store, SoftHsm2Token, SOFTHSM2_MODULE};
use hsm::{HsmConfig, KeyStore, SecretSource};
use registry::{Actor, AuditEntry, CaKeyState, Registry, Role};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::config::{CaSection, ProfilesSection, StationConfig, StationSection};
use crate::datadir::{write_atomic, Layout};
use crate::error::StationError;
use crate::hierarchy::{
    CaSummary, AUDIT_KEY, CARD_MASTER_KEY, CSCA_CA, CSCA_KEY, DS_CA, DS_KEY, ESIGN_KEY, ROOT_KEY,
};

/// Token label of the station's SoftHSM2 token.
pub const TOKEN_LABEL: &str = "idstation";

/// Everything `init` needs. Secrets arrive in zeroizing buffers, never from argv.
pub struct InitOptions {
    pub station_name: String,
    pub office: String,
    /// Document-number series of this office's first block (2 capital letters).
    pub series: String,
    pub admin_name: String,
    pub admin_password: Zeroizing<String>,
    /// The second ca-admin of the ceremony, with their password. Adding a ca-admin later needs
    /// an existing ca-admin's approval besides the one who adds it (dual control), so a
    /// station that is to rotate CA keys or add administrators names two at `init`.
    pub second_admin: Option<(String, Zeroizing<String>)>,
    /// Where the HSM user PIN comes from; recorded in station.toml (the PIN itself never is).
    /// `None`: init draws a random PIN and writes it to `DATA/secrets/hsm-pin` (created new,
    /// 0600, never through a link), which station.toml then names.
    pub hsm_pin: Option<SecretSource>,
    /// The SoftHSM2 SO PIN; `None` = a random one that is used once and forgotten.
    pub hsm_so_pin: Option<Zeroizing<String>>,
    pub module: PathBuf,
    /// Where the SoftHSM2 token is kept: `DIR/softhsm2.conf` and `DIR/tokens/`; `None` = the
    /// data dir's `hsm/`. The process that runs `init` must have been started with
    /// `SOFTHSM2_CONF=DIR/softhsm2.conf` (see `hsm_env::for_init`).
    pub softhsm_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InitReport {
    pub data_dir: PathBuf,
    pub hsm_token: String,
    pub cas: Vec<CaSummary>,
    pub admin: String,
    /// The file the HSM user PIN is read from at every start (station.toml names it).
    pub hsm_pin_file: PathBuf,
    /// Whether init drew that PIN and wrote the file itself.
    pub hsm_pin_generated: bool,
}

/// Removes what an unfinished `init` created.
pub(crate) struct Undo {
    pub(crate) created_root: Option<PathBuf>,
    pub(crate) paths: Vec<PathBuf>,
    pub(crate) armed: bool,
}

impl Undo {
    /// Armed, removing `data_dir` itself when it does not exist yet.
    pub(crate) fn for_data_dir(data_dir: &Path) -> Undo {
        Undo {
            created_root: if data_dir.exists() {
                None
            } else {
                Some(data_dir.to_path_buf())
            },
            paths: Vec::new(),
            armed: true,
        }
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for p in self.paths.iter().rev() {
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(p)
            } else {
                std::fs::remove_file(p)
            };
        }
        if let Some(root) = &self.created_root {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}

pub fn init(data_dir: &Path, opts: &InitOptions) -> Result<InitReport, StationError> {
    let layout = Layout::new(data_dir);
    // 1. Checks without side effects.
    check_target(data_dir, &layout)?;
    let checked = check_options(data_dir, opts)?;

    // 2. Side effects, undone on failure.
    let mut undo = Undo::for_data_dir(data_dir);
    make_dirs(data_dir, &layout, &mut undo)?;
    if checked.pin_generated {
        write_generated_pin(&layout, &checked, &mut undo)?;
    }
    let so_pin = match &opts.hsm_so_pin {
        Some(p) => p.clone(),
        None => random_pin("SO PIN")?,
    };
    let softhsm_dir = opts.softhsm_dir.clone().unwrap_or_else(|| layout.hsm_dir());
    let token = SoftHsm2Token::create(&softhsm_dir, TOKEN_LABEL, &so_pin, &checked.user_pin)?;
    drop(so_pin);
    let store = Pkcs11Store::open(&token.module, &token.env, TOKEN_LABEL, checked.user_pin)?;
    let keys = create_hierarchy(&store, &checked.profiles, &opts.station_name)?;
    for key in &keys {
        let path = layout.ca_cert(key.label);
        write_atomic(&path, ca::cert_pem(&key.der)?.as_bytes())
            .map_err(|e| StationError::io(&path, e))?;
    }
    let reg = create_registry(
        &layout,
        &mut undo,
        opts,
        (&checked.admin_hash, &checked.second),
        &store,
        &keys,
    )?;
    write_config(data_dir, &layout, opts, &checked.pin_source, &token)?;
    undo.armed = false;

    let cas = crate::hierarchy::summaries(&reg, &layout)?;
    Ok(InitReport {
        data_dir: data_dir.to_path_buf(),
        hsm_token: TOKEN_LABEL.into(),
        cas,
        admin: opts.admin_name.clone(),
        hsm_pin_file: match &checked.pin_source {
            SecretSource::File(p) => p.clone(),
        },
        hsm_pin_generated: checked.pin_generated,
    })
}

/// A data dir `init` may use: not initialised, and new or empty (but for a secrets/ folder).
pub(crate) fn check_target(data_dir: &Path, layout: &Layout) -> Result<(), StationError> {
    if layout.config().exists() {
        return Err(StationError::AlreadyInitialised {
            data_dir: data_dir.to_path_buf(),
        });
    }
    if data_dir.exists() {
        let foreign: Vec<String> = std::fs::read_dir(data_dir)
            .map_err(|e| StationError::io(data_dir, e))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "secrets")
            .collect();
        if !foreign.is_empty() {
            return Err(StationError::invalid(
                "data-dir",
                format!(
                    "{} is not empty ({}); init only uses a new or empty directory (a secrets/ folder may exist)",
                    data_dir.display(),
                    foreign.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// What the checks of the options produce: the password hashes, the HSM user PIN and the
/// built-in profiles.
pub(crate) struct Checked {
    pub(crate) admin_hash: String,
    pub(crate) second: Option<(String, String)>,
    pub(crate) user_pin: Zeroizing<String>,
    /// Where the user PIN is read from at start (station.toml's `[hsm] pin`).
    pub(crate) pin_source: SecretSource,
    /// The PIN was drawn here and is to be written to `pin_source`'s file.
    pub(crate) pin_generated: bool,
    pub(crate) profiles: profiles::ProfileSet,
}

/// Every option checked before anything is created.
fn check_options(data_dir: &Path, opts: &InitOptions) -> Result<Checked, StationError> {
    registry::validate::office("office", &opts.office)?;
    registry::validate::series("series", &opts.series)?;
    let checked = check_ceremony(
        data_dir,
        &Ceremony {
            station_name: &opts.station_name,
            admin_name: &opts.admin_name,
            admin_password: &opts.admin_password,
            second_admin: &opts.second_admin,
            hsm_pin: &opts.hsm_pin,
            module: &opts.module,
        },
    )?;
    for name in [
        "root-ca",
        "esign-ca",
        "audit-signer",
        "csca",
        "document-signer",
    ] {
        checked.profiles.cert(name)?;
    }
    Ok(checked)
}

/// What both ceremonies (standalone and `--centre`) take from their options.
pub(crate) struct Ceremony<'a> {
    pub(crate) station_name: &'a str,
    pub(crate) admin_name: &'a str,
    pub(crate) admin_password: &'a Zeroizing<String>,
    pub(crate) second_admin: &'a Option<(String, Zeroizing<String>)>,
    pub(crate) hsm_pin: &'a Option<SecretSource>,
    pub(crate) module: &'a Path,
}

/// The checks both ceremonies make before anything is created: the module, the names, the
/// passwords (hashed), the HSM user PIN (read, or drawn), the built-in profiles.
pub(crate) fn check_ceremony(data_dir: &Path, opts: &Ceremony) -> Result<Checked, StationError> {
    if !opts.module.is_file() {
        return Err(StationError::Hsm(hsm::HsmError::Module {
            path: opts.module.to_path_buf(),
            reason:
                "no such file (install softhsm2, or name your PKCS#11 module with --hsm-module)"
                    .into(),
        }));
    }
    if opts.module != Path::new(SOFTHSM2_MODULE) {
        return Err(StationError::invalid(
            "hsm-module",
            "init creates a private SoftHSM2 token; for another PKCS#11 module write station.toml by hand (see docs/station.md)",
        ));
    }
    crate::config::check_name("station", opts.station_name)?;
    crate::config::check_name("admin", opts.admin_name)?;
    let admin_hash = crate::session::hash_password(opts.admin_password)?;
    let second = match opts.second_admin {
        Some((name, password)) => {
            crate::config::check_name("second_admin", name)?;
            if *name == opts.admin_name {
                return Err(StationError::invalid(
                    "second_admin",
                    format!("{name:?} must differ from admin (two persons)"),
                ));
            }
            Some((name.clone(), crate::session::hash_password(password)?))
        }
        None => None,
    };
    let (pin_source, user_pin, pin_generated) = match opts.hsm_pin {
        Some(source @ SecretSource::File(pin_file)) => {
            // The rule station start-up applies: refuse now rather than make a station that
            // will not start.
            crate::datadir::check_secret_file(pin_file)?;
            (source.clone(), source.read()?, false)
        }
        None => {
            let root = std::path::absolute(data_dir).map_err(|e| StationError::io(data_dir, e))?;
            let file = Layout::new(&root).hsm_pin_file();
            crate::datadir::check_new_output("hsm-pin-file", &file)?;
            (SecretSource::File(file), random_pin("HSM user PIN")?, true)
        }
    };
    let profiles = profiles::builtin()?;
    Ok(Checked {
        admin_hash,
        second,
        user_pin,
        pin_source,
        pin_generated,
        profiles,
    })
}

/// The data dir and its hsm/, ca/ and crl/ folders, owner-only from the first moment
/// (docs/security.md): the data dir 0700 — tightened if it existed — and everything made in it
/// 0700 / 0600, whatever the umask.
pub(crate) fn make_dirs(
    data_dir: &Path,
    layout: &Layout,
    undo: &mut Undo,
) -> Result<(), StationError> {
    registry::files::create_dir_private(data_dir).map_err(|e| StationError::io(data_dir, e))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| StationError::io(data_dir, e))?;
    }
    for dir in [layout.hsm_dir(), layout.ca_dir(), layout.crl_dir()] {
        undo.paths.push(dir.clone());
        registry::files::create_dir_private(&dir).map_err(|e| StationError::io(&dir, e))?;
    }
    Ok(())
}

/// The drawn HSM user PIN into `DATA/secrets/hsm-pin`: the folder 0700 (it may exist), the
/// file created new, 0600, never through a link, synced; removed again if init fails.
pub(crate) fn write_generated_pin(
    layout: &Layout,
    checked: &Checked,
    undo: &mut Undo,
) -> Result<(), StationError> {
    let dir = layout.secrets_dir();
    if !dir.exists() {
        undo.paths.push(dir.clone());
    }
    registry::files::create_dir_private(&dir).map_err(|e| StationError::io(&dir, e))?;
    let SecretSource::File(file) = &checked.pin_source;
    let mut line = Zeroizing::new(Vec::with_capacity(checked.user_pin.len() + 1));
    line.extend_from_slice(checked.user_pin.as_bytes());
    line.push(b'\n');
    registry::files::write_new_synced(file, &line).map_err(|e| StationError::io(file, e))?;
    undo.paths.push(file.clone());
    Ok(())
}

/// One CA key `init` creates, with its certificate.
struct HierarchyKey {
    label: &'static str,
    /// Registry CA name.
    ca: &'static str,
    /// Registry key role.
    role: &'static str,
    der: Vec<u8>,
}

/// The keys in the HSM and the certificates of the hierarchy: root, e-Signature CA and the
/// audit signer under it; the chip-data PKI (ICAO 9303 Part 12), CSCA self-signed and the
/// Document Signer under it. Returned in that order: root, esign, audit, csca, ds.
fn create_hierarchy(
    store: &Pkcs11Store,
    profiles: &profiles::ProfileSet,
    station_name: &str,
) -> Result<Vec<HierarchyKey>, StationError> {
    for label in [ROOT_KEY, ESIGN_KEY, AUDIT_KEY, CSCA_KEY, DS_KEY] {
        store.generate_p256(label)?;
    }
    store.generate_hmac_secret(CARD_MASTER_KEY)?;
    let now = SystemTime::now();
    let root = ca::create_root(store, profiles.cert("root-ca")?, ROOT_KEY, now)?;
    let esign =
        ca::create_subordinate_ca(store, profiles.cert("esign-ca")?, &root, ESIGN_KEY, now)?;
    let audit_spki = store.public_key_spki(AUDIT_KEY)?;
    let audit_cert = ca::issue_station_cert(
        store,
        profiles.cert("audit-signer")?,
        &root,
        &audit_spki,
        station_name,
        now,
    )?;
    let csca = ca::create_root(store, profiles.cert("csca")?, CSCA_KEY, now)?;
    let ds_spki = store.public_key_spki(DS_KEY)?;
    let ds_cert = ca::issue_station_cert(
        store,
        profiles.cert("document-signer")?,
        &csca,
        &ds_spki,
        "idstation Document Signer 1",
        now,
    )?;
    let key = |label, ca, role, der: &[u8]| HierarchyKey {
        label,
        ca,
        role,
        der: der.to_vec(),
    };
    Ok(vec![
        key(ROOT_KEY, "root", "root", root.cert_der()),
        key(ESIGN_KEY, "esign", "issuing", esign.cert_der()),
        key(AUDIT_KEY, "audit", "audit-signing", &audit_cert.der),
        key(CSCA_KEY, CSCA_CA, "csca", csca.cert_der()),
        key(DS_KEY, DS_CA, "document-signing", &ds_cert.der),
    ])
}

/// The registry: created 0600 (SQLite would create it 0644 less the umask, and its -wal and
/// -shm files with the database's mode), then the ca-admins, the office's number block, the
/// CA keys and certificates and the audit event, in one transaction.
fn create_registry(
    layout: &Layout,
    undo: &mut Undo,
    opts: &InitOptions,
    (admin_hash, second): (&str, &Option<(String, String)>),
    store: &Pkcs11Store,
    keys: &[HierarchyKey],
) -> Result<Registry, StationError> {
    undo.paths.push(layout.registry());
    for suffix in ["-wal", "-shm", "-journal"] {
        undo.paths.push(PathBuf::from(format!(
            "{}{suffix}",
            layout.registry().display()
        )));
    }
    registry::files::create_new(&layout.registry())
        .map_err(|e| StationError::io(&layout.registry(), e))?;
    let mut reg = Registry::open(layout.registry())?;
    let actor = Actor::new(&opts.admin_name, Role::CaAdmin.as_str(), &opts.station_name);
    let tx = reg.transaction()?;
    tx.add_operator(&opts.admin_name, Role::CaAdmin, admin_hash, None)?;
    if let Some((name, hash)) = second {
        tx.add_operator(name, Role::CaAdmin, hash, None)?;
    }
    tx.add_number_block(&opts.office, &opts.series, 1, 9_999_999)?;
    let mut ids = Vec::new();
    for k in keys {
        let spki = store.public_key_spki(k.label)?;
        let id = tx.insert_ca_key(k.label, k.ca, k.role, &spki, &actor)?;
        tx.set_ca_key_certificate(id, &k.der)?;
        tx.set_ca_key_state(id, CaKeyState::Active, &actor, &[], Some("created by init"))?;
        ids.push(id);
    }
    // The CA certificates themselves are certificates the hierarchy issued: record them so
    // that they can be listed and revoked like any other (esign and audit under the root, the
    // Document Signer under the CSCA).
    for (issuer, issued) in [(0, 1..3), (3, 4..5)] {
        for k in &keys[issued] {
            tx.insert_certificate(&crate::hierarchy::cert_record(ids[issuer], &k.der, k.ca)?)?;
            tracing::debug!(key = k.label, "recorded CA certificate");
        }
    }
    tx.audit(&AuditEntry {
        actor: &actor,
        action: "station.initialised",
        object: &format!("station:{}", opts.station_name),
        details: &serde_json::json!({
            "office": opts.office,
            "series": opts.series,
            "hsm_token": TOKEN_LABEL,
            "keys": keys.iter().map(|k| serde_json::json!({
                "label": k.label, "ca": k.ca, "certificate_sha256": ca::fingerprint_sha256(&k.der).unwrap_or_default()
            })).collect::<Vec<_>>(),
            "card_master_key": CARD_MASTER_KEY,
            "ca_admins": std::iter::once(opts.admin_name.as_str())
                .chain(second.as_ref().map(|(n, _)| n.as_str()))
                .collect::<Vec<_>>(),
        }),
    })?;
    tx.commit()?;
    Ok(reg)
}

/// station.toml, written last: it marks the data dir initialised. What the HSM library wrote
/// (its configuration, the token files) keeps its own modes: the whole dir is made owner-only
/// first.
fn write_config(
    data_dir: &Path,
    layout: &Layout,
    opts: &InitOptions,
    pin: &SecretSource,
    token: &SoftHsm2Token,
) -> Result<(), StationError> {
    let station = StationSection {
        name: opts.station_name.clone(),
        office: opts.office.clone(),
    };
    write_station_config(data_dir, layout, station, pin, token, None)
}

/// station.toml for a SoftHSM2 token `token` whose user PIN comes from `pin`: the keys
/// `card-master-1` and `audit-1`, built-in profiles, default rotation, and `centre` for an
/// enrolled station.
pub(crate) fn write_station_config(
    data_dir: &Path,
    layout: &Layout,
    station: StationSection,
    pin: &SecretSource,
    token: &SoftHsm2Token,
    centre: Option<crate::config::CentreSection>,
) -> Result<(), StationError> {
    let config = StationConfig {
        station,
        hsm: HsmConfig::Pkcs11 {
            module: token.module.clone(),
            token_label: TOKEN_LABEL.into(),
            pin: pin.clone(),
            env: token.env.clone().into_iter().collect::<BTreeMap<_, _>>(),
        },
        ca: CaSection {
            card_master_key: CARD_MASTER_KEY.into(),
            audit_key: AUDIT_KEY.into(),
        },
        profiles: ProfilesSection::default(),
        rotation: Default::default(),
        services: Default::default(),
        centre,
    };
    let toml = config.to_toml()?;
    crate::datadir::make_private(data_dir)?;
    write_atomic(&layout.config(), toml.as_bytes())
        .map_err(|e| StationError::io(&layout.config(), e))
}

/// 128 bits from the OS CSPRNG, as 32 hex digits.
pub(crate) fn random_pin(what: &str) -> Result<Zeroizing<String>, StationError> {
    let mut b = Zeroizing::new([0u8; 16]);
    getrandom::fill(&mut b[..]).map_err(|e| StationError::Other(format!("random {what}: {e}")))?;
    Ok(Zeroizing::new(hex::encode(&b[..])))
}
