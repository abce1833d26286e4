//! `idstation init`: the station's creation ceremony (HSM token, CA hierarchy, registry, the
//! first ca-admin); the work is in `station::init`.

use std::path::PathBuf;

use clap::Args;
use station::error::StationError;
use station::init::{self, InitOptions};
use station::operators::read_secret;

use super::Ctx;

#[derive(Args)]
pub struct InitArgs {
    /// Name of the first ca-admin operator.
    #[arg(long, default_value = "admin")]
    admin: String,
    /// Name of a second ca-admin created by the ceremony (password from
    /// IDSTATION_NEW_PASSWORD or a prompt). Later ca-admins need an existing ca-admin's
    /// approval besides the one who adds them, so dual control needs two from the start.
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
    /// File holding the HSM user PIN (first line); otherwise the PIN is read from
    /// IDSTATION_HSM_PIN at every start. The PIN is never stored by idstation.
    #[arg(long, value_name = "FILE")]
    hsm_pin_file: Option<PathBuf>,
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
        s += &super::ca::summaries_text(&r.cas);
        s
    })
}

/// The ceremony's options: the arguments and the secrets (environment or prompt).
fn options(a: &InitArgs) -> Result<InitOptions, StationError> {
    let hsm_pin = match &a.hsm_pin_file {
        Some(f) => {
            hsm::SecretSource::File(std::path::absolute(f).map_err(|e| StationError::io(f, e))?)
        }
        None => hsm::SecretSource::Env("IDSTATION_HSM_PIN".into()),
    };
    let admin_password = read_secret(
        "IDSTATION_PASSWORD",
        &format!("Password for {}", a.admin),
        true,
    )?;
    let second_admin = match &a.second_admin {
        Some(n) => Some((
            n.clone(),
            read_secret("IDSTATION_NEW_PASSWORD", &format!("Password for {n}"), true)?,
        )),
        None => None,
    };
    let hsm_so_pin = std::env::var("IDSTATION_HSM_SO_PIN")
        .ok()
        .map(zeroize::Zeroizing::new);
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
