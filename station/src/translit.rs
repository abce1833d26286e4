//! Name transliteration offered by the holder form (issue 20): Uzbek Cyrillic ↔ Latin, with
//! the MRZ's correspondences (`personalization::mrz::cyrillic_to_latin`), so that a name and
//! its transliteration give the same MRZ name field. The clerk confirms every suggestion; the
//! registry keeps what the clerk confirmed.

use personalization::mrz::cyrillic_to_latin;

/// An Uzbek Cyrillic name in the official Latin alphabet, letter by letter with the MRZ's
/// correspondences (`Ш` → `Sh`, `Е` → `Ye` at a word start and after a vowel, …), `ў` and `ғ`
/// written `oʻ` and `gʻ` (U+02BB) and `ъ` as `ʼ` (U+02BC), which the MRZ drops. Case follows
/// the source letters. `Err` names the first character that is not an Uzbek Cyrillic letter.
pub fn latin_from_cyrillic(name: &str) -> Result<String, String> {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    let mut done = 0usize;
    for i in 0..chars.len() {
        // Each letter's output depends only on the letters before it in its word, so the
        // output of a prefix is a prefix of the output.
        let prefix: String = chars[..=i].iter().collect();
        let full = cyrillic_to_latin("name", &prefix).map_err(|e| e.to_string())?;
        let seg: String = full.chars().skip(done).collect();
        done = full.chars().count();
        let c = chars[i];
        let mut seg = if c.is_uppercase() {
            let mut s = seg.chars();
            match s.next() {
                Some(f) => f
                    .to_uppercase()
                    .chain(s.flat_map(char::to_lowercase))
                    .collect(),
                None => String::new(),
            }
        } else {
            seg.to_lowercase()
        };
        match c.to_lowercase().next() {
            Some('ў' | 'ғ') => seg.push('\u{2BB}'),
            Some('ъ') => seg.push('\u{2BC}'),
            _ => {}
        }
        out.push_str(&seg);
    }
    Ok(out)
}

/// An Uzbek Latin name in Cyrillic, the inverse of the MRZ's correspondences: `oʻ` → `ў`,
/// `gʻ` → `ғ`, `sh` → `ш`, `ch` → `ч`, `yo` → `ё`, `yu` → `ю`, `ya` → `я`, `ye` → `е` at a word
/// start and after a vowel, `e` → `э` at a word start, `ʼ` → `ъ`. Case follows the source.
/// `Err` names the first character that is not an Uzbek Latin letter.
pub fn cyrillic_from_latin(name: &str) -> Result<String, String> {
    let mark = |c: char| {
        matches!(
            c,
            '\u{2BB}' | '\u{2BC}' | '\'' | '\u{2018}' | '\u{2019}' | '`'
        )
    };
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    // The last Cyrillic letter written in this word, lower case (None at a word start).
    let mut prev: Option<char> = None;
    let vowel = |c: Option<char>| {
        matches!(
            c,
            Some('а' | 'е' | 'ё' | 'и' | 'о' | 'у' | 'ў' | 'э' | 'ю' | 'я')
        )
    };
    while i < chars.len() {
        let c = chars[i];
        let lc = c.to_lowercase().next().unwrap_or(c);
        let next = chars
            .get(i + 1)
            .map(|n| n.to_lowercase().next().unwrap_or(*n));
        let upper = c.is_uppercase();
        let (cyr, used): (&str, usize) = match (lc, next) {
            (' ' | '-', _) => {
                out.push(lc);
                prev = None;
                i += 1;
                continue;
            }
            ('o', Some(n)) if mark(n) => ("ў", 2),
            ('g', Some(n)) if mark(n) => ("ғ", 2),
            ('s', Some('h')) => ("ш", 2),
            ('c', Some('h')) => ("ч", 2),
            ('y', Some('o')) => ("ё", 2),
            ('y', Some('u')) => ("ю", 2),
            ('y', Some('a')) => ("я", 2),
            ('y', Some('e')) if prev.is_none() || vowel(prev) => ("е", 2),
            ('e', _) if prev.is_none() => ("э", 1),
            (m, _) if mark(m) => ("ъ", 1),
            ('a', _) => ("а", 1),
            ('b', _) => ("б", 1),
            ('d', _) => ("д", 1),
            ('e', _) => ("е", 1),
            ('f', _) => ("ф", 1),
            ('g', _) => ("г", 1),
            ('h', _) => ("ҳ", 1),
            ('i', _) => ("и", 1),
            ('j', _) => ("ж", 1),
            ('k', _) => ("к", 1),
            ('l', _) => ("л", 1),
            ('m', _) => ("м", 1),
            ('n', _) => ("н", 1),
            ('o', _) => ("о", 1),
            ('p', _) => ("п", 1),
            ('q', _) => ("қ", 1),
            ('r', _) => ("р", 1),
            ('s', _) => ("с", 1),
            ('t', _) => ("т", 1),
            ('u', _) => ("у", 1),
            ('v', _) => ("в", 1),
            ('x', _) => ("х", 1),
            ('y', _) => ("й", 1),
            ('z', _) => ("з", 1),
            _ => {
                return Err(format!(
                    "{c:?} (U+{:04X}) is not an Uzbek Latin letter",
                    c as u32
                ))
            }
        };
        if upper {
            out.extend(cyr.chars().flat_map(char::to_uppercase));
        } else {
            out.push_str(cyr);
        }
        prev = cyr.chars().last();
        i += used;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use personalization::mrz::name_components;

    #[test]
    fn cyrillic_names_become_official_latin() {
        assert_eq!(latin_from_cyrillic("Тўхтаева").unwrap(), "Toʻxtayeva");
        assert_eq!(latin_from_cyrillic("Ғулнора").unwrap(), "Gʻulnora");
        assert_eq!(latin_from_cyrillic("Шоҳруҳ").unwrap(), "Shohruh");
        assert_eq!(latin_from_cyrillic("Елена").unwrap(), "Yelena");
        assert!(latin_from_cyrillic("Ivan").unwrap_err().contains("'I'"));
    }

    #[test]
    fn latin_names_become_cyrillic() {
        assert_eq!(cyrillic_from_latin("Toʻxtayeva").unwrap(), "Тўхтаева");
        assert_eq!(cyrillic_from_latin("Gʻulnora").unwrap(), "Ғулнора");
        assert_eq!(
            cyrillic_from_latin("Karimova Dilnoza").unwrap(),
            "Каримова Дилноза"
        );
        assert_eq!(cyrillic_from_latin("Ergash").unwrap(), "Эргаш");
        assert!(cyrillic_from_latin("Smith2").unwrap_err().contains("'2'"));
    }

    /// A name and its transliteration give the same MRZ name components, both ways.
    #[test]
    fn a_transliteration_has_the_same_mrz_as_its_source() {
        for latin in [
            "Toʻxtayeva",
            "Gʻulnora",
            "Karimova",
            "Shoxrux",
            "Yusupov",
            "Choʻlpon",
            "Ergashev",
            "Maʼruf",
            "Abdulla-Xoʻja",
        ] {
            let cyr = cyrillic_from_latin(latin).unwrap();
            let back = latin_from_cyrillic(&cyr).unwrap();
            let mrz = |l: Option<&str>, c: Option<&str>| name_components("n", l, c).unwrap();
            assert_eq!(
                mrz(Some(latin), None),
                mrz(None, Some(&cyr)),
                "{latin} / {cyr}"
            );
            assert_eq!(
                mrz(Some(&back), None),
                mrz(None, Some(&cyr)),
                "{back} / {cyr}"
            );
        }
    }
}
