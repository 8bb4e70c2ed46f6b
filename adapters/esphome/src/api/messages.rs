//! The ESPHome native API messages this crate speaks, written by hand from `api.proto`.
//!
//! Each struct carries the proto field numbers of `api.proto` (ESPHome 2025/2026; the numbers
//! have been stable since API 1.x). Every message encodes and decodes, so a test can play the
//! device's side. Unknown fields are skipped; malformed payloads give a [`DecodeError`].

use super::proto::{self, Codec, DecodeError, Reader};

macro_rules! messages {
    ($(
        $(#[$doc:meta])*
        $name:ident = $id:literal {
            $( $(#[$fdoc:meta])* $num:literal $field:ident : $ty:ty = $codec:ident, )*
        }
    )*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Default, PartialEq)]
            pub struct $name {
                $( $(#[$fdoc])* pub $field: $ty, )*
            }

            impl $name {
                /// Its message type on the wire.
                pub const TYPE: u32 = $id;

                /// Reads it from a protobuf payload; unknown fields are skipped.
                #[allow(unused_mut)]
                pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
                    let mut m = Self::default();
                    let mut r = Reader::new(buf);
                    while let Some((field, wire)) = r.next_field()? {
                        match field {
                            $( $num => <proto::$codec as Codec<$ty>>::merge(&mut m.$field, field, wire)?, )*
                            _ => { let _ = wire; }
                        }
                    }
                    Ok(m)
                }

                /// Its protobuf payload (default values left out, as proto3 does).
                #[allow(unused_mut)]
                pub fn encode(&self) -> Vec<u8> {
                    let mut out = Vec::new();
                    $( <proto::$codec as Codec<$ty>>::encode(&self.$field, $num, &mut out); )*
                    out
                }
            }

            impl From<$name> for Message {
                fn from(m: $name) -> Message {
                    Message::$name(m)
                }
            }
        )*

        /// Any message of the native API, by its type.
        #[derive(Debug, Clone, PartialEq)]
        #[allow(clippy::large_enum_variant)]
        pub enum Message {
            $( $(#[$doc])* $name($name), )*
            /// A message type this crate does not read (logs, Bluetooth proxy ...), kept as is.
            Unknown {
                /// Its message type.
                msg_type: u32,
                /// Its protobuf payload.
                payload: Vec<u8>,
            },
        }

        impl Message {
            /// Reads the message of type `msg_type` from its payload. An unknown type gives
            /// [`Message::Unknown`]; a known type with a malformed payload an error.
            pub fn decode(msg_type: u32, payload: &[u8]) -> Result<Message, DecodeError> {
                Ok(match msg_type {
                    $( $id => Message::$name($name::decode(payload)?), )*
                    _ => Message::Unknown { msg_type, payload: payload.to_vec() },
                })
            }

            /// Its message type on the wire.
            pub fn msg_type(&self) -> u32 {
                match self {
                    $( Message::$name(_) => $id, )*
                    Message::Unknown { msg_type, .. } => *msg_type,
                }
            }

            /// Its protobuf payload.
            pub fn encode(&self) -> Vec<u8> {
                match self {
                    $( Message::$name(m) => m.encode(), )*
                    Message::Unknown { payload, .. } => payload.clone(),
                }
            }

            /// The name of its type, as in `api.proto` (for logs).
            pub fn name(&self) -> &'static str {
                match self {
                    $( Message::$name(_) => stringify!($name), )*
                    Message::Unknown { .. } => "Unknown",
                }
            }
        }

        /// The message types this crate knows.
        pub const KNOWN_TYPES: &[u32] = &[$($id),*];
    };
}

messages! {
    /// The client's first message: who it is and which API version it speaks.
    HelloRequest = 1 {
        /// The client's name, like a user agent.
        1 client_info: String = Str,
        /// API major version the client speaks.
        2 api_version_major: u32 = Uint32,
        /// API minor version the client speaks.
        3 api_version_minor: u32 = Uint32,
    }
    /// The device's answer to [`HelloRequest`].
    HelloResponse = 2 {
        /// API major version of the device.
        1 api_version_major: u32 = Uint32,
        /// API minor version of the device.
        2 api_version_minor: u32 = Uint32,
        /// The device's software, e.g. `esphome v2025.5.0`.
        3 server_info: String = Str,
        /// The device's node name.
        4 name: String = Str,
    }
    /// Logs in with the API password (`AuthenticationRequest` since 2025; removed from
    /// firmware 2026.1, which ignores it).
    ConnectRequest = 3 {
        /// The `api: password:` of the device.
        1 password: String = Str,
    }
    /// The answer to [`ConnectRequest`].
    ConnectResponse = 4 {
        /// The password was wrong.
        1 invalid_password: bool = Bool,
    }
    /// Asks the peer to close the connection (either side).
    DisconnectRequest = 5 {
        /// Why (0 unspecified, 1 provisioning closed).
        1 reason: u32 = Uint32,
    }
    /// Acknowledges [`DisconnectRequest`]; both sides then close.
    DisconnectResponse = 6 {}
    /// Keep-alive (either side).
    PingRequest = 7 {}
    /// Answer to [`PingRequest`].
    PingResponse = 8 {}
    /// Asks for [`DeviceInfoResponse`].
    DeviceInfoRequest = 9 {}
    /// What the device is.
    DeviceInfoResponse = 10 {
        /// The device wants a password (deprecated).
        1 uses_password: bool = Bool,
        /// Node name (hostname).
        2 name: String = Str,
        /// MAC address, `AC:BC:32:89:0E:A9`.
        3 mac_address: String = Str,
        /// ESPHome version, `2025.5.0`.
        4 esphome_version: String = Str,
        /// When the firmware was compiled.
        5 compilation_time: String = Str,
        /// Board, e.g. `esp32dev`.
        6 model: String = Str,
        /// Deep sleep is configured.
        7 has_deep_sleep: bool = Bool,
        /// `esphome: project: name:`.
        8 project_name: String = Str,
        /// `esphome: project: version:`.
        9 project_version: String = Str,
        /// Port of the web server, if any.
        10 webserver_port: u32 = Uint32,
        /// Chip maker, `Espressif`.
        12 manufacturer: String = Str,
        /// The human name of the device.
        13 friendly_name: String = Str,
        /// `esphome: area:`.
        16 suggested_area: String = Str,
        /// Bluetooth MAC, when a Bluetooth proxy.
        18 bluetooth_mac_address: String = Str,
        /// The device can receive an encryption key.
        19 api_encryption_supported: bool = Bool,
    }
    /// Asks for every entity; the device answers `ListEntities*Response`s, then
    /// [`ListEntitiesDoneResponse`].
    ListEntitiesRequest = 11 {}
    /// A binary sensor.
    ListEntitiesBinarySensorResponse = 12 {
        /// Entity id within its domain.
        1 object_id: String = Str,
        /// The key its states and commands carry.
        2 key: u32 = Fixed32,
        /// Display name.
        3 name: String = Str,
        /// Home Assistant device class (`motion`, `door` ...).
        5 device_class: String = Str,
        /// The API connection status sensor.
        6 is_status_binary_sensor: bool = Bool,
        /// Hidden unless enabled.
        7 disabled_by_default: bool = Bool,
        /// Icon, `mdi:...`.
        8 icon: String = Str,
        /// 0 none, 1 config, 2 diagnostic.
        9 entity_category: u32 = Uint32,
        /// Sub-device id.
        10 device_id: u32 = Uint32,
    }
    /// A cover.
    ListEntitiesCoverResponse = 13 {
        /// Entity id within its domain.
        1 object_id: String = Str,
        /// The key its states and commands carry.
        2 key: u32 = Fixed32,
        /// Display name.
        3 name: String = Str,
        /// The state is assumed, not reported.
        5 assumed_state: bool = Bool,
        /// It can go to a position.
        6 supports_position: bool = Bool,
        /// It can tilt.
        7 supports_tilt: bool = Bool,
        /// Home Assistant device class.
        8 device_class: String = Str,
        /// Hidden unless enabled.
        9 disabled_by_default: bool = Bool,
        /// Icon.
        10 icon: String = Str,
        /// 0 none, 1 config, 2 diagnostic.
        11 entity_category: u32 = Uint32,
        /// It can stop.
        12 supports_stop: bool = Bool,
        /// Sub-device id.
        13 device_id: u32 = Uint32,
    }
    /// A fan.
    ListEntitiesFanResponse = 14 {
        /// Entity id within its domain.
        1 object_id: String = Str,
        /// The key its states and commands carry.
        2 key: u32 = Fixed32,
        /// Display name.
        3 name: String = Str,
        /// It can oscillate.
        5 supports_oscillation: bool = Bool,
        /// It has speeds.
        6 supports_speed: bool = Bool,
        /// It can reverse.
        7 supports_direction: bool = Bool,
        /// Number of speed levels (1..=count).
        8 supported_speed_count: i32 = Int32,
        /// Hidden unless enabled.
        9 disabled_by_default: bool = Bool,
        /// Icon.
        10 icon: String = Str,
        /// 0 none, 1 config, 2 diagnostic.
        11 entity_category: u32 = Uint32,
        /// Named preset modes.
        12 supported_preset_modes: Vec<String> = Strings,
        /// Sub-device id.
        13 device_id: u32 = Uint32,
    }
    /// A light.
    ListEntitiesLightResponse = 15 {
        /// Entity id within its domain.
        1 object_id: String = Str,
        /// The key its states and commands carry.
        2 key: u32 = Fixed32,
        /// Display name.
        3 name: String = Str,
        /// Legacy (API < 1.6): dimmable.
        5 legacy_supports_brightness: bool = Bool,
        /// Legacy: RGB.
        6 legacy_supports_rgb: bool = Bool,
        /// Legacy: white channel.
        7 legacy_supports_white_value: bool = Bool,
        /// Legacy: color temperature.
        8 legacy_supports_color_temperature: bool = Bool,
        /// Coldest color temperature, mireds.
        9 min_mireds: f32 = Float,
        /// Warmest color temperature, mireds.
        10 max_mireds: f32 = Float,
        /// Effect names (`None` first).
        11 effects: Vec<String> = Strings,
        /// `ColorMode` values (bit 0 on/off, 1 brightness, 2 white, 3 color temperature,
        /// 4 cold/warm white, 5 RGB).
        12 supported_color_modes: Vec<u32> = Enums,
        /// Hidden unless enabled.
        13 disabled_by_default: bool = Bool,
        /// Icon.
        14 icon: String = Str,
        /// 0 none, 1 config, 2 diagnostic.
        15 entity_category: u32 = Uint32,
        /// Sub-device id.
        16 device_id: u32 = Uint32,
    }
    /// A numeric sensor.
    ListEntitiesSensorResponse = 16 {
        /// Entity id within its domain.
        1 object_id: String = Str,
        /// The key its states carry.
        2 key: u32 = Fixed32,
        /// Display name.
        3 name: String = Str,
        /// Icon.
        5 icon: String = Str,
        /// Unit, e.g. `°C`.
        6 unit_of_measurement: String = Str,
        /// Decimals the device rounds to.
        7 accuracy_decimals: i32 = Int32,
        /// Every report counts, equal or not.
        8 force_update: bool = Bool,
        /// Home Assistant device class (`temperature` ...).
        9 device_class: String = Str,
        /// 0 none, 1 measurement, 2 total increasing, 3 total.
        10 state_class: u32 = Uint32,
        /// Hidden unless enabled.
        12 disabled_by_default: bool = Bool,
        /// 0 none, 1 config, 2 diagnostic.
        13 entity_category: u32 = Uint32,
        /// Sub-device id.
        14 device_id: u32 = Uint32,
    }
    /// A switch.
    ListEntitiesSwitchResponse = 17 {
        /// Entity id within its domain.
        1 object_id: String = Str,
        /// The key its states and commands carry.
        2 key: u32 = Fixed32,
        /// Display name.
        3 name: String = Str,
        /// Icon.
        5 icon: String = Str,
        /// The state is assumed, not reported.
        6 assumed_state: bool = Bool,
        /// Hidden unless enabled.
        7 disabled_by_default: bool = Bool,
        /// 0 none, 1 config, 2 diagnostic.
        8 entity_category: u32 = Uint32,
        /// Home Assistant device class (`outlet`, `switch`).
        9 device_class: String = Str,
        /// Sub-device id.
        10 device_id: u32 = Uint32,
    }
    /// A text sensor.
    ListEntitiesTextSensorResponse = 18 {
        /// Entity id within its domain.
        1 object_id: String = Str,
        /// The key its states carry.
        2 key: u32 = Fixed32,
        /// Display name.
        3 name: String = Str,
        /// Icon.
        5 icon: String = Str,
        /// Hidden unless enabled.
        6 disabled_by_default: bool = Bool,
        /// 0 none, 1 config, 2 diagnostic.
        7 entity_category: u32 = Uint32,
        /// Home Assistant device class.
        8 device_class: String = Str,
        /// Sub-device id.
        9 device_id: u32 = Uint32,
    }
    /// The entity list is complete.
    ListEntitiesDoneResponse = 19 {}
    /// Asks the device to send every state now and each change from now on.
    SubscribeStatesRequest = 20 {}
    /// A binary sensor's state.
    BinarySensorStateResponse = 21 {
        /// The entity.
        1 key: u32 = Fixed32,
        /// On (detected, open ...).
        2 state: bool = Bool,
        /// No state yet.
        3 missing_state: bool = Bool,
        /// Sub-device id.
        4 device_id: u32 = Uint32,
    }
    /// A cover's state.
    CoverStateResponse = 22 {
        /// The entity.
        1 key: u32 = Fixed32,
        /// Legacy (API < 1.1): 0 open, 1 closed.
        2 legacy_state: u32 = Uint32,
        /// 0.0 closed to 1.0 open.
        3 position: f32 = Float,
        /// 0.0 closed to 1.0 open.
        4 tilt: f32 = Float,
        /// 0 idle, 1 opening, 2 closing.
        5 current_operation: u32 = Uint32,
        /// Sub-device id.
        6 device_id: u32 = Uint32,
    }
    /// A fan's state.
    FanStateResponse = 23 {
        /// The entity.
        1 key: u32 = Fixed32,
        /// On.
        2 state: bool = Bool,
        /// Oscillating.
        3 oscillating: bool = Bool,
        /// Legacy speed (API < 1.6).
        4 speed: u32 = Uint32,
        /// 0 forward, 1 reverse.
        5 direction: u32 = Uint32,
        /// Speed level, 1..=supported_speed_count.
        6 speed_level: i32 = Int32,
        /// Active preset mode.
        7 preset_mode: String = Str,
        /// Sub-device id.
        8 device_id: u32 = Uint32,
    }
    /// A light's state.
    LightStateResponse = 24 {
        /// The entity.
        1 key: u32 = Fixed32,
        /// On.
        2 state: bool = Bool,
        /// 0.0 to 1.0.
        3 brightness: f32 = Float,
        /// Red, 0.0 to 1.0.
        4 red: f32 = Float,
        /// Green, 0.0 to 1.0.
        5 green: f32 = Float,
        /// Blue, 0.0 to 1.0.
        6 blue: f32 = Float,
        /// White channel, 0.0 to 1.0.
        7 white: f32 = Float,
        /// Color temperature, mireds.
        8 color_temperature: f32 = Float,
        /// Active effect (`None` when none).
        9 effect: String = Str,
        /// Brightness of the color channels.
        10 color_brightness: f32 = Float,
        /// Active `ColorMode`.
        11 color_mode: u32 = Uint32,
        /// Cold white channel.
        12 cold_white: f32 = Float,
        /// Warm white channel.
        13 warm_white: f32 = Float,
        /// Sub-device id.
        14 device_id: u32 = Uint32,
    }
    /// A sensor's state.
    SensorStateResponse = 25 {
        /// The entity.
        1 key: u32 = Fixed32,
        /// The value in the entity's unit (NaN when unknown).
        2 state: f32 = Float,
        /// No state yet.
        3 missing_state: bool = Bool,
        /// Sub-device id.
        4 device_id: u32 = Uint32,
    }
    /// A switch's state.
    SwitchStateResponse = 26 {
        /// The entity.
        1 key: u32 = Fixed32,
        /// On.
        2 state: bool = Bool,
        /// Sub-device id.
        3 device_id: u32 = Uint32,
        /// No state yet.
        4 missing_state: bool = Bool,
    }
    /// A text sensor's state.
    TextSensorStateResponse = 27 {
        /// The entity.
        1 key: u32 = Fixed32,
        /// The text.
        2 state: String = Str,
        /// No state yet.
        3 missing_state: bool = Bool,
        /// Sub-device id.
        4 device_id: u32 = Uint32,
    }
    /// Moves a cover.
    CoverCommandRequest = 30 {
        /// The entity.
        1 key: u32 = Fixed32,
        /// Legacy (API < 1.1): `legacy_command` is set.
        2 has_legacy_command: bool = Bool,
        /// Legacy: 0 open, 1 close, 2 stop.
        3 legacy_command: u32 = Uint32,
        /// `position` is set.
        4 has_position: bool = Bool,
        /// 0.0 closed to 1.0 open.
        5 position: f32 = Float,
        /// `tilt` is set.
        6 has_tilt: bool = Bool,
        /// 0.0 closed to 1.0 open.
        7 tilt: f32 = Float,
        /// Stop moving.
        8 stop: bool = Bool,
        /// Sub-device id.
        9 device_id: u32 = Uint32,
    }
    /// Controls a fan.
    FanCommandRequest = 31 {
        /// The entity.
        1 key: u32 = Fixed32,
        /// `state` is set.
        2 has_state: bool = Bool,
        /// On.
        3 state: bool = Bool,
        /// `oscillating` is set.
        6 has_oscillating: bool = Bool,
        /// Oscillate.
        7 oscillating: bool = Bool,
        /// `direction` is set.
        8 has_direction: bool = Bool,
        /// 0 forward, 1 reverse.
        9 direction: u32 = Uint32,
        /// `speed_level` is set.
        10 has_speed_level: bool = Bool,
        /// 1..=supported_speed_count.
        11 speed_level: i32 = Int32,
        /// `preset_mode` is set.
        12 has_preset_mode: bool = Bool,
        /// Preset mode.
        13 preset_mode: String = Str,
        /// Sub-device id.
        14 device_id: u32 = Uint32,
    }
    /// Controls a light.
    LightCommandRequest = 32 {
        /// The entity.
        1 key: u32 = Fixed32,
        /// `state` is set.
        2 has_state: bool = Bool,
        /// On.
        3 state: bool = Bool,
        /// `brightness` is set.
        4 has_brightness: bool = Bool,
        /// 0.0 to 1.0.
        5 brightness: f32 = Float,
        /// `red`, `green`, `blue` are set.
        6 has_rgb: bool = Bool,
        /// Red, 0.0 to 1.0.
        7 red: f32 = Float,
        /// Green, 0.0 to 1.0.
        8 green: f32 = Float,
        /// Blue, 0.0 to 1.0.
        9 blue: f32 = Float,
        /// `white` is set.
        10 has_white: bool = Bool,
        /// White, 0.0 to 1.0.
        11 white: f32 = Float,
        /// `color_temperature` is set.
        12 has_color_temperature: bool = Bool,
        /// Mireds.
        13 color_temperature: f32 = Float,
        /// `transition_length` is set.
        14 has_transition_length: bool = Bool,
        /// Transition, ms.
        15 transition_length: u32 = Uint32,
        /// `flash_length` is set.
        16 has_flash_length: bool = Bool,
        /// Flash, ms.
        17 flash_length: u32 = Uint32,
        /// `effect` is set.
        18 has_effect: bool = Bool,
        /// Effect name.
        19 effect: String = Str,
        /// `color_brightness` is set.
        20 has_color_brightness: bool = Bool,
        /// Brightness of the color channels.
        21 color_brightness: f32 = Float,
        /// `color_mode` is set.
        22 has_color_mode: bool = Bool,
        /// `ColorMode`.
        23 color_mode: u32 = Uint32,
        /// Sub-device id.
        28 device_id: u32 = Uint32,
    }
    /// Switches a switch.
    SwitchCommandRequest = 33 {
        /// The entity.
        1 key: u32 = Fixed32,
        /// On.
        2 state: bool = Bool,
        /// Sub-device id.
        3 device_id: u32 = Uint32,
    }
    /// Asks the peer for the time (a device with `time: platform: homeassistant` asks the client).
    GetTimeRequest = 36 {}
    /// The time, answering [`GetTimeRequest`].
    GetTimeResponse = 37 {
        /// Seconds since 1970-01-01 UTC.
        1 epoch_seconds: u32 = Fixed32,
    }
    /// A climate device (thermostat, air conditioner).
    ListEntitiesClimateResponse = 46 {
        /// Entity id within its domain.
        1 object_id: String = Str,
        /// The key its states and commands carry.
        2 key: u32 = Fixed32,
        /// Display name.
        3 name: String = Str,
        /// It reports the current temperature (also `feature_flags` bit 0).
        5 supports_current_temperature: bool = Bool,
        /// It has low and high setpoints (also `feature_flags` bit 1).
        6 supports_two_point_target_temperature: bool = Bool,
        /// `ClimateMode` values.
        7 supported_modes: Vec<u32> = Enums,
        /// Lowest setpoint, °C.
        8 visual_min_temperature: f32 = Float,
        /// Highest setpoint, °C.
        9 visual_max_temperature: f32 = Float,
        /// Setpoint step, °C.
        10 visual_target_temperature_step: f32 = Float,
        /// It reports what it is doing.
        12 supports_action: bool = Bool,
        /// `ClimateFanMode` values.
        13 supported_fan_modes: Vec<u32> = Enums,
        /// `ClimateSwingMode` values.
        14 supported_swing_modes: Vec<u32> = Enums,
        /// Custom fan mode names.
        15 supported_custom_fan_modes: Vec<String> = Strings,
        /// `ClimatePreset` values.
        16 supported_presets: Vec<u32> = Enums,
        /// Custom preset names.
        17 supported_custom_presets: Vec<String> = Strings,
        /// Hidden unless enabled.
        18 disabled_by_default: bool = Bool,
        /// Icon.
        19 icon: String = Str,
        /// 0 none, 1 config, 2 diagnostic.
        20 entity_category: u32 = Uint32,
        /// Current temperature step, °C.
        21 visual_current_temperature_step: f32 = Float,
        /// It reports the current humidity.
        22 supports_current_humidity: bool = Bool,
        /// It takes a target humidity.
        23 supports_target_humidity: bool = Bool,
        /// Lowest target humidity, %.
        24 visual_min_humidity: f32 = Float,
        /// Highest target humidity, %.
        25 visual_max_humidity: f32 = Float,
        /// Sub-device id.
        26 device_id: u32 = Uint32,
        /// `ClimateFeature` bits (API 1.13+).
        27 feature_flags: u32 = Uint32,
        /// Display unit hint: 0 °C, 1 °F, 2 K (values on the wire stay °C).
        28 temperature_unit: u32 = Uint32,
    }
    /// A climate device's state.
    ClimateStateResponse = 47 {
        /// The entity.
        1 key: u32 = Fixed32,
        /// `ClimateMode`.
        2 mode: u32 = Uint32,
        /// Current temperature, °C.
        3 current_temperature: f32 = Float,
        /// Setpoint, °C.
        4 target_temperature: f32 = Float,
        /// Low setpoint, °C.
        5 target_temperature_low: f32 = Float,
        /// High setpoint, °C.
        6 target_temperature_high: f32 = Float,
        /// `ClimateAction`.
        8 action: u32 = Uint32,
        /// `ClimateFanMode`.
        9 fan_mode: u32 = Uint32,
        /// `ClimateSwingMode`.
        10 swing_mode: u32 = Uint32,
        /// Custom fan mode.
        11 custom_fan_mode: String = Str,
        /// `ClimatePreset`.
        12 preset: u32 = Uint32,
        /// Custom preset.
        13 custom_preset: String = Str,
        /// Current humidity, %.
        14 current_humidity: f32 = Float,
        /// Target humidity, %.
        15 target_humidity: f32 = Float,
        /// Sub-device id.
        16 device_id: u32 = Uint32,
        /// No state yet.
        17 missing_state: bool = Bool,
    }
    /// Controls a climate device.
    ClimateCommandRequest = 48 {
        /// The entity.
        1 key: u32 = Fixed32,
        /// `mode` is set.
        2 has_mode: bool = Bool,
        /// `ClimateMode`.
        3 mode: u32 = Uint32,
        /// `target_temperature` is set.
        4 has_target_temperature: bool = Bool,
        /// Setpoint, °C.
        5 target_temperature: f32 = Float,
        /// `target_temperature_low` is set.
        6 has_target_temperature_low: bool = Bool,
        /// Low setpoint, °C.
        7 target_temperature_low: f32 = Float,
        /// `target_temperature_high` is set.
        8 has_target_temperature_high: bool = Bool,
        /// High setpoint, °C.
        9 target_temperature_high: f32 = Float,
        /// `fan_mode` is set.
        12 has_fan_mode: bool = Bool,
        /// `ClimateFanMode`.
        13 fan_mode: u32 = Uint32,
        /// `swing_mode` is set.
        14 has_swing_mode: bool = Bool,
        /// `ClimateSwingMode`.
        15 swing_mode: u32 = Uint32,
        /// `custom_fan_mode` is set.
        16 has_custom_fan_mode: bool = Bool,
        /// Custom fan mode.
        17 custom_fan_mode: String = Str,
        /// `preset` is set.
        18 has_preset: bool = Bool,
        /// `ClimatePreset`.
        19 preset: u32 = Uint32,
        /// Sub-device id.
        24 device_id: u32 = Uint32,
    }
    /// A number (a setting with a range).
    ListEntitiesNumberResponse = 49 {
        /// Entity id within its domain.
        1 object_id: String = Str,
        /// The key its states and commands carry.
        2 key: u32 = Fixed32,
        /// Display name.
        3 name: String = Str,
        /// Icon.
        5 icon: String = Str,
        /// Lowest value.
        6 min_value: f32 = Float,
        /// Highest value.
        7 max_value: f32 = Float,
        /// Step.
        8 step: f32 = Float,
        /// Hidden unless enabled.
        9 disabled_by_default: bool = Bool,
        /// 0 none, 1 config, 2 diagnostic.
        10 entity_category: u32 = Uint32,
        /// Unit.
        11 unit_of_measurement: String = Str,
        /// 0 auto, 1 box, 2 slider.
        12 mode: u32 = Uint32,
        /// Home Assistant device class.
        13 device_class: String = Str,
        /// Sub-device id.
        14 device_id: u32 = Uint32,
    }
    /// A number's state.
    NumberStateResponse = 50 {
        /// The entity.
        1 key: u32 = Fixed32,
        /// The value.
        2 state: f32 = Float,
        /// No state yet.
        3 missing_state: bool = Bool,
        /// Sub-device id.
        4 device_id: u32 = Uint32,
    }
    /// Sets a number.
    NumberCommandRequest = 51 {
        /// The entity.
        1 key: u32 = Fixed32,
        /// The value.
        2 state: f32 = Float,
        /// Sub-device id.
        3 device_id: u32 = Uint32,
    }
    /// A select (one option of a list).
    ListEntitiesSelectResponse = 52 {
        /// Entity id within its domain.
        1 object_id: String = Str,
        /// The key its states and commands carry.
        2 key: u32 = Fixed32,
        /// Display name.
        3 name: String = Str,
        /// Icon.
        5 icon: String = Str,
        /// The options.
        6 options: Vec<String> = Strings,
        /// Hidden unless enabled.
        7 disabled_by_default: bool = Bool,
        /// 0 none, 1 config, 2 diagnostic.
        8 entity_category: u32 = Uint32,
        /// Sub-device id.
        9 device_id: u32 = Uint32,
    }
    /// A select's state.
    SelectStateResponse = 53 {
        /// The entity.
        1 key: u32 = Fixed32,
        /// The option.
        2 state: String = Str,
        /// No state yet.
        3 missing_state: bool = Bool,
        /// Sub-device id.
        4 device_id: u32 = Uint32,
    }
    /// Picks a select's option.
    SelectCommandRequest = 54 {
        /// The entity.
        1 key: u32 = Fixed32,
        /// The option.
        2 state: String = Str,
        /// Sub-device id.
        3 device_id: u32 = Uint32,
    }
    /// A button.
    ListEntitiesButtonResponse = 61 {
        /// Entity id within its domain.
        1 object_id: String = Str,
        /// The key its commands carry.
        2 key: u32 = Fixed32,
        /// Display name.
        3 name: String = Str,
        /// Icon.
        5 icon: String = Str,
        /// Hidden unless enabled.
        6 disabled_by_default: bool = Bool,
        /// 0 none, 1 config, 2 diagnostic.
        7 entity_category: u32 = Uint32,
        /// Home Assistant device class (`restart`, `update`, `identify`).
        8 device_class: String = Str,
        /// Sub-device id.
        9 device_id: u32 = Uint32,
    }
    /// Presses a button.
    ButtonCommandRequest = 62 {
        /// The entity.
        1 key: u32 = Fixed32,
        /// Sub-device id.
        2 device_id: u32 = Uint32,
    }
}
