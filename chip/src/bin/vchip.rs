//! `vchip`: the virtual ID card. `create` makes a blank card image, `insert` connects an image
//! to a vsmartcard vpcd reader slot and serves APDUs (the card is "in the reader" while the
//! connection stands), `show` prints what is on a card without its secrets. See docs/vchip.md
//! and docs/card.md.

use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use chip::vpcd::{serve, ServeOptions, SessionEnd};
use chip::{Applications, Card};

#[derive(Parser)]
#[command(
    name = "vchip",
    version,
    about = "idstation virtual ID card (PIV + ICAO 9303 LDS with BAC) for pcscd + vpcd"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a blank card image (transport PIN/PUK/management key, lifecycle BLANK).
    Create {
        /// Where to write the image.
        #[arg(long)]
        out: PathBuf,
        /// Chip serial number (default: random).
        #[arg(long)]
        serial: Option<u32>,
        /// A card without the PIV application (SELECT answers 6A82), for negative tests.
        #[arg(long)]
        no_piv: bool,
        /// A card without the ICAO 9303 LDS application (SELECT answers 6A82).
        #[arg(long)]
        no_lds: bool,
        /// PIN retry limit (1..=15).
        #[arg(long, default_value_t = chip::DEFAULT_PIN_RETRIES)]
        pin_retries: u8,
        /// PUK retry limit (1..=15).
        #[arg(long, default_value_t = chip::DEFAULT_PUK_RETRIES)]
        puk_retries: u8,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Insert the card into a vpcd slot and serve APDUs until killed.
    Insert {
        /// The card image (updated atomically after every state change).
        image: PathBuf,
        /// vpcd port of the slot (35963 = "Virtual PCD 00 00", 35964 = "... 00 01").
        #[arg(long, default_value_t = 35963)]
        port: u16,
        /// vpcd host.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Fault injection: drop the connection (card pulled) when APDU N+1 arrives, then exit.
        #[arg(long, value_name = "N")]
        tear_after: Option<u64>,
        /// With --tear-after: execute and persist APDU N+1 before dropping, without answering.
        #[arg(long, requires = "tear_after")]
        tear_after_processing: bool,
        /// Exit when the reader closes the connection instead of re-inserting.
        #[arg(long)]
        once: bool,
        /// Exit when standard input reaches end of file (the test rig's lifeline, so a card
        /// never outlives the test that inserted it).
        #[arg(long)]
        exit_with_stdin: bool,
        /// Leave Nagle's algorithm and delayed ACKs on (measurement only: about 50 ms per APDU).
        #[arg(long)]
        no_tcp_tuning: bool,
        /// Fault injection: when this LDS EF (FID in hex, e.g. 0101) is read, the chip flips
        /// the lowest bit of the EF's last byte in the returned data (repeatable). The stored
        /// file is unchanged.
        #[arg(long, value_name = "FID", value_parser = parse_fid)]
        corrupt_ef: Vec<u16>,
    },
    /// Print lifecycle, data objects and public keys of an image (never secrets).
    Show {
        /// The card image.
        image: PathBuf,
        /// Print the public part of the image as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VCHIP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Create {
            out,
            serial,
            no_piv,
            no_lds,
            pin_retries,
            puk_retries,
            force,
        } => {
            if out.exists() && !force {
                bail!(
                    "{}: already exists (use --force to overwrite)",
                    out.display()
                );
            }
            let serial = match serial {
                Some(s) => s,
                None => getrandom::u32().map_err(|e| anyhow::anyhow!("random serial: {e}"))?,
            };
            let card = Card::new_with_applications(
                serial,
                pin_retries,
                puk_retries,
                Applications {
                    piv: !no_piv,
                    lds: !no_lds,
                },
            )?;
            card.save(&out)?;
            println!("created {} serial {serial}", out.display());
            Ok(())
        }
        Cmd::Insert {
            image,
            port,
            host,
            tear_after,
            tear_after_processing,
            once,
            exit_with_stdin,
            no_tcp_tuning,
            corrupt_ef,
        } => insert(
            image,
            &host,
            port,
            ServeOptions {
                tear_after,
                tear_after_processing,
                no_tcp_tuning,
            },
            once,
            exit_with_stdin,
            &corrupt_ef,
        ),
        Cmd::Show { image, json } => show(image, json),
    }
}

fn insert(
    image: PathBuf,
    host: &str,
    port: u16,
    opts: ServeOptions,
    once: bool,
    exit_with_stdin: bool,
    corrupt_efs: &[u16],
) -> Result<()> {
    if exit_with_stdin {
        std::thread::spawn(|| {
            let mut sink = [0u8; 64];
            let mut stdin = std::io::stdin();
            loop {
                match stdin.read(&mut sink) {
                    Ok(0) | Err(_) => std::process::exit(0),
                    Ok(_) => {}
                }
            }
        });
    }
    let mut apdu_count = 0u64;
    loop {
        // Re-read the image on every insertion, as a real card keeps only what it persisted.
        let mut card =
            Card::load(&image).with_context(|| format!("loading {}", image.display()))?;
        for fid in corrupt_efs {
            card.corrupt_ef(*fid);
        }
        let mut stream = match TcpStream::connect((host, port)) {
            Ok(s) => s,
            Err(e) => {
                if once {
                    return Err(e).with_context(|| format!("connecting to vpcd at {host}:{port}"));
                }
                tracing::debug!(error = %e, "vpcd not reachable, retrying");
                std::thread::sleep(Duration::from_millis(250));
                continue;
            }
        };
        tracing::info!(port, serial = card.serial(), "card inserted");
        card.power_on();
        let end = serve(&mut stream, &mut card, &image, &opts, &mut apdu_count)?;
        drop(stream);
        match end {
            SessionEnd::Torn => {
                tracing::info!(apdus = apdu_count, "card torn out of the reader");
                return Ok(());
            }
            SessionEnd::ReaderClosed => {
                tracing::info!("reader closed the connection");
                if once {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
}

/// `--corrupt-ef`: an LDS1 file identifier in hex (0101..0110, 011D, 011E; `0x` allowed).
fn parse_fid(s: &str) -> Result<u16, String> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    let fid = u16::from_str_radix(digits, 16)
        .ok()
        .filter(|_| digits.len() == 4)
        .ok_or_else(|| format!("--corrupt-ef {s}: must be a file identifier of 4 hex digits"))?;
    if !chip::lds::is_lds_fid(fid) {
        return Err(format!(
            "--corrupt-ef {s}: not an LDS1 EF (0101..0110 data groups, 011D EF.SOD, 011E EF.COM)"
        ));
    }
    Ok(fid)
}

/// Name of an LDS1 EF (ICAO 9303 Part 10).
fn ef_name(fid: u16) -> String {
    match fid {
        chip::lds::EF_COM => "EF.COM".into(),
        chip::lds::EF_SOD => "EF.SOD".into(),
        0x0101..=0x0110 => format!("EF.DG{}", fid - 0x0100),
        _ => String::new(),
    }
}

fn object_name(tag: &str) -> &'static str {
    match tag {
        "7e" => "Discovery",
        "7f61" => "BIT group template",
        "5fc101" => "X.509 certificate for Card Authentication (9E)",
        "5fc102" => "CHUID",
        "5fc103" => "Cardholder fingerprints",
        "5fc105" => "X.509 certificate for PIV Authentication (9A)",
        "5fc106" => "Security object",
        "5fc107" => "CCC",
        "5fc108" => "Cardholder facial image",
        "5fc109" => "Printed information",
        "5fc10a" => "X.509 certificate for Digital Signature (9C)",
        "5fc10b" => "X.509 certificate for Key Management (9D)",
        "5fc10c" => "Key history",
        _ => "",
    }
}

fn show(image: PathBuf, json: bool) -> Result<()> {
    let card = Card::load(&image).with_context(|| format!("loading {}", image.display()))?;
    let body = card.public_description()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    println!("image:      {}", image.display());
    println!("serial:     {} (0x{:08X})", card.serial(), card.serial());
    println!("lifecycle:  {}", card.lifecycle().name());
    let names = card.application_names();
    println!(
        "apps:       {}",
        if names.is_empty() {
            "(none)".to_string()
        } else {
            names.join(", ")
        }
    );
    if let Some(piv) = body.get("applications").and_then(|a| a.get("piv")) {
        let g = |k: &str| piv.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        println!(
            "PIN tries:  {}/{}   PUK tries: {}/{}",
            g("pin_retries_left"),
            g("pin_retries_max"),
            g("puk_retries_left"),
            g("puk_retries_max")
        );
        println!(
            "mgmt key:   algorithm {:02X}",
            g("management_key_algorithm")
        );
        if let Some(keys) = piv.get("keys").and_then(|v| v.as_object()) {
            for (slot, k) in keys {
                println!(
                    "key {slot}:     P-256 {} public {}",
                    k.get("origin").and_then(|v| v.as_str()).unwrap_or("?"),
                    k.get("public_point")
                        .and_then(|v| v.as_str())
                        .unwrap_or("?")
                );
            }
        }
        if let Some(objs) = piv.get("objects").and_then(|v| v.as_object()) {
            for (tag, v) in objs {
                let len = v.as_str().map(|s| s.len() / 2).unwrap_or(0);
                println!("object {tag:>6}: {len:>5} bytes  {}", object_name(tag));
            }
        }
    }
    if let Some(lds) = body.get("applications").and_then(|a| a.get("lds")) {
        let seed = lds
            .get("bac_key_seed_set")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        println!(
            "BAC key:    {}",
            if seed {
                "key seed set"
            } else {
                "no key seed (BAC not available)"
            }
        );
        if let Some(files) = lds.get("files").and_then(|v| v.as_object()) {
            if files.is_empty() {
                println!("LDS files:  (none)");
            }
            for (fid, v) in files {
                let len = v.as_str().map(|s| s.len() / 2).unwrap_or(0);
                let name = u16::from_str_radix(fid, 16)
                    .map(ef_name)
                    .unwrap_or_default();
                println!("LDS file {}: {len:>5} bytes  {name}", fid.to_uppercase());
            }
        }
    }
    Ok(())
}
