//! The environment a PKCS#11 module reads, given to the process before it starts.
//!
//! SoftHSM2 finds its configuration only through `getenv("SOFTHSM2_CONF")` (else
//! `/etc/softhsm/softhsm2.conf`), and only once, in `C_Initialize`. Setting the variable from
//! inside a running process (`std::env::set_var`) races with every other thread that reads the
//! environment (glibc's `getenv` is not synchronised with `setenv`), so this crate never does it.
//! Instead:
//! - [`check`] compares what a module configuration needs with what the process was started
//!   with, and the module refuses to load on a difference ([`crate::HsmError::Environment`]);
//! - [`exec_with`] is for a binary's `main`, before it starts any thread: when the process lacks
//!   the environment, it replaces itself (`execve(2)`, same executable, same arguments, same open
//!   descriptors) with one started with it. A second difference after that is an error, never
//!   a loop.
//!
//! Tests get theirs from cargo's target runner (`scripts/cargo-runner.sh`), which starts every
//! test process with a private `SOFTHSM2_CONF`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use crate::{HsmError, Result};

/// Set by [`exec_with`] to the process id it re-executed (the id survives `execve`), so the new
/// image knows it has been through once. A child process has another id and starts afresh.
pub const REEXEC_MARKER: &str = "IDSTATION_HSM_ENV_REEXEC";

/// Variables whose values are paths, compared as paths (`/a//b/` names `/a/b`).
const PATH_VARIABLES: &[&str] = &["SOFTHSM2_CONF"];

/// The entries of `wanted` that the process environment does not hold with the same value, as
/// (name, wanted value, value found).
pub fn differences(wanted: &BTreeMap<String, String>) -> Vec<(String, String, Option<OsString>)> {
    wanted
        .iter()
        .filter_map(|(name, value)| {
            let found = std::env::var_os(name);
            let same = match &found {
                None => false,
                Some(f) if PATH_VARIABLES.contains(&name.as_str()) => {
                    Path::new(f) == Path::new(value)
                }
                Some(f) => f == value.as_str(),
            };
            (!same).then(|| (name.clone(), value.clone(), found))
        })
        .collect()
}

/// `Ok` if the process was started with every entry of `wanted`; else an
/// [`HsmError::Environment`] naming the first variable that differs.
pub fn check(wanted: &BTreeMap<String, String>) -> Result<()> {
    match differences(wanted).into_iter().next() {
        None => Ok(()),
        Some((name, wanted, found)) => Err(HsmError::Environment {
            name,
            wanted,
            found: match found {
                None => "not set".to_owned(),
                Some(f) => format!("{:?}", f.to_string_lossy()),
            },
        }),
    }
}

/// Make sure the process runs with `wanted` in its environment: return at once when it does,
/// else re-execute the current executable with the same arguments and `wanted` added. Call it
/// from `main` before any thread is started; it returns only when nothing had to change or on
/// an error (the executable cannot be found or executed, or a re-executed process still lacks
/// the environment).
pub fn exec_with(wanted: &BTreeMap<String, String>) -> Result<()> {
    use std::os::unix::process::CommandExt;

    let diffs = differences(wanted);
    if diffs.is_empty() {
        return Ok(());
    }
    let me = std::process::id().to_string();
    if std::env::var_os(REEXEC_MARKER).is_some_and(|m| m == me.as_str()) {
        return check(wanted);
    }
    let exe = std::env::current_exe().map_err(|e| HsmError::Environment {
        name: diffs[0].0.clone(),
        wanted: diffs[0].1.clone(),
        found: format!("absent, and this executable cannot be found to restart it: {e}"),
    })?;
    let mut cmd = std::process::Command::new(&exe);
    cmd.args(std::env::args_os().skip(1));
    for (name, value, _) in &diffs {
        cmd.env(name, value);
    }
    cmd.env(REEXEC_MARKER, &me);
    tracing::debug!(exe = %exe.display(), "restarting with the HSM module's environment");
    let e = cmd.exec();
    Err(HsmError::Environment {
        name: diffs[0].0.clone(),
        wanted: diffs[0].1.clone(),
        found: format!("absent, and {} cannot be restarted: {e}", exe.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unset_variable_is_a_difference_that_names_it() {
        let mut w = BTreeMap::new();
        w.insert(
            "IDSTATION_TEST_SURELY_UNSET_VAR".to_owned(),
            "/x/softhsm2.conf".to_owned(),
        );
        let e = check(&w).expect_err("unset");
        let text = e.to_string();
        assert!(text.contains("IDSTATION_TEST_SURELY_UNSET_VAR"), "{text}");
        assert!(text.contains("/x/softhsm2.conf"), "{text}");
        assert!(text.contains("not set"), "{text}");
    }

    #[test]
    fn the_same_path_spelled_differently_is_no_difference() {
        // The runner sets SOFTHSM2_CONF for every test process.
        let conf = std::env::var("SOFTHSM2_CONF").expect("the cargo runner sets SOFTHSM2_CONF");
        let mut w = BTreeMap::new();
        w.insert("SOFTHSM2_CONF".to_owned(), conf.replace('/', "//") + "/");
        assert!(differences(&w).is_empty());
        w.insert("SOFTHSM2_CONF".to_owned(), format!("{conf}.other"));
        assert_eq!(differences(&w).len(), 1);
    }

    #[test]
    fn nothing_wanted_needs_no_restart() {
        exec_with(&BTreeMap::new()).expect("no-op");
    }
}
