//! `idstation`: the station's command line. It parses arguments, reads secrets from the
//! environment or a prompt (never from argv), calls `station`, prints the result (text, or
//! JSON with `--json`) and exits with the documented code:
//! 0 ok, 2 invalid input, 3 card or reader, 4 HSM, 5 conflict, 6 not permitted, 1 anything else.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod audit_cli;

use clap::{Args, Parser, Subcommand};
use registry::Role;
use serde::Serialize;
use station::ca_admin::{self, KeySource, SubjectFile};
use station::error::StationError;
use station::init::{self, InitOptions};
use station::operators::read_secret;
use station::Station;

#[derive(Parser)]
#[command(name = "idstation", version, about = "ID-card issuance station")]
struct Cli {
    /// The station's data dir (default: $XDG_DATA_HOME/idstation).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Machine-readable output (JSON) on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a new station: HSM token, CA hierarchy, registry and the first ca-admin
    /// (password from IDSTATION_PASSWORD or a prompt). Refuses an initialised data dir.
    Init(InitArgs),
    /// Certificate authority.
    #[command(subcommand)]
    Ca(CaCmd),
    /// Operators.
    #[command(subcommand)]
    Operator(OperatorCmd),
    /// Readers, whether a card is present, and its lifecycle state.
    Readers,
    /// Issue an ID card: the holder record onto the blank card in a reader (clerk). The holder
    /// types the PIN (prompt, or --pin-fd); the station draws the PUK and writes it into the
    /// PIN letter (--pin-letter), nowhere else.
    Issue {
        /// Holder record (JSON).
        #[arg(long, value_name = "FILE")]
        holder: PathBuf,
        /// Reader name (or a unique part of it); default: the one reader holding a card.
        #[arg(long)]
        reader: Option<String>,
        /// The holder is registered with other personal data (name, date of birth, sex,
        /// citizenship, photo…) and the clerk has checked the documents: update the registry
        /// (each change audited). Without it such an issuance is refused (exit 2) naming the
        /// fields that differ.
        #[arg(long)]
        update_holder: bool,
        /// Read the holder's PIN from this file descriptor (one line), e.g. a pipe from the
        /// holder-facing PIN pad; without it the holder types it twice at a masked prompt.
        #[arg(long, value_name = "N")]
        pin_fd: Option<u32>,
        /// Write the PIN letter (a one-page PDF with the PUK the station draws at random) to
        /// this new file; it must not exist. Hand it to the holder; the station keeps no copy.
        #[arg(long, value_name = "FILE")]
        pin_letter: PathBuf,
        #[command(flatten)]
        op: OperatorArg,
    },
    /// Show a holder, a document or an issuance job with its certificates and status (text;
    /// JSON with --json). Give exactly one of --document, --pinfl and --job. A clerk or an
    /// auditor; every read of a holder's record is audited (holder.read).
    #[command(group(clap::ArgGroup::new("what").required(true).args(["document", "pinfl", "job"])))]
    Show {
        /// Document number, e.g. AA0000001: the document, its holder, MRZ and certificates.
        #[arg(long, value_name = "NUMBER")]
        document: Option<String>,
        /// The holder's PINFL (14 digits): the holder with every document and issuance job.
        #[arg(long, value_name = "PINFL")]
        pinfl: Option<String>,
        /// Issuance job number (printed by `issue`): its state, steps and certificates.
        #[arg(long, value_name = "ID")]
        job: Option<i64>,
        #[command(flatten)]
        op: OperatorArg,
    },
    /// Take a document out of use (lost, stolen, damaged, ...): status, certificate revocation.
    Revoke {
        /// Document number, e.g. AA0000001.
        #[arg(long, value_name = "NUMBER")]
        document: String,
        /// Why: lost or stolen (certificates revoked keyCompromise), damaged or deceased
        /// (cessationOfOperation), replaced (superseded), data-changed (affiliationChanged).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        op: OperatorArg,
    },
    /// Resolve unfinished issuance jobs (interrupted by a pulled card, a crash, a power cut).
    Recover {
        /// Roll back jobs whose card is not in a reader (their certificates are revoked).
        #[arg(long)]
        without_card: bool,
        #[command(flatten)]
        op: OperatorArg,
    },
    /// The audit log: checkpoints, export for auditors, offline verification.
    #[command(subcommand)]
    Audit(audit_cli::AuditCmd),
    /// Messages for other government systems (e.g. e-government registration).
    #[command(subcommand)]
    Outbox(audit_cli::OutboxCmd),
    /// Open the station GUI on the data dir (runs `idstation-gui` from the `gui` crate, found
    /// next to this binary or on PATH: `gui` depends on `station`, so it cannot be linked in).
    Gui {
        /// Only this reader (or readers whose name contains it) belongs to the station.
        #[arg(long)]
        reader: Option<String>,
        /// Log the operator out after this many seconds without input.
        #[arg(long, default_value_t = 300)]
        idle_timeout: u64,
    },
}

#[derive(Args)]
struct InitArgs {
    /// Name of the first ca-admin operator.
    #[arg(long, default_value = "admin")]
    admin: String,
    /// Name of a second ca-admin created by the ceremony (password from
    /// IDSTATION_NEW_PASSWORD or a prompt). Later ca-admins need an existing ca-admin's
    /// approval besides the one who adds them, so dual control needs two from the start.
    #[arg(long, value_name = "NAME")]
    second_admin: Option<String>,
    /// Office code of this issuance office (e.g. TAS01).
    #[arg(long, default_value = "TAS01")]
    office: String,
    /// Document-number series of the office's first number block.
    #[arg(long, default_value = "AA")]
    series: String,
    /// Name of this station in audit events.
    #[arg(long, default_value = "station-1")]
    station: String,
    /// File holding the HSM user PIN (first line); otherwise the PIN is read from
    /// IDSTATION_HSM_PIN at every start. The PIN is never stored by idstation.
    #[arg(long, value_name = "FILE")]
    hsm_pin_file: Option<PathBuf>,
    /// PKCS#11 module.
    #[arg(long, value_name = "PATH", default_value = hsm::pkcs11::SOFTHSM2_MODULE)]
    hsm_module: PathBuf,
    /// Keep the SoftHSM2 token in DIR (DIR/softhsm2.conf, DIR/tokens/) instead of the data
    /// dir's hsm/, e.g. on a separate encrypted volume. One station per DIR.
    #[arg(long, value_name = "DIR")]
    softhsm_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum CaCmd {
    /// The CA hierarchy: certificates, fingerprints, validity, key labels and states.
    Show,
    /// Issue an end-entity certificate from a CSR or a public key.
    Issue(IssueArgs),
    /// Sign and publish a CRL for a CA key (default: the active e-Signature CA key).
    Crl(CrlArgs),
    /// Request a key rotation of a CA (dual control: runs once other ca-admins approve).
    Rotate {
        /// esign, root, document-signer (alias ds) or csca.
        #[arg(long, value_parser = ["esign", "root", "document-signer", "ds", "csca"])]
        ca: String,
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
pub(crate) struct OperatorArg {
    /// The operator doing this (password from IDSTATION_PASSWORD or a prompt).
    #[arg(long)]
    pub(crate) operator: String,
}

#[derive(Args)]
struct IssueArgs {
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
struct CrlArgs {
    /// Where to write the CRL (DER; PEM when the name ends in .pem).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// HSM label of the CA key whose CRL to sign (default: the active e-Signature CA key).
    #[arg(long)]
    key: Option<String>,
    #[command(flatten)]
    op: OperatorArg,
}

#[derive(Subcommand)]
enum OperatorCmd {
    /// Add an operator (password from IDSTATION_NEW_PASSWORD or a prompt). ca-admin only. A
    /// new ca-admin stays disabled until another ca-admin approves the request this files
    /// (`ca approve N`).
    Add {
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = ["clerk", "ca-admin", "auditor"])]
        role: String,
        #[command(flatten)]
        op: OperatorArg,
    },
    /// List operators (names, roles, state). ca-admin or auditor.
    List {
        #[command(flatten)]
        op: OperatorArg,
    },
    /// Disable an operator: it can no longer log in. ca-admin only, not oneself.
    Disable {
        /// The operator to disable.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        op: OperatorArg,
    },
    /// Enable a disabled operator. ca-admin only, not oneself; a ca-admin is enabled only when
    /// another ca-admin approves the request this files.
    Enable {
        /// The operator to enable.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        op: OperatorArg,
    },
    /// Give an operator another role. ca-admin only, not oneself; to or from ca-admin only
    /// when another ca-admin approves the request this files.
    Role {
        /// The operator.
        #[arg(long)]
        name: String,
        /// The new role.
        #[arg(long, value_parser = ["clerk", "ca-admin", "auditor"])]
        role: String,
        #[command(flatten)]
        op: OperatorArg,
    },
    /// Change your password (new one from IDSTATION_NEW_PASSWORD or a prompt); a ca-admin may
    /// reset a clerk's or an auditor's with --name.
    Passwd {
        /// Whose password (default: the operator's own).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        op: OperatorArg,
    },
    /// Unlock an operator locked after 5 wrong passwords. ca-admin only, not oneself.
    Unlock {
        /// The operator to unlock.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        op: OperatorArg,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("IDSTATION_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let data_dir = cli
        .data_dir
        .clone()
        .unwrap_or_else(station::datadir::default_data_dir);
    match start_with_hsm_environment(&cli, &data_dir).and_then(|()| run(&cli, &data_dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e.exit_code();
            if cli.json {
                let v = serde_json::json!({ "error": e.to_string(), "exit_code": code });
                println!("{v}");
            }
            eprintln!("idstation: {e}");
            ExitCode::from(code as u8)
        }
    }
}

pub(crate) fn print<T: Serialize>(
    json: bool,
    value: &T,
    text: impl FnOnce(&T) -> String,
) -> Result<(), StationError> {
    if json {
        let s =
            serde_json::to_string_pretty(value).map_err(|e| StationError::Other(e.to_string()))?;
        println!("{s}");
    } else {
        print!("{}", text(value));
    }
    Ok(())
}

pub(crate) fn password() -> Result<zeroize::Zeroizing<String>, StationError> {
    read_secret("IDSTATION_PASSWORD", "Operator password", false)
}

/// Open the station (logging in to the HSM) and log `operator` in for `action` with one of
/// `roles`, the password from IDSTATION_PASSWORD or a prompt (refusals are audited).
fn open_as(
    data_dir: &Path,
    operator: &str,
    action: &str,
    roles: &[Role],
) -> Result<(Station, station::operators::Session), StationError> {
    log_in(Station::open(data_dir)?, operator, action, roles)
}

/// [`open_as`] for a command that only reads the registry: the HSM is not opened.
fn open_read_only_as(
    data_dir: &Path,
    operator: &str,
    action: &str,
    roles: &[Role],
) -> Result<(Station, station::operators::Session), StationError> {
    log_in(Station::open_read_only(data_dir)?, operator, action, roles)
}

fn log_in(
    mut st: Station,
    operator: &str,
    action: &str,
    roles: &[Role],
) -> Result<(Station, station::operators::Session), StationError> {
    let session = st.authorize(operator, &password()?, action, roles)?;
    Ok((st, session))
}

fn read_input(path: &Path, field: &str) -> Result<Vec<u8>, StationError> {
    std::fs::read(path)
        .map_err(|e| StationError::invalid(field, format!("cannot read {}: {e}", path.display())))
}

/// SoftHSM2 reads its configuration only from the environment the process started with: when
/// this process lacks the data dir's, restart it with it (before any thread exists). A data dir
/// whose configuration cannot be read needs nothing here; the command reports it.
fn start_with_hsm_environment(cli: &Cli, data_dir: &Path) -> Result<(), StationError> {
    let env = match &cli.cmd {
        Cmd::Init(a) => station::hsm_env::for_init(data_dir, absolute_softhsm_dir(a)?.as_deref()),
        _ => station::hsm_env::for_data_dir(data_dir).unwrap_or_default(),
    };
    station::hsm_env::restart_with(&env)
}

fn absolute_softhsm_dir(a: &InitArgs) -> Result<Option<PathBuf>, StationError> {
    a.softhsm_dir
        .as_deref()
        .map(|d| std::path::absolute(d).map_err(|e| StationError::io(d, e)))
        .transpose()
}

fn run(cli: &Cli, data_dir: &Path) -> Result<(), StationError> {
    match &cli.cmd {
        Cmd::Init(a) => {
            let hsm_pin = match &a.hsm_pin_file {
                Some(f) => hsm::SecretSource::File(
                    std::path::absolute(f).map_err(|e| StationError::io(f, e))?,
                ),
                None => hsm::SecretSource::Env("IDSTATION_HSM_PIN".into()),
            };
            let admin_password = read_secret(
                "IDSTATION_PASSWORD",
                &format!("Password for {}", a.admin),
                true,
            )?;
            let second_admin = match &a.second_admin {
                Some(n) => Some((
                    n.clone(),
                    read_secret("IDSTATION_NEW_PASSWORD", &format!("Password for {n}"), true)?,
                )),
                None => None,
            };
            let hsm_so_pin = std::env::var("IDSTATION_HSM_SO_PIN")
                .ok()
                .map(zeroize::Zeroizing::new);
            let opts = InitOptions {
                station_name: a.station.clone(),
                office: a.office.clone(),
                series: a.series.clone(),
                admin_name: a.admin.clone(),
                admin_password,
                second_admin,
                hsm_pin,
                hsm_so_pin,
                module: a.hsm_module.clone(),
                softhsm_dir: absolute_softhsm_dir(a)?,
            };
            let report = init::init(data_dir, &opts)?;
            print(cli.json, &report, |r| {
                let mut s = format!(
                    "Initialised {} (HSM token {:?}, ca-admin {})\n",
                    r.data_dir.display(),
                    r.hsm_token,
                    r.admin
                );
                s += &show_text(&r.cas);
                s
            })
        }
        Cmd::Gui {
            reader,
            idle_timeout,
        } => {
            use std::os::unix::process::CommandExt;
            let sibling = std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(|d| d.join("idstation-gui")))
                .filter(|p| p.is_file())
                .unwrap_or_else(|| PathBuf::from("idstation-gui"));
            let mut c = std::process::Command::new(&sibling);
            c.arg("--data-dir")
                .arg(data_dir)
                .arg("--idle-timeout")
                .arg(idle_timeout.to_string());
            if let Some(r) = reader {
                c.arg("--reader").arg(r);
            }
            let e = c.exec();
            Err(StationError::Other(format!(
                "cannot start {}: {e} (build it with `cargo build -p gui`)",
                sibling.display()
            )))
        }
        Cmd::Ca(CaCmd::Show) => {
            let st = Station::open_read_only(data_dir)?;
            let cas = ca_admin::summaries(&st.registry, &st.layout)?;
            print(cli.json, &cas, |c| show_text(c))
        }
        Cmd::Ca(CaCmd::Issue(a)) => {
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
            let subject = match (&a.subject, &source) {
                (Some(f), _) => SubjectFile::load(f)?.holder_subject(),
                (None, KeySource::Csr(bytes)) => ca::holder_subject_from_csr(bytes)?,
                (None, KeySource::Spki(_)) => {
                    return Err(StationError::invalid(
                        "subject",
                        "--spki needs --subject FILE",
                    ))
                }
            };
            let (mut st, session) = open_as(
                data_dir,
                &a.op.operator,
                "issue certificates",
                &[Role::CaAdmin],
            )?;
            let r = ca_admin::issue(&mut st, &session, &a.profile, source, &subject, &a.out)?;
            print(cli.json, &r, |r| {
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
        Cmd::Ca(CaCmd::Crl(a)) => {
            let (mut st, session) =
                open_as(data_dir, &a.op.operator, "publish CRLs", &[Role::CaAdmin])?;
            let r = ca_admin::crl(&mut st, &session, a.key.as_deref(), &a.out)?;
            print(cli.json, &r, |r| {
                format!(
                    "CRL number {} of {} lists {} revoked certificate(s); next update {}; written to {}\n",
                    r.crl_number,
                    r.issuer_key,
                    r.revoked,
                    r.next_update,
                    r.out.display()
                )
            })
        }
        Cmd::Ca(CaCmd::Rotate { ca, op }) => {
            let (mut st, session) = open_as(
                data_dir,
                &op.operator,
                "request CA key rotations",
                &[Role::CaAdmin],
            )?;
            let r = station::rotation::request_rotation(&mut st, &session, ca)?;
            print(cli.json, &r, |r| request_text(r, "Filed"))
        }
        Cmd::Ca(CaCmd::RevokeCa {
            ca,
            key,
            reason,
            op,
        }) => {
            let (mut st, session) = open_as(
                data_dir,
                &op.operator,
                "request CA revocations",
                &[Role::CaAdmin],
            )?;
            let r = station::rotation::request_ca_revocation(
                &mut st,
                &session,
                ca,
                key.as_deref(),
                reason,
            )?;
            print(cli.json, &r, |r| request_text(r, "Filed"))
        }
        Cmd::Ca(CaCmd::Approve { request, op }) => {
            let (mut st, session) = open_as(
                data_dir,
                &op.operator,
                "approve CA requests",
                &[Role::CaAdmin],
            )?;
            let r = station::rotation::approve(&mut st, &session, *request)?;
            print(cli.json, &r, |r| {
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
            })
        }
        Cmd::Ca(CaCmd::Refuse { request, note, op }) => {
            let (mut st, session) = open_as(
                data_dir,
                &op.operator,
                "refuse CA requests",
                &[Role::CaAdmin],
            )?;
            let r = station::rotation::refuse(&mut st, &session, *request, note.as_deref())?;
            print(cli.json, &r, |r| request_text(r, "Refused"))
        }
        Cmd::Ca(CaCmd::Requests) => {
            let mut st = Station::open_read_only(data_dir)?;
            let actor = station::rotation::system_actor(&st);
            let r = station::rotation::list_requests(&mut st, &actor)?;
            print(cli.json, &r, |rs| {
                rs.iter().map(|r| request_text(r, "")).collect::<String>()
            })
        }
        Cmd::Ca(CaCmd::ReissueList { op }) => {
            let (mut st, session) = open_read_only_as(
                data_dir,
                &op.operator,
                "read the re-issuance list",
                &[Role::Clerk, Role::CaAdmin],
            )?;
            let r = station::rotation::reissue_list(&mut st, &session)?;
            print(cli.json, &r, |rs| {
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
                            e.certificate_serial,
                            e.issuer_key,
                            e.status
                        )
                    })
                    .collect()
            })
        }
        Cmd::Operator(OperatorCmd::Add { name, role, op }) => {
            let (mut st, session) =
                open_as(data_dir, &op.operator, "add operators", &[Role::CaAdmin])?;
            let new_password = read_secret(
                "IDSTATION_NEW_PASSWORD",
                &format!("Password for {name}"),
                true,
            )?;
            let role = Role::parse(role)?;
            let c = station::operators::add(&mut st, &session, name, role, &new_password)?;
            station::audit::checkpoint_after(&mut st, "operator.added");
            print(cli.json, &c, |c| change_text("Added", c))
        }
        Cmd::Operator(OperatorCmd::Disable { name, op }) => {
            let (mut st, session) = open_as(
                data_dir,
                &op.operator,
                "disable operators",
                &[Role::CaAdmin],
            )?;
            station::operators::disable(&mut st, &session, name)?;
            station::audit::checkpoint_after(&mut st, "operator.disabled");
            print(
                cli.json,
                &serde_json::json!({ "name": name, "active": false }),
                |_| format!("Disabled operator {name}\n"),
            )
        }
        Cmd::Operator(OperatorCmd::Enable { name, op }) => {
            let (mut st, session) =
                open_as(data_dir, &op.operator, "enable operators", &[Role::CaAdmin])?;
            let c = station::operators::enable(&mut st, &session, name)?;
            station::audit::checkpoint_after(&mut st, "operator.enabled");
            print(cli.json, &c, |c| change_text("Enabled", c))
        }
        Cmd::Operator(OperatorCmd::Role { name, role, op }) => {
            let (mut st, session) = open_as(
                data_dir,
                &op.operator,
                "change operator roles",
                &[Role::CaAdmin],
            )?;
            let role = Role::parse(role)?;
            let c = station::operators::set_role(&mut st, &session, name, role)?;
            station::audit::checkpoint_after(&mut st, "operator.role-changed");
            print(cli.json, &c, |c| change_text("Changed the role of", c))
        }
        Cmd::Operator(OperatorCmd::Passwd { name, op }) => {
            let mut st = Station::open(data_dir)?;
            let own = name.as_deref().is_none_or(|n| n == op.operator);
            let session = st.authorize(
                &op.operator,
                &password()?,
                "change passwords",
                if own {
                    &[Role::Clerk, Role::CaAdmin, Role::Auditor]
                } else {
                    &[Role::CaAdmin]
                },
            )?;
            let whose = name.clone().unwrap_or_else(|| op.operator.clone());
            let new_password = read_secret(
                "IDSTATION_NEW_PASSWORD",
                &format!("New password for {whose}"),
                true,
            )?;
            let n = station::operators::passwd(&mut st, &session, name.as_deref(), &new_password)?;
            station::audit::checkpoint_after(&mut st, "operator.password-changed");
            print(cli.json, &serde_json::json!({ "name": n }), |_| {
                format!("Changed the password of {n}\n")
            })
        }
        Cmd::Operator(OperatorCmd::Unlock { name, op }) => {
            let (mut st, session) =
                open_as(data_dir, &op.operator, "unlock operators", &[Role::CaAdmin])?;
            station::operators::unlock(&mut st, &session, name)?;
            station::audit::checkpoint_after(&mut st, "operator.unlocked");
            print(
                cli.json,
                &serde_json::json!({ "name": name, "locked": false }),
                |_| format!("Unlocked operator {name}\n"),
            )
        }
        Cmd::Readers => {
            let readers = readers()?;
            print(cli.json, &readers, |rs| {
                rs.iter()
                    .map(|r| {
                        format!(
                            "{}\t{}\n",
                            r["reader"].as_str().unwrap_or(""),
                            r["state"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
        }
        Cmd::Issue {
            holder,
            reader,
            update_holder,
            pin_fd,
            pin_letter,
            op,
        } => {
            let (mut st, session) = open_as(data_dir, &op.operator, "issue cards", &[Role::Clerk])?;
            let doc = station::document::DocumentProfile::load(&st)?;
            let mut policy =
                station::holder::ValidationPolicy::new(station::time_util::today_utc());
            policy.pinfl_check_digit = doc.pinfl_check_digit;
            let holder = station::holder::load(holder, &policy).map_err(holder_errors)?;
            let pin = station::pin_letter::read_holder_pin(*pin_fd)?;
            let input = station::issuance::IssueInput {
                holder,
                reader: reader.clone(),
                pin,
                pin_letter: pin_letter.clone(),
                update_holder: *update_holder,
            };
            let quiet = cli.json;
            let r = station::issuance::issue(&mut st, &session, &input, &mut |p| {
                if !quiet {
                    match &p.card {
                        Some(c) => eprintln!("[{}] {}/{} {}", p.job_step, c.index, c.total, c.step),
                        None => eprintln!("[{}]", p.job_step),
                    }
                }
            })?;
            print(cli.json, &r, |r| {
                let mut s = format!(
                    "Issued document {} on card {} in {} (job {})\n",
                    r.document, r.card_serial, r.reader, r.job_id
                );
                for c in &r.certificates {
                    s += &format!(
                        "  {} {} certificate serial {}\n",
                        c.slot, c.profile, c.serial
                    );
                }
                s += &format!(
                    "  {} APDUs, {:.0} ms (card {:.0}, HSM {:.0}, registry {:.0})\n",
                    r.apdus,
                    r.timings.total_ms,
                    r.timings.card_ms,
                    r.timings.hsm_ms,
                    r.timings.registry_ms
                );
                s += &format!(
                    "  PIN letter with the PUK: {} (hand it to the holder, then delete the file)\n",
                    pin_letter.display()
                );
                s
            })
        }
        Cmd::Show {
            document,
            pinfl,
            job,
            op,
        } => {
            let (mut st, session) = open_read_only_as(
                data_dir,
                &op.operator,
                "read holder records",
                station::records::READ_ROLES,
            )?;
            let (v, text) = match (document, pinfl, job) {
                (Some(d), _, _) => {
                    let (h, d) = station::records::show_document(&mut st, &session, d)?;
                    let text = format!("{}{}", holder_line(&h), document_text(&d));
                    // `mrz` at the top level too: other tools open the chip with BAC from it.
                    (
                        serde_json::json!({ "mrz": d.mrz.clone(), "holder": h, "document": d }),
                        text,
                    )
                }
                (_, Some(p), _) => {
                    let h = station::records::show_pinfl(&mut st, &session, p)?;
                    let mut text = holder_line(&h);
                    for d in &h.documents {
                        text += &document_text(d);
                    }
                    for j in &h.jobs {
                        text += &job_text(j);
                    }
                    (serde_json::json!({ "holder": h }), text)
                }
                (_, _, Some(j)) => {
                    let j = station::records::show_job(&mut st, &session, *j)?;
                    let text = job_text(&j);
                    (serde_json::json!({ "job": j }), text)
                }
                _ => {
                    return Err(StationError::invalid(
                        "show",
                        "give --document, --pinfl or --job",
                    ))
                }
            };
            print(cli.json, &v, |_| text)
        }
        Cmd::Revoke {
            document,
            reason,
            op,
        } => {
            let (mut st, session) = open_as(
                data_dir,
                &op.operator,
                "revoke documents",
                &[Role::Clerk, Role::CaAdmin],
            )?;
            let r = station::records::revoke(&mut st, &session, document, reason)?;
            print(cli.json, &r, |r| {
                format!(
                    "Document {} is now {}; {} certificate(s) revoked ({}), listed on the next CRL\n",
                    r.document,
                    r.status,
                    r.revoked_certificates.len(),
                    r.crl_reason
                )
            })
        }
        Cmd::Recover { without_card, op } => {
            let (mut st, session) = open_as(
                data_dir,
                &op.operator,
                "recover issuances",
                &[Role::Clerk, Role::CaAdmin],
            )?;
            let mode = if *without_card {
                station::recovery::Mode::WithoutCardRollsBack
            } else {
                station::recovery::Mode::LookForCards
            };
            let r = station::recovery::recover(&mut st, &session, mode)?;
            // Interrupted CA key rotations and revocations (docs/rotation.md).
            let rot = station::recovery::recover_ca_requests(&mut st, &session)?;
            let mut all: Vec<serde_json::Value> = r
                .iter()
                .map(|x| serde_json::to_value(x).unwrap_or_default())
                .collect();
            all.extend(
                rot.iter()
                    .map(|x| serde_json::to_value(x).unwrap_or_default()),
            );
            print(cli.json, &all, |_| {
                if r.is_empty() && rot.is_empty() {
                    "Nothing to recover\n".into()
                } else {
                    r.iter()
                        .map(|x| format!("job {}: {} ({})\n", x.job_id, x.outcome, x.detail))
                        .chain(
                            rot.iter()
                                .map(|x| format!("CA request {}: {}\n", x.request_id, x.outcome)),
                        )
                        .collect()
                }
            })
        }
        Cmd::Audit(c) => audit_cli::run_audit(c, cli.json, data_dir),
        Cmd::Outbox(c) => audit_cli::run_outbox(c, cli.json, data_dir),
        Cmd::Operator(OperatorCmd::List { op }) => {
            let (mut st, session) = open_read_only_as(
                data_dir,
                &op.operator,
                "list operators",
                &[Role::CaAdmin, Role::Auditor],
            )?;
            let ops = station::operators::list(&mut st, &session)?;
            print(cli.json, &ops, |ops| {
                ops.iter()
                    .map(|o| format!("{}\t{}\t{}\n", o.name, o.role, o.state))
                    .collect()
            })
        }
    }
}

/// `operator add|enable|role`'s text: done, or waiting for another ca-admin's approval.
fn change_text(verb: &str, c: &station::operators::Change) -> String {
    match &c.request {
        Some(r) => format!(
            "{verb} operator {} ({}): waits for another ca-admin's approval\n{}",
            c.name,
            c.role,
            request_text(r, "Filed")
        ),
        None => format!("{verb} operator {} ({}), {}\n", c.name, c.role, c.state),
    }
}

fn readers() -> Result<Vec<serde_json::Value>, StationError> {
    use personalization::transport::pcsc::Pcsc;
    let pcsc = Pcsc::establish().map_err(|e| StationError::card(None, &e))?;
    let mut out = Vec::new();
    for r in pcsc.readers().map_err(|e| StationError::card(None, &e))? {
        let state = if !r.card_present {
            "no card".to_string()
        } else {
            match pcsc.connect(&r.name).and_then(|mut c| {
                let mut tx = c.begin()?;
                personalization::executor::inspect(&mut tx)
            }) {
                Ok(i) => format!(
                    "card {} {}",
                    station::issuance::serial_text(i.serial),
                    i.lifecycle
                ),
                Err(e) => format!("card present: {e}"),
            }
        };
        out.push(
            serde_json::json!({ "reader": r.name, "card_present": r.card_present, "state": state }),
        );
    }
    Ok(out)
}

fn request_text(r: &station::rotation::RequestView, verb: &str) -> String {
    let what = match (r.kind.as_str(), &r.key, &r.reason) {
        ("revoke-ca", Some(k), Some(reason)) => format!("revoke-ca {} {k} ({reason})", r.ca),
        (kind, Some(k), _) => format!("{kind} {} (from {k})", r.ca),
        (kind, None, _) => format!("{kind} {}", r.ca),
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

fn show_text(cas: &[init::CaSummary]) -> String {
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
    }
    s
}

/// `show`'s text form (docs/station.md, "show, revoke"): one line for the holder.
fn holder_line(h: &station::records::HolderView) -> String {
    format!(
        "Holder {}: {} {}{}, born {}, citizenship {}\n",
        h.pinfl,
        h.surname,
        h.given_names,
        h.patronymic
            .as_deref()
            .map(|p| format!(" {p}"))
            .unwrap_or_default(),
        h.date_of_birth,
        h.citizenship
    )
}

fn certificates_text(certs: &[station::records::CertView]) -> String {
    certs
        .iter()
        .map(|c| {
            format!(
                "  certificate {} {} {}{}, valid until {}\n",
                c.serial,
                c.profile,
                c.status,
                c.revocation_reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                c.not_after
            )
        })
        .collect()
}

/// A document: status, dates, card, job, MRZ, certificates.
fn document_text(d: &station::records::DocumentView) -> String {
    let mut s = format!(
        "Document {} {}, office {}, issued {}, expires {}, card {}, job {}\n",
        d.document,
        d.status,
        d.office,
        if d.date_of_issue.is_empty() {
            "-"
        } else {
            &d.date_of_issue
        },
        if d.date_of_expiry.is_empty() {
            "-"
        } else {
            &d.date_of_expiry
        },
        d.card_serial.as_deref().unwrap_or("-"),
        d.job_id
            .map(|j| j.to_string())
            .unwrap_or_else(|| "-".into())
    );
    if let Some(mrz) = &d.mrz {
        for (i, line) in mrz.iter().enumerate() {
            s += &format!("  {} {line}\n", if i == 0 { "MRZ" } else { "   " });
        }
    }
    s + &certificates_text(&d.certificates)
}

/// An issuance job: state, document, card, operator, steps, error, certificates.
fn job_text(j: &station::records::JobView) -> String {
    let mut s = format!(
        "Job {} {}, document {}, card {}, by {} at {}\n",
        j.job_id,
        j.state,
        j.document.as_deref().unwrap_or("-"),
        j.card_serial.as_deref().unwrap_or("-"),
        j.operator,
        j.created_at
    );
    if !j.steps.is_empty() {
        s += &format!("  steps: {}\n", j.steps.join(", "));
    }
    if let Some(e) = &j.error {
        s += &format!("  error: {e}\n");
    }
    s + &certificates_text(&j.certificates)
}

/// Holder validation errors as one `Invalid` error that names each field once:
/// "pinfl: check digit …; sex: …" (the first field is the error's field).
fn holder_errors(errs: Vec<station::holder::FieldError>) -> StationError {
    let mut it = errs.into_iter();
    let Some(first) = it.next() else {
        return StationError::invalid("holder", "the holder record was refused");
    };
    let mut rule = first.rule;
    for e in it {
        rule += &format!("; {e}");
    }
    StationError::invalid(first.field, rule)
}
