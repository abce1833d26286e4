//! Card serials in one notation on every screen: the registry's (`station::card::serial_text`,
//! eight upper-case hexadecimal digits, "6E000001"), whatever form a serial arrives in.

/// A card serial as the desk shows it: "0x6e000001", "6e:00:00:01" or "6E000001" all become
/// "6E000001". A serial that is not hexadecimal (a foreign card's text serial) is shown as it is.
pub fn card_serial(raw: &str) -> String {
    let s = raw.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let digits: String = s
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '-'))
        .collect();
    if digits.is_empty() || digits.len() > 8 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return raw.trim().to_owned();
    }
    format!("{:0>8}", digits.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_serial_reads_as_the_registry_writes_it() {
        // The registry's own notation, from the station's formatter.
        let registry = station::card::serial_text(0x6E00_0001);
        for raw in [
            "6E000001",
            "6e000001",
            "0x6e000001",
            "6E:00:00:01",
            " 6e-00-00-01 ",
        ] {
            assert_eq!(card_serial(raw), registry, "{raw}");
        }
        assert_eq!(card_serial("1F"), station::card::serial_text(0x1F));
        // Not a hexadecimal serial: left as it is.
        assert_eq!(card_serial("VCHIP-0002"), "VCHIP-0002");
        assert_eq!(card_serial("123456789"), "123456789");
    }
}
