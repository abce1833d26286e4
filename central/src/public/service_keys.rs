//! What `idcentral ca services` shows: the keys the public services sign with — each CA key's
//! current delegated OCSP responder ([`super::responder_keys`]), the responder keys it replaced,
//! every time-stamping key ([`super::tsa_keys`]) and every Master List Signer key
//! ([`super::master_list`]) — with when `serve` rolls each over — and the newest CSCA Master
//! List.

use crate::db::Prepared;
use deadpool_postgres::Pool;
use serde::Serialize;

use super::{responder_keys, tsa_keys};
use crate::error::Result;

/// The public services' keys.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceKeys {
    pub ocsp_responders: Vec<ResponderView>,
    /// Responder keys a newer key replaced, newest first.
    pub ocsp_replaced_keys: Vec<ReplacedResponderKey>,
    pub tsa_keys: Vec<TsaKeyView>,
    /// A rollover under way or failed: the label recorded before its key was made.
    pub tsa_pending: Option<String>,
    /// Every Master List Signer key, newest (the one that signs) first.
    pub master_list_signers: Vec<MasterListSignerView>,
    /// The newest CSCA Master List.
    pub master_list: Option<MasterListView>,
}

/// A Master List Signer key ([`super::master_list`]).
#[derive(Debug, Clone, Serialize)]
pub struct MasterListSignerView {
    pub key: String,
    /// The CSCA key that certified it.
    pub csca_key: String,
    pub serial: String,
    pub key_usage_until: String,
    pub not_after: String,
    /// When `serve` destroyed it in the HSM (replaced, its certificate ended).
    pub destroyed_at: Option<String>,
}

/// The newest CSCA Master List.
#[derive(Debug, Clone, Serialize)]
pub struct MasterListView {
    pub id: i64,
    pub signer: String,
    /// CSCA certificates listed (self-signed and link certificates).
    pub csca_certificates: i32,
    pub signed_at: String,
    /// SHA-256 of the list's DER, as served.
    pub sha256: String,
}

/// A CA key's current OCSP responder certificate.
#[derive(Debug, Clone, Serialize)]
pub struct ResponderView {
    pub ca_key: String,
    pub key: String,
    pub serial: String,
    pub not_after: String,
    /// From when `serve` replaces it with a new key and certificate (a third of its validity
    /// left).
    pub replaced_from: String,
}

/// A responder key that a newer one replaced ([`responder_keys`]).
#[derive(Debug, Clone, Serialize)]
pub struct ReplacedResponderKey {
    pub ca_key: String,
    pub key: String,
    /// The recorded end of its last certificate: `serve` destroys the key after it.
    pub ended: String,
    /// When `serve` destroyed it in the HSM.
    pub destroyed_at: Option<String>,
}

/// A time-stamping key: the active one signs, retired ones are kept for their tokens.
#[derive(Debug, Clone, Serialize)]
pub struct TsaKeyView {
    pub key: String,
    pub state: String,
    pub serial: Option<String>,
    pub subject: String,
    /// The end of its usage period: no token is signed with it afterwards.
    pub key_usage_until: String,
    /// From when `serve` rolls it over (a twelfth of the profile's usage period before its
    /// end); active key only.
    pub rolls_from: Option<String>,
    /// The end of its certificate's validity: until when its tokens verify.
    pub not_after: String,
    pub created_at: String,
    pub retired_at: Option<String>,
    /// When its private key was destroyed in the HSM (`ca destroy-tsa-key`, dual control).
    pub destroyed_at: Option<String>,
    /// The latest date its private key should be destroyed: 18 months after its certificate
    /// was issued (CA/Browser Forum Code Signing Baseline Requirements §6.3.2).
    pub destroy_by: String,
    pub fingerprint_sha256: String,
}

const UTC: &str = "AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";

/// The responders and TSA keys as recorded, with the centre's `profiles`.
pub async fn service_keys(pool: &Pool, profiles: &profiles::ProfileSet) -> Result<ServiceKeys> {
    let margin = tsa_keys::roll_margin(profiles.cert(tsa_keys::PROFILE)?).as_secs_f64();
    let client = pool.get().await?;
    let responders = client
        .query(
            &format!(
                "SELECT DISTINCT ON (ca_key) ca_key, key_label, serial, to_char(not_after {UTC},
                        to_char((not_after - (not_after - created_at) / $1::int) {UTC}
                 FROM ocsp_responders ORDER BY ca_key, not_after DESC"
            ),
            &[&(responder_keys::ROLL_WHEN_LEFT as i32)],
        )
        .await?
        .iter()
        .map(|r| ResponderView {
            ca_key: r.get(0),
            key: r.get(1),
            serial: hex::encode(r.get::<_, Vec<u8>>(2)),
            not_after: r.get(3),
            replaced_from: r.get(4),
        })
        .collect();
    let ocsp_replaced_keys = client
        .query(
            &format!(
                "SELECT r.ca_key, r.key_label, to_char(max(r.not_after) {UTC},
                        to_char(max(r.destroyed_at) {UTC}
                 FROM ocsp_responders r
                 WHERE r.key_label <> (SELECT n.key_label FROM ocsp_responders n
                                       WHERE n.ca_key = r.ca_key ORDER BY n.not_after DESC LIMIT 1)
                 GROUP BY r.ca_key, r.key_label ORDER BY max(r.not_after) DESC, r.key_label"
            ),
            &[],
        )
        .await?
        .iter()
        .map(|r| ReplacedResponderKey {
            ca_key: r.get(0),
            key: r.get(1),
            ended: r.get(2),
            destroyed_at: r.get(3),
        })
        .collect();
    let rows = client
        .query(
            &format!(
                "SELECT label, state, serial, cert_der, to_char(key_usage_until {UTC},
                        CASE WHEN state = 'active' THEN to_char((key_usage_until
                            - make_interval(secs => $1)) {UTC} END,
                        to_char(not_after {UTC}, to_char(created_at {UTC},
                        to_char(retired_at {UTC}, to_char(destroyed_at {UTC}
                 FROM tsa_keys WHERE state <> 'pending' ORDER BY created_at DESC, label DESC"
            ),
            &[&margin],
        )
        .await?;
    let mut tsa_keys = Vec::with_capacity(rows.len());
    for r in rows {
        let der: Vec<u8> = r.get(3);
        let info = ca::CertInfo::parse(&der)?;
        tsa_keys.push(TsaKeyView {
            key: r.get(0),
            state: r.get(1),
            serial: r.get::<_, Option<Vec<u8>>>(2).map(hex::encode),
            destroy_by: eighteen_months_after(&info.not_before),
            subject: info.subject,
            key_usage_until: r.get(4),
            rolls_from: r.get(5),
            not_after: r.get(6),
            created_at: r.get(7),
            retired_at: r.get(8),
            destroyed_at: r.get(9),
            fingerprint_sha256: ca::fingerprint_sha256(&der)?,
        });
    }
    let master_list_signers = client
        .query(
            &format!(
                "SELECT label, csca_key, serial, to_char(key_usage_until {UTC},
                        to_char(not_after {UTC}, to_char(destroyed_at {UTC}
                 FROM master_list_signers ORDER BY created_at DESC, label DESC"
            ),
            &[],
        )
        .await?
        .iter()
        .map(|r| MasterListSignerView {
            key: r.get(0),
            csca_key: r.get(1),
            serial: hex::encode(r.get::<_, Vec<u8>>(2)),
            key_usage_until: r.get(3),
            not_after: r.get(4),
            destroyed_at: r.get(5),
        })
        .collect();
    let master_list = client
        .query_opt(
            &format!(
                "SELECT id, signer, certificates, to_char(signed_at {UTC}, sha256(der)
                 FROM master_lists ORDER BY id DESC LIMIT 1"
            ),
            &[],
        )
        .await?
        .map(|r| MasterListView {
            id: r.get(0),
            signer: r.get(1),
            csca_certificates: r.get(2),
            signed_at: r.get(3),
            sha256: hex::encode(r.get::<_, Vec<u8>>(4)),
        });
    let tsa_pending = client
        .prepared_opt("SELECT label FROM tsa_keys WHERE state = 'pending'", &[])
        .await?
        .map(|r| r.get(0));
    Ok(ServiceKeys {
        ocsp_responders: responders,
        ocsp_replaced_keys,
        tsa_keys,
        tsa_pending,
        master_list_signers,
        master_list,
    })
}

/// How long before its destroy-by date a retired time-stamping key still in the HSM is reported
/// in `serve`'s log ([`destruction_reminders`]).
pub const REMIND_BEFORE: time::Duration = time::Duration::days(30);

/// A retired time-stamping key still in the HSM whose destroy-by date (its certificate's
/// notBefore + 18 months, CA/Browser Forum Code Signing Baseline Requirements §6.3.2) is less
/// than [`REMIND_BEFORE`] away or past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestructionDue {
    pub key: String,
    pub destroy_by: String,
    pub overdue: bool,
}

/// The retired time-stamping keys due for destruction at `now`: what each `serve` logs as a
/// warning at start and once a day, so the ca-admins file `ca destroy-tsa-key` in time.
pub async fn destruction_reminders(
    pool: &Pool,
    now: time::OffsetDateTime,
) -> Result<Vec<DestructionDue>> {
    let client = pool.get().await?;
    let rows = client
        .prepared_query(
            "SELECT label, cert_der FROM tsa_keys
             WHERE state = 'retired' AND destroyed_at IS NULL ORDER BY label",
            &[],
        )
        .await?;
    let mut keys = Vec::with_capacity(rows.len());
    for r in rows {
        keys.push((r.get(0), ca::CertInfo::parse(r.get(1))?.not_before));
    }
    Ok(due_for_destruction(&keys, now))
}

/// Of `keys` (label, certificate notBefore as RFC 3339), those due at `now`.
fn due_for_destruction(
    keys: &[(String, String)],
    now: time::OffsetDateTime,
) -> Vec<DestructionDue> {
    use time::format_description::well_known::Rfc3339;
    keys.iter()
        .filter_map(|(key, not_before)| {
            let destroy_by = eighteen_months_after(not_before);
            let at = time::OffsetDateTime::parse(&destroy_by, &Rfc3339).ok()?;
            (at - now < REMIND_BEFORE).then(|| DestructionDue {
                key: key.clone(),
                overdue: at <= now,
                destroy_by,
            })
        })
        .collect()
}

/// `t` (RFC 3339) plus 18 calendar months, the day kept where the month has it (else its last
/// day), in the listing's form; `t` itself when it does not parse.
fn eighteen_months_after(t: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    let Ok(at) = time::OffsetDateTime::parse(t, &Rfc3339) else {
        return t.to_owned();
    };
    let months = at.year() * 12 + i32::from(u8::from(at.month())) - 1 + 18;
    let year = months.div_euclid(12);
    let Ok(month) = time::Month::try_from((months.rem_euclid(12) + 1) as u8) else {
        return t.to_owned();
    };
    let day = at.day().min(time::util::days_in_month(month, year));
    match time::Date::from_calendar_date(year, month, day) {
        Ok(date) => {
            let end = at.replace_date(date);
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                end.year(),
                u8::from(end.month()),
                end.day(),
                end.hour(),
                end.minute(),
                end.second()
            )
        }
        Err(_) => t.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{due_for_destruction, eighteen_months_after, DestructionDue};

    #[test]
    fn a_retired_key_is_due_from_a_month_before_its_destroy_by_date() {
        let keys = [
            ("centre-tsa-1".to_owned(), "2025-01-10T08:00:00Z".to_owned()),
            ("centre-tsa-2".to_owned(), "2025-06-20T08:00:00Z".to_owned()),
            ("centre-tsa-3".to_owned(), "2025-07-21T08:00:00Z".to_owned()),
        ];
        let now = time::macros::datetime!(2026-12-01 08:00 UTC);
        // centre-tsa-1: by 2026-07-10, past; centre-tsa-2: by 2026-12-20, in 19 days;
        // centre-tsa-3: by 2027-01-21, in 51 days (not yet).
        assert_eq!(
            due_for_destruction(&keys, now),
            [
                DestructionDue {
                    key: "centre-tsa-1".into(),
                    destroy_by: "2026-07-10T08:00:00Z".into(),
                    overdue: true,
                },
                DestructionDue {
                    key: "centre-tsa-2".into(),
                    destroy_by: "2026-12-20T08:00:00Z".into(),
                    overdue: false,
                },
            ]
        );
    }

    #[test]
    fn eighteen_months_are_calendar_months() {
        assert_eq!(
            eighteen_months_after("2026-12-04T23:13:05Z"),
            "2028-06-04T23:13:05Z"
        );
        assert_eq!(
            eighteen_months_after("2026-08-31T10:00:00Z"),
            "2028-02-29T10:00:00Z"
        );
        assert_eq!(
            eighteen_months_after("2027-08-31T10:00:00Z"),
            "2029-02-28T10:00:00Z"
        );
        assert_eq!(eighteen_months_after("not a time"), "not a time");
    }
}
