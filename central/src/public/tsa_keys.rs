//! The time-stamping unit's keys (`tsa_keys`, migration V18): which one signs, and its rollover.
//!
//! A TSA key signs only within its usage period — its certificate's privateKeyUsagePeriod,
//! profile `tsa`: 450 days, inside the 15 months the CA/Browser Forum Code Signing Baseline
//! Requirements §6.3.2 allow a Timestamp Certificate's key whatever the start date — while its
//! certificate stays valid 135 months (the same section's limit) so that its tokens verify.
//!
//! [`ensure_tsa`] (every `serve` at start and every refresh of the worker) rolls the active key
//! over when a [`ROLL_WHEN_LEFT`]th of its usage period is left, its certificate has expired or
//! the HSM no longer has it. The rollover is journaled under a session advisory lock, so
//! instances on one database roll once and a crash at any point is finished by the next attempt:
//! (1) the next label `centre-tsa-<N>` is recorded `pending` and committed — a label whose key
//! the HSM already has without any row is skipped, never used (it may have signed before a
//! database restore); (2) the key is generated in the HSM unless the pending row's earlier
//! attempt made it (a pending key never signed); (3) the active National Root CA certifies it;
//! (4) one transaction makes it active, retires the old row and audits `tsa.certified`. A
//! failed attempt is logged and audited (`tsa.rollover-failed`, with the serial of a
//! certificate the root signed but that could not be recorded) and leaves the active key
//! signing while it may.
//!
//! Each process keeps the key it signs with ([`super::Public::tsa`]); requests never roll, they
//! re-read the active row ([`active`]) when the kept key can no longer sign.

use crate::db::Prepared;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use deadpool_postgres::Pool;
use hsm::KeyStore;
use x509_cert_02::der::asn1::ObjectIdentifier;

use super::asn1;
use crate::audit;
use crate::error::{CentralError, Result};

/// The TSA keys' HSM labels: `centre-tsa-<N>`, N from 1, one more at each rollover.
pub const KEY_PREFIX: &str = "centre-tsa-";
/// The TSA certificate's profile.
pub const PROFILE: &str = "tsa";
/// A key rolls over when less than this part of its usage period is left (37 days of the
/// default 450): every instance picks the new key up within a refresh of the worker, long
/// before the old key's usage ends.
pub const ROLL_WHEN_LEFT: u32 = 12;
/// Labels skipped at most in one rollover (keys in the HSM without a row).
const MAX_SKIPPED: i32 = 100;

/// The time-stamping unit: its key, certificate and policy.
pub struct Tsa {
    pub key_label: String,
    pub cert_der: Vec<u8>,
    pub(super) cert: x509_cert_02::Certificate,
    pub policy: ObjectIdentifier,
    /// The end of the key's usage period (its certificate's privateKeyUsagePeriod, else its
    /// notAfter): no token is signed with it afterwards.
    pub key_usage_until: SystemTime,
}

impl Tsa {
    fn new(
        key_label: String,
        cert_der: Vec<u8>,
        policy: ObjectIdentifier,
        key_usage_until: SystemTime,
    ) -> Result<Self> {
        Ok(Tsa {
            key_label,
            cert: asn1::cert02(&cert_der)?,
            cert_der,
            policy,
            key_usage_until,
        })
    }

    /// Whether the key may sign a token at `now`: inside its usage period and its certificate's
    /// validity.
    pub fn signs_at(&self, now: SystemTime) -> bool {
        self.valid_from() <= now && now < self.key_usage_until && now < self.not_after()
    }

    fn valid_from(&self) -> SystemTime {
        self.cert
            .tbs_certificate
            .validity
            .not_before
            .to_system_time()
    }

    fn not_after(&self) -> SystemTime {
        self.cert
            .tbs_certificate
            .validity
            .not_after
            .to_system_time()
    }

    /// Whether the key is due for its rollover at `now` (see the module documentation). A
    /// certificate not yet valid is not a reason: another instance's clock may be ahead.
    fn due(&self, now: SystemTime, margin: Duration) -> bool {
        self.key_usage_until.duration_since(now).unwrap_or_default() <= margin
            || now >= self.not_after()
    }
}

/// The TSA policy: the first policy of the `tsa` profile (RFC 3161 §2.4.2).
fn policy(profile: &profiles::CertProfile) -> Result<ObjectIdentifier> {
    profile
        .policies
        .first()
        .ok_or_else(|| {
            CentralError::invalid(
                "profile tsa",
                "policies: the first policy is the TSA policy (RFC 3161 §2.4.2); there is none",
            )
        })
        .and_then(|p| {
            ObjectIdentifier::new(&p.oid.0.to_string())
                .map_err(|e| CentralError::Other(format!("TSA policy OID: {e}")))
        })
}

/// How long before the end of its usage period a key rolls over: a [`ROLL_WHEN_LEFT`]th of the
/// profile's usage period (of its validity when it states none).
pub fn roll_margin(profile: &profiles::CertProfile) -> Duration {
    let days = profile
        .private_key_usage_period
        .as_ref()
        .map_or(profile.validity.days, |p| p.days);
    Duration::from_secs(u64::from(days) * 86_400) / ROLL_WHEN_LEFT
}

/// The active key as recorded (no lock, nothing rolled): what a process re-reads when the key
/// it kept can no longer sign.
pub async fn active(pool: &Pool, profiles: &profiles::ProfileSet) -> Result<Option<Tsa>> {
    active_with(pool, policy(profiles.cert(PROFILE)?)?).await
}

async fn active_with(pool: &Pool, policy: ObjectIdentifier) -> Result<Option<Tsa>> {
    let client = pool.get().await?;
    match client
        .prepared_opt(
            "SELECT label, cert_der, key_usage_until FROM tsa_keys WHERE state = 'active'",
            &[],
        )
        .await?
    {
        Some(r) => Ok(Some(Tsa::new(r.get(0), r.get(1), policy, r.get(2))?)),
        None => Ok(None),
    }
}

/// The active key when the HSM has it.
async fn usable(
    pool: &Pool,
    store: &Arc<dyn KeyStore>,
    policy: ObjectIdentifier,
) -> Result<Option<Tsa>> {
    match active_with(pool, policy).await? {
        Some(t) if store.find(&t.key_label)?.is_some() => Ok(Some(t)),
        _ => Ok(None),
    }
}

/// The active TSA key, rolled over first when it is due (see the module documentation), and
/// the error of a rollover that failed. A failed rollover leaves the active key while it may
/// still sign; `None` when no key can sign.
pub async fn ensure_tsa(
    pool: &Pool,
    store: &Arc<dyn KeyStore>,
    issuers: &std::collections::BTreeMap<String, ca::Issuer>,
    profiles: &profiles::ProfileSet,
    centre_name: &str,
) -> (Option<Tsa>, Option<CentralError>) {
    match ensure(pool, store, issuers, profiles, centre_name).await {
        Ok(kept) => kept,
        Err(e) => (None, Some(e)),
    }
}

async fn ensure(
    pool: &Pool,
    store: &Arc<dyn KeyStore>,
    issuers: &std::collections::BTreeMap<String, ca::Issuer>,
    profiles: &profiles::ProfileSet,
    centre_name: &str,
) -> Result<(Option<Tsa>, Option<CentralError>)> {
    let profile = profiles.cert(PROFILE)?;
    let policy = policy(profile)?;
    let current = match usable(pool, store, policy).await? {
        Some(t) if !t.due(SystemTime::now(), roll_margin(profile)) => return Ok((Some(t), None)),
        other => other,
    };
    let mut client = pool.get().await?;
    client
        .prepared_execute("SELECT pg_advisory_lock(hashtext('idcentral.tsa'))", &[])
        .await?;
    let rolled = Rollover {
        pool,
        store,
        issuers,
        profile,
        policy,
        centre_name,
    }
    .run(&mut client)
    .await;
    // A connection whose unlock fails is broken: the server ends its session and the lock.
    let _ = client
        .prepared_execute("SELECT pg_advisory_unlock(hashtext('idcentral.tsa'))", &[])
        .await;
    drop(client);
    Ok(match rolled {
        Ok(t) => (Some(t), None),
        Err(e) => {
            let still = current.filter(|t| t.signs_at(SystemTime::now()));
            match &still {
                Some(t) => tracing::warn!(error = %e, key = %t.key_label,
                    until = %crate::public::http_date(t.key_usage_until),
                    "could not roll the time-stamping key over: the active key signs until its usage period ends"),
                None => tracing::error!(error = %e,
                    "could not roll the time-stamping key over and no key can sign: /tsa refuses time-stamps"),
            }
            (still, Some(e))
        }
    })
}

/// How long a process waits after a failed rollover before its worker tries again (it keeps
/// re-reading the active key meanwhile).
pub const RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The key a process signs with, and when its worker may try a failed rollover again.
pub struct Kept {
    key: RwLock<Option<Arc<Tsa>>>,
    retry_after: Mutex<Option<Instant>>,
}

impl Kept {
    /// Keep `key`; after a failed rollover (`failure`), wait [`RETRY_AFTER`].
    pub fn new(key: Option<Tsa>, failure: bool) -> Self {
        Kept {
            key: RwLock::new(key.map(Arc::new)),
            retry_after: Mutex::new(failure.then(|| Instant::now() + RETRY_AFTER)),
        }
    }

    /// The key kept now.
    pub fn get(&self) -> Option<Arc<Tsa>> {
        self.key.read().ok().and_then(|k| k.clone())
    }

    /// Keep `fresh` if it signs now, or if the kept key no longer does (a new key whose
    /// certificate this process's clock sees as not yet valid waits for it).
    fn offer(&self, fresh: Tsa) -> Option<Arc<Tsa>> {
        let now = SystemTime::now();
        let mut kept = self.key.write().ok()?;
        let keep_old = kept.as_ref().is_some_and(|k| {
            k.key_label != fresh.key_label && k.signs_at(now) && !fresh.signs_at(now)
        });
        if !keep_old {
            if kept.as_ref().is_none_or(|k| k.key_label != fresh.key_label) {
                tracing::info!(key = %fresh.key_label, "time-stamps are signed with this key");
            }
            *kept = Some(Arc::new(fresh));
        }
        kept.clone()
    }

    /// The worker's refresh: roll the key over when due (not within [`RETRY_AFTER`] of a failed
    /// attempt: then only the active row is read again), and keep what is active.
    pub async fn refresh(
        &self,
        centre: &crate::pki::Centre,
        issuers: &std::collections::BTreeMap<String, ca::Issuer>,
    ) -> Result<()> {
        let waiting = self
            .retry_after
            .lock()
            .map(|r| r.is_some_and(|t| Instant::now() < t))
            .unwrap_or(false);
        let key = if waiting {
            active(&centre.pool, &centre.profiles).await?
        } else {
            let (key, failure) = ensure_tsa(
                &centre.pool,
                &centre.store,
                issuers,
                &centre.profiles,
                &centre.name,
            )
            .await;
            if let Ok(mut r) = self.retry_after.lock() {
                *r = failure.is_some().then(|| Instant::now() + RETRY_AFTER);
            }
            key
        };
        if let Some(k) = key {
            self.offer(k);
        }
        Ok(())
    }

    /// The key a token is signed with now: the one kept, or, when it can no longer sign, the
    /// active row read again (a request never rolls the key over). An error when none signs.
    pub async fn signing(&self, centre: &crate::pki::Centre) -> Result<Arc<Tsa>> {
        let now = SystemTime::now();
        if let Some(t) = self.get().filter(|t| t.signs_at(now)) {
            return Ok(t);
        }
        match active(&centre.pool, &centre.profiles).await? {
            Some(t) if t.signs_at(SystemTime::now()) => self
                .offer(t)
                .ok_or_else(|| CentralError::Other("the kept TSA key's lock is poisoned".into())),
            Some(t) => Err(CentralError::Other(format!(
                "time-stamping key {} is outside its usage period or its certificate's validity",
                t.key_label
            ))),
            None => Err(CentralError::Other("no time-stamping key is active".into())),
        }
    }
}

/// One rollover attempt, under the session advisory lock.
struct Rollover<'a> {
    pool: &'a Pool,
    store: &'a Arc<dyn KeyStore>,
    issuers: &'a std::collections::BTreeMap<String, ca::Issuer>,
    profile: &'a profiles::CertProfile,
    policy: ObjectIdentifier,
    centre_name: &'a str,
}

impl Rollover<'_> {
    /// The attempt; a failure is audited.
    async fn run(&self, client: &mut deadpool_postgres::Object) -> Result<Tsa> {
        // Another instance may have rolled while this one waited for the lock.
        if let Some(t) = usable(self.pool, self.store, self.policy)
            .await?
            .filter(|t| !t.due(SystemTime::now(), roll_margin(self.profile)))
        {
            return Ok(t);
        }
        let (label, n) = match self.pending_label(client).await {
            Ok(l) => l,
            Err(e) => {
                self.audit_failure("", None, &e).await;
                return Err(e);
            }
        };
        match self.certify(client, &label, n).await {
            Ok(t) => Ok(t),
            Err((e, cert)) => {
                self.audit_failure(&label, cert.as_ref(), &e).await;
                Err(e)
            }
        }
    }

    /// Steps (2) to (4) for the pending `label`; on failure, the certificate the root signed if
    /// it got that far.
    async fn certify(
        &self,
        client: &mut deadpool_postgres::Object,
        label: &str,
        n: i32,
    ) -> std::result::Result<Tsa, (CentralError, Option<ca::IssuedCert>)> {
        let root = self.active_root(client).await.map_err(|e| (e, None))?;
        let (store, profile, key) = (
            Arc::clone(self.store),
            self.profile.clone(),
            label.to_owned(),
        );
        let cert = tokio::task::spawn_blocking(move || -> Result<ca::IssuedCert> {
            if store.find(&key)?.is_none() {
                store.generate_p256(&key)?;
            }
            Ok(ca::issue_station_cert(
                store.as_ref(),
                &profile,
                &root,
                &store.public_key_spki(&key)?,
                &format!("idstation Time-Stamping Unit {n}"),
                SystemTime::now(),
            )?)
        })
        .await
        .map_err(|e| CentralError::Other(format!("TSA key task: {e}")))
        .and_then(|r| r)
        .map_err(|e| (e, None))?;
        match self.activate(client, label, &cert).await {
            Ok(t) => Ok(t),
            Err(e) => Err((e, Some(cert))),
        }
    }

    /// The pending row's label (an earlier attempt's), or the next free number recorded
    /// pending and committed before any key is made.
    async fn pending_label(&self, client: &mut deadpool_postgres::Object) -> Result<(String, i32)> {
        let number = |label: &str| {
            label
                .strip_prefix(KEY_PREFIX)
                .and_then(|n| n.parse::<i32>().ok())
                .unwrap_or(0)
        };
        if let Some(r) = client
            .prepared_opt("SELECT label FROM tsa_keys WHERE state = 'pending'", &[])
            .await?
        {
            let label: String = r.get(0);
            let n = number(&label);
            return Ok((label, n));
        }
        let last: Option<i32> = client
            .prepared_one(
                "SELECT max(substring(label FROM '^centre-tsa-([0-9]{1,9})$')::int) FROM tsa_keys",
                &[],
            )
            .await?
            .get(0);
        let mut n = last.unwrap_or(0) + 1;
        let first = n;
        while self.store.find(&format!("{KEY_PREFIX}{n}"))?.is_some() {
            tracing::warn!(key = %format!("{KEY_PREFIX}{n}"),
                "a time-stamping key is in the HSM without a record: left unused");
            n += 1;
            if n - first > MAX_SKIPPED {
                return Err(CentralError::Other(format!(
                    "tsa: the HSM has keys {KEY_PREFIX}{first} … {KEY_PREFIX}{n} without records"
                )));
            }
        }
        let label = format!("{KEY_PREFIX}{n}");
        client
            .prepared_execute(
                "INSERT INTO tsa_keys (label, state) VALUES ($1, 'pending')",
                &[&label],
            )
            .await?;
        Ok((label, n))
    }

    /// The active National Root CA as an issuer (the CA keys loaded again when a rotation made
    /// it after this process started).
    async fn active_root(&self, client: &deadpool_postgres::Object) -> Result<ca::Issuer> {
        let label: String = client
            .prepared_one(
                "SELECT label FROM ca_keys WHERE ca = 'root' AND state = 'active'",
                &[],
            )
            .await?
            .get(0);
        if let Some(i) = self.issuers.get(&label) {
            return Ok(i.clone());
        }
        super::load_issuers(self.pool, self.store.as_ref())
            .await?
            .remove(&label)
            .ok_or(CentralError::NotInitialised)
    }

    /// One transaction: `label` active with `cert`, the old key retired, audited.
    async fn activate(
        &self,
        client: &mut deadpool_postgres::Object,
        label: &str,
        cert: &ca::IssuedCert,
    ) -> Result<Tsa> {
        let policy = self.policy;
        let key_usage_until = ca::private_key_usage_end(&cert.der)?.unwrap_or(cert.not_after);
        let tx = client.transaction().await?;
        let replaces: Option<String> = tx
            .prepared_opt(
                "UPDATE tsa_keys SET state = 'retired', retired_at = now()
                 WHERE state = 'active' RETURNING label",
                &[],
            )
            .await?
            .map(|r| r.get(0));
        tx.prepared_execute(
            "UPDATE tsa_keys SET state = 'active', cert_der = $2, not_after = $3, serial = $4,
                 key_usage_until = $5, created_at = now()
             WHERE label = $1 AND state = 'pending'",
            &[
                &label,
                &cert.der,
                &cert.not_after,
                &cert.serial,
                &key_usage_until,
            ],
        )
        .await?;
        let details = serde_json::json!({
            "key": label, "serial": cert.serial_hex(), "policy": policy.to_string(),
            "issuer_key": cert.issuer_key_label,
            "not_after": crate::public::http_date(cert.not_after),
            "key_usage_until": crate::public::http_date(key_usage_until),
            "replaces": replaces,
            "fingerprint_sha256": ca::fingerprint_sha256(&cert.der)?,
        });
        audit::append(
            &tx,
            &super::centre_actor(self.centre_name),
            "tsa.certified",
            &format!("tsa:{label}"),
            &details,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(key = %label, serial = %cert.serial_hex(), replaces = ?replaces,
            "certified the time-stamping unit");
        Tsa::new(label.to_owned(), cert.der.clone(), policy, key_usage_until)
    }

    /// Audit a failed attempt in a transaction of its own (logged when even that fails).
    async fn audit_failure(&self, label: &str, cert: Option<&ca::IssuedCert>, e: &CentralError) {
        let details = serde_json::json!({
            "key": label,
            "error": e.to_string(),
            "unrecorded_serial": cert.map(|c| c.serial_hex()),
        });
        let result = async {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            audit::append(
                &tx,
                &super::centre_actor(self.centre_name),
                "tsa.rollover-failed",
                &format!("tsa:{label}"),
                &details,
            )
            .await?;
            tx.commit().await?;
            Ok::<_, CentralError>(())
        }
        .await;
        if let Err(ae) = result {
            tracing::error!(error = %ae, failure = %e, "a failed TSA rollover could not be audited");
        }
    }
}
