//! Host mechanics on several interfaces: checklist items 41–42.

use crate::support::*;

/// Item 41: "AF_PACKET/SOCK_RAW socket on protocol htons(0x88A2) ... the data at offset 36 is
/// page-aligned" — core share: EtherType 0x88A2, the frame layout a host relies on (data at
/// offset 36 of request and reply, `Port::max_frame_len` = MTU + 14). Sockets, BPF, ioctls
/// and buffer sizes are the host's.
#[test]
fn item_41_frame_layout_for_the_host() {
    assert_eq!(ETHERTYPE_AOE, 0x88A2);
    assert_eq!(Port::new(TARGET_MAC, 1500).max_frame_len(), 1514);
    assert_eq!(Port::new(TARGET_MAC, 9000).max_frame_len(), 9014);
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();

    let read = i.read48(1, 6, 2);
    let plan = h.target.accept(&h.port, &read.bytes).unwrap();
    let io = plan.io().unwrap();
    assert_eq!((io.op, io.lba, io.sectors), (IoOp::Read, 6, 2));
    assert_eq!(
        io.data_range(),
        36..36 + 1024,
        "read data lands at offset 36"
    );
    assert_eq!(plan.reply_len(), 36 + 1024);

    let data = pattern(6, 2, 5);
    let write = i.write48(2, 6, &data);
    let plan = h.target.accept(&h.port, &write.bytes).unwrap();
    let io = plan.io().unwrap();
    assert_eq!((io.op, io.lba, io.sectors), (IoOp::Write, 6, 2));
    assert_eq!(
        &write.bytes[io.data_range()],
        &data[..],
        "write data at offset 36"
    );
    assert_eq!(plan.reply_len(), 60);
    let mut tx = vec![POISON; plan.reply_len()];
    let len = h.target.respond(&plan, &write.bytes, &mut tx).unwrap();
    assert_eq!(len, 60);
    assert_eq!(tx[12..14], [0x88, 0xA2]);
    assert_eq!(h.disk_bytes()[6 * 512..8 * 512], data[..]);

    let flush = i.ata(3, 0, ata_cmd::FLUSH, 0, 0, &[]);
    let plan = h.target.accept(&h.port, &flush.bytes).unwrap();
    assert_eq!(plan.io().map(|io| io.op), Some(IoOp::Flush));
    let plan = h
        .target
        .accept(&h.port, &i.config(4, 0, b"").bytes)
        .unwrap();
    assert_eq!(plan.io(), None, "control commands need no disk I/O");
}

/// Item 42: "Should answer on every interface it serves, each reply carrying that interface's
/// MAC."
#[test]
fn item_42_replies_from_the_arrival_port_mac() {
    let mac_b = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x02]);
    let port_a = Port::new(TARGET_MAC, 1500);
    let port_b = Port::new(mac_b, 9000);
    let mut config = Config::new(SHELF, SLOT);
    config.max_frame_len = 9014;
    let mut target = Target::new(config, mem(64)).unwrap();
    let via_a = Initiator::default();
    let via_b = Initiator {
        dst: mac_b,
        ..Initiator::default()
    };
    let broadcast = Initiator {
        dst: BROADCAST_MAC,
        ..Initiator::default()
    };

    let request = via_a.config(1, 0, b"");
    let reply = send_on(&mut target, &port_a, &request).unwrap();
    assert_header(&reply, &request, TARGET_MAC, None);
    assert_eq!(reply.cfg_sector_count(), 2);
    let request = via_b.config(2, 0, b"");
    let reply = send_on(&mut target, &port_b, &request).unwrap();
    assert_header(&reply, &request, mac_b, None);
    assert_eq!(reply.cfg_sector_count(), 17);

    for (port, expected) in [(&port_a, TARGET_MAC), (&port_b, mac_b)] {
        let request = broadcast.identify(3);
        let reply = send_on(&mut target, port, &request).unwrap();
        assert_header(&reply, &request, expected, None);
    }
    // A frame for port A's MAC that shows up on port B is not for us there.
    assert_eq!(send_on(&mut target, &port_b, &via_a.identify(4)), None);
    assert_eq!(send_on(&mut target, &port_a, &via_b.identify(5)), None);

    // One export behind both ports.
    let data = pattern(3, 2, 6);
    let reply = send_on(&mut target, &port_a, &via_a.write48(6, 3, &data)).unwrap();
    assert_eq!((reply.src(), reply.ata_status()), (TARGET_MAC, DRDY));
    let reply = send_on(&mut target, &port_b, &via_b.read48(7, 3, 2)).unwrap();
    assert_eq!(reply.src(), mac_b);
    assert_eq!(reply.ata_data(), &data[..]);
    let mut tx = [0u8; 60];
    target.announce(&port_b, BROADCAST_MAC, &mut tx).unwrap();
    assert_eq!((tx[6..12].to_vec(), tx[28]), (mac_b.0.to_vec(), 17));
}
