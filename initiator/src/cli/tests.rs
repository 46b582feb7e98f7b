//! Tests of the command line, over the simulated transport.

use super::*;
use crate::Error;
use crate::sim::{INITIATOR_MAC, SimTransport};
use aoe_core::wire::EthernetAddress;
use aoe_net::LinkSpec;

fn parse(args: &str) -> Result<Cli, Usage> {
    Cli::parse(args.split_whitespace().map(str::to_string))
}

#[test]
fn parses_targets_macs_and_sizes() {
    assert_eq!(parse_target("7.1"), Ok((7, 1)));
    assert_eq!(parse_target("e65534.254"), Ok((65534, 254)));
    assert!(parse_target("7").is_err());
    assert!(parse_target("7.256").is_err());
    assert!(parse_target("65535.1").is_err());
    assert!(parse_target("7.255").is_err());
    let mac = EthernetAddress([0x02, 0, 0, 0, 0, 0xab]);
    assert_eq!(parse_mac("02:00:00:00:00:ab"), Ok(mac));
    assert_eq!(parse_mac("0200000000AB"), Ok(mac));
    assert!(parse_mac("02:00:00:00:00").is_err());
    assert!(parse_mac("02:00:00:00:00:zz").is_err());
    assert_eq!(parse_size("4096"), Ok(4096));
    assert_eq!(parse_size("4k"), Ok(4096));
    assert_eq!(parse_size("1MiB"), Ok(1 << 20));
    assert!(parse_size("lots").is_err());
}

#[test]
fn parses_commands_and_refuses_bad_lines() {
    let cli = parse("bench -i veth0 -t 7.1 --mode rand-write --bs 4k --qd 64 --json").unwrap();
    assert_eq!(cli.command, Command::Bench);
    assert_eq!(cli.mode, BenchMode::RandWrite);
    assert_eq!((cli.bs, cli.qd, cli.json), (Some(4096), 64, true));
    assert_eq!(cli.link, Some(LinkSpec::packet("veth0")));
    let cli = parse("mask add 02:00:00:00:00:01 020000000002 -i x -t 1.2").unwrap();
    assert!(matches!(cli.command, Command::MaskEdit(ref e) if e.len() == 2));
    assert_eq!(
        parse("discover --tap tap0").unwrap().command,
        Command::Discover
    );
    assert_eq!(parse("").unwrap().command, Command::Help);
    // A command's --help is that command's help, not the global one.
    assert_eq!(
        parse("read --help").unwrap().command,
        Command::CommandHelp("read")
    );
    assert_eq!(
        parse("--help config").unwrap().command,
        Command::CommandHelp("config")
    );
    assert_eq!(parse("--help-man").unwrap().command, Command::ManPage);
    for bad in [
        "identify -t 1.1",
        "identify -i x",
        "frobnicate -i x -t 1.1",
        "read -i x -t 1.1",
        "bench -i x -t 1.1 --bs 1000",
        "bench -i x -t 1.1 --qd 0",
        "bench -i x -t 1.1 --mode sideways",
        "identify -i x -t 1.1 --bogus",
        "identify -i x -t 1.1 --timeout",
        "config -i x -t 1.1",
        "mask add -i x -t 1.1",
        "identify -i a,b -t 1.1",
        "identify -i a -i b -t 1.1",
        "kernel stat -i eth0",
        "kernel frob",
        "kernel revalidate",
        "kernel revalidate e1",
        "kernel flush --all e1.1",
        "config test -t 1.1",
        "reserve list extra -i x -t 1.1",
        "frobnicate --help",
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn parses_the_admin_commands() {
    let cli = parse("discover -i a,b -i c").unwrap();
    assert_eq!(
        cli.links,
        vec![
            LinkSpec::packet("a"),
            LinkSpec::packet("b"),
            LinkSpec::packet("c")
        ]
    );
    assert_eq!(cli.link, Some(LinkSpec::packet("a")));
    assert_eq!(parse("discover").unwrap().links, vec![]);
    assert_eq!(
        parse("reserve list -i x -t 1.1").unwrap().command,
        Command::ReserveList
    );
    assert_eq!(
        parse("config test rack -i x").unwrap().command,
        Command::ConfigTest("rack".into())
    );
    assert_eq!(
        parse("config prefix ra -i x -t 1.1").unwrap().command,
        Command::ConfigPrefix("ra".into())
    );
    let cli = parse("ping -i x -t 1.1 --smart --count 5").unwrap();
    assert_eq!(
        (cli.command, cli.smart, cli.count),
        (Command::Ping, true, Some(5))
    );
    assert_eq!(
        parse("kernel stat").unwrap().command,
        Command::Kernel(KernelCommand::Stat)
    );
    assert_eq!(
        parse("kernel flush --all").unwrap().command,
        Command::Kernel(KernelCommand::Flush {
            all: true,
            devices: vec![]
        })
    );
    assert_eq!(
        parse("kernel revalidate e1.2 3.4").unwrap().command,
        Command::Kernel(KernelCommand::Revalidate(vec![
            "e1.2".into(),
            "e3.4".into()
        ]))
    );
    assert_eq!(
        parse("read - -i x -t 1.1").unwrap().command,
        Command::Read("-".into())
    );
}

fn run_sim(link: &mut SimTransport, args: &str) -> Result<String, Error> {
    let cli = parse(&format!("{args} -i sim")).unwrap();
    let mut out = Vec::new();
    run_on(&cli, link, &mut out)?;
    Ok(String::from_utf8(out).unwrap())
}

#[test]
fn commands_run_against_a_simulated_target() {
    let mut link = SimTransport::new(7, 1, 4096, 16, 1500);
    let text = run_sim(&mut link, "discover --wait 0.2 --json").unwrap();
    assert!(
        text.contains("\"target\":\"e7.1\"") && text.contains("\"sectors\":4096"),
        "{text}"
    );
    let text = run_sim(&mut link, "identify -t 7.1").unwrap();
    assert!(text.contains("4096 sectors"), "{text}");
    let text = run_sim(&mut link, "identify -t 7.1 --json").unwrap();
    assert!(text.contains("\"sectors_per_frame\":2,"), "{text}");
    let text = run_sim(
        &mut link,
        "verify -t 7.1 --lba 8 --count 30 --seed 2 --json",
    )
    .unwrap();
    // 30 sectors verified: written and read back, 60 moved.
    assert!(
        text.starts_with("{\"op\":\"verify\",\"sectors\":30,\"moved_sectors\":60,")
            && text.ends_with(",\"seed\":2,\"lba\":8,\"count\":30,\"ok\":true}\n"),
        "{text}"
    );
    run_sim(&mut link, "config set hello -t 7.1").unwrap();
    assert_eq!(run_sim(&mut link, "config get -t 7.1").unwrap(), "hello\n");
    let text = run_sim(&mut link, "reserve -t 7.1 --json").unwrap();
    assert_eq!(text, "{\"reserve\":[\"02:00:00:00:ae:02\"]}\n");
    assert_eq!(mac_text(INITIATOR_MAC), "02:00:00:00:ae:02");
    run_sim(&mut link, "release -t 7.1").unwrap();
    let text = run_sim(&mut link, "verify -t 7.1 --seed 5").unwrap();
    assert!(text.contains("all match"), "{text}");
    let text = run_sim(
        &mut link,
        "bench -t 7.1 --mode rand-read --requests 100 --json",
    )
    .unwrap();
    assert!(
        text.contains("\"requests\":100") && text.contains("\"retransmits\":0"),
        "{text}"
    );
    let err = run_sim(&mut link, "verify -t 7.1 --lba 4096").unwrap_err();
    assert!(err.to_string().contains("beyond"), "{err}");
    let err = run_sim(&mut link, "identify -t 7.2 --timeout 1").unwrap_err();
    assert!(matches!(err, Error::NoAnswer { .. }), "{err}");
}

#[test]
fn write_log_and_check_log_round_trip_through_the_command_line() {
    let cli = parse("check-log disk.img --log w.log").unwrap();
    assert_eq!(cli.command, Command::CheckLog("disk.img".into()));
    assert!(parse("check-log disk.img").unwrap_err().0.contains("--log"));
    assert!(parse("check-log").is_err());
    let cli = parse("write-log -i x -t 1.2 --seed 9 --qd 8 --log out.log").unwrap();
    assert_eq!(cli.command, Command::WriteLog);
    assert_eq!((cli.seed, cli.qd), (Some(9), 8));

    let dir = std::env::temp_dir().join(format!("aoe-writelog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("w.log");
    let image = dir.join("disk.img");
    let mut link = SimTransport::new(7, 1, 4096, 16, 1500);
    let args = format!(
        "write-log -t 7.1 --lba 64 --count 1024 --requests 300 --seed 3 --log {}",
        log.display()
    );
    run_sim(&mut link, &args).unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 301, "header and 300 ACK lines");
    let err = run_sim(
        &mut link,
        &format!("write-log -t 7.1 --bs 4k --log {}", log.display()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("at most one frame"), "{err}");
    // The run above was refused before it wrote: the log of 300 is intact.
    std::fs::write(&log, &text).unwrap();
    std::fs::write(&image, link.target.disk().as_bytes()).unwrap();
    let check = parse(&format!(
        "check-log {} --log {}",
        image.display(),
        log.display()
    ))
    .unwrap();
    let Command::CheckLog(path) = &check.command else {
        panic!()
    };
    let report = commands::check_log(&check, path).unwrap();
    assert!(
        report.ends_with("acked 300, present 300, lost 0\n"),
        "{report}"
    );
    std::fs::write(&image, vec![0u8; 4096 * 512]).unwrap();
    let err = commands::check_log(&check, path).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("300 acknowledged writes are not in"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn admin_fixes_against_a_simulated_target() {
    let mut link = SimTransport::new(7, 1, 4096, 16, 1500);
    // verify reports the range, not twice it.
    let text = run_sim(&mut link, "verify -t 7.1 --count 64 --seed 3").unwrap();
    assert!(
        text.contains("sectors 0..64") && text.contains("verify: 64 sectors, 128 sectors moved"),
        "{text}"
    );
    // read into /dev/null: no "sync /dev/null" failure at the end.
    let text = run_sim(&mut link, "read /dev/null -t 7.1 --count 16").unwrap();
    assert!(text.starts_with("read: 16 sectors"), "{text}");
    // read - writes the sectors to standard output (here: `out`), nothing else.
    run_sim(&mut link, "verify -t 7.1 --count 4 --seed 9").unwrap();
    let cli = parse("read - -t 7.1 --count 4 -i sim").unwrap();
    let mut out = Vec::new();
    run_on(&cli, &mut link, &mut out).unwrap();
    assert_eq!(out.len(), 4 * 512);
    let mut expected = vec![0u8; 512];
    crate::work::pattern_sector(2, 9, &mut expected);
    assert_eq!(&out[1024..1536], &expected[..]);
    // The reserve list is read without taking the reservation.
    assert_eq!(
        run_sim(&mut link, "reserve list -t 7.1").unwrap(),
        "reserve list empty\n"
    );
    assert!(link.target.reservations().is_empty());
    let other = EthernetAddress([2, 0, 0, 0, 0, 0x77]);
    run_sim(&mut link, "reserve 02:00:00:00:00:77 -t 7.1").unwrap();
    assert_eq!(
        run_sim(&mut link, "reserve list -t 7.1 --json").unwrap(),
        "{\"reserve\":[\"02:00:00:00:00:77\"]}\n"
    );
    assert_eq!(link.target.reservations(), &[other]);
    // AoE error 6 on release and on I/O, with what to do about it.
    let err = run_sim(&mut link, "release -t 7.1")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("AoE error 6") && err.contains("--force takes it over"),
        "{err}"
    );
    let err = run_sim(&mut link, "read /dev/null -t 7.1 --count 2")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("AoE error 6") && err.contains("reserve list"),
        "{err}"
    );
    run_sim(&mut link, "release --force -t 7.1").unwrap();
    // AoE error 4 after a conditional set, with the --force hint.
    run_sim(&mut link, "config set first -t 7.1").unwrap();
    let err = run_sim(&mut link, "config set second -t 7.1")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("config string present") && err.contains("--force replaces it"),
        "{err}"
    );
    // config test / prefix: the matching targets, and exit status 1 (an error) for none.
    let text = run_sim(&mut link, "config test first --wait 0.2").unwrap();
    assert_eq!(text, "e7.1 02:00:00:00:ae:01 \"first\"\n");
    let text = run_sim(&mut link, "config prefix fi --wait 0.2 --json").unwrap();
    assert_eq!(
        text,
        "[{\"target\":\"e7.1\",\"mac\":\"02:00:00:00:ae:01\",\"config\":\"first\"}]\n"
    );
    let err = run_sim(&mut link, "config test fir --wait 0.2").unwrap_err();
    assert!(
        err.to_string()
            .contains("no target whose config string is \"fir\""),
        "{err}"
    );
    assert!(run_sim(&mut link, "config prefix x -t 7.1 --wait 0.2").is_err());
    // ping with SMART: the engine answers RETURN STATUS with no threshold exceeded.
    let text = run_sim(&mut link, "ping -t 7.1 --count 2 --smart").unwrap();
    assert!(
        text.contains("2 sent, 2 answered") && text.contains("SMART: ok"),
        "{text}"
    );
    let json = run_sim(&mut link, "ping -t 7.1 --count 1 --smart --json").unwrap();
    assert!(
        json.contains("\"answered\":1") && json.contains("\"smart\":\"ok\""),
        "{json}"
    );
    // write - reads standard input: here an empty one, refused.
    // An empty discovery fails in text and JSON alike.
    let mut nobody = SimTransport::new(7, 1, 64, 16, 1500);
    for args in [
        "discover -t 9.9 --wait 0.2",
        "discover -t 9.9 --wait 0.2 --json",
    ] {
        let cli = parse(&format!("{args} -i sim")).unwrap();
        let mut out = Vec::new();
        let err = run_on(&cli, &mut nobody, &mut out).unwrap_err();
        assert!(matches!(err, Error::NoAnswer { .. }), "{args}: {err}");
        let printed = String::from_utf8(out).unwrap();
        if args.ends_with("--json") {
            assert_eq!(printed, "[]\n");
        } else {
            assert_eq!(printed, "");
        }
    }
}
