//! Every BLE advertisement decoder (BTHome, Xiaomi MiBeacon, ATC/PVVX, RuuviTag, Govee, Inkbird,
//! SwitchBot, iBeacon and Eddystone), the dispatch and tracker the adapter runs them through,
//! the recording format (`hearth ble replay`), and the SwitchBot Bot's GATT answers.
//!
//! Input: the first byte chooses.
//! - 0: an advertisement built from the bytes: address, RSSI, a name (one the decoders look for,
//!   or any), service data under the UUIDs the decoders read (or any), manufacturer data under
//!   their company ids (or any), and a key of 16, 12 or any length, or none. Every decoder reads
//!   it on its own, then the dispatch, then the tracker (the device accepted).
//! - 1: a recording (JSON lines): parsed, described as `hearth ble replay` does, and each line
//!   written back must read back the same.
//! - 2: an answer of a SwitchBot Bot.
#![no_main]

use hearth_ble::control::{bot_answer, parse_bot_info};
use hearth_ble::decode::aims::{COMPANY_IDS as COMPANIES, NAMES, SERVICE_UUIDS as UUIDS};
use hearth_ble::decode::{self, Address, Advertisement, DECODERS, Decoded, uuid16};
use hearth_ble::record::{self, Recorded};
use hearth_ble::tracker::{Keys, Timeouts, Tracker};
use hearth_fuzz::{check_events, finite, split_selector};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fn pick(u: &mut Unstructured<'_>, known: &[u16]) -> Result<u16> {
    let i: u8 = u.arbitrary()?;
    Ok(known.get(usize::from(i)).copied().unwrap_or(u16::from(i) << 8 | u16::from(u.arbitrary::<u8>()?)))
}

fn advertisement(u: &mut Unstructured<'_>) -> Result<(Advertisement, Option<Vec<u8>>)> {
    let mut adv = Advertisement { address: Address(u.arbitrary()?), rssi: u.arbitrary()?, ..Advertisement::default() };
    let name: u8 = u.arbitrary()?;
    adv.name = match NAMES.get(usize::from(name)) {
        Some(n) => Some((*n).to_owned()),
        None if name % 2 == 0 => Some(u.arbitrary::<String>()?),
        None => None,
    };
    for _ in 0..u.int_in_range(0..=2)? {
        let uuid = pick(u, UUIDS)?;
        adv.service_data.insert(uuid16(uuid), u.arbitrary()?);
    }
    for _ in 0..u.int_in_range(0..=2)? {
        let company = pick(u, COMPANIES)?;
        adv.manufacturer_data.insert(company, u.arbitrary()?);
    }
    if u.arbitrary::<bool>()? {
        adv.service_uuids.push(uuid16(pick(u, UUIDS)?));
    }
    let key = match u.int_in_range(0..=3)? {
        0 => None,
        1 => Some(u.bytes(16)?.to_vec()),
        2 => Some(u.bytes(12)?.to_vec()),
        _ => Some(u.arbitrary()?),
    };
    Ok((adv, key))
}

fn check(decoder: &str, d: &Decoded) {
    for r in &d.readings {
        assert!(finite(&r.value), "{decoder}: reading `{}` is not a finite number: {:?}", r.key, r.value);
    }
    for e in &d.events {
        assert!(e.values.contains(&e.event), "{decoder}: event `{}` of `{}` is not one of its values", e.event, e.key);
    }
}

fn decoders(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok((adv, key)) = advertisement(&mut u) else { return };
    let key = key.as_deref();
    for (name, decode) in DECODERS {
        if let Ok(Some(d)) = decode(&adv, key) {
            check(name, &d);
        }
    }
    if let Ok(Some((name, d))) = decode::decode_with(&adv, key) {
        check(name, &d);
    }
    let mut keys = Keys::new();
    if let Some(k) = key {
        keys.insert(adv.address.to_string(), k.to_vec());
    }
    let mut tracker = Tracker::new(Timeouts { all: Some(1) });
    let accepted = |_: &str| Some(hearth_sdk::Decision::Accepted);
    check_events(&tracker.heard(&adv, 1_000, &keys, &accepted));
    check_events(&tracker.heard(&adv, 2_000, &keys, &accepted));
    check_events(&tracker.tick(10_000));
    // A recording of it reads back the same.
    let line = record::to_line(&Recorded { at: Some(1.5), adv: adv.clone() });
    match record::parse_line(&line) {
        Ok(Some(back)) => assert_eq!(back.adv, adv, "a recorded advertisement reads back the same\n{line}"),
        other => panic!("a recorded advertisement does not read back: {other:?}\n{line}"),
    }
}

fn recording(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = hearth_ble::describe_recording(text, &Keys::new());
    let Ok(records) = record::parse(text) else { return };
    for r in records {
        let line = record::to_line(&r);
        match record::parse_line(&line) {
            Ok(Some(back)) => assert_eq!(back.adv, r.adv, "a recording line reads back the same\n{line}"),
            other => panic!("a recording line does not read back: {other:?}\n{line}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match split_selector(data, 3) {
        Some((0, rest)) => decoders(rest),
        Some((1, rest)) => recording(rest),
        Some((_, rest)) => {
            let _ = bot_answer(rest);
            let _ = parse_bot_info(rest);
        }
        None => {}
    }
});
