//! The `idstation` commands, one module per command: each declares its arguments (clap) and
//! one function that opens the station, calls `station` and prints the result. What they share
//! is here: the output switch (text or `--json`), the operator argument and the log-in.

pub mod address;
pub mod audit;
pub mod backup;
pub mod ca;
pub mod card;
pub mod centre;
pub mod gui;
pub mod init;
pub mod inspect;
pub mod issue;
pub mod operator;
pub mod readers;
pub mod recover;
pub mod renew;
pub mod replace;
pub mod resume;
pub mod revoke;
pub mod show;
pub mod suspend;
pub mod unblock;

use std::path::Path;

use clap::Args;
use registry::Role;
use serde::Serialize;
use station::error::StationError;
use station::operators::Session;
use station::secret_input::read_secret;
use station::Station;

/// What every command gets from the global flags.
pub struct Ctx<'a> {
    /// `--json`: machine-readable output on stdout.
    pub json: bool,
    /// `--data-dir`, or the default data dir.
    pub data_dir: &'a Path,
}

#[derive(Args)]
pub struct OperatorArg {
    /// The operator doing this. Their password is typed at a masked prompt or, without a
    /// terminal, is the first line of standard input (never the environment).
    #[arg(long)]
    pub operator: String,
}

impl Ctx<'_> {
    /// Print `value` as JSON with `--json`, otherwise as `text(value)`.
    pub fn print<T: Serialize>(
        &self,
        value: &T,
        text: impl FnOnce(&T) -> String,
    ) -> Result<(), StationError> {
        if self.json {
            let s = serde_json::to_string_pretty(value)
                .map_err(|e| StationError::Other(e.to_string()))?;
            println!("{s}");
        } else {
            print!("{}", text(value));
        }
        Ok(())
    }

    /// Open the station (logging in to the HSM) and log `operator` in for `action` with one of
    /// `roles`, the password from a prompt or standard input's first line (refusals are audited).
    pub fn open_as(
        &self,
        operator: &str,
        action: &str,
        roles: &[Role],
    ) -> Result<(Station, Session), StationError> {
        log_in(Station::open(self.data_dir)?, operator, action, roles)
    }

    /// [`Ctx::open_as`] on a registry that is a backup copy put back in place, to finish the
    /// restore (`backup restored`): the HSM is not opened.
    pub fn open_restoring_as(
        &self,
        operator: &str,
        action: &str,
        roles: &[Role],
        before_log_in: impl FnOnce(&mut Station) -> Result<(), StationError>,
    ) -> Result<(Station, Session), StationError> {
        let mut st = Station::open_restoring(self.data_dir)?;
        before_log_in(&mut st)?;
        log_in(st, operator, action, roles)
    }

    /// [`Ctx::open_as`] for a command that only reads the registry: the HSM is not opened.
    pub fn open_read_only_as(
        &self,
        operator: &str,
        action: &str,
        roles: &[Role],
    ) -> Result<(Station, Session), StationError> {
        log_in(
            Station::open_read_only(self.data_dir)?,
            operator,
            action,
            roles,
        )
    }
}

/// The operator's password: a masked prompt, or the first line of standard input.
pub fn password() -> Result<zeroize::Zeroizing<String>, StationError> {
    read_secret("operator password", "Operator password", false)
}

fn log_in(
    mut st: Station,
    operator: &str,
    action: &str,
    roles: &[Role],
) -> Result<(Station, Session), StationError> {
    let session = st.authorize(operator, &password()?, action, roles)?;
    Ok((st, session))
}
