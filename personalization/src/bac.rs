//! Basic Access Control, reader side (ICAO Doc 9303 Part 11 §4.3, §9.7, §9.8).
//!
//! - key derivation (§9.7.1–9.7.2): `Kseed` = first 16 bytes of SHA-1(MRZ information);
//!   `Kenc`/`Kmac` = first 16 bytes of SHA-1(`Kseed` ‖ counter), counter 1 / 2, as two-key 3DES
//!   with DES parity adjusted;
//! - mutual authentication (§4.3.3): GET CHALLENGE, `E_IFD = 3DES-CBC(Kenc, RND.IFD ‖ RND.ICC ‖
//!   K.IFD)`, `M_IFD = MAC(Kmac, E_IFD)`; the card's answer is checked the same way and must carry
//!   our RND.IFD; session keys from `K.IFD ⊕ K.ICC`, SSC = low 4 bytes of RND.ICC ‖ low 4 bytes of
//!   RND.IFD (§9.8.6.3);
//! - secure messaging (§9.8.6–9.8.8, ISO/IEC 7816-4 §6): DO'87' (padding indicator 01), DO'97',
//!   DO'8E' in commands, DO'87', DO'99', DO'8E' in responses, SSC incremented before each
//!   command and each response MAC;
//! - MAC: ISO/IEC 9797-1 MAC algorithm 3 ("retail MAC") with DES, padding method 2.
//!
//! All keys live in zeroizing buffers and never appear in `Debug`, logs or errors.

use aes::cipher::block_padding::{Iso7816, NoPadding};
use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt};
use aes::cipher::{KeyInit, KeyIvInit};
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use crate::apdu::{Channel, Command};
use crate::status::StatusWord;
use crate::{Error, Result};

/// A 16-byte two-key 3DES key, zeroized on drop.
pub type Key16 = Zeroizing<[u8; 16]>;

fn bac_err(rule: impl Into<String>) -> Error {
    Error::Bac { rule: rule.into() }
}

/// `Kseed` from the MRZ information (§9.7.2): first 16 bytes of SHA-1.
pub fn kseed(mrz_information: &str) -> Key16 {
    let h = Sha1::digest(mrz_information.as_bytes());
    let mut k = Zeroizing::new([0u8; 16]);
    k.copy_from_slice(&h[..16]);
    k
}

/// Sets each byte's lowest bit so the byte has odd parity (FIPS 46-3 key format).
fn adjust_parity(key: &mut [u8]) {
    for b in key {
        let ones = (*b & 0xFE).count_ones();
        *b = (*b & 0xFE) | u8::from(ones % 2 == 0);
    }
}

/// Key derivation function for 3DES (§9.7.1): SHA-1(seed ‖ counter)[0..16], parity adjusted.
/// Counter 1 = encryption key, 2 = MAC key.
pub fn derive_key(seed: &[u8; 16], counter: u32) -> Key16 {
    let mut h = Sha1::new();
    h.update(seed);
    h.update(counter.to_be_bytes());
    let d = h.finalize();
    let mut k = Zeroizing::new([0u8; 16]);
    k.copy_from_slice(&d[..16]);
    adjust_parity(&mut k[..]);
    k
}

/// ISO/IEC 9797-1 padding method 2: 0x80 then zeros to a multiple of 8.
pub fn pad(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    v.push(0x80);
    while !v.len().is_multiple_of(8) {
        v.push(0);
    }
    v
}

/// Removes padding method 2; `None` if it is not there. The padding (0x80 and up to seven
/// zeros) lies within the last 8-byte block: a longer run of zeros, or a 0x80 in an earlier
/// block, is not padding this method makes, and is refused rather than stripped.
fn unpad(data: &[u8]) -> Option<&[u8]> {
    let i = data.iter().rposition(|&b| b != 0)?;
    (data[i] == 0x80 && data.len() - i <= 8).then(|| &data[..i])
}

/// ISO/IEC 9797-1 MAC algorithm 3 with DES and padding method 2 (the "retail MAC"): DES-CBC
/// with K1 over all blocks, then the last block decrypted with K2 and encrypted with K1.
pub fn retail_mac(key: &[u8; 16], data: &[u8]) -> [u8; 8] {
    let padded = pad(data);
    // Keys of 8 bytes always fit DES: the expect cannot fire.
    let k1 = des::Des::new_from_slice(&key[..8]).expect("8-byte DES key");
    let k2 = des::Des::new_from_slice(&key[8..]).expect("8-byte DES key");
    let mut h = des::cipher::Block::<des::Des>::default();
    for chunk in padded.chunks(8) {
        for (a, b) in h.iter_mut().zip(chunk) {
            *a ^= b;
        }
        k1.encrypt_block(&mut h);
    }
    k2.decrypt_block(&mut h);
    k1.encrypt_block(&mut h);
    let mut out = [0u8; 8];
    out.copy_from_slice(&h);
    out
}

/// 3DES-CBC (two-key EDE) with a zero IV on data already a multiple of 8 bytes.
fn tdes_cbc(key: &[u8; 16], data: &[u8], encrypt: bool) -> Result<Vec<u8>> {
    let iv = [0u8; 8];
    if !data.len().is_multiple_of(8) {
        return Err(bac_err(format!(
            "cryptogram of {} bytes is not a multiple of the 3DES block",
            data.len()
        )));
    }
    if encrypt {
        Ok(cbc::Encryptor::<des::TdesEde2>::new_from_slices(key, &iv)
            .map_err(|_| bac_err("3DES key length"))?
            .encrypt_padded_vec::<NoPadding>(data))
    } else {
        cbc::Decryptor::<des::TdesEde2>::new_from_slices(key, &iv)
            .map_err(|_| bac_err("3DES key length"))?
            .decrypt_padded_vec::<NoPadding>(data)
            .map_err(|_| bac_err("3DES-CBC decryption failed"))
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The document basic access keys derived from the MRZ (§9.7.2).
pub struct BacKeys {
    kenc: Key16,
    kmac: Key16,
}

impl std::fmt::Debug for BacKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BacKeys(..)")
    }
}

impl BacKeys {
    /// From the MRZ information (document number, birth, expiry with their check digits).
    pub fn from_mrz_information(mrz_information: &str) -> Self {
        Self::from_seed(&kseed(mrz_information))
    }

    /// From `Kseed`.
    pub fn from_seed(seed: &[u8; 16]) -> Self {
        Self {
            kenc: derive_key(seed, 1),
            kmac: derive_key(seed, 2),
        }
    }

    /// `Kenc` (for tests against the worked example).
    pub fn kenc(&self) -> &[u8; 16] {
        &self.kenc
    }

    /// `Kmac`.
    pub fn kmac(&self) -> &[u8; 16] {
        &self.kmac
    }
}

/// The reader's half of mutual authentication, between GET CHALLENGE and the card's answer.
pub struct MutualAuthentication<'k> {
    keys: &'k BacKeys,
    rnd_ifd: Zeroizing<[u8; 8]>,
    rnd_icc: [u8; 8],
    k_ifd: Key16,
}

impl<'k> MutualAuthentication<'k> {
    /// With fresh random RND.IFD and K.IFD.
    pub fn new(keys: &'k BacKeys, rnd_icc: [u8; 8]) -> Result<Self> {
        let mut rnd_ifd = Zeroizing::new([0u8; 8]);
        let mut k_ifd = Zeroizing::new([0u8; 16]);
        getrandom::fill(&mut rnd_ifd[..]).map_err(|e| bac_err(format!("RNG failed: {e}")))?;
        getrandom::fill(&mut k_ifd[..]).map_err(|e| bac_err(format!("RNG failed: {e}")))?;
        Ok(Self::with_values(keys, rnd_icc, *rnd_ifd, *k_ifd))
    }

    /// With given RND.IFD and K.IFD (the worked example's values in tests).
    pub fn with_values(
        keys: &'k BacKeys,
        rnd_icc: [u8; 8],
        rnd_ifd: [u8; 8],
        k_ifd: [u8; 16],
    ) -> Self {
        Self {
            keys,
            rnd_ifd: Zeroizing::new(rnd_ifd),
            rnd_icc,
            k_ifd: Zeroizing::new(k_ifd),
        }
    }

    /// The MUTUAL AUTHENTICATE command data `E_IFD ‖ M_IFD` (40 bytes).
    pub fn command_data(&self) -> Result<Zeroizing<Vec<u8>>> {
        let mut s = Zeroizing::new(Vec::with_capacity(32));
        s.extend_from_slice(&self.rnd_ifd[..]);
        s.extend_from_slice(&self.rnd_icc);
        s.extend_from_slice(&self.k_ifd[..]);
        let e = tdes_cbc(&self.keys.kenc, &s, true)?;
        let m = retail_mac(&self.keys.kmac, &e);
        let mut out = Zeroizing::new(e);
        out.extend_from_slice(&m);
        Ok(out)
    }

    /// Checks the card's `E_ICC ‖ M_ICC` and derives the session (§9.7.3, §9.8.6.3).
    pub fn complete(self, response: &[u8]) -> Result<SmSession> {
        if response.len() != 40 {
            return Err(bac_err(format!(
                "MUTUAL AUTHENTICATE answer is {} bytes, expected 40",
                response.len()
            )));
        }
        let (e_icc, m_icc) = response.split_at(32);
        if !ct_eq(&retail_mac(&self.keys.kmac, e_icc), m_icc) {
            return Err(bac_err("the card's MUTUAL AUTHENTICATE MAC is wrong"));
        }
        let r = Zeroizing::new(tdes_cbc(&self.keys.kenc, e_icc, false)?);
        // R = RND.ICC ‖ RND.IFD ‖ K.ICC.
        if !ct_eq(&r[..8], &self.rnd_icc) || !ct_eq(&r[8..16], &self.rnd_ifd[..]) {
            return Err(bac_err(
                "the card's answer does not carry our challenge (not the expected card)",
            ));
        }
        let mut seed = Zeroizing::new([0u8; 16]);
        for i in 0..16 {
            seed[i] = self.k_ifd[i] ^ r[16 + i];
        }
        let mut ssc = [0u8; 8];
        ssc[..4].copy_from_slice(&self.rnd_icc[4..]);
        ssc[4..].copy_from_slice(&self.rnd_ifd[4..]);
        Ok(SmSession {
            ks_enc: derive_key(&seed, 1),
            ks_mac: derive_key(&seed, 2),
            ssc: u64::from_be_bytes(ssc),
        })
    }
}

/// A secure-messaging session after BAC (§9.8): session keys and the send sequence counter.
pub struct SmSession {
    ks_enc: Key16,
    ks_mac: Key16,
    ssc: u64,
}

impl std::fmt::Debug for SmSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SmSession(..)")
    }
}

/// BER length octets (definite form) for SM data objects.
fn ber_len(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
}

/// One SM data object of a response: (tag, value) and the raw bytes it occupied.
fn next_do(buf: &[u8]) -> Result<(u8, &[u8], usize)> {
    let malformed = |d: &str| bac_err(format!("secure-messaging response: {d}"));
    let tag = *buf.first().ok_or_else(|| malformed("empty"))?;
    let (len, hdr) = match buf.get(1) {
        Some(&l) if l < 0x80 => (l as usize, 2),
        Some(0x81) => (
            *buf.get(2).ok_or_else(|| malformed("short length"))? as usize,
            3,
        ),
        Some(0x82) => {
            let hi = *buf.get(2).ok_or_else(|| malformed("short length"))? as usize;
            let lo = *buf.get(3).ok_or_else(|| malformed("short length"))? as usize;
            (hi << 8 | lo, 4)
        }
        _ => return Err(malformed("bad length octets")),
    };
    // Lengths in the shortest form only (ISO/IEC 7816-4 §5.2.2.2 allows the long forms, but a
    // card has no reason to send `8E 82 00 08`): the MAC does not cover DO'8E''s own header, so
    // a reader that took several spellings of it would accept responses the card never sent.
    let shortest = match hdr {
        3 => len >= 0x80,
        4 => len > 0xFF,
        _ => true,
    };
    if !shortest {
        return Err(malformed(&format!(
            "data object {tag:02X} has its length {len} in a longer form than needed"
        )));
    }
    let v = buf
        .get(hdr..hdr + len)
        .ok_or_else(|| malformed("data object longer than the response"))?;
    Ok((tag, v, hdr + len))
}

impl SmSession {
    /// A session from known keys and SSC (the worked example's values in tests).
    pub fn from_parts(ks_enc: [u8; 16], ks_mac: [u8; 16], ssc: u64) -> Self {
        Self {
            ks_enc: Zeroizing::new(ks_enc),
            ks_mac: Zeroizing::new(ks_mac),
            ssc,
        }
    }

    /// `KSenc`.
    pub fn ks_enc(&self) -> &[u8; 16] {
        &self.ks_enc
    }

    /// `KSmac`.
    pub fn ks_mac(&self) -> &[u8; 16] {
        &self.ks_mac
    }

    /// The send sequence counter.
    pub fn ssc(&self) -> u64 {
        self.ssc
    }

    /// Protects a command (§9.8.6.1): `cla ins p1 p2`, optional data, optional `le` (0 = 256).
    /// Increments the SSC. Returns the whole short C-APDU.
    pub fn protect(
        &mut self,
        ins: u8,
        p1: u8,
        p2: u8,
        data: &[u8],
        le: Option<u8>,
    ) -> Result<Vec<u8>> {
        self.ssc = self.ssc.wrapping_add(1);
        let header = [0x0C, ins, p1, p2];
        let mut body = Vec::new();
        if !data.is_empty() {
            let ct = cbc::Encryptor::<des::TdesEde2>::new_from_slices(&self.ks_enc[..], &[0u8; 8])
                .map_err(|_| bac_err("3DES key length"))?
                .encrypt_padded_vec::<Iso7816>(data);
            body.push(0x87);
            ber_len(ct.len() + 1, &mut body);
            body.push(0x01);
            body.extend_from_slice(&ct);
        }
        if let Some(le) = le {
            body.extend_from_slice(&[0x97, 0x01, le]);
        }
        let mut n = self.ssc.to_be_bytes().to_vec();
        n.extend_from_slice(&pad(&header));
        n.extend_from_slice(&body);
        let cc = retail_mac(&self.ks_mac, &n);
        body.extend_from_slice(&[0x8E, 0x08]);
        body.extend_from_slice(&cc);
        if body.len() > 255 {
            return Err(bac_err("protected command longer than a short APDU"));
        }
        let mut apdu = header.to_vec();
        apdu.push(body.len() as u8);
        apdu.extend_from_slice(&body);
        apdu.push(0x00);
        Ok(apdu)
    }

    /// Verifies and opens a protected response (§9.8.6.2): `rapdu` without SW1 SW2 bytes, and
    /// the plain status word the card sent. Increments the SSC. Returns the plain data and the
    /// status word from DO'99'.
    pub fn unprotect(
        &mut self,
        body: &[u8],
        outer_sw: StatusWord,
    ) -> Result<(Vec<u8>, StatusWord)> {
        self.ssc = self.ssc.wrapping_add(1);
        if body.is_empty() {
            // An error SW without SM objects (e.g. 6988): the session is over on the card side.
            return Err(bac_err(format!(
                "the card answered {outer_sw} without secure-messaging objects"
            )));
        }
        let mut do87: Option<&[u8]> = None;
        let mut do99: Option<&[u8]> = None;
        let mut do8e: Option<&[u8]> = None;
        let mut mac_input_end = 0;
        let mut pos = 0;
        while pos < body.len() {
            let (tag, v, used) = next_do(&body[pos..])?;
            // DO'8E' closes the response (ISO/IEC 7816-4 §10; Doc 9303-11 §9.8.6.2): the MAC
            // covers only what comes before it, so anything after it is unauthenticated and
            // would otherwise be taken as card data.
            if do8e.is_some() {
                return Err(bac_err(format!(
                    "secure-messaging response: data object {tag:02X} after DO'8E' (the MAC must be the last data object)"
                )));
            }
            let slot = match tag {
                0x87 => &mut do87,
                0x99 => &mut do99,
                0x8E => {
                    mac_input_end = pos;
                    &mut do8e
                }
                t => {
                    return Err(bac_err(format!(
                        "unexpected data object {t:02X} in response"
                    )))
                }
            };
            if slot.replace(v).is_some() {
                return Err(bac_err(format!(
                    "secure-messaging response: data object {tag:02X} appears twice (each may appear once)"
                )));
            }
            pos += used;
        }
        let cc = do8e.ok_or_else(|| bac_err("response has no DO'8E' (MAC)"))?;
        let mut k = self.ssc.to_be_bytes().to_vec();
        k.extend_from_slice(&body[..mac_input_end]);
        if !ct_eq(&retail_mac(&self.ks_mac, &k), cc) {
            return Err(bac_err("response MAC (DO'8E') does not verify"));
        }
        let sw = match do99 {
            Some([a, b]) => StatusWord::from_bytes(*a, *b),
            _ => return Err(bac_err("response has no 2-byte DO'99' (status)")),
        };
        let data = match do87 {
            None => Vec::new(),
            Some(v) => {
                let (&ind, ct) = v.split_first().ok_or_else(|| bac_err("empty DO'87'"))?;
                if ind != 0x01 {
                    return Err(bac_err(format!(
                        "DO'87' padding indicator {ind:02X}, expected 01"
                    )));
                }
                let plain = tdes_cbc(&self.ks_enc, ct, false)?;
                unpad(&plain)
                    .ok_or_else(|| {
                        bac_err("DO'87' plaintext lacks ISO/IEC 9797-1 padding method 2 within its last 8-byte block")
                    })?
                    .to_vec()
            }
        };
        Ok((data, sw))
    }
}

/// ISO 7816-4 SELECT of the LDS1 application (Part 10 §3.1.1, AID A0 00 00 02 47 10 01).
pub const LDS1_AID: [u8; 7] = [0xA0, 0x00, 0x00, 0x02, 0x47, 0x10, 0x01];

/// A BAC-protected reader over a channel: selects LDS1, authenticates, reads files.
pub struct BacReader<'c, 't> {
    channel: &'c mut Channel<'t>,
    session: SmSession,
}

/// Largest READ BINARY chunk so that the protected response stays a short R-APDU
/// (223 bytes → DO'87' of 3 + 225 bytes, DO'99' 4, DO'8E' 10 = 242 ≤ 256).
pub const READ_CHUNK: usize = 223;

impl<'c, 't> BacReader<'c, 't> {
    /// SELECT LDS1, GET CHALLENGE, MUTUAL AUTHENTICATE with keys from `mrz_information`.
    /// A wrong MRZ gives [`Error::Bac`] naming the failed mutual authentication.
    pub fn open(channel: &'c mut Channel<'t>, keys: &BacKeys) -> Result<Self> {
        let select = Command::new("SELECT LDS1", 0xA4, 0x04, 0x0C, LDS1_AID.to_vec());
        channel.ok(&select)?;
        let chal = channel.exchange_short("GET CHALLENGE", &[0x00, 0x84, 0x00, 0x00, 0x08])?;
        crate::apdu::check("GET CHALLENGE", chal.sw)?;
        let rnd_icc: [u8; 8] = chal
            .data
            .as_slice()
            .try_into()
            .map_err(|_| Error::Malformed {
                command: "GET CHALLENGE",
                detail: format!("{} bytes, expected 8", chal.data.len()),
            })?;
        let ma = MutualAuthentication::new(keys, rnd_icc)?;
        let data = ma.command_data()?;
        let mut apdu = Zeroizing::new(vec![0x00, 0x82, 0x00, 0x00, 0x28]);
        apdu.extend_from_slice(&data);
        apdu.push(0x28);
        let r = channel.exchange_short("MUTUAL AUTHENTICATE", &apdu)?;
        match r.sw {
            StatusWord::Ok => {}
            sw => {
                return Err(bac_err(format!(
                    "MUTUAL AUTHENTICATE refused by the card ({sw}): wrong MRZ or no BAC key on the card"
                )))
            }
        }
        let session = ma.complete(&r.data)?;
        Ok(Self { channel, session })
    }

    /// The secure-messaging session, to continue it elsewhere (`IcaoReader` in the `pace` module).
    pub fn into_session(self) -> SmSession {
        self.session
    }

    fn transmit(&mut self, name: &'static str, apdu: Vec<u8>) -> Result<(Vec<u8>, StatusWord)> {
        let r = self.channel.exchange_short(name, &apdu)?;
        self.session.unprotect(&r.data, r.sw)
    }

    /// SELECT EF by file identifier inside SM.
    pub fn select_ef(&mut self, fid: u16) -> Result<()> {
        let apdu = self
            .session
            .protect(0xA4, 0x02, 0x0C, &fid.to_be_bytes(), None)?;
        let (_, sw) = self.transmit("SELECT EF (SM)", apdu)?;
        crate::apdu::check("SELECT EF (SM)", sw)
    }

    /// READ BINARY of `len` (≤ [`READ_CHUNK`]) bytes at `offset` inside SM.
    pub fn read_binary(&mut self, offset: u16, len: u8) -> Result<Vec<u8>> {
        if offset > 0x7FFF {
            return Err(bac_err("READ BINARY offset beyond 32767"));
        }
        let apdu = self
            .session
            .protect(0xB0, (offset >> 8) as u8, offset as u8, &[], Some(len))?;
        let (data, sw) = self.transmit("READ BINARY (SM)", apdu)?;
        crate::apdu::check("READ BINARY (SM)", sw)?;
        Ok(data)
    }

    /// Reads a whole EF: its first 4 bytes give the TLV length (tag 1 byte for LDS files,
    /// Part 10 §4.6), then the rest in chunks.
    pub fn read_ef(&mut self, fid: u16) -> Result<Vec<u8>> {
        self.select_ef(fid)?;
        let head = self.read_binary(0, 4)?;
        let total = crate::tlv::total_len(&head).ok_or_else(|| Error::Malformed {
            command: "READ BINARY (SM)",
            detail: format!("EF {fid:04X} does not start with a BER-TLV header"),
        })?;
        if total > 0x7FFF {
            return Err(bac_err(format!(
                "EF {fid:04X} claims {total} bytes (max 32767)"
            )));
        }
        let mut out = head;
        out.truncate(total);
        while out.len() < total {
            let n = (total - out.len()).min(READ_CHUNK);
            let chunk = self.read_binary(out.len() as u16, n as u8)?;
            if chunk.is_empty() {
                return Err(Error::Malformed {
                    command: "READ BINARY (SM)",
                    detail: format!("EF {fid:04X} ended at {} of {total} bytes", out.len()),
                });
            }
            out.extend_from_slice(&chunk);
        }
        out.truncate(total);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    //! ICAO Doc 9303 Part 11 Appendix D (worked example: BAC, secure messaging).
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
    fn a16(s: &str) -> [u8; 16] {
        h(s).try_into().unwrap()
    }
    fn a8(s: &str) -> [u8; 8] {
        h(s).try_into().unwrap()
    }

    #[test]
    fn appendix_d2_kseed_kenc_kmac_from_mrz_information() {
        let seed = kseed("L898902C<369080619406236");
        assert_eq!(&seed[..], &h("239AB9CB282DAF66231DC5A4DF6BFBAE")[..]);
        let k = BacKeys::from_seed(&seed);
        assert_eq!(&k.kenc()[..], &h("AB94FDECF2674FDFB9B391F85D7F76F2")[..]);
        assert_eq!(&k.kmac()[..], &h("7962D9ECE03D1ACD4C76089DCE131543")[..]);
    }

    #[test]
    fn appendix_d3_mutual_authentication_and_session_keys() {
        let keys = BacKeys::from_mrz_information("L898902C<369080619406236");
        let ma = MutualAuthentication::with_values(
            &keys,
            a8("4608F91988702212"),
            a8("781723860C06C226"),
            a16("0B795240CB7049B01C19B33E32804F0B"),
        );
        assert_eq!(
            &ma.command_data().unwrap()[..],
            &h("72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F25F1448EEA8AD90A7")
                [..]
        );
        let s = ma
            .complete(&h(
                "46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F2F2D235D074D7449",
            ))
            .unwrap();
        assert_eq!(&s.ks_enc()[..], &h("979EC13B1CBFE9DCD01AB0FED307EAE5")[..]);
        assert_eq!(&s.ks_mac()[..], &h("F1CB1F1FB5ADF208806B89DC579DC1F8")[..]);
        assert_eq!(s.ssc(), 0x887022120C06C226);
    }

    #[test]
    fn mutual_authentication_answer_with_a_wrong_mac_is_refused() {
        let keys = BacKeys::from_mrz_information("L898902C<369080619406236");
        let ma = MutualAuthentication::with_values(
            &keys,
            a8("4608F91988702212"),
            a8("781723860C06C226"),
            a16("0B795240CB7049B01C19B33E32804F0B"),
        );
        let mut resp =
            h("46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F2F2D235D074D7449");
        resp[39] ^= 1;
        assert!(matches!(ma.complete(&resp), Err(Error::Bac { .. })));
    }

    #[test]
    fn retail_mac_matches_appendix_d_values() {
        assert_eq!(
            retail_mac(
                &a16("7962D9ECE03D1ACD4C76089DCE131543"),
                &h("72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F2")
            ),
            a8("5F1448EEA8AD90A7")
        );
        assert_eq!(
            retail_mac(
                &a16("F1CB1F1FB5ADF208806B89DC579DC1F8"),
                &h("887022120C06C22899029000")
            ),
            a8("FA855A5D4C50A8ED")
        );
    }

    #[test]
    fn appendix_d4_protected_select_and_read_binary() {
        let mut s = SmSession::from_parts(
            a16("979EC13B1CBFE9DCD01AB0FED307EAE5"),
            a16("F1CB1F1FB5ADF208806B89DC579DC1F8"),
            0x887022120C06C226,
        );
        // SELECT EF.COM.
        let c = s.protect(0xA4, 0x02, 0x0C, &[0x01, 0x1E], None).unwrap();
        assert_eq!(
            c,
            h("0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800")
        );
        assert_eq!(s.ssc(), 0x887022120C06C227);
        let (d, sw) = s
            .unprotect(&h("990290008E08FA855A5D4C50A8ED"), StatusWord::Ok)
            .unwrap();
        assert!(d.is_empty());
        assert_eq!(sw, StatusWord::Ok);
        // READ BINARY first 4 bytes.
        let c = s.protect(0xB0, 0x00, 0x00, &[], Some(0x04)).unwrap();
        assert_eq!(c, h("0CB000000D9701048E08ED6705417E96BA5500"));
        let (d, _) = s
            .unprotect(
                &h("8709019FF0EC34F9922651990290008E08AD55CC17140B2DED"),
                StatusWord::Ok,
            )
            .unwrap();
        assert_eq!(d, h("60145F01"));
        // READ BINARY the remaining 18 bytes from offset 4.
        let c = s.protect(0xB0, 0x00, 0x04, &[], Some(0x12)).unwrap();
        assert_eq!(c, h("0CB000040D9701128E082EA28A70F3C7B53500"));
        let (d, _) = s
            .unprotect(
                &h("871901FB9235F4E4037F2327DCC8964F1F9B8C30F42C8E2FFF224A990290008E08C8B2787EAEA07D74"),
                StatusWord::Ok,
            )
            .unwrap();
        assert_eq!(d, h("04303130365F36063034303030305C026175"));
        assert_eq!(s.ssc(), 0x887022120C06C22C);
    }

    #[test]
    fn tampered_response_mac_is_refused() {
        let mut s = SmSession::from_parts(
            a16("979EC13B1CBFE9DCD01AB0FED307EAE5"),
            a16("F1CB1F1FB5ADF208806B89DC579DC1F8"),
            0x887022120C06C226,
        );
        s.protect(0xA4, 0x02, 0x0C, &[0x01, 0x1E], None).unwrap();
        let e = s
            .unprotect(&h("990290008E08FA855A5D4C50A8EE"), StatusWord::Ok)
            .unwrap_err();
        assert!(e.to_string().contains("MAC"), "{e}");
    }

    /// The Appendix D.4 session just after the protected SELECT EF.COM command.
    fn d4_session_after_select() -> SmSession {
        let mut s = SmSession::from_parts(
            a16("979EC13B1CBFE9DCD01AB0FED307EAE5"),
            a16("F1CB1F1FB5ADF208806B89DC579DC1F8"),
            0x887022120C06C226,
        );
        s.protect(0xA4, 0x02, 0x0C, &[0x01, 0x1E], None).unwrap();
        s
    }

    #[test]
    fn a_data_object_after_the_mac_is_refused_not_taken_as_card_data() {
        // The attack: the genuine, MAC-verified answer to SELECT (DO'99' DO'8E') with a DO'87'
        // replayed from another answer of the same session appended after DO'8E'. The MAC does
        // not cover it; a reader that accepts it returns data the card never sent for this
        // command (here "60145F01", the start of EF.COM).
        let mut forged = h("990290008E08FA855A5D4C50A8ED");
        forged.extend_from_slice(&h("8709019FF0EC34F9922651"));
        let e = d4_session_after_select()
            .unprotect(&forged, StatusWord::Ok)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("data object 87 after DO'8E' (the MAC must be the last data object)"),
            "{e}"
        );
        // Even a lone trailing DO'99' is refused: the MAC closes the response.
        let mut forged = h("990290008E08FA855A5D4C50A8ED");
        forged.extend_from_slice(&h("99026A82"));
        let e = d4_session_after_select()
            .unprotect(&forged, StatusWord::Ok)
            .unwrap_err();
        assert!(e.to_string().contains("data object 99 after DO'8E'"), "{e}");
        // The untouched answer still opens.
        let (d, sw) = d4_session_after_select()
            .unprotect(&h("990290008E08FA855A5D4C50A8ED"), StatusWord::Ok)
            .unwrap();
        assert!(d.is_empty());
        assert_eq!(sw, StatusWord::Ok);
    }

    #[test]
    fn a_length_in_a_longer_form_than_needed_is_refused() {
        // The genuine D.4 answer to SELECT with DO'8E''s length spelled `82 00 08` instead of
        // `08`: the MAC (over what precedes DO'8E') still verifies, so only the length rule
        // stops it (found by the sm_response fuzz target in CI's sweep).
        let e = d4_session_after_select()
            .unprotect(&h("990290008E820008FA855A5D4C50A8ED"), StatusWord::Ok)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("data object 8E has its length 8 in a longer form than needed"),
            "{e}"
        );
        let e = d4_session_after_select()
            .unprotect(&h("99810290008E08FA855A5D4C50A8ED"), StatusWord::Ok)
            .unwrap_err();
        assert!(e.to_string().contains("data object 99"), "{e}");
    }

    /// A response to the D.4 session after SELECT, MACed with the session key like a card
    /// would, carrying `plain` encrypted as is (no padding added) in DO'87' and status 9000.
    fn macced_response(plain: &[u8]) -> Vec<u8> {
        let s = d4_session_after_select();
        let ct = tdes_cbc(s.ks_enc(), plain, true).unwrap();
        let mut body = vec![0x87, (ct.len() + 1) as u8, 0x01];
        body.extend_from_slice(&ct);
        body.extend_from_slice(&[0x99, 0x02, 0x90, 0x00]);
        let mut n = (s.ssc() + 1).to_be_bytes().to_vec();
        n.extend_from_slice(&body);
        let cc = retail_mac(s.ks_mac(), &n);
        body.extend_from_slice(&[0x8E, 0x08]);
        body.extend_from_slice(&cc);
        body
    }

    #[test]
    fn padding_longer_than_one_block_is_refused() {
        // Correct padding within the last block opens (the MAC is genuine).
        let ok = macced_response(&h("60145F0180000000"));
        let (d, _) = d4_session_after_select()
            .unprotect(&ok, StatusWord::Ok)
            .unwrap();
        assert_eq!(d, h("60145F01"));
        // 0x80 followed by eleven zeros spans two blocks: not ISO/IEC 9797-1 method 2 padding,
        // and a lax reader would silently drop a whole block of the card's data.
        for plain in [
            "60145F01800000000000000000000000",
            "80000000000000000000000000000000",
        ] {
            let plain = h(plain);
            let e = d4_session_after_select()
                .unprotect(&macced_response(&plain), StatusWord::Ok)
                .unwrap_err();
            assert!(
                e.to_string()
                    .contains("padding method 2 within its last 8-byte block"),
                "{plain:02X?}: {e}"
            );
        }
    }

    #[test]
    fn a_data_object_twice_is_refused() {
        let mut body = h("99029000");
        body.extend_from_slice(&macced_response(&h("60145F0180000000")));
        let e = d4_session_after_select()
            .unprotect(&body, StatusWord::Ok)
            .unwrap_err();
        assert!(
            e.to_string().contains("data object 99 appears twice"),
            "{e}"
        );
    }

    #[test]
    fn debug_of_keys_and_session_shows_no_key_bytes() {
        let k = BacKeys::from_mrz_information("L898902C<369080619406236");
        assert_eq!(format!("{k:?}"), "BacKeys(..)");
        let s = SmSession::from_parts([1; 16], [2; 16], 3);
        assert_eq!(format!("{s:?}"), "SmSession(..)");
    }
}
