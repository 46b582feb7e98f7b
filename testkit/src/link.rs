//! Raw AoE frames through an `aoe_net::Link` in tests: send a batch, collect replies, one
//! request-reply exchange.

use aoe_net::{Frame, Link};
use std::time::{Duration, Instant};

/// Sends `frames` as one batch through pool frames of `link`; asserts all went out.
pub fn send_all(link: &mut dyn Link, frames: &[Vec<u8>]) {
    let mut batch: Vec<Frame> = frames
        .iter()
        .map(|bytes| {
            let mut frame = link.alloc().expect("a free pool frame");
            frame.fill(bytes);
            frame
        })
        .collect();
    assert_eq!(link.send(&mut batch).unwrap(), frames.len());
}

/// Receives AoE responses (R set) until `want` arrived or `timeout` passed.
pub fn collect(link: &mut dyn Link, want: usize, timeout: Duration) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut replies = Vec::new();
    let mut frames = Vec::new();
    while replies.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !link.wait(Some(left)).unwrap() {
            break;
        }
        link.recv(&mut frames, 64).unwrap();
        for frame in frames.drain(..) {
            let bytes = frame.as_slice();
            if bytes.len() >= 24 && bytes[14] & 0x08 != 0 {
                replies.push(bytes.to_vec());
            }
        }
    }
    replies
}

/// Sends one request and waits for the reply with the same tag.
pub fn exchange(link: &mut dyn Link, frame: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    let tag = &frame[20..24];
    send_all(link, &[frame.to_vec()]);
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        for reply in collect(link, 1, left) {
            if &reply[20..24] == tag {
                return Some(reply);
            }
        }
    }
}
