//! The machine readable zone of the TD1 ID card, as pure functions (no I/O).
//!
//! - ICAO Doc 9303 Part 3 §4.9 (check digits: weights 7-3-1 repeated, `0`–`9` = 0–9, `A`–`Z` =
//!   10–35, the filler `<` = 0, sum modulo 10) and §4.6 (the name: primary identifier, `<<`,
//!   secondary identifier; spaces and hyphens become fillers; no punctuation; transliteration
//!   of national characters);
//! - ICAO Doc 9303 Part 5 §4.2.2 (TD1 MRZ: three lines of 30 characters; line 1 = document
//!   code, issuing state, document number + check digit, optional data; line 2 = date of
//!   birth + check digit, sex, date of expiry + check digit, nationality, optional data,
//!   composite check digit; line 3 = name);
//! - ICAO Doc 9303 Part 11 §9.7.1 (the "MRZ information" the BAC keys are derived from).
//!
//! Uzbek names: the registry keeps the official Latin form (with the modifier letters ʻ
//! U+02BB in Oʻ/Gʻ and ʼ U+02BC); the MRZ drops those marks and the apostrophe. Only when no
//! Latin form exists is the Cyrillic form transliterated first, with the Uzbek Cyrillic→Latin
//! correspondences (Ў→O, Ғ→G, Қ→Q, Ҳ→H, Х→X, Ш→SH, Ч→CH, Ж→J, Ё→YO, Ю→YU, Я→YA, Е→YE at the
//! start of a word and after a vowel, Ц→TS, Ъ and Ь dropped), because ICAO's own Cyrillic table
//! (Part 3 §6, Russian-oriented) has no Ў Ғ Қ Ҳ.

use crate::{Error, Result};
use time::Date;

/// Length of one TD1 line (Part 5 §4.2.2).
pub const TD1_LINE: usize = 30;
/// The filler character.
pub const FILLER: char = '<';

fn invalid(field: &str, rule: impl Into<String>) -> Error {
    Error::Invalid {
        field: field.to_string(),
        rule: rule.into(),
    }
}

/// Value of one MRZ character for the check digit (Part 3 §4.9.1), `None` outside `0-9A-Z<`.
fn char_value(c: char) -> Option<u32> {
    match c {
        '0'..='9' => Some(c as u32 - '0' as u32),
        'A'..='Z' => Some(c as u32 - 'A' as u32 + 10),
        FILLER => Some(0),
        _ => None,
    }
}

/// The check digit of an MRZ field (Part 3 §4.9: weights 7, 3, 1 repeated, sum modulo 10).
///
/// `field` names the input in the error when a character is not in the MRZ set.
pub fn check_digit(field: &str, data: &str) -> Result<char> {
    const WEIGHTS: [u32; 3] = [7, 3, 1];
    let mut sum = 0u32;
    for (i, c) in data.chars().enumerate() {
        let v = char_value(c).ok_or_else(|| {
            invalid(
                field,
                format!("character {c:?} is not an MRZ character (0-9, A-Z, <)"),
            )
        })?;
        sum += v * WEIGHTS[i % 3];
    }
    Ok(char::from_digit(sum % 10, 10).unwrap_or('0'))
}

/// Uzbek Cyrillic → Latin, before the MRZ rules (upper case result, word boundaries kept as
/// spaces and hyphens). Errors name `field` and the character that has no correspondence.
pub fn cyrillic_to_latin(field: &str, name: &str) -> Result<String> {
    let mut out = String::new();
    // The previous character of the same word, lower-cased (None at a word start).
    let mut prev: Option<char> = None;
    for c in name.chars() {
        let lc = c.to_lowercase().next().unwrap_or(c);
        let is_vowel_before = matches!(
            prev,
            Some('а' | 'е' | 'ё' | 'и' | 'о' | 'у' | 'ў' | 'э' | 'ю' | 'я' | 'ъ' | 'ь')
        );
        let t: &str = match lc {
            ' ' | '-' => {
                out.push(lc);
                prev = None;
                continue;
            }
            'а' => "A",
            'б' => "B",
            'в' => "V",
            'г' => "G",
            'д' => "D",
            'е' => {
                if prev.is_none() || is_vowel_before {
                    "YE"
                } else {
                    "E"
                }
            }
            'ё' => "YO",
            'ж' => "J",
            'з' => "Z",
            'и' => "I",
            'й' => "Y",
            'к' => "K",
            'л' => "L",
            'м' => "M",
            'н' => "N",
            'о' => "O",
            'п' => "P",
            'р' => "R",
            'с' => "S",
            'т' => "T",
            'у' => "U",
            'ф' => "F",
            'х' => "X",
            'ц' => "TS",
            'ч' => "CH",
            'ш' => "SH",
            'щ' => "SHCH",
            'ъ' | 'ь' => "",
            'ы' => "I",
            'э' => "E",
            'ю' => "YU",
            'я' => "YA",
            'ў' => "O",
            'қ' => "Q",
            'ғ' => "G",
            'ҳ' => "H",
            // Latin letters, digits or marks mixed into a Cyrillic name are not a Cyrillic name.
            _ => {
                return Err(invalid(
                    field,
                    format!("{c:?} (U+{:04X}) is not an Uzbek Cyrillic letter", c as u32),
                ))
            }
        };
        out.push_str(t);
        prev = Some(lc);
    }
    Ok(out)
}

/// An Uzbek Latin name as MRZ components (Part 3 §4.6): upper case; ʻ (U+02BB), ʼ (U+02BC),
/// the apostrophe and its typographic look-alikes (U+2018, U+2019, U+0060) dropped; spaces and
/// hyphens separate components. Empty components are dropped. Any other character is an error
/// naming `field`.
pub fn latin_components(field: &str, name: &str) -> Result<Vec<String>> {
    let mut comps = Vec::new();
    let mut cur = String::new();
    for c in name.chars() {
        match c {
            'a'..='z' => cur.push(c.to_ascii_uppercase()),
            'A'..='Z' => cur.push(c),
            '\u{02BB}' | '\u{02BC}' | '\'' | '\u{2018}' | '\u{2019}' | '`' => {}
            ' ' | '-' => {
                if !cur.is_empty() {
                    comps.push(std::mem::take(&mut cur));
                }
            }
            _ => {
                return Err(invalid(
                    field,
                    format!(
                        "{c:?} (U+{:04X}) is not allowed in a Latin name (letters A-Z, ʻ, ʼ, ', space, hyphen)",
                        c as u32
                    ),
                ))
            }
        }
    }
    if !cur.is_empty() {
        comps.push(cur);
    }
    if comps.is_empty() {
        return Err(invalid(field, "the name has no letters"));
    }
    Ok(comps)
}

/// One name as MRZ components: from the Latin form when there is one, else from the Cyrillic
/// form transliterated with the Uzbek correspondences.
pub fn name_components(
    field: &str,
    latin: Option<&str>,
    cyrillic: Option<&str>,
) -> Result<Vec<String>> {
    match (latin.filter(|s| !s.trim().is_empty()), cyrillic) {
        (Some(l), _) => latin_components(field, l),
        (None, Some(c)) if !c.trim().is_empty() => {
            latin_components(field, &cyrillic_to_latin(field, c)?)
        }
        _ => Err(invalid(
            field,
            "neither a Latin nor a Cyrillic form is given",
        )),
    }
}

/// The 30-character TD1 name field (Part 3 §4.6, Part 5 §4.2.2 line 3): primary identifier
/// components joined by `<`, then `<<`, then the secondary identifier components joined by
/// `<`, padded with `<`.
///
/// When the name does not fit (Part 3 §4.6.5 "truncation"), we truncate in this order, which
/// keeps the primary identifier whole as long as possible:
/// 1. secondary components, from the last one backwards, are cut to their initial;
/// 2. the secondary identifier is cut to the characters that fit (at least one letter is kept);
/// 3. only if the primary identifier plus `<<` and one letter exceed 30 characters, the field is
///    the primary identifier alone, cut at 30 characters.
///
/// In every truncated result the last position holds a letter (never a filler), the mark of a
/// possibly truncated name.
pub fn name_field(primary: &[String], secondary: &[String]) -> Result<String> {
    if primary.is_empty() {
        return Err(invalid("surname", "the primary identifier is empty"));
    }
    for c in primary.iter().chain(secondary) {
        if c.is_empty() || !c.chars().all(|ch| ch.is_ascii_uppercase()) {
            return Err(invalid(
                "name",
                format!("component {c:?} is not an upper-case MRZ name component"),
            ));
        }
    }
    let p = primary.join("<");
    let full = |sec: &[String]| -> String {
        if sec.is_empty() {
            p.clone()
        } else {
            format!("{p}<<{}", sec.join("<"))
        }
    };
    let pad = |s: String| -> String {
        let mut s = s;
        while s.chars().count() < TD1_LINE {
            s.push(FILLER);
        }
        s
    };
    let candidate = full(secondary);
    if candidate.len() <= TD1_LINE {
        return Ok(pad(candidate));
    }
    // Step 3 first as a guard: the primary identifier alone is too long.
    if p.len() + 3 > TD1_LINE {
        let mut cut: String = p.chars().take(TD1_LINE).collect();
        while cut.ends_with(FILLER) {
            cut.pop();
        }
        return Ok(pad(cut));
    }
    // Step 1: initials, last component first.
    let mut sec: Vec<String> = secondary.to_vec();
    for i in (0..sec.len()).rev() {
        if full(&sec).len() <= TD1_LINE {
            break;
        }
        sec[i].truncate(1);
    }
    let candidate = full(&sec);
    if candidate.len() <= TD1_LINE {
        return Ok(pad(candidate));
    }
    // Step 2: cut what still overflows, never ending on a filler.
    let mut cut: String = candidate.chars().take(TD1_LINE).collect();
    while cut.ends_with(FILLER) {
        cut.pop();
    }
    Ok(pad(cut))
}

/// Sex in the MRZ (Part 5 §4.2.2: `F`, `M`, or `<` unspecified).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MrzSex {
    /// Female.
    Female,
    /// Male.
    Male,
    /// Unspecified (`<`; the VIZ shows `X`).
    Unspecified,
}

impl MrzSex {
    fn code(self) -> char {
        match self {
            MrzSex::Female => 'F',
            MrzSex::Male => 'M',
            MrzSex::Unspecified => FILLER,
        }
    }
}

/// Everything a TD1 MRZ encodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Td1 {
    /// Issuing state, ISO 3166-1 alpha-3 (e.g. `UZB`).
    pub issuing_state: String,
    /// Document number: series + number, exactly 9 characters of `A-Z0-9`.
    pub document_number: String,
    /// Optional data of line 1 (the PINFL), at most 15 characters of `A-Z0-9`.
    pub optional_data: String,
    /// Date of birth.
    pub date_of_birth: Date,
    /// Sex.
    pub sex: MrzSex,
    /// Date of expiry.
    pub date_of_expiry: Date,
    /// Nationality, alpha-3 (`XXA` = stateless person, Part 3 §5).
    pub nationality: String,
    /// Primary identifier components (surname), already MRZ characters.
    pub primary: Vec<String>,
    /// Secondary identifier components (given names), already MRZ characters.
    pub secondary: Vec<String>,
}

/// YYMMDD (Part 3 §4.8 / Part 5 §4.2.2).
pub fn yymmdd(d: Date) -> String {
    format!(
        "{:02}{:02}{:02}",
        d.year().rem_euclid(100),
        u8::from(d.month()),
        d.day()
    )
}

fn check_chars(field: &str, value: &str, max: usize, exact: bool) -> Result<()> {
    let n = value.chars().count();
    if (exact && n != max) || n > max {
        return Err(invalid(
            field,
            format!(
                "{value:?} must be {} {max} characters",
                if exact { "exactly" } else { "at most" }
            ),
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_uppercase() || c.is_ascii_digit()))
    {
        return Err(invalid(
            field,
            format!("{c:?} is not an MRZ character (A-Z, 0-9)"),
        ));
    }
    Ok(())
}

fn check_alpha3(field: &str, value: &str) -> Result<()> {
    if value.len() != 3 || !value.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(invalid(
            field,
            format!("{value:?} is not an ISO 3166-1 alpha-3 code (three letters A-Z)"),
        ));
    }
    Ok(())
}

fn padded(s: &str, n: usize) -> String {
    let mut s = s.to_string();
    while s.len() < n {
        s.push(FILLER);
    }
    s
}

/// The three TD1 lines (Part 5 §4.2.2), every check digit computed per Part 3 §4.9.
pub fn td1(t: &Td1) -> Result<[String; 3]> {
    check_alpha3("issuing_state", &t.issuing_state)?;
    check_alpha3("nationality", &t.nationality)?;
    check_chars("document_number", &t.document_number, 9, true)?;
    check_chars("optional_data", &t.optional_data, 15, false)?;
    for (field, d) in [
        ("date_of_birth", t.date_of_birth),
        ("date_of_expiry", t.date_of_expiry),
    ] {
        if !(1900..=2099).contains(&d.year()) {
            return Err(invalid(field, "year must be within 1900..2099"));
        }
    }
    // Line 1: document code "I<", issuing state, number, its check digit, optional data.
    let doc_cd = check_digit("document_number", &t.document_number)?;
    let opt1 = padded(&t.optional_data, 15);
    let l1 = format!(
        "I{FILLER}{}{}{doc_cd}{opt1}",
        t.issuing_state, t.document_number
    );
    // Line 2.
    let dob = yymmdd(t.date_of_birth);
    let exp = yymmdd(t.date_of_expiry);
    let dob_cd = check_digit("date_of_birth", &dob)?;
    let exp_cd = check_digit("date_of_expiry", &exp)?;
    let opt2 = padded("", 11);
    // Composite (Part 5 §4.2.2.2): line 1 positions 6-30, line 2 positions 1-7, 9-15, 19-29.
    let composite_input = format!("{}{dob}{dob_cd}{exp}{exp_cd}{opt2}", &l1[5..30]);
    let comp_cd = check_digit("composite", &composite_input)?;
    let l2 = format!(
        "{dob}{dob_cd}{}{exp}{exp_cd}{}{opt2}{comp_cd}",
        t.sex.code(),
        t.nationality
    );
    let l3 = name_field(&t.primary, &t.secondary)?;
    debug_assert!(l1.len() == TD1_LINE && l2.len() == TD1_LINE && l3.len() == TD1_LINE);
    Ok([l1, l2, l3])
}

/// The holder as the MRZ encodes them, typed (a validated holder record, or a registry record
/// read back): the caller has already checked dates and sex, the MRZ only formats them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MrzHolder<'a> {
    /// The PINFL, written as line 1's optional data.
    pub personal_number: &'a str,
    /// Surname, official Latin form.
    pub surname: &'a str,
    /// Given names, official Latin form.
    pub given_names: &'a str,
    /// Surname in Cyrillic, transliterated when the Latin form is empty.
    pub surname_cyrillic: Option<&'a str>,
    /// Given names in Cyrillic, transliterated when the Latin form is empty.
    pub given_names_cyrillic: Option<&'a str>,
    /// Sex.
    pub sex: MrzSex,
    /// Date of birth.
    pub date_of_birth: Date,
    /// Nationality, ISO 3166-1 alpha-3 (`XXA` = stateless person, Part 3 §5).
    pub nationality: &'a str,
}

/// The document an MRZ belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MrzDocument<'a> {
    /// Issuing state, ISO 3166-1 alpha-3.
    pub issuing_state: &'a str,
    /// Series + number, 9 characters.
    pub number: &'a str,
    /// Date of expiry.
    pub expiry: Date,
}

/// The TD1 MRZ of `holder`'s document `doc` (Part 5 §4.2.2): document code I, the issuing
/// state, the document number, the personal number as optional data, birth, sex, expiry,
/// nationality, name (surname `<<` given names; a patronymic is not part of the MRZ name).
/// Names come from the Latin form, or the Cyrillic one transliterated when no Latin form
/// exists ([`name_components`]).
pub fn holder_td1(holder: &MrzHolder<'_>, doc: &MrzDocument<'_>) -> Result<[String; 3]> {
    td1(&Td1 {
        issuing_state: doc.issuing_state.into(),
        document_number: doc.number.into(),
        optional_data: holder.personal_number.into(),
        date_of_birth: holder.date_of_birth,
        sex: holder.sex,
        date_of_expiry: doc.expiry,
        nationality: holder.nationality.into(),
        primary: name_components("surname", Some(holder.surname), holder.surname_cyrillic)?,
        secondary: name_components(
            "given_names",
            Some(holder.given_names),
            holder.given_names_cyrillic,
        )?,
    })
}

/// The MRZ information for BAC (Part 11 §9.7.1 / Appendix D.2): document number, its check
/// digit, date of birth, its check digit, date of expiry, its check digit, taken from a TD1.
pub fn bac_mrz_information(lines: &[String; 3]) -> Result<String> {
    let (l1, l2) = (&lines[0], &lines[1]);
    if l1.len() != TD1_LINE || l2.len() != TD1_LINE || !l1.is_ascii() || !l2.is_ascii() {
        return Err(invalid("mrz", "TD1 lines must be 30 ASCII characters"));
    }
    // TD1: number at line 1 positions 6-14 and its check digit at 15 (a number longer than 9
    // characters would continue in optional data; ours are exactly 9).
    Ok(format!("{}{}{}", &l1[5..15], &l2[0..7], &l2[8..15]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn comps(s: &[&str]) -> Vec<String> {
        s.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn check_digit_matches_part3_example() {
        // Doc 9303 Part 3 §4.9 worked example: "520727" has check digit 3.
        assert_eq!(check_digit("x", "520727").unwrap(), '3');
        // Part 11 Appendix D: L898902C< → 3, 690806 → 1, 940623 → 6.
        assert_eq!(check_digit("x", "L898902C<").unwrap(), '3');
        assert_eq!(check_digit("x", "690806").unwrap(), '1');
        assert_eq!(check_digit("x", "940623").unwrap(), '6');
    }

    #[test]
    fn check_digit_rejects_lower_case_naming_the_field() {
        let e = check_digit("document_number", "ab1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("document_number"), "{e}");
    }

    #[test]
    fn uzbek_modifier_letters_and_apostrophe_are_dropped() {
        assert_eq!(
            latin_components("surname", "Toʻxtayeva").unwrap(),
            comps(&["TOXTAYEVA"])
        );
        assert_eq!(
            latin_components("given_names", "Gʻulnora").unwrap(),
            comps(&["GULNORA"])
        );
        assert_eq!(
            latin_components("surname", "Maʼrufov O'tkir").unwrap(),
            comps(&["MARUFOV", "OTKIR"])
        );
    }

    #[test]
    fn hyphens_and_spaces_separate_components() {
        assert_eq!(
            latin_components("surname", "Abdurakhmonov-Xolmatov").unwrap(),
            comps(&["ABDURAKHMONOV", "XOLMATOV"])
        );
    }

    #[test]
    fn a_digit_in_a_name_is_refused_naming_the_field() {
        let e = latin_components("given_names", "Jasur2")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("given_names:"), "{e}");
    }

    #[test]
    fn uzbek_cyrillic_is_transliterated_with_the_uzbek_correspondences() {
        assert_eq!(cyrillic_to_latin("f", "Тўхтаева").unwrap(), "TOXTAYEVA");
        assert_eq!(cyrillic_to_latin("f", "Ғулнора").unwrap(), "GULNORA");
        assert_eq!(
            cyrillic_to_latin("f", "Шавкат қизи").unwrap(),
            "SHAVKAT QIZI"
        );
        assert_eq!(cyrillic_to_latin("f", "Ҳамидович").unwrap(), "HAMIDOVICH");
        assert_eq!(cyrillic_to_latin("f", "Жасур").unwrap(), "JASUR");
        assert_eq!(cyrillic_to_latin("f", "Елена").unwrap(), "YELENA");
        assert_eq!(cyrillic_to_latin("f", "Юлдуз").unwrap(), "YULDUZ");
        assert_eq!(cyrillic_to_latin("f", "Ёқуб").unwrap(), "YOQUB");
        assert_eq!(cyrillic_to_latin("f", "Ямина").unwrap(), "YAMINA");
        assert_eq!(cyrillic_to_latin("f", "Цеце").unwrap(), "TSETSE");
        assert_eq!(cyrillic_to_latin("f", "Маъруф").unwrap(), "MARUF");
        assert_eq!(cyrillic_to_latin("f", "Хуршид").unwrap(), "XURSHID");
        assert_eq!(cyrillic_to_latin("f", "Чорши").unwrap(), "CHORSHI");
    }

    #[test]
    fn latin_form_wins_over_cyrillic() {
        assert_eq!(
            name_components("surname", Some("Sharipov"), Some("Шарипова")).unwrap(),
            comps(&["SHARIPOV"])
        );
        assert_eq!(
            name_components("surname", None, Some("Шарипова")).unwrap(),
            comps(&["SHARIPOVA"])
        );
        assert!(name_components("surname", None, None).is_err());
    }

    #[test]
    fn short_name_is_padded_to_thirty() {
        let f = name_field(&comps(&["ERIKSSON"]), &comps(&["ANNA", "MARIA"])).unwrap();
        assert_eq!(f, "ERIKSSON<<ANNA<MARIA<<<<<<<<<<");
    }

    #[test]
    fn long_secondary_components_become_initials_from_the_last() {
        let f = name_field(
            &comps(&["ABDURAKHMONOV", "XOLMATOV"]),
            &comps(&["MUHAMMADYUSUF", "ABDULAZIZXON"]),
        )
        .unwrap();
        // 22 + 2 + 26 = 50 > 30; ABDULAZIZXON → A still 39; MUHAMMADYUSUF → M gives 27.
        assert_eq!(f, "ABDURAKHMONOV<XOLMATOV<<M<A<<<");
    }

    #[test]
    fn overlong_primary_fills_the_field_ending_on_a_letter() {
        let f = name_field(
            &comps(&["ABCDEFGHIJKLMNO", "PQRSTUVWXYZABCD"]),
            &comps(&["ANNA"]),
        )
        .unwrap();
        assert_eq!(f.len(), 30);
        assert!(f.starts_with("ABCDEFGHIJKLMNO<PQRSTUVWXYZABC"));
        assert!(f.ends_with('C'));
    }

    #[test]
    fn truncated_field_never_ends_in_a_filler_before_padding() {
        let f = name_field(
            &comps(&["ABCDEFGHIJKLMNOPQRSTUV"]),
            &comps(&["WXYZ", "QWERTY"]),
        )
        .unwrap();
        // 22 + 2 + 11 = 35 > 30; QWERTY → Q gives exactly 30.
        assert_eq!(f, "ABCDEFGHIJKLMNOPQRSTUV<<WXYZ<Q");
    }

    #[test]
    fn icao_td1_specimen_is_reproduced() {
        // Doc 9303 Part 5 Appendix A specimen (Utopia, Anna Maria Eriksson).
        let t = Td1 {
            issuing_state: "UTO".into(),
            document_number: "D23145890".into(),
            optional_data: String::new(),
            date_of_birth: date!(1974 - 08 - 12),
            sex: MrzSex::Female,
            date_of_expiry: date!(2012 - 04 - 15),
            nationality: "UTO".into(),
            primary: comps(&["ERIKSSON"]),
            secondary: comps(&["ANNA", "MARIA"]),
        };
        let l = td1(&t).unwrap();
        assert_eq!(l[0], "I<UTOD231458907<<<<<<<<<<<<<<<");
        assert_eq!(l[1], "7408122F1204159UTO<<<<<<<<<<<6");
        assert_eq!(l[2], "ERIKSSON<<ANNA<MARIA<<<<<<<<<<");
    }

    #[test]
    fn bac_mrz_information_is_number_birth_expiry_with_check_digits() {
        let t = Td1 {
            issuing_state: "UTO".into(),
            document_number: "D23145890".into(),
            optional_data: String::new(),
            date_of_birth: date!(1974 - 08 - 12),
            sex: MrzSex::Female,
            date_of_expiry: date!(2012 - 04 - 15),
            nationality: "UTO".into(),
            primary: comps(&["ERIKSSON"]),
            secondary: comps(&["ANNA"]),
        };
        let l = td1(&t).unwrap();
        assert_eq!(bac_mrz_information(&l).unwrap(), "D23145890774081221204159");
    }

    #[test]
    fn document_number_of_wrong_length_is_refused() {
        let t = Td1 {
            issuing_state: "UZB".into(),
            document_number: "AD123".into(),
            optional_data: String::new(),
            date_of_birth: date!(1990 - 01 - 01),
            sex: MrzSex::Male,
            date_of_expiry: date!(2036 - 01 - 01),
            nationality: "UZB".into(),
            primary: comps(&["X"]),
            secondary: vec![],
        };
        let e = td1(&t).unwrap_err().to_string();
        assert!(e.starts_with("document_number:"), "{e}");
    }
}
