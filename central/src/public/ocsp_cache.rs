//! An in-memory copy of the OCSP responses signed ahead of time (`ocsp_responses`), so that a
//! request for one (SHA-1 CertID, RFC 5019 §2.2.1) is a hash look-up in `idcentral` and not a
//! PostgreSQL round trip (docs/BENCHMARKS.md, "OCSP answers from the public listener").
//!
//! Kept current across processes: a trigger on `ocsp_responses` (migration V11) sends
//! `NOTIFY idcentral_ocsp_responses, '<issuer key> <serial hex>'` at the commit of every insert,
//! update or delete (`'*'` for a TRUNCATE), and each process LISTENs on a connection of its own ([`listen`]) and drops
//! that entry; the next request reads the database and fills it again.
//!
//! The rules ([`OcspCache`]):
//! - nothing is served or stored while the LISTEN connection is not up (before it is, after it
//!   fails, while it reconnects): every request reads the database, as without a cache;
//! - the whole cache is cleared when the connection is lost and again once LISTEN is in place,
//!   so a notification missed meanwhile never leaves a stale `good`;
//! - a fill is dropped when any entry was dropped or the cache cleared since its database read
//!   began (the read may predate the change the notification announced);
//! - an entry whose nextUpdate has passed is never served (the database path answers);
//! - at most `[public] ocsp_cache_entries` entries (0: no cache); a full cache drops an
//!   arbitrary entry for a new one.
//!
//! The connection also runs a `SELECT 1` every [`HEARTBEAT`], bounded by [`HEARTBEAT_TIMEOUT`],
//! so a connection that died silently (no RST: a partition, a failover) is noticed within a few
//! seconds and not only at the kernel's TCP timeouts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use crate::error::{CentralError, Result};

/// The channel the V11 trigger notifies.
pub const CHANNEL: &str = "idcentral_ocsp_responses";
/// The LISTEN connection's `application_name` (what `pg_stat_activity` shows).
pub const APPLICATION_NAME: &str = "idcentral-ocsp-cache";
/// How often the LISTEN connection is checked with a query.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long that check may take before the connection counts as lost.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3);

/// One stored response: DER OCSPResponse, producedAt (thisUpdate), nextUpdate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub der: Vec<u8>,
    pub produced_at: SystemTime,
    pub next_update: SystemTime,
}

type Key = (String, Vec<u8>);

/// The cache (see the module documentation).
#[derive(Debug)]
pub struct OcspCache {
    max: usize,
    map: RwLock<HashMap<Key, Entry>>,
    /// Counts every drop and clear: a fill is kept only when it did not move meanwhile.
    generation: AtomicU64,
    /// The LISTEN connection is up: entries may be served and stored.
    live: AtomicBool,
}

/// What a fill must show: the generation when its database read began.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

impl OcspCache {
    /// An empty cache of at most `max` entries, not live until [`OcspCache::go_live`].
    pub fn new(max: usize) -> Self {
        OcspCache {
            max,
            map: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            live: AtomicBool::new(false),
        }
    }

    /// The entry of (`issuer_key`, `serial`) if it may be served at `now`.
    pub fn get(&self, issuer_key: &str, serial: &[u8], now: SystemTime) -> Option<Entry> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        let map = self.map.read().ok()?;
        let e = map.get(&(issuer_key.to_owned(), serial.to_vec()))?;
        (e.next_update > now).then(|| e.clone())
    }

    /// Taken before the database read whose row [`OcspCache::fill`] may store.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::Acquire))
    }

    /// Store what the database read begun at `ticket` found, unless something was dropped
    /// since, the cache is not live, or it is disabled.
    pub fn fill(&self, ticket: Ticket, issuer_key: &str, serial: &[u8], entry: Entry) {
        if self.max == 0 || !self.live.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut map) = self.map.write() else {
            return;
        };
        // Under the write lock: a drop takes it too, so none can slip between check and insert.
        if self.generation.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        let key = (issuer_key.to_owned(), serial.to_vec());
        if map.len() >= self.max && !map.contains_key(&key) {
            if let Some(k) = map.keys().next().cloned() {
                map.remove(&k);
            }
        }
        map.insert(key, entry);
    }

    /// Store every `(issuer key, serial, entry)` a database read begun at `ticket` found (the
    /// preload at start), under the same rules as [`OcspCache::fill`], up to the bound; how many
    /// were stored.
    pub fn fill_all(&self, ticket: Ticket, entries: Vec<(String, Vec<u8>, Entry)>) -> usize {
        if self.max == 0 || !self.live.load(Ordering::Acquire) {
            return 0;
        }
        let Ok(mut map) = self.map.write() else {
            return 0;
        };
        if self.generation.load(Ordering::Acquire) != ticket.0 {
            return 0;
        }
        let mut stored = 0;
        for (key, serial, entry) in entries {
            if map.len() >= self.max {
                break;
            }
            map.insert((key, serial), entry);
            stored += 1;
        }
        stored
    }

    /// Drop the entry of (`issuer_key`, `serial`): its row changed.
    pub fn evict(&self, issuer_key: &str, serial: &[u8]) {
        if let Ok(mut map) = self.map.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            map.remove(&(issuer_key.to_owned(), serial.to_vec()));
        }
    }

    /// Drop everything.
    pub fn clear(&self) {
        if let Ok(mut map) = self.map.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            map.clear();
        }
    }

    /// The LISTEN connection is lost: serve and store nothing, drop everything.
    pub fn go_dark(&self) {
        self.live.store(false, Ordering::Release);
        self.clear();
    }

    /// LISTEN is in place: drop what was stored before it (no notification covered it) and
    /// serve from now on.
    pub fn go_live(&self) {
        if self.max == 0 {
            return;
        }
        self.clear();
        self.live.store(true, Ordering::Release);
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.map.read().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A notification's payload, `<issuer key> <serial hex>`, as (issuer key, serial bytes).
pub fn parse_payload(payload: &str) -> Option<(&str, Vec<u8>)> {
    let (key, serial) = payload.rsplit_once(' ')?;
    Some((key, hex::decode(serial).ok()?))
}

/// Keep `cache` current until the process stops: LISTEN, apply each notification, and on any
/// failure go dark and reconnect after a second.
pub async fn listen(cache: Arc<OcspCache>, db: crate::config::DatabaseSection) {
    loop {
        if let Err(e) = listen_once(&cache, &db).await {
            tracing::warn!(error = %e, "the OCSP cache's LISTEN connection ended: cache cleared");
        }
        cache.go_dark();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen_once(cache: &OcspCache, db: &crate::config::DatabaseSection) -> Result<()> {
    let mut cfg = crate::db::pg_config(db)?;
    cfg.application_name(APPLICATION_NAME);
    let dberr = |e: tokio_postgres::Error| CentralError::Database(e.to_string());
    let (client, mut conn) = cfg.connect(tokio_postgres::NoTls).await.map_err(dberr)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // The connection delivers notifications only while it is polled; the channel closes when
    // the connection ends.
    let driver = tokio::spawn(async move {
        while let Some(Ok(m)) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                if tx.send(n.payload().to_owned()).is_err() {
                    break;
                }
            }
        }
    });
    let result = serve_notifications(cache, &client, &mut rx).await;
    driver.abort();
    result
}

async fn serve_notifications(
    cache: &OcspCache,
    client: &tokio_postgres::Client,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
) -> Result<()> {
    let dberr = |e: tokio_postgres::Error| CentralError::Database(e.to_string());
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(dberr)?;
    cache.go_live();
    tracing::debug!("the OCSP cache listens for changed responses");
    // Notifications of changes committed from here on queue in `rx` and are applied after the
    // preload, so a row the preload read just before it changed is dropped again.
    preload(cache, client).await?;
    let mut beat = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            n = rx.recv() => match n {
                Some(payload) => apply(cache, &payload),
                None => return Err(CentralError::Database("connection closed".into())),
            },
            _ = beat.tick() => {
                tokio::time::timeout(HEARTBEAT_TIMEOUT, client.simple_query("SELECT 1"))
                    .await
                    .map_err(|_| CentralError::Database("no answer to the heartbeat".into()))?
                    .map_err(dberr)?;
            }
        }
    }
}

/// Fill the live cache with the stored responses still current (at most its bound, those that
/// stay current longest first), so the first request for each is answered from memory too.
async fn preload(cache: &OcspCache, client: &tokio_postgres::Client) -> Result<()> {
    let dberr = |e: tokio_postgres::Error| CentralError::Database(e.to_string());
    let ticket = cache.ticket();
    let limit = i64::try_from(cache.max).unwrap_or(i64::MAX);
    let rows = client
        .query(
            "SELECT issuer_key, serial, response_der, produced_at, next_update
             FROM ocsp_responses WHERE next_update > now()
             ORDER BY next_update DESC LIMIT $1",
            &[&limit],
        )
        .await
        .map_err(dberr)?;
    let entries = rows
        .into_iter()
        .map(|r| {
            let entry = Entry {
                der: r.get(2),
                produced_at: r.get(3),
                next_update: r.get(4),
            };
            (r.get(0), r.get(1), entry)
        })
        .collect();
    let stored = cache.fill_all(ticket, entries);
    tracing::info!(
        stored,
        "the OCSP cache is preloaded with the stored responses"
    );
    Ok(())
}

/// One notification: drop its entry; everything for `*` (a TRUNCATE) or a payload that cannot
/// be read.
fn apply(cache: &OcspCache, payload: &str) {
    if payload == "*" {
        cache.clear();
        return;
    }
    match parse_payload(payload) {
        Some((key, serial)) => cache.evict(key, &serial),
        None => {
            tracing::warn!(%payload, "unreadable OCSP cache notification: cache cleared");
            cache.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tag: u8, next_update: SystemTime) -> Entry {
        Entry {
            der: vec![tag],
            produced_at: SystemTime::UNIX_EPOCH,
            next_update,
        }
    }

    fn later() -> SystemTime {
        SystemTime::now() + Duration::from_secs(3600)
    }

    fn live(max: usize) -> OcspCache {
        let c = OcspCache::new(max);
        c.go_live();
        c
    }

    #[test]
    fn nothing_is_served_or_stored_before_listen_is_in_place() {
        let c = OcspCache::new(10);
        c.fill(c.ticket(), "k", &[1], entry(1, later()));
        assert!(c.is_empty());
        c.go_live();
        c.fill(c.ticket(), "k", &[1], entry(1, later()));
        assert_eq!(c.get("k", &[1], SystemTime::now()).unwrap().der, vec![1]);
    }

    #[test]
    fn a_lost_connection_clears_everything_and_serves_nothing_until_live_again() {
        let c = live(10);
        c.fill(c.ticket(), "k", &[1], entry(1, later()));
        c.fill(c.ticket(), "k", &[2], entry(2, later()));
        assert_eq!(c.len(), 2);
        c.go_dark();
        assert!(c.is_empty());
        assert_eq!(c.get("k", &[1], SystemTime::now()), None);
        c.fill(c.ticket(), "k", &[1], entry(1, later()));
        assert!(c.is_empty(), "stored while dark");
        c.go_live();
        c.fill(c.ticket(), "k", &[1], entry(1, later()));
        assert!(c.get("k", &[1], SystemTime::now()).is_some());
    }

    #[test]
    fn a_notification_drops_its_entry_only() {
        let c = live(10);
        c.fill(c.ticket(), "esign-ca-1", &[0xAB, 1], entry(1, later()));
        c.fill(c.ticket(), "esign-ca-1", &[0xAB, 2], entry(2, later()));
        apply(&c, "esign-ca-1 ab01");
        assert_eq!(c.get("esign-ca-1", &[0xAB, 1], SystemTime::now()), None);
        assert!(c.get("esign-ca-1", &[0xAB, 2], SystemTime::now()).is_some());
        apply(&c, "garbage");
        assert!(c.is_empty(), "an unreadable notification clears all");
        c.fill(c.ticket(), "esign-ca-1", &[0xAB, 2], entry(2, later()));
        apply(&c, "*");
        assert!(c.is_empty(), "a TRUNCATE clears all");
    }

    #[test]
    fn a_fill_whose_read_began_before_a_drop_is_not_kept() {
        let c = live(10);
        let before = c.ticket();
        // The row changed (and was notified) while the read was under way.
        c.evict("k", &[1]);
        c.fill(before, "k", &[1], entry(1, later()));
        assert_eq!(c.get("k", &[1], SystemTime::now()), None);
        let before = c.ticket();
        c.go_dark();
        c.go_live();
        c.fill(before, "k", &[1], entry(1, later()));
        assert!(c.is_empty(), "a read from before the reconnection");
    }

    #[test]
    fn a_preload_is_bounded_and_dropped_when_something_changed_during_its_read() {
        let c = live(2);
        let rows = |n: u8| {
            (0..n)
                .map(|i| ("esign-ca-1".to_owned(), vec![i], entry(i, later())))
                .collect::<Vec<_>>()
        };
        let t = c.ticket();
        c.evict("esign-ca-1", &[9]);
        assert_eq!(
            c.fill_all(t, rows(3)),
            0,
            "a read older than a drop stores nothing"
        );
        assert!(c.is_empty());
        assert_eq!(c.fill_all(c.ticket(), rows(3)), 2, "at most the bound");
        assert_eq!(c.len(), 2);
        let got = c.get("esign-ca-1", &[0], SystemTime::now()).map(|e| e.der);
        assert_eq!(got, Some(vec![0]));
        assert_eq!(OcspCache::new(0).fill_all(Ticket(0), rows(1)), 0);
    }

    #[test]
    fn an_expired_entry_is_never_served() {
        let c = live(10);
        let next = SystemTime::now() + Duration::from_secs(60);
        c.fill(c.ticket(), "k", &[1], entry(1, next));
        assert!(c.get("k", &[1], next - Duration::from_secs(1)).is_some());
        assert_eq!(c.get("k", &[1], next), None);
        assert_eq!(c.get("k", &[1], next + Duration::from_secs(1)), None);
        let past = SystemTime::now() - Duration::from_secs(1);
        c.fill(c.ticket(), "k", &[2], entry(2, past));
        assert_eq!(c.get("k", &[2], SystemTime::now()), None);
    }

    #[test]
    fn the_size_is_bounded_and_zero_disables_the_cache() {
        let c = live(3);
        for i in 0..10u8 {
            c.fill(c.ticket(), "k", &[i], entry(i, later()));
            assert!(c.len() <= 3);
        }
        assert!(
            c.get("k", &[9], SystemTime::now()).is_some(),
            "the newest is kept"
        );
        // Replacing an entry of a full cache drops nothing else.
        c.fill(c.ticket(), "k", &[9], entry(99, later()));
        assert_eq!(c.len(), 3);
        let off = live(0);
        off.fill(off.ticket(), "k", &[1], entry(1, later()));
        assert!(off.is_empty() && off.get("k", &[1], SystemTime::now()).is_none());
    }

    #[test]
    fn payloads_name_the_key_and_the_serial() {
        assert_eq!(
            parse_payload("esign-ca-1 0a1b"),
            Some(("esign-ca-1", vec![0x0A, 0x1B]))
        );
        assert_eq!(parse_payload("esign-ca-1 zz"), None);
        assert_eq!(parse_payload("esign-ca-1"), None);
    }
}
