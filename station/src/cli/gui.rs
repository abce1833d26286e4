//! `idstation gui`: replaces this process with `idstation-gui` (the `gui` crate) on the same
//! data dir; `gui` depends on `station`, so it cannot be linked into this binary.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use clap::Args;
use station::error::StationError;

use super::Ctx;

#[derive(Args)]
pub struct GuiArgs {
    /// Only this reader (or readers whose name contains it) belongs to the station.
    #[arg(long)]
    reader: Option<String>,
    /// Log the operator out after this many seconds without input.
    #[arg(long, default_value_t = 300)]
    idle_timeout: u64,
}

/// `idstation-gui` next to this binary, else on PATH; returns only when it cannot start.
pub fn run(ctx: &Ctx, a: &GuiArgs) -> Result<(), StationError> {
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("idstation-gui")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("idstation-gui"));
    let mut c = std::process::Command::new(&sibling);
    c.arg("--data-dir")
        .arg(ctx.data_dir)
        .arg("--idle-timeout")
        .arg(a.idle_timeout.to_string());
    if let Some(r) = &a.reader {
        c.arg("--reader").arg(r);
    }
    let e = c.exec();
    Err(StationError::Other(format!(
        "cannot start {}: {e} (build it with `cargo build -p gui`)",
        sibling.display()
    )))
}
