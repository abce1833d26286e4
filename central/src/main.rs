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

#[derive(Parser)]
#[command(
    name = "idcentral",
    version,
    about = "The national centre of idstation: one CA and one registry for every office"
)]
struct Cli {
    /// The centre's configuration (centre.toml).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create the schema, the CA keys in the HSM and their certificates, and the first ca-admin
    /// (password: prompt, or the first line of standard input).
    Init {
        #[arg(long, value_name = "NAME")]
        admin: String,
    },
    /// Serve the HTTPS API (TLS 1.3, mutual TLS for stations) until stopped.
    Serve {
        /// Address to listen on (default: `[server] listen`); port 0 picks a free port.
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
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
    /// Cut a station off.
    Disable {
        #[arg(long)]
        station: String,
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
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Walk the hash chain in the database.
    VerifyLog {
        #[arg(long, value_name = "NAME")]
        operator: String,
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
    let cfg = CentreConfig::load(&cli.config)?;
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
        Cmd::Init { admin } => {
            let admin_password = read_secret(&format!("Password for {admin}"), true)?;
            let opts = central::init::InitOptions {
                admin: admin.clone(),
                admin_password,
            };
            let report = central::init::init(cfg, &opts).await?;
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
        Cmd::Serve { listen } => central::server::serve(cfg, *listen).await,
        Cmd::Station(sc) => station(cli, cfg, sc).await,
        Cmd::Operator(OperatorCmd::List { operator }) => {
            let pool = central::db::pool(&cfg.database)?;
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
        Cmd::Audit(AuditCmd::VerifyLog { operator }) => {
            let pool = central::db::pool(&cfg.database)?;
            log_in(
                &pool,
                cfg,
                operator,
                "verify the audit log",
                &[Role::CaAdmin, Role::Auditor],
            )
            .await?;
            let client = pool.get().await?;
            let n = central::audit::verify_chain(&client).await?;
            print(cli.json, &serde_json::json!({ "events": n }), |_| {
                format!("audit log: {n} events, the chain holds\n")
            })
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
                        let until = st
                            .enrolment_expires_at
                            .as_deref()
                            .map(|t| format!(" (code valid until {t})"))
                            .unwrap_or_default();
                        format!("{:<6} {:<24} {}{}\n", st.office, st.name, st.state, until)
                    })
                    .collect()
            })
        }
        StationCmd::Disable { station, operator } => {
            let s = log_in(&pool, cfg, operator, "disable stations", &[Role::CaAdmin]).await?;
            stations::disable(&pool, &s, station).await?;
            print(
                cli.json,
                &serde_json::json!({ "station": station, "state": "disabled" }),
                |_| format!("Station {station} disabled.\n"),
            )
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
