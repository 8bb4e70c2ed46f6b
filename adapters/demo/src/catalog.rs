//! The demo home: its thirteen devices, their areas, models and features, and their first state.

use hearth_sdk::{
    Access, Capability, Category, Color, DeviceDescriptor, DeviceId, Feature, Found, PowerSource, Transport, ValueType,
};

use crate::sim::{Blind, Button, Climate, Door, Kind, Light, Load, Motion, Plug, Thermostat};

/// The adapter id, also the prefix of every device id.
pub(crate) const ADAPTER_ID: &str = "demo";

const MANUFACTURER: &str = "Hearth";
const FIRMWARE: &str = "1.0.0";

const LIVING_ROOM: &str = "Living room";
const KITCHEN: &str = "Kitchen";
const BEDROOM: &str = "Bedroom";
const HALLWAY: &str = "Hallway";

fn on_off() -> Feature {
    Feature::new("state", Capability::OnOff, ValueType::Bool, Access::READ_WRITE)
}

fn brightness() -> Feature {
    Feature::new("brightness", Capability::Brightness, ValueType::range(0.0, 100.0, 1.0), Access::READ_WRITE)
}

fn color_temperature() -> Feature {
    Feature::new(
        "color_temperature",
        Capability::ColorTemperature,
        ValueType::range(2200.0, 6500.0, 1.0),
        Access::READ_WRITE,
    )
}

fn color() -> Feature {
    Feature::new("color", Capability::Color, ValueType::Color, Access::READ_WRITE)
}

fn temperature() -> Feature {
    Feature::new("temperature", Capability::Temperature, ValueType::range(-40.0, 80.0, 0.1), Access::READ_ONLY)
}

fn humidity() -> Feature {
    Feature::new("humidity", Capability::Humidity, ValueType::range(0.0, 100.0, 1.0), Access::READ_ONLY)
}

fn pressure() -> Feature {
    Feature::new("pressure", Capability::Pressure, ValueType::range(300.0, 1100.0, 0.1), Access::READ_ONLY)
}

fn battery() -> Feature {
    Feature::new("battery", Capability::Battery, ValueType::range(0.0, 100.0, 1.0), Access::READ_ONLY)
        .category(Category::Diagnostic)
}

fn signal_strength() -> Feature {
    Feature::new("signal_strength", Capability::SignalStrength, ValueType::range(-120.0, 0.0, 1.0), Access::READ_ONLY)
        .category(Category::Diagnostic)
}

fn power() -> Feature {
    Feature::new("power", Capability::Power, ValueType::range(0.0, 3600.0, 0.1), Access::READ_ONLY)
}

fn energy() -> Feature {
    let value_type = ValueType::Number { min: Some(0.0), max: None, step: Some(0.001) };
    Feature::new("energy", Capability::Energy, value_type, Access::READ_ONLY)
}

fn voltage() -> Feature {
    Feature::new("voltage", Capability::Voltage, ValueType::range(0.0, 260.0, 0.1), Access::READ_ONLY)
}

fn current() -> Feature {
    Feature::new("current", Capability::Current, ValueType::range(0.0, 16.0, 0.01), Access::READ_ONLY)
}

fn contact() -> Feature {
    Feature::new("contact", Capability::Contact, ValueType::Bool, Access::READ_ONLY)
}

fn occupancy() -> Feature {
    Feature::new("occupancy", Capability::Occupancy, ValueType::Bool, Access::READ_ONLY)
}

fn illuminance() -> Feature {
    Feature::new("illuminance", Capability::Illuminance, ValueType::range(0.0, 100_000.0, 1.0), Access::READ_ONLY)
}

fn action() -> Feature {
    Feature::new("action", Capability::Action, ValueType::enumeration(["single", "double", "hold"]), Access::EVENT)
}

fn setpoint() -> Feature {
    Feature::new("setpoint", Capability::Setpoint, ValueType::range(5.0, 30.0, 0.5), Access::READ_WRITE)
}

fn hvac_mode() -> Feature {
    Feature::new("hvac_mode", Capability::HvacMode, ValueType::enumeration(["off", "heat", "auto"]), Access::READ_WRITE)
}

fn hvac_action() -> Feature {
    Feature::new("hvac_action", Capability::HvacAction, ValueType::enumeration(["idle", "heat"]), Access::READ_ONLY)
}

fn cover_position() -> Feature {
    Feature::new("cover_position", Capability::CoverPosition, ValueType::range(0.0, 100.0, 1.0), Access::READ_WRITE)
}

fn cover_state() -> Feature {
    // Reported ("open"/"close" while moving, "stop" when still) and settable; not readable on request.
    let access = Access { observe: true, set: true, get: false };
    Feature::new("cover_state", Capability::CoverState, ValueType::enumeration(["open", "close", "stop"]), access)
}

fn descriptor(
    native: &str,
    name: &str,
    area: &str,
    model: &str,
    power_source: PowerSource,
    features: Vec<Feature>,
) -> DeviceDescriptor {
    DeviceDescriptor {
        id: DeviceId::new(ADAPTER_ID, native),
        name: name.to_owned(),
        suggested_area: Some(area.to_owned()),
        manufacturer: Some(MANUFACTURER.to_owned()),
        model: Some(model.to_owned()),
        firmware: Some(FIRMWARE.to_owned()),
        via: None,
        power_source,
        features,
    }
}

fn color_light(native: &str, name: &str, area: &str, light: Light) -> (DeviceDescriptor, Kind) {
    let features = vec![on_off(), brightness(), color_temperature(), color()];
    (descriptor(native, name, area, "Demo color light", PowerSource::Mains, features), Kind::Light(light))
}

/// Every device of the demo home with its first state, in the order they are announced.
pub(crate) fn home() -> Vec<(DeviceDescriptor, Kind)> {
    use PowerSource::{Battery, Mains};
    vec![
        color_light(
            "living_ceiling",
            "Ceiling light",
            LIVING_ROOM,
            Light::new(true, 80.0, 2700.0, Color { hue: 30.0, saturation: 60.0 }),
        ),
        (
            descriptor(
                "living_lamp",
                "Floor lamp",
                LIVING_ROOM,
                "Demo dimmable light",
                Mains,
                vec![on_off(), brightness()],
            ),
            Kind::Light(Light::new(false, 60.0, 2700.0, Color { hue: 0.0, saturation: 0.0 })),
        ),
        (
            descriptor(
                "kitchen_light",
                "Kitchen light",
                KITCHEN,
                "Demo white spectrum light",
                Mains,
                vec![on_off(), brightness(), color_temperature()],
            ),
            Kind::Light(Light::new(false, 100.0, 4000.0, Color { hue: 0.0, saturation: 0.0 })),
        ),
        color_light(
            "bedroom_light",
            "Bedroom light",
            BEDROOM,
            Light::new(false, 40.0, 2200.0, Color { hue: 280.0, saturation: 50.0 }),
        ),
        (
            descriptor(
                "plug_tv",
                "TV plug",
                LIVING_ROOM,
                "Demo metering plug",
                Mains,
                vec![on_off(), power(), energy(), voltage(), current()],
            ),
            Kind::Plug(Plug::new(Load::Tv, true, 12.345)),
        ),
        (
            descriptor(
                "plug_kettle",
                "Kettle plug",
                KITCHEN,
                "Demo power plug",
                Mains,
                vec![on_off(), power(), energy()],
            ),
            Kind::Plug(Plug::new(Load::Kettle, false, 3.2)),
        ),
        (
            descriptor(
                "living_climate",
                "Living room climate",
                LIVING_ROOM,
                "Demo climate sensor",
                Battery,
                vec![temperature(), humidity(), battery(), signal_strength()],
            ),
            Kind::Climate(Climate::new(21.3, 45.0, 87.0)),
        ),
        (
            descriptor(
                "bedroom_climate",
                "Bedroom climate",
                BEDROOM,
                "Demo climate and pressure sensor",
                Battery,
                vec![temperature(), humidity(), pressure(), battery()],
            ),
            Kind::Climate(Climate::new(19.6, 52.0, 64.0)),
        ),
        (
            descriptor("front_door", "Front door", HALLWAY, "Demo door sensor", Battery, vec![contact(), battery()]),
            Kind::Door(Door::new(92.0)),
        ),
        (
            descriptor(
                "hall_motion",
                "Hallway motion",
                HALLWAY,
                "Demo motion sensor",
                Battery,
                vec![occupancy(), illuminance(), battery()],
            ),
            Kind::Motion(Motion::new(120.0, 78.0)),
        ),
        (
            descriptor("hall_button", "Hallway button", HALLWAY, "Demo button", Battery, vec![action(), battery()]),
            Kind::Button(Button::new(95.0)),
        ),
        (
            descriptor(
                "thermostat",
                "Thermostat",
                LIVING_ROOM,
                "Demo thermostat",
                Mains,
                vec![temperature(), setpoint(), hvac_mode(), hvac_action()],
            ),
            Kind::Thermostat(Thermostat::new(20.4, 21.0)),
        ),
        (
            descriptor(
                "bedroom_blind",
                "Bedroom blind",
                BEDROOM,
                "Demo roller blind",
                Mains,
                vec![cover_position(), cover_state()],
            ),
            Kind::Blind(Blind::new(100.0)),
        ),
    ]
}

/// What the demo "finds" for the discovery inbox: each thing found, and the device it becomes
/// when accepted (`None`: seen, not supported).
pub(crate) fn finds() -> Vec<(Found, Option<(DeviceDescriptor, Kind)>)> {
    let found = |key: &str, name: &str, model: &str, transport: Transport, address: &str, supported: bool| Found {
        key: key.to_owned(),
        device: DeviceId::new(ADAPTER_ID, key),
        name: name.to_owned(),
        manufacturer: Some(MANUFACTURER.to_owned()),
        model: Some(model.to_owned()),
        transport,
        address: Some(address.to_owned()),
        supported,
        kind: Some(match transport {
            Transport::Ble => "ble".to_owned(),
            _ => "wifi".to_owned(),
        }),
    };
    vec![
        (
            found(
                "garden_thermometer",
                "Garden thermometer",
                "Demo BLE thermometer",
                Transport::Ble,
                "A4:C1:38:00:00:01",
                true,
            ),
            Some((
                descriptor(
                    "garden_thermometer",
                    "Garden thermometer",
                    "Garden",
                    "Demo BLE thermometer",
                    PowerSource::Battery,
                    vec![temperature(), humidity(), battery(), signal_strength()],
                ),
                Kind::Climate(Climate::new(8.4, 81.0, 100.0)),
            )),
        ),
        (
            found("desk_plug", "Desk plug", "Demo Wi-Fi plug", Transport::Wifi, "192.168.1.50", true),
            Some((
                descriptor(
                    "desk_plug",
                    "Desk plug",
                    "Office",
                    "Demo Wi-Fi plug",
                    PowerSource::Mains,
                    vec![on_off(), power(), energy()],
                ),
                Kind::Plug(Plug::new(Load::Tv, false, 0.5)),
            )),
        ),
        (found("living_tv", "Living room TV", "HomeKit accessory", Transport::Wifi, "192.168.1.61", false), None),
    ]
}
