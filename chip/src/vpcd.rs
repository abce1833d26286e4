//! Client side of the vsmartcard vpcd protocol (vsmartcard `virtualsmartcard/doc/api.rst`,
//! `vpcd.h`): the card connects to the reader driver's TCP port; every message both ways is a
//! 2-byte big-endian length and a payload. A 1-byte payload from the reader is control
//! (00 power off, 01 power on, 02 reset, 04 get ATR, answered with the ATR); longer payloads
//! are C-APDUs, answered with the R-APDU. A closed socket means the card was removed.
//!
//! The socket sets TCP_NODELAY, and TCP_QUICKACK before every read: without them every APDU
//! waits about 50 ms for a delayed ACK (measured, docs/BENCHMARKS.md).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;

use crate::{Card, ChipError, StatusWord};

/// Options of one insertion.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Drop the connection when APDU number N+1 arrives (fault injection: card pulled).
    pub tear_after: Option<u64>,
    /// With `tear_after`: process (and persist) APDU N+1 before dropping, without answering.
    pub tear_after_processing: bool,
    /// Leave Nagle and delayed ACKs on (only to measure what TCP_NODELAY/TCP_QUICKACK save).
    pub no_tcp_tuning: bool,
}

/// How a session with the reader ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The reader closed the connection (pcscd stopped or the slot was closed).
    ReaderClosed,
    /// `tear_after` fired: we dropped the connection like a pulled card.
    Torn,
}

fn read_exact_or_eof(stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut off = 0;
    while off < buf.len() {
        match stream.read(&mut buf[off..]) {
            Ok(0) => return Ok(false),
            Ok(n) => off += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn send(stream: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    let mut msg = Vec::with_capacity(payload.len() + 2);
    msg.extend_from_slice(&len.to_be_bytes());
    msg.extend_from_slice(&payload[..usize::from(len)]);
    stream.write_all(&msg)
}

fn quickack(stream: &TcpStream) {
    #[cfg(target_os = "linux")]
    {
        let _ = socket2::SockRef::from(stream).set_quickack(true);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = stream;
}

/// Serve `card` on an established connection until the reader closes it or the tear fires.
/// After every command that changed persistent state the image is saved to `image` before the
/// response is sent; `apdu_count` counts C-APDUs across the whole insertion.
pub fn serve(
    stream: &mut TcpStream,
    card: &mut Card,
    image: &Path,
    opts: &ServeOptions,
    apdu_count: &mut u64,
) -> Result<SessionEnd, ChipError> {
    let io = |e: std::io::Error| ChipError::Io {
        path: "vpcd socket".into(),
        source: e,
    };
    let tune = !opts.no_tcp_tuning;
    stream.set_nodelay(tune).map_err(io)?;
    let mut len_buf = [0u8; 2];
    loop {
        if tune {
            quickack(stream);
        }
        match read_exact_or_eof(stream, &mut len_buf) {
            Ok(true) => {}
            Ok(false) => return Ok(SessionEnd::ReaderClosed),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return Ok(SessionEnd::ReaderClosed)
            }
            Err(e) => return Err(io(e)),
        }
        let len = usize::from(u16::from_be_bytes(len_buf));
        let mut payload = vec![0u8; len];
        if tune {
            quickack(stream);
        }
        match read_exact_or_eof(stream, &mut payload) {
            Ok(true) => {}
            Ok(false) => return Ok(SessionEnd::ReaderClosed),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return Ok(SessionEnd::ReaderClosed)
            }
            Err(e) => return Err(io(e)),
        }
        if len == 0 {
            continue;
        }
        if len == 1 {
            match payload[0] {
                0x00..=0x02 => {
                    // power off / power on / reset: volatile state is gone either way.
                    card.power_on();
                }
                0x04 => {
                    let atr = crate::os::atr();
                    send(stream, &atr).map_err(io)?;
                }
                other => tracing::debug!(control = other, "unknown vpcd control byte ignored"),
            }
            continue;
        }
        *apdu_count += 1;
        let tearing = opts.tear_after.is_some_and(|n| *apdu_count > n);
        if tearing && !opts.tear_after_processing {
            tracing::info!(
                apdu = *apdu_count,
                "tear: dropping the connection before processing"
            );
            return Ok(SessionEnd::Torn);
        }
        let mut rapdu = card.transmit(&payload);
        if card.take_dirty() {
            if let Err(e) = card.save(image) {
                tracing::error!(error = %e, "could not persist the card image");
                // The in-memory state is ahead of the image: answer 6F00 and end the session
                // so the card is re-read from the image on the next insertion.
                let _ = send(stream, &StatusWord::NoPreciseDiagnosis.to_bytes());
                return Err(e);
            }
        }
        if tearing {
            tracing::info!(
                apdu = *apdu_count,
                "tear: dropping the connection after processing"
            );
            return Ok(SessionEnd::Torn);
        }
        let sent = send(stream, &rapdu);
        rapdu.fill(0);
        payload.fill(0);
        sent.map_err(io)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A fake vpcd reader: sends framed messages and reads framed answers.
    struct Reader(TcpStream);

    impl Reader {
        fn send(&mut self, payload: &[u8]) {
            let mut msg = (payload.len() as u16).to_be_bytes().to_vec();
            msg.extend_from_slice(payload);
            self.0.write_all(&msg).unwrap();
        }
        fn recv(&mut self) -> Option<Vec<u8>> {
            let mut len = [0u8; 2];
            if !read_exact_or_eof(&mut self.0, &mut len).unwrap() {
                return None;
            }
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
            read_exact_or_eof(&mut self.0, &mut buf).unwrap();
            Some(buf)
        }
    }

    fn session(
        opts: ServeOptions,
    ) -> (
        Reader,
        std::thread::JoinHandle<(SessionEnd, u64)>,
        tempfile::TempDir,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("c.img");
        Card::new_blank(42).unwrap().save(&img).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let mut stream = TcpStream::connect(addr).unwrap();
            let mut card = Card::load(&img).unwrap();
            let mut n = 0;
            let end = serve(&mut stream, &mut card, &img, &opts, &mut n).unwrap();
            (end, n)
        });
        let (reader, _) = listener.accept().unwrap();
        (Reader(reader), handle, dir)
    }

    #[test]
    fn answers_atr_requests_and_apdus_with_framing() {
        let (mut r, handle, _dir) = session(ServeOptions::default());
        r.send(&[0x01]); // power on: no answer
        r.send(&[0x04]);
        assert_eq!(r.recv().unwrap(), crate::os::atr());
        r.send(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08]);
        assert_eq!(r.recv().unwrap()[0], 0x61);
        r.send(&[0x00, 0xF8, 0x00, 0x00]);
        assert_eq!(r.recv().unwrap(), vec![0, 0, 0, 42, 0x90, 0x00]);
        drop(r);
        assert_eq!(handle.join().unwrap(), (SessionEnd::ReaderClosed, 2));
    }

    #[test]
    fn tear_after_drops_the_connection_without_answering() {
        let (mut r, handle, _dir) = session(ServeOptions {
            tear_after: Some(1),
            ..ServeOptions::default()
        });
        r.send(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08]);
        assert!(r.recv().is_some());
        r.send(&[0x00, 0xF8, 0x00, 0x00]);
        assert!(r.recv().is_none(), "no answer after the tear");
        assert_eq!(handle.join().unwrap(), (SessionEnd::Torn, 2));
    }

    #[test]
    fn state_changes_reach_the_image_before_the_answer() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("c.img");
        Card::new_blank(1).unwrap().save(&img).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let img2 = img.clone();
        let handle = std::thread::spawn(move || {
            let mut stream = TcpStream::connect(addr).unwrap();
            let mut card = Card::load(&img2).unwrap();
            let mut n = 0;
            serve(
                &mut stream,
                &mut card,
                &img2,
                &ServeOptions::default(),
                &mut n,
            )
            .unwrap()
        });
        let (s, _) = listener.accept().unwrap();
        let mut r = Reader(s);
        r.send(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08]);
        r.recv();
        r.send(&[
            0x00, 0x20, 0x00, 0x80, 0x08, b'0', b'0', b'0', b'0', b'0', b'0', 0xFF, 0xFF,
        ]);
        assert_eq!(r.recv().unwrap(), vec![0x63, 0xC2]);
        // the answer arrived, so the image already holds the decremented counter
        let shown = Card::load(&img).unwrap().public_description().unwrap();
        assert_eq!(shown["applications"]["piv"]["pin_retries_left"], 2);
        drop(r);
        assert_eq!(handle.join().unwrap(), SessionEnd::ReaderClosed);
    }
}
