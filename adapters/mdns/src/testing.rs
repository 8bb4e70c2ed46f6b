//! Test support for the Wi-Fi adapters: running a test inside a network namespace of its own,
//! so multicast (mDNS) never reaches the machine's real network.

use std::process::Command;

/// Set in the environment of a test re-run inside its namespace.
const INSIDE: &str = "HEARTH_TEST_INSIDE_NETNS";

/// Runs `test` inside a fresh network namespace whose only interface is its loopback (up): the
/// test binary re-runs itself there (`unshare --net`, which needs root; `ip` from iproute2), for
/// the test called `name` alone, and this checks that it passed. Inside, `test` runs directly.
///
/// # Panics
/// When the test failed inside (with its output), or the namespace cannot be made.
pub fn in_namespace(name: &str, test: impl FnOnce()) {
    if std::env::var_os(INSIDE).is_some() {
        test();
        return;
    }
    let exe = std::env::current_exe().expect("the test binary");
    let out = Command::new("unshare")
        .args(["--net", "--", "sh", "-c", r#"ip link set lo up && exec "$0" --exact "$1" --nocapture"#])
        .arg(&exe)
        .arg(name)
        .env(INSIDE, "1")
        .output()
        .expect("unshare (util-linux) and ip (iproute2), as root");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("1 passed"), "inside the namespace:\n{text}");
}
