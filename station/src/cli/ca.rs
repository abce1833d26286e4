//! `idstation ca …`: the CA hierarchy, certificates and CRLs issued by hand, and the
//! dual-control requests (rotation, CA revocation) with their approvals (docs/rotation.md).
//! The work is in `station::ca_admin` and `station::rotation`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use registry::Role;
use station::ca_admin::{self, KeySource, SubjectFile};
use station::error::StationError;
use station::hierarchy::CaSummary;
use station::rotation::{self, Approval, RequestView};
use station::Station;

use super::{Ctx, OperatorArg};

#[derive(Subcommand)]
pub enum CaCmd {
    /// The CA hierarchy: certificates, fingerprints, validity, key labels and states.
    Show,
    /// Issue an end-entity certificate from a CSR or a public key.
    Issue(IssueArgs),
    /// Sign and publish CRLs: one per CA key that must publish one (each active key, each retired
    /// key with unexpired certificates), or with --key that key's alone.
    Crl(CrlArgs),
    /// Request a key rotation of a CA (dual control: runs once other ca-admins approve).
    Rotate {
        /// esign, root, document-signer (alias ds) or csca.
        #[arg(long, value_parser = ["esign", "root", "document-signer", "ds", "csca"])]
        ca: String,
        /// Why the key is rotated; recorded with the request (and its audit event).
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        op: OperatorArg,
    },
    /// Request the revocation of a CA certificate (dual control), e.g. after a key compromise.
    RevokeCa {
        #[arg(long, value_parser = ["esign"])]
        ca: String,
        /// HSM label of the CA key (default: the CA's active key).
        #[arg(long)]
        key: Option<String>,
        /// RFC 5280 CRLReason, e.g. keyCompromise or cACompromise.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        op: OperatorArg,
    },
    /// Approve a pending CA request; the approval that reaches the quorum executes it.
    Approve {
        /// Request number (see `ca requests`).
        request: i64,
        #[command(flatten)]
        op: OperatorArg,
    },
    /// Refuse (veto) a pending CA request.
    Refuse {
        /// Request number (see `ca requests`).
        request: i64,
        /// Why (recorded in the audit log).
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        op: OperatorArg,
    },
    /// Dual-control CA requests and their state.
    Requests,
    /// Holder certificates to re-issue because their issuing CA was revoked (clerk or
    /// ca-admin; each holder's read is audited).
    ReissueList {
        #[command(flatten)]
        op: OperatorArg,
    },
}

#[derive(Args)]
pub struct IssueArgs {
    /// PKCS#10 request (DER or PEM); its signature is verified (proof of possession).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "spki",
        required_unless_present = "spki"
    )]
    csr: Option<PathBuf>,
    /// SubjectPublicKeyInfo (DER or PEM) of the key to certify.
    #[arg(long, value_name = "FILE")]
    spki: Option<PathBuf>,
    /// Holder subject as JSON {pinfl, surname, given_names[, common_name, country]}; with
    /// --csr it defaults to the request's subject.
    #[arg(long, value_name = "FILE", required_unless_present = "csr")]
    subject: Option<PathBuf>,
    /// Certificate profile, e.g. holder-auth or holder-sign.
    #[arg(long)]
    profile: String,
    /// Where to write the certificate (PEM).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    op: OperatorArg,
}

#[derive(Args)]
pub struct CrlArgs {
    /// With --key: where to write that key's CRL (DER; PEM when the name ends in .pem).
    #[arg(
        long,
        value_name = "FILE",
        requires = "key",
        conflicts_with = "out_dir"
    )]
    out: Option<PathBuf>,
    /// Without --key: a new folder that receives every published CRL as LABEL.crl.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// HSM label of the one CA key whose CRL to sign. Without it, every CA key that must
    /// publish one does (each active key, and each retired key with unexpired certificates).
    #[arg(long)]
    key: Option<String>,
    #[command(flatten)]
    op: OperatorArg,
}

pub fn run(ctx: &Ctx, cmd: &CaCmd) -> Result<(), StationError> {
    match cmd {
        CaCmd::Show => show(ctx),
        CaCmd::Issue(a) => issue(ctx, a),
        CaCmd::Crl(a) => crl(ctx, a),
        CaCmd::Rotate { ca, note, op } => {
            let (mut st, session) =
                ctx.open_as(&op.operator, "request CA key rotations", &[Role::CaAdmin])?;
            let r = rotation::request_rotation(&mut st, &session, ca, note.as_deref())?;
            ctx.print(&r, |r| request_text(r, "Filed"))
        }
        CaCmd::RevokeCa {
            ca,
            key,
            reason,
            op,
        } => {
            let (mut st, session) =
                ctx.open_as(&op.operator, "request CA revocations", &[Role::CaAdmin])?;
            let r = rotation::request_ca_revocation(&mut st, &session, ca, key.as_deref(), reason)?;
            ctx.print(&r, |r| request_text(r, "Filed"))
        }
        CaCmd::Approve { request, op } => {
            let (mut st, session) =
                ctx.open_as(&op.operator, "approve CA requests", &[Role::CaAdmin])?;
            let r = rotation::approve(&mut st, &session, *request)?;
            ctx.print(&r, approval_text)
        }
        CaCmd::Refuse { request, note, op } => {
            let (mut st, session) =
                ctx.open_as(&op.operator, "refuse CA requests", &[Role::CaAdmin])?;
            let r = rotation::refuse(&mut st, &session, *request, note.as_deref())?;
            let verb = if r.state == rotation::WITHDRAWN {
                "Withdrawn"
            } else {
                "Refused"
            };
            ctx.print(&r, |r| request_text(r, verb))
        }
        CaCmd::Requests => requests(ctx),
        CaCmd::ReissueList { op } => reissue_list(ctx, op),
    }
}

fn show(ctx: &Ctx) -> Result<(), StationError> {
    let st = Station::open_read_only(ctx.data_dir)?;
    let cas = station::hierarchy::summaries(&st.registry, &st.layout)?;
    ctx.print(&cas, |c| summaries_text(c))
}

fn read_input(path: &Path, field: &str) -> Result<Vec<u8>, StationError> {
    std::fs::read(path)
        .map_err(|e| StationError::invalid(field, format!("cannot read {}: {e}", path.display())))
}

fn issue(ctx: &Ctx, a: &IssueArgs) -> Result<(), StationError> {
    let source = match (&a.csr, &a.spki) {
        (Some(f), _) => KeySource::Csr(read_input(f, "csr")?),
        (None, Some(f)) => KeySource::Spki(read_input(f, "spki")?),
        (None, None) => {
            return Err(StationError::invalid(
                "csr",
                "give --csr FILE or --spki FILE",
            ))
        }
    };
    let file = a.subject.as_deref().map(SubjectFile::load).transpose()?;
    let (mut st, session) = ctx.open_as(&a.op.operator, "issue certificates", &[Role::CaAdmin])?;
    let subject = ca_admin::holder_subject(&st, file, &source)?;
    let r = ca_admin::issue(&mut st, &session, &a.profile, source, &subject, &a.out)?;
    ctx.print(&r, |r| {
        format!(
            "Issued {} certificate serial {} for {:?} by {}, valid {} .. {}, written to {}\n",
            r.profile,
            r.serial,
            r.subject,
            r.issuer_key,
            r.not_before,
            r.not_after,
            r.out.display()
        )
    })
}

fn crl(ctx: &Ctx, a: &CrlArgs) -> Result<(), StationError> {
    let (mut st, session) = ctx.open_as(&a.op.operator, "publish CRLs", &[Role::CaAdmin])?;
    let text = |r: &ca_admin::CrlReport| {
        format!(
            "CRL number {} of {} lists {} revoked certificate(s); this update {}, next update {}; written to {}\n",
            r.crl_number,
            r.issuer_key,
            r.revoked,
            r.this_update,
            r.next_update,
            r.out.display()
        )
    };
    match &a.key {
        // One key: its report (an object in --json).
        Some(key) => {
            let out = match &a.out {
                Some(o) => o.clone(),
                None => st.layout.crl(key),
            };
            let r = ca_admin::crl(&mut st, &session, Some(key), &out)?;
            ctx.print(&r, text)
        }
        // Every key that publishes: one report each (an array in --json).
        None => {
            let rs = ca_admin::crl_all(&mut st, &session, a.out_dir.as_deref())?;
            ctx.print(&rs, |rs| rs.iter().map(text).collect())
        }
    }
}

fn requests(ctx: &Ctx) -> Result<(), StationError> {
    let mut st = Station::open_read_only(ctx.data_dir)?;
    let actor = rotation::system_actor(&st);
    let r = rotation::list_requests(&mut st, &actor)?;
    ctx.print(&r, |rs| {
        rs.iter().map(|r| request_text(r, "")).collect::<String>()
    })
}

fn reissue_list(ctx: &Ctx, op: &OperatorArg) -> Result<(), StationError> {
    let (mut st, session) = ctx.open_read_only_as(
        &op.operator,
        "read the re-issuance list",
        &[Role::Clerk, Role::CaAdmin],
    )?;
    let r = rotation::reissue_list(&mut st, &session)?;
    ctx.print(&r, |rs| {
        if rs.is_empty() {
            return "No certificates need re-issuance\n".into();
        }
        rs.iter()
            .map(|e| {
                format!(
                    "{}\t{} {}\t{}\t{}\t{} by {}\t{}\n",
                    e.pinfl,
                    e.given_names,
                    e.surname,
                    e.document.as_deref().unwrap_or("-"),
                    e.purpose,
                    e.serial,
                    e.issuer_key,
                    e.status
                )
            })
            .collect()
    })
}

/// `ca approve`'s text: the request, and what ran if this approval reached the quorum.
fn approval_text(r: &Approval) -> String {
    let mut s = request_text(&r.request, "Approved");
    if let Some(e) = r
        .executed
        .as_ref()
        .filter(|e| e.certificate_sha256.is_empty())
    {
        s += &format!("Executed: {} {}: {}\n", e.kind, e.ca, e.key);
    } else if let Some(e) = &r.executed {
        s += &format!(
            "Executed: {} {} -> {}{} (certificate SHA-256 {}), {:.2} s\n",
            e.kind,
            e.ca,
            e.key,
            e.old_key
                .as_deref()
                .map(|o| format!(", {o} retired"))
                .unwrap_or_default(),
            e.certificate_sha256,
            e.seconds
        );
        if e.reissue_required > 0 {
            s += &format!(
                "{} holder certificate(s) flagged for re-issuance (see `ca reissue-list`)\n",
                e.reissue_required
            );
        }
        for f in &e.files {
            s += &format!("  wrote {}\n", f.display());
        }
    }
    s
}

/// One CA request on one line, led by `verb` ("Filed", "Approved", …) unless it is empty.
pub fn request_text(r: &RequestView, verb: &str) -> String {
    let what = match (r.kind.as_str(), &r.key, &r.reason) {
        ("revoke-ca", Some(k), Some(reason)) => format!("revoke-ca {} {k} ({reason})", r.ca),
        (kind, Some(k), _) => format!("{kind} {} (from {k})", r.ca),
        (kind, None, _) => format!("{kind} {}", r.ca),
    };
    let what = match &r.note {
        Some(n) => format!("{what} \"{n}\""),
        None => what,
    };
    let lead = if verb.is_empty() {
        String::new()
    } else {
        format!("{verb} ")
    };
    format!(
        "{lead}CA request {}: {what}, {}, requested by {}, approvals {}/{} [{}], expires {}{}\n",
        r.id,
        r.state,
        r.requested_by,
        r.approvals.len(),
        r.quorum,
        r.approvals.join(", "),
        r.expires_at,
        r.outcome
            .as_deref()
            .map(|o| format!("; {o}"))
            .unwrap_or_default()
    )
}

/// The CA hierarchy as a table (`ca show`, and `init`'s report).
pub fn summaries_text(cas: &[CaSummary]) -> String {
    // Columns as wide as their longest entry ("document-signer" is wider than "root").
    let ca_w = cas.iter().map(|c| c.ca.len()).max().unwrap_or(0).max(6);
    let key_w = cas
        .iter()
        .map(|c| c.key_label.len())
        .max()
        .unwrap_or(0)
        .max(12);
    let state_w = cas.iter().map(|c| c.state.len()).max().unwrap_or(0).max(8);
    let indent = " ".repeat(ca_w + 1);
    let mut s = String::new();
    for c in cas {
        s += &format!(
            "{:<ca_w$} {:<key_w$} {:<state_w$} {}\n{indent}SHA-256 {}\n{indent}valid {} .. {}\n",
            c.ca, c.key_label, c.state, c.subject, c.fingerprint_sha256, c.not_before, c.not_after
        );
        if let Some(until) = &c.key_usage_until {
            s += &format!("{indent}key usage until {until}\n");
        }
    }
    s
}
