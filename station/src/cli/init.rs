//! `idstation init`: the station's creation ceremony (HSM token, CA hierarchy, registry, the
//! first ca-admin); the work is in `station::init`.

use std::path::PathBuf;

use clap::Args;
use station::error::StationError;
use station::init::{self, InitOptions};
use station::secret_input::read_secret;

use super::Ctx;

#[derive(Args)]
pub struct InitArgs {
    /// Name of the first ca-admin operator.
    #[arg(long, default_value = "admin")]
    admin: String,
    /// Name of a second ca-admin created by the ceremony (its password is the second secret
    /// read). Later ca-admins need an existing ca-admin's approval besides the one who adds
    /// them, so dual control needs two from the start.
    #[arg(long, value_name = "NAME")]
    second_admin: Option<String>,
    /// Office code of this issuance office (e.g. TAS01).
    #[arg(long, default_value = "TAS01")]
    office: String,
    /// Document-number series of the office's first number block.
    #[arg(long, default_value = "AA")]
    series: String,
    /// Name of this station in audit events.
    #[arg(long, default_value = "station-1")]
    station: String,
    /// File holding the HSM user PIN (first line; mode 0600, the station's user's). Without
    /// it, init draws a random PIN and writes it to DATA/secrets/hsm-pin (created new, 0600).
    /// Every start reads the PIN from the file station.toml names.
    #[arg(long, value_name = "FILE")]
    hsm_pin_file: Option<PathBuf>,
    /// Read the HSM security officer PIN as the last secret (prompt or standard input)
    /// instead of drawing a random one that nobody keeps.
    #[arg(long)]
    hsm_so_pin_stdin: bool,
    /// PKCS#11 module.
    #[arg(long, value_name = "PATH", default_value = hsm::pkcs11::SOFTHSM2_MODULE)]
    hsm_module: PathBuf,
    /// Keep the SoftHSM2 token in DIR (DIR/softhsm2.conf, DIR/tokens/) instead of the data
    /// dir's hsm/, e.g. on a separate encrypted volume. One station per DIR.
    #[arg(long, value_name = "DIR")]
    softhsm_dir: Option<PathBuf>,
}

/// `--softhsm-dir` made absolute (the configuration outlives the working directory).
pub fn absolute_softhsm_dir(a: &InitArgs) -> Result<Option<PathBuf>, StationError> {
    a.softhsm_dir
        .as_deref()
        .map(|d| std::path::absolute(d).map_err(|e| StationError::io(d, e)))
        .transpose()
}

pub fn run(ctx: &Ctx, a: &InitArgs) -> Result<(), StationError> {
    let report = init::init(ctx.data_dir, &options(a)?)?;
    ctx.print(&report, |r| {
        let mut s = format!(
            "Initialised {} (HSM token {:?}, ca-admin {})\n",
            r.data_dir.display(),
            r.hsm_token,
            r.admin
        );
        if r.hsm_pin_generated {
            s += &format!(
                "HSM user PIN drawn at random into {} (0600); every start reads it from there\n",
                r.hsm_pin_file.display()
            );
        }
        s += &super::ca::summaries_text(&r.cas);
        s
    })
}

/// The ceremony's options: the arguments and the secrets, in this order (masked prompts, or
/// one line each on standard input): the admin's password, the second admin's (with
/// `--second-admin`), the HSM SO PIN (with `--hsm-so-pin-stdin`).
fn options(a: &InitArgs) -> Result<InitOptions, StationError> {
    let hsm_pin = a
        .hsm_pin_file
        .as_ref()
        .map(|f| std::path::absolute(f).map_err(|e| StationError::io(f, e)))
        .transpose()?
        .map(hsm::SecretSource::File);
    let admin_password = read_secret("admin password", &format!("Password for {}", a.admin), true)?;
    let second_admin = match &a.second_admin {
        Some(n) => Some((
            n.clone(),
            read_secret("second admin password", &format!("Password for {n}"), true)?,
        )),
        None => None,
    };
    let hsm_so_pin = if a.hsm_so_pin_stdin {
        Some(read_secret("hsm SO PIN", "HSM security officer PIN", true)?)
    } else {
        None
    };
    Ok(InitOptions {
        station_name: a.station.clone(),
        office: a.office.clone(),
        series: a.series.clone(),
        admin_name: a.admin.clone(),
        admin_password,
        second_admin,
        hsm_pin,
        hsm_so_pin,
        module: a.hsm_module.clone(),
        softhsm_dir: absolute_softhsm_dir(a)?,
    })
}
