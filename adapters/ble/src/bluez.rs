//! Scanning with the system's Bluetooth adapter through btleplug (BlueZ over D-Bus on Linux).
//!
//! Every advertisement event (service data, manufacturer data, services, a device seen or
//! updated) becomes an [`Advertisement`] built from the event and the device's properties, so
//! a sensor that repeats the same frame is still heard (btleplug asks BlueZ for every report,
//! `DuplicateData`).
//!
//! BlueZ keeps every manufacturer-data entry a device ever sent. Most devices use one company id,
//! but some put a reading where the company id goes (Inkbird IBS-TH: the temperature), so the
//! cache fills with stale entries: only the entries that changed in the latest report are handed
//! on (the same again, when a report repeats). Without D-Bus, BlueZ or an adapter, the
//! source says why and stops: the adapter reports itself unavailable and the hub runs on.

use std::collections::HashMap;

use btleplug::api::{Central, CentralEvent, Manager as _, Peripheral as _, ScanFilter};
use btleplug::platform::{Adapter, Manager};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::decode::{Address, Advertisement};
use crate::source::Heard;

type Manufacturer = HashMap<u16, Vec<u8>>;

/// Scans until the receiver is gone.
pub async fn scan(wanted: Option<String>, tx: mpsc::Sender<Heard>) {
    if let Err(why) = run(wanted, &tx).await {
        let _ = tx.send(Heard::Unavailable(why)).await;
    }
}

async fn pick(wanted: Option<&str>) -> Result<Adapter, String> {
    let manager = Manager::new().await.map_err(|e| {
        format!("no Bluetooth: the D-Bus system bus cannot be reached ({e}); is dbus running, and BlueZ installed?")
    })?;
    let adapters = manager
        .adapters()
        .await
        .map_err(|e| format!("no Bluetooth: BlueZ does not answer on D-Bus ({e}); is bluetoothd running?"))?;
    if adapters.is_empty() {
        return Err("no Bluetooth adapter found".into());
    }
    let mut names = Vec::new();
    for a in adapters {
        let info = a.adapter_info().await.unwrap_or_default();
        match wanted {
            None => return Ok(a),
            Some(w) if info.split_whitespace().next() == Some(w) || info == w => return Ok(a),
            Some(_) => names.push(info),
        }
    }
    Err(format!("no Bluetooth adapter `{}`; the adapters are: {}", wanted.unwrap_or_default(), names.join(", ")))
}

async fn run(wanted: Option<String>, tx: &mpsc::Sender<Heard>) -> Result<(), String> {
    let adapter = pick(wanted.as_deref()).await?;
    let mut events = adapter.events().await.map_err(|e| format!("cannot listen to Bluetooth events: {e}"))?;
    adapter.start_scan(ScanFilter::default()).await.map_err(|e| format!("cannot start scanning: {e}"))?;
    if tx.send(Heard::Running).await.is_err() {
        return Ok(());
    }
    // Per device: every manufacturer-data entry BlueZ holds, and those that changed last.
    let mut seen: HashMap<btleplug::platform::PeripheralId, (Manufacturer, Manufacturer)> = HashMap::new();
    while let Some(event) = events.next().await {
        let (id, service_data, manufacturer_data) = match event {
            CentralEvent::ServiceDataAdvertisement { id, service_data } => (id, Some(service_data), None),
            CentralEvent::ManufacturerDataAdvertisement { id, manufacturer_data } => {
                (id, None, Some(manufacturer_data))
            }
            CentralEvent::DeviceDiscovered(id) | CentralEvent::DeviceUpdated(id) => (id, None, None),
            _ => continue,
        };
        let Ok(peripheral) = adapter.peripheral(&id).await else { continue };
        let Ok(Some(props)) = peripheral.properties().await else { continue };
        let mut adv = Advertisement {
            address: Address(props.address.into_inner()),
            rssi: props.rssi,
            name: props.local_name,
            ..Advertisement::default()
        };
        // The event's own data is this advertisement; the properties hold the latest of each.
        let sd = service_data.unwrap_or(props.service_data);
        adv.service_data = sd.into_iter().map(|(u, d)| (u.as_u128(), d)).collect();
        let md = manufacturer_data.unwrap_or(props.manufacturer_data);
        // Phones change their address every few minutes: forget the crowd now and then.
        if seen.len() > 4096 {
            seen.clear();
        }
        let (all, fresh) = seen.entry(id).or_default();
        let changed: HashMap<u16, Vec<u8>> =
            md.iter().filter(|(k, v)| all.get(k) != Some(v)).map(|(k, v)| (*k, v.clone())).collect();
        if !changed.is_empty() {
            *fresh = changed;
        }
        *all = md;
        adv.manufacturer_data = fresh.iter().map(|(k, v)| (*k, v.clone())).collect();
        adv.service_uuids = props.services.iter().map(|u| u.as_u128()).collect();
        if tx.send(Heard::Advertisement(Box::new(adv))).await.is_err() {
            return Ok(());
        }
    }
    Err("Bluetooth scanning stopped (the adapter went away?)".into())
}
