//! `idstation`: the station's command line. It parses arguments and calls one function per
//! command (the modules under `cli/`), which read secrets from the environment or a prompt
//! (never from argv), call `station` and print the result (text, or JSON with `--json`). It
//! exits with the documented code:
//! 0 ok, 2 invalid input, 3 card or reader, 4 HSM, 5 conflict, 6 not permitted, 7 the national
//! centre cannot be reached, 1 anything else.

use std::path::PathBuf;
use std::process::ExitCode;

mod cli;

use clap::{Parser, Subcommand};
use cli::Ctx;
use station::error::StationError;

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
    /// (secrets from masked prompts or, without a terminal, one per line on standard input:
    /// see `init --help`). Refuses an initialised data dir.
    Init(cli::init::InitArgs),
    /// Certificate authority.
    #[command(subcommand)]
    Ca(cli::ca::CaCmd),
    /// The national centre this station is enrolled with (`init --centre`).
    #[command(subcommand)]
    Centre(cli::centre::CentreCmd),
    /// Operators.
    #[command(subcommand)]
    Operator(cli::operator::OperatorCmd),
    /// Readers, whether a card is present, and its lifecycle state.
    Readers,
    /// Issue an ID card: the holder record onto the blank card in a reader (clerk). The holder
    /// types the PIN (prompt, or --pin-fd); the station draws the PUK and writes it into the
    /// PIN letter (--pin-letter), nowhere else.
    Issue(cli::issue::IssueArgs),
    /// Show a holder, a document or an issuance job with its certificates and status (text;
    /// JSON with --json). Give exactly one of --document, --pinfl and --job. A clerk or an
    /// auditor; every read of a holder's record is audited (holder.read).
    Show(cli::show::ShowArgs),
    /// Read the card in a reader as an inspection system would (ICAO 9303): the access control
    /// (PACE with the CAN from --can-fd, or the registry's MRZ with --mrz-from-registry), Chip
    /// and Active Authentication, passive authentication, each data group's hash. A clerk or
    /// an auditor; audited; the exit code is not 0 unless every check passed.
    Inspect(cli::inspect::InspectArgs),
    /// Take a document out of use (lost, stolen, damaged, ...): status, certificate revocation.
    Revoke(cli::revoke::RevokeArgs),
    /// Renew the certificates of an issued card: new key pairs on the card (still LOCKED), new
    /// certificates (capped at the document's expiry), read back and test-signed with the
    /// holder's PIN, the old ones revoked as superseded (clerk). A renewal interrupted after
    /// its certificates were issued is finished by running it again with the card.
    Renew(cli::renew::RenewArgs),
    /// Unblock the PIN of an issued card: after the clerk confirmed the holder's identity, the
    /// holder's new PIN is set with the issuer's key; --new-puk also sets a new PUK and writes a
    /// new PIN letter (clerk).
    Unblock(cli::unblock::UnblockArgs),
    /// Suspend a document: its certificates on hold (CRL reason certificateHold), the document
    /// SUSPENDED (clerk; standalone station).
    Suspend(cli::suspend::SuspendArgs),
    /// Resume a suspended document with its holder in person (--identity-confirmed), within
    /// [services] suspension_limit_days: the hold released, the certificates off the next CRL.
    Resume(cli::resume::ResumeArgs),
    /// Replace a lost, stolen or damaged card, or after a name change: the old document held, a new card issued for
    /// the same holder (as `issue`), then the old one revoked with the link old → new; an
    /// issuance that fails gives the old document back (clerk; standalone station).
    Replace(cli::replace::ReplaceArgs),
    /// Physical cards after their document left use (`card returned`).
    #[command(subcommand)]
    Card(cli::card::CardCmd),
    /// A holder's registration addresses: `address set` (permanent or temporary) and
    /// `address end` (cancel a temporary registration); history kept, e-government outbox.
    #[command(subcommand)]
    Address(cli::address::AddressCmd),
    /// Resolve unfinished issuance jobs (interrupted by a pulled card, a crash, a power cut),
    /// then settle interrupted replacements and CA requests.
    Recover(cli::recover::RecoverArgs),
    /// The audit log: checkpoints, export for auditors, offline verification.
    #[command(subcommand)]
    Audit(cli::audit::AuditCmd),
    /// A copy of the registry taken while the station runs (`backup create`, ca-admin), and its
    /// check against this station's audit key (`backup verify`).
    #[command(subcommand)]
    Backup(cli::backup::BackupCmd),
    /// Messages for other government systems: the station's own outbox, or on an enrolled
    /// station the national centre's e-government deliveries (`list --failed`, `retry`).
    #[command(subcommand)]
    Outbox(cli::audit::OutboxCmd),
    /// Open the station GUI on the data dir (runs `idstation-gui` from the `gui` crate, found
    /// next to this binary or on PATH: `gui` depends on `station`, so it cannot be linked in).
    Gui(cli::gui::GuiArgs),
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
    let ctx = Ctx {
        json: cli.json,
        data_dir: &data_dir,
    };
    match start_with_hsm_environment(&cli.cmd, &data_dir).and_then(|()| run(&cli.cmd, &ctx)) {
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

/// SoftHSM2 reads its configuration only from the environment the process started with: when
/// this process lacks the data dir's, restart it with it (before any thread exists). A data dir
/// whose configuration cannot be read needs nothing here; the command reports it.
fn start_with_hsm_environment(cmd: &Cmd, data_dir: &std::path::Path) -> Result<(), StationError> {
    let env = match cmd {
        Cmd::Init(a) => {
            station::hsm_env::for_init(data_dir, cli::init::absolute_softhsm_dir(a)?.as_deref())
        }
        _ => station::hsm_env::for_data_dir(data_dir).unwrap_or_default(),
    };
    station::hsm_env::restart_with(&env)
}

/// One function per command.
fn run(cmd: &Cmd, ctx: &Ctx) -> Result<(), StationError> {
    match cmd {
        Cmd::Init(a) => cli::init::run(ctx, a),
        Cmd::Ca(c) => cli::ca::run(ctx, c),
        Cmd::Centre(c) => cli::centre::run(ctx, c),
        Cmd::Operator(c) => cli::operator::run(ctx, c),
        Cmd::Readers => cli::readers::run(ctx),
        Cmd::Issue(a) => cli::issue::run(ctx, a),
        Cmd::Show(a) => cli::show::run(ctx, a),
        Cmd::Inspect(a) => cli::inspect::run(ctx, a),
        Cmd::Revoke(a) => cli::revoke::run(ctx, a),
        Cmd::Renew(a) => cli::renew::run(ctx, a),
        Cmd::Unblock(a) => cli::unblock::run(ctx, a),
        Cmd::Suspend(a) => cli::suspend::run(ctx, a),
        Cmd::Resume(a) => cli::resume::run(ctx, a),
        Cmd::Replace(a) => cli::replace::run(ctx, a),
        Cmd::Card(c) => cli::card::run(ctx, c),
        Cmd::Address(c) => cli::address::run(ctx, c),
        Cmd::Recover(a) => cli::recover::run(ctx, a),
        Cmd::Audit(c) => cli::audit::run_audit(ctx, c),
        Cmd::Backup(c) => cli::backup::run(ctx, c),
        Cmd::Outbox(c) => cli::audit::run_outbox(ctx, c),
        Cmd::Gui(a) => cli::gui::run(ctx, a),
    }
}
