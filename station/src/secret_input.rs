//! Where the CLI's secrets come from (operator passwords, the HSM SO PIN, the holder's PIN on
//! `--pin-fd 0`): a masked prompt on the terminal, or — when standard input is not a terminal —
//! one line each from standard input, in the order the command documents. Never the
//! environment, never the command line; every buffer that held one is zeroized.
//!
//! The order on standard input is the same for every command: first the operator's own
//! password (the log-in), then the command's other secrets (a new password; `init`: the first
//! admin's, then the second admin's, then the SO PIN when asked for), then the holder's PIN
//! when `issue` runs with `--pin-fd 0`.

use std::io::Read;
use std::os::fd::AsFd;

use zeroize::{Zeroize, Zeroizing};

use crate::error::StationError;

/// The longest secret line read from standard input, in bytes (line ending excluded).
pub const MAX_SECRET_BYTES: usize = 1024;

/// Whether standard input is a terminal (secrets are then prompted for, masked).
pub fn stdin_is_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdin())
}

/// Read the secret `what` (e.g. `operator password`, named in errors, never the value): from a
/// masked prompt showing `prompt` — typed twice if `confirm` — when standard input is a
/// terminal, otherwise the next line of standard input (see [`stdin_line`]).
pub fn read_secret(
    what: &str,
    prompt: &str,
    confirm: bool,
) -> Result<Zeroizing<String>, StationError> {
    if !stdin_is_terminal() {
        return stdin_line(what);
    }
    let ask = |p: String| {
        rpassword::prompt_password(p)
            .map(Zeroizing::new)
            .map_err(|e| StationError::Other(format!("prompt: {e}")))
    };
    let first = ask(format!("{prompt}: "))?;
    if confirm {
        let again = ask(format!("{prompt} (again): "))?;
        if *first != *again {
            return Err(StationError::invalid(what, "the two entries differ"));
        }
    }
    Ok(first)
}

/// The first line of file descriptor `fd` (a pipe the caller handed down; `0` is the next line
/// of standard input, after the operator's password), without its line ending, as the secret
/// `what` (named in errors, never the value). At most 256 bytes are read.
pub fn fd_line(fd: u32, what: &str) -> Result<Zeroizing<String>, StationError> {
    if fd == 0 {
        return stdin_line(what);
    }
    let read_err = |e: std::io::Error| {
        StationError::invalid(what, format!("cannot read file descriptor {fd}: {e}"))
    };
    // /dev/fd/N opens the descriptor the caller handed down, without unsafe code.
    let file = std::fs::File::open(format!("/dev/fd/{fd}")).map_err(read_err)?;
    let mut buf = Zeroizing::new(Vec::with_capacity(257));
    file.take(256).read_to_end(&mut buf).map_err(read_err)?;
    let line = buf.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line)
        .map_err(|_| StationError::invalid(what, "is not text".to_owned()))?;
    if text.is_empty() {
        return Err(StationError::invalid(
            what,
            format!("file descriptor {fd} gave an empty line"),
        ));
    }
    Ok(Zeroizing::new(text.to_owned()))
}

/// The next line of standard input, without its line ending, as the secret `what`.
///
/// Read one byte at a time from a duplicate of descriptor 0 (which shares its file offset), so
/// nothing past the line is consumed and no copy stays in the standard library's stdin
/// buffer: the next secret, or the holder's PIN on `--pin-fd 0`, is still there for the next
/// read. End of input before a non-empty line, a line longer than [`MAX_SECRET_BYTES`] or one
/// that is not UTF-8 is an error naming `what`.
pub fn stdin_line(what: &str) -> Result<Zeroizing<String>, StationError> {
    let read_err = |e: std::io::Error| {
        StationError::invalid(what, format!("cannot read it from standard input: {e}"))
    };
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(read_err)?;
    let mut input = std::fs::File::from(fd);
    // Allocated once at its full size, so pushing never moves the secret and leaves a copy.
    let mut line = Zeroizing::new(Vec::with_capacity(MAX_SECRET_BYTES + 1));
    let mut byte = [0u8; 1];
    let ended = loop {
        match input.read(&mut byte) {
            Ok(0) => break true,
            Ok(_) if byte[0] == b'\n' => break false,
            Ok(_) if line.len() == MAX_SECRET_BYTES => {
                byte.zeroize();
                return Err(StationError::invalid(
                    what,
                    format!("the line on standard input is longer than {MAX_SECRET_BYTES} bytes"),
                ));
            }
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        }
    };
    byte.zeroize();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    if line.is_empty() {
        let why = if ended {
            "standard input ended before it; without a terminal the secrets are read one per \
             line from standard input, in the order the command's --help gives (never from \
             the environment)"
        } else {
            "the line on standard input is empty"
        };
        return Err(StationError::invalid(what, why));
    }
    let text = std::str::from_utf8(&line)
        .map_err(|_| StationError::invalid(what, "the line on standard input is not UTF-8"))?;
    Ok(Zeroizing::new(text.to_owned()))
}
