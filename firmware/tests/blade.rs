//! The blade's poll step on the host: a state change is on the card before its reply leaves,
//! a failed save withholds the reply, and the reserved tail of the card is out of reach.

use aoe_core::disk::{Disk, ErrorKind, MemDisk, Sector};
use aoe_firmware::persist::{COPY_LEN, Record, Store};
use aoe_firmware::{Blade, Defaults};
use aoe_testkit::device::QueueDevice;
use aoe_testkit::frame::{Initiator, SHELF, SLOT, TARGET_MAC};
use aoe_testkit::reply::Reply;
use smoltcp::time::Instant;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Sectors of the card: 56 exported, 8 for the state record.
const CARD_SECTORS: usize = 64;

/// A card whose writes fail while `fail_writes` is set; the test keeps a handle on both.
struct Card {
    bytes: Rc<RefCell<MemDisk<Vec<u8>>>>,
    fail_writes: Rc<Cell<bool>>,
}

impl Disk for Card {
    type Error = ErrorKind;

    fn sector_count(&self) -> u64 {
        self.bytes.borrow().sector_count()
    }

    fn read(&mut self, lba: u64, buf: &mut [Sector]) -> Result<(), ErrorKind> {
        self.bytes.borrow_mut().read(lba, buf)
    }

    fn write(&mut self, lba: u64, buf: &[Sector]) -> Result<(), ErrorKind> {
        if self.fail_writes.get() {
            return Err(ErrorKind::Media);
        }
        self.bytes.borrow_mut().write(lba, buf)
    }

    fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

/// The config string of the newest record on the card, if any.
fn saved_config_string(card: &RefCell<MemDisk<Vec<u8>>>) -> Option<Vec<u8>> {
    let mut card = card.borrow_mut();
    let mut store = Store::for_card(card.sector_count())?;
    let mut buffer = [0u8; COPY_LEN];
    store.load(&mut *card, &mut buffer).ok()??;
    Record::decode(&buffer).map(|(record, _)| record.config_string.to_vec())
}

fn reply(frame: &[u8]) -> Reply {
    Reply {
        bytes: frame.to_vec(),
    }
}

#[test]
fn state_is_saved_before_the_reply_and_a_failed_save_withholds_it() {
    let bytes = Rc::new(RefCell::new(MemDisk::new(vec![0u8; CARD_SECTORS * 512])));
    let fail_writes = Rc::new(Cell::new(false));
    let card = Card {
        bytes: Rc::clone(&bytes),
        fail_writes: Rc::clone(&fail_writes),
    };
    let defaults = Defaults {
        mac: TARGET_MAC.0,
        shelf: SHELF,
        slot: SLOT,
        buffer_count: 2,
        max_frame_len: 1514,
    };
    let mut mac = QueueDevice::default();
    let mut record_buffer = [0u8; COPY_LEN];
    let mut blade = Blade::boot(&mut mac, card, &defaults, &mut record_buffer).expect("boots");
    assert_eq!(
        mac.address, TARGET_MAC,
        "the MAC runs with the identity's address"
    );
    assert_eq!(
        blade.target().sector_count(),
        56,
        "the record's 8 sectors are not exported"
    );
    let initiator = Initiator::default();
    let now = Instant::ZERO;

    // A config string set: on the card by the time the reply is out.
    mac.rx.push_back(initiator.config(1, 4, b"first").bytes);
    assert!(blade.poll(&mut mac, now));
    assert_eq!(mac.tx.len(), 1);
    assert_eq!(reply(&mac.tx[0]).cfg_string(), b"first");
    assert_eq!(saved_config_string(&bytes).as_deref(), Some(&b"first"[..]));
    assert_eq!(blade.stats().saves, 1);
    assert!(!blade.unsaved());

    // The card refuses writes: the next change is not acknowledged.
    fail_writes.set(true);
    mac.rx.push_back(initiator.config(2, 4, b"second").bytes);
    assert!(blade.poll(&mut mac, now));
    assert_eq!(mac.tx.len(), 1, "reply withheld");
    assert_eq!(blade.stats().save_failures, 1);
    assert!(blade.unsaved());
    assert_eq!(saved_config_string(&bytes).as_deref(), Some(&b"first"[..]));

    // The card recovers: the retry saves, and the initiator's retransmission is answered.
    fail_writes.set(false);
    assert!(blade.save_if_changed());
    assert_eq!(saved_config_string(&bytes).as_deref(), Some(&b"second"[..]));
    mac.rx.push_back(initiator.config(3, 4, b"second").bytes);
    assert!(blade.poll(&mut mac, now));
    assert_eq!(mac.tx.len(), 2);
    assert_eq!(reply(&mac.tx[1]).cfg_string(), b"second");
    assert_eq!(
        blade.stats().saves,
        2,
        "an unchanged state is not saved again"
    );

    // The reserved tail is beyond the export: IDNF, and the record is untouched.
    let before = bytes.borrow().as_bytes().to_vec();
    mac.rx
        .push_back(initiator.write48(4, 56, &[0xEE; 512]).bytes);
    assert!(blade.poll(&mut mac, now));
    let refused = reply(&mac.tx[2]);
    assert_eq!((refused.ata_status(), refused.ata_error()), (0x41, 0x10));
    assert_eq!(bytes.borrow().as_bytes(), &before[..]);
    assert!(!blade.poll(&mut mac, now), "nothing left to receive");
}
