//! PostgreSQL: the connection pool and the versioned schema (`central/migrations/V*__*.sql`,
//! applied in order by refinery, each in its own transaction, recorded in
//! `refinery_schema_history`).

use std::path::Path;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use zeroize::Zeroizing;

use crate::config::DatabaseSection;
use crate::error::{CentralError, Result};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The connection settings of `db`: its URL, with the password read from its file.
pub fn pg_config(db: &DatabaseSection) -> Result<tokio_postgres::Config> {
    let mut cfg: tokio_postgres::Config = db.url.parse().map_err(|e| {
        CentralError::invalid("database.url", format!("is not a PostgreSQL URL: {e}"))
    })?;
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

/// A pool of `db.pool_size` connections (made lazily; a dead one is replaced on checkout).
pub fn pool(db: &DatabaseSection) -> Result<Pool> {
    let mgr = Manager::from_config(
        pg_config(db)?,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
        },
    );
    Pool::builder(mgr)
        .max_size(db.pool_size)
        .build()
        .map_err(|e| CentralError::Database(format!("pool: {e}")))
}

/// Bring the schema up to the newest version this program knows; refuse a database written by a
/// newer one.
pub async fn migrate(pool: &Pool) -> Result<()> {
    let mut obj = pool.get().await?;
    let client: &mut tokio_postgres::Client = &mut obj;
    let report = embedded::migrations::runner()
        .set_abort_divergent(true)
        .run_async(client)
        .await
        .map_err(|e| CentralError::Database(format!("schema migration: {e}")))?;
    for m in report.applied_migrations() {
        tracing::info!(
            version = m.version(),
            name = m.name(),
            "applied schema migration"
        );
    }
    Ok(())
}
