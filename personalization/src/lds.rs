//! ICAO Doc 9303 Part 10 Logical Data Structure (LDS1): the data groups and EF.COM as typed
//! values with their BER-TLV encoding, and the writer/reader that put them on a card.

/// Total length (header + value) of the BER-TLV object at the start of `head` (one- or
/// two-byte tag, definite length of up to 3 length octets); `None` if `head` is too short or
/// not a definite-length header.
pub fn tlv_total_len(head: &[u8]) -> Option<usize> {
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
