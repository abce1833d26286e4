//! The data dir: where a station keeps its configuration, its private SoftHSM2 token, its
//! registry and the certificates and CRLs it publishes.
//!
//! ```text
//! DIR/station.toml          configuration (written last by `init`: marks an initialised dir)
//! DIR/registry.sqlite       the registry (+ -wal, -shm)
//! DIR/hsm/softhsm2.conf     private SoftHSM2 configuration, DIR/hsm/tokens/ its token store
//! DIR/ca/<label>.pem        CA certificates, one per CA key
//! DIR/crl/<label>.crl       the latest CRL of each CA key (DER)
//! DIR/secrets/              operator-provisioned secret files (e.g. the HSM PIN file), 0700
//! ```
//!
//! The default location follows the XDG base directory convention:
//! `$XDG_DATA_HOME/idstation`, else `$HOME/.local/share/idstation`.

use std::path::{Path, PathBuf};

pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("idstation");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(h) => PathBuf::from(h).join(".local/share/idstation"),
        None => PathBuf::from("idstation-data"),
    }
}

#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Self {
        Layout {
            root: root.to_path_buf(),
        }
    }
    pub fn config(&self) -> PathBuf {
        self.root.join(crate::config::CONFIG_FILE)
    }
    pub fn registry(&self) -> PathBuf {
        self.root.join("registry.sqlite")
    }
    pub fn hsm_dir(&self) -> PathBuf {
        self.root.join("hsm")
    }
    pub fn ca_dir(&self) -> PathBuf {
        self.root.join("ca")
    }
    pub fn crl_dir(&self) -> PathBuf {
        self.root.join("crl")
    }
    pub fn ca_cert(&self, label: &str) -> PathBuf {
        self.ca_dir().join(format!("{label}.pem"))
    }
    pub fn crl(&self, label: &str) -> PathBuf {
        self.crl_dir().join(format!("{label}.crl"))
    }
}

/// Write `bytes` to `path` atomically: a temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_the_whole_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("x.pem");
        write_atomic(&p, b"first version, long").expect("write");
        write_atomic(&p, b"second").expect("write");
        assert_eq!(std::fs::read(&p).expect("read"), b"second");
        assert_eq!(
            std::fs::read_dir(d.path()).expect("ls").count(),
            1,
            "no temp file left behind"
        );
    }
}
