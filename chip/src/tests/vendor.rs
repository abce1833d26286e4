//! The Yubico vendor instructions yubico-piv-tool needs: GET VERSION (FD), GET SERIAL (F8) and
//! GET METADATA (F7) for the PIN, the PUK, the management key and the key slots.

use super::*;

#[test]
fn get_version_and_serial() {
    let mut c = Host::new();
    c.select();
    assert_eq!(c.tx(&h("00FD000000")), (vec![5, 4, 3], 0x9000));
    assert_eq!(c.tx(&h("00F8000000")), (h("11223344"), 0x9000));
    assert_eq!(c.sw("00F8010000"), 0x6A86);
    assert_eq!(c.sw("00FD000100"), 0x6A86);
}

#[test]
fn get_metadata_reports_pin_puk_management_key_and_slots() {
    let mut c = Host::new();
    c.select();
    assert_eq!(
        c.tx(&h("00F7008000")),
        (h("0101FF 050101 06020303"), 0x9000)
    );
    assert_eq!(
        c.tx(&h("00F7008100")),
        (h("0101FF 050101 06020A0A"), 0x9000)
    );
    assert_eq!(
        c.tx(&h("00F7009B00")),
        (h("010103 02020001 050101"), 0x9000)
    );
    assert_eq!(c.sw("00F7009A00"), 0x6A88, "empty slot");
    assert_eq!(c.sw("00F7004200"), 0x6A88);
    assert_eq!(c.sw("00F7019A00"), 0x6A86);
    c.mgmt_auth(&MgmtKey::transport());
    let (g, _) = c.generate(0x9C);
    let (d, sw) = c.tx(&h("00F7009C00"));
    assert_eq!(sw, 0x9000);
    assert_eq!(&d[..11], &h("010111 02020301 030101 04")[..]);
    assert_eq!(
        &d[12..],
        &g[3..],
        "public key in metadata = GENERATE answer"
    );
}
