//! Links the board binaries with cortex-m-rt's `link.x` (which includes the board's
//! `memory.x`) and defmt's `defmt.x`, only when building for a microcontroller.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumb") && std::env::var_os("CARGO_FEATURE_LM3S6965EVB").is_some() {
        println!("cargo:rustc-link-arg-bin=blade-lm3s6965evb=-Tlink.x");
        println!("cargo:rustc-link-arg-bin=blade-lm3s6965evb=-Tdefmt.x");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
