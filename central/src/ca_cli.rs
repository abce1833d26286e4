//! `idcentral ca …`: the centre's CA keys and their rotation under dual control (the library
//! side is `central::rotation`). Part of the `idcentral` binary.

use std::path::PathBuf;

use central::operators::Role;
use central::public::service_keys::ServiceKeys;
use central::revocation::{self, ReissueItem, Revocation};
use central::rotation::{self, Executed, Execution, KeyView, RequestView};
use central::{CentralError, CentreConfig};
use clap::Subcommand;

use super::{checkpoint_after, log_in, print, Cli};

#[derive(Subcommand)]
pub enum CaCmd {
    /// Every CA key with its state (active, retired, revoked), subject and expiry.
    List {
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// The keys the public services sign with: each CA key's OCSP responder and the
    /// time-stamping keys, with when `serve` rolls each over.
    Services {
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// File a request to replace the active key of a CA; a second ca-admin approves it.
    /// `station` is the Station CA (docs/centre.md "Station CA rollover"), `root` the National
    /// Root ("National Root rollover").
    Rotate {
        #[arg(long, value_parser = ["esign", "csca", "station", "root"])]
        ca: String,
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// File a request to revoke a CA certificate in an emergency (docs/centre.md "Emergency: CA
    /// certificate revocation"); a second ca-admin approves it. Default key: the active one.
    RevokeCa {
        #[arg(long, value_parser = ["esign", "csca", "station", "root"])]
        ca: String,
        #[arg(long, value_name = "LABEL")]
        key: Option<String>,
        /// RFC 5280 reason: keyCompromise, cACompromise, affiliationChanged, superseded,
        /// cessationOfOperation.
        #[arg(long)]
        reason: String,
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// File a request to destroy a retired time-stamping key in the HSM once its usage period
    /// is over (the key deletion ceremony of docs/relying-parties.md "Time-stamps"); a second
    /// ca-admin approves it. The certificate stays: the key's tokens verify with it.
    DestroyTsaKey {
        #[arg(long, value_name = "LABEL")]
        key: String,
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// File a request to withdraw a retired CSCA key from the CSCA Master List (a self-signed
    /// CSCA cannot be revoked; docs/relying-parties.md "CSCA Master List"); a second ca-admin
    /// approves it, and `serve` signs the next list without the key.
    WithdrawCsca {
        #[arg(long, value_name = "LABEL")]
        key: String,
        /// RFC 5280 reason: keyCompromise, cACompromise, affiliationChanged, superseded,
        /// cessationOfOperation.
        #[arg(long)]
        reason: String,
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// Holder certificates to issue again after a CA revocation (each holder read audited).
    ReissueList {
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// Approve request N (not your own): the approval executes it.
    Approve {
        id: i64,
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// Refuse (veto) request N; the requester may withdraw their own.
    Refuse {
        id: i64,
        #[arg(long)]
        note: Option<String>,
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// Every request with its state.
    Requests {
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// Finish approved requests a crash interrupted.
    Recover {
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// Write the newest CSCA Master List (ICAO 9303-12 §9, DER) to FILE (created new), e.g. for
    /// an upload to the ICAO PKD; it is checked against the centre's CSCA certificates first.
    MasterList {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// Write a CA key's certificate and its link certificates as PEM files into DIR (created).
    Certs {
        #[arg(long, value_name = "LABEL")]
        key: String,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
}

pub async fn run(cli: &Cli, cfg: &CentreConfig, cc: &CaCmd) -> Result<(), CentralError> {
    let pool = central::db::pool(&cfg.database)?;
    let admin = [Role::CaAdmin];
    let readers = [Role::CaAdmin, Role::Auditor];
    match cc {
        CaCmd::List { operator } => {
            log_in(&pool, cfg, operator, "list CA keys", &readers).await?;
            print(cli.json, &rotation::keys(&pool).await?, |k| keys_text(k))
        }
        CaCmd::Services { operator } => {
            log_in(&pool, cfg, operator, "list service keys", &readers).await?;
            print(
                cli.json,
                &central::public::service_keys::service_keys(
                    &pool,
                    &central::public::centre_profiles(cfg.public.base_url.as_deref())?,
                )
                .await?,
                services_text,
            )
        }
        CaCmd::Requests { operator } => {
            log_in(&pool, cfg, operator, "list CA requests", &readers).await?;
            print(cli.json, &rotation::list(&pool).await?, |l| {
                l.iter().map(request_text).collect()
            })
        }
        CaCmd::Rotate { .. }
        | CaCmd::RevokeCa { .. }
        | CaCmd::DestroyTsaKey { .. }
        | CaCmd::WithdrawCsca { .. } => file_request(cli, cfg, &pool, cc).await,
        CaCmd::ReissueList { operator } => {
            let s = log_in(
                &pool,
                cfg,
                operator,
                "list certificates to re-issue",
                &readers,
            )
            .await?;
            let items = revocation::reissue_list(&pool, &s).await?;
            checkpoint_after(cfg, &pool, "holder.shown").await;
            print(cli.json, &items, |i| reissue_text(i))
        }
        CaCmd::Approve { id, operator } => {
            let s = log_in(&pool, cfg, operator, "approve CA requests", &admin).await?;
            let store: std::sync::Arc<dyn hsm::KeyStore> = hsm::open(&cfg.hsm)?.into();
            let profiles = central::public::centre_profiles(cfg.public.base_url.as_deref())?;
            let (r, done) = rotation::approve(&pool, store.as_ref(), &profiles, &s, *id).await?;
            if r.ca == "csca" {
                resign_master_list(&pool, &store, &profiles, cfg).await;
            }
            checkpoint_after(cfg, &pool, "ca.request.executed").await;
            let out = serde_json::json!({ "request": r, "executed": done });
            print(cli.json, &out, |_| executed_text(&done))
        }
        CaCmd::Refuse { id, note, operator } => {
            let s = log_in(&pool, cfg, operator, "refuse CA requests", &admin).await?;
            let r = rotation::refuse(&pool, &s, *id, note.as_deref()).await?;
            checkpoint_after(cfg, &pool, "ca.request.refused").await;
            print(cli.json, &r, |r| format!("Refused CA request {}\n", r.id))
        }
        CaCmd::Recover { operator } => {
            let s = log_in(&pool, cfg, operator, "recover CA requests", &admin).await?;
            let store: std::sync::Arc<dyn hsm::KeyStore> = hsm::open(&cfg.hsm)?.into();
            let profiles = central::public::centre_profiles(cfg.public.base_url.as_deref())?;
            let done = rotation::recover(&pool, store.as_ref(), &profiles, &s).await?;
            let csca = done.iter().any(|d| match d {
                Executed::Rotation(r) => r.ca == "csca",
                Executed::Withdrawal(_) => true,
                _ => false,
            });
            if csca {
                resign_master_list(&pool, &store, &profiles, cfg).await;
            }
            checkpoint_after(cfg, &pool, "ca.recovered").await;
            print(cli.json, &done, |d| {
                if d.is_empty() {
                    "Nothing to recover\n".into()
                } else {
                    d.iter().map(executed_text).collect()
                }
            })
        }
        CaCmd::MasterList { out, operator } => {
            log_in(
                &pool,
                cfg,
                operator,
                "export the CSCA Master List",
                &readers,
            )
            .await?;
            let written = write_master_list(&pool, out).await?;
            print(cli.json, &written, |w| {
                format!(
                    "Wrote {} ({} CSCA certificates, signed {})\n",
                    w["file"].as_str().unwrap_or_default(),
                    w["csca_certificates"],
                    w["signed_at"].as_str().unwrap_or_default()
                )
            })
        }
        CaCmd::Certs { key, out, operator } => {
            log_in(&pool, cfg, operator, "export CA certificates", &readers).await?;
            let files = write_certs(&rotation::certificates(&pool, key).await?, out)?;
            print(cli.json, &files, |f| {
                f.iter().map(|p| format!("Wrote {p}\n")).collect()
            })
        }
    }
}

/// The commands that file a CA request (a second ca-admin approves it).
async fn file_request(
    cli: &Cli,
    cfg: &CentreConfig,
    pool: &deadpool_postgres::Pool,
    cc: &CaCmd,
) -> Result<(), CentralError> {
    let admin = [Role::CaAdmin];
    match cc {
        CaCmd::Rotate { ca, operator } => {
            let s = log_in(pool, cfg, operator, "file CA requests", &admin).await?;
            let r = rotation::request_rotation(pool, &s, ca).await?;
            checkpoint_after(cfg, pool, "ca.request.created").await;
            print(cli.json, &r, |r| {
                format!(
                    "Filed CA request {}: rotate {} (from {}); a second ca-admin approves it before {}\n",
                    r.id, r.ca, r.from_key, r.expires_at
                )
            })
        }
        CaCmd::RevokeCa {
            ca,
            key,
            reason,
            operator,
        } => {
            let s = log_in(pool, cfg, operator, "file CA requests", &admin).await?;
            let r = rotation::request_revocation(pool, &s, ca, key.as_deref(), reason).await?;
            checkpoint_after(cfg, pool, "ca.request.created").await;
            print(cli.json, &r, |r| {
                format!(
                    "Filed CA request {}: revoke-ca {} {} ({}); a second ca-admin approves it before {}\n",
                    r.id, r.ca, r.from_key, reason, r.expires_at
                )
            })
        }
        CaCmd::DestroyTsaKey { key, operator } => {
            let s = log_in(pool, cfg, operator, "file CA requests", &admin).await?;
            let r = rotation::request_tsa_key_destruction(pool, &s, key).await?;
            checkpoint_after(cfg, pool, "ca.request.created").await;
            print(cli.json, &r, |r| {
                format!(
                    "Filed CA request {}: destroy time-stamping key {} in the HSM; a second ca-admin approves it before {}\n",
                    r.id, r.from_key, r.expires_at
                )
            })
        }
        CaCmd::WithdrawCsca {
            key,
            reason,
            operator,
        } => {
            let s = log_in(pool, cfg, operator, "file CA requests", &admin).await?;
            let r = rotation::request_csca_withdrawal(pool, &s, key, reason).await?;
            checkpoint_after(cfg, pool, "ca.request.created").await;
            print(cli.json, &r, |r| {
                format!(
                    "Filed CA request {}: withdraw CSCA key {} from the Master List ({reason}); a second ca-admin approves it before {}\n",
                    r.id, r.from_key, r.expires_at
                )
            })
        }
        _ => Err(CentralError::Other(
            "not a command that files a CA request".into(),
        )),
    }
}

/// After an executed CSCA request: the CSCA Master List signed again at once (a `serve` would
/// at its next refresh); a failure is said, not fatal.
async fn resign_master_list(
    pool: &deadpool_postgres::Pool,
    store: &std::sync::Arc<dyn hsm::KeyStore>,
    profiles: &profiles::ProfileSet,
    cfg: &CentreConfig,
) {
    let name = &cfg.centre.name;
    if let Err(e) = central::public::master_list::sign_now(pool, store, profiles, name).await {
        eprintln!(
            "The CSCA Master List was not signed again now ({e}); `idcentral serve` signs it \
             within 30 seconds"
        );
    }
}

/// The newest Master List written to `out`, after `ca::master_list::verify` against every CSCA
/// certificate the centre has: what was written.
async fn write_master_list(
    pool: &deadpool_postgres::Pool,
    out: &std::path::Path,
) -> Result<serde_json::Value, CentralError> {
    use central::public::master_list;
    let (der, signed_at) = master_list::newest(pool)
        .await?
        .ok_or_else(|| CentralError::NotFound("no CSCA Master List has been signed yet".into()))?;
    let cscas = master_list::csca_keys(pool).await?;
    let content = ca::master_list::verify(&der, &cscas)?;
    if let Some(rule) = master_list::stale(pool, &content.certificates).await? {
        return Err(CentralError::Conflict(rule));
    }
    registry::files::write_new(out, &der).map_err(|e| CentralError::Io {
        path: out.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(serde_json::json!({
        "file": out.display().to_string(),
        "csca_certificates": content.certificates.len(),
        "signed_at": central::public::http_date(signed_at),
    }))
}

fn write_certs(
    certs: &[(String, Vec<u8>)],
    out: &std::path::Path,
) -> Result<Vec<String>, CentralError> {
    let io = |path: &std::path::Path, e: std::io::Error| CentralError::Io {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    registry::files::create_dir_private(out).map_err(|e| io(out, e))?;
    let mut written = Vec::new();
    for (name, der) in certs {
        let path = out.join(format!("{name}.pem"));
        registry::files::write_new(&path, ca::cert_pem(der)?.as_bytes())
            .map_err(|e| io(&path, e))?;
        written.push(path.display().to_string());
    }
    Ok(written)
}

fn keys_text(keys: &[KeyView]) -> String {
    keys.iter()
        .map(|k| {
            let withdrawn = k
                .withdrawn_at
                .as_deref()
                .map(|at| format!("\n            withdrawn from the Master List {at}"))
                .unwrap_or_default();
            format!(
                "{:<11} {:<13} {:<8} until {}  {}\n            SHA256 Fingerprint={}{withdrawn}\n",
                k.ca, k.label, k.state, k.not_after, k.subject, k.fingerprint_sha256
            )
        })
        .collect()
}

fn services_text(s: &ServiceKeys) -> String {
    let mut out = String::from("OCSP responders (one per CA key):\n");
    for r in &s.ocsp_responders {
        out += &format!(
            "  {:<13} key {:<18} certificate {} until {} (a new key from {})\n",
            r.ca_key, r.key, r.serial, r.not_after, r.replaced_from
        );
    }
    let (destroyed, waiting): (Vec<_>, Vec<_>) = s
        .ocsp_replaced_keys
        .iter()
        .partition(|k| k.destroyed_at.is_some());
    if !waiting.is_empty() {
        out +=
            "Replaced OCSP responder keys still in the HSM (serve destroys each after its end):\n";
        for k in waiting {
            out += &format!("  {:<13} key {:<18} ends {}\n", k.ca_key, k.key, k.ended);
        }
    }
    if !destroyed.is_empty() {
        out += &format!(
            "Replaced OCSP responder keys destroyed: {}\n",
            destroyed.len()
        );
    }
    out += "Time-stamping keys (the active one signs):\n";
    if let Some(p) = &s.tsa_pending {
        out += &format!("  {p:<13} pending: a rollover under way, or failed (see the log)\n");
    }
    for t in &s.tsa_keys {
        let state = match (&t.rolls_from, &t.retired_at, &t.destroyed_at) {
            (Some(from), _, _) => format!("active, rolls over from {from}"),
            (None, Some(at), Some(gone)) => format!("retired {at}, key destroyed {gone}"),
            (None, Some(at), None) => format!(
                "retired {at}, key in the HSM: destroy it by {} (ca destroy-tsa-key)",
                t.destroy_by
            ),
            (None, None, _) => t.state.clone(),
        };
        out += &format!(
            "  {:<13} {state}\n    signs until {}, tokens verify until {}  {}\n    SHA256 Fingerprint={}\n",
            t.key, t.key_usage_until, t.not_after, t.subject, t.fingerprint_sha256
        );
    }
    out += "CSCA Master List signers (the newest signs):\n";
    for (i, m) in s.master_list_signers.iter().enumerate() {
        let state = match (&m.destroyed_at, i) {
            (Some(at), _) => format!("replaced, key destroyed {at}"),
            (None, 0) => format!("signs until {}", m.key_usage_until),
            (None, _) => format!("replaced, key destroyed after {}", m.not_after),
        };
        out += &format!(
            "  {:<13} certified by {}  certificate {} until {}  {state}\n",
            m.key, m.csca_key, m.serial, m.not_after
        );
    }
    match &s.master_list {
        Some(l) => {
            out += &format!(
                "CSCA Master List {}: {} CSCA certificates, signed by {} at {}, SHA-256 {}\n",
                l.id, l.csca_certificates, l.signer, l.signed_at, l.sha256
            )
        }
        None => out += "CSCA Master List: none signed yet\n",
    }
    out
}

fn request_text(r: &RequestView) -> String {
    let settled = match (&r.approved_by, &r.refused_by) {
        (Some(a), _) => format!(", approved by {a}"),
        (_, Some(f)) => format!(", refused by {f}"),
        _ => String::new(),
    };
    let new = r
        .new_key
        .as_deref()
        .map(|k| format!(" → {k}"))
        .unwrap_or_default();
    let reason = r
        .reason
        .as_deref()
        .map(|k| format!(" ({k})"))
        .unwrap_or_default();
    format!(
        "{:>4}  {:<8} {} {}{new}  {}{reason}  requested by {} at {}{settled}\n",
        r.id, r.state, r.kind, r.ca, r.from_key, r.requested_by, r.created_at
    )
}

fn executed_text(d: &Executed) -> String {
    match d {
        Executed::Rotation(r) => execution_text(r),
        Executed::Revocation(r) => revocation_text(r),
        Executed::Destruction(d) => format!(
            "Executed CA request {}: time-stamping key {} destroyed in the HSM at {} (requested by {}, approved by {}){}\n  its certificate is kept: SHA256 Fingerprint={}\n",
            d.request,
            d.key,
            d.destroyed_at,
            d.requested_by,
            d.approved_by,
            if d.removed_from_hsm { "" } else { "; the HSM no longer had it" },
            d.fingerprint_sha256
        ),
        Executed::Withdrawal(w) => {
            let mut t = format!(
                "Executed CA request {}: CSCA key {} withdrawn from the Master List ({}) at {} (requested by {}, approved by {})\n",
                w.request, w.key, w.reason, w.withdrawn_at, w.requested_by, w.approved_by
            );
            if !w.document_signers.is_empty() {
                t += &format!(
                    "  Document Signers it issued: {}; each station stops issuing once it reads the centre's anchors (`idstation centre status`) until a ca-admin there runs `idstation centre renew-document-signer`\n",
                    w.document_signers.join(", ")
                );
            }
            if w.cards_to_replace > 0 {
                let (cards, are) = if w.cards_to_replace == 1 {
                    ("card", "is")
                } else {
                    ("cards", "are")
                };
                t += &format!(
                    "  {} {cards} whose EF.SOD they signed {are} flagged for replacement (station cards-to-replace)\n",
                    w.cards_to_replace
                );
            }
            t
        }
    }
}

fn revocation_text(r: &Revocation) -> String {
    format!(
        "Executed CA request {}: {} {} revoked ({}) at {}\n  serial {} on the CRL of {}\n  {} holder certificates flagged for re-issuance (ca reissue-list)\n",
        r.request, r.ca, r.key, r.reason, r.revoked_at, r.serial, r.parent_key, r.flagged
    )
}

fn reissue_text(items: &[ReissueItem]) -> String {
    if items.is_empty() {
        return "No holder certificate to re-issue\n".into();
    }
    items
        .iter()
        .map(|i| {
            format!(
                "{}  {} {}  document {} ({})  {} {} serial {}  issued by {} (CA request {})\n",
                i.pinfl,
                i.surname,
                i.given_names,
                i.document,
                i.document_state.as_deref().unwrap_or("not completed"),
                i.slot,
                i.profile,
                i.serial,
                i.issuer_key,
                i.request
            )
        })
        .collect()
}

fn execution_text(d: &Execution) -> String {
    let mut s = format!(
        "Executed CA request {}: {} {} active, {} {}\n  {}\n  SHA256 Fingerprint={}\n",
        d.request, d.ca, d.new_key, d.old_key, d.old_state, d.subject, d.certificate_sha256
    );
    if !d.links.is_empty() {
        s += &format!("  link certificates: {}\n", d.links.join(", "));
    }
    s
}
