//! Links the board binaries with cortex-m-rt's `link.x` (which includes the board's
//! `memory.x`) and defmt's `defmt.x`, only when building for a microcontroller.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumb") && std::env::var_os("CARGO_FEATURE_LM3S6965EVB").is_some() {
        println!("cargo:rustc-link-arg-bin=blade-lm3s6965evb=-Tlink.x");
        println!("cargo:rustc-link-arg-bin=blade-lm3s6965evb=-Tdefmt.x");
    }
    // The real boards (boards/README.md), one feature and one binary each.
    for (feature, bin) in [
        ("CARGO_FEATURE_STM32F746G_DISCO", "blade-stm32f746g-disco"),
        ("CARGO_FEATURE_W5500_EVB_PICO", "blade-w5500-evb-pico"),
    ] {
        if target.starts_with("thumb") && std::env::var_os(feature).is_some() {
            println!("cargo:rustc-link-arg-bin={bin}=-Tlink.x");
            println!("cargo:rustc-link-arg-bin={bin}=-Tdefmt.x");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
