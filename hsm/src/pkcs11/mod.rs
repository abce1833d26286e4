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
//!
//! Split by responsibility: this file loads the module once per process and keeps the
//! store's one session (log-in, recovery, the token lock); `token_setup` initialises tokens
//! (`C_InitToken`, `C_InitPIN`) and writes SoftHSM2 configurations; `keys` finds, generates
//! and uses the key objects (the [`KeyStore`](crate::KeyStore) implementation).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::object::ObjectHandle;
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::{HsmConfig, HsmError, KeyKind, Result};

mod keys;
#[cfg(test)]
pub(crate) mod test_token;
mod token_lock;
mod token_setup;
pub use token_lock::LOCK_FILE_NAME;
use token_lock::{Access, TokenLock};
pub use token_setup::{init_token, softhsm2_conf, write_softhsm2_conf, SlotChoice, SoftHsm2Token};

/// Debian's SoftHSM2 module, the default PKCS#11 module.
pub const SOFTHSM2_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// PKCS#11 token labels are 32 bytes, blank padded (`CK_TOKEN_INFO.label`, §3.2).
pub const MAX_TOKEN_LABEL_LEN: usize = 32;

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
}

#[cfg(test)]
mod tests;
