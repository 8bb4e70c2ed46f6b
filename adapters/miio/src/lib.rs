//! Xiaomi devices over the miIO protocol (UDP 54321, encrypted with each device's token), read
//! and controlled through their MIoT-Spec (`get_properties`, `set_properties`, `action` by
//! siid/piid/aiid), for Hearth.
//!
//! # Layout
//! - [`packet`]: the miIO packet: header, hello, AES-128-CBC with the token, checksum. Pure.
//! - [`api`]: the JSON-RPC inside packets: `miIO.info` and the MIoT methods. Pure.
//! - [`spec`]: MIoT-Spec files as data (shipped in `specs/`, and a user's `specs_dir`). Pure.
//! - [`map`]: a spec onto the device model, values both ways. Pure.
//! - [`adapter`]: the adapter, its configuration, what an mDNS announcement is, the token secrets.
//! - [`session`]: one UDP session with a device, run by `hearth_mdns::lan`.
//!
//! # Configuration (`[adapters.miio]`)
//!
//! | key | type | default | what |
//! |---|---|---|---|
//! | `enabled` | bool | `false` | run the adapter |
//! | `interfaces` | list of text | `[]` (all) | the interfaces to speak mDNS on |
//! | `offline_after_secs` | integer ≥ 1 | `60` | silence before a device is offline |
//! | `poll_secs` | integer ≥ 1 | `10` | seconds between two reads of a device |
//! | `specs_dir` | path | none | more MIoT-Spec files, `<model>.json` (see [`spec`]) |
//!
//! Secrets: each device's token, 32 hex digits, named by its did (`123456789`).
//!
//! Shipped specs: `cuco.plug.cp1` (a Wi-Fi smart plug), `yeelink.light.colorc` (a color LED
//! bulb), `zhimi.airpurifier.mb3` (Mi Air Purifier 3H), `zhimi.humidifier.ca4` (Mijia smart
//! humidifier). Another model needs its spec file in `specs_dir`; until then its device is
//! offline, refused: `no MIoT spec for model X: add a spec file to specs_dir (X.json)`.
//!
//! # From MIoT-Spec to the model
//!
//! Every property the device lets the hub read or write becomes one feature; each action
//! without inputs becomes a write-only trigger. Access: `read` → observed (polled) and
//! refreshable, `write` → settable. Events are not used: over the LAN a miIO device reports
//! nothing by itself, so the adapter polls.
//!
//! ## Capabilities by property type (the `<name>` of `urn:<ns>:property:<name>:...`)
//!
//! | property | format / unit | capability | conversion |
//! |---|---|---|---|
//! | `on` | bool | `on_off` | as is (a 0/1 read as false/true) |
//! | `brightness` | number, `percentage`, with a range | `brightness` | % as is when the range ends at 100, else `value × 100 / max` |
//! | `color-temperature` | number, `kelvin` | `color_temperature` | K as is |
//! | `color` | number, `rgb` | `color` | 0xRRGGBB to hue/saturation and back (`Color::from_rgb`, `to_rgb`) |
//! | `temperature`, `indoor-temperature` | `celsius` / `fahrenheit` | `temperature` | °C; °F converted |
//! | `target-temperature` | `celsius` / `fahrenheit` | `setpoint` | °C |
//! | `relative-humidity` | `percentage` | `humidity` | % |
//! | `pm2.5-density`, `pm10-density` | `μg/m3` | `pm25`, `pm10` | µg/m³ |
//! | `co2-density` | `ppm` | `co2` | ppm |
//! | `tvoc-density` | `ppb` | `voc` | ppb (other units: `other`) |
//! | `hcho-density` | `mg/m3` | `formaldehyde` | mg/m³ |
//! | `illumination` | `lux` | `illuminance` | lx |
//! | `battery-level` | `percentage` | `battery` | % |
//! | `electric-power` | `watt` / `kW` | `power` | W |
//! | `electric-current` | `A` / `mA` | `current` | A |
//! | `voltage` | `V` / `mV` | `voltage` | V |
//! | `power-consumption` | `kWh` / `Wh` | `energy` | kWh |
//! | `atmospheric-pressure` | `pascal` / `kPa` / `hPa` | `pressure` | hPa |
//! | `fan-level` | value list | `fan_mode` | enum of the list's names |
//! | `mode` of an air purifier, fan, humidifier, dehumidifier, fresh-air or ceiling fan | value list | `fan_mode` | enum |
//! | any other numeric property in `seconds` / `minutes` / `hours` / `days` (`filter-used-time`, `use-time`) | number | `duration` | s |
//! | `filter-life-level`, `target-humidity`, `water-level`, `speed-level` and any other number | number | `other` | as is, with the unit's own name (`%`, `h`, `Pa` ...) |
//! | any other `bool` (`alarm`, `physical-controls-locked`, vendor switches) | bool | `other` | as is |
//! | any other value list (`mode` of a light, `fault`, an indicator's brightness) | value list | `other` | enum |
//! | `string` | text | `other` | text |
//!
//! A property whose unit does not convert to the capability's canonical unit keeps its own
//! unit under `other`. Enum names are the list's descriptions in lowercase with `_` between
//! words (`No faults` → `no_faults`; a missing description is the number; a repeated name gets
//! `_<value>`). Numbers are written back on the device's steps, within its range, as integers
//! for integer formats; reported values are rounded to the step's decimals.
//!
//! ## Keys and categories
//!
//! Keys are the property's name in snake case, with `on` → `state`, `relative-humidity` →
//! `humidity`, `pm2.5-density` → `pm25`, `pm10-density` → `pm10`, `co2-density` → `co2`,
//! `tvoc-density` → `voc`, `hcho-density` → `formaldehyde`, `filter-life-level` → `filter_life`,
//! `physical-controls-locked` → `child_lock`. They stay plain in the device's main service (the
//! one of its own type, else the first), in `environment`, and where the name holds the
//! service's (`filter-used-time` of `filter`); elsewhere the service comes first
//! (`indicator_light_state`, `screen_brightness`). A key still taken gets `_<siid>_<piid>`.
//! Categories: `diagnostic` for `fault`, filter life and time, use time, motor speed and a
//! vendor's read-only properties; `config` for the indicator light, screen, alarm and child lock,
//! a vendor's writable properties, and actions; `primary` for the rest.
//!
//! ## Actions
//!
//! An action without inputs (`toggle`, `reset-filter-life`) is a write-only `bool` feature of
//! capability `other`, category `config`, keyed like a property: setting it to `true` runs the
//! action, `false` does nothing; afterwards every property is read again and reported with the
//! command's context.
//!
//! ## Left out (logged at debug level when a device connects)
//!
//! - the `device-information` service (the model and firmware come from `miIO.info`);
//! - properties that are neither readable nor writable (only notified to Xiaomi's cloud);
//! - `hex` and `tlv8` properties;
//! - actions that take inputs;
//! - events (a miIO device sends them to the cloud only).
#![forbid(unsafe_code)]

pub mod adapter;
pub mod api;
pub mod map;
pub mod packet;
pub mod session;
pub mod spec;

pub use adapter::{ADAPTER_ID, Config, MiioAdapter, MiioProtocol, SERVICE_TYPE, check_secret, identify};
pub use packet::Token;
