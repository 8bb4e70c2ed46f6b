//! Arbitrary advertisements never make a decoder or the tracker panic: random bytes under every
//! service UUID and company id the decoders read, with the names some formats look at and with
//! keys of every length, through the same dispatch and tracking the adapter uses.

use hearth_ble::decode::aims::{COMPANY_IDS as COMPANIES, NAMES, SERVICE_UUIDS as UUIDS};
use hearth_ble::decode::{self, Address, Advertisement, uuid16};
use hearth_ble::tracker::{Keys, Timeouts, Tracker};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn arbitrary(rng: &mut Rng) -> Advertisement {
    let mut adv = Advertisement {
        address: Address([rng.next() as u8, 0xC1, 0x38, rng.next() as u8, 0, rng.next() as u8]),
        rssi: Some(-(rng.below(100) as i16)),
        name: Some(NAMES[rng.below(NAMES.len())].to_owned()).filter(|n| !n.is_empty()),
        ..Advertisement::default()
    };
    for _ in 0..rng.below(3) {
        // A real first byte now and then takes the decoders past their first checks.
        let mut data = rng.bytes(40);
        if let Some(b) = data.first_mut()
            && rng.below(2) == 0
        {
            *b = [0x40, 0x44, 0x41, 0x00, 0x10, 0x20, 0x54, 0x64, 0x69, 0x77, 0x48][rng.below(11)];
        }
        adv.service_data.insert(uuid16(UUIDS[rng.below(UUIDS.len())]), data);
    }
    for _ in 0..rng.below(3) {
        let mut data = rng.bytes(40);
        if data.len() > 2 && rng.below(2) == 0 {
            data[0] = 0x02;
            data[1] = 0x15;
        }
        adv.manufacturer_data.insert(COMPANIES[rng.below(COMPANIES.len())], data);
    }
    adv
}

#[test]
fn no_advertisement_makes_anything_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut tracker = Tracker::new(Timeouts { all: Some(1) });
    let keys_12 = vec![0x11; 12];
    let keys_16 = vec![0x22; 16];
    let none = |_: &str| None;
    let accepted = |_: &str| Some(hearth_sdk::Decision::Accepted);
    for round in 0..200_000u32 {
        let adv = arbitrary(&mut rng);
        let key: Option<&[u8]> = match round % 4 {
            0 => None,
            1 => Some(&keys_12),
            2 => Some(&keys_16),
            _ => Some(&keys_16[..round as usize % 16]),
        };
        let _ = decode::decode(&adv, key);
        if round % 10 == 0 {
            let decision: &dyn Fn(&str) -> Option<hearth_sdk::Decision> =
                if round % 20 == 0 { &accepted } else { &none };
            let _ = tracker.heard(&adv, i64::from(round), &Keys::new(), decision);
        }
        if round % 1000 == 0 {
            let _ = tracker.tick(i64::from(round) + 5_000);
        }
    }
}
