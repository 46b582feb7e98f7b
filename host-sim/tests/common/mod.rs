//! The daemon tests' view of replies: `aoe_testkit::link` with replies as
//! `aoe_testkit::reply::Reply`.
#![allow(dead_code)]

use aoe_net::Link;
use aoe_testkit::reply::Reply;
use std::time::Duration;

/// Receives replies (R set) until `want` arrived or `timeout` passed.
pub fn collect(link: &mut dyn Link, want: usize, timeout: Duration) -> Vec<Reply> {
    aoe_testkit::link::collect(link, want, timeout)
        .into_iter()
        .map(|bytes| Reply { bytes })
        .collect()
}

/// Sends `frames` as one batch.
pub fn send_all(link: &mut dyn Link, frames: &[Vec<u8>]) {
    aoe_testkit::link::send_all(link, frames);
}

/// Sends one request and waits for the reply with the same tag.
pub fn exchange(link: &mut dyn Link, frame: &[u8], timeout: Duration) -> Option<Reply> {
    aoe_testkit::link::exchange(link, frame, timeout).map(|bytes| Reply { bytes })
}
