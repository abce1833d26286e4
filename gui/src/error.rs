//! The GUI's error type: what can go wrong outside the station core (window, photo file).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum GuiError {
    /// The photo file could not be read or decoded.
    #[error("photo: {path}: {reason}")]
    Photo { path: PathBuf, reason: String },
    /// The native window could not be opened.
    #[error("window: {0}")]
    Window(String),
    /// The station worker thread is gone (it panicked or was never started).
    #[error("the station worker stopped; restart the GUI")]
    WorkerGone,
}
