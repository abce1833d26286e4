//! BER-TLV as ISO/IEC 7816-4:2020 §5.2 uses it for PIV data objects (SP 800-73-4 Part 1 §3,
//! Part 2 §3.1): tags of 1–3 bytes (ISO/IEC 8825-1 §8.1.2), definite lengths of up to 3 length
//! bytes (`82 xx xx`, `83 xx xx xx`). The parser is total: any input gives a value or an error,
//! never a panic, and it never reads past its input.

use crate::error::Error;

/// Tag as its big-endian bytes in a `u32` (e.g. `0x5FC102`, `0x7F49`, `0x53`).
pub type Tag = u32;

/// One decoded TLV, borrowing its value from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// Tag.
    pub tag: Tag,
    /// Value bytes.
    pub value: &'a [u8],
}

fn err(msg: impl Into<String>) -> Error {
    Error::Tlv(msg.into())
}

/// Decodes one TLV at the start of `input`; returns it and the rest.
pub fn parse_one(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), Error> {
    let (&first, mut rest) = input
        .split_first()
        .ok_or_else(|| err("empty input where a tag was expected"))?;
    if first == 0x00 || first == 0xFF {
        return Err(err(format!("invalid tag byte {first:02X}")));
    }
    let mut tag = first as u32;
    if first & 0x1F == 0x1F {
        // Subsequent tag bytes: b8 = 1 means another byte follows (8825-1 §8.1.2.4).
        let mut n = 0;
        loop {
            let (&b, r) = rest
                .split_first()
                .ok_or_else(|| err(format!("tag {tag:X}: truncated multi-byte tag")))?;
            rest = r;
            tag = (tag << 8) | b as u32;
            n += 1;
            if b & 0x80 == 0 {
                break;
            }
            if n >= 2 {
                return Err(err(format!("tag {tag:X}: longer than 3 bytes")));
            }
        }
    }
    let (&l0, r) = rest
        .split_first()
        .ok_or_else(|| err(format!("tag {tag:X}: missing length")))?;
    rest = r;
    let len = match l0 {
        0x00..=0x7F => l0 as usize,
        0x81..=0x83 => {
            let n = (l0 & 0x7F) as usize;
            if rest.len() < n {
                return Err(err(format!("tag {tag:X}: truncated length")));
            }
            let (lb, r) = rest.split_at(n);
            rest = r;
            lb.iter().fold(0usize, |acc, &b| (acc << 8) | b as usize)
        }
        _ => {
            return Err(err(format!(
                "tag {tag:X}: unsupported length byte {l0:02X}"
            )))
        }
    };
    if rest.len() < len {
        return Err(err(format!(
            "tag {tag:X}: length {len} but only {} bytes follow",
            rest.len()
        )));
    }
    let (value, rest) = rest.split_at(len);
    Ok((Tlv { tag, value }, rest))
}

/// Decodes a sequence of TLVs filling all of `input`.
pub fn parse_all(mut input: &[u8]) -> Result<Vec<Tlv<'_>>, Error> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let (t, rest) = parse_one(input)?;
        out.push(t);
        input = rest;
    }
    Ok(out)
}

/// Decodes exactly one TLV with tag `tag` filling all of `input`; returns its value.
pub fn expect_single(input: &[u8], tag: Tag) -> Result<&[u8], Error> {
    let (t, rest) = parse_one(input)?;
    if t.tag != tag {
        return Err(err(format!("expected tag {tag:X}, found {:X}", t.tag)));
    }
    if !rest.is_empty() {
        return Err(err(format!("{} bytes after tag {tag:X}", rest.len())));
    }
    Ok(t.value)
}

/// First TLV with `tag` among the TLVs of `input`.
pub fn find(input: &[u8], tag: Tag) -> Result<Option<&[u8]>, Error> {
    Ok(parse_all(input)?
        .into_iter()
        .find(|t| t.tag == tag)
        .map(|t| t.value))
}

/// Appends the encoding of `tag`.
pub fn push_tag(out: &mut Vec<u8>, tag: Tag) {
    let bytes = tag.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count().min(3);
    out.extend_from_slice(&bytes[skip..]);
}

/// Appends a definite length (short form below 128, else 81/82/83 forms).
pub fn push_len(out: &mut Vec<u8>, len: usize) {
    match len {
        0..=0x7F => out.push(len as u8),
        0x80..=0xFF => out.extend_from_slice(&[0x81, len as u8]),
        0x100..=0xFFFF => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
        _ => out.extend_from_slice(&[0x83, (len >> 16) as u8, (len >> 8) as u8, len as u8]),
    }
}

/// Appends one TLV.
pub fn push(out: &mut Vec<u8>, tag: Tag, value: &[u8]) {
    push_tag(out, tag);
    push_len(out, value.len());
    out.extend_from_slice(value);
}

/// One TLV as a new buffer.
pub fn encode(tag: Tag, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 8);
    push(&mut out, tag, value);
    out
}

/// Total length (header + value) of the BER-TLV object at the start of `head` (one- or
/// multi-byte tag, definite length of up to 3 length octets); `None` if `head` is too short or
/// not a definite-length header.
pub fn total_len(head: &[u8]) -> Option<usize> {
    let first = *head.first()?;
    let tag_len = if first & 0x1F == 0x1F {
        let mut i = 1;
        while head.get(i)? & 0x80 != 0 {
            i += 1;
        }
        i + 1
    } else {
        1
    };
    let l0 = *head.get(tag_len)? as usize;
    let (len, len_octets) = match l0 {
        n if n < 0x80 => (n, 1),
        0x81 => (*head.get(tag_len + 1)? as usize, 2),
        0x82 => (
            (*head.get(tag_len + 1)? as usize) << 8 | *head.get(tag_len + 2)? as usize,
            3,
        ),
        _ => return None,
    };
    Some(tag_len + len_octets + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_short_and_long_lengths_and_multibyte_tags() {
        assert_eq!(encode(0x53, &[1, 2]), vec![0x53, 2, 1, 2]);
        assert_eq!(&encode(0x70, &[0; 200])[..3], &[0x70, 0x81, 200]);
        assert_eq!(&encode(0x70, &[0; 700])[..4], &[0x70, 0x82, 0x02, 0xBC]);
        assert_eq!(encode(0x5FC102, &[]), vec![0x5F, 0xC1, 0x02, 0x00]);
        assert_eq!(encode(0x7F49, &[]), vec![0x7F, 0x49, 0x00]);
    }

    #[test]
    fn round_trips_a_certificate_object() {
        let mut inner = Vec::new();
        push(&mut inner, 0x70, &[0x30; 400]);
        push(&mut inner, 0x71, &[0]);
        push(&mut inner, 0xFE, &[]);
        let obj = encode(0x53, &inner);
        let v = expect_single(&obj, 0x53).unwrap();
        let parts = parse_all(v).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].tag, 0x70);
        assert_eq!(parts[0].value.len(), 400);
        assert_eq!(
            parts[2],
            Tlv {
                tag: 0xFE,
                value: &[]
            }
        );
    }

    #[test]
    fn decodes_generate_response_7f49() {
        let mut pt = vec![0x04];
        pt.extend_from_slice(&[7; 64]);
        let mut inner = Vec::new();
        push(&mut inner, 0x86, &pt);
        let r = encode(0x7F49, &inner);
        assert_eq!(&r[..3], &[0x7F, 0x49, 0x43]);
        let v = expect_single(&r, 0x7F49).unwrap();
        assert_eq!(find(v, 0x86).unwrap().unwrap().len(), 65);
    }

    #[test]
    fn malformed_input_is_an_error_never_a_panic() {
        let cases: &[&[u8]] = &[
            &[0x53],
            &[0x53, 0x05, 1, 2],
            &[0x53, 0x81],
            &[0x53, 0x82, 0x01],
            &[0x53, 0x84, 0, 0, 0, 1],
            &[0x53, 0x80],
            &[0x5F],
            &[0x5F, 0xC1],
            &[0x5F, 0xC1, 0x81, 0x01, 0x00],
            &[0x00, 0x00],
            &[0x53, 0x83, 0xFF, 0xFF, 0xFF],
        ];
        for c in cases {
            assert!(parse_all(c).is_err(), "{c:02X?} should not parse");
        }
        // Exhaustive over short inputs: never panics.
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let _ = parse_all(&[a, b, 0x01]);
                let _ = parse_all(&[0x5F, a, b]);
            }
        }
    }

    #[test]
    fn trailing_bytes_after_single_object_are_rejected() {
        assert!(expect_single(&[0x53, 0x00, 0x00], 0x53).is_err());
        assert!(expect_single(&[0x54, 0x00], 0x53).is_err());
    }
}
