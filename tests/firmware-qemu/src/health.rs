//! Phases 1, 7 and 8: the watchdog's registers, the firmware's symbols, and the stack
//! high-water mark from a RAM dump.

use crate::Result;
use crate::options::Options;
use crate::qemu::Qemu;
use std::fs;
use std::process::Command;
use std::time::Duration;

/// The watchdog runs with reset enabled and is being fed: CTL has INTEN and RESEN, LOAD is one
/// second at 50 MHz, and the counter is reloaded (two reads a moment apart stay near LOAD).
pub(crate) fn check_watchdog(qemu: &Qemu) -> Result<()> {
    const WATCHDOG: u32 = 0x4000_0000;
    let load = qemu.read_word(WATCHDOG)?;
    let control = qemu.read_word(WATCHDOG + 8)?;
    ensure!(
        control & 0b11 == 0b11,
        "watchdog CTL {control:#x}: counting with reset enabled expected"
    );
    ensure!(
        load == 50_000_000,
        "watchdog LOAD {load}, expected 1 s at 50 MHz"
    );
    std::thread::sleep(Duration::from_millis(1200));
    let interrupt = qemu.read_word(WATCHDOG + 0x10)?;
    ensure!(
        interrupt & 1 == 0,
        "watchdog expired once (RIS {interrupt:#x}): the firmware does not feed it"
    );
    println!(
        "ok  watchdog: counting with reset enabled, 1 s per expiry, fed (no expiry after 1.2 s)"
    );
    Ok(())
}

/// The firmware's symbol table, as `nm` prints it.
pub(crate) fn symbol_table(options: &Options) -> Result<String> {
    let nm = options.nm.clone().unwrap_or_else(|| "llvm-nm".into());
    let output = Command::new(&nm)
        .arg(&options.firmware)
        .output()
        .map_err(|e| format!("{nm}: {e}"))?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The address of `name` in an `nm` listing.
pub(crate) fn symbol(symbols: &str, name: &str) -> Result<u64> {
    symbols
        .lines()
        .find(|line| line.ends_with(&format!(" {name}")))
        .and_then(|line| u64::from_str_radix(line.split_whitespace().next()?, 16).ok())
        .ok_or(format!("symbol {name} not found by nm"))
}

/// The deepest stack use, from a RAM dump and the ELF's `_stack_end`/`_stack_start`.
pub(crate) fn stack_high_water(qemu: &Qemu, options: &Options) -> Result<u64> {
    let symbols = symbol_table(options)?;
    let bottom = symbol(&symbols, "_stack_end")?;
    let top = symbol(&symbols, "_stack_start")?;
    let dump = options.workdir.join("ram.bin");
    let _ = fs::remove_file(&dump);
    qemu.monitor(&format!(
        "pmemsave 0x20000000 0x10000 \"{}\"",
        dump.display()
    ))?;
    let ram = fs::read(&dump).map_err(|e| format!("RAM dump: {e}"))?;
    let offset = |address: u64| usize::try_from(address - 0x2000_0000).unwrap_or(usize::MAX);
    let region = ram
        .get(offset(bottom)..offset(top))
        .ok_or("stack region outside the RAM dump")?;
    let untouched = region
        .chunks_exact(4)
        .take_while(|word| *word == [0xCC; 4])
        .count()
        * 4;
    Ok(top - bottom - untouched as u64)
}
