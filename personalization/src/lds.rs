//! ICAO Doc 9303 Part 10 Logical Data Structure (LDS1) of the TD1 ID card: EF.COM, DG1, DG2,
//! DG11, DG12 as typed values with their BER-TLV encoding (Part 10 §4.6–§4.7), the writer that
//! personalizes them onto a card (the project's card contract: CREATE FILE, UPDATE BINARY in
//! chunks of ≤ 223 bytes, SET BAC KEY SEED) and the reader that reads them back through BAC
//! (Part 11 §4.3) for passive authentication ([`crate::sod`]).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use time::Date;

use crate::apdu::{Channel, Command};
use crate::bac::{BacKeys, BacReader, LDS1_AID};
use crate::status::StatusWord;
use crate::tlv;
use crate::{Error, Result};

/// File identifiers (Part 10 §4.6, Table 39 / §3.11 "EF identifiers").
pub mod fid {
    /// EF.COM.
    pub const COM: u16 = 0x011E;
    /// EF.SOD.
    pub const SOD: u16 = 0x011D;
    /// DG1..DG16 are 0101..0110.
    pub const fn dg(n: u8) -> u16 {
        0x0100 + n as u16
    }
}

/// The tag of data group `n` (Part 10 Table 34: DG1 61, DG2 75, DG11 6B, DG12 6C, ...).
pub fn dg_tag(n: u8) -> Option<u8> {
    Some(match n {
        1 => 0x61,
        2 => 0x75,
        3 => 0x63,
        4 => 0x76,
        5 => 0x65,
        6 => 0x66,
        7 => 0x67,
        8 => 0x68,
        9 => 0x69,
        10 => 0x6A,
        11 => 0x6B,
        12 => 0x6C,
        13 => 0x6D,
        14 => 0x6E,
        15 => 0x6F,
        16 => 0x70,
        _ => return None,
    })
}

fn dg_number_of_tag(tag: u8) -> Option<u8> {
    (1..=16).find(|&n| dg_tag(n) == Some(tag))
}

fn lds_err(object: &str, rule: impl Into<String>) -> Error {
    Error::Lds {
        object: object.to_string(),
        rule: rule.into(),
    }
}

/// EF.COM (Part 10 §4.6.1): tag `60` { `5F01` LDS version "0108", `5F36` Unicode version
/// "040000", `5C` tag list of the data groups present }.
pub fn ef_com(dg_numbers: &[u8]) -> Result<Vec<u8>> {
    let mut tags = Vec::new();
    for &n in dg_numbers {
        tags.push(dg_tag(n).ok_or_else(|| lds_err("EF.COM", format!("no data group {n}")))?);
    }
    let mut v = Vec::new();
    tlv::push(&mut v, 0x5F01, b"0108");
    tlv::push(&mut v, 0x5F36, b"040000");
    tlv::push(&mut v, 0x5C, &tags);
    Ok(tlv::encode(0x60, &v))
}

/// The data group numbers listed in an EF.COM.
pub fn parse_ef_com(com: &[u8]) -> Result<Vec<u8>> {
    let v = tlv::expect_single(com, 0x60)?;
    let list = tlv::find(v, 0x5C)?.ok_or_else(|| lds_err("EF.COM", "no tag list (5C)"))?;
    list.iter()
        .map(|&t| {
            dg_number_of_tag(t)
                .ok_or_else(|| lds_err("EF.COM", format!("tag list holds unknown tag {t:02X}")))
        })
        .collect()
}

/// DG1 (Part 10 §4.7.1): `61` { `5F1F` the MRZ, the three TD1 lines concatenated (90 chars) }.
pub fn dg1(mrz: &[String; 3]) -> Result<Vec<u8>> {
    let joined: String = mrz.concat();
    if joined.len() != 90 || !joined.is_ascii() {
        return Err(lds_err(
            "DG1",
            "a TD1 MRZ is three lines of 30 ASCII characters",
        ));
    }
    Ok(tlv::encode(0x61, &tlv::encode(0x5F1F, joined.as_bytes())))
}

/// The MRZ lines in a DG1.
pub fn parse_dg1(dg: &[u8]) -> Result<[String; 3]> {
    let v = tlv::expect_single(dg, 0x61)?;
    let m = tlv::find(v, 0x5F1F)?.ok_or_else(|| lds_err("DG1", "no MRZ (5F1F)"))?;
    if m.len() != 90 || !m.is_ascii() {
        return Err(lds_err(
            "DG1",
            format!("MRZ of {} bytes, TD1 needs 90", m.len()),
        ));
    }
    let s = String::from_utf8_lossy(m);
    Ok([
        s[..30].to_string(),
        s[30..60].to_string(),
        s[60..].to_string(),
    ])
}

/// Width and height of a baseline or progressive JPEG, from its SOFn segment.
pub fn jpeg_dimensions(jpeg: &[u8]) -> Result<(u16, u16)> {
    let bad = |r: &str| lds_err("DG2", format!("photo is not a usable JPEG: {r}"));
    if jpeg.get(..2) != Some(&[0xFF, 0xD8]) {
        return Err(bad("no SOI marker"));
    }
    let mut i = 2;
    while i + 4 <= jpeg.len() {
        if jpeg[i] != 0xFF {
            return Err(bad("segment without a marker"));
        }
        let marker = jpeg[i + 1];
        let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
        // SOF0..SOF15 except DHT (C4), JPG (C8), DAC (CC).
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            let s = jpeg
                .get(i + 5..i + 9)
                .ok_or_else(|| bad("short SOF segment"))?;
            let h = u16::from_be_bytes([s[0], s[1]]);
            let w = u16::from_be_bytes([s[2], s[3]]);
            return Ok((w, h));
        }
        i += 2 + len;
    }
    Err(bad("no SOF segment"))
}

/// Sex as ISO/IEC 19794-5:2005 §5.5.3 codes it (0 unspecified, 1 male, 2 female).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaceGender {
    /// Unspecified.
    Unspecified = 0,
    /// Male.
    Male = 1,
    /// Female.
    Female = 2,
}

/// ISO/IEC 19794-5:2005 facial record with one JPEG image (§5.4 general header, §5.5 facial
/// information, §5.7 image information; no feature points).
pub fn facial_record(jpeg: &[u8], gender: FaceGender) -> Result<Vec<u8>> {
    let (w, h) = jpeg_dimensions(jpeg)?;
    let block_len = 20 + 12 + jpeg.len();
    let record_len = 14 + block_len;
    let mut r = Vec::with_capacity(record_len);
    r.extend_from_slice(b"FAC\0"); // format identifier
    r.extend_from_slice(b"010\0"); // version
    r.extend_from_slice(&(record_len as u32).to_be_bytes());
    r.extend_from_slice(&1u16.to_be_bytes()); // number of facial images
                                              // Facial information block.
    r.extend_from_slice(&(block_len as u32).to_be_bytes());
    r.extend_from_slice(&0u16.to_be_bytes()); // number of feature points
    r.push(gender as u8);
    r.push(0); // eye colour unspecified
    r.push(0); // hair colour unspecified
    r.extend_from_slice(&[0, 0, 0]); // feature mask
    r.extend_from_slice(&0u16.to_be_bytes()); // expression unspecified
    r.extend_from_slice(&[0, 0, 0]); // pose angle yaw/pitch/roll unspecified
    r.extend_from_slice(&[0, 0, 0]); // pose angle uncertainty
                                     // Image information.
    r.push(1); // face image type: full frontal
    r.push(0); // image data type: JPEG
    r.extend_from_slice(&w.to_be_bytes());
    r.extend_from_slice(&h.to_be_bytes());
    r.push(1); // colour space: 24-bit RGB
    r.push(2); // source type: digital still camera
    r.extend_from_slice(&0u16.to_be_bytes()); // device type unspecified
    r.extend_from_slice(&0u16.to_be_bytes()); // quality unspecified
    r.extend_from_slice(jpeg);
    Ok(r)
}

/// DG2 (Part 10 §4.7.2): `75` { `7F61` biometric information group template { `02` number of
/// instances = 1, `7F60` biometric information template { `A1` biometric header template
/// { `80` ICAO header version 0101, `81` biometric type 02 (face), `87` format owner 0101
/// (ISO/IEC JTC 1/SC 37), `88` format type 0008 (ISO/IEC 19794-5) }, `5F2E` biometric data
/// block = the facial record } } }.
pub fn dg2(jpeg: &[u8], gender: FaceGender) -> Result<Vec<u8>> {
    let mut bht = Vec::new();
    tlv::push(&mut bht, 0x80, &[0x01, 0x01]);
    tlv::push(&mut bht, 0x81, &[0x02]);
    tlv::push(&mut bht, 0x87, &[0x01, 0x01]);
    tlv::push(&mut bht, 0x88, &[0x00, 0x08]);
    let mut bit = tlv::encode(0xA1, &bht);
    tlv::push(&mut bit, 0x5F2E, &facial_record(jpeg, gender)?);
    let mut big = tlv::encode(0x02, &[0x01]);
    tlv::push(&mut big, 0x7F60, &bit);
    let out = tlv::encode(0x75, &tlv::encode(0x7F61, &big));
    if out.len() > 0x7FFF {
        return Err(lds_err(
            "DG2",
            format!("{} bytes exceed the 32767-byte EF limit", out.len()),
        ));
    }
    Ok(out)
}

/// The JPEG inside a DG2 written by [`dg2`].
pub fn parse_dg2_jpeg(dg: &[u8]) -> Result<Vec<u8>> {
    let v = tlv::expect_single(dg, 0x75)?;
    let big = tlv::expect_single(v, 0x7F61)?;
    let bit = tlv::find(big, 0x7F60)?.ok_or_else(|| lds_err("DG2", "no 7F60"))?;
    let rec = tlv::find(bit, 0x5F2E)?.ok_or_else(|| lds_err("DG2", "no 5F2E"))?;
    if rec.get(..4) != Some(b"FAC\0") || rec.len() < 46 {
        return Err(lds_err("DG2", "5F2E is not an ISO/IEC 19794-5 record"));
    }
    Ok(rec[46..].to_vec())
}

/// DG11 "additional personal details" content (Part 10 §4.7.11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dg11 {
    /// `5F0E` full name in national characters: primary `<<` secondary (UTF-8).
    pub full_name: String,
    /// `5F10` personal number (the PINFL).
    pub personal_number: String,
    /// `5F11` place of birth.
    pub place_of_birth: String,
    /// `5F42` permanent address (omitted when the holder has only a temporary registration).
    pub permanent_address: Option<String>,
}

/// Encodes DG11: `6B` { `5C` tag list, `5F0E`, `5F10`, `5F11`, `5F42` }.
pub fn dg11(d: &Dg11) -> Vec<u8> {
    let mut list = vec![0x5F, 0x0E, 0x5F, 0x10, 0x5F, 0x11];
    if d.permanent_address.is_some() {
        list.extend_from_slice(&[0x5F, 0x42]);
    }
    let mut v = Vec::new();
    tlv::push(&mut v, 0x5C, &list);
    tlv::push(&mut v, 0x5F0E, d.full_name.as_bytes());
    tlv::push(&mut v, 0x5F10, d.personal_number.as_bytes());
    tlv::push(&mut v, 0x5F11, d.place_of_birth.as_bytes());
    if let Some(a) = &d.permanent_address {
        tlv::push(&mut v, 0x5F42, a.as_bytes());
    }
    tlv::encode(0x6B, &v)
}

/// The holder as the LDS data groups carry them, typed: the MRZ fields (DG1) plus the
/// additional personal details (DG11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdsHolder<'a> {
    /// What DG1's MRZ encodes (and DG2's gender).
    pub mrz: crate::mrz::MrzHolder<'a>,
    /// Patronymic (DG11's full name only; not in the MRZ name).
    pub patronymic: Option<&'a str>,
    /// Place of birth (DG11 `5F11`).
    pub place_of_birth: &'a str,
    /// Permanent address (DG11 `5F42`), `None` with only a temporary registration.
    pub permanent_address: Option<String>,
}

impl LdsHolder<'_> {
    /// DG11's content: full name as surname `<<` given names, a space and the patronymic.
    pub fn dg11(&self) -> Dg11 {
        let mut full_name = format!("{}<<{}", self.mrz.surname, self.mrz.given_names);
        if let Some(p) = self.patronymic {
            full_name.push(' ');
            full_name.push_str(p);
        }
        Dg11 {
            full_name,
            personal_number: self.mrz.personal_number.to_string(),
            place_of_birth: self.place_of_birth.to_string(),
            permanent_address: self.permanent_address.clone(),
        }
    }
}

impl From<crate::mrz::MrzSex> for FaceGender {
    fn from(s: crate::mrz::MrzSex) -> Self {
        match s {
            crate::mrz::MrzSex::Male => FaceGender::Male,
            crate::mrz::MrzSex::Female => FaceGender::Female,
            crate::mrz::MrzSex::Unspecified => FaceGender::Unspecified,
        }
    }
}

/// The data groups of one document and the MRZ they were made from.
pub struct HolderDataGroups {
    /// DG1, DG2 (when there is a photo), DG11, DG12 by number.
    pub dgs: BTreeMap<u8, Vec<u8>>,
    /// The TD1 MRZ of DG1.
    pub mrz: [String; 3],
    /// The MRZ information the BAC keys derive from (Part 11 §9.7.1).
    pub mrz_information: zeroize::Zeroizing<String>,
}

/// The data groups of `holder`'s document `doc`: DG1 (the MRZ), DG2 (the photo, a JPEG, in an
/// ISO/IEC 19794-5 record; omitted without a photo), DG11 and DG12 (the issuing authority and
/// the date of issue). A photo or MRZ the LDS cannot carry is an [`Error::Invalid`] naming
/// `photo` or `mrz`.
pub fn holder_data_groups(
    holder: &LdsHolder<'_>,
    photo_jpeg: Option<&[u8]>,
    doc: &crate::mrz::MrzDocument<'_>,
    issuing_authority: &str,
    date_of_issue: Date,
) -> Result<HolderDataGroups> {
    let invalid = |field: &'static str| {
        move |e: Error| Error::Invalid {
            field: field.into(),
            rule: e.to_string(),
        }
    };
    let mrz = crate::mrz::holder_td1(&holder.mrz, doc)?;
    let mrz_information =
        zeroize::Zeroizing::new(crate::mrz::bac_mrz_information(&mrz).map_err(invalid("mrz"))?);
    let mut dgs = BTreeMap::new();
    dgs.insert(1, dg1(&mrz).map_err(invalid("mrz"))?);
    if let Some(jpeg) = photo_jpeg {
        dgs.insert(
            2,
            dg2(jpeg, holder.mrz.sex.into()).map_err(invalid("photo"))?,
        );
    }
    dgs.insert(11, dg11(&holder.dg11()));
    dgs.insert(12, dg12(issuing_authority, date_of_issue));
    Ok(HolderDataGroups {
        dgs,
        mrz,
        mrz_information,
    })
}

/// DG12 "additional document details" (Part 10 §4.7.12): `6C` { `5C` tag list, `5F19` issuing
/// authority, `5F26` date of issue YYYYMMDD }.
pub fn dg12(issuing_authority: &str, date_of_issue: Date) -> Vec<u8> {
    let d = format!(
        "{:04}{:02}{:02}",
        date_of_issue.year(),
        u8::from(date_of_issue.month()),
        date_of_issue.day()
    );
    let mut v = Vec::new();
    tlv::push(&mut v, 0x5C, &[0x5F, 0x19, 0x5F, 0x26]);
    tlv::push(&mut v, 0x5F19, issuing_authority.as_bytes());
    tlv::push(&mut v, 0x5F26, d.as_bytes());
    tlv::encode(0x6C, &v)
}

/// EF.SOD (Part 10 §4.6.2): tag `77` wrapping the CMS ContentInfo.
pub fn ef_sod(content_info_der: &[u8]) -> Vec<u8> {
    tlv::encode(0x77, content_info_der)
}

/// The LDS files of one card: data groups by number, EF.COM derived from them, EF.SOD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdsFiles {
    /// Data groups by number (their full TLV encoding).
    pub dgs: BTreeMap<u8, Vec<u8>>,
    /// EF.SOD (tag 77).
    pub sod: Vec<u8>,
}

impl LdsFiles {
    /// EF.COM listing the data groups.
    pub fn com(&self) -> Result<Vec<u8>> {
        ef_com(&self.dgs.keys().copied().collect::<Vec<_>>())
    }

    /// SHA-256 of every data group, by number (what EF.SOD must hold).
    pub fn dg_hashes(&self) -> BTreeMap<u8, [u8; 32]> {
        self.dgs
            .iter()
            .map(|(&n, v)| (n, Sha256::digest(v).into()))
            .collect()
    }

    /// `(FID, content)` in writing order: EF.COM, the data groups, EF.SOD.
    pub fn files(&self) -> Result<Vec<(u16, Vec<u8>)>> {
        let mut f = vec![(fid::COM, self.com()?)];
        for (&n, v) in &self.dgs {
            f.push((fid::dg(n), v.clone()));
        }
        f.push((fid::SOD, self.sod.clone()));
        Ok(f)
    }
}

/// Largest UPDATE BINARY chunk (card contract).
pub const WRITE_CHUNK: usize = 223;

fn select_lds(channel: &mut Channel<'_>) -> Result<()> {
    channel
        .ok(&Command::new(
            "SELECT LDS1",
            0xA4,
            0x04,
            0x0C,
            LDS1_AID.to_vec(),
        ))
        .map(|_| ())
}

/// Writes the LDS files and the BAC key seed (card contract: PERSONALIZING with the PIV
/// management key authenticated in this card session). Each file is created with its exact
/// size, then written in chunks of at most [`WRITE_CHUNK`] bytes.
pub fn write_lds(channel: &mut Channel<'_>, files: &LdsFiles, kseed: &[u8; 16]) -> Result<()> {
    write_lds_files(channel, files)?;
    let seed = Command::new("SET BAC KEY SEED", 0xDA, 0x01, 0x0B, kseed.to_vec());
    channel.ok(&seed)?;
    Ok(())
}

/// Writes the LDS files only (a PACE-only card gets no BAC key seed; then
/// [`write_pace_passwords`]).
pub fn write_lds_files(channel: &mut Channel<'_>, files: &LdsFiles) -> Result<()> {
    select_lds(channel)?;
    for (fid, content) in files.files()? {
        if content.len() > 0x7FFF {
            return Err(lds_err(
                &format!("EF {fid:04X}"),
                format!("{} bytes exceed 32767", content.len()),
            ));
        }
        let size = (content.len() as u16).to_be_bytes();
        let f = fid.to_be_bytes();
        let mut fcp = Vec::new();
        tlv::push(&mut fcp, 0x80, &size);
        tlv::push(&mut fcp, 0x83, &f);
        let create = Command::new("CREATE FILE", 0xE0, 0x00, 0x00, tlv::encode(0x62, &fcp));
        let r = channel.exchange(&create)?;
        if r.sw != StatusWord::Ok {
            return Err(Error::Status {
                command: "CREATE FILE",
                sw: r.sw,
            }
            .in_step(&format!("create EF {fid:04X}")));
        }
        for (i, chunk) in content.chunks(WRITE_CHUNK).enumerate() {
            let off = (i * WRITE_CHUNK) as u16;
            let cmd = Command::new(
                "UPDATE BINARY",
                0xD6,
                (off >> 8) as u8,
                off as u8,
                chunk.to_vec(),
            );
            channel
                .ok(&cmd)
                .map_err(|e| e.in_step(&format!("write EF {fid:04X}")))?;
        }
    }
    Ok(())
}

/// Writes the PACE passwords (card contract, docs/lds.md): PUT DATA 01 0E with
/// K = SHA-1(MRZ information) (ICAO 9303-11 §9.7.3) and PUT DATA 01 0F with the CAN (six ASCII
/// digits). Same rights as [`write_lds`]; the ICAO application must be selected (it is after
/// [`write_lds`]).
pub fn write_pace_passwords(
    channel: &mut Channel<'_>,
    mrz_information: &str,
    can: &str,
) -> Result<()> {
    let can = crate::pace::Password::can(can)?;
    let mrz = crate::pace::Password::mrz(mrz_information);
    channel.ok(&Command::new(
        "SET PACE MRZ PASSWORD",
        0xDA,
        0x01,
        0x0E,
        mrz.secret().to_vec(),
    ))?;
    channel.ok(&Command::new(
        "SET PACE CAN",
        0xDA,
        0x01,
        0x0F,
        can.secret().to_vec(),
    ))?;
    Ok(())
}

/// A random CAN: six decimal digits, uniform (rejection sampling on random bytes).
pub fn random_can() -> Result<zeroize::Zeroizing<String>> {
    let mut out = zeroize::Zeroizing::new(String::with_capacity(6));
    while out.len() < 6 {
        let mut b = [0u8; 1];
        getrandom::fill(&mut b).map_err(|e| lds_err("CAN", format!("random generator: {e}")))?;
        // 250 = 25 × 10: values 250..=255 would bias the digits.
        if b[0] < 250 {
            out.push(char::from(b'0' + b[0] % 10));
        }
    }
    Ok(out)
}

/// What a BAC read of the LDS returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdsRead {
    /// EF.COM.
    pub com: Vec<u8>,
    /// Data groups listed in EF.COM, by number.
    pub dgs: BTreeMap<u8, Vec<u8>>,
    /// EF.SOD.
    pub sod: Vec<u8>,
}

/// Opens the LDS with BAC (keys from the MRZ information) and reads EF.COM, every data group
/// it lists and EF.SOD, all through secure messaging.
pub fn read_lds(channel: &mut Channel<'_>, mrz_information: &str) -> Result<LdsRead> {
    let keys = BacKeys::from_mrz_information(mrz_information);
    let mut r = BacReader::open(channel, &keys)?;
    let com = r.read_ef(fid::COM)?;
    let mut dgs = BTreeMap::new();
    for n in parse_ef_com(&com)? {
        dgs.insert(n, r.read_ef(fid::dg(n))?);
    }
    let sod = r.read_ef(fid::SOD)?;
    Ok(LdsRead { com, dgs, sod })
}

/// Opens the ICAO application with `access` (PACE with the CAN or the MRZ, or BAC) and reads
/// EF.COM, every data group it lists and EF.SOD through secure messaging.
pub fn read_lds_with(channel: &mut Channel<'_>, access: &crate::pace::Access) -> Result<LdsRead> {
    let mut r = crate::pace::IcaoReader::open(channel, access)?;
    let com = r.read_ef(fid::COM)?;
    let mut dgs = BTreeMap::new();
    for n in parse_ef_com(&com)? {
        dgs.insert(n, r.read_ef(fid::dg(n))?);
    }
    let sod = r.read_ef(fid::SOD)?;
    Ok(LdsRead { com, dgs, sod })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo() -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/holders/photo-01.jpg"),
        )
        .unwrap()
    }

    fn holder<'a>() -> LdsHolder<'a> {
        LdsHolder {
            mrz: crate::mrz::MrzHolder {
                personal_number: "31503851234567",
                surname: "Karimova",
                given_names: "Dilnoza",
                surname_cyrillic: None,
                given_names_cyrillic: None,
                sex: crate::mrz::MrzSex::Female,
                date_of_birth: time::macros::date!(1985 - 03 - 15),
                nationality: "UZB",
            },
            patronymic: Some("Rustamovna"),
            place_of_birth: "Toshkent",
            permanent_address: None,
        }
    }

    #[test]
    fn holder_data_groups_hold_the_mrz_the_photo_and_the_personal_details() {
        let doc = crate::mrz::MrzDocument {
            issuing_state: "UZB",
            number: "AA1234567",
            expiry: time::macros::date!(2035 - 03 - 14),
        };
        let today = time::macros::date!(2025 - 03 - 15);
        let g = holder_data_groups(&holder(), Some(&photo()), &doc, "Tashkent-01", today).unwrap();
        assert_eq!(
            g.dgs.keys().copied().collect::<Vec<_>>(),
            vec![1, 2, 11, 12]
        );
        assert!(g.mrz[0].starts_with("I<UZBAA1234567"), "{:?}", g.mrz);
        assert!(g.mrz[2].starts_with("KARIMOVA<<DILNOZA"), "{:?}", g.mrz);
        assert_eq!(parse_dg1(&g.dgs[&1]).unwrap(), g.mrz);
        assert_eq!(g.mrz_information.len(), 24);
        assert_eq!(holder().dg11().full_name, "Karimova<<Dilnoza Rustamovna");
        let none = holder_data_groups(&holder(), None, &doc, "Tashkent-01", today).unwrap();
        assert!(!none.dgs.contains_key(&2));
        let e = holder_data_groups(&holder(), Some(b"not a jpeg"), &doc, "T", today)
            .err()
            .unwrap();
        assert!(
            matches!(&e, Error::Invalid { field, .. } if field == "photo"),
            "{e}"
        );
    }

    #[test]
    fn ef_com_lists_the_data_group_tags() {
        let c = ef_com(&[1, 2, 11, 12]).unwrap();
        assert_eq!(
            c,
            [
                &[0x60, 0x16, 0x5F, 0x01, 0x04][..],
                b"0108",
                &[0x5F, 0x36, 0x06],
                b"040000",
                &[0x5C, 0x04, 0x61, 0x75, 0x6B, 0x6C]
            ]
            .concat()
        );
        assert_eq!(parse_ef_com(&c).unwrap(), vec![1, 2, 11, 12]);
    }

    #[test]
    fn dg1_holds_the_ninety_mrz_characters_under_5f1f() {
        let m = [
            "I<UTOD231458907<<<<<<<<<<<<<<<".to_string(),
            "7408122F1204159UTO<<<<<<<<<<<6".to_string(),
            "ERIKSSON<<ANNA<MARIA<<<<<<<<<<".to_string(),
        ];
        let d = dg1(&m).unwrap();
        assert_eq!(&d[..5], &[0x61, 0x5D, 0x5F, 0x1F, 0x5A]);
        assert_eq!(parse_dg1(&d).unwrap(), m);
        assert_eq!(crate::tlv::total_len(&d[..4]), Some(d.len()));
    }

    #[test]
    fn dg2_wraps_the_jpeg_in_a_19794_5_record_inside_cbeff() {
        let j = photo();
        let d = dg2(&j, FaceGender::Female).unwrap();
        assert_eq!(d[0], 0x75);
        assert_eq!(parse_dg2_jpeg(&d).unwrap(), j);
        let (w, h) = jpeg_dimensions(&j).unwrap();
        assert!(w > 0 && h > 0);
        assert_eq!(crate::tlv::total_len(&d[..4]), Some(d.len()));
    }

    #[test]
    fn a_non_jpeg_photo_is_refused_naming_dg2() {
        let e = dg2(b"GIF89a....", FaceGender::Male)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("LDS DG2:"), "{e}");
    }

    #[test]
    fn dg11_and_dg12_carry_their_tag_lists() {
        let d = dg11(&Dg11 {
            full_name: "TOʻXTAYEVA<<GʻULNORA SHAVKAT QIZI".into(),
            personal_number: "41505852610128".into(),
            place_of_birth: "Toshkent shahri".into(),
            permanent_address: Some("Toshkent shahri, Yunusobod tumani".into()),
        });
        assert_eq!(d[0], 0x6B);
        let v = tlv::expect_single(&d, 0x6B).unwrap();
        assert_eq!(tlv::find(v, 0x5F10).unwrap().unwrap(), b"41505852610128");
        let d = dg12("UZB 2601", time::macros::date!(2026 - 11 - 25));
        let v = tlv::expect_single(&d, 0x6C).unwrap();
        assert_eq!(tlv::find(v, 0x5F26).unwrap().unwrap(), b"20261125");
    }
}
