//! The holder's secrets are the holder's. The PIN is typed by the holder (never by the clerk,
//! never from the environment) and must not be guessable; the PUK is drawn at random by the
//! station, set on the card and printed once into a **PIN letter**: a one-page PDF that the
//! station writes to a path the clerk chooses (created new, owner-only, never through a link)
//! and never keeps. Nothing stores the PUK; the buffers that held it are zeroized.

use std::io::Write;
use std::path::Path;

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};
use time::Date;
use zeroize::{Zeroize, Zeroizing};

use crate::error::StationError;

/// The holder's PIN for the CLI: one line read from file descriptor `fd` (a pipe from the
/// holder-facing PIN pad or program), or typed twice by the holder at a masked prompt. Never
/// from the environment or the command line. `--pin-fd 0` is the next line of standard input,
/// after the operator's password (see [`crate::secret_input`]).
pub fn read_holder_pin(fd: Option<u32>) -> Result<Zeroizing<String>, StationError> {
    use std::io::Read;
    if fd == Some(0) {
        return crate::secret_input::stdin_line("pin-fd");
    }
    if let Some(fd) = fd {
        // /dev/fd/N opens the descriptor the caller handed down, without unsafe code.
        let path = std::path::PathBuf::from(format!("/dev/fd/{fd}"));
        let file = std::fs::File::open(&path).map_err(|e| {
            StationError::invalid("pin-fd", format!("cannot read file descriptor {fd}: {e}"))
        })?;
        // Room for all it may read: a buffer that grew would leave the PIN in the one it left.
        let mut buf = Zeroizing::new(Vec::with_capacity(257));
        file.take(256).read_to_end(&mut buf).map_err(|e| {
            StationError::invalid("pin-fd", format!("cannot read file descriptor {fd}: {e}"))
        })?;
        let line = buf.split(|b| *b == b'\n').next().unwrap_or(&[]);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let pin = std::str::from_utf8(line)
            .map_err(|_| StationError::invalid("pin", "is not text".to_owned()))?;
        if pin.is_empty() {
            return Err(StationError::invalid(
                "pin-fd",
                format!("file descriptor {fd} gave an empty line; the holder's PIN is missing"),
            ));
        }
        return Ok(Zeroizing::new(pin.to_owned()));
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(StationError::invalid(
            "pin",
            "no terminal for the holder to type the PIN on: pass it on --pin-fd N".to_owned(),
        ));
    }
    let prompt = |p: &str| {
        rpassword::prompt_password(p)
            .map(Zeroizing::new)
            .map_err(|e| StationError::Other(format!("prompt: {e}")))
    };
    let first = prompt("Holder, type your new PIN: ")?;
    let again = prompt("Holder, type it again: ")?;
    if *first != *again {
        return Err(StationError::invalid(
            "pin",
            "the two entries differ".to_owned(),
        ));
    }
    Ok(first)
}

/// What the letter says besides the PUK.
pub struct LetterFacts<'a> {
    /// The document number the card carries.
    pub document: &'a str,
    /// The holder's name in Latin letters, as on the card.
    pub holder_name: &'a str,
    /// The issuing office.
    pub office: &'a str,
    /// The day of issuance.
    pub issued_on: Date,
}

/// `len` decimal digits from the OS CSPRNG, uniform (bytes ≥ 250 are drawn again).
pub fn generate_puk(len: usize) -> Result<Zeroizing<String>, StationError> {
    let mut out = Zeroizing::new(String::with_capacity(len));
    let mut pool = Zeroizing::new([0u8; 32]);
    while out.len() < len {
        getrandom::fill(&mut pool[..])
            .map_err(|e| StationError::Other(format!("random PUK: {e}")))?;
        for b in pool.iter() {
            if out.len() == len {
                break;
            }
            if *b < 250 {
                out.push(char::from(b'0' + b % 10));
            }
        }
    }
    Ok(out)
}

/// Refuses a holder PIN that is easy to guess: every digit the same (`111111`), a run up or
/// down (`123456`, `87654321`, wrapping `890123` included), or the holder's date of birth in
/// any of the usual orders (`DDMMYY`, `DDMMYYYY`, `YYMMDD`, `YYYYMMDD`, `MMDDYY`, `MMDDYYYY`).
/// The error names the rule, never the value.
pub fn check_holder_pin(pin: &str, date_of_birth: Date) -> Result<(), StationError> {
    let digits: Zeroizing<Vec<u8>> = Zeroizing::new(pin.bytes().collect());
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        // The card profile's own checks name this case.
        return Ok(());
    }
    let weak = |rule: &str| Err(StationError::invalid("pin", rule.to_owned()));
    if digits.iter().all(|d| *d == digits[0]) {
        return weak("is one digit repeated; the holder must choose a PIN that is hard to guess");
    }
    let steps: Zeroizing<Vec<i16>> = Zeroizing::new(
        digits
            .windows(2)
            .map(|w| (i16::from(w[1]) - i16::from(w[0])).rem_euclid(10))
            .collect(),
    );
    if steps.iter().all(|s| *s == 1) || steps.iter().all(|s| *s == 9) {
        return weak(
            "is a run of consecutive digits; the holder must choose a PIN that is hard to guess",
        );
    }
    let (d, m, y) = (
        date_of_birth.day(),
        u8::from(date_of_birth.month()),
        date_of_birth.year(),
    );
    let yy = y.rem_euclid(100);
    let forms = [
        format!("{d:02}{m:02}{yy:02}"),
        format!("{d:02}{m:02}{y:04}"),
        format!("{yy:02}{m:02}{d:02}"),
        format!("{y:04}{m:02}{d:02}"),
        format!("{m:02}{d:02}{yy:02}"),
        format!("{m:02}{d:02}{y:04}"),
    ];
    if forms.iter().any(|f| f == pin) {
        return weak(
            "is the holder's date of birth; the holder must choose a PIN that is hard to guess",
        );
    }
    Ok(())
}

/// Refuses a PIN letter destination before any work: the directory must exist and nothing
/// (file, directory, link) may be at the path.
pub fn check_destination(path: &Path) -> Result<(), StationError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(StationError::invalid(
            "pin-letter",
            format!(
                "{}: the directory does not exist; choose where the PIN letter is saved",
                parent.display()
            ),
        ));
    }
    registry::files::check_absent(path).map_err(|e| {
        StationError::invalid(
            "pin-letter",
            format!(
                "{}: {e}; the station never overwrites a PIN letter",
                path.display()
            ),
        )
    })
}

/// Latin text as the PDF's standard Helvetica (WinAnsi) can show it: the Uzbek modifier
/// letters ʻ ʼ become an apostrophe, any other non-ASCII character a question mark.
fn ascii(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'ʻ' | 'ʼ' | '‘' | '’' => '\'',
            c if c.is_ascii() && !c.is_ascii_control() => c,
            _ => '?',
        })
        .collect()
}

/// The PIN letter as PDF bytes (zeroized on drop: they hold the PUK).
pub fn render(facts: &LetterFacts<'_>, puk: &str) -> Zeroizing<Vec<u8>> {
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let page_id = Ref::new(3);
    let regular = Ref::new(4);
    let bold = Ref::new(5);
    let contents = Ref::new(6);
    let (f_regular, f_bold) = (Name(b"F1"), Name(b"F2"));

    let mut pdf = Pdf::with_capacity(4 * LETTER_BUFFER);
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids([page_id]).count(1);
    let mut page = pdf.page(page_id);
    // ISO 216 A4 in points.
    page.media_box(Rect::new(0.0, 0.0, 595.0, 842.0));
    page.parent(tree);
    page.contents(contents);
    let mut resources = page.resources();
    let mut fonts = resources.fonts();
    fonts.pair(f_regular, regular);
    fonts.pair(f_bold, bold);
    fonts.finish();
    resources.finish();
    page.finish();
    pdf.type1_font(regular)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));

    let mut lines: Vec<(Name<'_>, f32, String)> = vec![
        (f_bold, 18.0, "PIN letter - national ID card".into()),
        (f_regular, 11.0, String::new()),
        (
            f_regular,
            11.0,
            format!("Holder: {}", ascii(facts.holder_name)),
        ),
        (
            f_regular,
            11.0,
            format!("Document number: {}", ascii(facts.document)),
        ),
        (
            f_regular,
            11.0,
            format!(
                "Issued on {} at office {}",
                facts.issued_on,
                ascii(facts.office)
            ),
        ),
        (f_regular, 11.0, String::new()),
        (f_regular, 11.0, "Your PUK (PIN Unblocking Key):".into()),
        (f_bold, 24.0, format!("PUK: {puk}")),
        (f_regular, 11.0, String::new()),
    ];
    for l in [
        "The PUK unblocks your card when the PIN has been entered wrongly too often.",
        "Keep this letter apart from the card. Nobody from the office will ever ask for it:",
        "the station that issued your card did not keep the PUK.",
        "Your PIN is the one you chose at the office; the office does not know it either.",
    ] {
        lines.push((f_regular, 11.0, l.to_owned()));
    }
    // Buffers big enough from the start: one that grew after the PUK was written into it would
    // leave a copy in the memory it gave back, unwiped.
    let mut content = Content::with_capacity(LETTER_BUFFER);
    content.begin_text();
    let mut y = 770.0;
    for (font, size, text) in &lines {
        content.set_font(*font, *size);
        content.set_text_matrix([1.0, 0.0, 0.0, 1.0, 60.0, y]);
        content.show(Str(text.as_bytes()));
        y -= size * 1.6;
    }
    content.end_text();
    let stream = Zeroizing::new(content.finish().into_vec());
    pdf.stream(contents, &stream);
    for (_, _, text) in lines.iter_mut() {
        text.zeroize();
    }
    Zeroizing::new(pdf.finish())
}

/// The size the letter's content stream is given up front (it is ≈ 1.2 KB).
const LETTER_BUFFER: usize = 16 * 1024;

/// Render the letter and write it to `path`: created new (an existing file or a link there is
/// an error), mode 0600, synced. The bytes are zeroized afterwards.
pub fn write(path: &Path, facts: &LetterFacts<'_>, puk: &str) -> Result<(), StationError> {
    let bytes = render(facts, puk);
    let mut f = registry::files::create_new(path).map_err(|e| StationError::io(path, e))?;
    f.write_all(&bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| StationError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn a_puk_is_eight_uniform_digits_and_differs_each_time() {
        let a = generate_puk(8).expect("puk");
        let b = generate_puk(8).expect("puk");
        assert_eq!(a.len(), 8);
        assert!(a.bytes().all(|b| b.is_ascii_digit()));
        assert_ne!(*a, *b, "two draws of 10^8 should not collide");
        // Every digit turns up over many draws (a biased or constant source would not).
        let mut seen = [0u32; 10];
        for _ in 0..200 {
            for d in generate_puk(8).expect("puk").bytes() {
                seen[usize::from(d - b'0')] += 1;
            }
        }
        assert!(seen.iter().all(|n| *n > 100), "{seen:?}");
    }

    #[test]
    fn weak_pins_are_refused_naming_the_rule_not_the_value() {
        let dob = date!(1985 - 05 - 15);
        for (pin, rule) in [
            ("111111", "one digit repeated"),
            ("00000000", "one digit repeated"),
            ("123456", "consecutive digits"),
            ("87654321", "consecutive digits"),
            ("890123", "consecutive digits"),
            ("150585", "date of birth"),
            ("15051985", "date of birth"),
            ("19850515", "date of birth"),
            ("850515", "date of birth"),
            ("051585", "date of birth"),
        ] {
            let e = check_holder_pin(pin, dob).expect_err(pin);
            let msg = e.to_string();
            assert!(msg.contains("pin: ") && msg.contains(rule), "{pin}: {msg}");
            assert!(!msg.contains(pin), "the message shows no PIN: {msg}");
            assert_eq!(e.exit_code(), 2);
        }
        for pin in ["48291637", "902814", "135792"] {
            check_holder_pin(pin, dob).expect(pin);
        }
    }

    #[test]
    fn the_letter_is_a_one_page_pdf_with_the_document_and_the_puk() {
        let facts = LetterFacts {
            document: "AA0000042",
            holder_name: "Toʻxtayeva Gʻulnora",
            office: "TAS01",
            issued_on: date!(2026 - 12 - 02),
        };
        let pdf = render(&facts, "73015528");
        assert!(pdf.starts_with(b"%PDF-"));
        let text = String::from_utf8_lossy(&pdf);
        let pages = text.matches("/Type /Page").count() - text.matches("/Type /Pages").count();
        assert_eq!(pages, 1, "one page");
        assert!(text.contains("PUK: 73015528"));
        assert!(text.contains("Document number: AA0000042"));
        assert!(text.contains("Holder: To'xtayeva G'ulnora"));
    }

    #[test]
    fn a_destination_that_exists_or_is_a_link_is_refused_before_any_work() {
        let dir = tempfile::tempdir().expect("tmp");
        let taken = dir.path().join("taken.pdf");
        std::fs::write(&taken, b"x").expect("write");
        let e = check_destination(&taken).expect_err("exists");
        assert!(e.to_string().contains("pin-letter"), "{e}");
        let link = dir.path().join("link.pdf");
        std::os::unix::fs::symlink(dir.path().join("elsewhere.pdf"), &link).expect("link");
        check_destination(&link).expect_err("a link");
        let e = check_destination(&dir.path().join("no/such/dir/l.pdf")).expect_err("no dir");
        assert!(e.to_string().contains("does not exist"), "{e}");
        check_destination(&dir.path().join("new.pdf")).expect("free");
    }

    /// The letter's buffers never grow (a grown buffer leaves the PUK in the memory it gave
    /// back): even for a very long name the PDF fits the capacity it was given.
    #[test]
    fn the_letter_fits_its_buffer() {
        let name = "Abdurahmonova-Toʻxtayeva Gʻulnora ".repeat(8);
        let facts = LetterFacts {
            document: "AA0000042",
            holder_name: &name,
            office: "TAS01",
            issued_on: date!(2026 - 12 - 02),
        };
        let pdf = render(&facts, "73015528");
        assert_eq!(pdf.capacity(), 4 * LETTER_BUFFER, "the PDF buffer grew");
        assert!(pdf.len() < LETTER_BUFFER);
    }
}
