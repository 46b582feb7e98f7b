//! Puts `memory.x` where the linker finds it when cortex-m-rt's `link.x` includes it, and
//! links this crate's example binaries with `link.x` and defmt's `defmt.x`.

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    if std::env::var("TARGET")
        .unwrap_or_default()
        .starts_with("thumb")
    {
        println!("cargo:rustc-link-arg-examples=-Tlink.x");
        println!("cargo:rustc-link-arg-examples=-Tdefmt.x");
    }
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
}
