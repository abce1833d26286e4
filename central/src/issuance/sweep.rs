//! The centre aborts jobs left open (reserved or certified) longer than `[issuance]
//! job_timeout_seconds`: a task of every `idcentral serve`. Several instances share the work:
//! each takes the overdue jobs no other holds (`FOR UPDATE SKIP LOCKED`). The number of a job
//! whose certificates were issued is spoiled (it may be on a card), otherwise released.
//! [`crate::timeouts`] runs it, with the renewals' sweep.

use crate::db::Prepared;
use std::time::Duration;

use centre_api::{JobState, NumberOutcome};

use super::find_job;
use crate::error::Result;
use crate::pki::Centre;

/// Jobs aborted per transaction.
const BATCH: i64 = 50;

/// How often a centre looks for overdue jobs: half the timeout, between 1 s and 60 s.
pub fn interval(timeout_seconds: u64) -> Duration {
    Duration::from_secs((timeout_seconds / 2).clamp(1, 60))
}

/// Abort the overdue jobs no other instance is working on; how many were aborted.
pub async fn sweep_once(centre: &Centre) -> Result<usize> {
    let timeout = centre.issuance.job_timeout_seconds;
    let mut client = centre.pool.get().await?;
    let tx = client.transaction().await?;
    let ids: Vec<String> = tx
        .prepared_query(
            "SELECT id FROM jobs WHERE state IN ('reserved', 'certified')
               AND created_at < now() - make_interval(secs => $1)
             ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
            &[&(timeout as f64), &BATCH],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let by = crate::public::centre_actor(&centre.name);
    let reason = format!("timeout: the job stayed open longer than {timeout} seconds");
    for id in &ids {
        let Some(job) = find_job(&tx, id, true).await? else {
            continue;
        };
        let number = match job.state {
            JobState::Certified => NumberOutcome::Spoiled,
            _ => NumberOutcome::Released,
        };
        super::finish::abort_job(&tx, &job, &by, &reason, number, None).await?;
        tracing::info!(job = %job.id, station = %job.station, "aborted an overdue job");
    }
    tx.commit().await?;
    Ok(ids.len())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sweep_runs_at_half_the_timeout_within_bounds() {
        assert_eq!(super::interval(2).as_secs(), 1);
        assert_eq!(super::interval(1).as_secs(), 1);
        assert_eq!(super::interval(60).as_secs(), 30);
        assert_eq!(super::interval(3600).as_secs(), 60);
    }
}
