//! Every TD1 MRZ we produce is accepted by an independent checker: the PyPI `mrz` package's
//! `TD1CodeChecker` (all check digits and the layout), for the fixture holders and for a
//! seeded stream of generated holders (ICAO Doc 9303 Part 3 §4.9, Part 5 §4.2.2).

use personalization::mrz::{name_components, td1, MrzSex, Td1};
use std::io::Write;
use std::process::{Command, Stdio};
use time::{Date, Month};

/// Runs the PyPI `mrz` TD1 checker on each MRZ (three lines joined by '\n'); returns the MRZs
/// it rejected.
fn rejected_by_pypi_mrz(mrzs: &[[String; 3]]) -> Vec<String> {
    let script = r#"
import sys, json
from mrz.checker.td1 import TD1CodeChecker
bad = []
for m in json.load(sys.stdin):
    if not bool(TD1CodeChecker("\n".join(m))):
        bad.append("\n".join(m))
json.dump(bad, sys.stdout)
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with the PyPI mrz package");
    let input = serde_json::to_vec(mrzs).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "checker failed: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn date(s: &str) -> Date {
    let p: Vec<i32> = s.split('-').map(|x| x.parse().unwrap()).collect();
    Date::from_calendar_date(p[0], Month::try_from(p[1] as u8).unwrap(), p[2] as u8).unwrap()
}

fn holder_td1(h: &serde_json::Value, number: &str, expiry: Date) -> Td1 {
    let s = |k: &str| h.get(k).and_then(|v| v.as_str());
    Td1 {
        issuing_state: "UZB".into(),
        document_number: number.into(),
        optional_data: s("pinfl").unwrap().into(),
        date_of_birth: date(s("date_of_birth").unwrap()),
        sex: if s("sex") == Some("F") {
            MrzSex::Female
        } else {
            MrzSex::Male
        },
        date_of_expiry: expiry,
        nationality: s("citizenship").unwrap().into(),
        primary: name_components("surname", s("surname"), s("surname_cyrillic")).unwrap(),
        secondary: name_components("given_names", s("given_names"), s("given_names_cyrillic"))
            .unwrap(),
    }
}

#[test]
fn fixture_holders_mrz_pass_the_pypi_mrz_td1_checker() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/holders");
    let mut mrzs = Vec::new();
    for (i, f) in ["holder-01.json", "holder-02.json", "holder-03.json"]
        .iter()
        .enumerate()
    {
        let h: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(f)).unwrap()).unwrap();
        let number = format!("AD{:07}", 1_234_560 + i);
        mrzs.push(td1(&holder_td1(&h, &number, date("2036-11-24"))).unwrap());
    }
    assert_eq!(mrzs[0][2], "TOXTAYEVA<<GULNORA<<<<<<<<<<<<");
    assert_eq!(&mrzs[1][0][15..], "32307921400450<");
    assert_eq!(&mrzs[2][1][15..18], "XXA");
    assert_eq!(mrzs[2][2], "ABDURAKHMONOV<XOLMATOV<<M<A<<<");
    let bad = rejected_by_pypi_mrz(&mrzs);
    assert!(bad.is_empty(), "rejected: {bad:#?}");
}

/// xorshift64*: a tiny deterministic generator, so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

fn gen_name(r: &mut Rng, latin: bool) -> String {
    const LAT: &[&str] = &[
        "a", "b", "d", "e", "f", "g", "gʻ", "h", "i", "j", "k", "l", "m", "n", "o", "oʻ", "p", "q",
        "r", "s", "sh", "ch", "t", "u", "v", "x", "y", "z", "ʼ", "'", "ng",
    ];
    const CYR: &[&str] = &[
        "а", "б", "в", "г", "д", "е", "ё", "ж", "з", "и", "й", "к", "л", "м", "н", "о", "п", "р",
        "с", "т", "у", "ф", "х", "ц", "ч", "ш", "ъ", "э", "ю", "я", "ў", "қ", "ғ", "ҳ",
    ];
    let words = 1 + r.below(3);
    let mut out = String::new();
    for w in 0..words {
        if w > 0 {
            out.push_str(r.pick(&[" ", "-"]));
        }
        let len = 1 + r.below(14);
        let mut word = String::new();
        for i in 0..len {
            let piece = if latin { r.pick(LAT) } else { r.pick(CYR) };
            // A word starts with a letter.
            if i == 0 && matches!(piece, "ʼ" | "'" | "ъ") {
                word.push_str(if latin { "a" } else { "а" });
            } else {
                word.push_str(piece);
            }
        }
        let mut cs = word.chars();
        let first: String = cs.next().unwrap().to_uppercase().collect();
        out.push_str(&first);
        out.push_str(cs.as_str());
    }
    out
}

#[test]
fn generated_holders_mrz_pass_the_pypi_mrz_td1_checker() {
    let mut r = Rng(0x1d57_a710_9303_0005);
    let mut mrzs = Vec::new();
    for _ in 0..500 {
        let latin = r.below(4) != 0;
        let (sl, sc) = if latin {
            (Some(gen_name(&mut r, true)), None)
        } else {
            (None, Some(gen_name(&mut r, false)))
        };
        let (gl, gc) = if latin {
            (Some(gen_name(&mut r, true)), None)
        } else {
            (None, Some(gen_name(&mut r, false)))
        };
        let letters = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let number = format!(
            "{}{}{:07}",
            letters[r.below(26) as usize] as char,
            letters[r.below(26) as usize] as char,
            r.below(10_000_000)
        );
        let pinfl: String = (0..14)
            .map(|_| char::from(b'0' + r.below(10) as u8))
            .collect();
        let dob = Date::from_calendar_date(
            1920 + r.below(100) as i32,
            Month::try_from(1 + r.below(12) as u8).unwrap(),
            1 + r.below(28) as u8,
        )
        .unwrap();
        let expiry = Date::from_calendar_date(
            2026 + r.below(20) as i32,
            Month::try_from(1 + r.below(12) as u8).unwrap(),
            1 + r.below(28) as u8,
        )
        .unwrap();
        let t = Td1 {
            issuing_state: "UZB".into(),
            document_number: number,
            optional_data: pinfl,
            date_of_birth: dob,
            sex: [MrzSex::Female, MrzSex::Male, MrzSex::Unspecified][r.below(3) as usize],
            date_of_expiry: expiry,
            nationality: r.pick(&["UZB", "XXA", "KAZ", "RUS"]).into(),
            primary: name_components("surname", sl.as_deref(), sc.as_deref()).unwrap(),
            secondary: name_components("given_names", gl.as_deref(), gc.as_deref()).unwrap(),
        };
        let m = td1(&t).unwrap();
        for l in &m {
            assert_eq!(l.len(), 30, "{m:?}");
            assert!(l
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '<'));
        }
        mrzs.push(m);
    }
    let bad = rejected_by_pypi_mrz(&mrzs);
    assert!(
        bad.is_empty(),
        "{} rejected, e.g. {:#?}",
        bad.len(),
        &bad[..bad.len().min(3)]
    );
}
