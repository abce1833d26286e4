//! BER-TLV data objects as used in interindustry commands (ISO/IEC 7816-4:2020 clause 6.3,
//! "BER-TLV data objects"): tags of one to three bytes, definite lengths of one to three bytes
//! (up to 65535). Parsing never panics; every malformation is [`StatusWord::IncorrectData`]
//! (6A80), which is what SP 800-73-4 prescribes for a bad data field.

use crate::sw::StatusWord;

/// One parsed data object borrowing from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// Tag as a number (e.g. 0x7C, 0x5FC1, 0x7F49).
    pub tag: u32,
    /// Value field.
    pub value: &'a [u8],
}

/// Parse the tag at the start of `input`; returns the tag number and its length in bytes.
fn parse_tag(input: &[u8]) -> Result<(u32, usize), StatusWord> {
    let first = *input.first().ok_or(StatusWord::IncorrectData)?;
    if first == 0x00 || first == 0xFF {
        return Err(StatusWord::IncorrectData);
    }
    if first & 0x1F != 0x1F {
        return Ok((u32::from(first), 1));
    }
    let mut tag = u32::from(first);
    let mut i = 1;
    loop {
        let b = *input.get(i).ok_or(StatusWord::IncorrectData)?;
        tag = (tag << 8) | u32::from(b);
        i += 1;
        if b & 0x80 == 0 {
            return Ok((tag, i));
        }
        if i >= 3 {
            // ISO 7816-4 allows at most three tag bytes.
            return Err(StatusWord::IncorrectData);
        }
    }
}

/// Parse a length field; returns the length and the number of bytes it took.
fn parse_len(input: &[u8]) -> Result<(usize, usize), StatusWord> {
    let first = *input.first().ok_or(StatusWord::IncorrectData)?;
    match first {
        0x00..=0x7F => Ok((usize::from(first), 1)),
        0x81 => {
            let b = *input.get(1).ok_or(StatusWord::IncorrectData)?;
            Ok((usize::from(b), 2))
        }
        0x82 => {
            let hi = *input.get(1).ok_or(StatusWord::IncorrectData)?;
            let lo = *input.get(2).ok_or(StatusWord::IncorrectData)?;
            Ok((usize::from(u16::from_be_bytes([hi, lo])), 3))
        }
        _ => Err(StatusWord::IncorrectData),
    }
}

/// Parse one data object at the start of `input`; returns it and the rest of the input.
pub fn parse_one(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), StatusWord> {
    let (tag, tl) = parse_tag(input)?;
    let (len, ll) = parse_len(&input[tl..])?;
    let start = tl + ll;
    let end = start.checked_add(len).ok_or(StatusWord::IncorrectData)?;
    if end > input.len() {
        return Err(StatusWord::IncorrectData);
    }
    Ok((
        Tlv {
            tag,
            value: &input[start..end],
        },
        &input[end..],
    ))
}

/// Parse a concatenation of data objects that must fill `input` exactly.
pub fn parse_all(mut input: &[u8]) -> Result<Vec<Tlv<'_>>, StatusWord> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let (tlv, rest) = parse_one(input)?;
        out.push(tlv);
        input = rest;
    }
    Ok(out)
}

/// Parse `input` as exactly one data object with the given tag.
pub fn parse_single(input: &[u8], tag: u32) -> Result<&[u8], StatusWord> {
    let (tlv, rest) = parse_one(input)?;
    if tlv.tag != tag || !rest.is_empty() {
        return Err(StatusWord::IncorrectData);
    }
    Ok(tlv.value)
}

/// Append a data object to `out`. Values longer than 65535 bytes cannot occur on this card
/// (the largest object is limited far below); they are truncated to keep encoding total.
pub fn push(out: &mut Vec<u8>, tag: u32, value: &[u8]) {
    let tag_bytes = tag.to_be_bytes();
    let skip = tag_bytes.iter().take_while(|b| **b == 0).count().min(3);
    out.extend_from_slice(&tag_bytes[skip..]);
    let value = &value[..value.len().min(0xFFFF)];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xFF {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.push(0x82);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    }
    out.extend_from_slice(value);
}

/// Encode one data object.
pub fn encode(tag: u32, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 6);
    push(&mut out, tag, value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_multi_byte_tags_and_long_lengths() {
        let value = vec![0xAB; 300];
        let enc = encode(0x5FC102, &value);
        assert_eq!(&enc[..6], &[0x5F, 0xC1, 0x02, 0x82, 0x01, 0x2C]);
        assert_eq!(parse_single(&enc, 0x5FC102).unwrap(), &value[..]);
        let enc = encode(0x7F49, &[1, 2]);
        assert_eq!(enc, vec![0x7F, 0x49, 0x02, 1, 2]);
        assert_eq!(encode(0x53, &[0; 0x90])[..3], [0x53, 0x81, 0x90]);
    }

    #[test]
    fn truncated_or_malformed_objects_are_6a80() {
        assert_eq!(
            parse_all(&[0x7C, 0x05, 0x82]),
            Err(StatusWord::IncorrectData)
        );
        assert_eq!(parse_all(&[0x7C]), Err(StatusWord::IncorrectData));
        assert_eq!(parse_all(&[0x5F]), Err(StatusWord::IncorrectData));
        assert_eq!(
            parse_all(&[0x5F, 0xC1, 0x82, 0x83]),
            Err(StatusWord::IncorrectData)
        );
        assert_eq!(
            parse_all(&[0x53, 0x84, 0, 0, 0, 1]),
            Err(StatusWord::IncorrectData)
        );
        assert_eq!(
            parse_all(&[0x53, 0x82, 0x01]),
            Err(StatusWord::IncorrectData)
        );
        assert_eq!(
            parse_single(&[0x80, 0x00, 0x81, 0x00], 0x80),
            Err(StatusWord::IncorrectData)
        );
        let objs = parse_all(&[0x80, 0x00, 0x81, 0x01, 0x05]).unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[1].value, &[0x05]);
    }
}
