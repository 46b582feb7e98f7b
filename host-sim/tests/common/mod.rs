//! Helpers of host-sim's daemon tests.
#![allow(dead_code)]

pub mod aoe;
