//! Value conversions at the edge: device units to the model's canonical units and back, and
//! colors between hue/saturation, RGB and CIE xy.

use hearth_sdk::{Capability, Color};

/// How a device's number becomes the model's number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Conv {
    /// As it is.
    Same,
    /// Times a factor (mV to V: 0.001); divided on the way back.
    Scale(f64),
    /// °F to °C.
    Fahrenheit,
    /// K to °C.
    Kelvin,
    /// `lo..=hi` to 0-100 % (brightness 0-255, a cover's closed..open position, a fan's speed
    /// range); rounded to whole percent.
    Range {
        /// The device's value for 0 %.
        lo: f64,
        /// The device's value for 100 %.
        hi: f64,
    },
    /// Mired to kelvin (1,000,000 / mired).
    Mired,
}

/// `v` rounded to `decimals` decimals, as the nearest f64 to that decimal (2.995, not
/// 2.9949999999999997).
fn round_dp(v: f64, decimals: i32) -> f64 {
    let p = 10f64.powi(decimals);
    (v * p).round() / p
}

impl Conv {
    /// A device value in the model's unit; `None` when it has none (a mired of 0).
    pub fn to_model(self, v: f64) -> Option<f64> {
        if !v.is_finite() {
            return None;
        }
        Some(match self {
            Conv::Same => v,
            Conv::Scale(f) => round_dp(v * f, 6),
            Conv::Fahrenheit => round_dp((v - 32.0) * 5.0 / 9.0, 2),
            Conv::Kelvin => round_dp(v - 273.15, 2),
            Conv::Range { lo, hi } => {
                if hi == lo {
                    return None;
                }
                ((v - lo) / (hi - lo) * 100.0).round().clamp(0.0, 100.0)
            }
            Conv::Mired => {
                if v <= 0.0 {
                    return None;
                }
                (1_000_000.0 / v).round()
            }
        })
    }

    /// A model value in the device's unit.
    pub fn to_device(self, v: f64) -> f64 {
        match self {
            Conv::Same => v,
            Conv::Scale(f) if f != 0.0 => round_dp(v / f, 9),
            Conv::Scale(_) => v,
            Conv::Fahrenheit => round_dp(v * 9.0 / 5.0 + 32.0, 2),
            Conv::Kelvin => round_dp(v + 273.15, 2),
            Conv::Range { lo, hi } => (lo + v.clamp(0.0, 100.0) / 100.0 * (hi - lo)).round(),
            Conv::Mired => {
                if v <= 0.0 {
                    0.0
                } else {
                    (1_000_000.0 / v).round()
                }
            }
        }
    }

    /// Limits in the device's unit to the model's (both ends, in order).
    pub fn limits(self, lo: Option<f64>, hi: Option<f64>) -> (Option<f64>, Option<f64>) {
        let a = lo.and_then(|v| self.to_model(v));
        let b = hi.and_then(|v| self.to_model(v));
        match (a, b) {
            (Some(x), Some(y)) if x > y => (Some(y), Some(x)),
            other => other,
        }
    }
}

/// The capability a measurement takes from its Home Assistant device class and unit, with the
/// conversion to the capability's canonical unit; `None` when nothing fits (it stays `other`
/// with its own unit).
pub fn measurement(device_class: Option<&str>, unit: Option<&str>) -> Option<(Capability, Conv)> {
    use Capability as C;
    let unit = unit.map(str::trim);
    let by_class = device_class.and_then(|dc| {
        let u = unit.unwrap_or("");
        Some(match dc {
            "temperature" => (
                C::Temperature,
                match u {
                    "°C" | "C" | "℃" => Conv::Same,
                    "°F" | "F" | "℉" => Conv::Fahrenheit,
                    "K" => Conv::Kelvin,
                    _ => return None,
                },
            ),
            "humidity" if u == "%" => (C::Humidity, Conv::Same),
            "moisture" if u == "%" => (C::Moisture, Conv::Same),
            "battery" if u == "%" => (C::Battery, Conv::Same),
            "carbon_dioxide" if u == "ppm" => (C::Co2, Conv::Same),
            "pm25" if micrograms(u) => (C::Pm25, Conv::Same),
            "pm10" if micrograms(u) => (C::Pm10, Conv::Same),
            "volatile_organic_compounds_parts" => (
                C::Voc,
                match u {
                    "ppb" => Conv::Same,
                    "ppm" => Conv::Scale(1000.0),
                    _ => return None,
                },
            ),
            "signal_strength" if u == "dBm" => (C::SignalStrength, Conv::Same),
            "pressure" | "atmospheric_pressure" => (C::Pressure, pressure(u)?),
            "illuminance" => (C::Illuminance, lux(u)?),
            "power" => (C::Power, power(u)?),
            "energy" => (C::Energy, energy(u)?),
            "voltage" => (C::Voltage, voltage(u)?),
            "current" => (C::Current, current(u)?),
            "duration" => (C::Duration, duration(u)?),
            _ => return None,
        })
    });
    by_class.or_else(|| {
        let u = unit?;
        Some(match u {
            "°C" | "℃" => (C::Temperature, Conv::Same),
            "°F" | "℉" => (C::Temperature, Conv::Fahrenheit),
            "lqi" => (C::LinkQuality, Conv::Same),
            "dBm" => (C::SignalStrength, Conv::Same),
            "ppb" => (C::Voc, Conv::Same),
            _ => {
                if let Some(c) = lux(u) {
                    (C::Illuminance, c)
                } else if let Some(c) = power(u) {
                    (C::Power, c)
                } else if let Some(c) = energy(u) {
                    (C::Energy, c)
                } else if let Some(c) = voltage(u) {
                    (C::Voltage, c)
                } else if let Some(c) = current(u) {
                    (C::Current, c)
                } else if u == "hPa" || u == "mbar" {
                    (C::Pressure, Conv::Same)
                } else if let Some(c) = duration(u) {
                    (C::Duration, c)
                } else {
                    return None;
                }
            }
        })
    })
}

fn micrograms(u: &str) -> bool {
    // The micro sign and the Greek mu are both in use.
    matches!(u, "µg/m³" | "μg/m³" | "ug/m3" | "µg/m3")
}

fn pressure(u: &str) -> Option<Conv> {
    Some(match u {
        "hPa" | "mbar" => Conv::Same,
        "Pa" => Conv::Scale(0.01),
        "kPa" | "cbar" => Conv::Scale(10.0),
        "bar" => Conv::Scale(1000.0),
        "psi" => Conv::Scale(68.947_572_9),
        "inHg" => Conv::Scale(33.863_886_67),
        "mmHg" => Conv::Scale(1.333_223_874),
        _ => return None,
    })
}

fn lux(u: &str) -> Option<Conv> {
    matches!(u, "lx" | "lux").then_some(Conv::Same)
}

fn power(u: &str) -> Option<Conv> {
    Some(match u {
        "W" => Conv::Same,
        "kW" => Conv::Scale(1000.0),
        "mW" => Conv::Scale(0.001),
        _ => return None,
    })
}

fn energy(u: &str) -> Option<Conv> {
    Some(match u {
        "kWh" => Conv::Same,
        "Wh" => Conv::Scale(0.001),
        "MWh" => Conv::Scale(1000.0),
        _ => return None,
    })
}

fn voltage(u: &str) -> Option<Conv> {
    Some(match u {
        "V" => Conv::Same,
        "mV" => Conv::Scale(0.001),
        "kV" => Conv::Scale(1000.0),
        _ => return None,
    })
}

fn current(u: &str) -> Option<Conv> {
    Some(match u {
        "A" => Conv::Same,
        "mA" => Conv::Scale(0.001),
        _ => return None,
    })
}

fn duration(u: &str) -> Option<Conv> {
    Some(match u {
        "s" | "sec" => Conv::Same,
        "ms" => Conv::Scale(0.001),
        "min" => Conv::Scale(60.0),
        "h" => Conv::Scale(3600.0),
        "d" => Conv::Scale(86400.0),
        _ => return None,
    })
}

fn gamma_compress(v: f64) -> f64 {
    if v <= 0.003_130_8 { 12.92 * v } else { 1.055 * v.powf(1.0 / 2.4) - 0.055 }
}

fn gamma_expand(v: f64) -> f64 {
    if v > 0.040_45 { ((v + 0.055) / 1.055).powf(2.4) } else { v / 12.92 }
}

/// The sRGB triple at full brightness of a CIE xy point (Home Assistant's conversion).
pub fn xy_to_rgb(x: f64, y: f64) -> Option<(u8, u8, u8)> {
    if !(x.is_finite() && y.is_finite()) || y <= 0.0 {
        return None;
    }
    let big_y = 1.0;
    let big_x = big_y / y * x;
    let big_z = big_y / y * (1.0 - x - y);
    let r = big_x * 1.656_492 - big_y * 0.354_851 - big_z * 0.255_038;
    let g = -big_x * 0.707_196 + big_y * 1.655_397 + big_z * 0.036_152;
    let b = big_x * 0.051_713 - big_y * 0.121_364 + big_z * 1.011_530;
    let (r, g, b) = (gamma_compress(r).max(0.0), gamma_compress(g).max(0.0), gamma_compress(b).max(0.0));
    let max = r.max(g).max(b);
    if !max.is_finite() || max <= 0.0 {
        return None;
    }
    let scale = |v: f64| (v / max * 255.0).round().clamp(0.0, 255.0) as u8;
    Some((scale(r), scale(g), scale(b)))
}

/// The CIE xy point of an sRGB triple, to four decimals.
pub fn rgb_to_xy(r: u8, g: u8, b: u8) -> (f64, f64) {
    let (r, g, b) =
        (gamma_expand(f64::from(r) / 255.0), gamma_expand(f64::from(g) / 255.0), gamma_expand(f64::from(b) / 255.0));
    let x = r * 0.664_511 + g * 0.154_324 + b * 0.162_028;
    let y = r * 0.283_881 + g * 0.668_433 + b * 0.047_685;
    let z = r * 0.000_088 + g * 0.072_310 + b * 0.986_039;
    let sum = x + y + z;
    if sum <= 0.0 {
        return (0.0, 0.0);
    }
    (round_dp(x / sum, 4), round_dp(y / sum, 4))
}

/// The color of a CIE xy point.
pub fn xy_to_color(x: f64, y: f64) -> Option<Color> {
    xy_to_rgb(x, y).map(|(r, g, b)| Color::from_rgb(r, g, b))
}

/// The CIE xy point of a color.
pub fn color_to_xy(c: Color) -> (f64, f64) {
    let (r, g, b) = c.to_rgb();
    rgb_to_xy(r, g, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_convert_both_ways_at_their_edges() {
        assert_eq!(Conv::Fahrenheit.to_model(212.0), Some(100.0));
        assert_eq!(Conv::Fahrenheit.to_model(32.0), Some(0.0));
        assert_eq!(Conv::Fahrenheit.to_device(21.5), 70.7);
        assert_eq!(Conv::Kelvin.to_model(273.15), Some(0.0));
        assert_eq!(Conv::Scale(0.001).to_model(3045.0), Some(3.045));
        assert_eq!(Conv::Scale(0.001).to_device(3.045), 3045.0);
        let bri = Conv::Range { lo: 0.0, hi: 254.0 };
        assert_eq!(bri.to_model(254.0), Some(100.0));
        assert_eq!(bri.to_model(0.0), Some(0.0));
        assert_eq!(bri.to_model(127.0), Some(50.0));
        assert_eq!(bri.to_device(100.0), 254.0);
        assert_eq!(bri.to_device(50.0), 127.0);
        assert_eq!(Conv::Range { lo: 0.0, hi: 255.0 }.to_model(300.0), Some(100.0));
        assert_eq!(Conv::Range { lo: 5.0, hi: 5.0 }.to_model(5.0), None);
        // A cover whose closed position is 100 and open 0.
        let inverted = Conv::Range { lo: 100.0, hi: 0.0 };
        assert_eq!(inverted.to_model(0.0), Some(100.0));
        assert_eq!(inverted.to_device(25.0), 75.0);
        assert_eq!(Conv::Mired.to_model(153.0), Some(6536.0));
        assert_eq!(Conv::Mired.to_model(500.0), Some(2000.0));
        assert_eq!(Conv::Mired.to_model(0.0), None);
        assert_eq!(Conv::Mired.to_device(2000.0), 500.0);
        assert_eq!(Conv::Mired.limits(Some(153.0), Some(500.0)), (Some(2000.0), Some(6536.0)));
        assert_eq!(Conv::Same.to_model(f64::NAN), None);
    }

    #[test]
    fn measurements_take_the_capability_their_class_and_unit_say() {
        use Capability as C;
        assert_eq!(measurement(Some("temperature"), Some("°F")), Some((C::Temperature, Conv::Fahrenheit)));
        assert_eq!(measurement(Some("atmospheric_pressure"), Some("kPa")), Some((C::Pressure, Conv::Scale(10.0))));
        assert_eq!(measurement(Some("energy"), Some("Wh")), Some((C::Energy, Conv::Scale(0.001))));
        assert_eq!(measurement(Some("voltage"), Some("mV")), Some((C::Voltage, Conv::Scale(0.001))));
        assert_eq!(measurement(Some("pm25"), Some("μg/m³")), Some((C::Pm25, Conv::Same)));
        // Tasmota announces its energy total with the class `power` and the unit kWh.
        assert_eq!(measurement(Some("power"), Some("kWh")), Some((C::Energy, Conv::Same)));
        assert_eq!(measurement(Some("illuminance"), Some("lux")), Some((C::Illuminance, Conv::Same)));
        assert_eq!(measurement(None, Some("lqi")), Some((C::LinkQuality, Conv::Same)));
        assert_eq!(measurement(Some("humidity"), Some("g/m³")), None);
        assert_eq!(measurement(None, Some("%")), None);
        assert_eq!(measurement(Some("gas"), Some("m³")), None);
        assert_eq!(measurement(None, None), None);
    }

    #[test]
    fn colors_convert_between_xy_and_hue_saturation() {
        let red = xy_to_color(0.7006, 0.2993).unwrap();
        assert!(red.hue < 2.0 || red.hue > 358.0, "{red:?}");
        assert!(red.saturation > 95.0, "{red:?}");
        let (x, y) = rgb_to_xy(255, 0, 0);
        assert!((x - 0.7006).abs() < 0.002 && (y - 0.2993).abs() < 0.002, "{x} {y}");
        let white = rgb_to_xy(255, 255, 255);
        assert!((white.0 - 0.3227).abs() < 0.01 && (white.1 - 0.329).abs() < 0.01, "{white:?}");
        for c in [Color { hue: 120.0, saturation: 100.0 }, Color { hue: 240.0, saturation: 60.0 }] {
            let (x, y) = color_to_xy(c);
            let back = xy_to_color(x, y).unwrap();
            assert!((back.hue - c.hue).abs() < 3.0 && (back.saturation - c.saturation).abs() < 3.0, "{c:?} {back:?}");
        }
        assert_eq!(xy_to_rgb(0.3, 0.0), None);
        assert_eq!(xy_to_rgb(f64::NAN, 0.3), None);
    }
}
