//! PIV data objects (SP 800-73-4 Part 1 Appendix A, Tables 8–19) as typed values with their
//! BER-TLV encodings: CHUID with FASC-N (Table 9; FASC-N per "Technical Implementation Guidance:
//! Smart Card Enabled Physical Access Control Systems" as referenced by SP 800-73-4 §3.1.2),
//! Card Capability Container (Table 8), Discovery (Table 18), Printed Information (Table 11),
//! Key History (Table 19) and X.509 certificate containers (Table 10).

use profiles::card::Slot;
use time::Date;

use crate::error::Error;
use crate::tlv::{self, Tag};

/// PIV application identifier (SP 800-73-4 Part 1 §2.2), full form with version 01 00.
pub const PIV_AID: [u8; 11] = [
    0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
];

/// Tag of a slot's certificate object (SP 800-73-4 Part 1 Table 3).
pub fn certificate_tag(slot: Slot) -> Tag {
    match slot {
        Slot::Authentication => tags::CERT_9A,
        Slot::Signature => tags::CERT_9C,
        Slot::KeyManagement => tags::CERT_9D,
        Slot::CardAuthentication => tags::CERT_9E,
    }
}

/// Data object tags (SP 800-73-4 Part 1 Table 3).
pub mod tags {
    /// Card Capability Container.
    pub const CCC: u32 = 0x5FC107;
    /// Card Holder Unique Identifier.
    pub const CHUID: u32 = 0x5FC102;
    /// X.509 Certificate for PIV Authentication (9A).
    pub const CERT_9A: u32 = 0x5FC105;
    /// X.509 Certificate for Digital Signature (9C).
    pub const CERT_9C: u32 = 0x5FC10A;
    /// X.509 Certificate for Key Management (9D).
    pub const CERT_9D: u32 = 0x5FC10B;
    /// X.509 Certificate for Card Authentication (9E).
    pub const CERT_9E: u32 = 0x5FC101;
    /// Printed Information.
    pub const PRINTED: u32 = 0x5FC109;
    /// Discovery Object (a BER-TLV with tag 7E, not wrapped in 53).
    pub const DISCOVERY: u32 = 0x7E;
    /// Key History Object.
    pub const KEY_HISTORY: u32 = 0x5FC10C;
    /// Card lifecycle (card contract, vendor tag).
    pub const LIFECYCLE: u32 = 0x5FFF20;
}

/// FASC-N (Federal Agency Smart Credential Number), 40 BCD characters with odd parity packed into
/// 200 bits = 25 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fascn {
    /// Agency code, 4 digits.
    pub agency_code: [u8; 4],
    /// System code, 4 digits.
    pub system_code: [u8; 4],
    /// Credential number, 6 digits.
    pub credential_number: [u8; 6],
    /// Credential series, 1 digit.
    pub credential_series: u8,
    /// Individual credential issue, 1 digit.
    pub individual_credential_issue: u8,
    /// Person identifier, 10 digits.
    pub person_identifier: [u8; 10],
    /// Organizational category, 1 digit (1 federal, 2 state, 3 commercial, 4 foreign).
    pub organizational_category: u8,
    /// Organizational identifier, 4 digits.
    pub organizational_identifier: [u8; 4],
    /// Person/organization association category, 1 digit.
    pub association: u8,
}

const SS: u8 = 0x0B; // start sentinel
const FS: u8 = 0x0D; // field separator
const ES: u8 = 0x0F; // end sentinel

impl Fascn {
    /// The FASC-N a non-federal issuer puts in the CHUID (SP 800-73-4 Part 1 §3.1.2 for issuers
    /// that do not have federal agency codes: agency code 9999, system code 9999, credential
    /// number 999999; credential series 0, issue 1, person identifier 0, organizational category
    /// 3 (commercial), organization 0000, association 1). The card is identified by the GUID /
    /// cardholder UUID instead.
    pub fn non_federal() -> Self {
        Self {
            agency_code: [9; 4],
            system_code: [9; 4],
            credential_number: [9; 6],
            credential_series: 0,
            individual_credential_issue: 1,
            person_identifier: [0; 10],
            organizational_category: 3,
            organizational_identifier: [0; 4],
            association: 1,
        }
    }

    fn chars(&self) -> Vec<u8> {
        let mut c = vec![SS];
        c.extend_from_slice(&self.agency_code);
        c.push(FS);
        c.extend_from_slice(&self.system_code);
        c.push(FS);
        c.extend_from_slice(&self.credential_number);
        c.push(FS);
        c.push(self.credential_series);
        c.push(FS);
        c.push(self.individual_credential_issue);
        c.push(FS);
        c.extend_from_slice(&self.person_identifier);
        c.push(self.organizational_category);
        c.extend_from_slice(&self.organizational_identifier);
        c.push(self.association);
        c.push(ES);
        let lrc = c.iter().fold(0u8, |a, &x| a ^ (x & 0x0F));
        c.push(lrc);
        c
    }

    /// The 25-byte encoding: each character as 4 data bits least significant first, then an odd
    /// parity bit, packed most significant bit first.
    pub fn encode(&self) -> Result<[u8; 25], Error> {
        let chars = self.chars();
        if let Some(d) = chars.iter().find(|&&d| d > 0x0F) {
            return Err(Error::Invalid {
                field: "FASC-N".into(),
                rule: format!("digit value {d} is not a BCD digit"),
            });
        }
        let digits_ok = [
            &self.agency_code[..],
            &self.system_code,
            &self.credential_number,
            &[self.credential_series, self.individual_credential_issue],
            &self.person_identifier,
            &[self.organizational_category, self.association],
            &self.organizational_identifier,
        ]
        .iter()
        .all(|f| f.iter().all(|&d| d <= 9));
        if !digits_ok {
            return Err(Error::Invalid {
                field: "FASC-N".into(),
                rule: "every field must be decimal digits 0-9".into(),
            });
        }
        let mut bits: Vec<bool> = Vec::with_capacity(200);
        for ch in chars {
            let mut ones = 0;
            for i in 0..4 {
                let b = (ch >> i) & 1 == 1;
                ones += b as u8;
                bits.push(b);
            }
            bits.push(ones % 2 == 0);
        }
        let mut out = [0u8; 25];
        for (i, b) in bits.iter().enumerate() {
            if *b {
                out[i / 8] |= 0x80 >> (i % 8);
            }
        }
        Ok(out)
    }
}

/// Card Holder Unique Identifier (SP 800-73-4 Part 1 Table 9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chuid {
    /// FASC-N (tag 30).
    pub fascn: [u8; 25],
    /// GUID (tag 34): an RFC 4122 UUID, fresh per card.
    pub guid: [u8; 16],
    /// Expiration date (tag 35, YYYYMMDD).
    pub expiry: Date,
    /// Cardholder UUID (tag 36), optional.
    pub cardholder_uuid: Option<[u8; 16]>,
}

/// A fresh random RFC 4122 §4.4 version-4 UUID.
pub fn random_uuid() -> Result<[u8; 16], Error> {
    let mut g = [0u8; 16];
    getrandom::fill(&mut g).map_err(|e| Error::Invalid {
        field: "random generator".into(),
        rule: format!("the operating system RNG failed: {e}"),
    })?;
    g[6] = (g[6] & 0x0F) | 0x40;
    g[8] = (g[8] & 0x3F) | 0x80;
    Ok(g)
}

fn yyyymmdd(d: Date) -> String {
    format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
}

impl Chuid {
    /// The object value (the `53` container).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        tlv::push(&mut v, 0x30, &self.fascn);
        tlv::push(&mut v, 0x34, &self.guid);
        tlv::push(&mut v, 0x35, yyyymmdd(self.expiry).as_bytes());
        if let Some(u) = &self.cardholder_uuid {
            tlv::push(&mut v, 0x36, u);
        }
        // Issuer Asymmetric Signature: present and empty (no content signing key on the station;
        // see docs/personalization.md).
        tlv::push(&mut v, 0x3E, &[]);
        tlv::push(&mut v, 0xFE, &[]);
        tlv::encode(0x53, &v)
    }
}

/// Card Capability Container (SP 800-73-4 Part 1 Table 8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ccc {
    /// Card identifier (tag F0): GSC-RID A0 00 00 01 16, manufacturer ID, card type, 14-byte ID.
    pub card_identifier: [u8; 21],
}

impl Ccc {
    /// A CCC with a fresh random card ID (manufacturer FF = not registered, card type 02).
    pub fn random() -> Result<Self, Error> {
        let mut id = [0u8; 21];
        id[..7].copy_from_slice(&[0xA0, 0x00, 0x00, 0x01, 0x16, 0xFF, 0x02]);
        getrandom::fill(&mut id[7..]).map_err(|e| Error::Invalid {
            field: "random generator".into(),
            rule: format!("the operating system RNG failed: {e}"),
        })?;
        Ok(Self {
            card_identifier: id,
        })
    }

    /// The object value.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        tlv::push(&mut v, 0xF0, &self.card_identifier);
        tlv::push(&mut v, 0xF1, &[0x21]); // capability container version
        tlv::push(&mut v, 0xF2, &[0x21]); // capability grammar version
        tlv::push(&mut v, 0xF3, &[]); // applications CardURL
        tlv::push(&mut v, 0xF4, &[0x00]); // PKCS#15: no
        tlv::push(&mut v, 0xF5, &[0x10]); // registered data model number
        tlv::push(&mut v, 0xF6, &[]); // access control rule table
        tlv::push(&mut v, 0xF7, &[]); // card APDUs
        tlv::push(&mut v, 0xFA, &[]); // redirection tag
        tlv::push(&mut v, 0xFB, &[]); // capability tuples
        tlv::push(&mut v, 0xFC, &[]); // status tuples
        tlv::push(&mut v, 0xFD, &[]); // next CCC
        tlv::push(&mut v, 0xFE, &[]); // error detection code
        tlv::encode(0x53, &v)
    }
}

/// Discovery Object (SP 800-73-4 Part 1 Table 18): the PIV AID and the PIN usage policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Discovery {
    /// PIN usage policy, first byte (bit 7 = 0x40: PIV Card Application PIN satisfies the PIV
    /// access control rules; 0x20: global PIN also; 0x10: OCC).
    pub pin_policy: [u8; 2],
}

impl Discovery {
    /// Application PIN only.
    pub fn application_pin() -> Self {
        Self {
            pin_policy: [0x40, 0x00],
        }
    }

    /// The object (tag 7E, not wrapped in 53).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        tlv::push(&mut v, 0x4F, &PIV_AID);
        tlv::push(&mut v, 0x5F2F, &self.pin_policy);
        tlv::encode(0x7E, &v)
    }
}

/// Printed Information (SP 800-73-4 Part 1 Table 11). Text fields are stored as UTF-8; the
/// table's maximum lengths are byte counts and are enforced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrintedInformation {
    /// Name (tag 01, ≤ 125 bytes).
    pub name: String,
    /// Employee affiliation (tag 02, ≤ 20 bytes).
    pub employee_affiliation: String,
    /// Expiration date (tag 04, printed as YYYYMMMDD, e.g. 2031DEC31).
    pub expiry: Date,
    /// Agency card serial number (tag 05, ≤ 10 bytes; we put the document number).
    pub card_serial: String,
    /// Issuer identification (tag 06, ≤ 15 bytes).
    pub issuer: String,
    /// Organization affiliation line 1 (tag 07, ≤ 20 bytes, optional).
    pub organization_line1: Option<String>,
    /// Organization affiliation line 2 (tag 08, ≤ 20 bytes, optional).
    pub organization_line2: Option<String>,
}

fn check_text(field: &str, value: &str, max: usize, required: bool) -> Result<(), Error> {
    if required && value.trim().is_empty() {
        return Err(Error::Invalid {
            field: field.into(),
            rule: "must not be empty".into(),
        });
    }
    if value.len() > max {
        return Err(Error::Invalid {
            field: field.into(),
            rule: format!(
                "is {} bytes, SP 800-73-4 Table 11 allows at most {max}",
                value.len()
            ),
        });
    }
    if value.chars().any(char::is_control) {
        return Err(Error::Invalid {
            field: field.into(),
            rule: "must not contain control characters".into(),
        });
    }
    Ok(())
}

fn yyyymmmdd(d: Date) -> String {
    const M: [&str; 12] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    let m = M[(u8::from(d.month()) as usize).saturating_sub(1).min(11)];
    format!("{:04}{}{:02}", d.year(), m, d.day())
}

impl PrintedInformation {
    /// Checks the field lengths; the error names the field and the limit.
    pub fn validate(&self) -> Result<(), Error> {
        check_text("printed_information.name", &self.name, 125, true)?;
        check_text(
            "printed_information.employee_affiliation",
            &self.employee_affiliation,
            20,
            false,
        )?;
        check_text(
            "printed_information.card_serial",
            &self.card_serial,
            10,
            true,
        )?;
        check_text("printed_information.issuer", &self.issuer, 15, true)?;
        if let Some(l) = &self.organization_line1 {
            check_text("printed_information.organization_line1", l, 20, false)?;
        }
        if let Some(l) = &self.organization_line2 {
            check_text("printed_information.organization_line2", l, 20, false)?;
        }
        Ok(())
    }

    /// The object value (`53` container).
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        self.validate()?;
        let mut v = Vec::new();
        tlv::push(&mut v, 0x01, self.name.as_bytes());
        tlv::push(&mut v, 0x02, self.employee_affiliation.as_bytes());
        tlv::push(&mut v, 0x04, yyyymmmdd(self.expiry).as_bytes());
        tlv::push(&mut v, 0x05, self.card_serial.as_bytes());
        tlv::push(&mut v, 0x06, self.issuer.as_bytes());
        if let Some(l) = &self.organization_line1 {
            tlv::push(&mut v, 0x07, l.as_bytes());
        }
        if let Some(l) = &self.organization_line2 {
            tlv::push(&mut v, 0x08, l.as_bytes());
        }
        tlv::push(&mut v, 0xFE, &[]);
        Ok(tlv::encode(0x53, &v))
    }
}

/// Key History Object (SP 800-73-4 Part 1 Table 19): no retired keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyHistory {
    /// keysWithOnCardCerts (tag C1).
    pub on_card: u8,
    /// keysWithOffCardCerts (tag C2).
    pub off_card: u8,
}

impl KeyHistory {
    /// The object value.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        tlv::push(&mut v, 0xC1, &[self.on_card]);
        tlv::push(&mut v, 0xC2, &[self.off_card]);
        tlv::push(&mut v, 0xFE, &[]);
        tlv::encode(0x53, &v)
    }
}

/// An X.509 certificate container (SP 800-73-4 Part 1 Table 10):
/// `53 { 70 <DER>, 71 01 00 (CertInfo: uncompressed), FE 00 }`.
pub fn certificate_object(der: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(der.len() + 16);
    tlv::push(&mut v, 0x70, der);
    tlv::push(&mut v, 0x71, &[0x00]);
    tlv::push(&mut v, 0xFE, &[]);
    tlv::encode(0x53, &v)
}

/// The DER certificate inside a certificate container (as read back with GET DATA).
pub fn certificate_from_object(obj: &[u8]) -> Result<Vec<u8>, Error> {
    let inner = tlv::expect_single(obj, 0x53)?;
    let items = tlv::parse_all(inner)?;
    if let Some(info) = items.iter().find(|t| t.tag == 0x71) {
        if info.value.first().copied().unwrap_or(0) & 0x01 != 0 {
            return Err(Error::Tlv(
                "compressed certificates (CertInfo 01) are not supported".into(),
            ));
        }
    }
    items
        .iter()
        .find(|t| t.tag == 0x70)
        .map(|t| t.value.to_vec())
        .ok_or_else(|| Error::Tlv("certificate object has no tag 70".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn non_federal_fascn_matches_the_value_pivs_clients_ship() {
        // The non-federal FASC-N (agency 9999, system 9999, credential 999999) as yubico-piv-tool
        // and yubikey.rs write it into the CHUID template.
        let expect = [
            0xD4, 0xE7, 0x39, 0xDA, 0x73, 0x9C, 0xED, 0x39, 0xCE, 0x73, 0x9D, 0x83, 0x68, 0x58,
            0x21, 0x08, 0x42, 0x10, 0x84, 0x21, 0xC8, 0x42, 0x10, 0xC3, 0xEB,
        ];
        assert_eq!(Fascn::non_federal().encode().unwrap(), expect);
    }

    #[test]
    fn fascn_rejects_non_digits() {
        let mut f = Fascn::non_federal();
        f.agency_code[0] = 10;
        assert!(f.encode().is_err());
    }

    #[test]
    fn chuid_encodes_guid_expiry_and_empty_signature() {
        let c = Chuid {
            fascn: Fascn::non_federal().encode().unwrap(),
            guid: [0x11; 16],
            expiry: date!(2031 - 12 - 05),
            cardholder_uuid: None,
        };
        let e = c.encode();
        let v = tlv::expect_single(&e, 0x53).unwrap();
        assert_eq!(tlv::find(v, 0x34).unwrap().unwrap(), &[0x11; 16]);
        assert_eq!(tlv::find(v, 0x35).unwrap().unwrap(), b"20311205");
        assert_eq!(tlv::find(v, 0x3E).unwrap().unwrap(), b"");
        assert_eq!(tlv::find(v, 0x30).unwrap().unwrap().len(), 25);
    }

    #[test]
    fn random_uuid_has_version_4_and_rfc4122_variant() {
        let a = random_uuid().unwrap();
        let b = random_uuid().unwrap();
        assert_ne!(a, b);
        assert_eq!(a[6] >> 4, 4);
        assert_eq!(a[8] >> 6, 0b10);
    }

    #[test]
    fn discovery_matches_sp800_73_layout() {
        let d = Discovery::application_pin().encode();
        assert_eq!(
            d,
            vec![
                0x7E, 0x12, 0x4F, 0x0B, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01,
                0x00, 0x5F, 0x2F, 0x02, 0x40, 0x00
            ]
        );
    }

    #[test]
    fn printed_information_enforces_table_11_lengths() {
        let mut p = PrintedInformation {
            name: "SHERZOD ALIYEV".into(),
            employee_affiliation: String::new(),
            expiry: date!(2035 - 02 - 28),
            card_serial: "AD1234567".into(),
            issuer: "IDSTATION".into(),
            organization_line1: None,
            organization_line2: None,
        };
        let e = p.encode().unwrap();
        let v = tlv::expect_single(&e, 0x53).unwrap();
        assert_eq!(tlv::find(v, 0x04).unwrap().unwrap(), b"2035FEB28");
        p.issuer = "A VERY LONG ISSUER NAME".into();
        let err = p.encode().unwrap_err().to_string();
        assert!(
            err.contains("printed_information.issuer") && err.contains("15"),
            "{err}"
        );
    }

    #[test]
    fn certificate_object_round_trips() {
        let der = vec![0x30, 0x82, 0x01, 0x00];
        let obj = certificate_object(&der);
        assert_eq!(obj[0], 0x53);
        assert_eq!(certificate_from_object(&obj).unwrap(), der);
        assert!(certificate_from_object(&[0x53, 0x02, 0x71, 0x00]).is_err());
    }

    #[test]
    fn ccc_has_gsc_rid_and_version_21() {
        let c = Ccc::random().unwrap().encode();
        let v = tlv::expect_single(&c, 0x53).unwrap();
        let f0 = tlv::find(v, 0xF0).unwrap().unwrap();
        assert_eq!(&f0[..5], &[0xA0, 0x00, 0x00, 0x01, 0x16]);
        assert_eq!(tlv::find(v, 0xF1).unwrap().unwrap(), &[0x21]);
    }
}
