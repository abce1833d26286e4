//! `GET /v1/jobs/{job}` (what the centre knows of one of the station's jobs: recovery asks it)
//! and `GET /v1/status` (the station as the centre sees it).

use crate::db::Prepared;
use centre_api::{JobStatus, StationStatus};

use super::{certificates, station_job};
use crate::audit;
use crate::enrol::WhoAmI;
use crate::error::Result;
use crate::pki::Centre;

/// The job `id` of station `who`. Its certificates name the holder: the read is audited
/// (`job.shown`).
pub async fn job_status(centre: &Centre, who: &WhoAmI, id: &str) -> Result<JobStatus> {
    let mut client = centre.pool.get().await?;
    let tx = client.transaction().await?;
    let job = station_job(&tx, who, id, false).await?;
    let status = JobStatus {
        certificates: certificates(&tx, &job.id).await?,
        document: job.document(),
        state: job.state,
        abort_reason: job.abort_reason.clone(),
        job: job.id,
    };
    let by = super::actor(who, &who.station);
    let details = serde_json::json!({ "job": status.job, "state": super::state_str(status.state) });
    audit::append(
        &tx,
        &by,
        "job.shown",
        &format!("job:{}", status.job),
        &details,
    )
    .await?;
    tx.commit().await?;
    Ok(status)
}

/// The station's identity certificate's notAfter, number blocks, open jobs, audit head and
/// newest Document Signer.
pub async fn station_status(centre: &Centre, who: &WhoAmI) -> Result<StationStatus> {
    let client = centre.pool.get().await?;
    let identity: Vec<u8> = client
        .prepared_one(
            "SELECT cert_der FROM station_certs WHERE station = $1 AND purpose = 'identity'",
            &[&who.station],
        )
        .await?
        .get(0);
    let number_blocks = crate::numbers::blocks(&client, &who.station).await?;
    let open_jobs: i64 = client
        .prepared_one(
            "SELECT count(*) FROM jobs WHERE station = $1 AND state IN ('reserved', 'certified')",
            &[&who.station],
        )
        .await?
        .get(0);
    let head: Option<i64> = client
        .prepared_opt(
            "SELECT seq FROM station_audit_heads WHERE station = $1",
            &[&who.station],
        )
        .await?
        .map(|r| r.get(0));
    let ds: Option<Vec<u8>> = client
        .prepared_opt(
            "SELECT cert_der FROM station_certs WHERE station = $1 AND purpose = 'document-signer'
               AND revoked_at IS NULL ORDER BY issued_at DESC LIMIT 1",
            &[&who.station],
        )
        .await?
        .map(|r| r.get(0));
    let document_signer_serial = ds
        .map(|d| ca::CertInfo::parse(&d).map(|i| i.serial_hex))
        .transpose()?;
    Ok(StationStatus {
        time: time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            }),
        document_signer_serial,
        station: who.station.clone(),
        office: who.office.clone(),
        state: who.state.clone(),
        identity_not_after: ca::CertInfo::parse(&identity)?.not_after,
        numbers_left: number_blocks.iter().map(|b| b.left()).sum::<u64>(),
        number_blocks,
        open_jobs: open_jobs as u64,
        audit_head_seq: head.unwrap_or(0) as u64,
    })
}
