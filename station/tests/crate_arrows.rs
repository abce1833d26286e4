//! The workspace's crate arrows as ARCHITECTURE.md draws them, checked from the manifests and
//! the sources: `gui` reaches the registry only through `station`, and `chip` (the card side)
//! names no host crate.

use std::path::{Path, PathBuf};

/// The crates on the host side of the card reader.
const HOST_CRATES: &[&str] = &[
    "personalization",
    "hsm",
    "ca",
    "registry",
    "profiles",
    "station",
    "gui",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("station sits in the workspace")
        .to_path_buf()
}

fn manifest(krate: &str) -> toml::Table {
    let path = workspace().join(krate).join("Cargo.toml");
    let text = std::fs::read_to_string(&path).expect("read the manifest");
    toml::from_str(&text).expect("parse the manifest")
}

/// The dependency names of one table (`dependencies`, `dev-dependencies`, …), `package =`
/// renames resolved to the crate they name.
fn dependencies(m: &toml::Table, table: &str) -> Vec<String> {
    let Some(deps) = m.get(table).and_then(|t| t.as_table()) else {
        return Vec::new();
    };
    deps.iter()
        .map(|(name, spec)| {
            spec.get("package")
                .and_then(|p| p.as_str())
                .unwrap_or(name)
                .to_owned()
        })
        .collect()
}

/// Every `.rs` file below `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read a source dir") {
            let p = e.expect("a dir entry").path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out
}

/// The places in `dir`'s sources that name `krate` as a path (`krate::…`), as "file:line".
fn paths_naming(dir: &Path, krate: &str) -> Vec<String> {
    let needle = format!("{krate}::");
    let mut hits = Vec::new();
    for f in sources(dir) {
        let text = std::fs::read_to_string(&f).expect("read a source file");
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let named = code.match_indices(&needle).any(|(at, _)| {
                !code[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':' || c == '.')
            });
            if named {
                hits.push(format!("{}:{}", f.display(), i + 1));
            }
        }
    }
    hits
}

#[test]
fn gui_depends_on_station_and_not_on_the_registry() {
    let m = manifest("gui");
    let deps = dependencies(&m, "dependencies");
    assert!(deps.iter().any(|d| d == "station"), "gui uses station");
    for host in HOST_CRATES
        .iter()
        .filter(|c| !matches!(**c, "station" | "gui"))
    {
        assert!(
            !deps.iter().any(|d| d == host),
            "gui/Cargo.toml [dependencies] names {host}: gui reaches it through station"
        );
    }
    let hits = paths_naming(&workspace().join("gui/src"), "registry");
    assert!(hits.is_empty(), "gui/src names registry:: at {hits:?}");
}

#[test]
fn chip_names_no_host_crate() {
    let m = manifest("chip");
    for table in ["dependencies", "dev-dependencies", "build-dependencies"] {
        let deps = dependencies(&m, table);
        for host in HOST_CRATES {
            assert!(
                !deps.iter().any(|d| d == host),
                "chip/Cargo.toml [{table}] names {host}: the card side stands alone"
            );
        }
    }
    for dir in ["src", "tests", "benches", "examples"] {
        for host in HOST_CRATES {
            let hits = paths_naming(&workspace().join("chip").join(dir), host);
            assert!(hits.is_empty(), "chip/{dir} names {host}:: at {hits:?}");
        }
    }
}

/// The checks above would pass on an empty tree: they must see what they look for.
#[test]
fn the_checks_see_a_named_crate() {
    let hits = paths_naming(&workspace().join("station/src"), "registry");
    assert!(!hits.is_empty(), "station/src names registry::");
    assert!(dependencies(&manifest("station"), "dependencies")
        .iter()
        .any(|d| d == "registry"));
}
