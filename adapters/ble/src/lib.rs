//! Hearth's BLE adapter: passive sensors heard in their advertisements (BTHome, Xiaomi MiBeacon,
//! ATC/PVVX, RuuviTag, Govee, Inkbird, SwitchBot, iBeacon and Eddystone) and controllable
//! devices, as devices of the one model.
//!
//! Layout: `decode/` holds one pure decoder per format (bytes in, readings out).
#![forbid(unsafe_code)]

pub mod decode;
