//! `aoe`: a userspace ATA over Ethernet initiator for checking and benchmarking targets.
//! See `aoe --help` and `host-sim/INITIATOR.md`.

fn main() {
    std::process::exit(aoe_host_sim::initiator::cli::main());
}
