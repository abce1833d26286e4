//! No code of the workspace changes its own process environment: SoftHSM2's configuration (and
//! any module's) is given to a process before it starts (`hsm::process_env`), because
//! `setenv` in a running, threaded process races with every `getenv`.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        if p.is_dir() {
            if name != "target" && name != ".git" && !name.to_string_lossy().starts_with('.') {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_source_file_calls_set_var_or_remove_var() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace");
    let mut files = Vec::new();
    rust_files(workspace, &mut files);
    assert!(files.len() > 50, "found the workspace's sources");
    let needles = [
        ["env::", "set_var("].concat(),
        ["env::", "remove_var("].concat(),
    ];
    let offenders: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).ok()?;
            text.lines()
                .enumerate()
                .find(|(_, l)| {
                    let code = l.split("//").next().unwrap_or("");
                    needles.iter().any(|n| code.contains(n.as_str()))
                })
                .map(|(i, l)| format!("{}:{}: {}", f.display(), i + 1, l.trim()))
        })
        .collect();
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}
