//! Where advertisements come from: the radio (BlueZ through btleplug), or a recording replayed.
//! Each source is a task that sends [`Heard`] into a channel; the adapter does not care which.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::decode::Advertisement;
use crate::record;

/// What a source tells the adapter.
#[derive(Debug)]
pub enum Heard {
    /// An advertisement.
    Advertisement(Box<Advertisement>),
    /// The source cannot run, with why (no Bluetooth adapter, no BlueZ, no D-Bus, a bad file).
    Unavailable(String),
    /// Scanning started (or a replay began).
    Running,
    /// A replay reached the end of its recording.
    Finished,
}

/// Replays a recording: each advertisement at its `at` divided by `speed` (0: as fast as the
/// adapter takes them).
pub fn replay(file: PathBuf, speed: f64, tx: mpsc::Sender<Heard>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let path = file.clone();
        let read = tokio::task::spawn_blocking(move || std::fs::read_to_string(path)).await;
        let text = match read.unwrap_or_else(|e| Err(std::io::Error::other(e))) {
            Ok(t) => t,
            Err(e) => {
                let _ = tx.send(Heard::Unavailable(format!("cannot read the recording {}: {e}", file.display()))).await;
                return;
            }
        };
        let records = match record::parse(&text) {
            Ok(r) => r,
            Err(e) => {
                let _ =
                    tx.send(Heard::Unavailable(format!("the recording {} is not valid: {e}", file.display()))).await;
                return;
            }
        };
        if tx.send(Heard::Running).await.is_err() {
            return;
        }
        let start = tokio::time::Instant::now();
        for r in records {
            if speed > 0.0
                && let Some(at) = r.at.filter(|a| a.is_finite() && *a > 0.0)
            {
                tokio::time::sleep_until(start + Duration::from_secs_f64(at / speed)).await;
            }
            if tx.send(Heard::Advertisement(Box::new(r.adv))).await.is_err() {
                return;
            }
        }
        let _ = tx.send(Heard::Finished).await;
    })
}

/// Scans with the system's Bluetooth adapter (`adapter`: its name, `hci0`, or the first).
#[cfg(feature = "bluez")]
pub fn radio(adapter: Option<String>, tx: mpsc::Sender<Heard>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(crate::bluez::scan(adapter, tx))
}
