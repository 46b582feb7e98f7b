//! The build script of every board crate (`build = "../memory-x.rs"` in each manifest): puts
//! the board's `memory.x` where the linker finds it when cortex-m-rt's `link.x` includes it.
//! The firmware crate's build script links its board binary with `link.x` and `defmt.x`.

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let board = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    std::fs::copy(board.join("memory.x"), out.join("memory.x")).expect("copy memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    // Relative to the board's directory.
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=../memory-x.rs");
}
