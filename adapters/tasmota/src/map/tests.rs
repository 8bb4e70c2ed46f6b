use super::*;
use crate::testdata::*;
use serde_json::json;

fn mapping(config: &str, sensor: Option<&str>) -> Mapping {
    let config = DiscoveryConfig::parse(config.as_bytes()).unwrap();
    let sn: Option<Map<String, Json>> = sensor.map(|s| serde_json::from_str(s).unwrap());
    Mapping::new(&config, sn.as_ref())
}

fn config_with(base: &str, changes: Json) -> String {
    let mut c: Json = serde_json::from_str(base).unwrap();
    for (k, v) in changes.as_object().unwrap() {
        c[k] = v.clone();
    }
    c.to_string()
}

/// One line per feature: key, capability, type, unit, access, endpoint, category, label.
fn features(m: &Mapping) -> Vec<String> {
    m.descriptor
        .features
        .iter()
        .map(|f| {
            let access = format!(
                "{}{}{}",
                if f.access.observe { "o" } else { "-" },
                if f.access.set { "s" } else { "-" },
                if f.access.get { "g" } else { "-" }
            );
            let range = match &f.value_type {
                ValueType::Number { min: Some(lo), max: Some(hi), .. } => format!("{lo}..{hi}"),
                ValueType::Enum { values } => values.join("|"),
                other => other.name().to_owned(),
            };
            format!(
                "{} {:?} {} {} {} {} {:?} {}",
                f.key,
                f.capability,
                range,
                f.unit.as_deref().unwrap_or("-"),
                access,
                f.endpoint.as_deref().unwrap_or("-"),
                f.category,
                f.label.as_deref().unwrap_or("-"),
            )
        })
        .collect()
}

fn state(m: &Mapping, payload: &str) -> Decoded {
    let obj: Map<String, Json> = serde_json::from_str(payload).unwrap();
    let mut d = Decoded::default();
    m.decode_state(&obj, &mut d);
    d
}

fn sensors(m: &Mapping, payload: &str) -> Decoded {
    let obj: Map<String, Json> = serde_json::from_str(payload).unwrap();
    let mut d = Decoded::default();
    m.decode_sensors(&obj, &mut d);
    d
}

fn values(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

fn commands(m: &Mapping, pairs: &[(&str, Value)]) -> (Vec<String>, Vec<String>) {
    let e = m.encode(&values(pairs)).unwrap();
    (e.commands.iter().map(|(c, a)| format!("{c} {a}")).collect(), e.expect)
}

#[test]
fn a_sonoff_basic_is_one_relay_with_its_signal() {
    let m = mapping(SONOFF_BASIC, Some(SONOFF_BASIC_SENSORS));
    let d = &m.descriptor;
    assert_eq!(d.id.as_str(), "tasmota:84f3eb487d21");
    assert_eq!(d.name, "x3");
    assert_eq!(
        (d.manufacturer.as_deref(), d.model.as_deref(), d.firmware.as_deref()),
        (Some("Tasmota"), Some("Sonoff Basic"), Some("9.2.0"))
    );
    assert_eq!(d.power_source, PowerSource::Mains);
    assert_eq!(
        features(&m),
        [
            "state OnOff bool - osg - Primary -",
            "signal_strength SignalStrength number dBm o-g - Diagnostic Wi-Fi signal",
        ]
    );
    assert!(!m.has_sensors());
    let d = state(&m, SONOFF_BASIC_STATE);
    assert_eq!(d.values, values(&[("state", false.into()), ("signal_strength", (-82.0).into())]));
    assert!(d.problems.is_empty() && d.events.is_empty());
    assert_eq!(state(&m, r#"{"POWER":"ON"}"#).values, values(&[("state", true.into())]));
    assert_eq!(state(&m, r#"{"POWER1":"ON"}"#).values, values(&[("state", true.into())]));
    assert_eq!(commands(&m, &[("state", true.into())]), (vec!["POWER1 ON".into()], vec!["POWER1".into()]));
}

#[test]
fn two_relays_are_two_endpoints_named_by_their_friendly_names() {
    let m = mapping(SONOFF_T1_2CH, None);
    assert_eq!(m.descriptor.name, "Tasmota");
    assert_eq!(
        features(&m)[..2],
        [
            "state_relay_1 OnOff bool - osg relay_1 Primary Tasmota",
            "state_relay_2 OnOff bool - osg relay_2 Primary Tasmota2",
        ]
    );
    let d = state(&m, TWO_RELAY_STATE);
    assert_eq!(d.values, values(&[("state_relay_1", false.into()), ("state_relay_2", false.into())]));
    let mut d = Decoded::default();
    m.decode_power(1, "ON", &mut d);
    assert_eq!(d.values, values(&[("state_relay_2", true.into())]));
    let mut d = Decoded::default();
    m.decode_power(5, "ON", &mut d);
    assert_eq!(d.problems, ["the device has no relay 6"]);
    // Power off goes last, so the relays end as asked.
    assert_eq!(
        commands(&m, &[("state_relay_1", false.into()), ("state_relay_2", true.into())]),
        (vec!["POWER2 ON".into(), "POWER1 OFF".into()], vec!["POWER2".into(), "POWER1".into()])
    );
}

#[test]
fn an_rgbcw_light_has_brightness_color_temperature_and_color() {
    let m = mapping(H801_RGBCW, None);
    assert_eq!(
        features(&m),
        [
            "state OnOff bool - osg - Primary -",
            "brightness Brightness 0..100 % osg - Primary -",
            "color_temperature ColorTemperature 2000..6536 K osg - Primary -",
            "color Color color - osg - Primary -",
            "signal_strength SignalStrength number dBm o-g - Diagnostic Wi-Fi signal",
        ]
    );
    // White mode: CT 250 mired is 4000 K.
    let d = state(&m, RGBCW_WHITE_STATE);
    assert_eq!(
        d.values,
        values(&[
            ("state", true.into()),
            ("brightness", 100.0.into()),
            ("color_temperature", 4000.0.into()),
            ("color", Color { hue: 0.0, saturation: 0.0 }.into()),
        ])
    );
    let d = state(&m, RGB_DIMMER_RESULT);
    assert_eq!(d.values["brightness"], Value::Number(60.0));
    assert_eq!(d.values["color"], Value::Color(Color { hue: 21.0, saturation: 55.0 }));
    let (cmds, expect) = commands(
        &m,
        &[
            ("brightness", 40.4.into()),
            ("color", Color { hue: 359.6, saturation: 80.2 }.into()),
            ("color_temperature", 2700.0.into()),
            ("state", true.into()),
        ],
    );
    assert_eq!(cmds, ["POWER1 ON", "HSBColor1 0", "HSBColor2 80", "CT 370", "Dimmer 40"]);
    assert_eq!(expect, ["POWER1", "HSBColor", "CT", "Dimmer"]);
    // Out of the light's range, the color temperature is clamped to it.
    assert_eq!(commands(&m, &[("color_temperature", 10_000.0.into())]).0, ["CT 153"]);
}

#[test]
fn mired_and_kelvin_convert_at_the_edges() {
    let m = mapping(H801_RGBCW, None);
    for (mired, kelvin) in [(153, 6536.0), (500, 2000.0), (370, 2703.0), (326, 3067.0)] {
        let d = state(&m, &format!(r#"{{"CT":{mired}}}"#));
        assert_eq!(d.values["color_temperature"], Value::Number(kelvin), "{mired}");
    }
    assert_eq!(commands(&m, &[("color_temperature", 6536.0.into())]).0, ["CT 153"]);
    assert_eq!(commands(&m, &[("color_temperature", 2000.0.into())]).0, ["CT 500"]);
    assert_eq!(commands(&m, &[("brightness", 100.0.into())]).0, ["Dimmer 100"]);
    assert_eq!(commands(&m, &[("brightness", 0.0.into())]).0, ["Dimmer 0"]);
}

#[test]
fn a_dimmer_has_brightness_only() {
    let m = mapping(HUZZAH_DIMMER, None);
    let keys: Vec<&str> = m.descriptor.features.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["state", "brightness", "signal_strength"]);
    let d = state(&m, HUZZAH_DIMMER_STATE);
    assert_eq!(
        d.values,
        values(&[("state", true.into()), ("brightness", 7.0.into()), ("signal_strength", (-69.0).into())])
    );
}

#[test]
fn a_tuya_dimmer_is_driven_with_dimmer3() {
    let m = mapping(&config_with(HUZZAH_DIMMER, json!({"ty": 1})), None);
    assert_eq!(commands(&m, &[("brightness", 50.0.into())]), (vec!["Dimmer3 50".into()], vec!["Dimmer".into()]));
}

#[test]
fn an_ifan_has_its_light_relay_and_a_fan_mode() {
    let m = mapping(IFAN03, None);
    let keys: Vec<&str> = m.descriptor.features.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["state", "fan_mode", "signal_strength"]);
    assert_eq!(features(&m)[1], "fan_mode FanMode off|low|medium|high - osg - Primary -");
    let d = state(&m, IFAN03_STATE);
    assert_eq!(
        d.values,
        values(&[("state", false.into()), ("fan_mode", "off".into()), ("signal_strength", (-65.0).into())])
    );
    assert_eq!(state(&m, r#"{"FanSpeed":3}"#).values["fan_mode"], Value::Text("high".into()));
    assert_eq!(state(&m, r#"{"FanSpeed":7}"#).problems, ["`FanSpeed` is 7, not 0 to 3"]);
    assert_eq!(commands(&m, &[("fan_mode", "medium".into())]), (vec!["FanSpeed 2".into()], vec!["FanSpeed".into()]));
}

#[test]
fn buttons_and_switches_detached_from_relays_give_events_and_states() {
    let m = mapping(ALL_CLASSES, None);
    assert_eq!(
        features(&m),
        [
            "state OnOff bool - osg - Primary -",
            "brightness Brightness 0..100 % osg - Primary -",
            "color_temperature ColorTemperature 2632..5000 K osg - Primary -",
            "color Color color - osg - Primary -",
            "action Action single|double|triple|quad|penta|hold|toggle|inc_dec|inv|clear - --- - Primary -",
            "switch_1 Other bool - o-g - Primary Door",
            "switch_2 Other bool - o-g - Primary Motion",
            "signal_strength SignalStrength number dBm o-g - Diagnostic Wi-Fi signal",
        ]
    );
    assert_eq!(m.unsupported, ["2 shutter relays (shutters are not supported yet)"]);
    // SetOption82: the reduced range, 200..380 mired.
    assert_eq!(commands(&m, &[("color_temperature", 2000.0.into())]).0, ["CT 380"]);
    let d = state(&m, r#"{"Button1":{"Action":"DOUBLE"}}"#);
    assert_eq!(d.events, [("double".to_owned(), json!({"button": 1}))]);
    assert!(d.values.is_empty());
    let d = state(&m, r#"{"Switch1":{"Action":"ON"}}"#);
    assert_eq!(d.values, values(&[("switch_1", true.into())]));
    assert!(d.events.is_empty());
    let d = state(&m, r#"{"Switch2":{"Action":"TOGGLE"}}"#);
    assert_eq!(d.events, [("toggle".to_owned(), json!({"switch": 2}))]);
    let d = sensors(&m, r#"{"Time":"2024-01-01T00:00:00","Switch1":"OFF","Switch2":"ON"}"#);
    assert_eq!(d.values, values(&[("switch_1", false.into()), ("switch_2", true.into())]));
}

#[test]
fn button_presses_are_not_events_unless_the_buttons_are_detached() {
    let m = mapping(SONOFF_BASIC, None);
    let d = state(&m, r#"{"Button1":{"Action":"SINGLE"}}"#);
    assert!(d.events.is_empty() && d.values.is_empty());
}

#[test]
fn one_light_per_pwm_channel_with_setoption68() {
    let m = mapping(&config_with(H801_RGBCW, json!({"rl": [2, 2, 0, 0], "lt_st": 2, "so": {"68": 1}})), None);
    let keys: Vec<&str> = m.descriptor.features.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["state_relay_1", "brightness_relay_1", "state_relay_2", "brightness_relay_2", "signal_strength"]);
    let d = state(&m, r#"{"POWER1":"ON","Channel1":40,"POWER2":"OFF","Channel2":0}"#);
    assert_eq!(
        d.values,
        values(&[
            ("state_relay_1", true.into()),
            ("brightness_relay_1", 40.0.into()),
            ("state_relay_2", false.into()),
            ("brightness_relay_2", 0.0.into()),
        ])
    );
    assert_eq!(
        commands(&m, &[("brightness_relay_2", 30.0.into())]),
        (vec!["Channel2 30".into()], vec!["Channel2".into()])
    );
}

#[test]
fn an_unlinked_rgbcw_light_is_a_color_light_and_a_white_light() {
    let m = mapping(&config_with(H801_RGBCW, json!({"rl": [2, 2, 0, 0], "lk": 0})), None);
    let keys: Vec<&str> = m.descriptor.features.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "state_relay_1",
            "brightness_relay_1",
            "color_relay_1",
            "state_relay_2",
            "brightness_relay_2",
            "color_temperature_relay_2",
            "signal_strength"
        ]
    );
    let d = state(&m, r#"{"POWER1":"ON","POWER2":"ON","Dimmer1":20,"Dimmer2":80,"HSBColor":"240,100,20","CT":500}"#);
    assert_eq!(d.values["brightness_relay_1"], Value::Number(20.0));
    assert_eq!(d.values["brightness_relay_2"], Value::Number(80.0));
    assert_eq!(d.values["color_temperature_relay_2"], Value::Number(2000.0));
    assert_eq!(commands(&m, &[("brightness_relay_2", 10.0.into())]).0, ["Dimmer2 10"]);
}

#[test]
fn a_sensor_board_reports_in_canonical_units() {
    let m = mapping(SONOFF_BASIC, Some(DHT11_SENSOR));
    assert!(m.has_sensors());
    assert_eq!(
        features(&m)[1..4],
        [
            "dew_point Temperature number °C o-g - Primary DHT11 DewPoint",
            "humidity Humidity number % o-g - Primary DHT11 Humidity",
            "temperature Temperature number °C o-g - Primary DHT11 Temperature",
        ]
    );
    let d = sensors(&m, DHT11_SENSOR);
    assert_eq!(
        d.values,
        values(&[("temperature", 19.0.into()), ("humidity", 16.0.into()), ("dew_point", (-7.5).into())])
    );
    // The same board set to Fahrenheit (SetOption8).
    let d = sensors(&m, r#"{"DHT11":{"Temperature":66.2,"Humidity":16.0,"DewPoint":18.5},"TempUnit":"F"}"#);
    assert_eq!(d.values["temperature"], Value::Number(19.0));
    assert_eq!(d.values["dew_point"], Value::Number(-7.5));
    let d = sensors(&m, r#"{"DHT11":{"Temperature":32},"TempUnit":"F"}"#);
    assert_eq!(d.values["temperature"], Value::Number(0.0));
    let d = sensors(&m, r#"{"DHT11":{"Temperature":20},"TempUnit":"X"}"#);
    assert_eq!(d.problems, ["temperature unit `X` is not C, F or K"]);
}

#[test]
fn a_sensor_id_is_not_a_value() {
    let m = mapping(SONOFF_BASIC, Some(DS18B20_SENSOR));
    let keys: Vec<&str> = m.descriptor.features.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["state", "temperature", "signal_strength"]);
    assert_eq!(sensors(&m, DS18B20_SENSOR).values, values(&[("temperature", 24.8.into())]));
}

#[test]
fn an_energy_meter_has_power_energy_voltage_and_current() {
    let m = mapping(SONOFF_BASIC, Some(POW_SENSOR));
    assert_eq!(
        features(&m)[1..],
        [
            "apparent_power Other number VA o-g - Diagnostic ENERGY ApparentPower",
            "current Current number A o-g - Primary ENERGY Current",
            "power_factor Other number - o-g - Diagnostic ENERGY Factor",
            "energy_period Other number Wh o-g - Diagnostic ENERGY Period",
            "power Power number W o-g - Primary ENERGY Power",
            "reactive_power Other number var o-g - Diagnostic ENERGY ReactivePower",
            "energy_today Energy number kWh o-g - Diagnostic ENERGY Today",
            "energy Energy number kWh o-g - Primary ENERGY Total",
            "voltage Voltage number V o-g - Primary ENERGY Voltage",
            "energy_yesterday Energy number kWh o-g - Diagnostic ENERGY Yesterday",
            "signal_strength SignalStrength number dBm o-g - Diagnostic Wi-Fi signal",
        ]
    );
    let d = sensors(&m, POW_SENSOR);
    assert_eq!(d.values["energy"], Value::Number(514.153));
    assert_eq!(d.values["power"], Value::Number(56.0));
    assert_eq!(d.values["voltage"], Value::Number(234.0));
    assert_eq!(d.values["current"], Value::Number(0.392));
    assert_eq!(d.values["power_factor"], Value::Number(0.61));
    assert_eq!(d.values.len(), 10);
    assert!(d.problems.is_empty());
}

#[test]
fn a_two_channel_meter_has_a_feature_per_channel() {
    let m = mapping(SONOFF_T1_2CH, Some(DUAL_R3_SENSOR));
    let f = features(&m);
    assert!(
        f.contains(&"energy_channel_1 Energy number kWh o-g channel_1 Primary ENERGY Total channel_1".into()),
        "{f:#?}"
    );
    assert!(
        f.contains(&"power_channel_2 Power number W o-g channel_2 Primary ENERGY Power channel_2".into()),
        "{f:#?}"
    );
    assert!(f.contains(&"voltage Voltage number V o-g - Primary ENERGY Voltage".into()), "{f:#?}");
    // The meter chip's own temperature, inside ENERGY.
    assert!(
        f.contains(&"temperature_bl09xx Temperature number °C o-g - Primary ENERGY Temperature bl09xx".into()),
        "{f:#?}"
    );
    let d = sensors(&m, DUAL_R3_SENSOR);
    assert_eq!(d.values["energy_channel_1"], Value::Number(2.813));
    assert_eq!(d.values["energy_channel_2"], Value::Number(0.254));
    assert_eq!(d.values["power_channel_1"], Value::Number(52.0));
    assert_eq!(d.values["temperature_bl09xx"], Value::Number(46.5));
}

#[test]
fn switches_in_the_sensors_are_features_and_fahrenheit_becomes_celsius() {
    let m = mapping(SONOFF_T1_2CH, Some(SHELLY25_SENSOR));
    let keys: Vec<&str> = m.descriptor.features.iter().map(|f| f.key.as_str()).collect();
    assert!(keys.contains(&"switch_1") && keys.contains(&"switch_2"), "{keys:?}");
    assert!(!keys.contains(&"action"), "switches that are not detached send no actions: {keys:?}");
    let d = sensors(&m, SHELLY25_SENSOR);
    assert_eq!(d.values["switch_1"], Value::Bool(false));
    assert_eq!(d.values["temperature"], Value::Number(37.83));
    assert_eq!(d.values["energy"], Value::Number(0.586));
}

#[test]
fn two_sensors_of_one_quantity_are_told_apart_by_their_sensor() {
    let sn = r#"{"Time":"2024-03-01T10:00:00","AM2301":{"Temperature":21.4,"Humidity":45.2,"DewPoint":9.1},"BME280":{"Temperature":21.9,"Humidity":44.0,"DewPoint":9.2,"Pressure":760.1},"PressureUnit":"mmHg","TempUnit":"C"}"#;
    let m = mapping(SONOFF_BASIC, Some(sn));
    let f = features(&m);
    assert!(
        f.contains(&"temperature_am2301 Temperature number °C o-g am2301 Primary AM2301 Temperature".into()),
        "{f:#?}"
    );
    assert!(f.contains(&"humidity_bme280 Humidity number % o-g bme280 Primary BME280 Humidity".into()), "{f:#?}");
    assert!(f.contains(&"pressure Pressure number hPa o-g - Primary BME280 Pressure".into()), "{f:#?}");
    let d = sensors(&m, sn);
    assert_eq!(d.values["temperature_am2301"], Value::Number(21.4));
    assert_eq!(d.values["temperature_bme280"], Value::Number(21.9));
    // mmHg (SetOption24) to hPa.
    assert_eq!(d.values["pressure"], Value::Number(1013.38));
}

#[test]
fn unknown_sensor_values_are_kept_as_other_numbers() {
    let sn = r#"{"ANALOG":{"A0":512},"SR04":{"Distance":12.5},"TX23":{"Speed":{"Act":14.8,"Avg":8.5},"Dir":{"Card":"WSW","Deg":247.5}},"SpeedUnit":"km/h"}"#;
    let m = mapping(SONOFF_BASIC, Some(sn));
    let f = features(&m);
    assert!(f.contains(&"a0 Other number - o-g - Primary ANALOG A0".into()), "{f:#?}");
    assert!(f.contains(&"distance Other number cm o-g - Primary SR04 Distance".into()), "{f:#?}");
    assert!(f.contains(&"speed_act Other number km/h o-g - Primary TX23 Speed act".into()), "{f:#?}");
    assert!(f.contains(&"dir_deg Other number - o-g - Primary TX23 Dir deg".into()), "{f:#?}");
    let d = sensors(&m, sn);
    assert_eq!(d.values["a0"], Value::Number(512.0));
    assert_eq!(d.values["speed_avg"], Value::Number(8.5));
    assert!(!d.values.contains_key("dir_card"));
}

#[test]
fn new_sensor_values_are_noticed() {
    let m = mapping(SONOFF_BASIC, Some(DHT11_SENSOR));
    let sn: Map<String, Json> = serde_json::from_str(DHT11_SENSOR).unwrap();
    assert!(!m.misses_sensors(&sn));
    let more: Map<String, Json> =
        serde_json::from_str(r#"{"DHT11":{"Temperature":1},"BH1750":{"Illuminance":30}}"#).unwrap();
    assert!(m.misses_sensors(&more));
    let switch: Map<String, Json> = serde_json::from_str(r#"{"Switch1":"ON"}"#).unwrap();
    assert!(m.misses_sensors(&switch));
}

#[test]
fn values_that_cannot_be_read_are_reported_and_the_rest_kept() {
    let m = mapping(H801_RGBCW, None);
    let d = state(&m, r#"{"POWER":"MAYBE","Dimmer":"bright","CT":0,"HSBColor":"1,2","Wifi":{"Signal":-50}}"#);
    assert_eq!(d.values, values(&[("signal_strength", (-50.0).into())]));
    assert_eq!(
        d.problems,
        [
            r#"`POWER` is "MAYBE", neither ON nor OFF"#,
            r#"`Dimmer` is "bright", not a number from 0 to 100"#,
            "`CT` is 0, not a color temperature in mired",
            r#"`HSBColor` is "1,2", not "hue,saturation,brightness""#,
        ]
    );
    let d = state(&m, r#"{"HSBColor":"400,10,10","Dimmer":101}"#);
    assert_eq!(d.problems.len(), 2);
    let m = mapping(SONOFF_BASIC, Some(DHT11_SENSOR));
    let d = sensors(&m, r#"{"DHT11":{"Temperature":"nan","Humidity":50}}"#);
    assert_eq!(d.values, values(&[("humidity", 50.0.into())]));
    assert_eq!(d.problems, [r#"`DHT11.Temperature` is "nan", not a number"#]);
}

#[test]
fn custom_state_words_are_used_both_ways() {
    let m = mapping(&config_with(SONOFF_BASIC, json!({"state": ["AUS", "AN", "UMSCHALTEN", "HALTEN"]})), None);
    assert_eq!(state(&m, r#"{"POWER":"AN"}"#).values, values(&[("state", true.into())]));
    assert_eq!(state(&m, r#"{"POWER":"AUS"}"#).values, values(&[("state", false.into())]));
    assert_eq!(commands(&m, &[("state", false.into())]).0, ["POWER1 AUS"]);
}

#[test]
fn a_battery_device_says_so() {
    let m = mapping(&config_with(SONOFF_BASIC, json!({"bat": 1})), None);
    assert_eq!(m.descriptor.power_source, PowerSource::Battery);
}

#[test]
fn the_name_falls_back_to_the_friendly_name_then_the_host_name() {
    let m = mapping(&config_with(SONOFF_BASIC, json!({"dn": ""})), None);
    assert_eq!(m.descriptor.name, "Basic-3 x3");
    let m = mapping(&config_with(SONOFF_BASIC, json!({"dn": "", "fn": [null]})), None);
    assert_eq!(m.descriptor.name, "ESP-Basic-3");
}

#[test]
fn names_become_snake_case() {
    for (name, snaked) in [
        ("CarbonDioxide", "carbon_dioxide"),
        ("DS18B20-1", "ds18b20_1"),
        ("PB0.3", "pb0_3"),
        ("AM2301", "am2301"),
        ("TotalTariff", "total_tariff"),
        ("eCO2", "e_co2"),
        ("SHT3X-0x44", "sht3x_0x44"),
        ("", "value"),
    ] {
        assert_eq!(snake(name), snaked, "{name}");
    }
}
