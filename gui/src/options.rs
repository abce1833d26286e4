//! How the GUI is started: the data dir, the idle log-out and which readers are the station's.

use std::path::PathBuf;
use std::time::Duration;

/// How the GUI is started.
#[derive(Debug, Clone)]
pub struct GuiOptions {
    pub data_dir: PathBuf,
    /// Log the operator out after this long without input.
    pub idle_timeout: Duration,
    /// Poll PC/SC for the reader panel (off in snapshot tests: the shared pcscd's other
    /// readers are not part of this station).
    pub poll_readers: bool,
    /// Only this reader (or readers whose name contains it) is the station's.
    pub reader: Option<String>,
}

impl GuiOptions {
    pub fn new(data_dir: PathBuf) -> Self {
        GuiOptions {
            data_dir,
            idle_timeout: Duration::from_secs(5 * 60),
            poll_readers: true,
            reader: None,
        }
    }
}
