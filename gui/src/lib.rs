//! The idstation station GUI: log-in, and the clerk (issuance and card services), CA-admin
//! and auditor workspaces in egui/eframe over the `station` core. The UI thread only draws: card, HSM and
//! database work runs on the [`worker`] thread, PC/SC polling on the [`readers`] thread.
//! See docs/gui.md.
#![forbid(unsafe_code)]

pub mod app;
pub mod auditor;
pub mod ca;
pub mod card_preview;
pub mod centre_sync;
pub mod clerk;
pub mod deliveries;
pub mod error;
pub mod fonts;
pub mod form;
pub mod i18n;
pub mod notation;
pub mod options;
pub mod pin_window;
pub mod readers;
pub mod secret_field;
pub mod service_work;
pub mod services;
pub mod to_replace;
pub mod worker;

pub use app::StationApp;
pub use error::GuiError;
pub use options::GuiOptions;

/// Open the station window on `opts.data_dir` and run until it is closed.
pub fn run(opts: GuiOptions) -> Result<(), GuiError> {
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("idstation")
            .with_inner_size([1240.0, 780.0])
            .with_min_inner_size([1024.0, 700.0])
            .with_maximized(true),
        ..Default::default()
    };
    eframe::run_native(
        "idstation",
        native,
        Box::new(move |_cc| Ok(Box::new(StationApp::new(opts)))),
    )
    .map_err(|e| GuiError::Window(e.to_string()))
}
