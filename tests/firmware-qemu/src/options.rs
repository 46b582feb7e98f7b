//! The command line of the test driver.

use crate::Result;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) firmware: PathBuf,
    pub(crate) workdir: PathBuf,
    pub(crate) qemu: String,
    pub(crate) nm: Option<String>,
    pub(crate) seeds: Option<PathBuf>,
    pub(crate) image_bytes: u64,
    pub(crate) sdhc: bool,
    pub(crate) throughput_mib: u64,
    pub(crate) fuzz_frames: usize,
}

pub(crate) fn parse_options() -> Result<Options> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        firmware: PathBuf::new(),
        workdir: PathBuf::new(),
        qemu: "qemu-system-arm".into(),
        nm: None,
        seeds: None,
        image_bytes: 16 << 20,
        sdhc: false,
        throughput_mib: 2,
        fuzz_frames: 3000,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let number = |text: String| {
            text.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {text}"))
        };
        match flag.as_str() {
            "--firmware" => options.firmware = value()?.into(),
            "--workdir" => options.workdir = value()?.into(),
            "--qemu" => options.qemu = value()?,
            "--nm" => options.nm = Some(value()?),
            "--seeds" => options.seeds = Some(value()?.into()),
            "--image-mib" => options.image_bytes = number(value()?)? << 20,
            "--sdhc" => {
                options.sdhc = true;
                options.image_bytes = 4 << 30;
            }
            "--throughput-mib" => options.throughput_mib = number(value()?)?,
            "--fuzz-frames" => {
                options.fuzz_frames = usize::try_from(number(value()?)?).unwrap_or(usize::MAX)
            }
            "-h" | "--help" => {
                return Err(
                    "usage: blade-qemu-test --firmware ELF --workdir DIR [--qemu BIN] \
                     [--nm BIN] [--seeds DIR] [--image-mib N | --sdhc] [--throughput-mib N] \
                     [--fuzz-frames N]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument {other} (try --help)")),
        }
    }
    ensure!(
        !options.firmware.as_os_str().is_empty() && !options.workdir.as_os_str().is_empty(),
        "--firmware and --workdir are required (try --help)"
    );
    ensure!(
        options.image_bytes.is_power_of_two(),
        "QEMU's SD card needs a power-of-two image size"
    );
    Ok(options)
}
