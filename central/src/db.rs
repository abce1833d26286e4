//! PostgreSQL: the connection pool and the versioned schema (`central/migrations/V*__*.sql`,
//! applied in order by refinery, each in its own transaction, recorded in
//! `refinery_schema_history`).
//!
//! The pool outlives a failover (docs/centre-ha.md): `database.url` may name the primary and its
//! standby (`postgres://idcentral@a:5432,b:5432/idcentral?target_session_attrs=read-write`);
//! each new connection tries the hosts in order and keeps the first that accepts writes, each
//! attempt bounded by `connect_timeout`. A pooled connection is checked on every checkout
//! (`SHOW transaction_read_only`, itself bounded): one that broke, hangs, or now reaches a
//! read-only server is dropped and another made. While no primary answers, every request fails
//! at once with [`CentralError::Database`].

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::TargetSessionAttrs;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row, SimpleQueryMessage};
use zeroize::Zeroizing;

use crate::config::DatabaseSection;
use crate::error::{CentralError, Result};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// How long one connection attempt to one host may take when the URL sets no
/// `connect_timeout`: a dead or unreachable host fails fast and the next one is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long sent data may stay unacknowledged before the kernel gives the connection up, when
/// the URL sets no `tcp_user_timeout`: a primary that vanished from the network (no RST) does
/// not hold a request for the TCP retransmission timeout (about 15 minutes).
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the check of a pooled connection may take before the connection is dropped.
const RECYCLE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a free connection when all `pool_size` are in use.
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The connection settings of `db`: its URL, with the password read from its file and the
/// timeouts above where the URL sets none. A URL naming several hosts must ask for
/// `target_session_attrs=read-write`, or a connection could land on a read-only standby.
pub fn pg_config(db: &DatabaseSection) -> Result<tokio_postgres::Config> {
    let mut cfg: tokio_postgres::Config = db.url.parse().map_err(|e| {
        CentralError::invalid("database.url", format!("is not a PostgreSQL URL: {e}"))
    })?;
    if cfg.get_hosts().len() > 1 && cfg.get_target_session_attrs() != TargetSessionAttrs::ReadWrite
    {
        return Err(CentralError::invalid(
            "database.url",
            format!(
                "names {} hosts but not target_session_attrs=read-write: the centre must connect \
                 only to the one that accepts writes (the primary)",
                cfg.get_hosts().len()
            ),
        ));
    }
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(CONNECT_TIMEOUT);
    }
    if cfg.get_tcp_user_timeout().is_none() {
        cfg.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    if let Some(file) = &db.password_file {
        cfg.password(read_password(file)?.as_bytes());
    }
    Ok(cfg)
}

fn read_password(file: &Path) -> Result<Zeroizing<String>> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(file).map_err(|e| CentralError::io(file, e))?;
    if meta.mode() & 0o077 != 0 {
        return Err(CentralError::Config {
            path: file.to_owned(),
            reason: format!(
                "database.password_file: mode {:o} lets others read it; it must be 0600",
                meta.mode() & 0o777
            ),
        });
    }
    let text =
        Zeroizing::new(std::fs::read_to_string(file).map_err(|e| CentralError::io(file, e))?);
    let first = text.lines().next().unwrap_or("");
    if first.is_empty() {
        return Err(CentralError::Config {
            path: file.to_owned(),
            reason: "database.password_file: the first line is empty".into(),
        });
    }
    Ok(Zeroizing::new(first.to_owned()))
}

/// A pool of `db.pool_size` connections, made lazily. On checkout a pooled connection must be
/// open and answer [`writable`] within [`RECYCLE_TIMEOUT`], or it is dropped and another taken
/// or made; a new one must reach a server that accepts writes within the connect timeouts.
pub fn pool(db: &DatabaseSection) -> Result<Pool> {
    let cfg = pg_config(db)?;
    let hosts = u32::try_from(cfg.get_hosts().len().max(1)).unwrap_or(u32::MAX);
    let per_host = cfg
        .get_connect_timeout()
        .copied()
        .unwrap_or(CONNECT_TIMEOUT);
    // Every host may be tried once, then authentication and the read-write check.
    let create_timeout = per_host.saturating_mul(hosts) + RECYCLE_TIMEOUT;
    let mgr = Manager::from_config(
        cfg,
        NoTls,
        ManagerConfig {
            // Only `is_closed` here: the post-recycle hook's query is the liveness check.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(mgr)
        .max_size(db.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(WAIT_TIMEOUT))
        .create_timeout(Some(create_timeout))
        .recycle_timeout(Some(RECYCLE_TIMEOUT))
        .post_create(Hook::async_fn(|client, _| {
            Box::pin(async move {
                writable(client).await?;
                act_as_app(client).await
            })
        }))
        .post_recycle(Hook::async_fn(|client, _| {
            Box::pin(async move {
                tokio::time::timeout(RECYCLE_TIMEOUT, writable(client))
                    .await
                    .unwrap_or_else(|_| {
                        Err(HookError::message(
                            "the server did not answer the connection check in time",
                        ))
                    })
                    .inspect_err(
                        |e| tracing::warn!(error = %e, "a pooled database connection was dropped"),
                    )
            })
        }))
        .build()
        .map_err(|e| CentralError::Database(format!("pool: {e}")))
}

/// The role every session acts as (migration V6): the registry's reads and writes, but no
/// UPDATE, DELETE or TRUNCATE on the audit tables.
pub const APP_ROLE: &str = "idcentral_app";

/// `SET ROLE idcentral_app` when the role exists and the login role may use it (a database
/// before migration V6, or a cluster whose administrator has not created it yet, keeps the
/// login role: V6 refuses to run without it).
async fn act_as_app(client: &tokio_postgres::Client) -> std::result::Result<(), HookError> {
    client
        .batch_execute(
            "DO $$ BEGIN
               IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'idcentral_app') THEN
                 IF pg_has_role(current_user, 'idcentral_app', 'MEMBER') THEN
                   SET ROLE idcentral_app;
                 END IF;
               END IF;
             END $$",
        )
        .await
        .map_err(HookError::Backend)
}

/// The connection check: the connection answers, and its server accepts writes
/// (`transaction_read_only` is `off`: not a standby in recovery, not
/// `default_transaction_read_only`). One round trip.
async fn writable(client: &tokio_postgres::Client) -> std::result::Result<(), HookError> {
    let messages = client
        .simple_query("SHOW transaction_read_only")
        .await
        .map_err(HookError::Backend)?;
    let value = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0),
        _ => None,
    });
    match value {
        Some("off") => Ok(()),
        Some(_) => Err(HookError::message(
            "the server is read-only (a standby, or default_transaction_read_only is on); \
             the centre writes only to the primary",
        )),
        None => Err(HookError::message(
            "the server did not answer SHOW transaction_read_only",
        )),
    }
}

/// Statements prepared once per pooled connection. tokio-postgres sends a statement given as
/// text as an unnamed one: a round trip to parse and describe it, then another to bind and run
/// it, and the server parses and plans it every time. Through these the text is parsed once per
/// connection (deadpool's statement cache) and each later run is one round trip. The text must
/// be `'static` — a fixed statement, never one built at run time — so the cache stays bounded
/// by the statements this program has.
pub trait Prepared: deadpool_postgres::GenericClient {
    /// Like `query`, prepared once per connection.
    fn prepared_query<'a>(
        &'a self,
        sql: &'static str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = std::result::Result<Vec<Row>, tokio_postgres::Error>> + Send + 'a
    where
        Self: Sized,
    {
        async move {
            let st = self.prepare_cached(sql).await?;
            self.query(&st, params).await
        }
    }

    /// Like `query_one`, prepared once per connection.
    fn prepared_one<'a>(
        &'a self,
        sql: &'static str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = std::result::Result<Row, tokio_postgres::Error>> + Send + 'a
    where
        Self: Sized,
    {
        async move {
            let st = self.prepare_cached(sql).await?;
            self.query_one(&st, params).await
        }
    }

    /// Like `query_opt`, prepared once per connection.
    fn prepared_opt<'a>(
        &'a self,
        sql: &'static str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = std::result::Result<Option<Row>, tokio_postgres::Error>> + Send + 'a
    where
        Self: Sized,
    {
        async move {
            let st = self.prepare_cached(sql).await?;
            self.query_opt(&st, params).await
        }
    }

    /// Like `execute`, prepared once per connection.
    fn prepared_execute<'a>(
        &'a self,
        sql: &'static str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = std::result::Result<u64, tokio_postgres::Error>> + Send + 'a
    where
        Self: Sized,
    {
        async move {
            let st = self.prepare_cached(sql).await?;
            self.execute(&st, params).await
        }
    }
}

impl<C: deadpool_postgres::GenericClient> Prepared for C {}

/// Bring the schema up to the newest version this program knows; refuse a database written by a
/// newer one.
pub async fn migrate(pool: &Pool) -> Result<()> {
    let mut obj = pool.get().await?;
    let client: &mut tokio_postgres::Client = &mut obj;
    // Migrations run as the owner; the connection goes back to the pool as the app role.
    client.batch_execute("RESET ROLE").await?;
    let report = embedded::migrations::runner()
        .set_abort_divergent(true)
        .run_async(client)
        .await
        .map_err(|e| CentralError::Database(format!("schema migration: {e}")));
    act_as_app(client)
        .await
        .map_err(|e| CentralError::Database(format!("SET ROLE {APP_ROLE}: {e}")))?;
    let report = report?;
    for m in report.applied_migrations() {
        tracing::info!(
            version = m.version(),
            name = m.name(),
            "applied schema migration"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(url: &str) -> DatabaseSection {
        DatabaseSection {
            url: url.into(),
            password_file: None,
            pool_size: 2,
        }
    }

    #[test]
    fn several_hosts_without_read_write_are_refused_naming_the_field() {
        for url in [
            "postgres://idcentral@127.0.0.1:5432,127.0.0.1:5433/idcentral",
            "postgres://idcentral@a:1,b:2/idcentral?target_session_attrs=any",
        ] {
            let e = pg_config(&section(url)).unwrap_err();
            let text = e.to_string();
            assert!(
                text.starts_with("database.url: names 2 hosts")
                    && text.contains("target_session_attrs=read-write"),
                "{text}"
            );
            assert_eq!(e.exit_code(), 2);
        }
        let ok = pg_config(&section(
            "postgres://idcentral@a:1,b:2/idcentral?target_session_attrs=read-write",
        ))
        .unwrap();
        assert_eq!(ok.get_hosts().len(), 2);
        assert_eq!(ok.get_ports(), &[1, 2]);
        assert_eq!(ok.get_target_session_attrs(), TargetSessionAttrs::ReadWrite);
    }

    #[test]
    fn timeouts_default_when_the_url_sets_none_and_the_url_wins_when_it_does() {
        let dflt = pg_config(&section("postgres://idcentral@127.0.0.1:5432/idcentral")).unwrap();
        assert_eq!(dflt.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert_eq!(dflt.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
        let set = pg_config(&section(
            "postgres://idcentral@127.0.0.1:5432/idcentral?connect_timeout=2&tcp_user_timeout=7",
        ))
        .unwrap();
        assert_eq!(set.get_connect_timeout(), Some(&Duration::from_secs(2)));
        assert_eq!(set.get_tcp_user_timeout(), Some(&Duration::from_secs(7)));
    }
}
