//! Crash points for the recovery tests: after a protocol step has committed and before its
//! answer leaves, `idcentral` kills itself (SIGKILL) when `IDCENTRAL_FAILPOINT` names the step
//! (`reserve`, `certify`, `complete`, `abort`), to prove that a station whose call got no answer
//! ends, by retry or recovery, with nothing duplicated and nothing acknowledged lost.
//!
//! Compiled in only with the `failpoints` cargo feature, which only test builds enable
//! (`scripts/check-no-failpoints.sh` proves release builds lack it); without the feature
//! [`hit`] is empty and the variable is never read.

/// Kill this process (SIGKILL) when `IDCENTRAL_FAILPOINT` names `point`.
#[cfg(feature = "failpoints")]
pub fn hit(point: &str) {
    if std::env::var("IDCENTRAL_FAILPOINT").is_ok_and(|v| v == point) {
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
