//! `xdpsieve run --config FILE` over a veth pair: the interface, the rules, the capture and
//! the event log all come from the file (its relative paths from its directory); a reload
//! reads the file's rules again and refuses a broken file; a flag given on the command
//! line overrides the file's key.

use std::{path::Path, time::Duration};

use pcap_file::pcapng::{Block, PcapNgReader};
use xdpsieve_netns::VethPair;
use xdpsieve_testkit::{
    fwnet::{ALLOWED_PORT, DROPPED_PORT, Net},
    gate::root_or_skip,
    tempdir::TempDir,
    udp::received,
};

use crate::{run_config, text};

/// The UDP destination port of each packet of a pcapng file (Ethernet, IPv4).
fn pcapng_dst_ports(path: &Path) -> Vec<u16> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = PcapNgReader::new(file).expect("a pcapng file");
    let mut ports = Vec::new();
    while let Some(block) = reader.next_block() {
        if let Block::EnhancedPacket(packet) = block.expect("pcapng block") {
            let frame = &packet.data;
            assert_eq!(u16::from_be_bytes([frame[12], frame[13]]), 0x0800, "IPv4");
            let l4 = 14 + usize::from(frame[14] & 0x0f) * 4;
            ports.push(u16::from_be_bytes([frame[l4 + 2], frame[l4 + 3]]));
        }
    }
    ports
}

/// The configuration of these runs: fw0, `port` dropped by a rule named `name`, dropped
/// packets captured as pcapng and logged as JSON, beside the file.
fn config(name: &str, port: u16) -> String {
    format!(
        "interfaces = [\"{}\"]\n\
         [capture]\nfile = \"drops.pcapng\"\nformat = \"pcapng\"\n\
         [log]\nwhich = \"dropped\"\nformat = \"json\"\nfile = \"events.jsonl\"\n\
         [[rule]]\nname = \"{name}\"\naction = \"drop\"\nprotocol = \"udp\"\ndst_port = {port}\n",
        VethPair::FW_IF
    )
}

#[test]
fn run_config_filters_captures_and_logs_what_the_file_says_and_reloads_its_rules() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create(crate::BINARY, "cfgrun");
    let (dropped, allowed) = net.sockets();
    let tmp = TempDir::new("cfg-run");
    let file = tmp.file("xdpsieve.toml");
    std::fs::write(&file, config("dropped-port", DROPPED_PORT)).unwrap();
    let run = run_config(&net, &file, &[]);
    net.send(DROPPED_PORT, 20);
    net.send(ALLOWED_PORT, 10);
    assert_eq!(
        received(&dropped),
        0,
        "the file's rule let datagrams through"
    );
    assert_eq!(received(&allowed), 10, "the allowed port lost datagrams");

    // Edited, the file's rules are read again by a reload; the other keys stay.
    std::fs::write(&file, config("allowed-port", ALLOWED_PORT)).unwrap();
    let out = net.xdpsieve(&["reload", "-i", VethPair::FW_IF]);
    let (said, err) = text(&out);
    assert!(out.status.success(), "{said}{err}");
    assert!(
        said.contains("generation 2 in force on fw0 (1 rules"),
        "{said}"
    );
    net.send(DROPPED_PORT, 10);
    net.send(ALLOWED_PORT, 10);
    assert_eq!(
        received(&dropped),
        10,
        "the reloaded rules still drop the old port"
    );
    assert_eq!(
        received(&allowed),
        0,
        "the reloaded rule let datagrams through"
    );

    // A broken file fails the reload (naming the line) and the rules in force stay.
    let broken =
        config("allowed-port", ALLOWED_PORT).replace("[log]\n", "[log]\nwhihc = \"all\"\n");
    std::fs::write(&file, broken).unwrap();
    let out = net.xdpsieve(&["reload", "-i", VethPair::FW_IF]);
    let (said, err) = text(&out);
    assert!(!out.status.success(), "{said}{err}");
    assert!(
        err.contains("xdpsieve.toml:6:1: unknown key `whihc`"),
        "{err}"
    );
    net.send(ALLOWED_PORT, 5);
    assert_eq!(received(&allowed), 0, "a failed reload opened the port");

    let out = run.signal(libc::SIGINT);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("35 packets captured"), "{stderr}");
    assert!(!net.pin_paths().0.exists(), "the stop left pins");

    // Captured and logged where the file says, relative to its directory.
    let ports = pcapng_dst_ports(&tmp.file("drops.pcapng"));
    let expected: Vec<u16> = [DROPPED_PORT; 20]
        .into_iter()
        .chain([ALLOWED_PORT; 15])
        .collect();
    assert_eq!(ports, expected);
    let log = std::fs::read_to_string(tmp.file("events.jsonl")).expect("the event log");
    let rules: Vec<String> = log
        .lines()
        .map(|l| {
            let event: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert_eq!(event["verdict"], "DROP", "{l}");
            event["rule"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    let expected: Vec<&str> = ["dropped-port"; 20]
        .into_iter()
        .chain(["allowed-port"; 15])
        .collect();
    assert_eq!(rules, expected);
}

#[test]
fn a_flag_on_the_command_line_overrides_the_files_key() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create(crate::BINARY, "cfgflag");
    let (dropped, _allowed) = net.sockets();
    let tmp = TempDir::new("cfg-flag");
    let file = tmp.file("xdpsieve.toml");
    // The file names an interface that does not exist and a capture file; the command line
    // gives the interface and another capture file, and the file's format stays.
    std::fs::write(
        &file,
        format!(
            "interfaces = [\"nosuch9\"]\n[capture]\nfile = \"file.pcapng\"\nformat = \"pcapng\"\n\
             [[rule]]\naction = \"drop\"\nprotocol = \"udp\"\ndst_port = {DROPPED_PORT}\n"
        ),
    )
    .unwrap();
    let cli_capture = tmp.file("cli.pcapng");
    let run = run_config(
        &net,
        &file,
        &["-i", VethPair::FW_IF, "-w", cli_capture.to_str().unwrap()],
    );
    net.send(DROPPED_PORT, 5);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(received(&dropped), 0);
    let out = run.signal(libc::SIGINT);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(pcapng_dst_ports(&cli_capture), [DROPPED_PORT; 5]);
    assert!(
        !tmp.file("file.pcapng").exists(),
        "the file's capture path was used"
    );
}
