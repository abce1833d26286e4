//! `idstation-gui`: opens the station GUI on a data dir (`idstation gui` runs this binary).
//! The HSM PIN comes from the file station.toml names (`[hsm] pin = { file = ... }`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "idstation-gui",
    version,
    about = "ID-card issuance station: the GUI"
)]
struct Cli {
    /// The station's data dir (default: $XDG_DATA_HOME/idstation).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Log the operator out after this many seconds without input.
    #[arg(long, default_value_t = 300)]
    idle_timeout: u64,
    /// Only this reader (or readers whose name contains it) belongs to the station.
    #[arg(long)]
    reader: Option<String>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("IDSTATION_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let data_dir = cli
        .data_dir
        .unwrap_or_else(station::datadir::default_data_dir);
    // SoftHSM2 reads its configuration only from the environment the process started with:
    // restart with the data dir's when it is missing, before any thread exists. A data dir
    // whose configuration cannot be read needs nothing here; the GUI reports it.
    let env = station::hsm_env::for_data_dir(&data_dir).unwrap_or_default();
    if let Err(e) = station::hsm_env::restart_with(&env) {
        eprintln!("idstation-gui: {e}");
        return ExitCode::FAILURE;
    }
    let mut opts = gui::GuiOptions::new(data_dir);
    opts.idle_timeout = Duration::from_secs(cli.idle_timeout.max(10));
    opts.reader = cli.reader;
    match gui::run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("idstation-gui: {e}");
            ExitCode::FAILURE
        }
    }
}
