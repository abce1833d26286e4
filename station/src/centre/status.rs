//! `idstation centre status`: whether the centre answers, the station and office as the
//! centre sees them (`GET /v1/status`, or `GET /v1/whoami` from a centre that lacks it), the
//! identity certificate's validity (from the local certificate) and the numbers left; then the
//! centre's Station CA keys (`super::anchors::refresh`: a new one is checked and stored).

use serde::Serialize;

use super::files::CentreFiles;
use super::CentreClient;
use crate::error::StationError;
use crate::Station;

/// What `centre status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct CentreStatus {
    pub url: String,
    /// The centre answered.
    pub reachable: bool,
    /// What this station knows without asking.
    pub local: LocalView,
    /// What the centre said (absent when it could not be reached).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub centre: Option<CentreView>,
    /// The centre's Station CA keys and those stored now (absent when not learnt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchors: Option<super::anchors::AnchorUpdate>,
    /// What could not be learnt, in plain words.
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LocalView {
    pub station: String,
    pub office: String,
    pub identity: IdentityValidity,
    /// Numbers left in the office's local number blocks.
    pub numbers_left: u64,
    /// The Document Signer that signs this station's EF.SODs (absent on a registry without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_signer: Option<DocumentSignerUse>,
}

/// The active Document Signer and its key usage period (ICAO Doc 9303-12 §4.1.1: at most 3
/// months, stated by the certificate's privateKeyUsagePeriod).
#[derive(Debug, Clone, Serialize)]
pub struct DocumentSignerUse {
    pub key: String,
    pub serial: String,
    /// The end of the key usage period, when the certificate states one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_usage_until: Option<String>,
    /// Whole days until then (negative once it has ended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_left: Option<i64>,
}

/// Whole days from now until the RFC 3339 time `t` (negative once it has passed).
pub(crate) fn days_until(t: &str, what: &str) -> Result<i64, StationError> {
    crate::time_util::parse_rfc3339(t)
        .map(|t| {
            let now = std::time::SystemTime::now();
            match t.duration_since(now) {
                Ok(d) => (d.as_secs() / 86_400) as i64,
                Err(e) => -((e.duration().as_secs() / 86_400) as i64) - 1,
            }
        })
        .map_err(|e| StationError::Other(format!("{what}: {e}")))
}

/// How many seconds this station's clock is ahead of `theirs` (RFC 3339, read from the centre
/// just now; negative: behind).
pub fn clock_ahead(theirs: &str) -> Result<i64, StationError> {
    let theirs = crate::time_util::parse_rfc3339(theirs)
        .map_err(|e| StationError::Other(format!("the centre's time {theirs:?}: {e}")))?;
    let now = std::time::SystemTime::now();
    Ok(match now.duration_since(theirs) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    })
}

/// The active Document Signer's use (any station: the registry's `document-signer` key), for
/// `centre status` and the GUI's notice to clerks.
pub fn document_signer(st: &Station) -> Result<Option<DocumentSignerUse>, StationError> {
    let Some(key) = st.registry.active_ca_key("document-signer")? else {
        return Ok(None);
    };
    let Some(der) = key.certificate.as_deref() else {
        return Ok(None);
    };
    let info = ca::CertInfo::parse(der)?;
    let days_left = info
        .key_usage_until
        .as_deref()
        .map(|t| days_until(t, "Document Signer privateKeyUsagePeriod"))
        .transpose()?;
    Ok(Some(DocumentSignerUse {
        key: key.label,
        serial: info.serial_hex,
        key_usage_until: info.key_usage_until,
        days_left,
    }))
}

/// The identity certificate (the TLS client certificate at the centre).
#[derive(Debug, Clone, Serialize)]
pub struct IdentityValidity {
    pub subject: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    /// Whole days until notAfter (negative once expired).
    pub days_left: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CentreView {
    /// `status` or `whoami`: which endpoint answered.
    pub source: String,
    pub station: String,
    pub office: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_not_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub numbers_left: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_jobs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_head_seq: Option<u64>,
    /// The newest Document Signer the centre certified for this station (serial).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_signer_serial: Option<String>,
    /// How many seconds this station's clock is ahead of the centre's (negative: behind), when
    /// the centre states its time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_ahead_seconds: Option<i64>,
}

/// The status. `Ok((report, Some(e)))` when the centre could not be reached: the report holds
/// what is known locally and `e` is the [`StationError::CentreUnreachable`] to exit with. A
/// refusal by the centre (e.g. a disabled station, exit 6) is `Err`.
pub fn status(st: &mut Station) -> Result<(CentreStatus, Option<StationError>), StationError> {
    let centre = st.config.centre.as_ref().ok_or_else(|| {
        StationError::invalid(
            "centre",
            "this station is not enrolled with a national centre (station.toml has no [centre] \
             section; a station enrols with `idstation init --centre URL ...`)",
        )
    })?;
    let local = local_view(st)?;
    let mut report = CentreStatus {
        url: centre.url.clone(),
        reachable: false,
        local,
        centre: None,
        anchors: None,
        missing: Vec::new(),
    };
    let client = CentreClient::for_station(st)?;
    let r = ask(&client, &mut report)?;
    if r.is_none() {
        learn_anchors(st, &client, &mut report);
    }
    Ok((report, r))
}

/// The Station CA keys: stored when new and valid; a refusal (audited) or a centre that does
/// not answer `/v1/anchors` goes into `missing`.
fn learn_anchors(st: &mut Station, client: &CentreClient, report: &mut CentreStatus) {
    let actor = registry::Actor::new("idstation", "system", &st.config.station.name);
    match super::anchors::refresh(st, client, &actor) {
        Ok(u) => report.anchors = Some(u),
        Err(e) => report
            .missing
            .push(format!("the centre's Station CA keys: {e}")),
    }
}

/// `GET /v1/status` (or `whoami`) into `report`; `Some(e)` when the centre cannot be reached.
fn ask(
    client: &CentreClient,
    report: &mut CentreStatus,
) -> Result<Option<StationError>, StationError> {
    match client.get::<centre_api::StationStatus>(centre_api::paths::STATUS) {
        Ok(s) => {
            report.reachable = true;
            report.centre = Some(CentreView {
                source: "status".into(),
                station: s.station,
                office: s.office,
                state: s.state,
                identity_not_after: Some(s.identity_not_after),
                numbers_left: Some(s.numbers_left),
                open_jobs: Some(s.open_jobs),
                audit_head_seq: Some(s.audit_head_seq),
                document_signer_serial: s.document_signer_serial,
                clock_ahead_seconds: s.time.as_deref().and_then(|t| clock_ahead(t).ok()),
            });
        }
        Err(StationError::CentreRefused { status: 404, .. }) => {
            let w: centre_api::WhoAmI = match client.get(centre_api::paths::WHOAMI) {
                Ok(w) => w,
                Err(e @ StationError::CentreUnreachable { .. }) => return Ok(Some(e)),
                Err(e) => return Err(e),
            };
            report.reachable = true;
            report.missing.push(format!(
                "the centre does not answer {} (HTTP 404): the numbers left, open jobs and \
                 audit head as the centre sees them are unknown; {} answered instead",
                centre_api::paths::STATUS,
                centre_api::paths::WHOAMI
            ));
            report.centre = Some(CentreView {
                source: "whoami".into(),
                station: w.station,
                office: w.office,
                state: w.state,
                identity_not_after: None,
                numbers_left: None,
                open_jobs: None,
                audit_head_seq: None,
                document_signer_serial: None,
                clock_ahead_seconds: None,
            });
        }
        Err(e @ StationError::CentreUnreachable { .. }) => {
            report
                .missing
                .push("everything the centre knows: it cannot be reached".into());
            return Ok(Some(e));
        }
        Err(e) => return Err(e),
    }
    Ok(None)
}

/// The station's own facts: names, the identity certificate, the numbers left, the Document
/// Signer's key usage period.
fn local_view(st: &Station) -> Result<LocalView, StationError> {
    let der = CentreFiles::new(&st.layout.root).read_identity()?;
    let info = ca::CertInfo::parse(&der)?;
    let days_left = days_until(&info.not_after, "identity certificate notAfter")?;
    let office = st.config.station.office.clone();
    let numbers_left = st
        .registry
        .number_blocks(&office)?
        .iter()
        .map(|b| (u64::from(b.last) + 1).saturating_sub(u64::from(b.next)))
        .sum();
    Ok(LocalView {
        station: st.config.station.name.clone(),
        office,
        identity: IdentityValidity {
            subject: info.subject,
            serial: info.serial_hex,
            not_before: info.not_before,
            not_after: info.not_after,
            days_left,
        },
        numbers_left,
        document_signer: document_signer(st)?,
    })
}
