//! `aoe`: a userspace ATA over Ethernet initiator for checking and benchmarking targets.
//! See `aoe --help` and `initiator/README.md`.

fn main() {
    std::process::exit(aoe_initiator::cli::main());
}
