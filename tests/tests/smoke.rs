use aoe_tests::*;

#[test]
fn write_then_read_back() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    let data = pattern(5, 2, 1);
    let r = h.send(&i.write48(1, 5, &data)).unwrap();
    assert_eq!(r.ata_status(), 0x40);
    assert_eq!(r.bytes.len(), 60);
    let r = h.send(&i.read48(2, 5, 2)).unwrap();
    assert_eq!(r.ata_status(), 0x40);
    assert_eq!(r.ata_data(), &data[..]);
    let r = h.send(&i.identify(3)).unwrap();
    assert_eq!(r.bytes.len(), 548);
    let r = h.send(&i.config(4, 0, b"")).unwrap();
    assert_eq!(r.cfg_sector_count(), 2);
    assert!(r.bytes[32..].iter().all(|&b| b == 0));
}
