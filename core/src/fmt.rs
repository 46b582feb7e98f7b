//! Logging macros that forward to `log`, `defmt`, or nothing.
//!
//! Declared first in `lib.rs` so that every other module sees the macros. Format strings use only
//! the placeholders both backends accept (`{}`, `{:?}`, `{:x}`, `{:02x}`). Level policy: `trace`
//! per frame, `debug` for dropped frames and error replies, `info` for start-up and
//! configuration, `warn`/`error` for disk failures. Sector payloads are never logged.
#![macro_use]
#![allow(unused)]

#[cfg(all(feature = "defmt", feature = "log"))]
compile_error!("features `defmt` and `log` of aoe-core are mutually exclusive: enable one");

macro_rules! log_at {
    ($level:ident, $s:literal $(, $x:expr)* $(,)?) => {{
        #[cfg(feature = "log")]
        ::log::$level!($s $(, $x)*);
        #[cfg(feature = "defmt")]
        ::defmt::$level!($s $(, $x)*);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        let _ = ($(&$x),*);
    }};
}

macro_rules! trace {
    ($s:literal $(, $x:expr)* $(,)?) => { log_at!(trace, $s $(, $x)*) };
}

macro_rules! debug {
    ($s:literal $(, $x:expr)* $(,)?) => { log_at!(debug, $s $(, $x)*) };
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
