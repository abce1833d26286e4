//! A national centre for the station's end-to-end tests: a private PostgreSQL cluster
//! (scripts/pg-up.sh under a temporary directory), a `centre.toml` with its own SoftHSM2
//! token, `idcentral init`, and `idcentral serve` on 127.0.0.1 as a child process that can be
//! stopped and started again on the same port.
//!
//! ```no_run
//! let mut centre = testrig::centre::Centre::start();  // cluster, config, init (admin "admin")
//! centre.serve();                                      // https://127.0.0.1:PORT
//! let code = centre.add_station("TAS01", "tas01-st1"); // the one-time enrolment code
//! // idstation init --centre centre.url() --centre-fingerprint centre.fingerprint() ...
//! centre.stop();
//! ```
//!
//! The `idcentral` binary is `$IDCENTRAL_BIN`, else `idcentral` in target/<profile>/ beside
//! the test executable: build it as the tests do, with the test failpoints, by `cargo test -p
//! central --no-run` (same CARGO_TARGET_DIR; a crash test refuses an idcentral built without
//! them). As root the cluster runs as the `postgres` user, so the
//! temporary directory is made under /tmp and traversable (0711).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The password of the centre's first ca-admin, `admin`.
pub const CENTRE_ADMIN_PASSWORD: &str = "centre-admin-pw-71c2";
/// The second ca-admin `admin2` (dual control: CA key rotations need two).
pub const CENTRE_ADMIN2_PASSWORD: &str = "centre-admin2-pw-0b5e";
/// The centre's HSM user PIN (in a 0600 file the config names).
pub const CENTRE_HSM_PIN: &str = "centre-hsm-pin-5e9a";

/// A centre: its cluster, configuration and (when serving) its server. Everything is stopped
/// and removed when dropped.
pub struct Centre {
    tmp: tempfile::TempDir,
    pg: PathBuf,
    config: PathBuf,
    server: Option<Child>,
    addr: Option<SocketAddr>,
    fingerprint: Option<String>,
    public_base: Option<String>,
}

/// Append `[public]` to `config`: a free loopback port for the listener and the base URL that
/// names it. Returns the base URL.
fn add_public_section(config: &Path) -> String {
    // A port the kernel just handed out and took back: free unless someone races for it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut text = std::fs::read_to_string(config).expect("read centre.toml");
    text.push_str(&format!(
        "\n[public]\nlisten = \"127.0.0.1:{port}\"\nbase_url = \"{base}\"\n"
    ));
    std::fs::write(config, text).expect("write centre.toml");
    base
}

/// The workspace root (scripts/ lives there).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testrig sits in the workspace")
        .to_owned()
}

impl Centre {
    /// A new cluster, `centre.toml` and `idcentral init --admin admin --second-admin admin2`.
    pub fn start() -> Centre {
        Centre::start_with(false)
    }

    /// [`Centre::start`] on a primary with a synchronous streaming standby
    /// (scripts/pg-replica.sh), the centre on the multi-host URL: see
    /// [`Centre::kill_primary`] and [`Centre::promote_standby`].
    pub fn start_replicated() -> Centre {
        Centre::start_with(true)
    }

    /// [`Centre::start`] with the public relying-party listener (OCSP, CRLs, CA certificates,
    /// TSA) on a free loopback port, named as `[public] base_url` before `init`, so that every
    /// certificate the centre issues (its CAs' too) carries AIA and CRL distribution points a
    /// relying party can fetch: [`Centre::public_base`].
    pub fn start_public() -> Centre {
        Centre::start_with_public(false, true)
    }

    fn start_with(replicated: bool) -> Centre {
        Centre::start_with_public(replicated, false)
    }

    fn start_with_public(replicated: bool, public: bool) -> Centre {
        // Fail first, and clearly, when the binary is missing.
        idcentral_bin().unwrap_or_else(|e| panic!("{e}"));
        let tmp = tempfile::Builder::new()
            .prefix("idcentral-rig-")
            .tempdir_in("/tmp")
            .expect("a temporary directory under /tmp");
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o711))
            .expect("chmod 0711 the centre's directory");
        let pg = tmp.path().join("pg");
        let out = Command::new("bash")
            .arg(workspace().join("scripts/pg-up.sh"))
            .arg(&pg)
            .output()
            .expect("run scripts/pg-up.sh");
        assert!(
            out.status.success(),
            "scripts/pg-up.sh {} failed: {}",
            pg.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let url = if replicated {
            script("pg-replica.sh", &[&pg, &standby_dir(&pg)])
        } else {
            std::fs::read_to_string(pg.join("url")).expect("the cluster's url file")
        };
        let pin = tmp.path().join("hsm-pin");
        std::fs::write(&pin, format!("{CENTRE_HSM_PIN}\n")).expect("write the HSM PIN file");
        std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = tmp.path().join("centre.toml");
        std::fs::write(
            &config,
            format!(
                r#"[centre]
name = "centre"

[database]
url = "{url}"
password_file = "{pw}"

[hsm]
backend = "pkcs11"
module = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "idcentral"
pin = {{ file = "{pin}" }}
env = {{ SOFTHSM2_CONF = "{hsm}/softhsm2.conf" }}

[server]
public_name = "localhost"
"#,
                url = url.trim(),
                pw = pg.join("password").display(),
                pin = pin.display(),
                hsm = tmp.path().join("hsm").display(),
            ),
        )
        .expect("write centre.toml");
        let public_base = public.then(|| add_public_section(&config));
        let c = Centre {
            tmp,
            pg,
            config,
            server: None,
            addr: None,
            fingerprint: None,
            public_base,
        };
        let init = ["init", "--admin", "admin", "--second-admin", "admin2"];
        c.ok_as(
            &init,
            &format!("{CENTRE_ADMIN_PASSWORD}\n{CENTRE_ADMIN2_PASSWORD}"),
        );
        c
    }

    /// The centre's directory (config, HSM, cluster).
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// `centre.toml`.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// `idcentral --config centre.toml ARGS` with `stdin` on standard input.
    pub fn idcentral(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(idcentral_bin().unwrap_or_else(|e| panic!("{e}")))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run idcentral");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write idcentral's stdin");
        child.wait_with_output().expect("wait for idcentral")
    }

    /// `idcentral ARGS` as the admin (password on standard input), which must succeed; its
    /// standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_as(args, CENTRE_ADMIN_PASSWORD)
    }

    /// [`Centre::ok`] with other secrets on standard input (`admin2`'s password, say).
    pub fn ok_as(&self, args: &[&str], secrets: &str) -> String {
        let out = self.idcentral(args, &format!("{secrets}\n"));
        assert!(
            out.status.success(),
            "idcentral {args:?}: status {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `idcentral ca approve ID` as `admin2`, the second CA administrator: its standard output.
    pub fn approve(&self, request: &str) -> String {
        self.ok_as(
            &["ca", "approve", request, "--operator", "admin2"],
            CENTRE_ADMIN2_PASSWORD,
        )
    }

    /// The CSCA rolled over by `admin`, approved as CA request `request` by `admin2`.
    pub fn rotate_csca(&self, request: &str) -> String {
        self.ok(&["ca", "rotate", "--ca", "csca", "--operator", "admin"]);
        self.approve(request)
    }

    /// CSCA key `key` withdrawn from the Master List for keyCompromise by `admin`, approved as CA
    /// request `request` by `admin2`: what the approval printed (the Document Signers it issued,
    /// the cards flagged).
    pub fn withdraw_csca(&self, key: &str, request: &str) -> String {
        self.ok(&[
            "ca",
            "withdraw-csca",
            "--key",
            key,
            "--reason",
            "keyCompromise",
            "--operator",
            "admin",
        ]);
        self.approve(request)
    }

    /// `idcentral station add`: the one-time enrolment code.
    pub fn add_station(&self, office: &str, station: &str) -> String {
        let out = self.ok(&[
            "--json",
            "station",
            "add",
            "--office",
            office,
            "--station",
            station,
            "--operator",
            "admin",
        ]);
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("station add --json: {e}: {out}"));
        v["enrolment_code"]
            .as_str()
            .unwrap_or_else(|| panic!("no enrolment_code in {out}"))
            .to_owned()
    }

    /// `idcentral station disable`.
    pub fn disable_station(&self, station: &str) {
        self.ok(&[
            "station",
            "disable",
            "--station",
            station,
            "--operator",
            "admin",
        ]);
    }

    /// Append `[egov]` (docs/egov.md) delivering to `url` with `ca_file` as the receiver's CA,
    /// quick for tests: 2 s per attempt, backoff 100..200 ms, a look every 100 ms, the dead
    /// letter after `max_attempts` failures. Before [`Centre::serve`].
    pub fn enable_egov(&self, url: &str, ca_file: &Path, max_attempts: u32) {
        let mut text = std::fs::read_to_string(&self.config).expect("read centre.toml");
        text.push_str(&format!(
            "\n[egov]\nurl = \"{url}\"\nca_file = \"{}\"\ntimeout_seconds = 2\n\
             max_attempts = {max_attempts}\nretry_initial_ms = 100\nretry_max_ms = 200\n\
             poll_interval_ms = 100\n",
            ca_file.display()
        ));
        std::fs::write(&self.config, text).expect("write centre.toml");
    }

    /// `idcentral operator add --name NAME --role ROLE` by the admin, with `password`.
    pub fn add_operator(&self, name: &str, role: &str, password: &str) {
        let args = [
            "operator",
            "add",
            "--name",
            name,
            "--role",
            role,
            "--operator",
            "admin",
        ];
        self.ok_as(&args, &format!("{CENTRE_ADMIN_PASSWORD}\n{password}"));
    }

    /// Set `[server] public_name` (the next `serve` issues a new server certificate for it).
    pub fn set_public_name(&self, name: &str) {
        let text = std::fs::read_to_string(&self.config).expect("read centre.toml");
        let (head, _) = text
            .split_once("public_name = ")
            .expect("centre.toml has public_name");
        let rest = text[head.len()..].split_once('\n').map_or("", |(_, r)| r);
        std::fs::write(
            &self.config,
            format!("{head}public_name = \"{name}\"\n{rest}"),
        )
        .expect("write centre.toml");
    }

    /// Start `idcentral serve` (on a free port the first time, on the same port after
    /// [`Centre::stop`]) and wait until it listens.
    pub fn serve(&mut self) {
        self.serve_with(&[]);
    }

    /// [`Centre::serve`] with `env` set for the server (a failpoint, `IDCENTRAL_FAILPOINT`;
    /// never a secret).
    pub fn serve_with(&mut self, env: &[(&str, &str)]) {
        assert!(self.server.is_none(), "the centre is already serving");
        let listen = self
            .addr
            .map_or_else(|| "127.0.0.1:0".to_owned(), |a| a.to_string());
        let (child, addr, fingerprint) = spawn_serve(&self.config, &listen, env);
        self.addr = Some(addr);
        self.fingerprint = Some(fingerprint);
        self.server = Some(child);
    }

    /// A second `idcentral serve` on the same database and HSM (a free port), killed when
    /// dropped: several instances of one centre.
    pub fn another_instance(&self) -> Instance {
        let (child, addr, fingerprint) = spawn_serve(&self.config, "127.0.0.1:0", &[]);
        Instance {
            child: Some(child),
            addr,
            fingerprint,
        }
    }

    /// [`Centre::another_instance`] with `extra` appended to a copy of `centre.toml` (a
    /// section the file does not have yet, e.g. `[issuance]` with a short timeout, whose sweep
    /// then runs in this instance).
    pub fn another_instance_with(&self, extra: &str) -> Instance {
        let text = std::fs::read_to_string(&self.config).expect("read centre.toml");
        let config = self.config.with_file_name("centre-instance.toml");
        std::fs::write(&config, format!("{text}\n{extra}\n")).expect("write the config copy");
        let (child, addr, fingerprint) = spawn_serve(&config, "127.0.0.1:0", &[]);
        Instance {
            child: Some(child),
            addr,
            fingerprint,
        }
    }

    /// Kill the server (SIGKILL) and reap it; the address is kept for [`Centre::serve`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop and serve again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.serve();
    }

    /// `https://127.0.0.1:PORT` of the server (it must have served once).
    pub fn url(&self) -> String {
        format!("https://{}", self.addr.expect("call serve() first"))
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("call serve() first")
    }

    /// `TLS SHA256 Fingerprint=` as `idcentral serve` printed it.
    pub fn fingerprint(&self) -> &str {
        self.fingerprint.as_deref().expect("call serve() first")
    }

    /// `http://127.0.0.1:PORT` of the public listener of a [`Centre::start_public`] centre.
    pub fn public_base(&self) -> Option<&str> {
        self.public_base.as_deref()
    }

    /// The address of the public listener of a [`Centre::start_public`] centre.
    pub fn public_addr(&self) -> SocketAddr {
        self.public_base
            .as_deref()
            .and_then(|b| b.strip_prefix("http://"))
            .and_then(|a| a.parse().ok())
            .expect("a centre made by Centre::start_public")
    }

    /// The cluster's directory (`url`, `password`, `socket/`).
    pub fn cluster_dir(&self) -> &Path {
        &self.pg
    }
}

impl Centre {
    /// SIGKILL the primary's postmaster and wait until its port refuses connections.
    pub fn kill_primary(&self) {
        kill_postmaster(&self.pg);
    }

    /// Promote the standby of [`Centre::start_replicated`] (scripts/pg-promote.sh).
    pub fn promote_standby(&self) {
        script("pg-promote.sh", &[&standby_dir(&self.pg)]);
    }
}

/// SIGKILL the postmaster of the private cluster scripts/pg-up.sh made under `dir` (the first
/// line of DATA/postmaster.pid) and wait until its port refuses connections.
pub fn kill_postmaster(dir: &Path) {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let pid = read(&dir.join("data/postmaster.pid"))
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    assert!(pid.parse::<u32>().is_ok(), "postmaster.pid: {pid:?}");
    let st = Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    assert!(st.success(), "kill -KILL {pid}");
    let port: u16 = read(&dir.join("port")).trim().parse().expect("port");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "port {port} still open after SIGKILL"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Where [`Centre::start_replicated`] keeps the standby: beside the primary.
fn standby_dir(pg: &Path) -> PathBuf {
    pg.with_file_name("pg-standby")
}

/// `bash scripts/NAME ARGS` (the workspace's scripts), which must succeed; its standard
/// output, trimmed.
pub fn script(name: &str, args: &[&Path]) -> String {
    let out = Command::new("bash")
        .arg(workspace().join("scripts").join(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run scripts/{name}: {e}"));
    assert!(
        out.status.success(),
        "scripts/{name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Drop for Centre {
    fn drop(&mut self) {
        self.stop();
        for dir in [self.pg.clone(), standby_dir(&self.pg)] {
            let _ = Command::new("bash")
                .arg(workspace().join("scripts/pg-down.sh"))
                .arg(dir)
                .status();
        }
    }
}

/// Another `idcentral serve` of a [`Centre`]; killed (SIGKILL) when dropped or by
/// [`Instance::kill`].
pub struct Instance {
    child: Option<Child>,
    addr: SocketAddr,
    fingerprint: String,
}

impl Instance {
    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// `TLS SHA256 Fingerprint=` as this instance printed it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Start `idcentral --config CONFIG serve --listen LISTEN` with `env` and wait until it
/// listens: the child, its address and its certificate's fingerprint.
fn spawn_serve(config: &Path, listen: &str, env: &[(&str, &str)]) -> (Child, SocketAddr, String) {
    let bin = idcentral_bin().unwrap_or_else(|e| panic!("{e}"));
    if let Some((_, point)) = env.iter().find(|(k, _)| *k == "IDCENTRAL_FAILPOINT") {
        require_failpoints(&bin, point);
    }
    let mut child = Command::new(&bin)
        .arg("--config")
        .arg(config)
        .args(["serve", "--listen", listen])
        .env("IDCENTRAL_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start idcentral serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = || match lines.next() {
        Some(Ok(l)) => l,
        _ => panic!("idcentral serve stopped before it listened (its stderr is above)"),
    };
    let first = next();
    let addr: SocketAddr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("idcentral serve: unexpected first line {first:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("idcentral serve: {first:?}: {e}"));
    let second = next();
    let fingerprint = second
        .strip_prefix("TLS SHA256 Fingerprint=")
        .unwrap_or_else(|| panic!("idcentral serve: unexpected second line {second:?}"))
        .to_owned();
    // Whatever else it prints must not fill the pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr, fingerprint)
}

/// A test that crashes the centre at `point` needs an idcentral built with the `failpoints`
/// feature, as `cargo test` builds it. A plain `cargo build -p central` writes one without to
/// the same path, which would never crash: the test would then fail for the wrong reason. The
/// same check as scripts/check-no-failpoints.sh, the other way round.
fn require_failpoints(bin: &Path, point: &str) {
    let found = Command::new("grep")
        .args(["-q", "-a", "-F", "IDCENTRAL_FAILPOINT"])
        .arg(bin)
        .status()
        .expect("run grep");
    assert!(
        found.success(),
        "{} was built without the failpoints feature (by a plain `cargo build -p central`?), so \
         IDCENTRAL_FAILPOINT={point} would not stop it: build it as the tests do, \
         `cargo test -p central --no-run`",
        bin.display()
    );
}

/// The idcentral binary: `$IDCENTRAL_BIN`, else `idcentral` in the directory above the test
/// executable's `deps/` (target/<profile>/idcentral), else next to the executable.
pub fn idcentral_bin() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("IDCENTRAL_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("IDCENTRAL_BIN={} is not a file", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut candidates = Vec::new();
    if let Some(dir) = exe.parent() {
        if dir
            .file_name()
            .is_some_and(|n| n == "deps" || n == "examples")
        {
            if let Some(profile) = dir.parent() {
                candidates.push(profile.join("idcentral"));
            }
        }
        candidates.push(dir.join("idcentral"));
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        format!(
            "idcentral not found next to {} (run `cargo test -p central --no-run` with the same \
             CARGO_TARGET_DIR: it builds idcentral with the test failpoints; or set \
             IDCENTRAL_BIN)",
            exe.display()
        )
    })
}
