//! The lists the holder form offers (issue 20): the regions and districts of Uzbekistan
//! (`profiles/data/uz-regions.toml`, from the SOATO classifier) and the citizenship codes
//! (`profiles/data/iso3166-alpha3.toml`, ISO 3166-1 alpha-3 plus ICAO's XXA, XXB, XXC). Both
//! files are embedded in the binary and parsed once; each file cites its source.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The embedded regions file.
pub const UZ_REGIONS_TOML: &str = include_str!("../data/uz-regions.toml");
/// The embedded citizenship list.
pub const CITIZENSHIPS_TOML: &str = include_str!("../data/iso3166-alpha3.toml");

/// What a district entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DistrictKind {
    /// A district (tuman).
    District,
    /// A city of regional subordination (shahar).
    City,
    /// A district of Toshkent shahri.
    CityDistrict,
}

/// A district, a city of regional subordination or a city district.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct District {
    /// The 7-digit SOATO code.
    pub soato: String,
    /// The name in Uzbek Latin, as the registry stores it ("Yunusobod tumani").
    pub name: String,
    pub name_ru: String,
    pub kind: DistrictKind,
}

/// A first-level unit: a viloyat, the Republic of Qoraqalpogʻiston or Toshkent shahri.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// The 4-digit SOATO code.
    pub soato: String,
    /// The name in Uzbek Latin ("Toshkent shahri").
    pub name: String,
    pub name_ru: String,
    #[serde(rename = "district")]
    pub districts: Vec<District>,
}

/// The whole list, in SOATO order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Regions {
    #[serde(rename = "region")]
    pub regions: Vec<Region>,
}

impl Regions {
    /// Parse a regions file and check it: SOATO codes of 4 (region) and 7 (district) digits,
    /// each district's code under its region's, no name twice in one region.
    pub fn parse(text: &str) -> Result<Regions, String> {
        let r: Regions = toml::from_str(text).map_err(|e| e.to_string())?;
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        for reg in &r.regions {
            if !digits(&reg.soato, 4) {
                return Err(format!("region {}: soato must be 4 digits", reg.name));
            }
            let mut names = std::collections::BTreeSet::new();
            for d in &reg.districts {
                if !digits(&d.soato, 7) || !d.soato.starts_with(&reg.soato) {
                    return Err(format!(
                        "district {}: soato must be 7 digits starting with {}",
                        d.name, reg.soato
                    ));
                }
                if !names.insert(d.name.as_str()) {
                    return Err(format!(
                        "district {} is listed twice in {}",
                        d.name, reg.name
                    ));
                }
            }
        }
        Ok(r)
    }

    /// The region named `name` (Uzbek Latin, exactly as listed).
    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name == name)
    }
}

impl Region {
    /// The district named `name` in this region.
    pub fn district(&self, name: &str) -> Option<&District> {
        self.districts.iter().find(|d| d.name == name)
    }
}

/// The embedded list of Uzbekistan's regions and districts.
pub fn uz_regions() -> &'static Regions {
    static R: OnceLock<Regions> = OnceLock::new();
    R.get_or_init(|| {
        // The embedded file is checked by this crate's tests; a broken one is a build defect.
        Regions::parse(UZ_REGIONS_TOML).unwrap_or_else(|e| panic!("uz-regions.toml: {e}"))
    })
}

/// A citizenship code the form offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Country {
    /// ISO 3166-1 alpha-3, or XXA / XXB / XXC.
    pub code: String,
    pub name: String,
    pub name_ru: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Countries {
    #[serde(rename = "country")]
    pub countries: Vec<Country>,
}

impl Countries {
    /// Parse a citizenship list: three capital letters each, no code twice.
    pub fn parse(text: &str) -> Result<Countries, String> {
        let c: Countries = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut seen = std::collections::BTreeSet::new();
        for x in &c.countries {
            if x.code.len() != 3 || !x.code.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(format!("{}: code must be 3 capital letters", x.code));
            }
            if !seen.insert(x.code.as_str()) {
                return Err(format!("{} is listed twice", x.code));
            }
        }
        Ok(c)
    }

    pub fn get(&self, code: &str) -> Option<&Country> {
        self.countries.iter().find(|c| c.code == code)
    }
}

/// The embedded citizenship list (ISO 3166-1 alpha-3 plus XXA, XXB, XXC), by code.
pub fn citizenships() -> &'static Countries {
    static C: OnceLock<Countries> = OnceLock::new();
    C.get_or_init(|| {
        Countries::parse(CITIZENSHIPS_TOML).unwrap_or_else(|e| panic!("iso3166-alpha3.toml: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_region_and_district_round_trips_through_the_loader() {
        let r = uz_regions();
        // 12 viloyatlar, Qoraqalpogʻiston, Toshkent shahri.
        assert_eq!(r.regions.len(), 14);
        let total: usize = r.regions.iter().map(|x| x.districts.len()).sum();
        assert!(total >= 200, "{total} districts and cities");
        // Written out and read back, the list is the same, entry for entry.
        let text = toml::to_string(r).expect("serialize");
        let back = Regions::parse(&text).expect("parse what was written");
        assert_eq!(&back, r);
        for reg in &r.regions {
            assert_eq!(r.region(&reg.name), Some(reg), "{}", reg.name);
            for d in &reg.districts {
                assert_eq!(reg.district(&d.name), Some(d), "{} / {}", reg.name, d.name);
                // The registry's rule for address texts: not empty, at most 80 characters, no
                // control character.
                assert!(!d.name.trim().is_empty() && d.name.chars().count() <= 80);
                assert!(!d.name.contains('\''), "{}: ʻ or ʼ, not '", d.name);
            }
        }
        // The fixtures' addresses are on the list.
        for (region, district) in [
            ("Toshkent shahri", "Yunusobod tumani"),
            ("Samarqand viloyati", "Urgut tumani"),
            ("Fargʻona viloyati", "Margʻilon shahri"),
        ] {
            assert!(
                r.region(region)
                    .and_then(|x| x.district(district))
                    .is_some(),
                "{region} / {district}"
            );
        }
    }

    #[test]
    fn a_district_outside_its_region_is_refused() {
        let text = "[[region]]\nsoato = \"1703\"\nname = \"A\"\nname_ru = \"А\"\n\
                    [[region.district]]\nsoato = \"1706204\"\nname = \"B\"\nname_ru = \"Б\"\nkind = \"district\"\n";
        let e = Regions::parse(text).expect_err("1706… is not under 1703");
        assert!(e.contains("starting with 1703"), "{e}");
    }

    #[test]
    fn every_citizenship_round_trips_and_the_icao_codes_are_there() {
        let c = citizenships();
        assert!(c.countries.len() >= 249, "{}", c.countries.len());
        let text = toml::to_string(c).expect("serialize");
        assert_eq!(&Countries::parse(&text).expect("parse"), c);
        for code in ["UZB", "RUS", "KAZ", "XXA", "XXB", "XXC"] {
            assert!(c.get(code).is_some(), "{code}");
        }
        for x in &c.countries {
            assert_eq!(c.get(&x.code), Some(x));
        }
    }
}
