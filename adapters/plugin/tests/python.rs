//! The Python side of the plugin protocol: `adapters/plugin/python/hearth_plugin.py`, its weather
//! example and the misbehaving test plugins of `tests/plugins/`, through their own unittest suite.
//!
//! Runs `python3 -m unittest discover -s adapters/plugin/python/tests -v` from the workspace root,
//! with `python3` from `PATH`, and fails with the suite's output when it fails.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

#[test]
fn python_plugin_module_passes_its_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let output = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "adapters/plugin/python/tests", "-v"])
        .current_dir(&root)
        // Keep `__pycache__` out of the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("running python3 from PATH (the Python plugin tests need it): {e}"));
    assert!(
        output.status.success(),
        "the Python plugin tests failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
