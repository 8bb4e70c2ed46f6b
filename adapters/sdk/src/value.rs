//! Values of features: what a feature reports and what a command sets.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A color in the model's canonical form: hue in degrees (0-360) and saturation in percent (0-100).
///
/// Brightness is its own feature, so a color carries no brightness. JSON form:
/// `{"hue": 30.0, "saturation": 80.0}`. Adapters convert from CIE xy, RGB or hex at the edge
/// with [`Color::from_rgb`] and [`Color::to_rgb`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Color {
    /// Hue in degrees, 0 to 360.
    pub hue: f64,
    /// Saturation in percent, 0 to 100.
    pub saturation: f64,
}

impl Color {
    /// The color of an sRGB triple (brightness is dropped).
    pub fn from_rgb(r: u8, g: u8, b: u8) -> Color {
        let (r, g, b) = (f64::from(r) / 255.0, f64::from(g) / 255.0, f64::from(b) / 255.0);
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let delta = max - min;
        let hue = if delta == 0.0 {
            0.0
        } else if max == r {
            60.0 * ((g - b) / delta).rem_euclid(6.0)
        } else if max == g {
            60.0 * ((b - r) / delta + 2.0)
        } else {
            60.0 * ((r - g) / delta + 4.0)
        };
        let saturation = if max == 0.0 { 0.0 } else { delta / max * 100.0 };
        Color { hue: round2(hue), saturation: round2(saturation) }
    }

    /// The sRGB triple of this color at full brightness.
    pub fn to_rgb(self) -> (u8, u8, u8) {
        let h = self.hue.rem_euclid(360.0) / 60.0;
        let s = (self.saturation / 100.0).clamp(0.0, 1.0);
        let c = s;
        let x = c * (1.0 - (h % 2.0 - 1.0).abs());
        let (r, g, b) = match h as u32 {
            0 => (c, x, 0.0),
            1 => (x, c, 0.0),
            2 => (0.0, c, x),
            3 => (0.0, x, c),
            4 => (x, 0.0, c),
            _ => (c, 0.0, x),
        };
        let m = 1.0 - c;
        let to8 = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
        (to8(r), to8(g), to8(b))
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The value of a feature.
///
/// JSON form is the plain JSON value: `true`, `21.5`, `"heat"`, `{"hue": 30.0, "saturation": 80.0}`,
/// `[1, 2]` or an object. Which of them a feature takes is fixed by its [`crate::ValueType`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A boolean (on_off, contact, occupancy ...).
    Bool(bool),
    /// A number in the feature's canonical unit.
    Number(f64),
    /// Text, also the form of enum values.
    Text(String),
    /// A color, hue and saturation.
    Color(Color),
    /// A list of values.
    List(Vec<Value>),
    /// A structured value (keys in order).
    Object(BTreeMap<String, Value>),
}

impl Value {
    /// The name of this value's JSON kind, as used in error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::Text(_) => "text",
            Value::Color(_) => "color",
            Value::List(_) => "list",
            Value::Object(_) => "object",
        }
    }

    /// The number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The text, if this is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_string(self) {
            Ok(s) => f.write_str(&s),
            Err(_) => f.write_str("<unprintable>"),
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Number(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Number(v as f64)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<Color> for Value {
    fn from(v: Color) -> Self {
        Value::Color(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form_is_the_plain_value() {
        let cases = [
            ("true", Value::Bool(true)),
            ("21.5", Value::Number(21.5)),
            ("\"heat\"", Value::Text("heat".into())),
            ("{\"hue\":30.0,\"saturation\":80.0}", Value::Color(Color { hue: 30.0, saturation: 80.0 })),
            ("[1.0,\"a\"]", Value::List(vec![Value::Number(1.0), Value::Text("a".into())])),
            ("{\"x\":1.0}", Value::Object(BTreeMap::from([("x".to_owned(), Value::Number(1.0))]))),
        ];
        for (json, value) in cases {
            assert_eq!(serde_json::from_str::<Value>(json).ok(), Some(value.clone()), "{json}");
            assert_eq!(serde_json::to_string(&value).ok().as_deref(), Some(json));
        }
    }

    #[test]
    fn rgb_round_trips_through_hue_and_saturation() {
        for (r, g, b) in [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 136, 0), (255, 255, 255), (128, 0, 255)] {
            let c = Color::from_rgb(r, g, b);
            let back = c.to_rgb();
            // Brightness is not part of a color, so compare at full brightness.
            let max = f64::from(r.max(g).max(b)).max(1.0);
            let scale = |v: u8| (f64::from(v) * 255.0 / max).round() as i32;
            assert!((i32::from(back.0) - scale(r)).abs() <= 1, "{c:?}");
            assert!((i32::from(back.1) - scale(g)).abs() <= 1, "{c:?}");
            assert!((i32::from(back.2) - scale(b)).abs() <= 1, "{c:?}");
        }
        assert_eq!(Color::from_rgb(255, 0, 0), Color { hue: 0.0, saturation: 100.0 });
    }
}
