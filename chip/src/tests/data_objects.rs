//! PIV data objects (SP 800-73-4): GET DATA of discovery, the lifecycle object and missing
//! objects; PUT DATA under the management key (moving a BLANK card to PERSONALIZING), objects
//! readable only after the PIN, and the size limit.

use super::*;

// -------------------------------------------------------------- GET DATA ---

#[test]
fn get_data_discovery_lifecycle_and_missing_objects() {
    let mut c = Host::new();
    c.select();
    let (d, sw) = c.tx(&h("00CB3FFF035C017E00"));
    assert_eq!(sw, 0x9000);
    assert_eq!(d, h("7E124F0BA0000003080000100001005F2F024000"));
    assert_eq!(c.lifecycle(), 0);
    assert_eq!(c.sw("00CB3FFF055C035FC10200"), 0x6A82);
    assert_eq!(
        c.sw("00CB3FFF055C035FC10900"),
        0x6982,
        "printed info needs the PIN"
    );
    assert_eq!(c.sw("00CB3FFE055C035FC10200"), 0x6A86);
    assert_eq!(c.sw("00CB3FFF045C025FC100"), 0x6A82);
    assert_eq!(
        c.sw("00CB3FFF065C045FC1020100"),
        0x6A80,
        "tag longer than 3 bytes"
    );
    assert_eq!(c.sw("00CB3FFF035C055F00"), 0x6A80, "truncated TLV");
    assert_eq!(c.sw("00CB3FFF0553035FC102"), 0x6A80, "not a tag list");
    assert_eq!(c.sw("00CB3FFF00"), 0x6A80, "no data");
}

// -------------------------------------------------------------- PUT DATA ---

#[test]
fn put_data_needs_the_management_key_and_moves_blank_to_personalizing() {
    let mut c = Host::new();
    c.select();
    assert_eq!(c.sw("00DB3FFF085C035FC102530101"), 0x6982);
    assert_eq!(c.lifecycle(), 0);
    assert_eq!(c.mgmt_auth(&MgmtKey::transport()), 0x9000);
    assert_eq!(c.sw("00DB3FFF085C035FC102530101"), 0x9000);
    assert_eq!(c.lifecycle(), 1);
    assert_eq!(c.tx(&h("00CB3FFF055C035FC10200")), (h("530101"), 0x9000));
    // delete with an empty 53
    assert_eq!(c.sw("00DB3FFF075C035FC1025300"), 0x9000);
    assert_eq!(c.sw("00CB3FFF055C035FC10200"), 0x6A82);
    // malformed
    assert_eq!(
        c.sw("00DB3FFF085C035FFF20530101"),
        0x6A80,
        "lifecycle object is read-only"
    );
    assert_eq!(
        c.sw("00DB3FFF085C03123456530101"),
        0x6A80,
        "not a PIV object"
    );
    assert_eq!(c.sw("00DB3FFF075C025FC1530101"), 0x6A80, "2-byte tag");
    assert_eq!(c.sw("00DB3FFF085C035FC102530201"), 0x6A80, "truncated 53");
    assert_eq!(
        c.sw("00DB3FFF0A5C035FC1025301010000"),
        0x6A80,
        "trailing bytes"
    );
    assert_eq!(c.sw("00DB3FFE085C035FC102530101"), 0x6A86);
    assert_eq!(c.sw("00DB3FFF04 7E027F00"), 0x9000, "discovery template");
    assert_eq!(c.tx(&h("00CB3FFF035C017E00")), (h("7E027F00"), 0x9000));
}

#[test]
fn printed_information_is_readable_after_pin() {
    let mut c = Host::new();
    c.select();
    c.mgmt_auth(&MgmtKey::transport());
    assert_eq!(c.sw("00DB3FFF095C035FC10953020102"), 0x9000);
    assert_eq!(c.sw("00CB3FFF055C035FC10900"), 0x6982);
    assert_eq!(c.verify_pin("123456"), 0x9000);
    assert_eq!(c.tx(&h("00CB3FFF055C035FC10900")), (h("53020102"), 0x9000));
}

#[test]
fn oversized_object_is_6a84() {
    let mut c = Host::new();
    c.select();
    c.mgmt_auth(&MgmtKey::transport());
    let mut data = h("5C035FC10A");
    data.extend(crate::tlv::encode(
        0x53,
        &vec![1u8; crate::piv::MAX_OBJECT_LEN + 1],
    ));
    let mut last = 0;
    for (i, chunk) in data.chunks(255).enumerate() {
        let more = (i + 1) * 255 < data.len();
        let mut a = vec![
            if more { 0x10 } else { 0x00 },
            0xDB,
            0x3F,
            0xFF,
            chunk.len() as u8,
        ];
        a.extend(chunk);
        last = c.tx(&a).1;
    }
    assert_eq!(last, 0x6A84);
}
