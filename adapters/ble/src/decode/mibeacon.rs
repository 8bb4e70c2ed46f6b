//! Xiaomi MiBeacon: the service data (UUID 0xFE95) of Xiaomi's Mijia BLE devices and their
//! partners' (Qingping, Linptech, Miaomiaoce, ...), frame versions 2 to 5, plain and encrypted.
//!
//! A frame is, all integers little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 2 | frame control: bit 0 request timing, bit 3 encrypted, bit 4 MAC included, bit 5 capability included, bit 6 object included, bit 7 mesh, bit 8 registered (bound), bit 9 bind requested, bits 10-11 auth mode, bits 12-15 version |
//! | 2 | product id (the device model) |
//! | 1 | frame counter |
//! | 6 | the device's MAC address, least significant byte first (when bit 4) |
//! | 1 | capability (when bit 5); followed by 2 bytes (a Wi-Fi MAC part) when its bond ability (bits 3-4) is 3, and by 2 bytes of I/O capability when its bit 5 is set |
//! | n | objects (when bit 6): id (2), length (1), data; encrypted when bit 3 |
//! | 3 + 4 | v4/v5 encrypted: the high 3 bytes of the 32-bit frame counter, then the 4-byte MIC |
//! | 3 + 1 | v2/v3 encrypted: the high 3 bytes of the frame counter, then one byte |
//! | 2 | mesh state (when bit 7) |
//!
//! Encryption is AES-CCM with associated data `0x11`:
//! - v4 and v5: the 16-byte bind key; nonce = MAC (least significant byte first, 6) + product
//!   id (2) + frame counter (1) + extended counter (3); a 4-byte MIC, which is checked.
//! - v2 and v3 ("legacy"): a 12-byte key, widened to 16 bytes by inserting `8d 3d 3c 97` after
//!   its 6th byte; nonce = frame control, product id and frame counter (5) + extended counter
//!   (3) + the first 5 bytes of the MAC (least significant first), 13 bytes. These frames carry
//!   no usable MIC, so a wrong key shows only as objects that do not parse: the decrypted
//!   objects must span the payload exactly and all be objects this decoder knows.
//!
//! Objects are Xiaomi's "Mijia BLE object definition" (0x0000-0x1001 events, 0x1002-0x1FFF
//! properties, 0x3003 a toothbrush event) and the newer MIoT-spec style objects (0x48xx,
//! 0x4Axx, 0x4Cxx, 0x4Exx, 0x5xxx) of the devices whose meaning is published.
//! Facts from Xiaomi's object definition and BLE SDK, and from the test suites of the
//! open-source parsers (`xiaomi-ble`, `ble_monitor`, ESPHome).

use aes::Aes128;
use aes::cipher::BlockEncrypt;
use ccm::aead::{AeadInPlace, KeyInit};
use ccm::consts::{U4, U12};
use hearth_sdk::{Capability, Value};

use super::{Address, Advertisement, BleEvent, DecodeError, Decoded, Reading, le_i, le_u, round};

/// The format's name in errors.
const FORMAT: &str = "MiBeacon";
/// The 16-bit service UUID of the service data.
const SERVICE: u16 = 0xFE95;
/// The brand of every MiBeacon device (the Mijia ecosystem).
const BRAND: &str = "Xiaomi";
/// The associated data of both encryption schemes.
const AAD: [u8; 1] = [0x11];
/// The bytes a legacy (v2/v3) 12-byte key gets after its 6th byte.
const LEGACY_KEY_FILL: [u8; 4] = [0x8d, 0x3d, 0x3c, 0x97];

/// AES-CCM of MiBeacon v4/v5: 4-byte MIC, 12-byte nonce.
type MiCcm = ccm::Ccm<Aes128, U4, U12>;

/// Product ids and model names.
const PRODUCTS: &[(u16, &str)] = &[
    // Temperature and humidity.
    (0x01AA, "LYWSDCGQ"),
    (0x045B, "LYWSD02"),
    (0x16E4, "LYWSD02MMC"),
    (0x2542, "LYWSD02MMC"),
    (0x055B, "LYWSD03MMC"),
    (0x0347, "CGG1"),
    (0x0B48, "CGG1"),
    (0x066F, "CGDK2"),
    (0x4F59, "CGDK3"),
    (0x0C3C, "CGC1"),
    (0x0576, "CGD1"),
    (0x0387, "MHO-C401"),
    (0x06D3, "MHO-C303"),
    (0x1203, "XMWSDJ04MMC"),
    (0x2832, "MJWSD05MMC"),
    (0x55B5, "MJWSD06MMC"),
    (0x5BEA, "MJWSD06MMC"),
    (0x5DB1, "MBS17"),
    (0x78DB, "ESM787"),
    (0x520B, "KS2BB"),
    // Door and window.
    (0x098B, "MCCGQ02HL"),
    (0x03D6, "CGH1"),
    (0x1889, "MS1BB(MI)"),
    // Motion, presence, light.
    (0x0A8D, "RTCGQ02LM"),
    (0x03DD, "MUE4094RT"),
    (0x0A83, "CGPR1"),
    (0x07F6, "MJYD02YL"),
    (0x2AEB, "HS1BB(MI)"),
    (0x3531, "XMPIRO2SXS"),
    (0x4C60, "XMPIRO2GSXS"),
    (0x4683, "XMOSB01XS"),
    (0x50FB, "ES3"),
    (0x6A0F, "ES5BB"),
    (0x3F4C, "PS1BB"),
    // Plants.
    (0x0098, "HHCCJCY01"),
    (0x015D, "HHCCPOT002"),
    (0x03BC, "GCLS002"),
    // Buttons, remotes, switches.
    (0x1949, "XMWXKG01YL"),
    (0x2387, "XMWXKG01LM"),
    (0x5968, "XMWS01XS"),
    (0x07BF, "YLAI003"),
    (0x0153, "YLYK01YL"),
    (0x068E, "YLYK01YL-FANCL"),
    (0x04E6, "YLYK01YL-VENFAN"),
    (0x03BF, "YLYB01YL-BHFRC"),
    (0x03B6, "YLKG07YL/YLKG08YL"),
    (0x1568, "K9B-1BTN"),
    (0x1569, "K9B-2BTN"),
    (0x0DFD, "K9B-3BTN"),
    (0x1C10, "K9BB-1BTN"),
    (0x3A61, "KS1"),
    (0x3E17, "KS1BP"),
    (0x38BB, "PTX_YK1_QMIMB"),
    (0x04E1, "XMMF01JQD"),
    // Locks.
    (0x069E, "ZNMS16LM"),
    (0x069F, "ZNMS17LM"),
    (0x0380, "DSL-C08"),
    (0x11C2, "Lockin-SV40"),
    (0x04E9, "MJZNMSQ01YD"),
    (0x098C, "XMZNMST02YD"),
    (0x0599, "MJZNMS03LM"),
    (0x0784, "XMZNMS04LM"),
    (0x0E39, "XMZNMS08LM"),
    // Safety.
    (0x0997, "JTYJGD03MI"),
    (0x0863, "SJWS01LM"),
    (0x3F0F, "RS1BB(MI)"),
    (0x02DF, "JQJCY01YM"),
    // Others.
    (0x040A, "WX08ZM"),
    (0x045C, "V-SK152"),
    (0x0083, "YM-K1501"),
    (0x0113, "YM-K1501EU"),
    (0x00DB, "MMC-T201-1"),
    (0x0391, "MMC-W505"),
    (0x0489, "M1S-T500"),
    (0x0806, "T700"),
    (0x1790, "T700i"),
    (0x0DE7, "SU001-T"),
    (0x20DB, "MJZNZ018H"),
];

/// Products whose object 0x000F carries a light flag (values of 100 and up: light), not lux.
const MOTION_LIGHT_FLAG: &[u16] = &[0x0A8D, 0x07F6];
/// The YLKG07YL/YLKG08YL dimmer, whose object 0x1001 is a knob.
const DIMMER: u16 = 0x03B6;
/// The XMMF01JQD cube, whose object 0x1001 is a rotation.
const CUBE: u16 = 0x04E1;
/// The K9B switches: their press types 1 and 2 are long and double (the others' double and long).
const K9B: &[u16] = &[0x1568, 0x1569, 0x0DFD];
/// The K9BB single button, whose object 0x4E0C carries the press type.
const K9BB: u16 = 0x1C10;

/// Events of a button (`button`, `button_2`, ...).
const BUTTON_EVENTS: &[&str] = &["press", "double_press", "triple_press", "long_press"];
/// Events of the YLKG07YL/YLKG08YL dimmer knob (`dimmer`).
const DIMMER_EVENTS: &[&str] =
    &["press", "long_press", "rotate_left", "rotate_right", "rotate_left_pressed", "rotate_right_pressed"];
/// Events of the XMMF01JQD cube (`cube`).
const CUBE_EVENTS: &[&str] = &["rotate_left", "rotate_right"];
/// Events of a lock's door (`door`).
const DOOR_EVENTS: &[&str] = &["knock", "pry", "stuck"];
/// Events of a lock's fingerprint reader (`fingerprint`), by match result 0 to 6.
const FINGERPRINT_EVENTS: &[&str] =
    &["match", "no_match", "timeout", "low_quality", "insufficient_area", "skin_too_dry", "skin_too_wet"];

/// Lock methods (high nibble of object 0x000B's first byte).
const LOCK_METHODS: &[(u8, &str)] = &[
    (0x0, "bluetooth"),
    (0x1, "password"),
    (0x2, "biometrics"),
    (0x3, "key"),
    (0x4, "turntable"),
    (0x5, "nfc"),
    (0x6, "one_time_password"),
    (0x7, "two_step_verification"),
    (0x8, "coercion"),
    (0x9, "homekit"),
    (0xA, "manual"),
    (0xB, "automatic"),
    (0xF, "abnormal"),
];

/// Lock actions (low nibble of object 0x000B's first byte) and the lock state they leave.
const LOCK_ACTIONS: &[(u8, &str, Option<&str>)] = &[
    (0x0, "unlock_outside", Some("unlocked")),
    (0x1, "lock", Some("locked")),
    (0x2, "anti_lock_on", None),
    (0x3, "anti_lock_off", None),
    (0x4, "unlock_inside", Some("unlocked")),
    (0x5, "lock_inside", Some("locked")),
    (0x6, "child_lock_on", None),
    (0x7, "child_lock_off", None),
    (0x8, "lock_outside", Some("locked")),
    (0xF, "abnormal", None),
];

/// Lock exceptions (object 0x000B key ids 0xC0DExxxx).
const LOCK_ERRORS: &[(u32, &str)] = &[
    (0xC0DE_0000, "wrong_password_repeatedly"),
    (0xC0DE_0001, "wrong_fingerprint_repeatedly"),
    (0xC0DE_0002, "password_timeout"),
    (0xC0DE_0003, "lock_picking"),
    (0xC0DE_0004, "reset_button_pressed"),
    (0xC0DE_0005, "wrong_key_repeatedly"),
    (0xC0DE_0006, "foreign_object_in_keyhole"),
    (0xC0DE_0007, "key_not_removed"),
    (0xC0DE_0008, "wrong_nfc_repeatedly"),
    (0xC0DE_0009, "not_locked_in_time"),
    (0xC0DE_000A, "unlock_failures_repeatedly"),
    (0xC0DE_000B, "face_failures_repeatedly"),
    (0xC0DE_000C, "finger_vein_failures_repeatedly"),
    (0xC0DE_000D, "hijack_alarm"),
    (0xC0DE_000E, "unlocked_inside_while_armed"),
    (0xC0DE_000F, "palm_print_failures_repeatedly"),
    (0xC0DE_0010, "safe_moved"),
    (0xC0DE_1000, "battery_below_10_percent"),
    (0xC0DE_1001, "battery_below_5_percent"),
    (0xC0DE_1002, "fingerprint_sensor_fault"),
    (0xC0DE_1003, "accessory_battery_low"),
    (0xC0DE_1004, "mechanical_failure"),
    (0xC0DE_1005, "lock_sensor_fault"),
];

/// Key id ranges of locks (high 16 bits) and what they name.
const LOCK_KEY_KINDS: &[(u16, &str)] = &[
    (0x8001, "fingerprint"),
    (0x8002, "password"),
    (0x8003, "key"),
    (0x8004, "nfc"),
    (0x8005, "two_step_verification"),
    (0x8006, "face"),
    (0x8007, "finger_vein"),
    (0x8008, "palm_print"),
];

/// Where an object is read: the product that sent it and the object's id.
#[derive(Debug, Clone, Copy)]
struct Ctx {
    product: u16,
    id: u16,
}

/// Reads one object's data (of a length within its bounds) into readings and events.
type Reader = fn(Ctx, &[u8], &mut Out) -> Result<(), DecodeError>;

/// One object type: its id, name (for errors), the data lengths it takes and its reader.
struct Object {
    id: u16,
    name: &'static str,
    min: usize,
    max: usize,
    read: Reader,
}

/// Shorthand for the object table.
const fn obj(id: u16, name: &'static str, min: usize, max: usize, read: Reader) -> Object {
    Object { id, name, min, max, read }
}

/// Every object this decoder reads. Readers get the product id, the object's data (of a length
/// within the bounds) and where to put readings and events.
const OBJECTS: &[Object] = &[
    obj(0x0003, "motion", 0, 1, read_motion),
    obj(0x0006, "fingerprint", 5, 5, read_fingerprint),
    obj(0x0007, "door", 1, 5, read_lock_door),
    obj(0x000A, "body temperature", 2, 2, read_body_temperature),
    obj(0x000B, "lock", 9, 9, read_lock),
    obj(0x000C, "flooding", 1, 1, read_water_leak),
    obj(0x000D, "smoke", 1, 1, read_smoke),
    obj(0x000E, "gas", 1, 1, read_gas),
    obj(0x000F, "motion with light", 3, 3, read_motion_light),
    obj(0x0010, "toothbrush", 1, 2, read_toothbrush),
    obj(0x1001, "button", 3, 3, read_button),
    obj(0x1002, "sleep", 1, 1, read_sleep),
    obj(0x1004, "temperature", 2, 2, read_temperature),
    obj(0x1005, "kettle", 2, 2, read_kettle),
    obj(0x1006, "humidity", 2, 2, read_humidity),
    obj(0x1007, "illuminance", 3, 3, read_illuminance),
    obj(0x1008, "moisture", 1, 1, read_moisture),
    obj(0x1009, "conductivity", 2, 2, read_conductivity),
    obj(0x100A, "battery", 1, 1, read_battery),
    obj(0x100D, "temperature and humidity", 4, 4, read_temperature_humidity),
    obj(0x100E, "lock state", 1, 1, read_lock_state),
    obj(0x100F, "door state", 1, 1, read_door_state),
    obj(0x1010, "formaldehyde", 2, 2, read_formaldehyde),
    obj(0x1012, "switch", 1, 1, read_switch),
    obj(0x1013, "consumable", 1, 1, read_consumable),
    obj(0x1014, "water leak", 1, 1, read_water_leak),
    obj(0x1015, "smoke", 1, 1, read_smoke),
    obj(0x1016, "gas", 1, 1, read_gas),
    obj(0x1017, "time without motion", 4, 4, read_no_motion),
    obj(0x1018, "light", 1, 1, read_light),
    obj(0x1019, "door/window", 1, 1, read_door_window),
    obj(0x101B, "motion timeout", 1, 4, read_no_motion),
    obj(0x3003, "toothbrush", 5, 6, read_toothbrush_timed),
    obj(0x4801, "temperature", 4, 4, read_temperature_float),
    obj(0x4802, "humidity", 1, 1, read_humidity_byte),
    obj(0x4803, "battery", 1, 1, read_battery),
    obj(0x4804, "opening", 1, 1, read_opening),
    obj(0x4805, "illuminance", 4, 4, read_illuminance_float),
    obj(0x4806, "water leak", 1, 1, read_water_leak),
    obj(0x4808, "humidity", 4, 4, read_humidity_float),
    obj(0x4818, "time without motion", 2, 2, read_no_motion),
    obj(0x483C, "seat occupied", 1, 1, read_occupancy),
    obj(0x483D, "seat occupied for", 4, 4, read_pressure_present),
    obj(0x483E, "seat free for", 4, 4, read_pressure_absent),
    obj(0x484E, "occupancy", 1, 1, read_occupancy),
    obj(0x4A01, "low battery", 1, 1, read_battery_low),
    obj(0x4A08, "motion with illuminance", 4, 4, read_motion_illuminance),
    obj(0x4A0C, "click", 0, 1, read_click_index),
    obj(0x4A0D, "double click", 0, 1, read_click_index),
    obj(0x4A0E, "long press", 0, 1, read_click_index),
    obj(0x4A0F, "forced open", 1, 1, read_forced_open),
    obj(0x4A12, "opening", 1, 1, read_opening),
    obj(0x4A13, "button", 1, 1, read_button_click),
    obj(0x4A1A, "door left open", 1, 1, read_door_not_closed),
    obj(0x4C01, "temperature", 4, 4, read_temperature_float),
    obj(0x4C02, "humidity", 1, 1, read_humidity_byte),
    obj(0x4C03, "battery", 1, 1, read_battery),
    obj(0x4C08, "humidity", 4, 4, read_humidity_float),
    obj(0x4E01, "low battery", 1, 1, read_battery_low),
    obj(0x4E0C, "click", 0, 1, read_click_mask),
    obj(0x4E0D, "double click", 0, 1, read_click_mask),
    obj(0x4E0E, "long press", 0, 1, read_click_mask),
    obj(0x5003, "battery", 1, 1, read_battery),
    obj(0x5403, "battery", 1, 1, read_battery),
    obj(0x560C, "click", 0, 1, read_click_number),
    obj(0x560D, "double click", 0, 1, read_click_number),
    obj(0x560E, "long press", 0, 1, read_click_number),
];

/// Reads a MiBeacon advertisement (service data 0xFE95); `key` is the device's bind key
/// (16 bytes for v4/v5 frames, 12 for v2/v3). `Ok(None)` when there is no MiBeacon.
pub fn decode(adv: &Advertisement, key: Option<&[u8]>) -> Result<Option<Decoded>, DecodeError> {
    let Some(data) = adv.service_data16(SERVICE) else {
        return Ok(None);
    };
    let header = Header::parse(data)?;
    let mac = header.mac.unwrap_or(adv.address);
    let mut decoded = Decoded {
        brand: BRAND,
        model: model(header.product),
        packet_id: Some(u32::from(header.counter)),
        ..Decoded::default()
    };
    if !header.has_objects {
        return Ok(Some(decoded));
    }
    let body = data.get(header.body_start..header.body_end).unwrap_or_default();
    let objects = if header.encrypted {
        let key = key.ok_or(DecodeError::NeedsKey { format: FORMAT })?;
        decoded.encrypted = true;
        if header.version >= 4 {
            decrypt_v4(&header, mac, key, body)?
        } else {
            let plain = decrypt_legacy(&header, data, mac, key, body)?;
            // No MIC: a wrong key shows only as objects that do not make sense.
            match split_objects(&plain) {
                Ok(list) if list.iter().all(|(id, d)| known(*id, d.len())) => plain,
                _ => return Err(DecodeError::WrongKey { format: FORMAT }),
            }
        }
    } else {
        body.to_vec()
    };
    let list = split_objects(&objects).map_err(|why| DecodeError::malformed(FORMAT, why))?;
    let mut out = Out::default();
    for (id, object) in list {
        let Some(spec) = OBJECTS.iter().find(|o| o.id == id) else {
            continue; // an object this decoder does not know
        };
        if object.len() < spec.min || object.len() > spec.max {
            let expected =
                if spec.min == spec.max { format!("{}", spec.min) } else { format!("{} to {}", spec.min, spec.max) };
            return Err(DecodeError::malformed(
                FORMAT,
                format!("object 0x{id:04X} ({}) has {} data bytes, expected {expected}", spec.name, object.len()),
            ));
        }
        (spec.read)(Ctx { product: header.product, id }, object, &mut out)?;
    }
    decoded.readings = out.readings;
    decoded.events = out.events;
    Ok(Some(decoded))
}

/// The model name of a product id.
fn model(product: u16) -> String {
    PRODUCTS
        .iter()
        .find(|(id, _)| *id == product)
        .map_or_else(|| format!("MiBeacon device 0x{product:04X}"), |(_, name)| (*name).to_owned())
}

/// Whether an object id is in the table and takes data of this length.
fn known(id: u16, len: usize) -> bool {
    OBJECTS.iter().any(|o| o.id == id && (o.min..=o.max).contains(&len))
}

/// The frame up to the objects.
#[derive(Debug)]
struct Header {
    version: u8,
    encrypted: bool,
    has_objects: bool,
    product: u16,
    counter: u8,
    /// The MAC address in the frame, most significant byte first.
    mac: Option<Address>,
    /// Where the objects (or the encrypted objects and their trailer) start and end.
    body_start: usize,
    body_end: usize,
}

impl Header {
    /// Reads the frame control, product id, counter, MAC and capability.
    fn parse(data: &[u8]) -> Result<Header, DecodeError> {
        let short =
            |what: &str| DecodeError::malformed(FORMAT, format!("{} bytes is too short for the {what}", data.len()));
        let fixed = data.get(..5).ok_or_else(|| short("header (5 bytes)"))?;
        let control = le_u(fixed.get(..2).unwrap_or_default()) as u16;
        let version = (control >> 12) as u8;
        if !(2..=5).contains(&version) {
            return Err(DecodeError::Unsupported {
                format: FORMAT,
                what: format!("frame version {version} (this hub reads versions 2 to 5)"),
            });
        }
        let mut pos = 5;
        let mac = if control & 0x0010 != 0 {
            let bytes = data.get(pos..pos + 6).ok_or_else(|| short("MAC address"))?;
            pos += 6;
            let mut mac = [0u8; 6];
            for (m, b) in mac.iter_mut().zip(bytes.iter().rev()) {
                *m = *b;
            }
            Some(Address(mac))
        } else {
            None
        };
        if control & 0x0020 != 0 {
            let capability = *data.get(pos).ok_or_else(|| short("capability"))?;
            pos += 1;
            if (capability >> 3) & 0x03 == 0x03 {
                pos += 2; // bond ability 3: two bytes of the gateway's Wi-Fi MAC
            }
            if capability & 0x20 != 0 {
                pos += 2; // I/O capability
            }
            if pos > data.len() {
                return Err(short("capability"));
            }
        }
        let mut end = data.len();
        if control & 0x0080 != 0 {
            // Mesh state, 2 bytes at the end.
            end = end.checked_sub(2).filter(|e| *e >= pos).ok_or_else(|| short("mesh state"))?;
        }
        Ok(Header {
            version,
            encrypted: control & 0x0008 != 0,
            has_objects: control & 0x0040 != 0,
            product: le_u(fixed.get(2..4).unwrap_or_default()) as u16,
            counter: fixed.get(4).copied().unwrap_or_default(),
            mac,
            body_start: pos,
            body_end: end,
        })
    }
}

/// The MAC address least significant byte first, as in the frame and the nonces.
fn mac_on_air(mac: Address) -> [u8; 6] {
    let mut out = mac.0;
    out.reverse();
    out
}

/// Decrypts and authenticates the objects of a v4/v5 frame: `body` is ciphertext, extended
/// counter (3) and MIC (4).
fn decrypt_v4(header: &Header, mac: Address, key: &[u8], body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let key: [u8; 16] = key.try_into().map_err(|_| DecodeError::Unsupported {
        format: FORMAT,
        what: format!(
            "a {}-byte key for a MiBeacon v{} frame (its bind key has 16 bytes, 32 hex digits)",
            key.len(),
            header.version
        ),
    })?;
    let split = body.len().checked_sub(7).ok_or_else(|| {
        DecodeError::malformed(
            FORMAT,
            format!(
                "an encrypted v{} frame needs 7 bytes of counter and MIC, it has {} after its header",
                header.version,
                body.len()
            ),
        )
    })?;
    let (ciphertext, trailer) = body.split_at(split);
    let (ext, mic) = trailer.split_at(3);
    let mut nonce = [0u8; 12];
    let parts = mac_on_air(mac)
        .into_iter()
        .chain(header.product.to_le_bytes())
        .chain([header.counter])
        .chain(ext.iter().copied());
    for (n, b) in nonce.iter_mut().zip(parts) {
        *n = b;
    }
    let mut tag = [0u8; 4];
    for (t, b) in tag.iter_mut().zip(mic) {
        *t = *b;
    }
    let mut plain = ciphertext.to_vec();
    MiCcm::new(&key.into())
        .decrypt_in_place_detached(&nonce.into(), &AAD, &mut plain, &tag.into())
        .map_err(|_| DecodeError::WrongKey { format: FORMAT })?;
    Ok(plain)
}

/// Decrypts the objects of a v2/v3 frame: `body` is ciphertext, extended counter (3) and one
/// byte. AES-CCM without its MIC is AES-CTR over counter blocks `01 | nonce (13) | i (2)`,
/// `i` from 1.
fn decrypt_legacy(header: &Header, data: &[u8], mac: Address, key: &[u8], body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let key: [u8; 16] = match key.len() {
        12 => {
            let mut wide = [0u8; 16];
            let parts = key.iter().take(6).chain(LEGACY_KEY_FILL.iter()).chain(key.iter().skip(6));
            for (w, b) in wide.iter_mut().zip(parts) {
                *w = *b;
            }
            wide
        }
        // Already widened.
        16 if key.get(6..10) == Some(&LEGACY_KEY_FILL[..]) => key.try_into().unwrap_or([0; 16]),
        n => {
            return Err(DecodeError::Unsupported {
                format: FORMAT,
                what: format!(
                    "a {n}-byte key for a MiBeacon v{} frame (its key has 12 bytes, 24 hex digits)",
                    header.version
                ),
            });
        }
    };
    let split = body.len().checked_sub(4).ok_or_else(|| {
        DecodeError::malformed(
            FORMAT,
            format!(
                "an encrypted v{} frame needs 4 bytes of counter after its objects, it has {} after its header",
                header.version,
                body.len()
            ),
        )
    })?;
    let (ciphertext, trailer) = body.split_at(split);
    let mut nonce = [0u8; 13];
    let parts =
        data.iter().take(5).copied().chain(trailer.iter().take(3).copied()).chain(mac_on_air(mac).into_iter().take(5));
    for (n, b) in nonce.iter_mut().zip(parts) {
        *n = b;
    }
    let aes = Aes128::new(&key.into());
    let mut plain = ciphertext.to_vec();
    for (i, chunk) in plain.chunks_mut(16).enumerate() {
        let mut block = [0u8; 16];
        let counter = (i as u16).wrapping_add(1).to_be_bytes();
        let parts = [0x01].into_iter().chain(nonce).chain(counter);
        for (b, p) in block.iter_mut().zip(parts) {
            *b = p;
        }
        let mut block = aes::Block::from(block);
        aes.encrypt_block(&mut block);
        for (c, k) in chunk.iter_mut().zip(block.iter()) {
            *c ^= *k;
        }
    }
    Ok(plain)
}

/// Splits objects: id (2), length (1), data. They must span `data` exactly.
fn split_objects(data: &[u8]) -> Result<Vec<(u16, &[u8])>, String> {
    let mut list = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let head = rest.get(..3).ok_or_else(|| format!("{} stray bytes after the objects", rest.len()))?;
        let id = le_u(head.get(..2).unwrap_or_default()) as u16;
        let len = usize::from(head.get(2).copied().unwrap_or_default());
        let object = rest.get(3..3 + len).ok_or_else(|| {
            format!("object 0x{id:04X} says {len} data bytes, {} are left", rest.len().saturating_sub(3))
        })?;
        list.push((id, object));
        rest = rest.get(3 + len..).unwrap_or_default();
    }
    Ok(list)
}

/// What the objects of one frame say.
#[derive(Debug, Default)]
struct Out {
    readings: Vec<Reading>,
    events: Vec<BleEvent>,
}

impl Out {
    fn number(&mut self, key: &str, capability: Capability, value: f64) {
        self.readings.push(Reading::number(key, capability, value));
    }

    fn flag(&mut self, key: &str, capability: Capability, value: bool) {
        self.readings.push(Reading::flag(key, capability, value));
    }

    fn other(&mut self, key: &str, value: Value, unit: Option<&'static str>) {
        self.readings.push(Reading::other(key, value, unit));
    }

    fn text(&mut self, key: &str, capability: Capability, value: &str) {
        self.readings.push(Reading {
            key: key.to_owned(),
            capability,
            value: Value::Text(value.to_owned()),
            unit: None,
        });
    }

    fn event(&mut self, key: String, event: &'static str, values: &'static [&'static str]) {
        self.events.push(BleEvent { key, event, values });
    }

    /// A button event; `number` counts from 1 (`button`, `button_2`, ...).
    fn button(&mut self, number: usize, event: &'static str) {
        self.event(button_key(number), event, BUTTON_EVENTS);
    }
}

/// The key of button `number` (from 1): `button`, `button_2`, `button_3` ...
fn button_key(number: usize) -> String {
    if number <= 1 { "button".to_owned() } else { format!("button_{number}") }
}

/// The first byte of an object (readers get at least their minimum length).
fn byte(data: &[u8]) -> u8 {
    data.first().copied().unwrap_or_default()
}

/// A little-endian IEEE 754 single, rounded to 2 decimals; an error when not finite.
fn float(c: Ctx, data: &[u8]) -> Result<f64, DecodeError> {
    let value = f64::from(f32::from_bits(le_u(data) as u32));
    if value.is_finite() {
        Ok(round(value, 2))
    } else {
        Err(DecodeError::malformed(FORMAT, format!("object 0x{:04X} is not a finite number", c.id)))
    }
}

fn read_temperature(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.number("temperature", Capability::Temperature, round(le_i(d) as f64 / 10.0, 1));
    Ok(())
}

fn read_humidity(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.number("humidity", Capability::Humidity, round(le_u(d) as f64 / 10.0, 1));
    Ok(())
}

fn read_temperature_humidity(c: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    read_temperature(c, d.get(..2).unwrap_or_default(), out)?;
    read_humidity(c, d.get(2..).unwrap_or_default(), out)
}

fn read_temperature_float(c: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.number("temperature", Capability::Temperature, float(c, d)?);
    Ok(())
}

fn read_humidity_float(c: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.number("humidity", Capability::Humidity, float(c, d)?);
    Ok(())
}

fn read_humidity_byte(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.number("humidity", Capability::Humidity, f64::from(byte(d)));
    Ok(())
}

fn read_body_temperature(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.number("temperature", Capability::Temperature, round(le_i(d) as f64 / 100.0, 2));
    Ok(())
}

fn read_kettle(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.flag("switch", Capability::OnOff, byte(d) != 0);
    out.number("temperature", Capability::Temperature, f64::from(d.get(1).copied().unwrap_or(0)));
    Ok(())
}

fn read_battery(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.number("battery", Capability::Battery, f64::from(byte(d)));
    Ok(())
}

fn read_battery_low(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.flag("battery_low", Capability::BatteryLow, byte(d) != 0);
    Ok(())
}

fn read_illuminance(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.number("illuminance", Capability::Illuminance, le_u(d) as f64);
    Ok(())
}

fn read_illuminance_float(c: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.number("illuminance", Capability::Illuminance, float(c, d)?);
    Ok(())
}

fn read_moisture(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.number("moisture", Capability::Moisture, f64::from(byte(d)));
    Ok(())
}

fn read_conductivity(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.other("conductivity", Value::Number(le_u(d) as f64), Some("µS/cm"));
    Ok(())
}

fn read_formaldehyde(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.number("formaldehyde", Capability::Formaldehyde, round(le_u(d) as f64 / 100.0, 2));
    Ok(())
}

fn read_switch(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.flag("switch", Capability::OnOff, byte(d) != 0);
    Ok(())
}

fn read_consumable(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.other("consumable", Value::Number(f64::from(byte(d))), Some("%"));
    Ok(())
}

fn read_sleep(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.other("sleeping", Value::Bool(byte(d) != 0), None);
    Ok(())
}

fn read_water_leak(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.flag("water_leak", Capability::WaterLeak, byte(d) != 0);
    Ok(())
}

/// Smoke: 0 normal, 1 fire alarm, 2 detector fault (others: self-test, test alarm).
fn read_smoke(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    match byte(d) {
        0 => out.flag("smoke", Capability::Smoke, false),
        1 => out.flag("smoke", Capability::Smoke, true),
        2 => out.other("smoke_detector_fault", Value::Bool(true), None),
        _ => {}
    }
    Ok(())
}

/// Gas: 0 no leak, 1 leak (others: fault, sensor states).
fn read_gas(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    match byte(d) {
        0 => out.flag("gas", Capability::Gas, false),
        1 => out.flag("gas", Capability::Gas, true),
        _ => {}
    }
    Ok(())
}

/// "Someone is near" (sensors without light measurement): motion.
fn read_motion(_: Ctx, _: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.flag("occupancy", Capability::Occupancy, true);
    Ok(())
}

/// Motion with illuminance (lx, 3 bytes); two products send a light flag instead.
fn read_motion_light(c: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.flag("occupancy", Capability::Occupancy, true);
    let value = le_u(d);
    if MOTION_LIGHT_FLAG.contains(&c.product) {
        out.other("light", Value::Bool(value >= 100), None);
    } else {
        out.number("illuminance", Capability::Illuminance, value as f64);
    }
    Ok(())
}

/// Motion with illuminance as a float (lx).
fn read_motion_illuminance(c: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    let lux = float(c, d)?;
    out.flag("occupancy", Capability::Occupancy, true);
    out.number("illuminance", Capability::Illuminance, lux);
    Ok(())
}

/// Seconds without motion (0: motion now). A one-byte 0x101B is a flag: 0 motion, 1 none.
fn read_no_motion(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    let value = le_u(d);
    out.flag("occupancy", Capability::Occupancy, value == 0);
    if d.len() > 1 {
        out.number("no_motion_time", Capability::Duration, value as f64);
    }
    Ok(())
}

fn read_occupancy(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.flag("occupancy", Capability::Occupancy, byte(d) != 0);
    Ok(())
}

fn read_pressure_present(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.number("occupied_time", Capability::Duration, le_u(d) as f64);
    Ok(())
}

fn read_pressure_absent(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.number("vacant_time", Capability::Duration, le_u(d) as f64);
    Ok(())
}

/// Light: 1 strong, 0 weak.
fn read_light(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.other("light", Value::Bool(byte(d) != 0), None);
    Ok(())
}

/// Door/window sensor: 0 open, 1 closed, 2 left open too long, 3 device reset.
fn read_door_window(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    match byte(d) {
        0 => {
            out.flag("contact", Capability::Contact, false);
            out.other("door_left_open", Value::Bool(false), None);
        }
        1 => {
            out.flag("contact", Capability::Contact, true);
            out.other("door_left_open", Value::Bool(false), None);
        }
        2 => {
            out.flag("contact", Capability::Contact, false);
            out.other("door_left_open", Value::Bool(true), None);
        }
        _ => {}
    }
    Ok(())
}

/// Door state property: 0 open, 1 closed (0xFF abnormal).
fn read_door_state(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    match byte(d) {
        0 => out.flag("contact", Capability::Contact, false),
        1 => out.flag("contact", Capability::Contact, true),
        _ => {}
    }
    Ok(())
}

/// MIoT opening: 1 open, 2 closed.
fn read_opening(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    match byte(d) {
        1 => out.flag("contact", Capability::Contact, false),
        2 => out.flag("contact", Capability::Contact, true),
        _ => {}
    }
    Ok(())
}

/// Door not closed in time (1).
fn read_door_not_closed(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    if byte(d) == 1 {
        out.flag("contact", Capability::Contact, false);
        out.other("door_left_open", Value::Bool(true), None);
    }
    Ok(())
}

/// The sensor was forced off the door (1).
fn read_forced_open(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.flag("tamper", Capability::Tamper, byte(d) == 1);
    Ok(())
}

/// A lock's door event: 0 open, 1 closed, 2 left open, 3 knock, 4 pried, 5 stuck; an optional
/// timestamp follows.
fn read_lock_door(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    match byte(d) {
        0 => out.flag("contact", Capability::Contact, false),
        1 => out.flag("contact", Capability::Contact, true),
        2 => {
            out.flag("contact", Capability::Contact, false);
            out.other("door_left_open", Value::Bool(true), None);
        }
        3 => out.event("door".to_owned(), "knock", DOOR_EVENTS),
        4 => {
            out.flag("tamper", Capability::Tamper, true);
            out.event("door".to_owned(), "pry", DOOR_EVENTS);
        }
        5 => out.event("door".to_owned(), "stuck", DOOR_EVENTS),
        _ => {}
    }
    Ok(())
}

/// Who a lock's key id names: `administrator`, `fingerprint 2`, ...
fn lock_key(id: u32) -> String {
    match id {
        0 => "administrator".to_owned(),
        0xFFFF_FFFF => "unknown".to_owned(),
        0xDEAD_BEEF => "invalid".to_owned(),
        1..=0x7FFF_FFFF => format!("bluetooth {id}"),
        _ => {
            let kind = LOCK_KEY_KINDS.iter().find(|(k, _)| u32::from(*k) == id >> 16);
            match kind {
                Some((_, name)) => format!("{name} {}", id & 0xFFFF),
                None => format!("0x{id:08X}"),
            }
        }
    }
}

/// A lock operation: action and method (1), key id or exception (4), timestamp (4).
fn read_lock(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    let op = byte(d);
    let id = le_u(d.get(1..5).unwrap_or_default()) as u32;
    if let Some((_, action, state)) = LOCK_ACTIONS.iter().find(|(a, _, _)| *a == op & 0x0F) {
        if let Some(state) = state {
            out.text("lock", Capability::Lock, state);
        }
        match op & 0x0F {
            0x2 | 0x3 => out.other("anti_lock", Value::Bool(op & 0x0F == 0x2), None),
            0x6 | 0x7 => out.other("child_lock", Value::Bool(op & 0x0F == 0x6), None),
            _ => {}
        }
        out.other("lock_action", Value::Text((*action).to_owned()), None);
    }
    if let Some((_, method)) = LOCK_METHODS.iter().find(|(m, _)| *m == op >> 4) {
        out.other("lock_method", Value::Text((*method).to_owned()), None);
    }
    match LOCK_ERRORS.iter().find(|(e, _)| *e == id) {
        Some((_, error)) => out.other("lock_error", Value::Text((*error).to_owned()), None),
        None => out.other("lock_key", Value::Text(lock_key(id)), None),
    }
    Ok(())
}

/// Lock state bits: bit 0 latch bolt out (locked), bit 3 child lock on.
fn read_lock_state(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    let state = byte(d);
    out.text("lock", Capability::Lock, if state & 0x01 != 0 { "locked" } else { "unlocked" });
    out.other("child_lock", Value::Bool(state & 0x08 != 0), None);
    Ok(())
}

/// Fingerprint: key id (4), match result (1).
fn read_fingerprint(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    let id = le_u(d.get(..4).unwrap_or_default()) as u32;
    out.other("lock_key", Value::Text(lock_key(id)), None);
    if let Some(result) = FINGERPRINT_EVENTS.get(usize::from(d.get(4).copied().unwrap_or(0xFF))) {
        out.event("fingerprint".to_owned(), result, FINGERPRINT_EVENTS);
    }
    Ok(())
}

/// Toothbrush: 0 brushing started, 1 ended (with the score, 0-100, as second byte).
fn read_toothbrush(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    let started = byte(d) == 0;
    out.other("brushing", Value::Bool(started), None);
    if let (false, Some(score)) = (started, d.get(1)) {
        out.other("brushing_score", Value::Number(f64::from(*score)), None);
    }
    Ok(())
}

/// Toothbrush with a timestamp: type (1), timestamp (4), score on the end event (1).
fn read_toothbrush_timed(c: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    let score: Vec<u8> = d.iter().take(1).chain(d.get(5)).copied().collect();
    read_toothbrush(c, &score, out)
}

/// Button object 0x1001: button (1), value (1), press type (1).
fn read_button(c: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    let (index, value, kind) = (byte(d), d.get(1).copied().unwrap_or(0), d.get(2).copied().unwrap_or(0));
    match c.product {
        DIMMER => read_dimmer(index, value, kind, out),
        CUBE => match index {
            0 => out.event("cube".to_owned(), "rotate_right", CUBE_EVENTS),
            1 => out.event("cube".to_owned(), "rotate_left", CUBE_EVENTS),
            _ => {}
        },
        p if K9B.contains(&p) => {
            let event = match kind {
                0 => "press",
                1 => "long_press",
                2 => "double_press",
                _ => return Ok(()),
            };
            for number in k9b_buttons(p, index) {
                out.button(usize::from(*number), event);
            }
        }
        _ => {
            let event = match kind {
                0 => "press",
                1 => "double_press",
                2 => "long_press",
                3 => "triple_press",
                _ => return Ok(()),
            };
            out.button(usize::from(index) + 1, event);
        }
    }
    Ok(())
}

/// The buttons (from 1) a K9B switch's button code stands for (codes name combinations).
fn k9b_buttons(product: u16, code: u8) -> &'static [u8] {
    match (product, code) {
        (0x1568, 0) => &[1],
        (0x1569, 0) => &[1],
        (0x1569, 1) => &[2],
        (0x1569, 2) => &[1, 2],
        (0x0DFD, 0) => &[1],
        (0x0DFD, 1) => &[2],
        (0x0DFD, 2) => &[3],
        (0x0DFD, 3) => &[1, 2],
        (0x0DFD, 4) => &[2, 3],
        (0x0DFD, 5) => &[1, 3],
        (0x0DFD, 6) => &[1, 2, 3],
        _ => &[],
    }
}

/// The YLKG07YL/YLKG08YL knob: type 3 a press (count in `value`) or, button 1, a long press;
/// type 4 a rotation by `value` steps (signed), or by `index` steps while pressed.
fn read_dimmer(index: u8, value: u8, kind: u8, out: &mut Out) {
    let steps = |v: u8| if v <= 127 { (false, f64::from(v)) } else { (true, 256.0 - f64::from(v)) };
    match (kind, index) {
        (3, 0) => {
            out.event("dimmer".to_owned(), "press", DIMMER_EVENTS);
            out.other("dimmer_presses", Value::Number(f64::from(value)), None);
        }
        (3, 1) => out.event("dimmer".to_owned(), "long_press", DIMMER_EVENTS),
        (4, 0) => {
            let (left, n) = steps(value);
            out.event("dimmer".to_owned(), if left { "rotate_left" } else { "rotate_right" }, DIMMER_EVENTS);
            out.other("dimmer_steps", Value::Number(n), None);
        }
        (4, pressed) => {
            let (left, n) = steps(pressed);
            let event = if left { "rotate_left_pressed" } else { "rotate_right_pressed" };
            out.event("dimmer".to_owned(), event, DIMMER_EVENTS);
            out.other("dimmer_steps", Value::Number(n), None);
        }
        _ => {}
    }
}

/// The event of a click object: 0x..0C click, 0x..0D double click, 0x..0E long press.
fn click_event(id: u16) -> &'static str {
    match id & 0x00FF {
        0x0D => "double_press",
        0x0E => "long_press",
        _ => "press",
    }
}

/// 0x4A0C-0x4A0E: no data (one button) or the button's index from 0.
fn read_click_index(c: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    out.button(d.first().map_or(1, |i| usize::from(*i) + 1), click_event(c.id));
    Ok(())
}

/// 0x4E0C-0x4E0E: no data (one button) or a mask of buttons (1 first, 2 second, 3 both); the
/// K9BB single button sends its press type instead (1 press, 8 long, 15 double).
fn read_click_mask(c: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    match d.first() {
        None => out.button(1, click_event(c.id)),
        Some(code) if c.product == K9BB => match code {
            1 => out.button(1, "press"),
            8 => out.button(1, "long_press"),
            15 => out.button(1, "double_press"),
            _ => {}
        },
        Some(mask) => {
            for bit in 0..8 {
                if mask & (1 << bit) != 0 {
                    out.button(bit + 1, click_event(c.id));
                }
            }
        }
    }
    Ok(())
}

/// 0x560C-0x560E: no data (one button) or the button's number from 1.
fn read_click_number(c: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    match d.first() {
        None => out.button(1, click_event(c.id)),
        Some(0) => {}
        Some(n) => out.button(usize::from(*n), click_event(c.id)),
    }
    Ok(())
}

/// A one-byte click (1).
fn read_button_click(_: Ctx, d: &[u8], out: &mut Out) -> Result<(), DecodeError> {
    if byte(d) == 1 {
        out.button(1, "press");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Example frames and bind keys from the test suites of `xiaomi-ble`
    //! (Bluetooth-Devices/xiaomi-ble, tests/test_parser.py) and `ble_monitor`
    //! (custom-components/ble_monitor, test_xiaomi_parser.py); the ones those suites call
    //! synthesized are marked so.

    use super::*;
    use crate::decode::testing::{XorShift, hex};
    use crate::decode::uuid16;

    fn adv_of(data: &[u8], address: &str) -> Advertisement {
        let mut adv = Advertisement { address: address.parse().unwrap(), ..Default::default() };
        adv.service_data.insert(uuid16(SERVICE), data.to_vec());
        adv
    }

    fn run(frame: &str, address: &str, key: Option<&str>) -> Result<Option<Decoded>, DecodeError> {
        let key = key.map(hex);
        decode(&adv_of(&hex(frame), address), key.as_deref())
    }

    fn read(frame: &str, address: &str, key: Option<&str>) -> Decoded {
        run(frame, address, key).unwrap().unwrap()
    }

    fn num(key: &str, capability: Capability, value: f64) -> Reading {
        Reading::number(key, capability, value)
    }

    fn flag(key: &str, capability: Capability, value: bool) -> Reading {
        Reading::flag(key, capability, value)
    }

    fn other(key: &str, value: Value, unit: Option<&'static str>) -> Reading {
        Reading::other(key, value, unit)
    }

    fn text(key: &str, value: &str) -> Reading {
        Reading::other(key, Value::Text(value.to_owned()), None)
    }

    fn lock(state: &str) -> Reading {
        Reading {
            key: "lock".to_owned(),
            capability: Capability::Lock,
            value: Value::Text(state.to_owned()),
            unit: None,
        }
    }

    fn button(key: &str, event: &'static str) -> BleEvent {
        BleEvent { key: key.to_owned(), event, values: BUTTON_EVENTS }
    }

    fn event(key: &str, event: &'static str, values: &'static [&'static str]) -> BleEvent {
        BleEvent { key: key.to_owned(), event, values }
    }

    /// Asserts everything a frame says.
    fn check(d: &Decoded, model: &str, packet: u32, encrypted: bool, readings: Vec<Reading>, events: Vec<BleEvent>) {
        assert_eq!(d.brand, "Xiaomi");
        assert_eq!(d.model, model);
        assert_eq!(d.packet_id, Some(packet));
        assert_eq!(d.encrypted, encrypted);
        assert_eq!(d.identity, None);
        assert_eq!(d.readings, readings);
        assert_eq!(d.events, events);
    }

    use Capability as C;

    // Keys of the examples.
    const K_LYWSD03MMC: &str = "e9ea895fac7cca6d30532432a516f3a8";
    const K_RTCGQ02LM: &str = "4960bb9f8711b4ffd7df1756d11427ae";
    const K_HS1BB: &str = "7475a4a77584401780ffc3ee62dd353c";
    const K_MS1BB: &str = "0fdcc30fe9289254876b5ef7c11ef1f0";
    const K_XMWXKG01YL: &str = "b93eb3787eabda352edd94b667f5d5a9";
    const K_XMWXKG01LM: &str = "c533a5ab361b0a24de4d21d1d9a3d8a1";
    const K_YLKG07YL: &str = "b853075158487ca39a5b5ea9";
    const K_KS: &str = "8bdff7d0f70fa7f5c68f42157b5fd65b";
    const K_XMZNMS08LM: &str = "2c3795afa33019a8afdc17ba99e6f217";
    const K_SV40: &str = "54d84797cb77f9538b224b305c877d1e";
    const K_PS1BB: &str = "8b72476b60fe2a0b63bf58d588fe4ea1";
    const K_XMWS01XS: &str = "59ba8eef0f5351bb09d6896762d5afa5";

    const LYWSD03MMC_ENC: &str = "58585b0550f4830238c1a495ef58763c26000097e2abb5";
    const YLKG07YL_PRESS: &str = "5830b603d28b98c54124f8c3491476757e00000099";
    const RTCGQ02LM_WRONG: &str = "58598d0a170fc4e044ef547cc27a5c03a1000000790df258";

    #[test]
    fn not_a_mibeacon() {
        let adv = Advertisement::default();
        assert_eq!(decode(&adv, None), Ok(None));
        let mut adv = Advertisement::default();
        adv.service_data.insert(uuid16(0xFCD2), vec![0x40, 0x00]);
        assert_eq!(decode(&adv, None), Ok(None));
    }

    #[test]
    fn lywsdcgq_v2_plain() {
        // Two objects in one frame: temperature and humidity, then battery.
        let d = read("5020aa01a3bf2e3b342d580d1004b40095020a10013b", "58:2D:34:3B:2E:BF", None);
        let expected = vec![
            num("temperature", C::Temperature, 18.0),
            num("humidity", C::Humidity, 66.1),
            num("battery", C::Battery, 59.0),
        ];
        check(&d, "LYWSDCGQ", 163, false, expected, vec![]);
        let d = read("5020aa01da219335342d580d1004fe004802", "58:2D:34:35:93:21", None);
        let expected = vec![num("temperature", C::Temperature, 25.4), num("humidity", C::Humidity, 58.4)];
        check(&d, "LYWSDCGQ", 218, false, expected, vec![]);
    }

    #[test]
    fn lywsd03mmc_v3_plain_and_same_payload_models() {
        // LYWSD03MMC is a real capture; the other models are the suite's synthesized frames
        // (the same payload under their product ids).
        let frames = [
            ("50305b05034c94b438c1a40d10041001ea01", "LYWSD03MMC"),
            ("50305b04034c94b438c1a40d10041001ea01", "LYWSD02"),
            ("50303c0c034c94b438c1a40d10041001ea01", "CGC1"),
            ("50307605034c94b438c1a40d10041001ea01", "CGD1"),
            ("5030d306034c94b438c1a40d10041001ea01", "MHO-C303"),
            ("50308703034c94b438c1a40d10041001ea01", "MHO-C401"),
        ];
        for (frame, model) in frames {
            let d = read(frame, "A4:C1:38:B4:94:4C", None);
            let expected = vec![num("temperature", C::Temperature, 27.2), num("humidity", C::Humidity, 49.0)];
            check(&d, model, 3, false, expected, vec![]);
        }
    }

    #[test]
    fn lywsd03mmc_v5_encrypted() {
        let d = read(LYWSD03MMC_ENC, "A4:C1:38:02:83:F4", Some(K_LYWSD03MMC));
        check(&d, "LYWSD03MMC", 80, true, vec![num("humidity", C::Humidity, 46.7)], vec![]);
    }

    #[test]
    fn qingping_thermometers_v5_encrypted() {
        let d = read(
            "5858480b685f12342d585a0b1841e2aa000e00a4964fb5",
            "5A:58:2D:34:12:5F",
            Some("814aac74c4f17b6c1581e1ab87816b99"),
        );
        check(&d, "CGG1", 104, true, vec![num("humidity", C::Humidity, 59.6)], vec![]);
        let d = read(
            "58586f0607892012342d585f176dd54f0200002fa453fa",
            "58:2D:34:12:20:89",
            Some("a3bfe9853dd85a620debe3620caaa351"),
        );
        check(&d, "CGDK2", 7, true, vec![num("temperature", C::Temperature, 22.6)], vec![]);
        // No MAC in the frame: the nonce takes the sender's address.
        let d = read(
            "4858594fef546f0e7450729321010038d74333",
            "58:2D:34:87:94:0C",
            Some("872ea1bb02ba9713e885cb054c537368"),
        );
        check(&d, "CGDK3", 239, true, vec![num("temperature", C::Temperature, 23.8)], vec![]);
    }

    #[test]
    fn lywsd02mmc_miot_objects() {
        let d = read(
            "5858e4162c84535638c1a42b6ef2e91200006c884d9e",
            "A4:C1:38:56:53:84",
            Some("a115210eed7a88e50ad52662e732a9fb"),
        );
        check(&d, "LYWSD02MMC", 44, true, vec![num("humidity", C::Humidity, 58.0)], vec![]);
        let key = Some("19b1c678ab0a8bc3dc77765f059188d4");
        // 0x4C01, a float, in a frame without the MAC.
        let d = read("4858422529202d8c7a76b756a82a0078b8224e", "A4:C1:38:0E:FD:78", key);
        check(&d, "LYWSD02MMC", 41, true, vec![num("temperature", C::Temperature, 26.1)], vec![]);
        let d = read("585842258878fd0e38c1a405f6538aa72a0062b1a966", "A4:C1:38:0E:FD:78", key);
        check(&d, "LYWSD02MMC", 136, true, vec![num("humidity", C::Humidity, 38.0)], vec![]);
    }

    #[test]
    fn xmwsdj04mmc_and_mjwsd06mmc_float_objects() {
        let d = read(
            "48590312a41b776e7c96add7000000f2bf545b",
            "2C:11:65:25:70:04",
            Some("b2cf9a553d53571b5657defd582d676e"),
        );
        check(&d, "XMWSDJ04MMC", 164, true, vec![num("humidity", C::Humidity, 45.0)], vec![]);
        let key = Some("4d8f1373fb4d3bab557d0ebd1c78f8c4");
        let d = read("4859b5553a8699bda053448f1200005b046d6a", "A4:C1:38:80:15:07", key);
        check(&d, "MJWSD06MMC", 58, true, vec![num("temperature", C::Temperature, 25.2)], vec![]);
        let d = read("5859b5553407158038c1a4bcc732980e000066960f10", "A4:C1:38:80:15:07", key);
        check(&d, "MJWSD06MMC", 52, true, vec![num("humidity", C::Humidity, 39.0)], vec![]);
    }

    #[test]
    fn ks2bb_thermometer_and_button() {
        let key = Some(K_KS);
        let d = read("48590b52b3c1b85c50f35c570900004a9ed6b8", "A4:C1:38:A1:FE:E6", key);
        check(&d, "KS2BB", 179, true, vec![num("temperature", C::Temperature, 26.2)], vec![]);
        let d = read("58590b526ce6fea138c1a4430540670b00004c4445f1", "A4:C1:38:A1:FE:E6", key);
        check(&d, "KS2BB", 108, true, vec![num("humidity", C::Humidity, 71.0)], vec![]);
        // 0x560C without data: the one button.
        let d = read("58590b52b4e6fea138c1a4308fa80900000de1ebdb", "A4:C1:38:A1:FE:E6", key);
        check(&d, "KS2BB", 180, true, vec![], vec![button("button", "press")]);
    }

    #[test]
    fn esm787_v5_plain_and_announcement() {
        // Synthesized in the suite from a real announcement.
        let d = read("5059db780df4f80238c1a40d1004eb00e701", "A4:C1:38:02:F8:F4", None);
        let expected = vec![num("temperature", C::Temperature, 23.5), num("humidity", C::Humidity, 48.7)];
        check(&d, "ESM787", 13, false, expected, vec![]);
        let d = read("1059db780df4f80238c1a4", "A4:C1:38:02:F8:F4", None);
        check(&d, "ESM787", 13, false, vec![], vec![]);
    }

    #[test]
    fn announcement_without_objects() {
        // v5, capability byte, MAC, no object: who it is and nothing more.
        let d = read("30585b0502483cd438c1a408", "A4:C1:38:D4:3C:48", None);
        check(&d, "LYWSD03MMC", 2, false, vec![], vec![]);
    }

    #[test]
    fn plant_sensors_v2_with_capability() {
        let d = read("7120980012f34f6b8d7cc40d041002c400", "C4:7C:8D:6B:4F:F3", None);
        check(&d, "HHCCJCY01", 18, false, vec![num("temperature", C::Temperature, 19.6)], vec![]);
        let address = "C4:7C:8D:6A:3E:7A";
        let d = read("71209800667a3e6a8d7cc40d071003000000", address, None);
        check(&d, "HHCCJCY01", 102, false, vec![num("illuminance", C::Illuminance, 0.0)], vec![]);
        let d = read("71209800687a3e6a8d7cc40d0910025702", address, None);
        let conductivity = other("conductivity", Value::Number(599.0), Some("µS/cm"));
        check(&d, "HHCCJCY01", 104, false, vec![conductivity.clone()], vec![]);
        let d = read("71209800477a3e6a8d7cc40d08100140", address, None);
        check(&d, "HHCCJCY01", 71, false, vec![num("moisture", C::Moisture, 64.0)], vec![]);
        let d = read("71209800697a3e6a8d7cc40d041002f400", address, None);
        check(&d, "HHCCJCY01", 105, false, vec![num("temperature", C::Temperature, 24.4)], vec![]);
        let d = read("7120bc03cd3e596d8d7cc40d0410023c01", "C4:7C:8D:6D:59:3E", None);
        check(&d, "GCLS002", 205, false, vec![num("temperature", C::Temperature, 31.6)], vec![]);
        // Synthesized: two objects.
        let d = read("71205d01015d01008d7cc40d081001400910025702", "C4:7C:8D:00:01:5D", None);
        let expected = vec![num("moisture", C::Moisture, 64.0), conductivity];
        check(&d, "HHCCPOT002", 1, false, expected, vec![]);
    }

    #[test]
    fn formaldehyde_and_consumable_v4_plain() {
        // Synthesized in the suite.
        let d = read("5040df0201df02008d7cc41010027d00", "C4:7C:8D:00:02:DF", None);
        check(&d, "JQJCY01YM", 1, false, vec![num("formaldehyde", C::Formaldehyde, 1.25)], vec![]);
        let d = read("50400a04010a04008d7cc41310015a", "C4:7C:8D:00:04:0A", None);
        let consumable = other("consumable", Value::Number(90.0), Some("%"));
        check(&d, "WX08ZM", 1, false, vec![consumable], vec![]);
    }

    #[test]
    fn door_window_sensors() {
        let d = read(
            "58588b09a3ae2181ecaae40e2c553c040000d28a500c",
            "E4:AA:EC:81:21:AE",
            Some("017e52d2684779298709b117c0a75a7b"),
        );
        let expected = vec![flag("contact", C::Contact, false), other("door_left_open", Value::Bool(true), None)];
        check(&d, "MCCGQ02HL", 163, true, expected, vec![]);
        // Synthesized: opened.
        let d = read("5040d60301d6030a38c1a419100100", "A4:C1:38:0A:03:D6", None);
        let expected = vec![flag("contact", C::Contact, false), other("door_left_open", Value::Bool(false), None)];
        check(&d, "CGH1", 1, false, expected, vec![]);
    }

    #[test]
    fn ms1bb_miot_door_objects() {
        let address = "A4:C1:38:66:E5:67";
        let d = read("585989189a67e56638c1a49dd97af3260000c8a60bd5", address, Some(K_MS1BB));
        check(&d, "MS1BB(MI)", 154, true, vec![flag("contact", C::Contact, false)], vec![]);
        let d = read("585989187567e56638c1a469ddf3a1260000a24a1b45", address, Some(K_MS1BB));
        check(&d, "MS1BB(MI)", 117, true, vec![flag("contact", C::Contact, true)], vec![]);
        let d = read("585989189167e56638c1a4d6120d6d2600006fbc0cb4", address, Some(K_MS1BB));
        check(&d, "MS1BB(MI)", 145, true, vec![], vec![button("button", "press")]);
        let d = read("505989180167e56638c1a41a4a0101", address, None);
        let expected = vec![flag("contact", C::Contact, false), other("door_left_open", Value::Bool(true), None)];
        check(&d, "MS1BB(MI)", 1, false, expected, vec![]);
    }

    #[test]
    fn rtcgq02lm_motion_light_and_timeout() {
        let address = "18:C2:3C:20:8E:77";
        let d = read("58598d0a8c778e203cc2185a273628ec32060000c4264015", address, Some(K_RTCGQ02LM));
        let expected = vec![flag("occupancy", C::Occupancy, true), other("light", Value::Bool(true), None)];
        check(&d, "RTCGQ02LM", 140, true, expected, vec![]);
        let d = read("48598d0a927953750fed0f990600005cad2c29", address, Some(K_RTCGQ02LM));
        let expected = vec![flag("occupancy", C::Occupancy, false), num("no_motion_time", C::Duration, 30.0)];
        check(&d, "RTCGQ02LM", 146, true, expected, vec![]);
    }

    #[test]
    fn motion_with_light_by_product() {
        // Synthesized in the suite: object 0x000F with 100.
        let d = read("5040830a0183000a38c1a40f0003640000", "A4:C1:38:0A:00:83", None);
        let expected = vec![flag("occupancy", C::Occupancy, true), num("illuminance", C::Illuminance, 100.0)];
        check(&d, "CGPR1", 1, false, expected, vec![]);
        let d = read("5040f6070101f60738c1a40f0003640000", "A4:C1:38:07:F6:01", None);
        let expected = vec![flag("occupancy", C::Occupancy, true), other("light", Value::Bool(true), None)];
        check(&d, "MJYD02YL", 1, false, expected, vec![]);
        let d = read("4030dd032403000101", "DE:70:E8:B2:39:0C", None);
        check(&d, "MUE4094RT", 36, false, vec![flag("occupancy", C::Occupancy, true)], vec![]);
    }

    #[test]
    fn linptech_and_xiaomi_presence_sensors() {
        let address = "A4:C1:38:05:8E:E9";
        let d = read("5859eb2a9ee98e0538c1a4d07ad3e338000033635d10", address, Some(K_HS1BB));
        check(&d, "HS1BB(MI)", 158, true, vec![num("battery", C::Battery, 100.0)], vec![]);
        let d = read("5859eb2ac1e98e0538c1a40759530f8d380000b77a70f8", address, Some(K_HS1BB));
        let expected = vec![flag("occupancy", C::Occupancy, false), num("no_motion_time", C::Duration, 60.0)];
        check(&d, "HS1BB(MI)", 193, true, expected, vec![]);
        let d = read("4859eb2ac2fce02ca0b43af2380000a2d9f05f", address, Some(K_HS1BB));
        let expected = vec![flag("occupancy", C::Occupancy, true), num("illuminance", C::Illuminance, 228.0)];
        check(&d, "HS1BB(MI)", 194, true, expected, vec![]);
        let d = read(
            "485931350b64799117331ef4020000c5d2f6ac",
            "DC:8E:95:2D:EA:43",
            Some("685d647dc5e7bc9bcfcf5a1357bd2114"),
        );
        let expected = vec![flag("occupancy", C::Occupancy, true), num("illuminance", C::Illuminance, 51.0)];
        check(&d, "XMPIRO2SXS", 11, true, expected, vec![]);
        let es3 = Some("b26295a7a08fbac306c8706ade7f0fe4");
        let d = read("4859fb50d986d27e8f5313e900000030ad6da8", "A4:C1:38:C7:C3:76", es3);
        check(&d, "ES3", 217, true, vec![num("illuminance", C::Illuminance, 173.0)], vec![]);
        let d = read("5859fb50da76c3c738c1a4aabc4c16000000c60c1646", "A4:C1:38:C7:C3:76", es3);
        check(&d, "ES3", 218, true, vec![flag("occupancy", C::Occupancy, true)], vec![]);
        let d = read(
            "5859fb50328a88a438c1a4458a85b796000048fe13ba",
            "A4:C1:38:A4:88:8A",
            Some("fb352ea2139ab095877a9e2ae600c912"),
        );
        check(&d, "ES3", 50, true, vec![flag("occupancy", C::Occupancy, false)], vec![]);
        let d = read(
            "485983460ddc213ce981da7ae202004441f88c",
            "0C:43:14:A1:41:1E",
            Some("0a4552cb19a639b72b8ed09bde6d5bfa"),
        );
        check(&d, "XMOSB01XS", 13, true, vec![num("illuminance", C::Illuminance, 38.0)], vec![]);
        let d = read(
            "585983461fbdb1c46748d49d1efd8c040000e57e873a",
            "D4:48:67:C4:B1:BD",
            Some("920ce119b34410d38251ccea54c0f915"),
        );
        check(&d, "XMOSB01XS", 31, true, vec![flag("occupancy", C::Occupancy, false)], vec![]);
        let es5 = Some("068a081b4e5aa7295ebf263585adf4f1");
        let d = read("48590f6abc7a1f20cfb0b0971c00009dad6cca", "E8:B5:27:74:91:EE", es5);
        check(&d, "ES5BB", 188, true, vec![num("illuminance", C::Illuminance, 8.0)], vec![]);
        let d = read("58590f6a11ee917427b5e83567ac0e1c0000f681b610", "E8:B5:27:74:91:EE", es5);
        check(&d, "ES5BB", 17, true, vec![flag("occupancy", C::Occupancy, true)], vec![]);
    }

    #[test]
    fn ps1bb_seat_sensor() {
        // Frame control 0x5859: bit 0 set and not registered.
        let address = "A4:C1:38:BE:EF:12";
        let d = read("59584c3f2012efbe38c1a4bbacc927535b030000004cdc48fd", address, Some(K_PS1BB));
        check(&d, "PS1BB", 32, true, vec![num("occupied_time", C::Duration, 7800.0)], vec![]);
        let d = read("58594c3f1012efbe38c1a47f7b3e9500000035019b75", address, Some(K_PS1BB));
        check(&d, "PS1BB", 16, true, vec![flag("occupancy", C::Occupancy, true)], vec![]);
        let d = read("59584c3f2212efbe38c1a4da2cec2100000029c7c0c7", address, Some(K_PS1BB));
        check(&d, "PS1BB", 34, true, vec![num("battery", C::Battery, 100.0)], vec![]);
    }

    #[test]
    fn smoke_and_water() {
        let key = Some("5b51a7c91cde6707c9ef18dfda143a58");
        let address = "54:EF:44:E3:9C:BC";
        let d = read("5859970966bc9ce344ef5401081205000000715ebe90", address, key);
        check(&d, "JTYJGD03MI", 102, true, vec![flag("smoke", C::Smoke, true)], vec![]);
        let d = read("5859970964bc9ce344ef5422206088fd000000003a148fb3", address, key);
        check(&d, "JTYJGD03MI", 100, true, vec![], vec![button("button", "press")]);
        let d = read(
            "5859630808bc27e044ef54f58fe704000000fc69d15c",
            "54:EF:44:E0:27:BC",
            Some("255e6cabb39b2eddd0de992b9fee2bf2"),
        );
        check(&d, "SJWS01LM", 8, true, vec![flag("water_leak", C::WaterLeak, true)], vec![]);
        let d = read(
            "58590f3f4a674cb938c1a4d6e57b83040000d01e0b4b",
            "A4:C1:38:B9:4C:67",
            Some("33ede53321bc73c790a8daae4581f3d5"),
        );
        check(&d, "RS1BB(MI)", 74, true, vec![flag("water_leak", C::WaterLeak, false)], vec![]);
    }

    #[test]
    fn xmwxkg01yl_two_buttons() {
        let address = "DC:ED:83:87:12:73";
        let key = Some(K_XMWXKG01YL);
        let d = read("585949194f73128783eddc0b34380a0200008d49ae28", address, key);
        check(&d, "XMWXKG01YL", 79, true, vec![], vec![button("button_2", "press")]);
        // Synthesized in the suite (re-encrypted with the same key).
        let cases = [
            ("585949190a73128783eddcd2087dbd010000236b5770", vec![button("button", "press")]),
            (
                "585949190a73128783eddc2979abe902000023a2c169",
                vec![button("button", "press"), button("button_2", "press")],
            ),
            ("585949190a73128783eddc498da7ef030000eff0fa82", vec![button("button", "double_press")]),
            (
                "585949190a73128783eddc3b07b319080000126a6cdc",
                vec![button("button", "long_press"), button("button_2", "long_press")],
            ),
        ];
        for (frame, events) in cases {
            let d = read(frame, address, key);
            check(&d, "XMWXKG01YL", 10, true, vec![], events);
        }
    }

    #[test]
    fn xmwxkg01lm_one_button() {
        let address = "18:C2:3C:2A:69:0D";
        let key = Some(K_XMWXKG01LM);
        let cases = [
            ("58598723ff0d692a3cc21876d7a70800006024e757", 255, "press"),
            ("58598723010d692a3cc218f397dd09000079826b9d", 1, "double_press"),
            ("58598723030d692a3cc218258824090000a360b8a1", 3, "long_press"),
        ];
        for (frame, packet, event) in cases {
            let d = read(frame, address, key);
            check(&d, "XMWXKG01LM", packet, true, vec![], vec![button("button", event)]);
        }
        let d = read(
            "58598723350537243cc218d67794020000cb2de309",
            "18:C2:3C:24:37:05",
            Some("7202a2d4201bbf82ea5bb3705657c32a"),
        );
        check(&d, "XMWXKG01LM", 53, true, vec![], vec![button("button", "press")]);
    }

    #[test]
    fn other_wireless_switches() {
        let address = "08:B9:5F:20:6E:11";
        let key = Some(K_XMWS01XS);
        let d = read("5859685952116e205fb9083026548d020000ce31cfc3", address, key);
        check(&d, "XMWS01XS", 82, true, vec![], vec![button("button", "press")]);
        let d = read("5859685951116e205fb908d91bd58502000007cca849", address, key);
        check(&d, "XMWS01XS", 81, true, vec![], vec![button("button_2", "double_press")]);
        let d = read("5859685953116e205fb908f3785181020000eac183f4", address, key);
        check(&d, "XMWS01XS", 83, true, vec![], vec![button("button_2", "long_press")]);
        let d = read("5859613ab4e6fea138c1a45905b5b90900006b8211cd", "A4:C1:38:A1:FE:E6", Some(K_KS));
        check(&d, "KS1", 180, true, vec![], vec![button("button", "double_press")]);
        let d = read("5859613ab4e6fea138c1a45a05b5b9090000b43ff116", "A4:C1:38:A1:FE:E6", Some(K_KS));
        check(&d, "KS1", 180, true, vec![], vec![button("button", "long_press")]);
        let d = read(
            "5859bb3804adb9a538c1a4dc10b50400002c122fb6",
            "A4:C1:38:A5:B9:AD",
            Some("a74510b40386d35ae6227a7451efc76e"),
        );
        check(&d, "PTX_YK1_QMIMB", 4, true, vec![], vec![button("button", "press")]);
        let d = read("503053013f7450e94124f8011003000000", "F8:24:41:E9:50:74", None);
        check(&d, "YLYK01YL", 63, false, vec![], vec![button("button", "press")]);
        // Synthesized in the suite.
        let d = read("5040bf070101bf0738c1a4011003000000", "A4:C1:38:07:BF:01", None);
        check(&d, "YLAI003", 1, false, vec![], vec![button("button", "press")]);
    }

    #[test]
    fn k9b_switch_button_codes() {
        // Synthesized in the suite: code 2 of the double switch is both buttons; code 6 of the
        // triple switch is all three, press type 1 a long press.
        let d = read("504068150101681538c1a4011003000000", "A4:C1:38:15:68:01", None);
        check(&d, "K9B-1BTN", 1, false, vec![], vec![button("button", "press")]);
        let d = read("504069150101691538c1a4011003020000", "A4:C1:38:15:69:01", None);
        let events = vec![button("button", "press"), button("button_2", "press")];
        check(&d, "K9B-2BTN", 1, false, vec![], events);
        let d = read("5040fd0d0101fd0d38c1a4011003060001", "A4:C1:38:0D:FD:01", None);
        let events =
            vec![button("button", "long_press"), button("button_2", "long_press"), button("button_3", "long_press")];
        check(&d, "K9B-3BTN", 1, false, vec![], events);
    }

    #[test]
    fn cube_v3_plain() {
        let d = read("5030e1048e54d3e63053e2011003010000", "E2:53:30:E6:D3:54", None);
        let events = vec![event("cube", "rotate_left", CUBE_EVENTS)];
        check(&d, "XMMF01JQD", 142, false, vec![], events);
    }

    #[test]
    fn ylkg07yl_v3_legacy_encrypted() {
        let address = "F8:24:41:C5:98:8B";
        let d = read(YLKG07YL_PRESS, address, Some(K_YLKG07YL));
        let readings = vec![other("dimmer_presses", Value::Number(1.0), None)];
        let events = vec![event("dimmer", "press", DIMMER_EVENTS)];
        check(&d, "YLKG07YL/YLKG08YL", 210, true, readings.clone(), events.clone());
        let d = read("5830b603368b98c54124f88bb8f2661351000000d6", address, Some(K_YLKG07YL));
        let expected = vec![other("dimmer_steps", Value::Number(1.0), None)];
        let rotate = vec![event("dimmer", "rotate_left", DIMMER_EVENTS)];
        check(&d, "YLKG07YL/YLKG08YL", 54, true, expected, rotate);
        // The key already widened to 16 bytes works too.
        let d = read(YLKG07YL_PRESS, address, Some("b853075158488d3d3c977ca39a5b5ea9"));
        check(&d, "YLKG07YL/YLKG08YL", 210, true, readings, events);
    }

    #[test]
    fn lock_v4_plain() {
        let address = "D7:1F:44:EB:8A:91";
        let d = read("50449e0643918aeb441fd70b000920020001807c442f61", address, None);
        let expected = vec![
            lock("unlocked"),
            text("lock_action", "unlock_outside"),
            text("lock_method", "biometrics"),
            text("lock_key", "fingerprint 2"),
        ];
        check(&d, "ZNMS16LM", 67, false, expected, vec![]);
        let d = read("50449e0642918aeb441fd7060005ffffffff00", address, None);
        let events = vec![event("fingerprint", "match", FINGERPRINT_EVENTS)];
        check(&d, "ZNMS16LM", 66, false, vec![text("lock_key", "unknown")], events);
    }

    #[test]
    fn locks_v5_encrypted() {
        let address = "EE:89:73:44:BE:98";
        let d = read("4855390e2fdf9d3fdd9a6637131529f87b530000bcc34021", address, Some(K_XMZNMS08LM));
        let expected = vec![
            lock("unlocked"),
            text("lock_action", "unlock_inside"),
            text("lock_method", "manual"),
            text("lock_key", "administrator"),
        ];
        check(&d, "XMZNMS08LM", 47, true, expected, vec![]);
        let d = read("4855390e339c71c0241fffee8053000002b4c539", address, Some(K_XMZNMS08LM));
        check(&d, "XMZNMS08LM", 51, true, vec![flag("contact", C::Contact, true)], vec![]);
        let address = "98:0C:33:A3:04:3D";
        let d = read("4855c211165068b6fe3c878095c8a5834f000000463221c6", address, Some(K_SV40));
        let expected = vec![
            lock("unlocked"),
            text("lock_action", "unlock_inside"),
            text("lock_method", "automatic"),
            text("lock_key", "administrator"),
        ];
        check(&d, "Lockin-SV40", 22, true, expected, vec![]);
        let d = read("4855c211144e28703276fccd3d00000080e72280", address, Some(K_SV40));
        check(&d, "Lockin-SV40", 20, true, vec![flag("contact", C::Contact, true)], vec![]);
    }

    #[test]
    fn toothbrushes() {
        let d = read(
            "48580608c9480ef11281079733fc1400005644db41",
            "ED:DE:34:3F:48:0C",
            Some("1330b99cded13258acc391627e9771f7"),
        );
        let expected =
            vec![other("brushing", Value::Bool(false), None), other("brushing_score", Value::Number(83.0), None)];
        check(&d, "T700", 201, true, expected, vec![]);
        let d = read("7130890437115b174371e6091000020003", "E6:71:43:17:5B:11", None);
        check(&d, "M1S-T500", 55, false, vec![other("brushing", Value::Bool(true), None)], vec![]);
    }

    #[test]
    fn unknown_objects_and_products() {
        // MMC-T201-1's object 0x2000 is not read: the frame still says who sent it.
        let d = read("7022db006fc16fddf9810009002005c60d630d51", "00:81:F9:DD:6F:C1", None);
        check(&d, "MMC-T201-1", 111, false, vec![], vec![]);
        // An unknown product id.
        let d = read("5030cdab034c94b438c1a40d10041001ea01", "A4:C1:38:B4:94:4C", None);
        let expected = vec![num("temperature", C::Temperature, 27.2), num("humidity", C::Humidity, 49.0)];
        check(&d, "MiBeacon device 0xABCD", 3, false, expected, vec![]);
    }

    #[test]
    fn mesh_state_and_io_capability_are_skipped() {
        // The LYWSD03MMC frame with the mesh bit and 2 bytes of mesh state at the end.
        let d = read("d0305b05034c94b438c1a40d10041001ea010102", "A4:C1:38:B4:94:4C", None);
        let expected = vec![num("temperature", C::Temperature, 27.2), num("humidity", C::Humidity, 49.0)];
        check(&d, "LYWSD03MMC", 3, false, expected, vec![]);
        // The HHCCJCY01 frame with the I/O capability bit and its 2 bytes.
        let d = read("7120980012f34f6b8d7cc42d0000041002c400", "C4:7C:8D:6B:4F:F3", None);
        check(&d, "HHCCJCY01", 18, false, vec![num("temperature", C::Temperature, 19.6)], vec![]);
    }

    #[test]
    fn encrypted_without_key_needs_key() {
        let needs = Err(DecodeError::NeedsKey { format: FORMAT });
        assert_eq!(run(LYWSD03MMC_ENC, "A4:C1:38:02:83:F4", None), needs);
        assert_eq!(run(YLKG07YL_PRESS, "F8:24:41:C5:98:8B", None), needs);
        assert_eq!(run("58585b0501483cd438c1a49cf255cfdd0000002fae2ff2", "A4:C1:38:D4:3C:48", None), needs);
    }

    #[test]
    fn wrong_key_is_wrong_key() {
        let wrong = Err(DecodeError::WrongKey { format: FORMAT });
        // The suite's wrong-key examples.
        let key = Some("814aac74c4f17b6c1581e1ab87816b99");
        assert_eq!(run(RTCGQ02LM_WRONG, "54:EF:44:E0:C4:0F", key), wrong);
        let key = Some("b853075158487aa39a5b5ea9");
        assert_eq!(run(YLKG07YL_PRESS, "F8:24:41:C5:98:8B", key), wrong);
        // Another device's key.
        assert_eq!(run(LYWSD03MMC_ENC, "A4:C1:38:02:83:F4", Some(K_RTCGQ02LM)), wrong);
        // Without the MAC in the frame, the address is part of the nonce.
        let frame = "48590312a41b776e7c96add7000000f2bf545b";
        let key = Some("b2cf9a553d53571b5657defd582d676e");
        assert_eq!(run(frame, "2C:11:65:25:70:05", key), wrong);
        // A damaged frame.
        let mut damaged = hex(LYWSD03MMC_ENC);
        damaged[12] ^= 0x01;
        let key = hex(K_LYWSD03MMC);
        let adv = adv_of(&damaged, "A4:C1:38:02:83:F4");
        assert_eq!(decode(&adv, Some(&key)), wrong);
    }

    #[test]
    fn key_of_the_wrong_length() {
        let err = run(LYWSD03MMC_ENC, "A4:C1:38:02:83:F4", Some(K_YLKG07YL)).unwrap_err();
        assert!(matches!(err, DecodeError::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains("12-byte key") && err.to_string().contains("16 bytes"));
        let err = run(YLKG07YL_PRESS, "F8:24:41:C5:98:8B", Some(K_LYWSD03MMC)).unwrap_err();
        assert!(matches!(err, DecodeError::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains("16-byte key") && err.to_string().contains("12 bytes"));
    }

    #[test]
    fn malformed_and_unsupported_frames() {
        let address = "A4:C1:38:B4:94:4C";
        let malformed = |frame: &str, part: &str| match run(frame, address, None) {
            Err(DecodeError::Malformed { why, .. }) => assert!(why.contains(part), "{why}"),
            other => panic!("{frame}: {other:?}"),
        };
        malformed("", "header");
        malformed("5030", "header");
        malformed("50305b0503", "MAC");
        malformed("7120980012f34f6b8d7cc4", "capability");
        malformed("d030", "header");
        malformed("d0305b05034c94b438c1a401", "mesh");
        // An object longer than the frame, a stray byte, a temperature of 3 bytes.
        malformed("50305b05034c94b438c1a40d10051001ea01", "0x100D says 5");
        malformed("50305b05034c94b438c1a40d10041001ea0100", "stray");
        malformed("50305b05034c94b438c1a404100310010a", "0x1004 (temperature) has 3");
        // A temperature float that is not a number.
        malformed("5050425903b4940e38c1a4014c040000c07f", "0x4C01 is not a finite");
        // An encrypted v5 frame too short for its MIC.
        match run("58585b0550f4830238c1a40102", "A4:C1:38:02:83:F4", Some(K_LYWSD03MMC)) {
            Err(DecodeError::Malformed { why, .. }) => assert!(why.contains("MIC"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Versions other than 2 to 5.
        for frame in ["5010aa0101", "5060aa0101"] {
            let err = run(frame, address, None).unwrap_err();
            assert!(matches!(err, DecodeError::Unsupported { .. }), "{err}");
        }
    }

    /// Objects without a published capture, in frames built here from Xiaomi's object
    /// definition (its examples where it gives one): a v4 plain frame of product `pid`.
    #[test]
    fn objects_from_the_definition() {
        let fault = |key: &str| other(key, Value::Bool(true), None);
        let cases: Vec<(&str, &str, Vec<Reading>, Vec<BleEvent>)> = vec![
            ("0000", "0410021a01", vec![num("temperature", C::Temperature, 28.2)], vec![]),
            ("0000", "041002ecff", vec![num("temperature", C::Temperature, -2.0)], vec![]),
            ("0000", "0610025a01", vec![num("humidity", C::Humidity, 34.6)], vec![]),
            ("0000", "1010021000", vec![num("formaldehyde", C::Formaldehyde, 0.16)], vec![]),
            ("0000", "0a0002a70e", vec![num("temperature", C::Temperature, 37.51)], vec![]),
            ("0000", "071003c0d401", vec![num("illuminance", C::Illuminance, 120_000.0)], vec![]),
            (
                "0000",
                "17100400000000",
                vec![flag("occupancy", C::Occupancy, true), num("no_motion_time", C::Duration, 0.0)],
                vec![],
            ),
            (
                "0000",
                "17100478000000",
                vec![flag("occupancy", C::Occupancy, false), num("no_motion_time", C::Duration, 120.0)],
                vec![],
            ),
            ("0000", "1b100101", vec![flag("occupancy", C::Occupancy, false)], vec![]),
            ("0000", "18100101", vec![other("light", Value::Bool(true), None)], vec![]),
            ("0000", "12100101", vec![flag("switch", C::OnOff, true)], vec![]),
            ("0000", "16100101", vec![flag("gas", C::Gas, true)], vec![]),
            ("0000", "0e000100", vec![flag("gas", C::Gas, false)], vec![]),
            ("0000", "0c000101", vec![flag("water_leak", C::WaterLeak, true)], vec![]),
            ("0000", "0d000102", vec![fault("smoke_detector_fault")], vec![]),
            ("0000", "0f100100", vec![flag("contact", C::Contact, false)], vec![]),
            ("0000", "02100101", vec![other("sleeping", Value::Bool(true), None)], vec![]),
            (
                "0000",
                "0510020164",
                vec![flag("switch", C::OnOff, true), num("temperature", C::Temperature, 100.0)],
                vec![],
            ),
            ("0000", "0e100105", vec![lock("locked"), other("child_lock", Value::Bool(false), None)], vec![]),
            ("0000", "0e100108", vec![lock("unlocked"), other("child_lock", Value::Bool(true), None)], vec![]),
            (
                "0000",
                "0b00091603000280e17c442f",
                vec![
                    other("child_lock", Value::Bool(true), None),
                    text("lock_action", "child_lock_on"),
                    text("lock_method", "password"),
                    text("lock_key", "password 3"),
                ],
                vec![],
            ),
            (
                "0000",
                "0b00090f0010dec0e17c442f",
                vec![
                    text("lock_action", "abnormal"),
                    text("lock_method", "bluetooth"),
                    text("lock_error", "battery_below_10_percent"),
                ],
                vec![],
            ),
            (
                "0000",
                "07000504e17c442f",
                vec![flag("tamper", C::Tamper, true)],
                vec![event("door", "pry", DOOR_EVENTS)],
            ),
            ("0000", "011003010003", vec![], vec![button("button_2", "triple_press")]),
            ("0000", "014a0101", vec![flag("battery_low", C::BatteryLow, true)], vec![]),
            ("0000", "014e0100", vec![flag("battery_low", C::BatteryLow, false)], vec![]),
            ("0000", "0f4a0101", vec![flag("tamper", C::Tamper, true)], vec![]),
            ("0000", "03500150", vec![num("battery", C::Battery, 80.0)], vec![]),
            ("0000", "084c0400003642", vec![num("humidity", C::Humidity, 45.5)], vec![]),
            ("0000", "3e480478000000", vec![num("vacant_time", C::Duration, 120.0)], vec![]),
            // The K9BB button's press types; the dimmer's long press and pressed rotation.
            ("101c", "0c4e010f", vec![], vec![button("button", "double_press")]),
            ("b603", "011003010003", vec![], vec![event("dimmer", "long_press", DIMMER_EVENTS)]),
            (
                "b603",
                "011003020004",
                vec![other("dimmer_steps", Value::Number(2.0), None)],
                vec![event("dimmer", "rotate_right_pressed", DIMMER_EVENTS)],
            ),
            (
                "b603",
                "01100300fe04",
                vec![other("dimmer_steps", Value::Number(2.0), None)],
                vec![event("dimmer", "rotate_left", DIMMER_EVENTS)],
            ),
        ];
        for (pid, object, readings, events) in cases {
            let frame = format!("4040{pid}07{object}");
            let d = read(&frame, "A4:C1:38:01:02:03", None);
            let pid = u16::from_le_bytes([hex(pid)[0], hex(pid)[1]]);
            assert_eq!(d.model, model(pid), "{frame}");
            assert_eq!(d.packet_id, Some(7), "{frame}");
            assert!(!d.encrypted, "{frame}");
            assert_eq!(d.readings, readings, "{frame}");
            assert_eq!(d.events, events, "{frame}");
        }
    }

    /// Every frame of the tests, with its address and key.
    fn examples() -> Vec<(&'static str, &'static str, Option<&'static str>)> {
        vec![
            ("5020aa01a3bf2e3b342d580d1004b40095020a10013b", "58:2D:34:3B:2E:BF", None),
            ("7120980012f34f6b8d7cc40d041002c400", "C4:7C:8D:6B:4F:F3", None),
            ("30585b0502483cd438c1a408", "A4:C1:38:D4:3C:48", None),
            ("50449e0643918aeb441fd70b000920020001807c442f61", "D7:1F:44:EB:8A:91", None),
            ("5040fd0d0101fd0d38c1a4011003060001", "A4:C1:38:0D:FD:01", None),
            ("d0305b05034c94b438c1a40d10041001ea010102", "A4:C1:38:B4:94:4C", None),
            (LYWSD03MMC_ENC, "A4:C1:38:02:83:F4", Some(K_LYWSD03MMC)),
            (YLKG07YL_PRESS, "F8:24:41:C5:98:8B", Some(K_YLKG07YL)),
            (RTCGQ02LM_WRONG, "54:EF:44:E0:C4:0F", Some(K_RTCGQ02LM)),
            ("48598d0a927953750fed0f990600005cad2c29", "18:C2:3C:20:8E:77", Some(K_RTCGQ02LM)),
            ("585949194f73128783eddc0b34380a0200008d49ae28", "DC:ED:83:87:12:73", Some(K_XMWXKG01YL)),
            ("4855390e2fdf9d3fdd9a6637131529f87b530000bcc34021", "EE:89:73:44:BE:98", Some(K_XMZNMS08LM)),
            ("59584c3f2012efbe38c1a4bbacc927535b030000004cdc48fd", "A4:C1:38:BE:EF:12", Some(K_PS1BB)),
        ]
    }

    #[test]
    fn every_prefix_never_panics() {
        for (frame, address, key) in examples() {
            let data = hex(frame);
            let keys: Vec<Option<Vec<u8>>> =
                vec![None, key.map(hex), Some(hex(K_YLKG07YL)), Some(hex(K_LYWSD03MMC)), Some(vec![1, 2, 3])];
            for end in 0..=data.len() {
                for key in &keys {
                    let _ = decode(&adv_of(&data[..end], address), key.as_deref());
                }
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let keys = [None, Some(hex(K_YLKG07YL)), Some(hex(K_LYWSD03MMC))];
        let mut decoded = 0;
        for round in 0..6000u32 {
            let len = (rng.next() % 40) as usize;
            let mut data: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
            // Most frames get a plausible version, so that the decoder gets past the header.
            if !round.is_multiple_of(4)
                && let Some(control) = data.get_mut(1)
            {
                *control = (*control & 0x0F) | ((2 + rng.byte() % 4) << 4);
            }
            let adv = adv_of(&data, "A4:C1:38:01:02:03");
            for key in &keys {
                if let Ok(Some(_)) = decode(&adv, key.as_deref()) {
                    decoded += 1;
                }
            }
        }
        // Mutations of the real frames reach the object readers.
        for (frame, address, key) in examples() {
            let data = hex(frame);
            let key = key.map(hex);
            for _ in 0..300 {
                let mut mutated = data.clone();
                let i = (rng.next() as usize) % mutated.len();
                mutated[i] = rng.byte();
                if let Ok(Some(_)) = decode(&adv_of(&mutated, address), key.as_deref()) {
                    decoded += 1;
                }
            }
        }
        assert!(decoded > 0);
    }

    #[test]
    fn product_and_object_tables_have_no_duplicates() {
        for (i, (id, _)) in PRODUCTS.iter().enumerate() {
            assert!(!PRODUCTS[i + 1..].iter().any(|(other, _)| other == id), "0x{id:04X}");
        }
        for (i, o) in OBJECTS.iter().enumerate() {
            assert!(o.min <= o.max, "0x{:04X}", o.id);
            assert!(!OBJECTS[i + 1..].iter().any(|other| other.id == o.id), "0x{:04X}", o.id);
        }
    }
}
