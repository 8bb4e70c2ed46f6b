//! REST and WebSocket request bodies as the API reads them, and the automation definitions it
//! stores: a device command (`POST /api/v1/devices/{id}/commands`, and the WebSocket's
//! `command`) read and checked against a device's features; every WebSocket client message;
//! automations and scenes as JSON (`POST /api/v1/automations`, `/scenes`) and as YAML (the
//! automation editor's text form), checked against a home; request paths matched against the
//! route table; time zone files (TZif) as the automation engine reads them.
//!
//! Properties: a command that passes the check still passes after a JSON round trip; an
//! automation or scene that reads writes back (JSON and YAML) to a text that reads the same.
//!
//! Input: the first byte chooses: 0 a command body, 1 a WebSocket message, 2 an automation
//! (JSON), 3 a scene (JSON), 4 automations (YAML), 5 scenes (YAML), 6 a request path, 7 a TZif
//! file.
#![no_main]

use hearth::api::routes::ROUTES;
use hearth::api::{match_path, ws};
use hearth_automations::model::{Automation, Scene};
use hearth_automations::text;
use hearth_automations::validate::{Catalog, validate, validate_scene};
use hearth_automations::zone::Zone;
use hearth_fuzz::{assert_json_fixed_point, split_selector};
use hearth_sdk::{
    Access, Area, Capability, CommandRequest, Device, DeviceDescriptor, DeviceId, Feature, Timestamp, ValueType,
};
use libfuzzer_sys::fuzz_target;

fn features() -> Vec<Feature> {
    vec![
        Feature::new("state", Capability::OnOff, ValueType::Bool, Access::READ_WRITE),
        Feature::new("brightness", Capability::Brightness, ValueType::range(0.0, 100.0, 1.0), Access::READ_WRITE),
        Feature::new("effect", Capability::Other, ValueType::enumeration(["none", "rainbow"]), Access::READ_WRITE),
        Feature::new("label", Capability::Other, ValueType::Text { max_length: Some(32) }, Access::READ_WRITE),
        Feature::new("temperature", Capability::Temperature, ValueType::number(), Access::READ_ONLY),
    ]
}

fn command(request: &CommandRequest) {
    let features = features();
    if request.validate(&features).is_ok() {
        assert_json_fixed_point(request, "a command request");
        let back: CommandRequest = serde_json::from_str(&serde_json::to_string(request).unwrap_or_default())
            .unwrap_or_else(|e| panic!("a valid command does not read back: {e}"));
        assert!(back.validate(&features).is_ok(), "a valid command is refused after a round trip: {back:?}");
    }
}

struct Home {
    devices: Vec<Device>,
    areas: Vec<Area>,
    scenes: Vec<String>,
    automations: Vec<String>,
}

impl Home {
    fn new() -> Home {
        let mut lamp =
            Device::from_descriptor(DeviceDescriptor::new(DeviceId::new("demo", "lamp"), "Lamp", features()));
        lamp.area = Some("kitchen".into());
        Home {
            devices: vec![lamp],
            areas: vec![Area { id: "kitchen".into(), name: "Kitchen".into(), order: 0 }],
            scenes: vec!["movie".into()],
            automations: vec!["porch_light".into()],
        }
    }

    fn catalog(&self) -> Catalog<'_> {
        Catalog {
            devices: &self.devices,
            areas: &self.areas,
            scenes: &self.scenes,
            automations: &self.automations,
            location: true,
        }
    }
}

fn automation(a: &Automation, home: &Home) {
    let _ = validate(a, home.catalog());
    assert_json_fixed_point(a, "an automation");
    let yaml = text::automation_to_yaml(a);
    match text::automation_from_yaml(&yaml) {
        Ok(back) => assert_eq!(text::automation_to_yaml(&back), yaml, "an automation changed through YAML"),
        Err(e) => panic!("an automation's YAML does not read back: {e:?}\n{yaml}"),
    }
}

fn scene(s: &Scene, home: &Home) {
    let _ = validate_scene(s, home.catalog());
    assert_json_fixed_point(s, "a scene");
    let yaml = text::scene_to_yaml(s);
    match text::scene_from_yaml(&yaml) {
        Ok(back) => assert_eq!(text::scene_to_yaml(&back), yaml, "a scene changed through YAML"),
        Err(e) => panic!("a scene's YAML does not read back: {e:?}\n{yaml}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((choice, rest)) = split_selector(data, 8) else { return };
    if choice == 7 {
        if let Ok(zone) = Zone::from_tzif("Fuzz/Zone", rest) {
            for ms in [i64::MIN / 4, -1, 0, 1_795_900_846_123, i64::MAX / 4] {
                let _ = zone.local(Timestamp::from_millis(ms));
            }
            let _ = zone.at((2026, 3, 29), 2 * 3600 + 1800);
        }
        return;
    }
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let home = Home::new();
    match choice {
        0 => {
            if let Ok(request) = serde_json::from_str::<CommandRequest>(text) {
                command(&request);
            }
        }
        1 => {
            if let Ok((_, Some(request))) = ws::parse_client_message(text) {
                command(&request);
            }
        }
        2 => {
            if let Ok(a) = serde_json::from_str::<Automation>(text) {
                automation(&a, &home);
            }
        }
        3 => {
            if let Ok(s) = serde_json::from_str::<Scene>(text) {
                scene(&s, &home);
            }
        }
        4 => {
            for a in text::automations_from_yaml(text).unwrap_or_default().iter().take(8) {
                automation(a, &home);
            }
        }
        5 => {
            for s in text::scenes_from_yaml(text).unwrap_or_default().iter().take(8) {
                scene(s, &home);
            }
        }
        _ => {
            for route in ROUTES {
                if let Some(params) = match_path(route.path, text) {
                    assert_eq!(
                        params.len(),
                        route.path.matches('{').count(),
                        "`{text}` matched `{}` with the wrong number of parameters",
                        route.path
                    );
                }
            }
        }
    }
});
