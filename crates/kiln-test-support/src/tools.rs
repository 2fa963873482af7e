//! Ports and the Debian tools the tests run.

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

/// A free TCP port on 127.0.0.1 (another process may take it before it is used: callers retry).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Panics with an install hint unless `tool --version` runs.
pub fn require_tool(tool: &str, package: &str) {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(ok, "`{tool}` is missing: apt-get install -y {package}");
}

/// Runs a tool, asserting success, and returns its output.
pub fn run_tool(tool: &str, args: &[&str]) -> Output {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_can_be_bound() {
        let p = free_port();
        assert!(p > 0);
        TcpListener::bind(("127.0.0.1", p)).expect("the port is free");
    }

    #[test]
    #[should_panic(expected = "apt-get install -y no-such-package")]
    fn a_missing_tool_fails_with_the_install_command() {
        require_tool("kiln-no-such-tool", "no-such-package");
    }
}
