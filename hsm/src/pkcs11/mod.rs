//! PKCS#11 backend (OASIS PKCS#11 Base Specification v3.0, through `cryptoki`): any module by
//! path, SoftHSM2 by default. Key pairs are `CKK_EC` on P-256 generated with
//! `CKM_EC_KEY_PAIR_GEN` (§2.3.5), signatures are `CKM_ECDSA` over a host-computed SHA-256
//! digest (§2.3.6; SoftHSM2 offers no `CKM_ECDSA_SHA256`), secrets are `CKK_GENERIC_SECRET`
//! keys from `CKM_GENERIC_SECRET_KEY_GEN` used with `CKM_SHA256_HMAC` (§2.8, §2.14).
//!
//! Private and secret keys are created `CKA_SENSITIVE=TRUE`, `CKA_EXTRACTABLE=FALSE` (§4.9),
//! so the module refuses to reveal `CKA_VALUE` (`CKR_ATTRIBUTE_SENSITIVE`, §5.7).
//!
//! `C_Initialize` is per process (§5.4), and SoftHSM2 reads `SOFTHSM2_CONF` only then, so this
//! module keeps one initialised context per module path for the whole process. The `env` of a
//! configuration must be the environment the process was started with ([`crate::process_env`]:
//! binaries restart themselves with it, tests get it from cargo's runner); a configuration asking
//! for another gets a clear [`HsmError::Environment`] instead of silently using the wrong token
//! dir.
//!
//! Every call into the module runs under a cross-process lock on the token directory
//! ([`token_lock`]): SoftHSM2 rewrites token files in a way that another process can read
//! half-written, and then loses the token for that process's whole life. The lock's module
//! docs give the cause, from SoftHSM2's source.
//!
//! Sessions recover by themselves: an operation that fails with `CKR_SESSION_HANDLE_INVALID`,
//! `CKR_SESSION_CLOSED`, `CKR_DEVICE_ERROR` or `CKR_USER_NOT_LOGGED_IN` (or finds a cached key
//! handle invalid, or finds no key while the session has silently lost its login) reopens the
//! session, logs in again and is retried once.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use der::{Decode, Encode};
use zeroize::Zeroizing;

use crate::{HsmConfig, HsmError, KeyInfo, KeyKind, KeyStore, Result};

#[cfg(test)]
pub(crate) mod test_token;
mod token_lock;
pub use token_lock::LOCK_FILE_NAME;
use token_lock::{Access, TokenLock};

/// Debian's SoftHSM2 module, the default PKCS#11 module.
pub const SOFTHSM2_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// PKCS#11 token labels are 32 bytes, blank padded (`CK_TOKEN_INFO.label`, §3.2).
pub const MAX_TOKEN_LABEL_LEN: usize = 32;

/// OID of the NIST P-256 curve (RFC 5480 §2.1.1.1, `secp256r1`), the `CKA_EC_PARAMS` value.
const P256_OID: &str = "1.2.840.10045.3.1.7";

// ---------------------------------------------------------------------------------------------
// Process-wide module contexts

fn modules() -> &'static Mutex<HashMap<PathBuf, Pkcs11>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    MODULES.get_or_init(|| Mutex::new(HashMap::new()))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another thread while holding the lock leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn module_error(path: &Path, reason: impl Into<String>) -> HsmError {
    HsmError::Module {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// The initialised context for `module`, loading it on first use. `env` is what the module
/// needs in the process environment ([`crate::process_env::check`]).
pub fn context_for(module: &Path, env: &BTreeMap<String, String>) -> Result<Pkcs11> {
    // The module reads its environment when it initialises: the process must have been
    // started with it (never set here: see `process_env`).
    crate::process_env::check(env)?;
    let mut loaded = lock(modules());
    if let Some(ctx) = loaded.get(module) {
        return Ok(ctx.clone());
    }
    if !module.is_file() {
        return Err(module_error(
            module,
            "no such file (is the PKCS#11 module installed?)",
        ));
    }
    // C_Initialize enumerates and reads every token (SoftHSM2's ObjectStore): not while
    // another process rewrites one.
    let token_lock = TokenLock::for_module(module, env)?;
    let _held = token_lock.hold(Access::Write)?;
    let ctx = Pkcs11::new(module).map_err(|e| module_error(module, format!("cannot load: {e}")))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(module_error(
                module,
                format!("C_Initialize failed: {}", p11(&e)),
            ))
        }
    }
    tracing::info!(module = %module.display(), "PKCS#11 module initialised");
    loaded.insert(module.to_owned(), ctx.clone());
    Ok(ctx)
}

/// Short form of a cryptoki error: the function and the `CKR_` value, nothing else.
fn p11(e: &P11Error) -> String {
    match e {
        P11Error::Pkcs11(rv, func) => format!("{func:?} returned {rv:?}"),
        other => other.to_string(),
    }
}

/// The slot holding the token labelled `label`. The caller holds the token lock: SoftHSM2
/// reads the token files for `C_GetTokenInfo` ([`token_lock`] explains why that must not
/// overlap another process's write). Any error is real and reported at once.
fn find_token_slot(ctx: &Pkcs11, label: &str) -> Result<Option<Slot>> {
    let fail = |op: &'static str, e: P11Error| HsmError::Operation {
        op,
        reason: p11(&e),
    };
    let slots = ctx
        .get_slots_with_initialized_token()
        .map_err(|e| fail("list slots", e))?;
    for slot in slots {
        let info = ctx
            .get_token_info(slot)
            .map_err(|e| fail("read token info", e))?;
        if info.label().trim_end() == label {
            return Ok(Some(slot));
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------------
// Token set-up (for `idstation init`, tests and benches)

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
    /// Remember: one SoftHSM2 configuration per process (see the module docs); several tokens
    /// with different labels may share one directory.
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

// ---------------------------------------------------------------------------------------------
// The store

/// A key found by label: its handles and kind.
#[derive(Debug, Clone, Copy)]
struct Found {
    kind: KeyKind,
    /// Private key (EC) or secret key (HMAC).
    key: ObjectHandle,
}

struct State {
    session: Option<Session>,
    /// label → key; cleared whenever the session is reopened.
    cache: HashMap<String, Found>,
}

/// Why one attempt of an operation failed.
enum Fail {
    /// A PKCS#11 error; some of them mean "reopen the session and retry".
    P11(P11Error),
    /// The key lookup found nothing, and the session turned out not to be logged in.
    NotLoggedIn,
    /// Final.
    Hsm(HsmError),
}

impl From<P11Error> for Fail {
    fn from(e: P11Error) -> Self {
        Fail::P11(e)
    }
}

impl From<HsmError> for Fail {
    fn from(e: HsmError) -> Self {
        Fail::Hsm(e)
    }
}

impl Fail {
    fn recoverable(&self) -> bool {
        match self {
            Fail::NotLoggedIn => true,
            Fail::P11(P11Error::Pkcs11(rv, _)) => matches!(
                rv,
                RvError::SessionHandleInvalid
                    | RvError::SessionClosed
                    | RvError::DeviceError
                    | RvError::UserNotLoggedIn
                    // A cached object handle that went stale with its session.
                    | RvError::KeyHandleInvalid
                    | RvError::ObjectHandleInvalid
            ),
            _ => false,
        }
    }

    fn session_is_gone(&self) -> bool {
        matches!(
            self,
            Fail::P11(P11Error::Pkcs11(
                RvError::SessionHandleInvalid | RvError::SessionClosed,
                _
            ))
        )
    }

    fn into_error(self, op: &'static str) -> HsmError {
        match self {
            Fail::P11(e) => HsmError::Operation {
                op,
                reason: p11(&e),
            },
            Fail::NotLoggedIn => HsmError::Login("the session is not logged in".into()),
            Fail::Hsm(e) => e,
        }
    }
}

/// Key store over one token of a PKCS#11 module. One session, used under a lock; it is
/// reopened (and logged in again) when the module says it is gone. Every module call also
/// holds the cross-process token lock ([`token_lock`]) for its own duration.
pub struct Pkcs11Store {
    ctx: Pkcs11,
    module: PathBuf,
    slot: Slot,
    token_label: String,
    pin: AuthPin,
    token_lock: TokenLock,
    state: Mutex<State>,
}

impl Drop for Pkcs11Store {
    fn drop(&mut self) {
        // C_CloseSession (and the log-out of the last session) under the token lock too.
        let held = self.token_lock.hold(Access::Write);
        let mut st = lock(&self.state);
        st.cache.clear();
        drop(st.session.take());
        drop(held);
    }
}

impl std::fmt::Debug for Pkcs11Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Store")
            .field("module", &self.module)
            .field("slot", &self.slot.id())
            .field("token_label", &self.token_label)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Store {
    /// Open the token labelled `token_label` in `module` (loaded with `env`) and log in as the
    /// user with `user_pin`.
    pub fn open(
        module: &Path,
        env: &BTreeMap<String, String>,
        token_label: &str,
        user_pin: Zeroizing<String>,
    ) -> Result<Self> {
        let ctx = context_for(module, env)?;
        let token_lock = TokenLock::for_module(module, env)?;
        let slot = {
            let _held = token_lock.hold(Access::Read)?;
            find_token_slot(&ctx, token_label)?
        }
        .ok_or_else(|| HsmError::TokenNotFound {
            label: token_label.to_owned(),
        })?;
        let store = Pkcs11Store {
            ctx,
            module: module.to_owned(),
            slot,
            token_label: token_label.to_owned(),
            pin: AuthPin::new(Box::from(user_pin.as_str())),
            token_lock,
            state: Mutex::new(State {
                session: None,
                cache: HashMap::new(),
            }),
        };
        drop(user_pin);
        {
            let mut st = lock(&store.state);
            store.ensure_session(&mut st)?;
        }
        tracing::info!(module = %module.display(), token = token_label, "PKCS#11 token opened");
        Ok(store)
    }

    /// Open from an `[hsm]` config with `backend = "pkcs11"`, reading the PIN from its source.
    pub fn from_config(cfg: &HsmConfig) -> Result<Self> {
        match cfg {
            HsmConfig::Pkcs11 {
                module,
                token_label,
                pin,
                env,
            } => {
                let pin = pin.read()?;
                Self::open(module, env, token_label, pin)
            }
            HsmConfig::Yubihsm { .. } => Err(HsmError::Operation {
                op: "open PKCS#11 store",
                reason: "the [hsm] config names backend \"yubihsm\", not \"pkcs11\"".into(),
            }),
        }
    }

    /// The process-wide module context (for diagnostics and tests).
    pub fn context(&self) -> &Pkcs11 {
        &self.ctx
    }

    /// The slot id the token sits in.
    pub fn slot_id(&self) -> u64 {
        self.slot.id()
    }

    /// The module path.
    pub fn module(&self) -> &Path {
        &self.module
    }

    fn login(&self, session: &Session) -> Result<()> {
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
            Err(P11Error::Pkcs11(rv, _)) => Err(HsmError::Login(format!(
                "token {:?} refused the user PIN: {rv:?}",
                self.token_label
            ))),
            Err(e) => Err(HsmError::Login(format!(
                "token {:?}: {}",
                self.token_label,
                p11(&e)
            ))),
        }
    }

    /// Open and log in a session unless one is open. C_Login rewrites the token file in
    /// SoftHSM2, so this takes the token lock for writing while it does.
    fn ensure_session(&self, st: &mut State) -> Result<()> {
        if st.session.is_none() {
            let _held = self.token_lock.hold(Access::Write)?;
            let session = self
                .ctx
                .open_rw_session(self.slot)
                .map_err(|e| HsmError::Operation {
                    op: "open session",
                    reason: p11(&e),
                })?;
            self.login(&session)?;
            tracing::debug!(token = %self.token_label, "PKCS#11 session opened and logged in");
            st.session = Some(session);
        }
        Ok(())
    }

    fn reset_session(&self, st: &mut State, fail: &Fail) {
        st.cache.clear();
        if let Some(session) = st.session.take() {
            let _held = self.token_lock.hold(Access::Write);
            if fail.session_is_gone() {
                // The handle is dead; closing it again would only log a failure.
                std::mem::forget(session);
            } else {
                drop(session);
            }
        }
    }

    /// Run `f` with a logged-in session, holding the token lock for `access` while it runs;
    /// on a recoverable failure (the module lost the session or its log-in, as a network
    /// HSM does when its connection drops: `CKR_SESSION_HANDLE_INVALID`, `CKR_SESSION_CLOSED`,
    /// `CKR_DEVICE_ERROR`, `CKR_USER_NOT_LOGGED_IN`) reopen the session, log in again and run
    /// `f` once more.
    fn run<T>(
        &self,
        op: &'static str,
        access: Access,
        mut f: impl FnMut(&Session, &mut HashMap<String, Found>) -> std::result::Result<T, Fail>,
    ) -> Result<T> {
        let mut st = lock(&self.state);
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.ensure_session(&mut st)?;
            let State { session, cache } = &mut *st;
            let Some(session) = session.as_ref() else {
                return Err(HsmError::Operation {
                    op,
                    reason: "no session".into(),
                });
            };
            let outcome = {
                let _held = self.token_lock.hold(access)?;
                f(session, cache)
            };
            match outcome {
                Ok(v) => return Ok(v),
                Err(fail) if attempt == 1 && fail.recoverable() => {
                    let why = match &fail {
                        Fail::P11(e) => p11(e),
                        _ => "session not logged in".to_owned(),
                    };
                    tracing::warn!(
                        op,
                        token = %self.token_label,
                        cause = %why,
                        "PKCS#11 session lost; reopening, logging in again and retrying once"
                    );
                    self.reset_session(&mut st, &fail);
                }
                Err(fail) => return Err(fail.into_error(op)),
            }
        }
    }

    /// Run `f` with the store's logged-in session (tests reach behind the store with this).
    #[cfg(test)]
    pub(crate) fn with_session<T>(&self, f: impl FnOnce(&Session) -> T) -> Result<T> {
        let mut st = lock(&self.state);
        self.ensure_session(&mut st)?;
        let session = st.session.as_ref().ok_or(HsmError::Operation {
            op: "test",
            reason: "no session".into(),
        })?;
        let _held = self.token_lock.hold(Access::Write)?;
        Ok(f(session))
    }

    /// The private or secret key objects labelled `label`.
    #[cfg(test)]
    pub(crate) fn key_handle(&self, label: &str) -> Result<Option<ObjectHandle>> {
        self.run("find key", Access::Read, |s, c| {
            Ok(lookup(s, c, label)?.map(|f: Found| f.key))
        })
    }
}

fn p256_params() -> std::result::Result<Vec<u8>, Fail> {
    let oid = der::asn1::ObjectIdentifier::new(P256_OID).map_err(|e| {
        Fail::Hsm(HsmError::Operation {
            op: "encode EC parameters",
            reason: e.to_string(),
        })
    })?;
    oid.to_der().map_err(|e| {
        Fail::Hsm(HsmError::Operation {
            op: "encode EC parameters",
            reason: e.to_string(),
        })
    })
}

/// Classify a key object: a P-256 private key or a generic secret key; anything else is `None`.
fn classify(session: &Session, obj: ObjectHandle) -> std::result::Result<Option<KeyKind>, Fail> {
    let attrs = session.get_attributes(
        obj,
        &[
            AttributeType::Class,
            AttributeType::KeyType,
            AttributeType::EcParams,
            AttributeType::Sign,
        ],
    )?;
    let mut class = None;
    let mut key_type = None;
    let mut params = None;
    let mut can_sign = false;
    for a in &attrs {
        match a {
            Attribute::Class(c) => class = Some(*c),
            Attribute::KeyType(k) => key_type = Some(*k),
            Attribute::EcParams(p) => params = Some(p.clone()),
            Attribute::Sign(b) => can_sign = *b,
            _ => {}
        }
    }
    Ok(match (class, key_type) {
        (Some(ObjectClass::PRIVATE_KEY), Some(KeyType::EC))
            if params.as_deref() == Some(p256_params()?.as_slice()) && can_sign =>
        {
            Some(KeyKind::EcP256)
        }
        (Some(ObjectClass::SECRET_KEY), Some(KeyType::GENERIC_SECRET)) if can_sign => {
            Some(KeyKind::HmacSha256)
        }
        _ => None,
    })
}

/// Find the private/secret key labelled `label` (cached per session).
fn lookup(
    session: &Session,
    cache: &mut HashMap<String, Found>,
    label: &str,
) -> std::result::Result<Option<Found>, Fail> {
    if let Some(f) = cache.get(label) {
        return Ok(Some(*f));
    }
    let mut found = None;
    for class in [ObjectClass::PRIVATE_KEY, ObjectClass::SECRET_KEY] {
        let handles = session.find_objects(&[
            Attribute::Token(true),
            Attribute::Class(class),
            Attribute::Label(label.as_bytes().to_vec()),
        ])?;
        for h in handles {
            if let Some(kind) = classify(session, h)? {
                found = Some(Found { kind, key: h });
                break;
            }
        }
        if found.is_some() {
            break;
        }
    }
    match found {
        Some(f) => {
            cache.insert(label.to_owned(), f);
            Ok(Some(f))
        }
        None => {
            // Private objects are invisible to a session that is not logged in: tell "no such
            // key" apart from "the login was lost behind our back".
            let state = session.get_session_info()?.session_state();
            if matches!(state, SessionState::RwUser | SessionState::RoUser) {
                Ok(None)
            } else {
                Err(Fail::NotLoggedIn)
            }
        }
    }
}

fn require(
    session: &Session,
    cache: &mut HashMap<String, Found>,
    label: &str,
    expected: KeyKind,
) -> std::result::Result<ObjectHandle, Fail> {
    match lookup(session, cache, label)? {
        None => Err(Fail::Hsm(HsmError::KeyNotFound {
            label: label.to_owned(),
        })),
        Some(f) if f.kind != expected => Err(Fail::Hsm(HsmError::WrongKeyKind {
            label: label.to_owned(),
            expected,
            actual: f.kind,
        })),
        Some(f) => Ok(f.key),
    }
}

/// `CKA_EC_POINT` is a DER OCTET STRING around the SEC 1 point (PKCS#11 v3.0 §2.3.3);
/// some modules return the bare point. Accept both, return the bare point.
fn unwrap_ec_point(value: &[u8]) -> std::result::Result<Vec<u8>, Fail> {
    if value.len() == 65 && value[0] == 0x04 {
        return Ok(value.to_vec());
    }
    der::asn1::OctetString::from_der(value)
        .map(|o| o.as_bytes().to_vec())
        .map_err(|e| {
            Fail::Hsm(HsmError::Operation {
                op: "read public key",
                reason: format!("CKA_EC_POINT is neither a point nor a DER OCTET STRING: {e}"),
            })
        })
}

fn spki_of(session: &Session, label: &str, id: &[u8]) -> std::result::Result<Vec<u8>, Fail> {
    let mut template = vec![
        Attribute::Token(true),
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::EC),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    if !id.is_empty() {
        template.push(Attribute::Id(id.to_vec()));
    }
    let handles = session.find_objects(&template)?;
    let Some(public) = handles.first() else {
        return Err(Fail::Hsm(HsmError::Operation {
            op: "read public key",
            reason: format!("the token holds no public key object for {label:?}"),
        }));
    };
    let attrs = session.get_attributes(*public, &[AttributeType::EcPoint])?;
    let point = attrs
        .iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p.clone()),
            _ => None,
        })
        .ok_or(Fail::Hsm(HsmError::Operation {
            op: "read public key",
            reason: format!("the public key object for {label:?} has no CKA_EC_POINT"),
        }))?;
    Ok(crate::p256_point_to_spki(
        &unwrap_ec_point(&point)?,
        "read public key",
    )?)
}

fn key_id_of(session: &Session, key: ObjectHandle) -> std::result::Result<Vec<u8>, Fail> {
    let attrs = session.get_attributes(key, &[AttributeType::Id])?;
    Ok(attrs
        .into_iter()
        .find_map(|a| match a {
            Attribute::Id(id) => Some(id),
            _ => None,
        })
        .unwrap_or_default())
}

fn refuse_taken(
    session: &Session,
    cache: &mut HashMap<String, Found>,
    label: &str,
) -> std::result::Result<(), Fail> {
    if lookup(session, cache, label)?.is_some() {
        return Err(Fail::Hsm(HsmError::KeyExists {
            label: label.to_owned(),
        }));
    }
    // Any other object (a foreign key type, a public key, a certificate) under the label also
    // makes it ambiguous.
    let others = session.find_objects(&[
        Attribute::Token(true),
        Attribute::Label(label.as_bytes().to_vec()),
    ])?;
    if !others.is_empty() {
        return Err(Fail::Hsm(HsmError::KeyExists {
            label: label.to_owned(),
        }));
    }
    Ok(())
}

impl KeyStore for Pkcs11Store {
    fn backend(&self) -> &'static str {
        "pkcs11"
    }

    fn generate_p256(&self, label: &str) -> Result<KeyInfo> {
        crate::check_label(label, crate::MAX_LABEL_LEN)?;
        let spki = self.run("generate P-256 key pair", Access::Write, |s, cache| {
            refuse_taken(s, cache, label)?;
            let id = s.generate_random_vec(16)?;
            let public = [
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::Verify(true),
                Attribute::EcParams(p256_params()?),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.clone()),
            ];
            let private = [
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.clone()),
            ];
            s.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)?;
            spki_of(s, label, &id)
        })?;
        tracing::info!(label, token = %self.token_label, "generated P-256 key pair");
        Ok(KeyInfo {
            label: label.to_owned(),
            kind: KeyKind::EcP256,
            spki_der: Some(spki),
        })
    }

    fn generate_hmac_secret(&self, label: &str) -> Result<KeyInfo> {
        crate::check_label(label, crate::MAX_LABEL_LEN)?;
        self.run("generate HMAC secret", Access::Write, |s, cache| {
            refuse_taken(s, cache, label)?;
            let id = s.generate_random_vec(16)?;
            let template = [
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::ValueLen(32.into()),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::Verify(true),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id),
            ];
            s.generate_key(&Mechanism::GenericSecretKeyGen, &template)?;
            Ok(())
        })?;
        tracing::info!(label, token = %self.token_label, "generated HMAC-SHA256 secret");
        Ok(KeyInfo {
            label: label.to_owned(),
            kind: KeyKind::HmacSha256,
            spki_der: None,
        })
    }

    fn find(&self, label: &str) -> Result<Option<KeyInfo>> {
        self.run("find key", Access::Read, |s, cache| {
            let Some(f) = lookup(s, cache, label)? else {
                return Ok(None);
            };
            let spki_der = match f.kind {
                KeyKind::EcP256 => Some(spki_of(s, label, &key_id_of(s, f.key)?)?),
                KeyKind::HmacSha256 => None,
            };
            Ok(Some(KeyInfo {
                label: label.to_owned(),
                kind: f.kind,
                spki_der,
            }))
        })
    }

    fn list(&self) -> Result<Vec<KeyInfo>> {
        let mut keys = self.run("list keys", Access::Read, |s, _cache| {
            let mut out = Vec::new();
            for class in [ObjectClass::PRIVATE_KEY, ObjectClass::SECRET_KEY] {
                for h in s.find_objects(&[Attribute::Token(true), Attribute::Class(class)])? {
                    let Some(kind) = classify(s, h)? else {
                        continue;
                    };
                    let attrs = s.get_attributes(h, &[AttributeType::Label, AttributeType::Id])?;
                    let mut label = None;
                    let mut id = Vec::new();
                    for a in attrs {
                        match a {
                            Attribute::Label(l) => label = String::from_utf8(l).ok(),
                            Attribute::Id(i) => id = i,
                            _ => {}
                        }
                    }
                    // Keys without a UTF-8 label were not made by the station; skip them.
                    let Some(label) = label else { continue };
                    let spki_der = match kind {
                        KeyKind::EcP256 => Some(spki_of(s, &label, &id)?),
                        KeyKind::HmacSha256 => None,
                    };
                    out.push(KeyInfo {
                        label,
                        kind,
                        spki_der,
                    });
                }
            }
            Ok(out)
        })?;
        keys.sort_by(|a, b| a.label.cmp(&b.label));
        Ok(keys)
    }

    fn public_key_spki(&self, label: &str) -> Result<Vec<u8>> {
        self.run("read public key", Access::Read, |s, cache| {
            let key = require(s, cache, label, KeyKind::EcP256)?;
            spki_of(s, label, &key_id_of(s, key)?)
        })
    }

    fn sign_p256_sha256(&self, label: &str, message: &[u8]) -> Result<Vec<u8>> {
        let digest = crate::sha256(message);
        let raw = self.run("sign (CKM_ECDSA)", Access::Read, |s, cache| {
            let key = require(s, cache, label, KeyKind::EcP256)?;
            Ok(s.sign(&Mechanism::Ecdsa, key, &digest)?)
        })?;
        tracing::debug!(label, "signed with P-256 key");
        crate::normalise_p256_signature(&raw, "sign (CKM_ECDSA)")
    }

    fn hmac_sha256(&self, label: &str, data: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let tag =
            Zeroizing::new(
                self.run("HMAC (CKM_SHA256_HMAC)", Access::Read, |s, cache| {
                    let key = require(s, cache, label, KeyKind::HmacSha256)?;
                    Ok(s.sign(&Mechanism::Sha256Hmac, key, data)?)
                })?,
            );
        let mut out = Zeroizing::new([0u8; 32]);
        if tag.len() != out.len() {
            return Err(HsmError::Operation {
                op: "HMAC (CKM_SHA256_HMAC)",
                reason: format!("the module returned {} bytes, expected 32", tag.len()),
            });
        }
        out.copy_from_slice(&tag);
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
