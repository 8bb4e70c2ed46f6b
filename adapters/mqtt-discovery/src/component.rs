//! Each Home Assistant MQTT component mapped onto the model: which features it gives, how a
//! message on its state topics becomes values ([`Read`]) and how a value becomes a message on its
//! command topics ([`Write`]). The table of the whole mapping is in the crate's documentation.

use hearth_sdk::{Access, Capability, Category, Color, Feature, Value, ValueType};
use serde_json::{Map, Value as Json, json};

use crate::config::EntityConfig;
use crate::convert::{self, Conv};
use crate::template::{EvalError, Template, Val, Vars};

/// The components this adapter maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    /// `sensor`: a measurement or text.
    Sensor,
    /// `binary_sensor`: on/off.
    BinarySensor,
    /// `switch`.
    Switch,
    /// `light`, default or JSON schema.
    Light,
    /// `cover`.
    Cover,
    /// `climate`.
    Climate,
    /// `fan`.
    Fan,
    /// `lock`.
    Lock,
    /// `button`.
    Button,
    /// `number`.
    Number,
    /// `select`.
    Select,
    /// `text`.
    Text,
    /// `event`.
    Event,
    /// `device_automation` (device triggers).
    DeviceTrigger,
}

impl Component {
    /// The component of a discovery topic or a `platform`; `None` for one this adapter does not map.
    pub fn parse(name: &str) -> Option<Component> {
        Some(match name {
            "sensor" => Component::Sensor,
            "binary_sensor" => Component::BinarySensor,
            "switch" => Component::Switch,
            "light" => Component::Light,
            "cover" => Component::Cover,
            "climate" => Component::Climate,
            "fan" => Component::Fan,
            "lock" => Component::Lock,
            "button" => Component::Button,
            "number" => Component::Number,
            "select" => Component::Select,
            "text" => Component::Text,
            "event" => Component::Event,
            "device_automation" | "device_trigger" => Component::DeviceTrigger,
            _ => return None,
        })
    }

    /// Its name in discovery topics.
    pub fn name(self) -> &'static str {
        match self {
            Component::Sensor => "sensor",
            Component::BinarySensor => "binary_sensor",
            Component::Switch => "switch",
            Component::Light => "light",
            Component::Cover => "cover",
            Component::Climate => "climate",
            Component::Fan => "fan",
            Component::Lock => "lock",
            Component::Button => "button",
            Component::Number => "number",
            Component::Select => "select",
            Component::Text => "text",
            Component::Event => "event",
            Component::DeviceTrigger => "device_automation",
        }
    }

    /// Whether the component gives several features named by part (`state`, `brightness` …).
    pub fn has_parts(self) -> bool {
        matches!(self, Component::Light | Component::Cover | Component::Climate | Component::Fan)
    }
}

/// Something of a config the adapter could not use.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unsupported {
    /// The option (`value_template`, `schema` …).
    pub option: String,
    /// The template's text, when it is a template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Why, and what happens instead.
    pub reason: String,
}

/// How a light's JSON payload part maps.
#[derive(Debug, Clone, PartialEq)]
pub enum LightPart {
    /// `state`: `ON`/`OFF`.
    State,
    /// `brightness`, 0 to the scale.
    Brightness(f64),
    /// `color_temp` in mired, or in kelvin when `color_temp_kelvin` is set.
    ColorTemp {
        /// Kelvin instead of mired.
        kelvin: bool,
    },
    /// `color`, sent as this format.
    Color(ColorWire),
    /// `effect`.
    Effect,
}

/// How a color travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorWire {
    /// `r,g,b` (`{"r", "g", "b"}` in JSON).
    Rgb,
    /// `h,s` (`{"h", "s"}`).
    Hs,
    /// `x,y` (`{"x", "y"}`).
    Xy,
}

/// How a message becomes a value.
#[derive(Debug, Clone, PartialEq)]
pub enum Decode {
    /// Text compared with the on and off payloads; `invert` for contacts (Home Assistant's on
    /// means open, the model's `true` means closed).
    Bool {
        /// The payload meaning on.
        on: String,
        /// The payload meaning off.
        off: String,
        /// Report the opposite.
        invert: bool,
    },
    /// A number, converted.
    Number(Conv),
    /// Text as it is.
    Text,
    /// Wire text to model text; other text passes through when `open`.
    Enum {
        /// Wire value, model value.
        table: Vec<(String, String)>,
        /// Pass other values through.
        open: bool,
    },
    /// A color as `r,g,b`, `h,s` or `x,y`.
    Color(ColorWire),
    /// A part of a JSON light's state.
    LightJson(LightPart),
    /// An event entity's `{"event_type": …}`.
    Event(Vec<String>),
    /// `json_attributes`: an object.
    Attributes,
}

/// Where a feature's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    /// The topic.
    pub topic: String,
    /// The template applied to the payload first.
    pub template: Option<Template>,
    /// How the (rendered) payload becomes a value.
    pub decode: Decode,
}

/// What a message gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A value of the feature.
    Value(Value),
    /// An event of the feature, with its data.
    Event(String, Option<Value>),
}

/// How a value becomes a payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Encode {
    /// `true`/`false` to the on/off payloads.
    Bool {
        /// The payload for `true`.
        on: String,
        /// The payload for `false`.
        off: String,
    },
    /// A number converted back; `integer` rounds it.
    Number {
        /// The conversion (from the model to the device).
        conv: Conv,
        /// Send whole numbers.
        integer: bool,
    },
    /// Text as it is.
    Text,
    /// Model text to wire text.
    Enum(Vec<(String, String)>),
    /// A button press: this payload.
    Press(String),
    /// A color.
    Color(ColorWire),
    /// A part of a JSON light command (merged with the other parts of the same command).
    LightJson(LightPart),
}

/// Where a feature's value goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// The topic.
    pub topic: String,
    /// The command template (`value` is what is sent).
    pub template: Option<Template>,
    /// How the value becomes the payload (or the template's `value`).
    pub encode: Encode,
    /// The QoS to publish with.
    pub qos: u8,
    /// Whether to publish retained.
    pub retain: bool,
}

/// One feature of an entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    /// The part of the entity (`state`, `brightness` …); empty for single-feature components.
    pub part: &'static str,
    /// The feature; its key is set by the registry from the entity's name and the part.
    pub feature: Feature,
    /// Where its value comes from.
    pub read: Option<Read>,
    /// Where its value goes.
    pub write: Option<Write>,
}

/// A device trigger: messages on a topic that fire an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    /// The feature the events belong to (`action`, `button_1`).
    pub feature: String,
    /// The event (`single`, `short_press`).
    pub event: String,
    /// The topic.
    pub topic: String,
    /// The payload that fires it; any payload when absent.
    pub payload: Option<String>,
    /// The template applied to the payload first.
    pub template: Option<Template>,
}

/// How a light orders its power and brightness commands (`on_command_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnCommand {
    /// `ON` first, then the rest.
    #[default]
    First,
    /// The rest, then `ON`.
    Last,
    /// Brightness alone turns it on: no `ON` with a brightness.
    Brightness,
}

/// An entity's config mapped onto the model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mapped {
    /// Its features.
    pub features: Vec<Mapping>,
    /// `json_attributes_topic`: the attributes, as one object feature.
    pub attributes: Option<Read>,
    /// Device triggers.
    pub triggers: Vec<Trigger>,
    /// What could not be used.
    pub unsupported: Vec<Unsupported>,
    /// A light's command order.
    pub on_command: OnCommand,
}

/// Variables every state template may read.
const STATE_VARS: &[&str] = &["value", "value_json"];
/// Variables every command template may read.
const COMMAND_VARS: &[&str] = &["value"];

struct Ctx<'a> {
    c: &'a EntityConfig,
    out: Mapped,
    category: Category,
    qos: u8,
    retain: bool,
}

impl<'a> Ctx<'a> {
    fn new(c: &'a EntityConfig) -> Ctx<'a> {
        let category = match c.str("entity_category") {
            Some("config") => Category::Config,
            Some("diagnostic") => Category::Diagnostic,
            _ => Category::Primary,
        };
        Ctx { c, out: Mapped::default(), category, qos: c.qos(), retain: c.retain() }
    }

    fn unsupported(&mut self, option: &str, template: Option<&str>, reason: String) {
        self.out.unsupported.push(Unsupported {
            option: option.to_owned(),
            template: template.map(str::to_owned),
            reason,
        });
    }

    /// A template option that can be used; records it as unsupported otherwise. `Err(())` means
    /// the option is there but unusable.
    fn template(&mut self, option: &str, allowed: &[&str], instead: &str) -> Result<Option<Template>, ()> {
        match self.c.template(option) {
            None => Ok(None),
            Some(Ok(t)) => match t.check_variables(allowed) {
                Ok(()) => Ok(Some(t)),
                Err(e) => {
                    self.unsupported(option, Some(t.source()), format!("{}; {instead}", e.what));
                    Err(())
                }
            },
            Some(Err(e)) => {
                let c = self.c;
                self.unsupported(option, c.str(option), format!("{}; {instead}", e.what));
                Err(())
            }
        }
    }

    /// A read on `topic_key` with its template; `None` when the topic is absent or the template
    /// unusable (then the value is left out).
    fn read(&mut self, topic_key: &str, template_key: &str, decode: Decode) -> Option<Read> {
        let topic = self.c.topic(topic_key)?;
        let template = self.template(template_key, STATE_VARS, "the value is left out").ok()?;
        Some(Read { topic, template, decode })
    }

    /// A write on `topic_key` with its template; `None` when the topic is absent or the template
    /// unusable (then the feature cannot be set).
    fn write(&mut self, topic_key: &str, template_key: &str, extra: &[&str], encode: Encode) -> Option<Write> {
        let topic = self.c.topic(topic_key)?;
        let mut allowed: Vec<&str> = COMMAND_VARS.to_vec();
        allowed.extend_from_slice(extra);
        let template = self.template(template_key, &allowed, "the feature cannot be set").ok()?;
        Some(Write { topic, template, encode, qos: self.qos, retain: self.retain })
    }

    fn push(
        &mut self,
        part: &'static str,
        capability: Capability,
        vt: ValueType,
        read: Option<Read>,
        write: Option<Write>,
    ) {
        self.push_feature(part, Feature::new("", capability, vt, Access::READ_ONLY), read, write);
    }

    fn push_feature(&mut self, part: &'static str, mut feature: Feature, read: Option<Read>, write: Option<Write>) {
        if read.is_none() && write.is_none() {
            return;
        }
        feature.access = Access { observe: read.is_some(), set: write.is_some(), get: false };
        feature.category = self.category;
        self.out.features.push(Mapping { part, feature, read, write });
    }
}

fn bool_decode(on: String, off: String) -> Decode {
    Decode::Bool { on, off, invert: false }
}

fn enum_table(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs.iter().map(|(model, wire)| (wire.clone(), (*model).to_owned())).collect()
}

/// Maps one entity's config.
pub fn map(component: Component, c: &EntityConfig) -> Mapped {
    let mut x = Ctx::new(c);
    match component {
        Component::Sensor => sensor(&mut x),
        Component::BinarySensor => binary_sensor(&mut x),
        Component::Switch => switch(&mut x),
        Component::Light => light(&mut x),
        Component::Cover => cover(&mut x),
        Component::Climate => climate(&mut x),
        Component::Fan => fan(&mut x),
        Component::Lock => lock(&mut x),
        Component::Button => button(&mut x),
        Component::Number => number(&mut x),
        Component::Select => select(&mut x),
        Component::Text => text(&mut x),
        Component::Event => event(&mut x),
        Component::DeviceTrigger => trigger(&mut x),
    }
    if component != Component::DeviceTrigger
        && let Some(topic) = c.topic("json_attributes_topic")
        && let Ok(template) = x.template("json_attributes_template", STATE_VARS, "the attributes are left out")
    {
        x.out.attributes = Some(Read { topic, template, decode: Decode::Attributes });
    }
    x.out
}

fn unit_feature(c: &EntityConfig, vt: ValueType) -> (Feature, Conv) {
    let unit = c.str("unit_of_measurement");
    match convert::measurement(c.str("device_class"), unit) {
        Some((cap, conv)) => {
            let mut f = Feature::new("", cap, vt, Access::READ_ONLY);
            if cap == Capability::LinkQuality {
                f.category = Category::Diagnostic;
            }
            (f, conv)
        }
        None => {
            let mut f = Feature::new("", Capability::Other, vt, Access::READ_ONLY);
            f.unit = unit.map(str::to_owned);
            (f, Conv::Same)
        }
    }
}

/// Device classes of sensors whose values are numbers even without a unit.
const NUMERIC_CLASSES: &[&str] = &[
    "aqi",
    "atmospheric_pressure",
    "battery",
    "carbon_dioxide",
    "carbon_monoxide",
    "current",
    "energy",
    "humidity",
    "illuminance",
    "moisture",
    "pm1",
    "pm10",
    "pm25",
    "power",
    "power_factor",
    "pressure",
    "signal_strength",
    "temperature",
    "voltage",
];

fn sensor(x: &mut Ctx<'_>) {
    let c = x.c;
    let class = c.str("device_class");
    if class == Some("enum")
        || (class.is_none() && !c.list("options").is_empty() && c.get("unit_of_measurement").is_none())
    {
        let options = c.list("options");
        let decode = Decode::Enum { table: Vec::new(), open: true };
        let read = x.read("state_topic", "value_template", decode);
        let vt =
            if options.is_empty() { ValueType::Text { max_length: None } } else { ValueType::enumeration(options) };
        x.push("", Capability::Other, vt, read, None);
        return;
    }
    let numeric = c.get("unit_of_measurement").is_some()
        || c.get("state_class").is_some()
        || class.is_some_and(|d| NUMERIC_CLASSES.contains(&d));
    if !numeric {
        let read = x.read("state_topic", "value_template", Decode::Text);
        x.push("", Capability::Other, ValueType::Text { max_length: None }, read, None);
        return;
    }
    let (feature, conv) = unit_feature(c, ValueType::number());
    let read = x.read("state_topic", "value_template", Decode::Number(conv));
    let category = if feature.category == Category::Diagnostic { Category::Diagnostic } else { x.category };
    let saved = x.category;
    x.category = category;
    x.push_feature("", feature, read, None);
    x.category = saved;
}

fn binary_sensor(x: &mut Ctx<'_>) {
    let c = x.c;
    let (capability, invert) = match c.str("device_class") {
        Some("door" | "window" | "garage_door" | "opening") => (Capability::Contact, true),
        Some("motion" | "occupancy" | "presence" | "moving") => (Capability::Occupancy, false),
        Some("moisture") => (Capability::WaterLeak, false),
        Some("smoke") => (Capability::Smoke, false),
        Some("gas") => (Capability::Gas, false),
        Some("carbon_monoxide") => (Capability::CarbonMonoxide, false),
        Some("tamper") => (Capability::Tamper, false),
        Some("vibration") => (Capability::Vibration, false),
        Some("battery") => (Capability::BatteryLow, false),
        _ => (Capability::Other, false),
    };
    let decode = Decode::Bool { on: c.payload("payload_on", "ON"), off: c.payload("payload_off", "OFF"), invert };
    let read = x.read("state_topic", "value_template", decode);
    x.push("", capability, ValueType::Bool, read, None);
}

fn switch(x: &mut Ctx<'_>) {
    let c = x.c;
    let (on, off) = (c.payload("payload_on", "ON"), c.payload("payload_off", "OFF"));
    let decode = bool_decode(c.payload("state_on", &on), c.payload("state_off", &off));
    let read = x.read("state_topic", "value_template", decode);
    let write = x.write("command_topic", "command_template", &[], Encode::Bool { on, off });
    x.push("", Capability::OnOff, ValueType::Bool, read, write);
}

fn color_modes(c: &EntityConfig) -> Vec<String> {
    c.list("supported_color_modes")
}

fn light(x: &mut Ctx<'_>) {
    let c = x.c;
    match c.str("schema").unwrap_or("default") {
        "default" | "basic" => light_default(x),
        "json" => light_json(x),
        other => {
            let reason =
                format!("the light schema `{other}` is not supported (only default and json); the light is left out");
            x.unsupported("schema", None, reason);
        }
    }
}

fn color_temp_range(c: &EntityConfig, kelvin: bool) -> ValueType {
    if kelvin {
        let lo = c.f64("min_kelvin").unwrap_or(2000.0);
        let hi = c.f64("max_kelvin").unwrap_or(6535.0);
        ValueType::range(lo.min(hi).round(), lo.max(hi).round(), 1.0)
    } else {
        match Conv::Mired.limits(Some(c.f64("min_mireds").unwrap_or(153.0)), Some(c.f64("max_mireds").unwrap_or(500.0)))
        {
            (Some(lo), Some(hi)) => ValueType::range(lo, hi, 1.0),
            _ => ValueType::number(),
        }
    }
}

fn effect_type(c: &EntityConfig) -> ValueType {
    let list = c.list("effect_list");
    if list.is_empty() { ValueType::Text { max_length: None } } else { ValueType::enumeration(list) }
}

fn light_default(x: &mut Ctx<'_>) {
    let c = x.c;
    x.out.on_command = match c.str("on_command_type") {
        Some("last") => OnCommand::Last,
        Some("brightness") => OnCommand::Brightness,
        _ => OnCommand::First,
    };
    let (on, off) = (c.payload("payload_on", "ON"), c.payload("payload_off", "OFF"));
    let read = x.read("state_topic", "state_value_template", bool_decode(on.clone(), off.clone()));
    let write = x.write("command_topic", "command_template", &[], Encode::Bool { on, off });
    x.push("state", Capability::OnOff, ValueType::Bool, read, write);

    let scale = c.f64("brightness_scale").filter(|s| *s > 0.0).unwrap_or(255.0);
    let conv = Conv::Range { lo: 0.0, hi: scale };
    let read = x.read("brightness_state_topic", "brightness_value_template", Decode::Number(conv));
    let write =
        x.write("brightness_command_topic", "brightness_command_template", &[], Encode::Number { conv, integer: true });
    x.push("brightness", Capability::Brightness, ValueType::range(0.0, 100.0, 1.0), read, write);

    let kelvin = c.bool("color_temp_kelvin").unwrap_or(false);
    let conv = if kelvin { Conv::Same } else { Conv::Mired };
    let read = x.read("color_temp_state_topic", "color_temp_value_template", Decode::Number(conv));
    let write =
        x.write("color_temp_command_topic", "color_temp_command_template", &[], Encode::Number { conv, integer: true });
    x.push("color_temp", Capability::ColorTemperature, color_temp_range(c, kelvin), read, write);

    // One color feature, from the first color topic pair the light has.
    for (wire, state, tpl, cmd, cmd_tpl, vars) in [
        (
            ColorWire::Hs,
            "hs_state_topic",
            "hs_value_template",
            "hs_command_topic",
            "hs_command_template",
            &["hue", "sat"][..],
        ),
        (
            ColorWire::Rgb,
            "rgb_state_topic",
            "rgb_value_template",
            "rgb_command_topic",
            "rgb_command_template",
            &["red", "green", "blue"][..],
        ),
        (
            ColorWire::Xy,
            "xy_state_topic",
            "xy_value_template",
            "xy_command_topic",
            "xy_command_template",
            &["x", "y"][..],
        ),
    ] {
        if c.get(state).is_none() && c.get(cmd).is_none() {
            continue;
        }
        let read = x.read(state, tpl, Decode::Color(wire));
        let write = x.write(cmd, cmd_tpl, vars, Encode::Color(wire));
        x.push("color", Capability::Color, ValueType::Color, read, write);
        break;
    }

    let open = Decode::Enum { table: Vec::new(), open: true };
    let read = x.read("effect_state_topic", "effect_value_template", open);
    let write = x.write("effect_command_topic", "effect_command_template", &[], Encode::Text);
    x.push("effect", Capability::Effect, effect_type(c), read, write);
}

fn light_json(x: &mut Ctx<'_>) {
    let c = x.c;
    let modes = color_modes(c);
    let has = |m: &str| modes.iter().any(|x| x == m);
    let legacy = |k: &str| c.bool(k).unwrap_or(false);
    let (qos, retain) = (x.qos, x.retain);
    let read = |part: LightPart| {
        c.topic("state_topic").map(|t| Read { topic: t, template: None, decode: Decode::LightJson(part) })
    };
    let write = |part: LightPart| {
        c.topic("command_topic").map(|t| Write {
            topic: t,
            template: None,
            encode: Encode::LightJson(part),
            qos,
            retain,
        })
    };
    let add = |x: &mut Ctx<'_>, part: &'static str, cap: Capability, vt: ValueType, lp: LightPart| {
        let (r, w) = (read(lp.clone()), write(lp));
        x.push(part, cap, vt, r, w);
    };
    add(x, "state", Capability::OnOff, ValueType::Bool, LightPart::State);
    let brightness = legacy("brightness") || modes.iter().any(|m| m != "onoff");
    if brightness {
        let scale = c.f64("brightness_scale").filter(|s| *s > 0.0).unwrap_or(255.0);
        add(x, "brightness", Capability::Brightness, ValueType::range(0.0, 100.0, 1.0), LightPart::Brightness(scale));
    }
    if has("color_temp") || legacy("color_temp") {
        let kelvin = c.bool("color_temp_kelvin").unwrap_or(false);
        add(
            x,
            "color_temp",
            Capability::ColorTemperature,
            color_temp_range(c, kelvin),
            LightPart::ColorTemp { kelvin },
        );
    }
    let wire = if has("hs") || legacy("hs") {
        Some(ColorWire::Hs)
    } else if has("rgb") || has("rgbw") || has("rgbww") || legacy("rgb") {
        Some(ColorWire::Rgb)
    } else if has("xy") || legacy("xy") {
        Some(ColorWire::Xy)
    } else {
        None
    };
    if let Some(w) = wire {
        add(x, "color", Capability::Color, ValueType::Color, LightPart::Color(w));
    }
    if legacy("effect") {
        add(x, "effect", Capability::Effect, effect_type(c), LightPart::Effect);
    }
}

fn cover(x: &mut Ctx<'_>) {
    let c = x.c;
    let mut commands: Vec<(&str, String)> = Vec::new();
    for (model, key, default) in
        [("open", "payload_open", "OPEN"), ("close", "payload_close", "CLOSE"), ("stop", "payload_stop", "STOP")]
    {
        // An option set to null disables that command.
        if c.0.get(key).is_some_and(Json::is_null) {
            continue;
        }
        commands.push((model, c.payload(key, default)));
    }
    let states = [
        ("open", c.payload("state_open", "open")),
        ("open", c.payload("state_opening", "opening")),
        ("close", c.payload("state_closed", "closed")),
        ("close", c.payload("state_closing", "closing")),
        ("stop", c.payload("state_stopped", "stopped")),
    ];
    let read = x.read("state_topic", "value_template", Decode::Enum { table: enum_table(&states), open: false });
    let write = x.write(
        "command_topic",
        "command_template",
        &[],
        Encode::Enum(commands.iter().map(|(m, w)| ((*m).to_owned(), w.clone())).collect()),
    );
    let values: Vec<&str> =
        if write.is_some() { commands.iter().map(|(m, _)| *m).collect() } else { vec!["open", "close", "stop"] };
    x.push("state", Capability::CoverState, ValueType::enumeration(values), read, write);

    let closed = c.f64("position_closed").unwrap_or(0.0);
    let open = c.f64("position_open").unwrap_or(100.0);
    let conv = Conv::Range { lo: closed, hi: open };
    let read = x.read("position_topic", "position_template", Decode::Number(conv));
    let write = x.write(
        "set_position_topic",
        "set_position_template",
        &["position", "position_open", "position_closed"],
        Encode::Number { conv, integer: true },
    );
    x.push("position", Capability::CoverPosition, ValueType::range(0.0, 100.0, 1.0), read, write);

    let conv = Conv::Range { lo: c.f64("tilt_min").unwrap_or(0.0), hi: c.f64("tilt_max").unwrap_or(100.0) };
    let read = x.read("tilt_status_topic", "tilt_status_template", Decode::Number(conv));
    let write = x.write(
        "tilt_command_topic",
        "tilt_command_template",
        &["tilt_position"],
        Encode::Number { conv, integer: true },
    );
    x.push("tilt", Capability::Tilt, ValueType::range(0.0, 100.0, 1.0), read, write);
}

const HVAC_ACTIONS: [(&str, &str); 8] = [
    ("off", "off"),
    ("preheat", "preheating"),
    ("heat", "heating"),
    ("cool", "cooling"),
    ("dry", "drying"),
    ("idle", "idle"),
    ("fan", "fan"),
    ("defrost", "defrosting"),
];

fn climate(x: &mut Ctx<'_>) {
    let c = x.c;
    let modes = match c.get("modes") {
        Some(_) => c.list("modes"),
        None => ["auto", "off", "cool", "heat", "dry", "fan_only"].map(str::to_owned).to_vec(),
    };
    let open = || Decode::Enum { table: Vec::new(), open: true };
    if !modes.is_empty() {
        let read = x.read("mode_state_topic", "mode_state_template", open());
        let write = x.write("mode_command_topic", "mode_command_template", &[], Encode::Text);
        x.push("mode", Capability::HvacMode, ValueType::enumeration(modes), read, write);
    }

    let fahrenheit = matches!(c.str("temperature_unit"), Some("F" | "°F"));
    let conv = if fahrenheit { Conv::Fahrenheit } else { Conv::Same };
    let (lo, hi) = if fahrenheit { (45.0, 95.0) } else { (7.0, 35.0) };
    let (min, max) = conv.limits(Some(c.f64("min_temp").unwrap_or(lo)), Some(c.f64("max_temp").unwrap_or(hi)));
    let step = c.f64("temp_step").or_else(|| c.f64("precision")).filter(|s| *s > 0.0);
    let step = step.map(|s| if fahrenheit { (s * 5.0 / 9.0 * 100.0).round() / 100.0 } else { s });
    let vt = ValueType::Number { min, max, step };
    for (part, state, tpl, cmd, cmd_tpl) in [
        (
            "setpoint",
            "temperature_state_topic",
            "temperature_state_template",
            "temperature_command_topic",
            "temperature_command_template",
        ),
        (
            "setpoint_low",
            "temperature_low_state_topic",
            "temperature_low_state_template",
            "temperature_low_command_topic",
            "temperature_low_command_template",
        ),
        (
            "setpoint_high",
            "temperature_high_state_topic",
            "temperature_high_state_template",
            "temperature_high_command_topic",
            "temperature_high_command_template",
        ),
    ] {
        let read = x.read(state, tpl, Decode::Number(conv));
        let write = x.write(cmd, cmd_tpl, &[], Encode::Number { conv, integer: false });
        x.push(part, Capability::Setpoint, vt.clone(), read, write);
    }
    let read = x.read("current_temperature_topic", "current_temperature_template", Decode::Number(conv));
    x.push("temperature", Capability::Temperature, ValueType::number(), read, None);

    let read = x.read("current_humidity_topic", "current_humidity_template", Decode::Number(Conv::Same));
    x.push("humidity", Capability::Humidity, ValueType::number(), read, None);
    let read = x.read("target_humidity_state_topic", "target_humidity_state_template", Decode::Number(Conv::Same));
    let write = x.write(
        "target_humidity_command_topic",
        "target_humidity_command_template",
        &[],
        Encode::Number { conv: Conv::Same, integer: false },
    );
    let vt = ValueType::Number {
        min: Some(c.f64("min_humidity").unwrap_or(30.0)),
        max: Some(c.f64("max_humidity").unwrap_or(99.0)),
        step: Some(1.0),
    };
    x.push("target_humidity", Capability::Humidity, vt, read, write);

    let actions = HVAC_ACTIONS.map(|(m, w)| (m, w.to_owned()));
    let read = x.read("action_topic", "action_template", Decode::Enum { table: enum_table(&actions), open: true });
    x.push("action", Capability::HvacAction, ValueType::enumeration(HVAC_ACTIONS.map(|(m, _)| m)), read, None);

    for (part, cap, list_key, default, state, tpl, cmd, cmd_tpl) in [
        (
            "fan_mode",
            Capability::FanMode,
            "fan_modes",
            &["auto", "low", "medium", "high"][..],
            "fan_mode_state_topic",
            "fan_mode_state_template",
            "fan_mode_command_topic",
            "fan_mode_command_template",
        ),
        (
            "swing_mode",
            Capability::Other,
            "swing_modes",
            &["on", "off"][..],
            "swing_mode_state_topic",
            "swing_mode_state_template",
            "swing_mode_command_topic",
            "swing_mode_command_template",
        ),
        (
            "preset",
            Capability::Other,
            "preset_modes",
            &[][..],
            "preset_mode_state_topic",
            "preset_mode_value_template",
            "preset_mode_command_topic",
            "preset_mode_command_template",
        ),
    ] {
        let list = match c.get(list_key) {
            Some(_) => c.list(list_key),
            None => default.iter().map(|s| (*s).to_owned()).collect(),
        };
        if list.is_empty() {
            continue;
        }
        let read = x.read(state, tpl, open());
        let write = x.write(cmd, cmd_tpl, &[], Encode::Text);
        x.push(part, cap, ValueType::enumeration(list), read, write);
    }

    let (on, off) = (c.payload("payload_on", "ON"), c.payload("payload_off", "OFF"));
    let write = x.write("power_command_topic", "power_command_template", &[], Encode::Bool { on, off });
    x.push("power", Capability::OnOff, ValueType::Bool, None, write);
}

fn fan(x: &mut Ctx<'_>) {
    let c = x.c;
    let (on, off) = (c.payload("payload_on", "ON"), c.payload("payload_off", "OFF"));
    let read = x.read("state_topic", "state_value_template", bool_decode(on.clone(), off.clone()));
    let write = x.write("command_topic", "command_template", &[], Encode::Bool { on, off });
    x.push("state", Capability::OnOff, ValueType::Bool, read, write);

    let lo = c.f64("speed_range_min").unwrap_or(1.0);
    let hi = c.f64("speed_range_max").unwrap_or(100.0).max(lo);
    // Home Assistant's ranged percentage: `min - 1` is 0 %.
    let conv = Conv::Range { lo: lo - 1.0, hi };
    let step = ((100.0 / (hi - lo + 1.0)) * 100.0).round() / 100.0;
    let read = x.read("percentage_state_topic", "percentage_value_template", Decode::Number(conv));
    let write =
        x.write("percentage_command_topic", "percentage_command_template", &[], Encode::Number { conv, integer: true });
    x.push("speed", Capability::FanSpeed, ValueType::range(0.0, 100.0, step.max(1.0)), read, write);

    let presets = c.list("preset_modes");
    if !presets.is_empty() {
        let read = x.read(
            "preset_mode_state_topic",
            "preset_mode_value_template",
            Decode::Enum { table: Vec::new(), open: true },
        );
        let write = x.write("preset_mode_command_topic", "preset_mode_command_template", &[], Encode::Text);
        x.push("preset", Capability::FanMode, ValueType::enumeration(presets), read, write);
    }

    let (on, off) =
        (c.payload("payload_oscillation_on", "oscillate_on"), c.payload("payload_oscillation_off", "oscillate_off"));
    let read = x.read("oscillation_state_topic", "oscillation_value_template", bool_decode(on.clone(), off.clone()));
    let write = x.write("oscillation_command_topic", "oscillation_command_template", &[], Encode::Bool { on, off });
    x.push("oscillating", Capability::Other, ValueType::Bool, read, write);

    let directions = [
        ("forward", c.payload("payload_direction_forward", "forward")),
        ("reverse", c.payload("payload_direction_reverse", "reverse")),
    ];
    let read = x.read(
        "direction_state_topic",
        "direction_value_template",
        Decode::Enum { table: enum_table(&directions), open: false },
    );
    let write = x.write(
        "direction_command_topic",
        "direction_command_template",
        &[],
        Encode::Enum(directions.iter().map(|(m, w)| ((*m).to_owned(), w.clone())).collect()),
    );
    x.push("direction", Capability::Other, ValueType::enumeration(["forward", "reverse"]), read, write);
}

fn lock(x: &mut Ctx<'_>) {
    let c = x.c;
    let can_open = c.get("payload_open").is_some();
    let mut states = vec![
        ("locked", c.payload("state_locked", "LOCKED")),
        ("unlocked", c.payload("state_unlocked", "UNLOCKED")),
        ("locking", c.payload("state_locking", "LOCKING")),
        ("unlocking", c.payload("state_unlocking", "UNLOCKING")),
        ("jammed", c.payload("state_jammed", "JAMMED")),
    ];
    let mut commands = vec![
        ("locked".to_owned(), c.payload("payload_lock", "LOCK")),
        ("unlocked".to_owned(), c.payload("payload_unlock", "UNLOCK")),
    ];
    if can_open {
        states.push(("open", c.payload("state_open", "OPEN")));
        states.push(("opening", c.payload("state_opening", "OPENING")));
        commands.push(("open".to_owned(), c.payload("payload_open", "OPEN")));
    }
    let values: Vec<&str> = states.iter().map(|(m, _)| *m).collect();
    let read = x.read("state_topic", "value_template", Decode::Enum { table: enum_table(&states), open: false });
    let write = x.write("command_topic", "command_template", &[], Encode::Enum(commands));
    x.push("", Capability::Lock, ValueType::enumeration(values), read, write);
}

fn button(x: &mut Ctx<'_>) {
    let payload = x.c.payload("payload_press", "PRESS");
    let write = x.write("command_topic", "command_template", &[], Encode::Press(payload));
    x.push("", Capability::Other, ValueType::enumeration(["press"]), None, write);
}

fn number(x: &mut Ctx<'_>) {
    let c = x.c;
    let (mut feature, conv) = unit_feature(c, ValueType::number());
    let (min, max) = conv.limits(Some(c.f64("min").unwrap_or(1.0)), Some(c.f64("max").unwrap_or(100.0)));
    let step = c.f64("step").filter(|s| *s > 0.0).unwrap_or(1.0);
    let step = match conv {
        Conv::Scale(f) => step * f.abs(),
        Conv::Fahrenheit => (step * 5.0 / 9.0 * 100.0).round() / 100.0,
        _ => step,
    };
    feature.value_type = ValueType::Number { min, max, step: Some(step) };
    let integer = step.fract() == 0.0 && matches!(conv, Conv::Same);
    let read = x.read("state_topic", "value_template", Decode::Number(conv));
    let write = x.write("command_topic", "command_template", &[], Encode::Number { conv, integer });
    x.push_feature("", feature, read, write);
}

fn select(x: &mut Ctx<'_>) {
    let options = x.c.list("options");
    if options.is_empty() {
        x.unsupported("options", None, "a select needs `options`; it is left out".into());
        return;
    }
    let read = x.read("state_topic", "value_template", Decode::Enum { table: Vec::new(), open: true });
    let write = x.write("command_topic", "command_template", &[], Encode::Text);
    x.push("", Capability::Other, ValueType::enumeration(options), read, write);
}

fn text(x: &mut Ctx<'_>) {
    let max = x.c.f64("max").filter(|m| *m >= 0.0).unwrap_or(255.0) as usize;
    let read = x.read("state_topic", "value_template", Decode::Text);
    let write = x.write("command_topic", "command_template", &[], Encode::Text);
    x.push("", Capability::Other, ValueType::Text { max_length: Some(max) }, read, write);
}

fn event(x: &mut Ctx<'_>) {
    let types = x.c.list("event_types");
    if types.is_empty() {
        x.unsupported("event_types", None, "an event needs `event_types`; it is left out".into());
        return;
    }
    let read = x.read("state_topic", "value_template", Decode::Event(types.clone()));
    let mut f = Feature::new("", Capability::Action, ValueType::enumeration(types), Access::EVENT);
    f.category = x.category;
    if read.is_some() {
        x.out.features.push(Mapping { part: "", feature: f, read, write: None });
    }
}

/// Home Assistant's standard trigger types (`button_short_press` …) name the event by the type
/// and the feature by the subtype (`button_1`); others (zigbee2mqtt's `action`) name the feature
/// by the type and the event by the subtype.
pub fn trigger_names(kind: &str, subtype: &str) -> (String, String) {
    if let Some(event) = kind.strip_prefix("button_") {
        (subtype.to_owned(), event.to_owned())
    } else {
        (kind.to_owned(), subtype.to_owned())
    }
}

fn trigger(x: &mut Ctx<'_>) {
    let c = x.c;
    let Some(topic) = c.topic("topic") else {
        x.unsupported("topic", None, "a device trigger needs a `topic`; it is left out".into());
        return;
    };
    let kind = c.payload("type", "trigger");
    let subtype = c.payload("subtype", "");
    let (feature, event) = trigger_names(&kind, &subtype);
    let event = if event.is_empty() { kind.clone() } else { event };
    let Ok(template) = x.template("value_template", STATE_VARS, "the trigger is left out") else { return };
    x.out.triggers.push(Trigger { feature, event, topic, payload: c.payload_opt("payload"), template });
}

// ------------------------------------------------------------------------------------------------
// Decoding
// ------------------------------------------------------------------------------------------------

/// A message as the reads see it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The payload as text.
    pub text: &'a str,
    /// The payload as JSON, when it is JSON.
    pub json: Option<&'a Json>,
}

/// Payloads meaning "no value" (Home Assistant's `None` resets to unknown).
fn no_value(s: &str) -> bool {
    matches!(s.trim(), "" | "None" | "none" | "null" | "unknown" | "unavailable")
}

/// The payload after the template: its value (or the payload's text).
pub fn render(template: Option<&Template>, msg: Message<'_>) -> Result<Option<Val>, String> {
    match template {
        None => Ok(Some(Val::Str(msg.text.to_owned()))),
        Some(t) => match t.eval(&Vars::payload(msg.text, msg.json)) {
            Ok(v) => Ok(Some(v)),
            Err(EvalError::Undefined(what)) if msg.json.is_none() && what.starts_with("value_json") => {
                Err(format!("the payload `{}` is not JSON, which `{}` needs", shorten(msg.text), shorten(t.source())))
            }
            Err(EvalError::Undefined(_)) => Ok(None),
            Err(EvalError::Invalid(e)) => Err(format!("the template `{}` failed: {e}", t.source())),
        },
    }
}

fn number_of(v: &Val) -> Result<Option<f64>, String> {
    match v {
        Val::Int(i) => Ok(Some(*i as f64)),
        Val::Float(f) if f.is_finite() => Ok(Some(*f)),
        Val::Float(_) | Val::None | Val::Undefined(_) => Ok(None),
        Val::Bool(b) => Ok(Some(if *b { 1.0 } else { 0.0 })),
        Val::Str(s) if no_value(s) => Ok(None),
        Val::Str(s) => match s.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Some(n)),
            _ => Err(format!("`{}` is not a number", shorten(s))),
        },
        Val::Json(j) => Err(format!("{} is not a number", shorten(&j.to_string()))),
    }
}

fn shorten(s: &str) -> String {
    if s.len() <= 80 {
        return s.to_owned();
    }
    let mut end = 80;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn parse_color(wire: ColorWire, text: &str) -> Result<Option<Color>, String> {
    if no_value(text) {
        return Ok(None);
    }
    let nums: Vec<f64> = text
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("`{}` is not a color as {}", shorten(text), wire_name(wire)))?;
    let bad = || format!("`{}` is not a color as {}", shorten(text), wire_name(wire));
    match (wire, nums.as_slice()) {
        (ColorWire::Rgb, [r, g, b, ..]) => {
            let c = |v: f64| v.round().clamp(0.0, 255.0) as u8;
            Ok(Some(Color::from_rgb(c(*r), c(*g), c(*b))))
        }
        (ColorWire::Hs, [h, s]) => Ok(Some(Color { hue: h.rem_euclid(360.0), saturation: s.clamp(0.0, 100.0) })),
        (ColorWire::Xy, [x, y]) => Ok(convert::xy_to_color(*x, *y)),
        _ => Err(bad()),
    }
}

fn wire_name(w: ColorWire) -> &'static str {
    match w {
        ColorWire::Rgb => "r,g,b",
        ColorWire::Hs => "h,s",
        ColorWire::Xy => "x,y",
    }
}

fn color_of_json(o: &Map<String, Json>) -> Option<Color> {
    let n = |k: &str| o.get(k).and_then(Json::as_f64);
    if let (Some(h), Some(s)) = (n("h").or_else(|| n("hue")), n("s").or_else(|| n("saturation"))) {
        return Some(Color { hue: h.rem_euclid(360.0), saturation: s.clamp(0.0, 100.0) });
    }
    if let (Some(r), Some(g), Some(b)) = (n("r"), n("g"), n("b")) {
        let c = |v: f64| v.round().clamp(0.0, 255.0) as u8;
        return Some(Color::from_rgb(c(r), c(g), c(b)));
    }
    if let (Some(x), Some(y)) = (n("x"), n("y")) {
        return convert::xy_to_color(x, y);
    }
    None
}

impl Read {
    /// What a message on this read's topic gives: a value, an event, nothing (the message does not
    /// carry it), or why the payload was not usable.
    pub fn decode(&self, msg: Message<'_>) -> Result<Option<Decoded>, String> {
        if let Decode::LightJson(part) = &self.decode {
            let Some(Json::Object(o)) = msg.json else {
                return Err("a JSON light's state is not a JSON object".into());
            };
            return Ok(light_json_value(part, o).map(Decoded::Value));
        }
        let Some(v) = render(self.template.as_ref(), msg)? else { return Ok(None) };
        let value = match &self.decode {
            Decode::Bool { on, off, invert } => {
                let text = v.to_string();
                if &text == on {
                    Value::Bool(!invert)
                } else if &text == off {
                    Value::Bool(*invert)
                } else if no_value(&text) {
                    return Ok(None);
                } else {
                    return Err(format!("`{}` is neither `{on}` nor `{off}`", shorten(&text)));
                }
            }
            Decode::Number(conv) => match number_of(&v)? {
                Some(n) => match conv.to_model(n) {
                    Some(m) => Value::Number(m),
                    None => return Ok(None),
                },
                None => return Ok(None),
            },
            Decode::Text => match v {
                // Home Assistant's `None` means "no value".
                Val::None | Val::Undefined(_) => return Ok(None),
                Val::Str(s) if s == "None" => return Ok(None),
                other => Value::Text(other.to_string()),
            },
            Decode::Enum { table, open } => {
                let text = v.to_string();
                match table.iter().find(|(wire, _)| *wire == text) {
                    Some((_, model)) => Value::Text(model.clone()),
                    None if no_value(&text) => return Ok(None),
                    None if *open => Value::Text(text),
                    None => {
                        let known: Vec<&str> = table.iter().map(|(w, _)| w.as_str()).collect();
                        return Err(format!("`{}` is none of {}", shorten(&text), known.join(", ")));
                    }
                }
            }
            Decode::Color(wire) => match parse_color(*wire, &v.to_string())? {
                Some(c) => Value::Color(c),
                None => return Ok(None),
            },
            Decode::Event(types) => {
                let obj = json_object(&v, msg, self.template.is_some())?;
                let Some(kind) = obj.get("event_type").and_then(Json::as_str) else {
                    return Err("an event payload needs `event_type`".into());
                };
                if !types.iter().any(|t| t == kind) {
                    return Err(format!("the event `{kind}` is not one of {}", types.join(", ")));
                }
                let mut data = obj.clone();
                data.remove("event_type");
                let kind = kind.to_owned();
                let data = if data.is_empty() { None } else { serde_json::from_value(Json::Object(data)).ok() };
                return Ok(Some(Decoded::Event(kind, data)));
            }
            Decode::Attributes => {
                let obj = json_object(&v, msg, self.template.is_some())?;
                match serde_json::from_value::<Value>(Json::Object(obj)) {
                    Ok(v) => v,
                    Err(e) => return Err(format!("the attributes are not usable: {e}")),
                }
            }
            Decode::LightJson(_) => return Ok(None),
        };
        Ok(Some(Decoded::Value(value)))
    }
}

/// The JSON object a payload (or its rendered template) is.
fn json_object(v: &Val, msg: Message<'_>, templated: bool) -> Result<Map<String, Json>, String> {
    let j: Json = match v {
        Val::Json(j) => j.clone(),
        Val::Str(s) if templated => {
            serde_json::from_str(s).map_err(|_| format!("`{}` is not a JSON object", shorten(s)))?
        }
        _ => match msg.json {
            Some(j) => j.clone(),
            None => return Err(format!("`{}` is not a JSON object", shorten(msg.text))),
        },
    };
    match j {
        Json::Object(o) => Ok(o),
        other => Err(format!("{} is not a JSON object", shorten(&other.to_string()))),
    }
}

fn light_json_value(part: &LightPart, o: &Map<String, Json>) -> Option<Value> {
    let mode = o.get("color_mode").and_then(Json::as_str);
    match part {
        LightPart::State => match o.get("state")?.as_str()? {
            "ON" => Some(Value::Bool(true)),
            "OFF" => Some(Value::Bool(false)),
            _ => None,
        },
        LightPart::Brightness(scale) => {
            Conv::Range { lo: 0.0, hi: *scale }.to_model(o.get("brightness")?.as_f64()?).map(Value::Number)
        }
        LightPart::ColorTemp { kelvin } => {
            if mode.is_some_and(|m| m != "color_temp") {
                return None;
            }
            let v = o.get("color_temp")?.as_f64()?;
            let conv = if *kelvin { Conv::Same } else { Conv::Mired };
            conv.to_model(v).map(Value::Number)
        }
        LightPart::Color(_) => {
            if mode.is_some_and(|m| matches!(m, "color_temp" | "brightness" | "onoff" | "white")) {
                return None;
            }
            color_of_json(o.get("color")?.as_object()?).map(Value::Color)
        }
        LightPart::Effect => o.get("effect")?.as_str().map(|s| Value::Text(s.to_owned())),
    }
}

// ------------------------------------------------------------------------------------------------
// Encoding
// ------------------------------------------------------------------------------------------------

/// The number as a payload: whole numbers without a fraction.
pub fn number_text(n: f64) -> String {
    Val::number(n).to_string()
}

/// A command's `value` and the template's other variables.
type CommandValue = (Val, Vec<(&'static str, Val)>);

impl Write {
    /// The value for the template's `value` (and its other variables) and the default payload.
    fn value_of(&self, v: &Value) -> Result<CommandValue, String> {
        let wrong = |what: &str| format!("takes {what}, not {v}");
        Ok(match (&self.encode, v) {
            (Encode::Bool { on, off }, Value::Bool(b)) => (Val::Str(if *b { on.clone() } else { off.clone() }), vec![]),
            (Encode::Bool { .. }, _) => return Err(wrong("true or false")),
            (Encode::Number { conv, integer }, Value::Number(n)) => {
                let d = conv.to_device(*n);
                let d = if *integer { d.round() } else { d };
                let mut extra = vec![("position", Val::number(*n)), ("tilt_position", Val::number(*n))];
                if let Conv::Range { lo, hi } = conv {
                    // What a cover's templates may name (Home Assistant passes them too).
                    extra.extend([
                        ("position_open", Val::number(*hi)),
                        ("position_closed", Val::number(*lo)),
                        ("tilt_max", Val::number(*hi)),
                        ("tilt_min", Val::number(*lo)),
                    ]);
                }
                (Val::number(d), extra)
            }
            (Encode::Number { .. }, _) => return Err(wrong("a number")),
            (Encode::Text, Value::Text(s)) => (Val::Str(s.clone()), vec![]),
            (Encode::Text, _) => return Err(wrong("text")),
            (Encode::Enum(table), Value::Text(s)) => match table.iter().find(|(m, _)| m == s) {
                Some((_, wire)) => (Val::Str(wire.clone()), vec![]),
                None => {
                    let ok: Vec<&str> = table.iter().map(|(m, _)| m.as_str()).collect();
                    return Err(format!("cannot be set to `{s}`; it takes {}", ok.join(", ")));
                }
            },
            (Encode::Enum(_), _) => return Err(wrong("text")),
            (Encode::Press(payload), _) => (Val::Str(payload.clone()), vec![]),
            (Encode::Color(wire), Value::Color(c)) => {
                let (r, g, b) = c.to_rgb();
                match wire {
                    ColorWire::Rgb => (
                        Val::Str(format!("{r},{g},{b}")),
                        vec![("red", Val::Int(r.into())), ("green", Val::Int(g.into())), ("blue", Val::Int(b.into()))],
                    ),
                    ColorWire::Hs => (
                        Val::Str(format!("{},{}", number_text(c.hue), number_text(c.saturation))),
                        vec![("hue", Val::number(c.hue)), ("sat", Val::number(c.saturation))],
                    ),
                    ColorWire::Xy => {
                        let (x, y) = convert::color_to_xy(*c);
                        (Val::Str(format!("{x},{y}")), vec![("x", Val::Float(x)), ("y", Val::Float(y))])
                    }
                }
            }
            (Encode::Color(_), _) => return Err(wrong("a color")),
            (Encode::LightJson(_), _) => return Err("a JSON light part is sent with the light's other parts".into()),
        })
    }

    /// The payload that sets `v`.
    pub fn payload(&self, v: &Value) -> Result<String, String> {
        let (value, extra) = self.value_of(v)?;
        match &self.template {
            None => Ok(value.to_string()),
            Some(t) => {
                let mut vars = Vars::command(value);
                for (k, x) in extra {
                    vars = vars.with(k, x);
                }
                t.render(&vars).map_err(|e| format!("the command template `{}` failed: {e}", t.source()))
            }
        }
    }
}

/// One JSON light command from the parts it sets (`transition` in seconds when asked).
pub fn light_json_command(parts: &[(&LightPart, &Value)], transition: Option<f64>) -> Result<Json, String> {
    let mut o = Map::new();
    for (part, v) in parts {
        match (part, v) {
            (LightPart::State, Value::Bool(b)) => {
                o.insert("state".into(), json!(if *b { "ON" } else { "OFF" }));
            }
            (LightPart::Brightness(scale), Value::Number(n)) => {
                let d = Conv::Range { lo: 0.0, hi: *scale }.to_device(*n);
                o.insert("brightness".into(), json!(d as i64));
            }
            (LightPart::ColorTemp { kelvin }, Value::Number(n)) => {
                let d = if *kelvin { n.round() } else { Conv::Mired.to_device(*n) };
                o.insert("color_temp".into(), json!(d as i64));
            }
            (LightPart::Color(wire), Value::Color(c)) => {
                let color = match wire {
                    ColorWire::Hs => json!({"h": c.hue, "s": c.saturation}),
                    ColorWire::Rgb => {
                        let (r, g, b) = c.to_rgb();
                        json!({"r": r, "g": g, "b": b})
                    }
                    ColorWire::Xy => {
                        let (x, y) = convert::color_to_xy(*c);
                        json!({"x": x, "y": y})
                    }
                };
                o.insert("color".into(), color);
            }
            (LightPart::Effect, Value::Text(s)) => {
                o.insert("effect".into(), json!(s));
            }
            (part, v) => return Err(format!("the light part {part:?} does not take {v}")),
        }
    }
    if !o.contains_key("state") {
        o.insert("state".into(), json!("ON"));
    }
    if let Some(t) = transition {
        o.insert("transition".into(), json!(t));
    }
    Ok(Json::Object(o))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::normalize;
    use std::collections::BTreeMap;

    fn cfg(v: Json) -> EntityConfig {
        normalize(v.as_object().cloned().unwrap_or_default())
    }

    fn msg<'a>(text: &'a str, json: Option<&'a Json>) -> Message<'a> {
        Message { text, json }
    }

    fn decode(r: &Read, text: &str) -> Result<Option<Decoded>, String> {
        let j: Option<Json> = serde_json::from_str(text).ok();
        r.decode(msg(text, j.as_ref()))
    }

    #[test]
    fn a_sensor_takes_its_capability_and_converts_to_the_canonical_unit() {
        let m = map(
            Component::Sensor,
            &cfg(
                json!({"stat_t": "s", "dev_cla": "temperature", "unit_of_meas": "°F", "val_tpl": "{{ value_json.t }}"}),
            ),
        );
        let f = &m.features[0];
        assert_eq!(f.feature.capability, Capability::Temperature);
        assert_eq!(f.feature.unit.as_deref(), Some("°C"));
        assert_eq!(f.feature.access, Access::READ_ONLY);
        let r = f.read.as_ref().unwrap();
        assert_eq!(decode(r, r#"{"t": 212}"#), Ok(Some(Decoded::Value(Value::Number(100.0)))));
        assert_eq!(decode(r, r#"{"x": 1}"#), Ok(None));
        assert!(decode(r, r#"{"t": "warm"}"#).is_err());
        // Energy in Wh, a text sensor, an enum sensor, a unit no capability fits.
        let m = map(Component::Sensor, &cfg(json!({"stat_t": "s", "dev_cla": "energy", "unit_of_meas": "Wh"})));
        assert_eq!(m.features[0].feature.capability, Capability::Energy);
        assert_eq!(decode(m.features[0].read.as_ref().unwrap(), "1500"), Ok(Some(Decoded::Value(Value::Number(1.5)))));
        let m = map(Component::Sensor, &cfg(json!({"stat_t": "s"})));
        assert_eq!(m.features[0].feature.value_type, ValueType::Text { max_length: None });
        assert_eq!(
            decode(m.features[0].read.as_ref().unwrap(), "hello"),
            Ok(Some(Decoded::Value(Value::Text("hello".into()))))
        );
        let m = map(Component::Sensor, &cfg(json!({"stat_t": "s", "dev_cla": "enum", "options": ["a", "b"]})));
        assert_eq!(m.features[0].feature.value_type, ValueType::enumeration(["a", "b"]));
        let m =
            map(Component::Sensor, &cfg(json!({"stat_t": "s", "unit_of_meas": "L/min", "stat_cla": "measurement"})));
        assert_eq!(m.features[0].feature.capability, Capability::Other);
        assert_eq!(m.features[0].feature.unit.as_deref(), Some("L/min"));
    }

    #[test]
    fn binary_sensor_classes_and_contacts() {
        let m = map(
            Component::BinarySensor,
            &cfg(
                json!({"stat_t": "s", "dev_cla": "door", "pl_on": false, "pl_off": true, "val_tpl": "{{ value_json.contact }}"}),
            ),
        );
        let f = &m.features[0];
        assert_eq!(f.feature.capability, Capability::Contact);
        let r = f.read.as_ref().unwrap();
        // zigbee2mqtt's contact: true means closed; Home Assistant's on means open.
        assert_eq!(decode(r, r#"{"contact": true}"#), Ok(Some(Decoded::Value(Value::Bool(true)))));
        assert_eq!(decode(r, r#"{"contact": false}"#), Ok(Some(Decoded::Value(Value::Bool(false)))));
        let m = map(Component::BinarySensor, &cfg(json!({"stat_t": "s", "dev_cla": "motion"})));
        assert_eq!(m.features[0].feature.capability, Capability::Occupancy);
        let r = m.features[0].read.as_ref().unwrap();
        assert_eq!(decode(r, "ON"), Ok(Some(Decoded::Value(Value::Bool(true)))));
        assert!(decode(r, "maybe").is_err());
        assert_eq!(decode(r, ""), Ok(None));
    }

    #[test]
    fn a_switch_reads_state_and_sends_commands() {
        let m = map(
            Component::Switch,
            &cfg(
                json!({"stat_t": "s", "cmd_t": "c", "pl_on": "1", "pl_off": "0", "stat_on": "on", "stat_off": "off", "qos": 1, "ret": true}),
            ),
        );
        let f = &m.features[0];
        assert_eq!(f.feature.access, Access::READ_WRITE);
        assert_eq!(decode(f.read.as_ref().unwrap(), "on"), Ok(Some(Decoded::Value(Value::Bool(true)))));
        let w = f.write.as_ref().unwrap();
        assert_eq!(w.payload(&Value::Bool(true)), Ok("1".into()));
        assert_eq!((w.qos, w.retain), (1, true));
        let m = map(Component::Switch, &cfg(json!({"cmd_t": "c", "cmd_tpl": "{\"state\": \"{{ value }}\"}"})));
        assert_eq!(m.features[0].feature.access, Access::WRITE_ONLY);
        assert_eq!(
            m.features[0].write.as_ref().unwrap().payload(&Value::Bool(false)),
            Ok(r#"{"state": "OFF"}"#.into())
        );
    }

    #[test]
    fn an_unusable_template_is_listed_and_the_value_left_out() {
        let m = map(
            Component::Sensor,
            &cfg(
                json!({"stat_t": "s", "unit_of_meas": "%", "val_tpl": "{{ value_json.x | regex_replace('a', 'b') }}"}),
            ),
        );
        assert!(m.features.is_empty());
        assert_eq!(m.unsupported.len(), 1);
        assert_eq!(m.unsupported[0].option, "value_template");
        assert!(m.unsupported[0].reason.contains("regex_replace"), "{}", m.unsupported[0].reason);
        // A switch with an unusable command template still reports its state.
        let m =
            map(Component::Switch, &cfg(json!({"stat_t": "s", "cmd_t": "c", "cmd_tpl": "{% if value %}1{% endif %}"})));
        assert_eq!(m.features[0].feature.access, Access::READ_ONLY);
        assert_eq!(m.unsupported[0].option, "command_template");
    }

    #[test]
    fn default_schema_light() {
        let m = map(
            Component::Light,
            &cfg(json!({
                "stat_t": "l/state", "cmd_t": "l/set", "bri_stat_t": "l/bri", "bri_cmd_t": "l/bri/set", "bri_scl": 100,
                "clr_temp_stat_t": "l/ct", "clr_temp_cmd_t": "l/ct/set", "min_mirs": 153, "max_mirs": 370,
                "rgb_stat_t": "l/rgb", "rgb_cmd_t": "l/rgb/set", "rgb_cmd_tpl": "{{ red }}-{{ green }}-{{ blue }}",
                "fx_cmd_t": "l/fx", "fx_list": ["rainbow", "none"], "on_cmd_type": "brightness"
            })),
        );
        let parts: Vec<&str> = m.features.iter().map(|f| f.part).collect();
        assert_eq!(parts, ["state", "brightness", "color_temp", "color", "effect"]);
        assert_eq!(m.on_command, OnCommand::Brightness);
        let bri = &m.features[1];
        assert_eq!(decode(bri.read.as_ref().unwrap(), "50"), Ok(Some(Decoded::Value(Value::Number(50.0)))));
        assert_eq!(bri.write.as_ref().unwrap().payload(&Value::Number(40.0)), Ok("40".into()));
        let ct = &m.features[2];
        assert_eq!(ct.feature.value_type, ValueType::range(2703.0, 6536.0, 1.0));
        assert_eq!(decode(ct.read.as_ref().unwrap(), "250"), Ok(Some(Decoded::Value(Value::Number(4000.0)))));
        assert_eq!(ct.write.as_ref().unwrap().payload(&Value::Number(4000.0)), Ok("250".into()));
        let color = &m.features[3];
        assert_eq!(
            decode(color.read.as_ref().unwrap(), "255,0,0"),
            Ok(Some(Decoded::Value(Value::Color(Color { hue: 0.0, saturation: 100.0 }))))
        );
        let red = Value::Color(Color { hue: 0.0, saturation: 100.0 });
        assert_eq!(color.write.as_ref().unwrap().payload(&red), Ok("255-0-0".into()));
        let fx = &m.features[4];
        assert_eq!(fx.feature.access, Access::WRITE_ONLY);
        assert_eq!(fx.feature.value_type, ValueType::enumeration(["rainbow", "none"]));
    }

    #[test]
    fn json_schema_light() {
        let m = map(
            Component::Light,
            &cfg(
                json!({"schema": "json", "stat_t": "b", "cmd_t": "b/set", "brightness": true, "brightness_scale": 254,
                        "supported_color_modes": ["xy", "color_temp"], "min_mireds": 150, "max_mireds": 500,
                        "effect": true, "effect_list": ["blink", "breathe"]}),
            ),
        );
        let parts: Vec<&str> = m.features.iter().map(|f| f.part).collect();
        assert_eq!(parts, ["state", "brightness", "color_temp", "color", "effect"]);
        let state = json!({"state": "ON", "brightness": 254, "color_mode": "xy", "color": {"x": 0.7006, "y": 0.2993}, "color_temp": 300});
        let text = state.to_string();
        let got: Vec<Option<Decoded>> =
            m.features.iter().map(|f| f.read.as_ref().unwrap().decode(msg(&text, Some(&state))).unwrap()).collect();
        assert_eq!(got[0], Some(Decoded::Value(Value::Bool(true))));
        assert_eq!(got[1], Some(Decoded::Value(Value::Number(100.0))));
        assert_eq!(got[2], None, "color_temp is stale in xy mode");
        assert!(matches!(got[3], Some(Decoded::Value(Value::Color(_)))));
        assert_eq!(got[4], None);
        let bri = Value::Number(50.0);
        let parts = [(&LightPart::Brightness(254.0), &bri)];
        assert_eq!(
            light_json_command(&parts, Some(2.0)),
            Ok(json!({"state": "ON", "brightness": 127, "transition": 2.0}))
        );
        let off = Value::Bool(false);
        assert_eq!(light_json_command(&[(&LightPart::State, &off)], None), Ok(json!({"state": "OFF"})));
        let red = Value::Color(Color { hue: 0.0, saturation: 100.0 });
        let cmd = light_json_command(&[(&LightPart::Color(ColorWire::Xy), &red)], None).unwrap();
        assert!((cmd["color"]["x"].as_f64().unwrap() - 0.7006).abs() < 0.01, "{cmd}");
        let unknown = map(Component::Light, &cfg(json!({"schema": "template", "cmd_t": "x"})));
        assert!(unknown.features.is_empty());
        assert_eq!(unknown.unsupported[0].option, "schema");
    }

    #[test]
    fn cover_climate_fan_lock() {
        let m = map(
            Component::Cover,
            &cfg(json!({"cmd_t": "c", "stat_t": "s", "pos_t": "p", "set_pos_t": "sp", "pos_open": 0, "pos_clsd": 100,
                        "pl_stop": null,
                        "set_pos_tpl": "{\"pos\": {{ position }}, \"raw\": {{ value }}, \"open\": {{ position_open }}, \"closed\": {{ position_closed }}}"})),
        );
        let parts: Vec<&str> = m.features.iter().map(|f| f.part).collect();
        assert_eq!(parts, ["state", "position"]);
        assert_eq!(m.features[0].feature.value_type, ValueType::enumeration(["open", "close"]));
        assert_eq!(
            decode(m.features[0].read.as_ref().unwrap(), "closing"),
            Ok(Some(Decoded::Value(Value::Text("close".into()))))
        );
        assert_eq!(m.features[0].write.as_ref().unwrap().payload(&Value::Text("open".into())), Ok("OPEN".into()));
        assert_eq!(decode(m.features[1].read.as_ref().unwrap(), "25"), Ok(Some(Decoded::Value(Value::Number(75.0)))));
        assert_eq!(
            m.features[1].write.as_ref().unwrap().payload(&Value::Number(75.0)),
            Ok(r#"{"pos": 75, "raw": 25, "open": 0, "closed": 100}"#.into())
        );

        let m = map(
            Component::Climate,
            &cfg(json!({"mode_cmd_t": "m/set", "mode_stat_t": "m", "modes": ["off", "heat"], "temp_cmd_t": "t/set",
                        "temp_stat_t": "t", "curr_temp_t": "ct", "temperature_unit": "F", "min_temp": 50, "max_temp": 86,
                        "act_t": "a", "fan_modes": ["auto"], "fan_mode_cmd_t": "f"})),
        );
        let parts: Vec<&str> = m.features.iter().map(|f| f.part).collect();
        assert_eq!(parts, ["mode", "setpoint", "temperature", "action", "fan_mode"]);
        assert_eq!(
            m.features[1].feature.value_type,
            ValueType::Number { min: Some(10.0), max: Some(30.0), step: None }
        );
        assert_eq!(m.features[1].write.as_ref().unwrap().payload(&Value::Number(21.0)), Ok("69.8".into()));
        assert_eq!(decode(m.features[2].read.as_ref().unwrap(), "68"), Ok(Some(Decoded::Value(Value::Number(20.0)))));
        assert_eq!(
            decode(m.features[3].read.as_ref().unwrap(), "heating"),
            Ok(Some(Decoded::Value(Value::Text("heat".into()))))
        );

        let m = map(
            Component::Fan,
            &cfg(
                json!({"cmd_t": "f/set", "stat_t": "f", "pct_cmd_t": "p/set", "pct_stat_t": "p", "spd_rng_min": 1, "spd_rng_max": 3,
                        "pr_modes": ["eco"], "pr_mode_cmd_t": "pm"}),
            ),
        );
        let parts: Vec<&str> = m.features.iter().map(|f| f.part).collect();
        assert_eq!(parts, ["state", "speed", "preset"]);
        assert_eq!(decode(m.features[1].read.as_ref().unwrap(), "2"), Ok(Some(Decoded::Value(Value::Number(67.0)))));
        assert_eq!(m.features[1].write.as_ref().unwrap().payload(&Value::Number(67.0)), Ok("2".into()));

        let m = map(Component::Lock, &cfg(json!({"cmd_t": "l/set", "stat_t": "l"})));
        let f = &m.features[0];
        assert_eq!(f.feature.capability, Capability::Lock);
        assert_eq!(decode(f.read.as_ref().unwrap(), "LOCKED"), Ok(Some(Decoded::Value(Value::Text("locked".into())))));
        assert_eq!(f.write.as_ref().unwrap().payload(&Value::Text("unlocked".into())), Ok("UNLOCK".into()));
        assert!(f.write.as_ref().unwrap().payload(&Value::Text("jammed".into())).is_err());
    }

    #[test]
    fn button_number_select_text_event_trigger() {
        let m = map(Component::Button, &cfg(json!({"cmd_t": "b", "pl_prs": "restart"})));
        assert_eq!(m.features[0].feature.access, Access::WRITE_ONLY);
        assert_eq!(m.features[0].write.as_ref().unwrap().payload(&Value::Text("press".into())), Ok("restart".into()));

        let m =
            map(Component::Number, &cfg(json!({"cmd_t": "n/set", "stat_t": "n", "min": 0, "max": 10, "step": 0.5})));
        assert_eq!(
            m.features[0].feature.value_type,
            ValueType::Number { min: Some(0.0), max: Some(10.0), step: Some(0.5) }
        );
        assert_eq!(m.features[0].write.as_ref().unwrap().payload(&Value::Number(2.0)), Ok("2".into()));
        assert_eq!(m.features[0].write.as_ref().unwrap().payload(&Value::Number(2.5)), Ok("2.5".into()));

        let m = map(Component::Select, &cfg(json!({"cmd_t": "s/set", "stat_t": "s", "ops": ["low", "high"]})));
        assert_eq!(m.features[0].feature.value_type, ValueType::enumeration(["low", "high"]));
        assert!(map(Component::Select, &cfg(json!({"cmd_t": "s"}))).features.is_empty());

        let m = map(Component::Text, &cfg(json!({"cmd_t": "t/set", "max": 20})));
        assert_eq!(m.features[0].feature.value_type, ValueType::Text { max_length: Some(20) });

        let m = map(Component::Event, &cfg(json!({"stat_t": "e", "evt_typ": ["press", "hold"]})));
        let f = &m.features[0];
        assert_eq!(f.feature.access, Access::EVENT);
        assert_eq!(
            decode(f.read.as_ref().unwrap(), r#"{"event_type": "hold", "duration": 2}"#),
            Ok(Some(Decoded::Event(
                "hold".into(),
                Some(Value::Object(BTreeMap::from([("duration".into(), Value::Number(2.0))])))
            )))
        );
        assert!(decode(f.read.as_ref().unwrap(), r#"{"event_type": "spin"}"#).is_err());

        let m = map(
            Component::DeviceTrigger,
            &cfg(json!({"atype": "trigger", "t": "z/btn/action", "pl": "single", "type": "action", "stype": "single"})),
        );
        assert_eq!(m.triggers[0].feature, "action");
        assert_eq!(m.triggers[0].event, "single");
        assert_eq!(m.triggers[0].payload.as_deref(), Some("single"));
        assert_eq!(trigger_names("button_short_press", "button_1"), ("button_1".into(), "short_press".into()));
    }

    #[test]
    fn json_attributes_become_one_object() {
        let m = map(
            Component::Sensor,
            &cfg(json!({"stat_t": "s", "json_attr_t": "a", "json_attr_tpl": "{{ value_json.data | to_json }}"})),
        );
        let r = m.attributes.as_ref().unwrap();
        assert_eq!(
            decode(r, r#"{"data": {"rssi": -60}}"#),
            Ok(Some(Decoded::Value(Value::Object(BTreeMap::from([("rssi".into(), Value::Number(-60.0))])))))
        );
        assert!(decode(r, r#"{"data": 3}"#).is_err());
    }
}
