//! `idstation centre`: the national centre as this station sees it; the work is in
//! `station::centre`.

use clap::Subcommand;
use station::centre::status::{status, CentreStatus};
use station::error::StationError;
use station::Station;

use super::Ctx;

#[derive(Subcommand)]
pub enum CentreCmd {
    /// Whether the centre answers; the station and office as the centre sees them; the
    /// identity certificate's validity; the numbers left. When the centre cannot be reached,
    /// prints what the station knows and exits 7 at once.
    Status,
    /// Anchor the audit log at the centre now: the events after the head the centre holds, up
    /// to the latest signed checkpoint (issuances do this after each completion; this sends
    /// what an unreachable centre missed).
    PushAudit,
    /// After the centre's Station CA rollover: fetch and check the centre's Station CA keys,
    /// then get a new identity certificate for the same HSM key under the active one (kept only
    /// once the centre accepts it). A ca-admin.
    RenewIdentity {
        #[command(flatten)]
        op: super::OperatorArg,
    },
    /// A new Document Signer: a new key in this station's HSM, certified by the centre's CSCA,
    /// becomes the one that signs EF.SOD; the one before is retired (its certificate stays
    /// valid for the cards it signed). Needed before the active one's private key usage period
    /// ends (`centre status` shows the days left). Safe to run again after an interruption. A
    /// ca-admin.
    RenewDocumentSigner {
        #[command(flatten)]
        op: super::OperatorArg,
    },
    /// The cards of this station's office that the centre flagged for replacement (their chip
    /// data can no longer be authenticated: a Document Signer revoked, or its CSCA withdrawn),
    /// oldest first, so their holders can be called in. Any role; the read is audited here and
    /// at the centre.
    CardsToReplace {
        #[command(flatten)]
        op: super::OperatorArg,
    },
    /// Bring this station's registry up to date with what other offices changed at the centre
    /// about the documents it issued (suspended, resumed, declared lost or revoked there): each
    /// such document changed here as this station's own service would have, audited
    /// `document.mirrored`. Safe to repeat. A clerk or ca-admin.
    Sync {
        #[command(flatten)]
        op: super::OperatorArg,
    },
}

pub fn run(ctx: &Ctx, c: &CentreCmd) -> Result<(), StationError> {
    match c {
        CentreCmd::Status => {
            // The HSM is opened by the client alone (its identity key signs the handshake).
            let mut st = Station::open_read_only(ctx.data_dir)?;
            let (report, unreachable) = status(&mut st)?;
            ctx.print(&report, text)?;
            match unreachable {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
        CentreCmd::RenewIdentity { op } => {
            let roles = [registry::Role::CaAdmin];
            let (mut st, session) =
                ctx.open_as(&op.operator, "renew the centre identity", &roles)?;
            let r = station::centre::anchors::renew_identity(&mut st, &session)?;
            ctx.print(&r, |r| {
                format!(
                    "Identity certificate renewed: serial {} from {} (valid until {}); serial {} stays accepted until it expires\nStation CA keys of the centre: {} (new here: {})\n",
                    r.serial, r.issuer, r.not_after, r.previous_serial,
                    r.anchors.centre_keys.join(", "),
                    if r.anchors.added.is_empty() { "none".into() } else { r.anchors.added.join(", ") }
                )
            })
        }
        CentreCmd::RenewDocumentSigner { op } => {
            let roles = [registry::Role::CaAdmin];
            let (mut st, session) =
                ctx.open_as(&op.operator, "renew the Document Signer", &roles)?;
            let r = station::document_signer::renew(&mut st, &session)?;
            ctx.print(&r, |r| {
                let learnt = match &r.csca_learnt {
                    Some(l) => format!("; CSCA {l} learnt through its link certificate"),
                    None => String::new(),
                };
                format!(
                    "Document Signer {} (serial {}) certified by the centre's {}, usable until {}; {} retired{}\n",
                    r.key, r.serial, r.csca,
                    r.key_usage_until.as_deref().unwrap_or("its certificate expires"),
                    r.previous_key.as_deref().unwrap_or("no key"), learnt
                )
            })
        }
        CentreCmd::CardsToReplace { op } => {
            let roles = station::centre::to_replace::ROLES;
            let (mut st, session) =
                ctx.open_read_only_as(&op.operator, "list the cards to replace", roles)?;
            let list = station::centre::to_replace::list(&mut st, &session)?;
            ctx.print(&list, |l| {
                if l.cards.is_empty() {
                    return format!(
                        "No card of office {} is flagged for replacement\n",
                        l.office
                    );
                }
                let mut s = format!(
                    "{} card(s) of office {} to replace, oldest flag first:\n",
                    l.cards.len(),
                    l.office
                );
                s.extend(
                    l.cards
                        .iter()
                        .map(station::centre::to_replace::CardToReplace::line),
                );
                s
            })
        }
        CentreCmd::Sync { op } => {
            let roles = station::services::mirror::ROLES;
            let (mut st, session) = ctx.open_as(&op.operator, "sync with the centre", roles)?;
            let r = station::services::mirror::sync(&mut st, &session)?;
            ctx.print(&r, |r| {
                let mut s = format!(
                    "{} change(s) of this station's documents at the centre up to {}; {} brought here\n",
                    r.listed,
                    r.until,
                    r.mirrored.len()
                );
                for m in &r.mirrored {
                    s += &format!(
                        "  {} {} -> {} ({}; at {} by {})\n",
                        m.document,
                        m.was,
                        m.now,
                        m.reason.as_deref().unwrap_or("-"),
                        m.changed_at,
                        m.changed_by.as_deref().unwrap_or("?")
                    );
                }
                for (d, why) in &r.skipped {
                    s += &format!("  {d} left as it is: {why}\n");
                }
                for (d, e) in &r.failed {
                    s += &format!("  {d} NOT brought here: {e}\n");
                }
                if let Some(d) = &r.document_signer_renewed {
                    s += &format!(
                        "Document Signer renewed: {} (key usage until {}), {} retired\n",
                        d.key,
                        d.key_usage_until.as_deref().unwrap_or("-"),
                        d.previous_key.as_deref().unwrap_or("-")
                    );
                }
                if let Some(e) = &r.document_signer_failed {
                    s += &format!("Document Signer due for renewal, NOT renewed: {e}\n");
                }
                s
            })?;
            if !r.failed.is_empty() {
                Err(StationError::Other(format!(
                    "{} document(s) could not be brought up to date; the next sync tries them again",
                    r.failed.len()
                )))
            } else if let Some(e) = &r.document_signer_failed {
                Err(StationError::Other(format!(
                    "the Document Signer is due for renewal and its renewal failed ({e}); the next \
                     sync tries again"
                )))
            } else {
                Ok(())
            }
        }
        CentreCmd::PushAudit => {
            let st = Station::open_read_only(ctx.data_dir)?;
            let p = station::centre::audit_push::push(&st)?;
            ctx.print(&p, |p| {
                format!(
                    "Audit log anchored at the centre up to event {} ({} event(s) sent; it held {} before)\n",
                    p.head_seq, p.events, p.from_seq
                )
            })
        }
    }
}

/// Days of Document Signer key usage left from which `centre status` asks for a renewal.
const RENEW_WITHIN_DAYS: i64 = 14;

fn text(r: &CentreStatus) -> String {
    let l = &r.local;
    let mut s = format!(
        "Centre {}: {}\n",
        r.url,
        if r.reachable {
            "reachable"
        } else {
            "NOT reachable"
        }
    );
    s += &format!(
        "Station {} of office {} (this station)\n",
        l.station, l.office
    );
    if let Some(c) = &r.centre {
        s += &format!(
            "The centre knows it as station {} of office {}: {}\n",
            c.station, c.office, c.state
        );
        if let Some(n) = c.numbers_left {
            s += &format!("Numbers left at the centre: {n}\n");
        }
        if let Some(n) = c.open_jobs {
            s += &format!("Open jobs at the centre: {n}\n");
        }
        if let Some(n) = c.audit_head_seq {
            s += &format!("Audit events the centre holds: up to {n}\n");
        }
        match c.clock_ahead_seconds {
            Some(a) if a.abs() <= 2 => s += "This station's clock agrees with the centre's\n",
            Some(a) => {
                let how = if a > 0 { "ahead of" } else { "behind" };
                s += &format!(
                    "This station's clock is {} s {how} the centre's{}\n",
                    a.abs(),
                    if a.abs() > 86_400 {
                        ": set it (the station does not renew its Document Signer by itself by \
                         a clock a day or more off)"
                    } else if a.abs() > 300 {
                        ": set it (the times this station signs and records are off)"
                    } else {
                        ""
                    }
                );
            }
            None => {}
        }
        let local_ds = l.document_signer.as_ref().map(|d| d.serial.as_str());
        if let Some(serial) = c.document_signer_serial.as_deref() {
            if Some(serial) != local_ds {
                s += &format!(
                    "The centre certified a newer Document Signer (serial {serial}) that this \
                     station has not taken into use: a renewal was interrupted; run `idstation \
                     centre renew-document-signer` again to finish it\n"
                );
            }
        }
    }
    s += &format!(
        "Identity certificate {} (serial {}) valid {} to {} ({} days left)\n",
        l.identity.subject,
        l.identity.serial,
        l.identity.not_before,
        l.identity.not_after,
        l.identity.days_left
    );
    s += &format!(
        "Numbers left in the local number block: {}\n",
        l.numbers_left
    );
    if let Some(ds) = &l.document_signer {
        s += &match (&ds.key_usage_until, ds.days_left) {
            (Some(until), Some(d)) if d >= RENEW_WITHIN_DAYS => format!(
                "Document Signer {} (serial {}) signs EF.SOD until {until} ({d} days left)\n",
                ds.key, ds.serial
            ),
            (Some(until), Some(d)) if d >= 0 => format!(
                "Document Signer {} (serial {}) signs EF.SOD until {until} ({d} days left): \
                 the station renews it by itself at its next `centre sync` or issuance (unless \
                 `[centre] renew_document_signer_days = 0`), or a ca-admin now with `idstation \
                 centre renew-document-signer`\n",
                ds.key, ds.serial
            ),
            (Some(until), _) => format!(
                "Document Signer {} (serial {}): its key usage period ended {until}, so no card \
                 can be issued (ICAO Doc 9303-12 Table 1) until a ca-admin runs `idstation \
                 centre renew-document-signer`\n",
                ds.key, ds.serial
            ),
            (None, _) => format!(
                "Document Signer {} (serial {}), no key usage period stated\n",
                ds.key, ds.serial
            ),
        };
    }
    if let Some(a) = &r.anchors {
        s += &format!(
            "Station CA keys of the centre: {} (server certificate under {}){}\n",
            a.centre_keys.join(", "),
            a.server_issuer,
            if a.added.is_empty() {
                String::new()
            } else {
                format!("; stored now: {}", a.added.join(", "))
            }
        );
        if !a.cscas_withdrawn.is_empty() {
            s += &format!(
                "CSCA keys the centre withdrew from its Master List, no longer trusted here: {}\n",
                a.cscas_withdrawn.join(", ")
            );
        }
    }
    for m in &r.missing {
        s += &format!("Unknown: {m}\n");
    }
    s
}
