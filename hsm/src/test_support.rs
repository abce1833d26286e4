//! Test fixtures shared by the backends: a process-wide TRACE-level log capture. (The SoftHSM2
//! token fixtures are the PKCS#11 backend's own, in `pkcs11/test_token.rs`: this module depends
//! on no backend.)

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Clone)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Install (once) a global TRACE-level subscriber writing into a buffer, also bridging the
/// `log` records of dependencies (cryptoki logs through `log`); return the buffer.
pub fn capture_logs() -> Captured {
    static CAP: OnceLock<Captured> = OnceLock::new();
    CAP.get_or_init(|| {
        use tracing_subscriber::util::SubscriberInitExt;
        let cap = Captured(Arc::new(Mutex::new(Vec::new())));
        let writer = cap.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish()
            .try_init()
            .expect("first global subscriber");
        cap
    })
    .clone()
}
