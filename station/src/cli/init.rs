//! `idstation init`: the station's creation ceremony (HSM token, CA hierarchy, registry, the
//! first ca-admin); the work is in `station::init`, or with `--centre` in
//! `station::init_centre` (enrolment with the national centre).

use std::path::PathBuf;

use clap::Args;
use station::error::StationError;
use station::init::{self, InitOptions};
use station::init_centre::{init_centre, CentreInitOptions};
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
    /// Office code of this issuance office (default TAS01). Not with --centre: the centre
    /// says which office the station belongs to.
    #[arg(long)]
    office: Option<String>,
    /// Document-number series of the office's first number block (default AA). Not with
    /// --centre: the centre assigns the station's number block.
    #[arg(long)]
    series: Option<String>,
    /// Enrol with the national centre at URL (https://HOST[:PORT]) instead of creating a CA
    /// hierarchy here: the centre certifies the station's identity, audit and Document Signer
    /// keys and its CAs issue the holders' certificates. Needs --centre-fingerprint and
    /// --enrolment-code.
    #[arg(long, value_name = "URL", requires_all = ["centre_fingerprint", "enrolment_code"])]
    centre: Option<String>,
    /// Another instance of the same centre (repeatable): requests the first does not answer
    /// go to the next (station.toml `[centre] other_urls`).
    #[arg(long, value_name = "URL", requires = "centre")]
    centre_also: Vec<String>,
    /// SHA-256 of the centre's TLS certificate, as `idcentral serve` prints it (hex, with or
    /// without colons). The first connection is refused, before anything is sent, unless the
    /// centre's certificate has exactly this fingerprint.
    #[arg(long, value_name = "FP", requires = "centre")]
    centre_fingerprint: Option<String>,
    /// The one-time enrolment code `idcentral station add` printed (valid 24 hours, works
    /// once). `-` reads it as the last secret (masked prompt, or a line of standard input), so
    /// that it is not on the command line.
    #[arg(long, value_name = "CODE", requires = "centre")]
    enrolment_code: Option<String>,
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
    if a.centre.is_some() {
        return run_centre(ctx, a);
    }
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

/// `init --centre`: enrol with the national centre.
fn run_centre(ctx: &Ctx, a: &InitArgs) -> Result<(), StationError> {
    for (given, flag, why) in [
        (
            a.office.is_some(),
            "office",
            "the centre says which office the station belongs to",
        ),
        (
            a.series.is_some(),
            "series",
            "the centre assigns the station's number block",
        ),
    ] {
        if given {
            return Err(StationError::invalid(
                flag,
                format!("--{flag} is not taken with --centre: {why}"),
            ));
        }
    }
    let s = secrets(a)?;
    let code = match a.enrolment_code.as_deref() {
        Some("-") => read_secret("enrolment code", "Enrolment code", false)?,
        Some(c) => zeroize::Zeroizing::new(c.to_owned()),
        None => {
            return Err(StationError::invalid(
                "enrolment-code",
                "is required with --centre",
            ))
        }
    };
    let opts = CentreInitOptions {
        url: a.centre.clone().unwrap_or_default(),
        other_urls: a.centre_also.clone(),
        fingerprint: a.centre_fingerprint.clone().unwrap_or_default(),
        enrolment_code: code,
        station_name: a.station.clone(),
        admin_name: a.admin.clone(),
        admin_password: s.admin_password,
        second_admin: s.second_admin,
        hsm_pin: s.hsm_pin,
        hsm_so_pin: s.hsm_so_pin,
        module: a.hsm_module.clone(),
        softhsm_dir: absolute_softhsm_dir(a)?,
    };
    let report = init_centre(ctx.data_dir, &opts)?;
    ctx.print(&report, |r| {
        let mut s = format!(
            "{} {} with the centre at {} as station {} of office {} (HSM token {:?}, ca-admin {})\n",
            if r.resumed { "Finished enrolling" } else { "Enrolled" },
            r.data_dir.display(),
            r.centre,
            r.station,
            r.office,
            r.hsm_token,
            r.admin
        );
        s += &format!(
            "Identity certificate {} valid until {}\nNumber block {} {:07}..{:07} ({} left)\n",
            r.identity_subject,
            r.identity_not_after,
            r.number_block.series,
            r.number_block.first,
            r.number_block.last,
            r.number_block.left()
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

/// The ceremony's secrets besides the enrolment code.
struct Secrets {
    admin_password: zeroize::Zeroizing<String>,
    second_admin: Option<(String, zeroize::Zeroizing<String>)>,
    hsm_pin: Option<hsm::SecretSource>,
    hsm_so_pin: Option<zeroize::Zeroizing<String>>,
}

/// The ceremony's options: the arguments and the secrets, in this order (masked prompts, or
/// one line each on standard input): the admin's password, the second admin's (with
/// `--second-admin`), the HSM SO PIN (with `--hsm-so-pin-stdin`); with `--centre` and
/// `--enrolment-code -`, the enrolment code last.
fn options(a: &InitArgs) -> Result<InitOptions, StationError> {
    let s = secrets(a)?;
    Ok(InitOptions {
        station_name: a.station.clone(),
        office: a.office.clone().unwrap_or_else(|| "TAS01".into()),
        series: a.series.clone().unwrap_or_else(|| "AA".into()),
        admin_name: a.admin.clone(),
        admin_password: s.admin_password,
        second_admin: s.second_admin,
        hsm_pin: s.hsm_pin,
        hsm_so_pin: s.hsm_so_pin,
        module: a.hsm_module.clone(),
        softhsm_dir: absolute_softhsm_dir(a)?,
    })
}

fn secrets(a: &InitArgs) -> Result<Secrets, StationError> {
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
    Ok(Secrets {
        admin_password,
        second_admin,
        hsm_pin,
        hsm_so_pin,
    })
}
