//! The `aoe` help, as data: the commands and options, each written once, rendered as the
//! global `aoe --help`, as each command's `aoe COMMAND --help`, and (through `aoe-manpage`) as
//! the man page `aoe --help-man` prints. Nothing else holds help text, so they cannot drift.

use aoe_manpage::Page;

/// One command (or a group of sub-commands that share a `--help` page).
pub(super) struct CommandDoc {
    /// The word that selects it (`config`, `kernel`, ...).
    pub name: &'static str,
    /// Its lines in the command list: the form, and what it does (lines after the first
    /// continue the text).
    pub forms: &'static [(&'static str, &'static str)],
    /// Whether it talks to a target (`-t`) or only needs an interface.
    pub needs: Needs,
    /// The keys of the options it takes, besides `-i`, `-t`, `--timeout` and `--json`.
    pub options: &'static [&'static str],
}

/// What a command needs on its command line.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Needs {
    /// An interface and a target.
    Target,
    /// Interfaces (all AoE-capable ones if none is given).
    Interfaces,
    /// An interface; a target is optional.
    InterfaceMaybeTarget,
    /// Nothing from the network: the kernel driver's files.
    Kernel,
    /// Nothing from the network: files only.
    Offline,
}

/// One option: its key (the long name), how it is written, and what it does.
pub(super) struct OptionDoc {
    pub key: &'static str,
    pub form: &'static str,
    pub text: &'static str,
}

pub(super) const COMMANDS: &[CommandDoc] = &[
    CommandDoc {
        name: "discover",
        forms: &[(
            "discover",
            "list every target that answers, on every AoE-capable interface (up,\n\
             Ethernet, not loopback) or on the -i ones; -t narrows the search; a\n\
             shelf.slot answered twice (two MACs, or two answers from one MAC) is\n\
             marked CONFLICT",
        )],
        needs: Needs::Interfaces,
        options: &["wait"],
    },
    CommandDoc {
        name: "identify",
        forms: &[(
            "identify",
            "IDENTIFY DEVICE: capacity, model, serial, firmware",
        )],
        needs: Needs::Target,
        options: &[],
    },
    CommandDoc {
        name: "ping",
        forms: &[(
            "ping",
            "Query Config round trips to the target (--count, default 3); with\n\
             --smart also SMART RETURN STATUS (aoeping -S return_status)",
        )],
        needs: Needs::Target,
        options: &["count", "smart"],
    },
    CommandDoc {
        name: "config",
        forms: &[
            ("config get", "read the config string"),
            (
                "config set STRING",
                "set it if empty (AoE error 4 otherwise); --force replaces it",
            ),
            (
                "config test STRING",
                "list the targets whose config string is exactly STRING (all\n\
                 targets, or -t); exit status 1 if none",
            ),
            (
                "config prefix STRING",
                "list the targets whose config string starts with STRING",
            ),
        ],
        needs: Needs::InterfaceMaybeTarget,
        options: &["force", "wait"],
    },
    CommandDoc {
        name: "mask",
        forms: &[
            (
                "mask list",
                "the MAC mask list (empty: everyone may talk to the target)",
            ),
            ("mask add MAC...", "add MACs to the mask list"),
            ("mask del MAC...", "remove MACs from it"),
        ],
        needs: Needs::Target,
        options: &[],
    },
    CommandDoc {
        name: "reserve",
        forms: &[
            ("reserve list", "the reserve list, without changing it"),
            (
                "reserve [MAC...]",
                "reserve the target for these MACs (default: ours); --force takes\n\
                 it from another initiator",
            ),
        ],
        needs: Needs::Target,
        options: &["force"],
    },
    CommandDoc {
        name: "release",
        forms: &[(
            "release",
            "empty the reserve list; --force also when another initiator holds it",
        )],
        needs: Needs::Target,
        options: &["force"],
    },
    CommandDoc {
        name: "read",
        forms: &[(
            "read FILE",
            "read sectors into FILE (- for standard output; then the summary goes\n\
             to standard error)",
        )],
        needs: Needs::Target,
        options: &["lba", "count"],
    },
    CommandDoc {
        name: "write",
        forms: &[(
            "write FILE",
            "write FILE (- for standard input) to the target, then FLUSH CACHE; the\n\
             last sector is padded with zeros",
        )],
        needs: Needs::Target,
        options: &["lba", "count"],
    },
    CommandDoc {
        name: "verify",
        forms: &[(
            "verify",
            "write a pattern over [--lba, --count], flush, read it back and\n\
             compare; with --file FILE, only compare the target with FILE",
        )],
        needs: Needs::Target,
        options: &["lba", "count", "seed", "file"],
    },
    CommandDoc {
        name: "bench",
        forms: &[(
            "bench",
            "measure MB/s, IOPS, p50/p99 latency and retransmits",
        )],
        needs: Needs::Target,
        options: &[
            "lba", "count", "mode", "bs", "qd", "window", "seconds", "requests", "seed",
        ],
    },
    CommandDoc {
        name: "write-log",
        forms: &[(
            "write-log",
            "random non-overlapping writes of unique content over [--lba, --count],\n\
             one line 'ACK seq lba sectors' per acknowledged write to --log FILE\n\
             (or stdout), unbuffered; runs --seconds or until the region is used up\n\
             (the power-cut test's initiator)",
        )],
        needs: Needs::Target,
        options: &[
            "lba", "count", "bs", "qd", "seconds", "requests", "seed", "log",
        ],
    },
    CommandDoc {
        name: "check-log",
        forms: &[(
            "check-log IMAGE",
            "check that every write --log FILE acknowledged is in IMAGE (the export's\n\
             sectors from 0); exit 1 if one is lost (no -i, -t)",
        )],
        needs: Needs::Offline,
        options: &["log"],
    },
    CommandDoc {
        name: "kernel",
        forms: &[
            (
                "kernel stat",
                "the Linux aoe driver's devices: size, state, interface, payload,\n\
                 firmware and MAC, from sysfs (aoe-stat)",
            ),
            (
                "kernel flush [--all | eS.L...]",
                "drop devices from the driver: those that are down, --all unused\n\
                 ones, or the ones named (aoe-flush)",
            ),
            (
                "kernel revalidate eS.L...",
                "ask the driver to query the targets again (aoe-revalidate)",
            ),
            (
                "kernel discover",
                "make the driver broadcast a discovery (aoe-discover)",
            ),
            (
                "kernel interfaces [IFACE...]",
                "show, or set, the interfaces the driver may use (aoe-interfaces)",
            ),
        ],
        needs: Needs::Kernel,
        options: &["all"],
    },
];

pub(super) const OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        key: "interface",
        form: "-i, --interface IFACE",
        text: "network interface (AF_PACKET; needs CAP_NET_RAW); discover takes\n\
               several (-i a -i b, or -i a,b)",
    },
    OptionDoc {
        key: "tap",
        form: "--tap NAME",
        text: "use a TAP device instead of -i",
    },
    OptionDoc {
        key: "target",
        form: "-t, --target SHELF.SLOT",
        text: "the target, e.g. 7.1 or e7.1",
    },
    OptionDoc {
        key: "lba",
        form: "--lba N",
        text: "first sector [0]",
    },
    OptionDoc {
        key: "count",
        form: "--count N",
        text: "sectors [to the end of the target, or the file's size]; ping: round\n\
               trips [3]",
    },
    OptionDoc {
        key: "timeout",
        form: "--timeout SECONDS",
        text: "give up when a request is unanswered this long [10]",
    },
    OptionDoc {
        key: "wait",
        form: "--wait SECONDS",
        text: "discover, config test|prefix: how long to collect answers [1]",
    },
    OptionDoc {
        key: "force",
        form: "--force",
        text: "config set, reserve, release: override",
    },
    OptionDoc {
        key: "smart",
        form: "--smart",
        text: "ping: also ask SMART RETURN STATUS",
    },
    OptionDoc {
        key: "all",
        form: "--all",
        text: "kernel flush: every device that is not open",
    },
    OptionDoc {
        key: "seed",
        form: "--seed N",
        text: "verify: pattern seed [from the clock]; bench: random offsets",
    },
    OptionDoc {
        key: "file",
        form: "--file FILE",
        text: "verify: compare with FILE instead of writing a pattern",
    },
    OptionDoc {
        key: "json",
        form: "--json",
        text: "machine-readable output (one JSON value on stdout)",
    },
    OptionDoc {
        key: "mode",
        form: "--mode MODE",
        text: "bench: seq-read, seq-write, rand-read or rand-write [seq-read]",
    },
    OptionDoc {
        key: "bs",
        form: "--bs SIZE",
        text: "bench: request size in bytes, a multiple of 512 (k, m suffixes)\n\
               [one full frame for seq, 4k for rand]",
    },
    OptionDoc {
        key: "qd",
        form: "--qd N",
        text: "bench: requests in flight [16]",
    },
    OptionDoc {
        key: "window",
        form: "--window N",
        text: "bench: frames in flight [the target's buffer count]",
    },
    OptionDoc {
        key: "seconds",
        form: "--seconds S",
        text: "bench: duration [5]",
    },
    OptionDoc {
        key: "requests",
        form: "--requests N",
        text: "bench: stop after N requests",
    },
    OptionDoc {
        key: "log",
        form: "--log FILE",
        text: "write-log: where the log goes [stdout]; check-log: the log to check",
    },
    OptionDoc {
        key: "help",
        form: "-h, --help",
        text: "this text; after a command, that command's help",
    },
    OptionDoc {
        key: "version",
        form: "-V, --version",
        text: "the version",
    },
];

/// The column where descriptions start.
const COLUMN: usize = 30;

/// `  TERM` padded to the column, then the text; continuation lines indented to the column.
fn definition(out: &mut String, term: &str, text: &str) {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    if term.len() + 2 >= COLUMN {
        out.push_str(&format!("  {term}\n{:COLUMN$}{first}\n", ""));
    } else {
        out.push_str(&format!("  {term:<width$}{first}\n", width = COLUMN - 2));
    }
    for line in lines {
        out.push_str(&format!("{:COLUMN$}{}\n", "", line.trim_start()));
    }
}

fn option_doc(key: &str) -> Option<&'static OptionDoc> {
    OPTIONS.iter().find(|option| option.key == key)
}

/// The command documented under `name`.
pub(super) fn command_doc(name: &str) -> Option<&'static CommandDoc> {
    COMMANDS.iter().find(|command| command.name == name)
}

const EXIT_STATUS: &str = "\
exit status:
  0                           success
  1                           the operation failed: no answer, an AoE error code, an ATA
                              status/error, a mismatch, a file error; discover and config
                              test|prefix when no target answered
  2                           a bad command line
";

const FOOTER: &str = "\
Requests carry min((MTU - 36) / 512, target's limit) sectors; the window of frames in flight
never exceeds the target's advertised buffer count; a frame unanswered within the adaptive
timeout is sent again with a new tag. Targets on the same host and interface cannot be
reached: a raw socket does not see frames its own host sends there.
";

/// `aoe --help`.
pub(super) fn global() -> String {
    let mut out = String::from(
        "usage: aoe COMMAND [-i IFACE] [-t SHELF.SLOT] [OPTIONS]\n\
         \x20      aoe COMMAND --help\n\n\
         Check and drive ATA over Ethernet targets from userspace, without a kernel driver,\n\
         and look after the Linux aoe driver's devices.\n\ncommands:\n",
    );
    for command in COMMANDS.iter().filter(|c| c.needs != Needs::Kernel) {
        for (form, text) in command.forms {
            definition(&mut out, form, text);
        }
    }
    out.push_str("\nkernel driver (/dev/etherd, /sys/block/etherd!*; no network, no -i):\n");
    for command in COMMANDS.iter().filter(|c| c.needs == Needs::Kernel) {
        for (form, text) in command.forms {
            definition(&mut out, form, text);
        }
    }
    out.push_str("\noptions:\n");
    for option in OPTIONS {
        definition(&mut out, option.form, option.text);
    }
    out.push('\n');
    out.push_str(EXIT_STATUS);
    out.push('\n');
    out.push_str(FOOTER);
    out
}

/// `aoe COMMAND --help`.
pub(super) fn for_command(command: &CommandDoc) -> String {
    let common: &[&str] = match command.needs {
        Needs::Target => &["interface", "tap", "target", "timeout", "json"],
        Needs::Interfaces => &["interface", "tap", "target", "json"],
        Needs::InterfaceMaybeTarget => &["interface", "tap", "target", "timeout", "json"],
        Needs::Kernel => &["json"],
        Needs::Offline => &[],
    };
    let address = match command.needs {
        Needs::Target => " -i IFACE -t SHELF.SLOT",
        Needs::Interfaces => " [-i IFACE...] [-t SHELF.SLOT]",
        Needs::InterfaceMaybeTarget => " -i IFACE [-t SHELF.SLOT]",
        Needs::Kernel | Needs::Offline => "",
    };
    let mut out = String::new();
    for (index, (form, _)) in command.forms.iter().enumerate() {
        let lead = if index == 0 { "usage: " } else { "       " };
        out.push_str(&format!("{lead}aoe {form}{address} [OPTIONS]\n"));
    }
    out.push('\n');
    for (form, text) in command.forms {
        definition(&mut out, form, text);
    }
    out.push_str("\noptions:\n");
    for key in common.iter().chain(command.options) {
        if let Some(option) = option_doc(key) {
            definition(&mut out, option.form, option.text);
        }
    }
    out
}

/// `aoe --help-man`: the man page, made from [`global`].
pub(super) fn man_page() -> String {
    let source = format!("vblade-rs {}", env!("CARGO_PKG_VERSION"));
    aoe_manpage::render(
        &Page {
            name: "aoe",
            section: "8",
            summary: "check and drive ATA over Ethernet targets and the Linux aoe driver",
            source: &source,
            manual: "System Administration",
        },
        &global(),
    )
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn every_option_a_command_names_is_documented() {
        for command in COMMANDS {
            for key in command.options {
                assert!(option_doc(key).is_some(), "{}: --{key}", command.name);
            }
            let help = for_command(command);
            assert!(help.starts_with("usage: aoe "), "{help}");
            for (form, _) in command.forms {
                assert!(help.contains(form), "{form} in\n{help}");
            }
        }
    }

    #[test]
    fn the_man_page_says_what_the_help_says() {
        let page = man_page();
        aoe_manpage::check_page(&global(), &page).unwrap();
        for command in COMMANDS {
            for (form, _) in command.forms {
                // roff writes a hyphen as `\-`.
                let first = form.split(' ').next().unwrap_or(form).replace('-', "\\-");
                assert!(page.contains(&first), "{form}");
            }
        }
    }
}
