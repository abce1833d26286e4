//! Crash points for the recovery tests: a named point where the process kills itself
//! (SIGKILL) when `IDSTATION_FAILPOINT` names it, to prove that what the journal holds at that
//! point is enough to finish or undo the work.
//!
//! Compiled in only with the `failpoints` cargo feature, which only test builds enable
//! (`scripts/check-no-failpoints.sh` proves release builds lack it); without the feature
//! [`hit`] is empty and the variable is never read.

/// Kill this process (SIGKILL) when `IDSTATION_FAILPOINT` names `point`.
#[cfg(feature = "failpoints")]
pub fn hit(point: &str) {
    if std::env::var("IDSTATION_FAILPOINT").is_ok_and(|v| v == point) {
        // SAFETY: raise() only sends a signal to this process.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
}

/// See the `failpoints` build of this function: without the feature it is empty.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_point: &str) {}
