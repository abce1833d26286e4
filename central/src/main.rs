//! `idcentral`: the national centre's command line. It parses arguments, reads secrets (a
//! masked prompt, or the first line of standard input when that is not a terminal; never argv or
//! the environment), calls the `central` library and prints.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use central::operators::{self, Role};
use central::{stations, CentralError, CentreConfig};
use clap::{Parser, Subcommand};
use zeroize::Zeroizing;

mod ca_cli;

#[derive(Parser)]
#[command(
    name = "idcentral",
    version,
    about = "The national centre of idstation: one CA and one registry for every office"
)]
struct Cli {
    /// The centre's configuration (centre.toml); every command but `audit verify` needs it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create the schema, the CA keys in the HSM and their certificates, the audit signer, and
    /// the first ca-admin (password: prompt, or the first line of standard input).
    Init {
        #[arg(long, value_name = "NAME")]
        admin: String,
        /// A second ca-admin made by the ceremony (their password is the next secret): adding a
        /// ca-admin later needs two.
        #[arg(long, value_name = "NAME")]
        second_admin: Option<String>,
    },
    /// Serve the HTTPS API (TLS 1.3, mutual TLS for stations) until stopped, and the public
    /// relying-party services (OCSP, CRLs, CA certificates, time-stamps) over plain HTTP.
    Serve {
        /// Address to listen on (default: `[server] listen`); port 0 picks a free port.
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Address of the public plain-HTTP listener (default: `[public] listen`; none if unset).
        #[arg(long, value_name = "ADDR")]
        public_listen: Option<std::net::SocketAddr>,
        /// Run only the public listener (a separate host for relying parties).
        #[arg(long)]
        public_only: bool,
    },
    /// Issuance stations: add (prints a one-time enrolment code), list, disable.
    #[command(subcommand)]
    Station(StationCmd),
    /// The centre's operators.
    #[command(subcommand)]
    Operator(OperatorCmd),
    /// The centre's audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// CA keys: list, rotation under dual control (rotate, approve, refuse, requests),
    /// recovery of an interrupted rotation, certificates.
    #[command(subcommand)]
    Ca(ca_cli::CaCmd),
    /// One holder in the national registry: data, addresses, documents, certificates
    /// (ca-admin or auditor; the look-up is audited).
    #[command(group(clap::ArgGroup::new("by").required(true).args(["pinfl", "document"])))]
    Show {
        #[arg(long, value_name = "N")]
        pinfl: Option<String>,
        /// Series and number, e.g. AA0000042.
        #[arg(long, value_name = "D")]
        document: Option<String>,
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// The e-government outbox: what the publisher delivered, is retrying, or gave up on.
    #[command(subcommand)]
    Outbox(OutboxCmd),
    /// Renewals of documents' certificates: list (the open ones block other offices), abort.
    #[command(subcommand)]
    Renewals(RenewalsCmd),
}

#[derive(Subcommand)]
enum RenewalsCmd {
    /// Every renewal, or the open ones, oldest first (ca-admin or auditor; the read is
    /// audited).
    List {
        /// Only the open ones (reserved or certified: waiting for their card).
        #[arg(long)]
        open: bool,
        /// Only those of this document (e.g. AA0000042).
        #[arg(long, value_name = "D")]
        document: Option<String>,
        /// At most this many (1..100000; default 1000).
        #[arg(long, value_name = "N")]
        limit: Option<i64>,
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// Abort an open renewal now, as the renewal timeout would (ca-admin; audited).
    Abort {
        /// The renewal's job (from `renewals list`).
        job: String,
        #[arg(long, value_name = "TEXT")]
        reason: String,
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
}

#[derive(Subcommand)]
enum OutboxCmd {
    /// The newest messages with their delivery state (ca-admin or auditor; the read is audited).
    List {
        /// Only the failed messages (the dead letter).
        #[arg(long)]
        failed: bool,
        /// At most this many, the newest (1 to 1000).
        #[arg(long, value_name = "N", default_value_t = centre_api::OUTBOX_LIST_MAX)]
        limit: u32,
        /// Only messages numbered below ID (the next page of a list cut at its limit: the
        /// first id it showed).
        #[arg(long, value_name = "ID")]
        before: Option<i64>,
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// Put a failed message back in the queue, due now (ca-admin; audited).
    Retry {
        /// Message id (from `outbox list`).
        id: i64,
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
}

#[derive(Subcommand)]
enum StationCmd {
    /// Add a station; prints its enrolment code once (valid 24 hours, one use).
    Add {
        #[arg(long)]
        office: String,
        #[arg(long)]
        station: String,
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// Every station, its office and state.
    List {
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// Cut a station off; with --reason also revoke its certificates (identity, audit signer,
    /// Document Signer) on their CAs' CRLs.
    Disable {
        #[arg(long)]
        station: String,
        /// keyCompromise (its keys may be in other hands), affiliationChanged, superseded or
        /// cessationOfOperation. Without it the certificates stay valid.
        #[arg(long, value_name = "REASON")]
        reason: Option<String>,
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// Cards to replace: those whose Document Signer was revoked with their station (ca-admin
    /// or auditor; the read is audited).
    CardsToReplace {
        /// Only this station's cards.
        #[arg(long)]
        station: Option<String>,
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
}

#[derive(Subcommand)]
enum OperatorCmd {
    /// Every operator, role and state.
    List {
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// Add an operator (ca-admin). Secrets, one line each on standard input or masked prompts:
    /// your password, the new operator's, then (a new ca-admin) the approving ca-admin's.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = ["ca-admin", "auditor"])]
        role: String,
        #[arg(long, value_name = "NAME")]
        operator: String,
        /// A second ca-admin who approves a new ca-admin (dual control); their password is read
        /// after the new operator's.
        #[arg(long, value_name = "NAME")]
        approved_by: Option<String>,
    },
    /// Disable an operator: it can no longer log in (ca-admin, not oneself; never the last
    /// active ca-admin).
    Disable {
        #[arg(long)]
        name: String,
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// Enable a disabled operator (ca-admin, not oneself); a ca-admin only with --approved-by.
    Enable {
        #[arg(long)]
        name: String,
        #[arg(long, value_name = "NAME")]
        operator: String,
        /// A second ca-admin who approves enabling a ca-admin; their password is read after yours.
        #[arg(long, value_name = "NAME")]
        approved_by: Option<String>,
    },
    /// Change your own password: your password, then the new one.
    Password {
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// Unlock an operator locked after 5 wrong passwords (ca-admin, not oneself).
    Unlock {
        #[arg(long)]
        name: String,
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Walk the hash chain in the database and check every signed checkpoint.
    VerifyLog {
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// Sign a checkpoint over the newest event with the centre's audit key (ca-admin).
    Checkpoint {
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// Export the audit log in the station's format: events, manifest signed by the centre's
    /// audit key, and its certificate chain (auditor or ca-admin).
    Export {
        /// Folder to write (created; must not already hold an export).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// First day or time (inclusive): YYYY-MM-DD or RFC 3339 UTC.
        #[arg(long, value_name = "DATE", conflicts_with_all = ["from_seq", "to_seq"])]
        from: Option<String>,
        /// Last day (inclusive) or time (exclusive): YYYY-MM-DD or RFC 3339 UTC.
        #[arg(long, value_name = "DATE", conflicts_with_all = ["from_seq", "to_seq"])]
        to: Option<String>,
        /// First sequence number (inclusive).
        #[arg(long, value_name = "N", requires = "to_seq")]
        from_seq: Option<u64>,
        /// Last sequence number (inclusive).
        #[arg(long, value_name = "M", requires = "from_seq")]
        to_seq: Option<u64>,
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv"])]
        format: String,
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// Find events in the national audit log, newest first (auditor or ca-admin). Every
    /// search is itself audited (`audit.searched`).
    Search {
        /// An action (document.held), or a prefix followed by '*' (document.*).
        #[arg(long, value_name = "ACTION")]
        action: Option<String>,
        /// The station that acted (the centre's `[centre] name` for its own operators).
        #[arg(long, value_name = "STATION")]
        station: Option<String>,
        /// The operator that acted.
        #[arg(long, value_name = "NAME")]
        actor: Option<String>,
        /// The object (document:AA0000001, job:UUID, station:NAME, holder:PINFL).
        #[arg(long, value_name = "OBJECT")]
        object: Option<String>,
        /// The rule a refusal names (lookup-limit, audit-head-does-not-extend, …): with
        /// --action request.refused, what to watch for.
        #[arg(long, value_name = "RULE")]
        rule: Option<String>,
        /// First day or time (inclusive): YYYY-MM-DD or RFC 3339 UTC.
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
        /// Last day (inclusive) or time (exclusive): YYYY-MM-DD or RFC 3339 UTC.
        #[arg(long, value_name = "DATE")]
        to: Option<String>,
        /// At most this many events (1 to 10000).
        #[arg(long, value_name = "N", default_value_t = 100)]
        limit: i64,
        #[arg(long, value_name = "NAME")]
        operator: String,
    },
    /// Verify an export folder offline against the trusted National Root certificate (no
    /// database, no HSM, no --config); exit 0 when valid, 2 naming what is wrong.
    Verify {
        dir: PathBuf,
        /// The National Root CA certificate (PEM or DER).
        #[arg(long, value_name = "FILE")]
        root: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("IDCENTRAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match start(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({ "error": e.to_string(), "exit_code": e.exit_code() })
                );
            }
            eprintln!("idcentral: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

/// Load the configuration, restart with the HSM module's environment if this process lacks it
/// (before any thread exists: SoftHSM2 reads SOFTHSM2_CONF once), then run the command.
fn start(cli: &Cli) -> Result<(), CentralError> {
    if let Cmd::Audit(AuditCmd::Verify { dir, root }) = &cli.cmd {
        let r = central::audit_export::verify(dir, root)?;
        return print(cli.json, &r, |r| {
            format!(
                "OK: {} event(s) {}..{}, last hash {}, {} checkpoint(s)\nSigned by {} at {}\n",
                r.count,
                r.first_seq,
                r.last_seq,
                r.last_hash,
                r.checkpoints,
                r.signer_subject,
                r.exported_at
            )
        });
    }
    let config = cli.config.as_deref().ok_or_else(|| {
        CentralError::invalid(
            "config",
            "give --config FILE: this command needs the centre",
        )
    })?;
    let cfg = CentreConfig::load(config)?;
    if let hsm::HsmConfig::Pkcs11 { env, .. } = &cfg.hsm {
        hsm::process_env::exec_with(env)?;
    }
    // The server handles connections on several threads; the other commands need one.
    let mut builder = match cli.cmd {
        Cmd::Serve { .. } => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let rt = builder
        .enable_all()
        .build()
        .map_err(|e| CentralError::Other(format!("runtime: {e}")))?;
    rt.block_on(run(cli, &cfg))
}

async fn run(cli: &Cli, cfg: &CentreConfig) -> Result<(), CentralError> {
    match &cli.cmd {
        Cmd::Init {
            admin,
            second_admin,
        } => {
            let admin_password = read_secret(&format!("Password for {admin}"), true)?;
            let second_admin = match second_admin {
                Some(n) => Some((n.clone(), read_secret(&format!("Password for {n}"), true)?)),
                None => None,
            };
            let opts = central::init::InitOptions {
                admin: admin.clone(),
                admin_password,
                second_admin,
            };
            let report = central::init::init(cfg, &opts).await?;
            // The audit signer (centre-audit-1) and the first checkpoint.
            let pool = central::db::pool(&cfg.database)?;
            checkpoint_after(cfg, &pool, "centre.initialised").await;
            print(cli.json, &report, |r| {
                let mut s = format!("Initialised the centre (ca-admin {})\n", r.admin);
                for c in &r.cas {
                    s += &format!(
                        "{:<11} {:<13} {}\n            SHA256 Fingerprint={}\n",
                        c.ca, c.key_label, c.subject, c.fingerprint_sha256
                    );
                }
                s
            })
        }
        Cmd::Serve {
            listen,
            public_listen,
            public_only,
        } => {
            let opts = central::server::ServeOptions {
                listen: *listen,
                public_listen: *public_listen,
                public_only: *public_only,
            };
            central::server::serve_with(cfg, &opts).await
        }
        Cmd::Station(sc) => station(cli, cfg, sc).await,
        Cmd::Show {
            pinfl,
            document,
            operator,
        } => {
            let query = match (pinfl, document) {
                (Some(p), _) => central::show::Query::Pinfl(p.clone()),
                (None, Some(d)) => central::show::Query::Document(d.clone()),
                (None, None) => {
                    return Err(CentralError::invalid("pinfl", "give --pinfl or --document"))
                }
            };
            let pool = central::db::pool(&cfg.database)?;
            let roles = [Role::CaAdmin, Role::Auditor];
            let s = log_in(&pool, cfg, operator, "show holders", &roles).await?;
            let record = central::show::show(&pool, &s, &query).await?;
            print(cli.json, &record, show_text)
        }
        Cmd::Operator(oc) => operator(cli, cfg, oc).await,
        Cmd::Audit(ac) => audit(cli, cfg, ac).await,
        Cmd::Ca(cc) => ca_cli::run(cli, cfg, cc).await,
        Cmd::Outbox(oc) => outbox(cli, cfg, oc).await,
        Cmd::Renewals(rc) => renewals(cli, cfg, rc).await,
    }
}

async fn renewals(cli: &Cli, cfg: &CentreConfig, rc: &RenewalsCmd) -> Result<(), CentralError> {
    use central::services::renewals as rn;
    let pool = central::db::pool(&cfg.database)?;
    match rc {
        RenewalsCmd::List {
            open,
            document,
            limit,
            operator,
        } => {
            let roles = [Role::CaAdmin, Role::Auditor];
            let s = log_in(&pool, cfg, operator, "read the renewals", &roles).await?;
            let all = rn::list(&pool, &s, *open, document.as_deref(), *limit).await?;
            let cap = limit.unwrap_or(rn::LIST_LIMIT);
            print(cli.json, &all, |l| match l.len() {
                0 if *open => "No open renewals\n".to_owned(),
                0 => "No renewals\n".to_owned(),
                n => {
                    let mut text: String = l.iter().map(|r| format!("{}\n", r.line())).collect();
                    if n as i64 == cap {
                        text += &format!(
                            "(the oldest {n}: there may be more; narrow with --open or \
                             --document, or raise --limit)\n"
                        );
                    }
                    text
                }
            })
        }
        RenewalsCmd::Abort {
            job,
            reason,
            operator,
        } => {
            let roles = [Role::CaAdmin];
            let s = log_in(&pool, cfg, operator, "abort renewals", &roles).await?;
            let r = rn::abort(&pool, &s, job, reason).await?;
            checkpoint_after(cfg, &pool, "renewal.aborted").await;
            print(cli.json, &r, |r| format!("{}\n", r.line()))
        }
    }
}

async fn outbox(cli: &Cli, cfg: &CentreConfig, oc: &OutboxCmd) -> Result<(), CentralError> {
    use central::egov::outbox as ob;
    let pool = central::db::pool(&cfg.database)?;
    match oc {
        OutboxCmd::List {
            failed,
            limit,
            before,
            operator,
        } => {
            let roles = [Role::CaAdmin, Role::Auditor];
            let s = log_in(&pool, cfg, operator, "read the outbox", &roles).await?;
            let (items, more) = ob::list(&pool, s.actor(), *failed, *limit, *before).await?;
            if let Some(first) = items.first().filter(|_| more) {
                eprintln!(
                    "(the newest {limit} messages; older ones were left out: --before {} lists them)",
                    first.id
                );
            }
            print(cli.json, &items, |l| {
                l.iter().map(ob::OutboxItem::line).collect()
            })
        }
        OutboxCmd::Retry { id, operator } => {
            let roles = [Role::CaAdmin];
            let s = log_in(&pool, cfg, operator, "retry outbox messages", &roles).await?;
            let item = ob::retry(&pool, &s, *id).await?;
            checkpoint_after(cfg, &pool, "outbox.retried").await;
            print(cli.json, &item, |m| {
                format!("Outbox message {} is pending again\n{}", m.id, m.line())
            })
        }
    }
}

async fn operator(cli: &Cli, cfg: &CentreConfig, oc: &OperatorCmd) -> Result<(), CentralError> {
    let pool = central::db::pool(&cfg.database)?;
    let admin = [Role::CaAdmin];
    match oc {
        OperatorCmd::List { operator } => {
            log_in(
                &pool,
                cfg,
                operator,
                "list operators",
                &[Role::CaAdmin, Role::Auditor],
            )
            .await?;
            let list = operators::list(&pool).await?;
            print(cli.json, &list, |l| {
                l.iter()
                    .map(|o| {
                        format!(
                            "{:<20} {:<9} {}\n",
                            o.name,
                            o.role,
                            state_word(o.active, o.locked)
                        )
                    })
                    .collect()
            })
        }
        OperatorCmd::Add {
            name,
            role,
            operator,
            approved_by,
        } => {
            let role = Role::parse(role)
                .ok_or_else(|| CentralError::invalid("role", "must be ca-admin or auditor"))?;
            if role != Role::CaAdmin && approved_by.is_some() {
                return Err(CentralError::invalid(
                    "approved-by",
                    "only a new ca-admin takes a second ca-admin's approval",
                ));
            }
            let s = log_in(&pool, cfg, operator, "add operators", &admin).await?;
            let password = read_secret(&format!("Password for the new operator {name}"), true)?;
            let approver = match approved_by {
                Some(a) => Some(log_in(&pool, cfg, a, "approve a new ca-admin", &admin).await?),
                None => None,
            };
            let c = operators::add(&pool, &s, name, role, &password, approver.as_ref()).await?;
            checkpoint_after(cfg, &pool, "operator.added").await;
            print(cli.json, &c, change_text)
        }
        OperatorCmd::Disable { name, operator } => {
            let s = log_in(&pool, cfg, operator, "disable operators", &admin).await?;
            operators::disable(&pool, &s, name).await?;
            checkpoint_after(cfg, &pool, "operator.disabled").await;
            print(
                cli.json,
                &serde_json::json!({ "name": name, "active": false }),
                |_| format!("Disabled operator {name}\n"),
            )
        }
        OperatorCmd::Enable {
            name,
            operator,
            approved_by,
        } => {
            let s = log_in(&pool, cfg, operator, "enable operators", &admin).await?;
            let approver = match approved_by {
                Some(a) => {
                    Some(log_in(&pool, cfg, a, "approve enabling a ca-admin", &admin).await?)
                }
                None => None,
            };
            let c = operators::enable(&pool, &s, name, approver.as_ref()).await?;
            checkpoint_after(cfg, &pool, "operator.enabled").await;
            print(cli.json, &c, change_text)
        }
        OperatorCmd::Password { operator } => {
            let all = [Role::CaAdmin, Role::Auditor];
            let s = log_in(&pool, cfg, operator, "change their password", &all).await?;
            let password = read_secret(&format!("New password for {operator}"), true)?;
            operators::change_password(&pool, &s, &password).await?;
            checkpoint_after(cfg, &pool, "operator.password-changed").await;
            print(cli.json, &serde_json::json!({ "name": operator }), |_| {
                format!("Changed the password of {operator}\n")
            })
        }
        OperatorCmd::Unlock { name, operator } => {
            let s = log_in(&pool, cfg, operator, "unlock operators", &admin).await?;
            operators::unlock(&pool, &s, name).await?;
            checkpoint_after(cfg, &pool, "operator.unlocked").await;
            print(
                cli.json,
                &serde_json::json!({ "name": name, "locked": false }),
                |_| format!("Unlocked operator {name}\n"),
            )
        }
    }
}

fn change_text(c: &operators::Change) -> String {
    match &c.approved_by {
        Some(a) => format!("Operator {} ({}) active, approved by {a}\n", c.name, c.role),
        None => format!("Operator {} ({}) active\n", c.name, c.role),
    }
}

async fn audit(cli: &Cli, cfg: &CentreConfig, ac: &AuditCmd) -> Result<(), CentralError> {
    let pool = central::db::pool(&cfg.database)?;
    let both = [Role::CaAdmin, Role::Auditor];
    match ac {
        AuditCmd::VerifyLog { operator } => {
            log_in(&pool, cfg, operator, "verify the audit log", &both).await?;
            let client = pool.get().await?;
            let r = central::audit::verify_log(&client).await?;
            print(cli.json, &r, |r| {
                format!(
                    "audit log: {} events, the chain holds; {} checkpoint(s) verified (newest at {})\n",
                    r.events,
                    r.checkpoints,
                    r.last_checkpoint.map(|s| s.to_string()).unwrap_or_else(|| "-".into())
                )
            })
        }
        AuditCmd::Checkpoint { operator } => {
            log_in(
                &pool,
                cfg,
                operator,
                "sign audit checkpoints",
                &[Role::CaAdmin],
            )
            .await?;
            let store = hsm::open(&cfg.hsm)?;
            let c = central::audit::checkpoint(&pool, store.as_ref(), &cfg.centre.name).await?;
            let v = c.as_ref().map(|c| {
                serde_json::json!({ "seq": c.seq, "hash": hex::encode(c.hash), "time": c.time })
            });
            print(cli.json, &v, |v| match v {
                Some(v) => format!(
                    "Checkpoint over event {} signed at {}\n",
                    v["seq"], v["time"]
                ),
                None => "The newest event already has a checkpoint\n".into(),
            })
        }
        AuditCmd::Search {
            action,
            station,
            actor,
            object,
            rule,
            from,
            to,
            limit,
            operator,
        } => {
            let filter = central::audit_search::Filter {
                rule: rule.clone(),
                action: action.clone(),
                station: station.clone(),
                actor: actor.clone(),
                object: object.clone(),
                from: from.clone(),
                to: to.clone(),
                limit: *limit,
            };
            let s = log_in(&pool, cfg, operator, "search the audit log", &both).await?;
            let r = central::audit_search::search(&pool, &s, &filter).await?;
            print(cli.json, &r, |r| {
                let mut out = String::new();
                for e in &r.events {
                    out += &format!(
                        "{:>8} {} {}/{} ({}) {} {} {}\n",
                        e.seq, e.time, e.station, e.operator, e.role, e.action, e.object, e.details
                    );
                }
                out += &match (r.events.len(), r.more) {
                    (0, _) => "no event matches\n".to_owned(),
                    (n, true) => {
                        format!("{n} newest matching events shown; more match (--limit)\n")
                    }
                    (n, false) => format!("{n} matching event(s)\n"),
                };
                out
            })
        }
        AuditCmd::Export {
            out,
            from,
            to,
            from_seq,
            to_seq,
            format,
            operator,
        } => {
            let range = match (from, to, from_seq, to_seq) {
                (None, None, None, None) => central::audit_export::Range::All,
                (_, _, Some(f), Some(t)) => central::audit_export::Range::Seq { from: *f, to: *t },
                _ => central::audit_export::Range::Time {
                    from: from.clone(),
                    to: to.clone(),
                },
            };
            let format = registry::export::ExportFormat::parse(format)
                .map_err(|_| CentralError::invalid("format", "must be jsonl or csv"))?;
            let s = log_in(&pool, cfg, operator, "export the audit log", &both).await?;
            let store = hsm::open(&cfg.hsm)?;
            let r = central::audit_export::export(
                &pool,
                store.as_ref(),
                &cfg.centre.name,
                &s,
                out,
                &range,
                format,
            )
            .await?;
            print(cli.json, &r, |r| {
                let range = match (r.first_seq, r.last_seq) {
                    (Some(f), Some(l)) => format!("events {f}..{l}"),
                    _ => "no events in the range".into(),
                };
                format!(
                    "Exported {} event(s) ({range}) as {}; {} checkpoint(s)\nManifest {} signed by {}\n",
                    r.count,
                    r.format,
                    r.checkpoints,
                    r.manifest.display(),
                    r.signer_key
                )
            })
        }
        AuditCmd::Verify { dir, .. } => Err(CentralError::Other(format!(
            "audit verify {} runs without the centre",
            dir.display()
        ))),
    }
}

/// After a command changed something: sign a checkpoint over the newest event (the audit key
/// is made first if missing). A failure is logged; the change stands.
async fn checkpoint_after(cfg: &CentreConfig, pool: &deadpool_postgres::Pool, what: &str) {
    match hsm::open(&cfg.hsm) {
        Ok(store) => {
            central::audit::checkpoint_after(pool, store.as_ref(), &cfg.centre.name, what).await
        }
        Err(e) => {
            tracing::warn!(error = %e, after = what, "could not open the HSM to sign an audit checkpoint")
        }
    }
}

async fn station(cli: &Cli, cfg: &CentreConfig, sc: &StationCmd) -> Result<(), CentralError> {
    let pool = central::db::pool(&cfg.database)?;
    match sc {
        StationCmd::Add {
            office,
            station,
            operator,
        } => {
            let s = log_in(&pool, cfg, operator, "add stations", &[Role::CaAdmin]).await?;
            let added = stations::add(&pool, &s, office, station).await?;
            checkpoint_after(cfg, &pool, "station.added").await;
            let v = serde_json::json!({
                "station": added.station, "office": added.office,
                "enrolment_code": added.code.as_str(), "expires_at": added.expires_at,
            });
            print(cli.json, &v, |_| {
                format!(
                    "Station {} of office {} added.\nEnrolment code (one use, until {}): {}\n",
                    added.station,
                    added.office,
                    added.expires_at,
                    added.code.as_str()
                )
            })
        }
        StationCmd::List { operator } => {
            let s = log_in(
                &pool,
                cfg,
                operator,
                "list stations",
                &[Role::CaAdmin, Role::Auditor],
            )
            .await?;
            let list = stations::list(&pool, &s).await?;
            print(cli.json, &list, |l| {
                l.iter()
                    .map(|st| {
                        let until = match st.enrolment_expires_at.as_deref() {
                            Some(t) if st.enrolment_code_expired => {
                                format!(" (code expired {t}: add the station again for a new one)")
                            }
                            Some(t) => format!(" (code valid until {t})"),
                            None => String::new(),
                        };
                        let issuer = st
                            .identity_issuer
                            .as_deref()
                            .map(|k| format!(" (identity under {k})"))
                            .unwrap_or_default();
                        let ds = match (&st.document_signer_until, st.document_signer_days_left) {
                            (Some(t), Some(d)) if d < 0 => {
                                format!(" (Document Signer ended {t}: it must renew)")
                            }
                            (Some(t), Some(d)) => {
                                format!(" (Document Signer until {t}, {d} days)")
                            }
                            _ => String::new(),
                        };
                        format!(
                            "{:<6} {:<24} {}{until}{ds}{issuer}\n",
                            st.office, st.name, st.state
                        )
                    })
                    .collect()
            })
        }
        StationCmd::Disable {
            station,
            reason,
            operator,
        } => {
            let s = log_in(&pool, cfg, operator, "disable stations", &[Role::CaAdmin]).await?;
            let done = stations::disable(&pool, &s, station, reason.as_deref()).await?;
            checkpoint_after(cfg, &pool, "station.disabled").await;
            print(cli.json, &done, |d| {
                let mut out = format!("Station {} disabled.\n", d.station);
                for c in &d.revoked {
                    out.push_str(&format!(
                        "Revoked ({}): {} certificate {} (on the CRL of {})\n",
                        d.reason.as_deref().unwrap_or(""),
                        c.purpose,
                        c.serial,
                        c.issuer_key
                    ));
                }
                if d.cards_to_replace > 0 {
                    let cards = if d.cards_to_replace == 1 {
                        "1 card it issued is"
                    } else {
                        "cards it issued are"
                    };
                    let count = if d.cards_to_replace == 1 {
                        String::new()
                    } else {
                        format!("{} ", d.cards_to_replace)
                    };
                    out.push_str(&format!(
                        "{count}{cards} flagged for replacement (station cards-to-replace)\n"
                    ));
                }
                out
            })
        }
        StationCmd::CardsToReplace { station, operator } => {
            let roles = [Role::CaAdmin, Role::Auditor];
            let s = log_in(&pool, cfg, operator, "list cards to replace", &roles).await?;
            let cards = central::replacements::list(&pool, &s, station.as_deref()).await?;
            print(cli.json, &cards, |l| {
                if l.is_empty() {
                    return "No card is flagged for replacement.\n".to_owned();
                }
                l.iter().map(centre_api::CardToReplace::line).collect()
            })
        }
    }
}

async fn log_in(
    pool: &deadpool_postgres::Pool,
    cfg: &CentreConfig,
    operator: &str,
    action: &str,
    roles: &[Role],
) -> Result<operators::Session, CentralError> {
    let password = read_secret(&format!("Password for {operator}"), false)?;
    operators::log_in(pool, &cfg.centre.name, operator, &password, action, roles).await
}

fn show_text(r: &central::show::HolderRecord) -> String {
    let h = &r.holder;
    let mut s = format!(
        "Holder {}: {} {}{}\n  born {} in {}, sex {}, citizenship {}\n",
        h.pinfl,
        h.surname,
        h.given_names,
        h.patronymic
            .as_deref()
            .map(|p| format!(" {p}"))
            .unwrap_or_default(),
        h.date_of_birth,
        h.place_of_birth,
        h.sex,
        h.citizenship
    );
    s += "Addresses:\n";
    for a in &r.addresses {
        let x = &a.address;
        s += &format!(
            "  {:<9} {}, {}, {} {}{} (from {}{}) recorded {} by {} at {}\n",
            x.kind.as_str(),
            x.region,
            x.district,
            x.street,
            x.house,
            x.apartment
                .as_deref()
                .map(|p| format!(", apt {p}"))
                .unwrap_or_default(),
            x.registered_on,
            x.registered_until
                .as_deref()
                .map(|u| format!(" until {u}"))
                .unwrap_or_default(),
            a.recorded_at,
            a.operator,
            a.station
        );
    }
    s += "Documents:\n";
    for d in &r.documents {
        s += &format!(
            "  {} {:<9} office {} station {} issued {} expires {} card {}\n",
            d.document,
            d.state,
            d.office,
            d.station,
            d.date_of_issue,
            d.date_of_expiry,
            d.card_serial
        );
        if let Some(ds) = &d.document_signer {
            s += &format!("    EF.SOD signed by Document Signer {ds}\n");
        }
        if let Some(why) = &d.replacement_due {
            s += &format!("    to be replaced: {why}\n");
        }
        for r in &d.renewals {
            s += &format!("    {}\n", r.line());
        }
    }
    s += "Certificates:\n";
    for c in &r.certificates {
        s += &format!(
            "  {} {} {:<11} {:<7}{} ({})\n",
            c.serial,
            c.slot,
            c.profile,
            c.state,
            c.revocation_reason
                .as_deref()
                .map(|r| format!(" {r}"))
                .unwrap_or_default(),
            c.document
        );
    }
    s
}

fn state_word(active: bool, locked: bool) -> &'static str {
    match (active, locked) {
        (_, true) => "locked",
        (true, false) => "active",
        (false, false) => "disabled",
    }
}

/// A secret from a masked prompt on the terminal (twice when `confirm`), or the first line of
/// standard input when it is not a terminal.
fn read_secret(prompt: &str, confirm: bool) -> Result<Zeroizing<String>, CentralError> {
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CentralError::io(Path::new("<stdin>"), e))?;
        let trimmed = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned());
        if trimmed.is_empty() {
            return Err(CentralError::invalid(
                "password",
                "standard input gave an empty line",
            ));
        }
        return Ok(trimmed);
    }
    let first = Zeroizing::new(
        rpassword::prompt_password(format!("{prompt}: "))
            .map_err(|e| CentralError::Other(format!("prompt: {e}")))?,
    );
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password(format!("{prompt} (again): "))
                .map_err(|e| CentralError::Other(format!("prompt: {e}")))?,
        );
        if *first != *again {
            return Err(CentralError::invalid("password", "the two entries differ"));
        }
    }
    Ok(first)
}

fn print<T: serde::Serialize>(
    json: bool,
    v: &T,
    text: impl FnOnce(&T) -> String,
) -> Result<(), CentralError> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(v).map_err(|e| CentralError::Other(e.to_string()))?
        );
    } else {
        print!("{}", text(v));
    }
    Ok(())
}
