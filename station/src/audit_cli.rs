//! `idstation audit …` and `idstation outbox …` (argument parsing and output only; the work
//! is in the `station` library).

use std::path::Path;

use clap::Subcommand;
use station::error::StationError;

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Sign a checkpoint over the newest audit event with the station's HSM audit key.
    Checkpoint {
        #[command(flatten)]
        op: crate::OperatorArg,
    },
}

#[derive(Subcommand)]
pub enum OutboxCmd {
    /// Messages not yet acknowledged by the receiving system.
    List,
}

pub fn run_audit(cmd: &AuditCmd, _json: bool, _data_dir: &Path) -> Result<(), StationError> {
    match cmd {
        AuditCmd::Checkpoint { .. } => Err(StationError::Other("audit checkpoint: not built yet".into())),
    }
}

pub fn run_outbox(cmd: &OutboxCmd, _json: bool, _data_dir: &Path) -> Result<(), StationError> {
    match cmd {
        OutboxCmd::List => Err(StationError::Other("outbox list: not built yet".into())),
    }
}
