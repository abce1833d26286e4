//! The task of every `idcentral serve` that aborts work left open: issuance jobs after
//! `[issuance] job_timeout_seconds` ([`crate::issuance::sweep`]) and renewals after
//! `renewal_timeout_seconds` ([`crate::services::renew::sweep_once`]), every half of the
//! shorter timeout (between 1 s and 60 s).

use std::sync::Arc;

use crate::issuance::sweep::{interval, sweep_once};
use crate::pki::Centre;

/// Sweep every [`interval`] of the shorter timeout until the process ends; errors are logged
/// and retried.
pub async fn run(centre: Arc<Centre>) {
    let every = interval(
        centre
            .issuance
            .job_timeout_seconds
            .min(centre.issuance.renewal_timeout_seconds),
    );
    loop {
        tokio::time::sleep(every).await;
        match sweep_once(&centre).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "job timeout sweep"),
            Err(e) => tracing::warn!(error = %e, "job timeout sweep failed"),
        }
        match crate::services::renew::sweep_once(&centre).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(renewals = n, "renewal timeout sweep"),
            Err(e) => tracing::warn!(error = %e, "renewal timeout sweep failed"),
        }
    }
}
