//! The STM32F7 Ethernet MAC (embassy-stm32's DMA driver) as an [`EthernetMac`].
//!
//! Guarantees:
//!
//! * **Zero copy**: a receive token lends the DMA receive buffer and a transmit token the DMA
//!   transmit buffer of embassy-stm32's descriptor rings; the descriptor goes back to the DMA
//!   when the token's closure returns.
//! * **Frames without FCS**: the MAC strips the 4-octet FCS from every frame (CSTF), so a
//!   receive token holds header and payload only, as the other boards' drivers give them.
//! * **Only our frames**: the MAC's perfect address filter passes our station address and
//!   broadcast; this driver turns off the "pass all multicast" that embassy-stm32 sets, so no
//!   software filter (and no copy) is needed.
//! * A transmit of more than [`MAX_FRAME_LEN`] octets is never put on the wire: the closure
//!   gets a scratch buffer and the frame is counted in `tx_dropped` (embassy-stm32 would panic).
//! * Never waits: `receive`/`transmit` return `None` when no descriptor is ready.

use aoe_core::wire::EthernetAddress;
use aoe_hal::{EthernetMac, LinkState, MacCounters};
use core::cell::Cell;
use core::task::{Context, Waker};
use embassy_net_driver::{Driver, RxToken as _, TxToken as _};
use embassy_stm32::eth::{self, GenericPhy, Sma, StationManagement};
use embassy_stm32::pac;
use embassy_stm32::pac::eth::vals::{Dm, Fes};
use embassy_stm32::peripherals::{ETH, ETH_SMA};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;

/// The largest frame the MAC carries: 1500 octets of payload plus the 14-octet header
/// (embassy-stm32's transmit buffers are exactly this long; the MAC appends the FCS).
pub const MAX_FRAME_LEN: usize = 1514;

/// Transmit descriptors: replies can queue while the MAC sends.
pub const TX_DESCRIPTORS: usize = 4;
/// Receive descriptors: frames the MAC takes in while the firmware works on one. Advertised
/// as the AoE Buffer Count.
pub const RX_DESCRIPTORS: usize = 8;

/// The DMA descriptor rings and their buffers (about 18 KiB): must live in RAM the Ethernet
/// DMA reaches (all of the F746's SRAM) and, with the data cache on, be non-cacheable. This
/// crate never enables the data cache.
pub type PacketQueue = eth::PacketQueue<TX_DESCRIPTORS, RX_DESCRIPTORS>;

/// embassy-stm32's driver with the board's PHY (LAN8742A) found by scanning the MDIO bus.
pub type EmbassyEthernet = eth::Ethernet<'static, ETH, GenericPhy<Sma<'static, ETH_SMA>>>;

/// PHY register 2 (identifier 1): Microchip/SMSC's OUI bits, as the LAN8742A reports them.
const PHY_ID1: u8 = 2;
const PHY_ID1_MICROCHIP: u16 = 0x0007;
/// LAN8742A register 31 (PHY special control/status): bits 4:2 give the negotiated mode.
const PHY_SPECIAL_STATUS: u8 = 31;
const SPEED_10: u16 = 1 << 2;
const SPEED_100: u16 = 1 << 3;
const FULL_DUPLEX: u16 = 1 << 4;

/// The Ethernet MAC of the STM32F746G-DISCO.
pub struct Ethernet {
    inner: EmbassyEthernet,
    /// The LAN8742A's MDIO address, when one answered with its identifier.
    lan8742a: Option<u8>,
    /// The speed/duplex bits the MAC was last set to.
    negotiated: u16,
    address: EthernetAddress,
    counts: Counts,
    /// Lent to a transmit closure that asked for more than [`MAX_FRAME_LEN`] octets.
    oversize: [u8; MAX_FRAME_LEN],
}

/// A context whose waker does nothing: the firmware polls, it never sleeps on the MAC.
fn polling_context() -> Context<'static> {
    Context::from_waker(Waker::noop())
}

impl Ethernet {
    /// Wraps a started embassy-stm32 driver whose station address is `address`.
    pub fn new(mut inner: EmbassyEthernet, address: EthernetAddress) -> Ethernet {
        // embassy-stm32 sets "pass all multicast"; we want only our address and broadcast.
        pac::ETH
            .ethernet_mac()
            .macffr()
            .modify(|w| w.set_pam(false));
        // The MAC strips the FCS only from 802.3 length frames unless CSTF is set; without it
        // every Ethernet II frame (AoE's 0x88A2 among them) arrives with 4 octets of FCS.
        pac::ETH.ethernet_mac().maccr().modify(|w| w.set_cstf(true));
        // embassy-stm32 found the PHY but keeps its address private: find it again, by its
        // identifier, to read the negotiated speed and duplex later.
        let station = inner.phy_mut().station_management();
        let lan8742a = (0..32).find(|&phy| station.smi_read(phy, PHY_ID1) == PHY_ID1_MICROCHIP);
        Ethernet {
            inner,
            lan8742a,
            negotiated: SPEED_100 | FULL_DUPLEX,
            address,
            counts: Counts::default(),
            oversize: [0; MAX_FRAME_LEN],
        }
    }

    /// Sets the MAC's speed (FES) and duplex (DM) to what the PHY negotiated, if it changed.
    fn follow_negotiation(&mut self) {
        let Some(phy) = self.lan8742a else {
            return;
        };
        let status = self
            .inner
            .phy_mut()
            .station_management()
            .smi_read(phy, PHY_SPECIAL_STATUS);
        // Neither speed bit: auto-negotiation is still settling; keep what we have.
        if status & (SPEED_10 | SPEED_100) == 0 {
            return;
        }
        let negotiated = status & (SPEED_100 | FULL_DUPLEX);
        if negotiated == self.negotiated {
            return;
        }
        self.negotiated = negotiated;
        pac::ETH.ethernet_mac().maccr().modify(|w| {
            w.set_fes(if negotiated & SPEED_100 != 0 {
                Fes::FES100
            } else {
                Fes::FES10
            });
            w.set_dm(if negotiated & FULL_DUPLEX != 0 {
                Dm::FULL_DUPLEX
            } else {
                Dm::HALF_DUPLEX
            });
        });
    }
}

/// The counters this driver keeps, shared by the receive and the transmit token of a pair.
#[derive(Default)]
struct Counts {
    rx_frames: Cell<u32>,
    rx_overruns: Cell<u32>,
    tx_frames: Cell<u32>,
    tx_dropped: Cell<u32>,
}

impl Counts {
    fn add(counter: &Cell<u32>, amount: u32) {
        counter.set(counter.get().wrapping_add(amount));
    }

    /// Adds the DMA's missed-frame counter (frames lost for want of a free receive
    /// descriptor, or to a FIFO overflow) to `rx_overruns`. Reading the register clears it.
    fn collect_missed_frames(&self) {
        let missed = pac::ETH.ethernet_dma().dmamfbocr().read();
        let lost = u32::from(missed.mfc()) + u32::from(missed.mfa());
        Counts::add(&self.rx_overruns, lost);
    }
}

/// A received frame in a DMA receive buffer.
pub struct EthernetRxToken<'a> {
    inner: eth::RxToken<'a, 'static>,
    counts: &'a Counts,
}

impl RxToken for EthernetRxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        Counts::add(&self.counts.rx_frames, 1);
        self.inner.consume(|frame| f(frame))
    }
}

/// Permission to send one frame through a DMA transmit buffer.
pub struct EthernetTxToken<'a> {
    inner: eth::TxToken<'a, 'static>,
    counts: &'a Counts,
    oversize: &'a mut [u8; MAX_FRAME_LEN],
}

impl TxToken for EthernetTxToken<'_> {
    /// Lends a transmit buffer of `len` octets and queues it for the DMA. A `len` over
    /// [`MAX_FRAME_LEN`] gets a scratch buffer of that size instead and is not sent.
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        if len > MAX_FRAME_LEN {
            Counts::add(&self.counts.tx_dropped, 1);
            return f(&mut self.oversize[..]);
        }
        Counts::add(&self.counts.tx_frames, 1);
        self.inner.consume(len, f)
    }
}

impl Device for Ethernet {
    type RxToken<'a>
        = EthernetRxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = EthernetTxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(EthernetRxToken<'_>, EthernetTxToken<'_>)> {
        let mut context = polling_context();
        // embassy-stm32 hands out a receive token only together with a free transmit
        // descriptor, so a reply always has somewhere to go.
        match self.inner.receive(&mut context) {
            Some((rx, tx)) => Some((
                EthernetRxToken {
                    inner: rx,
                    counts: &self.counts,
                },
                EthernetTxToken {
                    inner: tx,
                    counts: &self.counts,
                    oversize: &mut self.oversize,
                },
            )),
            None => {
                self.counts.collect_missed_frames();
                None
            }
        }
    }

    fn transmit(&mut self, _now: Instant) -> Option<EthernetTxToken<'_>> {
        let mut context = polling_context();
        let tx = self.inner.transmit(&mut context)?;
        Some(EthernetTxToken {
            inner: tx,
            counts: &self.counts,
            oversize: &mut self.oversize,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut capabilities = DeviceCapabilities::default();
        capabilities.medium = Medium::Ethernet;
        capabilities.max_transmission_unit = MAX_FRAME_LEN;
        capabilities.max_burst_size = Some(TX_DESCRIPTORS);
        capabilities
    }
}

impl EthernetMac for Ethernet {
    fn mac_address(&self) -> EthernetAddress {
        self.address
    }

    /// Reprograms the perfect filter's address 0 (embassy-stm32 has no call for it). The
    /// high half first: writing the low half latches both into the MAC.
    fn set_mac_address(&mut self, address: EthernetAddress) {
        self.address = address;
        let [a, b, c, d, e, f] = address.0;
        let mac = pac::ETH.ethernet_mac();
        mac.maca0hr()
            .modify(|w| w.set_maca0h(u16::from_le_bytes([e, f])));
        mac.maca0lr()
            .write(|w| w.set_maca0l(u32::from_le_bytes([a, b, c, d])));
    }

    /// The PHY's basic status register over MDIO: up once auto-negotiation finished with a
    /// link partner. When up, the MAC is set to the speed and duplex the LAN8742A negotiated
    /// (embassy-stm32 starts it at 100 Mbit/s full duplex and never changes it).
    fn link(&mut self) -> LinkState {
        let mut context = polling_context();
        match self.inner.link_state(&mut context) {
            embassy_net_driver::LinkState::Up => {
                self.follow_negotiation();
                LinkState::Up
            }
            embassy_net_driver::LinkState::Down => LinkState::Down,
        }
    }

    fn counters(&self) -> MacCounters {
        MacCounters {
            rx_frames: self.counts.rx_frames.get(),
            rx_overruns: self.counts.rx_overruns.get(),
            tx_frames: self.counts.tx_frames.get(),
            tx_dropped: self.counts.tx_dropped.get(),
            ..MacCounters::default()
        }
    }
}
