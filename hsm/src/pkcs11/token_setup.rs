//! Token set-up, for `idstation init`, tests and benches: initialise a token in a slot
//! (`C_InitToken` with the SO PIN, then `C_InitPIN` for the user PIN) and write a SoftHSM2
//! configuration (softhsm2.conf(5)) that keeps tokens in a private directory. Token labels are
//! `CK_TOKEN_INFO.label` (§3.2). Every module call runs under the token lock, for writing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::error::Error as P11Error;
use cryptoki::session::UserType;
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use super::token_lock::{Access, TokenLock};
use super::{
    context_for, find_token_slot, lock, p11, Pkcs11Store, MAX_TOKEN_LABEL_LEN, SOFTHSM2_MODULE,
};
use crate::{HsmConfig, HsmError, Result};

/// Which slot [`init_token`] initialises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotChoice {
    /// The first slot whose token is not initialised yet (SoftHSM2 always offers one).
    FirstFree,
    /// This slot id. Its token must not be initialised yet.
    Id(u64),
}

fn init_lock() -> &'static Mutex<()> {
    static INIT: OnceLock<Mutex<()>> = OnceLock::new();
    INIT.get_or_init(|| Mutex::new(()))
}

/// Initialise a token (`C_InitToken` with the SO PIN, then `C_InitPIN` for the user PIN) and
/// return the slot it ended up in (SoftHSM2 moves a token to a new slot id on init). Refuses a
/// label that an initialised token already carries. The PINs are used and dropped; they are
/// never logged or put in an error.
pub fn init_token(
    module: &Path,
    env: &BTreeMap<String, String>,
    slot: SlotChoice,
    label: &str,
    so_pin: &str,
    user_pin: &str,
) -> Result<u64> {
    let op = "initialise token";
    if label.is_empty() || label.len() > MAX_TOKEN_LABEL_LEN || label.trim_end() != label {
        return Err(HsmError::Operation {
            op,
            reason: format!(
                "token label {label:?} must be 1 to {MAX_TOKEN_LABEL_LEN} bytes without \
                 trailing blanks (CK_TOKEN_INFO.label)"
            ),
        });
    }
    if so_pin.is_empty() || user_pin.is_empty() {
        return Err(HsmError::Operation {
            op,
            reason: "the SO PIN and the user PIN must not be empty".into(),
        });
    }
    let ctx = context_for(module, env)?;
    let _serial = lock(init_lock());
    let token_lock = TokenLock::for_module(module, env)?;
    let _held = token_lock.hold(Access::Write)?;
    if find_token_slot(&ctx, label)?.is_some() {
        return Err(HsmError::Operation {
            op,
            reason: format!("a token labelled {label:?} already exists"),
        });
    }
    let fail = |e: P11Error| HsmError::Operation {
        op,
        reason: p11(&e),
    };
    let target = match slot {
        SlotChoice::Id(id) => Slot::try_from(id).map_err(fail)?,
        SlotChoice::FirstFree => {
            let mut free = None;
            for s in ctx.get_slots_with_token().map_err(fail)? {
                if !ctx.get_token_info(s).map_err(fail)?.token_initialized() {
                    free = Some(s);
                    break;
                }
            }
            free.ok_or(HsmError::Operation {
                op,
                reason: "the module offers no slot with an uninitialised token".into(),
            })?
        }
    };
    if ctx
        .get_token_info(target)
        .map_err(fail)?
        .token_initialized()
    {
        return Err(HsmError::Operation {
            op,
            reason: format!("the token in slot {} is already initialised", target.id()),
        });
    }
    let so = AuthPin::new(Box::from(so_pin));
    let user = AuthPin::new(Box::from(user_pin));
    ctx.init_token(target, &so, label).map_err(fail)?;
    let slot = find_token_slot(&ctx, label)?.ok_or_else(|| HsmError::TokenNotFound {
        label: label.to_owned(),
    })?;
    let session = ctx.open_rw_session(slot).map_err(fail)?;
    session
        .login(UserType::So, Some(&so))
        .map_err(|e| HsmError::Login(format!("as security officer: {}", p11(&e))))?;
    session.init_pin(&user).map_err(fail)?;
    session.logout().map_err(fail)?;
    drop(session);
    tracing::info!(token = label, slot = slot.id(), "PKCS#11 token initialised");
    Ok(slot.id())
}

/// Text of a SoftHSM2 configuration file that keeps tokens in `token_dir` (softhsm2.conf(5)).
pub fn softhsm2_conf(token_dir: &Path) -> String {
    format!(
        "# SoftHSM v2 configuration written by idstation: a private token directory.\n\
         directories.tokendir = {}\n\
         objectstore.backend = file\n\
         log.level = ERROR\n\
         slots.removable = false\n",
        token_dir.display()
    )
}

/// Create `token_dir` (mode 0700) and write [`softhsm2_conf`] to `conf_path`.
pub fn write_softhsm2_conf(conf_path: &Path, token_dir: &Path) -> Result<()> {
    let io = |what: &str, p: &Path, e: std::io::Error| HsmError::Operation {
        op: "write SoftHSM2 configuration",
        reason: format!("{what} {}: {e}", p.display()),
    };
    std::fs::create_dir_all(token_dir).map_err(|e| io("cannot create", token_dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(token_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io("cannot restrict", token_dir, e))?;
    }
    // Written to a temporary beside it and renamed into place: another thread or process that
    // reads the configuration (SoftHSM2 at C_Initialize, the token lock) sees the whole file or
    // none, never a half-written one.
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let tmp = conf_path.with_extension(format!(
        "conf.tmp-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(|e| io("cannot create", &tmp, e))?;
        f.write_all(softhsm2_conf(token_dir).as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| io("cannot write", &tmp, e))?;
    }
    std::fs::rename(&tmp, conf_path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io("cannot write", conf_path, e)
    })
}

/// A private SoftHSM2 token under a directory: `DIR/softhsm2.conf` and `DIR/tokens/`.
/// This is what `idstation init` creates under the data dir, and what tests and benchmarks use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftHsm2Token {
    pub module: PathBuf,
    pub conf_path: PathBuf,
    pub token_dir: PathBuf,
    pub token_label: String,
    /// `SOFTHSM2_CONF=<conf_path>`, the `env` of the PKCS#11 config.
    pub env: BTreeMap<String, String>,
}

impl SoftHsm2Token {
    /// Paths and environment for a token under `dir`; creates nothing.
    pub fn at(dir: &Path, token_label: &str) -> Self {
        let conf_path = dir.join("softhsm2.conf");
        let mut env = BTreeMap::new();
        env.insert(
            "SOFTHSM2_CONF".to_owned(),
            conf_path.to_string_lossy().into_owned(),
        );
        SoftHsm2Token {
            module: PathBuf::from(SOFTHSM2_MODULE),
            conf_path,
            token_dir: dir.join("tokens"),
            token_label: token_label.to_owned(),
            env,
        }
    }

    /// The directory of the SoftHSM2 configuration this process was started with, when
    /// `SOFTHSM2_CONF` names `DIR/softhsm2.conf` (the layout [`SoftHsm2Token::at`] uses): tokens
    /// created under it work in this process without a restart. Tests and benchmarks get one
    /// from cargo's runner (`scripts/cargo-runner.sh`).
    pub fn process_dir() -> Option<PathBuf> {
        let conf = PathBuf::from(std::env::var_os("SOFTHSM2_CONF")?);
        if conf.file_name()? != "softhsm2.conf" {
            return None;
        }
        conf.parent().map(Path::to_path_buf)
    }

    /// Write the configuration (unless present) and initialise the token in the first free slot.
    /// Remember: one SoftHSM2 configuration per process (see the [`pkcs11`](super) module
    /// docs); several tokens with different labels may share one directory.
    pub fn create(dir: &Path, token_label: &str, so_pin: &str, user_pin: &str) -> Result<Self> {
        let t = Self::at(dir, token_label);
        if !t.conf_path.exists() {
            write_softhsm2_conf(&t.conf_path, &t.token_dir)?;
        }
        init_token(
            &t.module,
            &t.env,
            SlotChoice::FirstFree,
            token_label,
            so_pin,
            user_pin,
        )?;
        Ok(t)
    }

    /// The `[hsm]` configuration for this token with the user PIN coming from `pin`.
    pub fn config(&self, pin: crate::SecretSource) -> HsmConfig {
        HsmConfig::Pkcs11 {
            module: self.module.clone(),
            token_label: self.token_label.clone(),
            pin,
            env: self.env.clone(),
        }
    }

    /// Open the token as the user.
    pub fn open(&self, user_pin: Zeroizing<String>) -> Result<Pkcs11Store> {
        Pkcs11Store::open(&self.module, &self.env, &self.token_label, user_pin)
    }
}
