//! Documentation that cannot rot (issue 19): the README's `sh` blocks run as written, in order,
//! on a fresh data dir with the virtual readers; every `idstation …` command line in the README
//! and docs/ names a subcommand and flags the binary has; `vchip --no-tcp-tuning`'s help and
//! docs/vchip.md give the same figure.
//!
//! Left out: the "Two commands" block (`scripts/run.sh`, `scripts/test.sh` install packages and
//! run this very suite). The one substitution: the README's reader "Virtual PCD 00 00" (vpcd
//! port 35963) becomes the slot this test leased, so parallel tests never share a reader.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// The fenced blocks of `text` whose info string is `lang` (or every block when `lang` is None).
fn blocks(text: &str, lang: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    let mut open: Option<(bool, String)> = None;
    for line in text.lines() {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            match open.take() {
                Some((keep, b)) => {
                    if keep {
                        out.push(b)
                    }
                }
                None => open = Some((lang.is_none_or(|l| info.trim() == l), String::new())),
            }
            continue;
        }
        if let Some((_, b)) = open.as_mut() {
            b.push_str(line);
            b.push('\n');
        }
    }
    out
}

fn path_with(dirs: &[&Path]) -> String {
    let mut parts: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    parts.push(std::env::var("PATH").unwrap_or_default());
    parts.join(":")
}

#[test]
fn readme_shell_blocks_run_in_order_on_a_fresh_data_dir() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let slot = testrig::Slot::lease();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut script = String::from(
        "set -euo pipefail\n\
         trap 'echo \"README block failed at: $BASH_COMMAND\" >&2' ERR\n\
         trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n",
    );
    let mut n = 0;
    for b in blocks(&readme, Some("sh")) {
        if b.contains("scripts/run.sh") || b.contains("scripts/test.sh") {
            continue;
        }
        n += 1;
        script.push_str(
            &b.replace("Virtual PCD 00 00", &slot.reader_name)
                .replace("--port 35963", &format!("--port {}", slot.port)),
        );
    }
    assert!(n >= 2, "expected the CLI and rotation blocks in README.md");
    let idstation = PathBuf::from(env!("CARGO_BIN_EXE_idstation"));
    let vchip = testrig::vchip_bin().expect("vchip");
    let mut c = Command::new("bash");
    c.arg("-c").arg(&script).current_dir(repo());
    for (k, _) in std::env::vars() {
        if k.starts_with("IDSTATION_") {
            c.env_remove(k);
        }
    }
    c.env("TMPDIR", tmp.path()).env(
        "PATH",
        path_with(&[
            idstation.parent().expect("bin dir"),
            vchip.parent().expect("bin dir"),
        ]),
    );
    let o = c.output().expect("bash");
    // The blocks' own `vchip insert … &` was killed when bash exited; the lease ends only once
    // pcscd has seen that card go (else the next test on this slot finds it still there).
    slot.wait_empty(Duration::from_secs(10))
        .expect("the README's card leaves the reader");
    assert!(
        o.status.success(),
        "the README's blocks failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    for expect in [
        "Issued document AA0000001",
        "Document AA0000001 active",
        "OK: ",
        "Executed: rotate esign -> esign-ca-2",
    ] {
        assert!(out.contains(expect), "{expect:?} missing from:\n{out}");
    }
}

/// Subcommand words and `--flags` of one documented `idstation …` line.
fn command_of(line: &str) -> Option<(Vec<String>, Vec<String>)> {
    let line = line.split(" #").next().unwrap_or(line);
    // `echo SECRET | idstation …`: the command is what reads the pipe.
    let line = line.rsplit(" | ").next().unwrap_or(line);
    let mut toks = line.split_whitespace().peekable();
    // Leading VAR=value assignments.
    while toks
        .peek()
        .is_some_and(|t| t.contains('=') && !t.starts_with('-'))
    {
        toks.next();
    }
    if toks.next() != Some("idstation") {
        return None;
    }
    let mut subs = Vec::new();
    let mut flags = Vec::new();
    let mut in_subs = true;
    let mut skip_value = false;
    for t in toks {
        if skip_value {
            skip_value = false;
            continue;
        }
        // An optional flag in brackets (`[--failed]`) is a flag too.
        if let Some(f) = t.trim_start_matches(['[', '(', '`']).strip_prefix("--") {
            let name = f.split(['=', '[', ']', '|', ')', '`']).next().unwrap_or("");
            if name == "data-dir" {
                skip_value = !f.contains('=');
                continue;
            }
            if name == "json" {
                continue;
            }
            in_subs = false;
            if !name.is_empty() {
                flags.push(format!("--{name}"));
            }
            continue;
        }
        let word = t.trim_matches(|c| c == '`' || c == '[' || c == ']' || c == '(');
        if in_subs && !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
            subs.push(word.to_string());
        } else {
            in_subs = false;
        }
    }
    Some((subs, flags))
}

#[test]
fn every_documented_idstation_command_and_flag_exists() {
    let mut files = vec![repo().join("README.md")];
    for e in std::fs::read_dir(repo().join("docs"))
        .expect("docs")
        .flatten()
    {
        if e.path().extension().is_some_and(|x| x == "md") {
            files.push(e.path());
        }
    }
    let mut checked = 0;
    let mut failures = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read doc");
        let mut lines: Vec<String> = Vec::new();
        for b in blocks(&text, None) {
            // Join continuation lines.
            lines.extend(b.replace("\\\n", " ").lines().map(str::to_owned));
        }
        // Inline `idstation …` spans in tables and prose.
        for part in text.split('`').skip(1).step_by(2) {
            if part.starts_with("idstation ") {
                lines.push(part.to_string());
            }
        }
        for line in lines {
            let Some((subs, flags)) = command_of(line.trim()) else {
                continue;
            };
            if subs.is_empty() || subs[0] == "gui" {
                continue;
            }
            let o = Command::new(env!("CARGO_BIN_EXE_idstation"))
                .args(&subs)
                .arg("--help")
                .output()
                .expect("idstation --help");
            let help = String::from_utf8_lossy(&o.stdout);
            if !o.status.success() {
                failures.push(format!(
                    "{}: `idstation {}` does not exist",
                    f.display(),
                    subs.join(" ")
                ));
                continue;
            }
            for flag in &flags {
                if flag != "--help" && !help.contains(flag.as_str()) {
                    failures.push(format!(
                        "{}: `idstation {}` has no {flag} (line: {line})",
                        f.display(),
                        subs.join(" ")
                    ));
                }
            }
            checked += 1;
        }
    }
    assert!(
        checked > 30,
        "only {checked} documented command lines found"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn vchip_no_tcp_tuning_figure_is_the_same_in_help_and_docs() {
    let o = Command::new(testrig::vchip_bin().expect("vchip"))
        .args(["insert", "--help"])
        .output()
        .expect("vchip");
    let help = String::from_utf8_lossy(&o.stdout).replace('\n', " ");
    let figure = |s: &str| -> Option<String> {
        let i = s.find("--no-tcp-tuning")?;
        let rest = &s[i..];
        let j = rest.find(" ms")?;
        let num: String = rest[..j]
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_digit())
            .collect::<String>()
            .chars()
            .rev()
            .collect();
        Some(num)
    };
    let docs = std::fs::read_to_string(repo().join("docs/vchip.md")).expect("vchip.md");
    let in_docs = docs
        .lines()
        .find(|l| l.contains("`--no-tcp-tuning`:"))
        .and_then(figure);
    let in_help = figure(&help);
    assert!(
        in_help.is_some(),
        "no figure in vchip insert --help:\n{help}"
    );
    assert_eq!(in_help, in_docs, "vchip --help and docs/vchip.md disagree");
}
