//! Logging macros that forward to `defmt` (feature `defmt`) or compile to nothing.
//!
//! Level policy as in aoe-core: `info` for start-up and state changes, `warn`/`error` for disk
//! and persistence failures, never sector payloads.
#![macro_use]
#![allow(unused)]

macro_rules! log_at {
    ($level:ident, $s:literal $(, $x:expr)* $(,)?) => {{
        #[cfg(feature = "defmt")]
        ::defmt::$level!($s $(, $x)*);
        #[cfg(not(feature = "defmt"))]
        let _ = ($(&$x),*);
    }};
}

macro_rules! info {
    ($s:literal $(, $x:expr)* $(,)?) => { log_at!(info, $s $(, $x)*) };
}

macro_rules! warn {
    ($s:literal $(, $x:expr)* $(,)?) => { log_at!(warn, $s $(, $x)*) };
}

macro_rules! error {
    ($s:literal $(, $x:expr)* $(,)?) => { log_at!(error, $s $(, $x)*) };
}
