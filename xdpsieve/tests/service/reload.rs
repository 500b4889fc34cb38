//! The unit's `ExecReload=`, `xdpsieve reload --config FILE`, acts on the firewall the file
//! started even when another xdpsieve runs in the same namespace, where a bare `reload`
//! cannot tell which to ask (the control); the other firewall's rules do not change.

use std::process::Stdio;

use xdpsieve_testkit::{
    child::Firewall,
    fwnet::{DROPPED_PORT, Net},
    gate::root_or_skip,
    tempdir::TempDir,
    tool::text,
};

use crate::BINARY;

#[test]
fn reload_with_the_config_file_finds_its_firewall_among_several() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create(BINARY, "svcreload");
    // A second interface in the firewall's namespace, for a second xdpsieve by hand.
    net.ip(&["link", "add", "fw1", "type", "veth", "peer", "name", "fw1p"]);
    net.ip(&["link", "set", "fw1", "up"]);
    net.ip(&["link", "set", "fw1p", "up"]);
    let tmp = TempDir::new("svc-reload");
    let config = tmp.file("xdpsieve.toml");
    let rules = |port: u16| {
        format!(
            "interfaces = [\"fw0\"]\n[[rule]]\nname = \"r\"\naction = \"drop\"\n\
             protocol = \"udp\"\ndst_port = {port}\n"
        )
    };
    std::fs::write(&config, rules(DROPPED_PORT)).expect("writing");
    let mut service = net.command(BINARY);
    service.arg("run").arg("--config").arg(&config);
    let mut service = Firewall::spawn_command(service, Stdio::null());
    let mut other = net.command(BINARY);
    other.args(["run", "-i", "fw1", "--drop", "tcp"]);
    let mut other = Firewall::spawn_command(other, Stdio::null());
    let both_live = || {
        let out = net.xdpsieve(&["status", "--json"]);
        String::from_utf8_lossy(&out.stdout)
            .matches("\"live\": true")
            .count()
            == 2
    };
    service.wait_until(both_live);
    other.wait_until(both_live);

    std::fs::write(&config, rules(DROPPED_PORT + 10)).expect("writing");
    let out = net.xdpsieve(&["reload"]);
    let (_, err) = text(&out);
    assert!(
        !out.status.success(),
        "a bare reload chose among two: {err}"
    );
    assert!(err.contains("several xdpsieve instances"), "{err}");
    let config_arg = config.display().to_string();
    let out = net.xdpsieve(&["reload", "--config", &config_arg]);
    let (said, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(said.contains("in force on fw0"), "{said}");
    let out = net.xdpsieve(&["status", "-i", "fw1", "--json"]);
    let (status, _) = text(&out);
    assert!(
        status.contains("\"generation\": 1"),
        "fw1 was reloaded: {status}"
    );

    let out = service.stop(libc::SIGTERM);
    assert!(out.status.success(), "{}", text(&out).1);
    let out = other.stop(libc::SIGTERM);
    assert!(out.status.success(), "{}", text(&out).1);
}
