//! Wire formats: checked views and plain representations of AoE r11 frames.
//!
//! Each header has the same two layers, after smoltcp's `wire` module:
//!
//! * A **view**, `Packet<T: AsRef<[u8]>>`, over a byte buffer. `new_checked` (or `check_len`)
//!   verifies only that the fixed part of the header is present; after it returns `Ok`, **no
//!   accessor panics**, whatever the bytes hold. `new_unchecked` skips the check and is meant for
//!   emitting into buffers whose length the caller sized with `Repr::buffer_len`.
//! * A **representation**, `Repr`, holding only meaningful values. `Repr::parse` adds the
//!   semantic checks a header needs (a list count that fits the bytes present, a string length
//!   within the AoE limit) and `Repr::emit` writes exactly `Repr::buffer_len` octets, with every
//!   reserved field set to zero as AoE r11 requires of senders.
//!
//! Parsing is total: every numeric code maps to an enum with an `Unknown` arm, so no byte
//! value is ever rejected by the type system, only by the target's policy. Offsets in the field
//! tables are relative to the start of the header in question; the module docs give the
//! absolute frame offset (Ethernet header included) of each header.
//!
//! The Ethernet header itself comes from smoltcp ([`EthernetFrame`]); AoE uses EtherType
//! [`ETHERTYPE_AOE`].

pub mod aoe;
pub mod ata;
pub mod cfg;
pub mod mask;
pub mod reserve;

pub use smoltcp::wire::{EthernetAddress, EthernetFrame, EthernetProtocol};

/// The registered EtherType of ATA over Ethernet.
pub const ETHERTYPE_AOE: u16 = 0x88A2;

/// Length of the Ethernet header (destination, source, EtherType), no VLAN tag.
pub const ETHERNET_HEADER_LEN: usize = 14;

/// The smallest Ethernet frame without its FCS. Every reply is zero-padded to this length,
/// because `aoeping` and `aoecfg` ignore shorter frames and veth/TAP links do not pad.
pub const MIN_FRAME_LEN: usize = 60;

/// Frame offset of the AoE argument (Ethernet header + AoE header): 24.
pub const AOE_ARG_OFFSET: usize = ETHERNET_HEADER_LEN + aoe::HEADER_LEN;

/// Frame offset of the ATA data area (Ethernet + AoE + ATA headers): 36.
pub const ATA_DATA_OFFSET: usize = AOE_ARG_OFFSET + ata::HEADER_LEN;

/// The AoE header of a received Ethernet frame (Ethernet header included), checked: `Ok` only
/// if the frame carries EtherType [`ETHERTYPE_AOE`] and all ten AoE header octets, after which
/// no accessor of the returned view panics. A platform reads a frame's Major, Minor and
/// Command through it (to route frames to exports) instead of raw offsets.
///
/// ```
/// use aoe_core::wire::{aoe, aoe_header};
///
/// let mut frame = [0u8; 60];
/// frame[12..14].copy_from_slice(&0x88a2u16.to_be_bytes());
/// frame[14..20].copy_from_slice(&[0x10, 0, 0x00, 0x07, 0x03, 1]);
/// let header = aoe_header(&frame).unwrap();
/// assert_eq!((header.major(), header.minor()), (7, 3));
/// assert_eq!(header.command(), aoe::Command::QueryConfig);
/// assert!(aoe_header(&frame[..23]).is_err());
/// ```
///
/// # Errors
/// When the frame is shorter than the two headers or has another EtherType.
pub fn aoe_header(frame: &[u8]) -> Result<aoe::Packet<&[u8]>> {
    let ethernet = EthernetFrame::new_checked(frame).map_err(|_| Error)?;
    if u16::from(ethernet.ethertype()) != ETHERTYPE_AOE {
        return Err(Error);
    }
    aoe::Packet::new_checked(ethernet.payload())
}

/// A malformed header: the frame is dropped without a reply.
///
/// Protocol-level refusals that *do* get a reply are not wire errors; the target turns them into
/// AoE error codes or ATA status bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Error;

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("malformed AoE header")
    }
}

impl core::error::Error for Error {}

/// Result of a wire-level parse.
pub type Result<T> = core::result::Result<T, Error>;

/// Defines a protocol code enum with one variant per known value and an `Unknown` catch-all,
/// so that conversion from the raw integer is total.
macro_rules! enum_with_unknown {
    (
        $(#[$enum_attr:meta])*
        pub enum $name:ident($ty:ty) {
            $( $(#[$variant_attr:meta])* $variant:ident = $value:expr ),+ $(,)?
        }
    ) => {
        $(#[$enum_attr])*
        #[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone, Copy, Hash)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub enum $name {
            $( $(#[$variant_attr])* $variant ),*,
            /// Any value without a name in AoE r11.
            Unknown($ty),
        }

        impl ::core::convert::From<$ty> for $name {
            fn from(value: $ty) -> Self {
                match value {
                    $( $value => $name::$variant ),*,
                    other => $name::Unknown(other),
                }
            }
        }

        impl ::core::convert::From<$name> for $ty {
            fn from(value: $name) -> Self {
                match value {
                    $( $name::$variant => $value ),*,
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}
pub(crate) use enum_with_unknown;

/// Reads six octets as an Ethernet address. `bytes` must hold at least six.
pub(crate) fn mac_at(bytes: &[u8]) -> EthernetAddress {
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&bytes[..6]);
    EthernetAddress(mac)
}
