//! `xdpsieve demo`: the whole product in one command, in a sandbox. Two network namespaces
//! joined by veth; the firewall runs in one with a rule dropping DNS responses (UDP source
//! port 53); the other sends real DNS responses over IPv4 and IPv6 plus ordinary traffic
//! that passes. Each drop is logged as it happens; then it shows the counters and
//! `tcpdump -r` reading the capture. The namespaces are removed at the end, also after Ctrl-C.

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use xdpsieve_netns::VethPair;

/// The client port the DNS responses are addressed to.
pub const CLIENT_PORT: u16 = 40000;
/// A port for ordinary traffic the rule lets through.
pub const OTHER_PORT: u16 = 40001;

/// A DNS response for `example.com. A 192.0.2.80`, as a resolver would send it.
pub fn dns_response(id: u16) -> Vec<u8> {
    let mut msg = Vec::with_capacity(64);
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&0x8180u16.to_be_bytes()); // response, recursion desired+available
    msg.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]); // 1 question, 1 answer
    msg.extend_from_slice(b"\x07example\x03com\x00");
    msg.extend_from_slice(&[0, 1, 0, 1]); // A, IN
    msg.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]); // name pointer, A, IN
    msg.extend_from_slice(&300u32.to_be_bytes());
    msg.extend_from_slice(&[0, 4, 192, 0, 2, 80]);
    msg
}

/// Runs the demo, writing the capture to `capture_path`.
pub fn run(capture_path: &Path, responses: u32) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the demo creates network namespaces and loads XDP: run it as root");
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&interrupted))?;
    }
    let exe = std::env::current_exe().context("locating the xdpsieve binary")?;
    println!("== xdpsieve demo ==");
    println!("Creating two network namespaces joined by a veth pair (192.0.2.0/24, 2001:db8::/64)");
    let net = VethPair::create("demo", None).context("creating the demo namespaces")?;
    println!(
        "  {}: {} {} {}",
        net.fw.name(),
        VethPair::FW_IF,
        VethPair::FW_V4,
        VethPair::FW_V6
    );
    println!(
        "  {}: {} {} {}",
        net.peer.name(),
        VethPair::PEER_IF,
        VethPair::PEER_V4,
        VethPair::PEER_V6
    );

    let capture = capture_path.to_string_lossy().into_owned();
    let args = [
        "run",
        "-i",
        VethPair::FW_IF,
        "--drop",
        "udp src port 53",
        "-w",
        &capture,
        "--log",
        "dropped",
    ];
    println!(
        "\nStarting the firewall in {}:\n  xdpsieve {}",
        net.fw.name(),
        shell_words(&args)
    );
    let mut firewall = net
        .fw
        .command(&exe.to_string_lossy())
        .args(args)
        .stdin(Stdio::null())
        .spawn()
        .context("starting `xdpsieve run` in the namespace")?;
    let result = drive(&net, &mut firewall, responses, &interrupted);
    // End the firewall we started (by its PID) whatever happened, so it flushes and reports.
    // SAFETY: kill on our own child's PID.
    unsafe { libc::kill(firewall.id() as i32, libc::SIGINT) };
    let status = firewall
        .wait()
        .context("waiting for the firewall to exit")?;
    result?;
    if !status.success() {
        bail!("the firewall exited with {status}");
    }
    if interrupted.load(Ordering::Relaxed) {
        bail!("interrupted");
    }

    println!("\nReading the capture back with tcpdump:\n  tcpdump -nn -r {capture}");
    match Command::new("tcpdump")
        .args(["-nn", "-r", &capture])
        .status()
    {
        Ok(s) if s.success() => {}
        Ok(s) => bail!("tcpdump -r exited with {s}"),
        Err(e) => println!("  (tcpdump not available: {e}; `cargo xtask setup` installs it)"),
    }
    println!("\nDone. The capture stays in {capture}; the namespaces are removed.");
    Ok(())
}

/// Waits for the firewall to attach, sends the traffic, and reports what arrived.
fn drive(
    net: &VethPair,
    firewall: &mut Child,
    responses: u32,
    interrupted: &AtomicBool,
) -> Result<()> {
    wait_attached(net, firewall, interrupted)?;
    let client = net
        .fw
        .run(|| -> std::io::Result<(UdpSocket, UdpSocket, UdpSocket)> {
            let bind = |ip: IpAddr, port| {
                let s = UdpSocket::bind(SocketAddr::new(ip, port))?;
                s.set_read_timeout(Some(Duration::from_millis(200)))?;
                Ok::<_, std::io::Error>(s)
            };
            Ok((
                bind(VethPair::FW_V4.into(), CLIENT_PORT)?,
                bind(VethPair::FW_V6.into(), CLIENT_PORT)?,
                bind(VethPair::FW_V4.into(), OTHER_PORT)?,
            ))
        })??;

    println!(
        "\nSending from {}: {responses} DNS responses over IPv4, {responses} over IPv6 \
         (UDP source port 53), and {responses} other UDP datagrams",
        net.peer.name()
    );
    net.peer.run(|| -> std::io::Result<()> {
        let dns4 = UdpSocket::bind(SocketAddr::new(VethPair::PEER_V4.into(), 53))?;
        let dns6 = UdpSocket::bind(SocketAddr::new(VethPair::PEER_V6.into(), 53))?;
        let other = UdpSocket::bind(SocketAddr::new(VethPair::PEER_V4.into(), 5000))?;
        for i in 0..responses {
            if interrupted.load(Ordering::Relaxed) {
                break;
            }
            let id = 0x1000 + i as u16;
            dns4.send_to(&dns_response(id), (VethPair::FW_V4, CLIENT_PORT))?;
            dns6.send_to(&dns_response(id), (VethPair::FW_V6, CLIENT_PORT))?;
            other.send_to(b"hello through the firewall", (VethPair::FW_V4, OTHER_PORT))?;
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    })??;

    let count = |socket: &UdpSocket| {
        let mut buf = [0u8; 2048];
        let mut n = 0;
        while socket.recv(&mut buf).is_ok() {
            n += 1;
        }
        n
    };
    let (dns4, dns6, other) = &client;
    println!(
        "Received in {}: {} DNS responses over IPv4, {} over IPv6, {} other datagrams",
        net.fw.name(),
        count(dns4),
        count(dns6),
        count(other)
    );
    println!("\nStopping the firewall (SIGINT); its summary follows:");
    Ok(())
}

fn wait_attached(net: &VethPair, firewall: &mut Child, interrupted: &AtomicBool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !interrupted.load(Ordering::Relaxed) {
        if let Some(status) = firewall.try_wait()? {
            bail!("the firewall exited before attaching ({status})");
        }
        let link = net.fw.ip(&["-d", "link", "show", "dev", VethPair::FW_IF])?;
        if link.contains("prog/xdp") {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("the firewall did not attach to {} in time", VethPair::FW_IF)
}

fn shell_words(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if a.contains(' ') {
                format!("'{a}'")
            } else {
                a.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
