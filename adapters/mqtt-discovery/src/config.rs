//! Discovery config payloads as Home Assistant reads them: discovery topics, abbreviations
//! expanded (entity keys, `device`, `origin`, availability entries, device-based `cmps`), the
//! `~` base topic substituted at the start or end of topic values, and typed access to the
//! device block, the origin and availability.

use serde_json::{Map, Value as Json};

use crate::template::{Template, TemplateError};

/// Abbreviations of entity keys (Home Assistant's `abbreviations.py`).
pub const ABBREVIATIONS: &[(&str, &str)] = &[
    ("act_t", "action_topic"),
    ("act_tpl", "action_template"),
    ("atype", "automation_type"),
    ("aux_cmd_t", "aux_command_topic"),
    ("aux_stat_t", "aux_state_topic"),
    ("aux_stat_tpl", "aux_state_template"),
    ("av_tones", "available_tones"),
    ("avty", "availability"),
    ("avty_mode", "availability_mode"),
    ("avty_t", "availability_topic"),
    ("avty_tpl", "availability_template"),
    ("away_mode_cmd_t", "away_mode_command_topic"),
    ("away_mode_stat_t", "away_mode_state_topic"),
    ("away_mode_stat_tpl", "away_mode_state_template"),
    ("b_tpl", "blue_template"),
    ("bat_lev_t", "battery_level_topic"),
    ("bat_lev_tpl", "battery_level_template"),
    ("bri_cmd_t", "brightness_command_topic"),
    ("bri_cmd_tpl", "brightness_command_template"),
    ("bri_scl", "brightness_scale"),
    ("bri_stat_t", "brightness_state_topic"),
    ("bri_tpl", "brightness_template"),
    ("bri_val_tpl", "brightness_value_template"),
    ("chrg_t", "charging_topic"),
    ("chrg_tpl", "charging_template"),
    ("cln_t", "cleaning_topic"),
    ("cln_tpl", "cleaning_template"),
    ("clr_temp_cmd_t", "color_temp_command_topic"),
    ("clr_temp_cmd_tpl", "color_temp_command_template"),
    ("clr_temp_k", "color_temp_kelvin"),
    ("clr_temp_stat_t", "color_temp_state_topic"),
    ("clr_temp_tpl", "color_temp_template"),
    ("clr_temp_val_tpl", "color_temp_value_template"),
    ("clrm", "color_mode"),
    ("clrm_stat_t", "color_mode_state_topic"),
    ("clrm_val_tpl", "color_mode_value_template"),
    ("cmd_off_tpl", "command_off_template"),
    ("cmd_on_tpl", "command_on_template"),
    ("cmd_t", "command_topic"),
    ("cmd_tpl", "command_template"),
    ("cmps", "components"),
    ("cod_arm_req", "code_arm_required"),
    ("cod_dis_req", "code_disarm_required"),
    ("cod_trig_req", "code_trigger_required"),
    ("cont_type", "content_type"),
    ("curr_hum_t", "current_humidity_topic"),
    ("curr_hum_tpl", "current_humidity_template"),
    ("curr_temp_t", "current_temperature_topic"),
    ("curr_temp_tpl", "current_temperature_template"),
    ("def_ent_id", "default_entity_id"),
    ("dev", "device"),
    ("dev_cla", "device_class"),
    ("dir_cmd_t", "direction_command_topic"),
    ("dir_cmd_tpl", "direction_command_template"),
    ("dir_stat_t", "direction_state_topic"),
    ("dir_val_tpl", "direction_value_template"),
    ("dock_t", "docked_topic"),
    ("dock_tpl", "docked_template"),
    ("dsp_prc", "display_precision"),
    ("e", "encoding"),
    ("en", "enabled_by_default"),
    ("ent_cat", "entity_category"),
    ("ent_pic", "entity_picture"),
    ("err_t", "error_topic"),
    ("err_tpl", "error_template"),
    ("evt_typ", "event_types"),
    ("exp_aft", "expire_after"),
    ("fan_mode_cmd_t", "fan_mode_command_topic"),
    ("fan_mode_cmd_tpl", "fan_mode_command_template"),
    ("fan_mode_stat_t", "fan_mode_state_topic"),
    ("fan_mode_stat_tpl", "fan_mode_state_template"),
    ("fanspd_lst", "fan_speed_list"),
    ("fanspd_t", "fan_speed_topic"),
    ("fanspd_tpl", "fan_speed_template"),
    ("flsh", "flash"),
    ("flsh_tlng", "flash_time_long"),
    ("flsh_tsht", "flash_time_short"),
    ("frc_upd", "force_update"),
    ("fx_cmd_t", "effect_command_topic"),
    ("fx_cmd_tpl", "effect_command_template"),
    ("fx_list", "effect_list"),
    ("fx_stat_t", "effect_state_topic"),
    ("fx_tpl", "effect_template"),
    ("fx_val_tpl", "effect_value_template"),
    ("g_tpl", "green_template"),
    ("hold_cmd_t", "hold_command_topic"),
    ("hold_cmd_tpl", "hold_command_template"),
    ("hold_stat_t", "hold_state_topic"),
    ("hold_stat_tpl", "hold_state_template"),
    ("hs_cmd_t", "hs_command_topic"),
    ("hs_cmd_tpl", "hs_command_template"),
    ("hs_stat_t", "hs_state_topic"),
    ("hs_val_tpl", "hs_value_template"),
    ("hum_cmd_t", "target_humidity_command_topic"),
    ("hum_cmd_tpl", "target_humidity_command_template"),
    ("hum_stat_t", "target_humidity_state_topic"),
    ("hum_state_tpl", "target_humidity_state_template"),
    ("ic", "icon"),
    ("img_e", "image_encoding"),
    ("img_t", "image_topic"),
    ("init", "initial"),
    ("json_attr", "json_attributes"),
    ("json_attr_t", "json_attributes_topic"),
    ("json_attr_tpl", "json_attributes_template"),
    ("l_ver_t", "latest_version_topic"),
    ("l_ver_tpl", "latest_version_template"),
    ("lrst_t", "last_reset_topic"),
    ("lrst_val_tpl", "last_reset_value_template"),
    ("max", "max"),
    ("max_hum", "max_humidity"),
    ("max_k", "max_kelvin"),
    ("max_mirs", "max_mireds"),
    ("max_temp", "max_temp"),
    ("migr_discvry", "migrate_discovery"),
    ("min", "min"),
    ("min_hum", "min_humidity"),
    ("min_k", "min_kelvin"),
    ("min_mirs", "min_mireds"),
    ("min_temp", "min_temp"),
    ("mode", "mode"),
    ("mode_cmd_t", "mode_command_topic"),
    ("mode_cmd_tpl", "mode_command_template"),
    ("mode_stat_t", "mode_state_topic"),
    ("mode_stat_tpl", "mode_state_template"),
    ("modes", "modes"),
    ("name", "name"),
    ("o", "origin"),
    ("obj_id", "object_id"),
    ("off_dly", "off_delay"),
    ("on_cmd_type", "on_command_type"),
    ("ops", "options"),
    ("opt", "optimistic"),
    ("osc_cmd_t", "oscillation_command_topic"),
    ("osc_cmd_tpl", "oscillation_command_template"),
    ("osc_stat_t", "oscillation_state_topic"),
    ("osc_val_tpl", "oscillation_value_template"),
    ("p", "platform"),
    ("pct_cmd_t", "percentage_command_topic"),
    ("pct_cmd_tpl", "percentage_command_template"),
    ("pct_stat_t", "percentage_state_topic"),
    ("pct_val_tpl", "percentage_value_template"),
    ("pl", "payload"),
    ("pl_arm_away", "payload_arm_away"),
    ("pl_arm_custom_b", "payload_arm_custom_bypass"),
    ("pl_arm_home", "payload_arm_home"),
    ("pl_arm_nite", "payload_arm_night"),
    ("pl_arm_vacation", "payload_arm_vacation"),
    ("pl_avail", "payload_available"),
    ("pl_cln_sp", "payload_clean_spot"),
    ("pl_cls", "payload_close"),
    ("pl_dir_fwd", "payload_direction_forward"),
    ("pl_dir_rev", "payload_direction_reverse"),
    ("pl_disarm", "payload_disarm"),
    ("pl_hi_spd", "payload_high_speed"),
    ("pl_home", "payload_home"),
    ("pl_inst", "payload_install"),
    ("pl_lo_spd", "payload_low_speed"),
    ("pl_loc", "payload_locate"),
    ("pl_lock", "payload_lock"),
    ("pl_med_spd", "payload_medium_speed"),
    ("pl_not_avail", "payload_not_available"),
    ("pl_not_home", "payload_not_home"),
    ("pl_off", "payload_off"),
    ("pl_off_spd", "payload_off_speed"),
    ("pl_on", "payload_on"),
    ("pl_open", "payload_open"),
    ("pl_osc_off", "payload_oscillation_off"),
    ("pl_osc_on", "payload_oscillation_on"),
    ("pl_paus", "payload_pause"),
    ("pl_prs", "payload_press"),
    ("pl_ret", "payload_return_to_base"),
    ("pl_rst", "payload_reset"),
    ("pl_rst_hum", "payload_reset_humidity"),
    ("pl_rst_mode", "payload_reset_mode"),
    ("pl_rst_pct", "payload_reset_percentage"),
    ("pl_rst_pr_mode", "payload_reset_preset_mode"),
    ("pl_stop", "payload_stop"),
    ("pl_stop_tilt", "payload_stop_tilt"),
    ("pl_stpa", "payload_start_pause"),
    ("pl_strt", "payload_start"),
    ("pl_toff", "payload_turn_off"),
    ("pl_ton", "payload_turn_on"),
    ("pl_trig", "payload_trigger"),
    ("pl_unlk", "payload_unlock"),
    ("pos", "reports_position"),
    ("pos_clsd", "position_closed"),
    ("pos_open", "position_open"),
    ("pos_t", "position_topic"),
    ("pos_tpl", "position_template"),
    ("pow_cmd_t", "power_command_topic"),
    ("pow_stat_t", "power_state_topic"),
    ("pow_stat_tpl", "power_state_template"),
    ("pr_mode_cmd_t", "preset_mode_command_topic"),
    ("pr_mode_cmd_tpl", "preset_mode_command_template"),
    ("pr_mode_stat_t", "preset_mode_state_topic"),
    ("pr_mode_val_tpl", "preset_mode_value_template"),
    ("pr_modes", "preset_modes"),
    ("ptrn", "pattern"),
    ("r_tpl", "red_template"),
    ("rel_s", "release_summary"),
    ("rel_u", "release_url"),
    ("ret", "retain"),
    ("rgb_cmd_t", "rgb_command_topic"),
    ("rgb_cmd_tpl", "rgb_command_template"),
    ("rgb_stat_t", "rgb_state_topic"),
    ("rgb_val_tpl", "rgb_value_template"),
    ("rgbw_cmd_t", "rgbw_command_topic"),
    ("rgbw_cmd_tpl", "rgbw_command_template"),
    ("rgbw_stat_t", "rgbw_state_topic"),
    ("rgbw_val_tpl", "rgbw_value_template"),
    ("rgbww_cmd_t", "rgbww_command_topic"),
    ("rgbww_cmd_tpl", "rgbww_command_template"),
    ("rgbww_stat_t", "rgbww_state_topic"),
    ("rgbww_val_tpl", "rgbww_value_template"),
    ("send_cmd_t", "send_command_topic"),
    ("send_if_off", "send_if_off"),
    ("set_fan_spd_t", "set_fan_speed_topic"),
    ("set_pos_t", "set_position_topic"),
    ("set_pos_tpl", "set_position_template"),
    ("spd_cmd_t", "speed_command_topic"),
    ("spd_rng_max", "speed_range_max"),
    ("spd_rng_min", "speed_range_min"),
    ("spd_stat_t", "speed_state_topic"),
    ("spd_val_tpl", "speed_value_template"),
    ("spds", "speeds"),
    ("src_type", "source_type"),
    ("stat_cla", "state_class"),
    ("stat_closing", "state_closing"),
    ("stat_clsd", "state_closed"),
    ("stat_jam", "state_jammed"),
    ("stat_locked", "state_locked"),
    ("stat_locking", "state_locking"),
    ("stat_off", "state_off"),
    ("stat_on", "state_on"),
    ("stat_open", "state_open"),
    ("stat_opening", "state_opening"),
    ("stat_stopped", "state_stopped"),
    ("stat_t", "state_topic"),
    ("stat_tpl", "state_template"),
    ("stat_unlocked", "state_unlocked"),
    ("stat_unlocking", "state_unlocking"),
    ("stat_val_tpl", "state_value_template"),
    ("step", "step"),
    ("stype", "subtype"),
    ("sug_dsp_prc", "suggested_display_precision"),
    ("sup_clrm", "supported_color_modes"),
    ("sup_dur", "support_duration"),
    ("sup_feat", "supported_features"),
    ("sup_vol", "support_volume_set"),
    ("swing_mode_cmd_t", "swing_mode_command_topic"),
    ("swing_mode_cmd_tpl", "swing_mode_command_template"),
    ("swing_mode_stat_t", "swing_mode_state_topic"),
    ("swing_mode_stat_tpl", "swing_mode_state_template"),
    ("t", "topic"),
    ("temp_cmd_t", "temperature_command_topic"),
    ("temp_cmd_tpl", "temperature_command_template"),
    ("temp_hi_cmd_t", "temperature_high_command_topic"),
    ("temp_hi_cmd_tpl", "temperature_high_command_template"),
    ("temp_hi_stat_t", "temperature_high_state_topic"),
    ("temp_hi_stat_tpl", "temperature_high_state_template"),
    ("temp_lo_cmd_t", "temperature_low_command_topic"),
    ("temp_lo_cmd_tpl", "temperature_low_command_template"),
    ("temp_lo_stat_t", "temperature_low_state_topic"),
    ("temp_lo_stat_tpl", "temperature_low_state_template"),
    ("temp_stat_t", "temperature_state_topic"),
    ("temp_stat_tpl", "temperature_state_template"),
    ("temp_unit", "temperature_unit"),
    ("tilt_clsd_val", "tilt_closed_value"),
    ("tilt_cmd_t", "tilt_command_topic"),
    ("tilt_cmd_tpl", "tilt_command_template"),
    ("tilt_inv_stat", "tilt_invert_state"),
    ("tilt_max", "tilt_max"),
    ("tilt_min", "tilt_min"),
    ("tilt_opnd_val", "tilt_opened_value"),
    ("tilt_opt", "tilt_optimistic"),
    ("tilt_status_t", "tilt_status_topic"),
    ("tilt_status_tpl", "tilt_status_template"),
    ("tit", "title"),
    ("trns", "transition"),
    ("uniq_id", "unique_id"),
    ("unit_of_meas", "unit_of_measurement"),
    ("url_t", "url_topic"),
    ("url_tpl", "url_template"),
    ("val_tpl", "value_template"),
    ("whit_cmd_t", "white_command_topic"),
    ("whit_scl", "white_scale"),
    ("whit_val_cmd_t", "white_value_command_topic"),
    ("whit_val_scl", "white_value_scale"),
    ("whit_val_stat_t", "white_value_state_topic"),
    ("whit_val_tpl", "white_value_template"),
    ("xy_cmd_t", "xy_command_topic"),
    ("xy_cmd_tpl", "xy_command_template"),
    ("xy_stat_t", "xy_state_topic"),
    ("xy_val_tpl", "xy_value_template"),
];

/// Abbreviations inside the `device` block.
pub const DEVICE_ABBREVIATIONS: &[(&str, &str)] = &[
    ("cns", "connections"),
    ("cu", "configuration_url"),
    ("hw", "hw_version"),
    ("ids", "identifiers"),
    ("mdl", "model"),
    ("mdl_id", "model_id"),
    ("mf", "manufacturer"),
    ("name", "name"),
    ("sa", "suggested_area"),
    ("sn", "serial_number"),
    ("sw", "sw_version"),
];

/// Abbreviations inside the `origin` block.
pub const ORIGIN_ABBREVIATIONS: &[(&str, &str)] = &[("name", "name"), ("sw", "sw_version"), ("url", "support_url")];

/// Options a device-based config shares with every component that does not set them itself.
/// Home Assistant's list, plus `~` (so a base topic at the root serves every component).
pub const SHARED_OPTIONS: &[&str] = &[
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "payload_available",
    "payload_not_available",
    "command_topic",
    "state_topic",
    "qos",
    "encoding",
    "~",
];

/// Where a discovery config was published: `<prefix>/<component>/[<node_id>/]<object_id>/config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryTopic {
    /// The component (`sensor`, `light`, `device` for device-based discovery).
    pub component: String,
    /// The node id, when the topic has four parts.
    pub node_id: Option<String>,
    /// The object id.
    pub object_id: String,
}

impl DiscoveryTopic {
    /// Reads a topic under `prefix`; `None` when it is no discovery topic. Ids are letters,
    /// digits, `_` and `-`, as Home Assistant requires.
    pub fn parse(prefix: &str, topic: &str) -> Option<DiscoveryTopic> {
        let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?.strip_suffix("/config")?;
        let parts: Vec<&str> = rest.split('/').collect();
        let id_ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let component_ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_');
        match parts.as_slice() {
            [c, o] if component_ok(c) && id_ok(o) => {
                Some(DiscoveryTopic { component: (*c).to_owned(), node_id: None, object_id: (*o).to_owned() })
            }
            [c, n, o] if component_ok(c) && id_ok(n) && id_ok(o) => Some(DiscoveryTopic {
                component: (*c).to_owned(),
                node_id: Some((*n).to_owned()),
                object_id: (*o).to_owned(),
            }),
            _ => None,
        }
    }

    /// The id Home Assistant gives the discovered thing: `[<node_id> ]<object_id>`, written here
    /// with `/`: `<component>/[<node_id>/]<object_id>`.
    pub fn key(&self) -> String {
        match &self.node_id {
            Some(n) => format!("{}/{}/{}", self.component, n, self.object_id),
            None => format!("{}/{}", self.component, self.object_id),
        }
    }
}

fn expand_keys(map: &mut Map<String, Json>, table: &[(&str, &str)]) {
    for (short, long) in table {
        if short == long {
            continue;
        }
        if let Some(v) = map.remove(*short) {
            // The long form wins when both are given.
            map.entry((*long).to_owned()).or_insert(v);
        }
    }
}

fn expand_availability(map: &mut Map<String, Json>) {
    match map.get_mut("availability") {
        Some(Json::Array(list)) => {
            for entry in list.iter_mut() {
                if let Json::Object(e) = entry {
                    expand_keys(e, ABBREVIATIONS);
                }
            }
        }
        Some(Json::Object(e)) => expand_keys(e, ABBREVIATIONS),
        _ => {}
    }
}

/// Expands the abbreviations of a single-component payload, in place: its own keys, its
/// availability entries, `device` and `origin`.
pub fn expand(map: &mut Map<String, Json>) {
    expand_keys(map, ABBREVIATIONS);
    expand_availability(map);
    if let Some(Json::Object(d)) = map.get_mut("device") {
        expand_keys(d, DEVICE_ABBREVIATIONS);
    }
    if let Some(Json::Object(o)) = map.get_mut("origin") {
        expand_keys(o, ORIGIN_ABBREVIATIONS);
    }
}

/// Replaces `~` at the start or the end of every `…topic` value (and availability entries'
/// `topic`) with the payload's `~`, which is removed.
pub fn apply_topic_base(map: &mut Map<String, Json>) {
    let Some(base) = map.remove("~") else { return };
    let Some(base) = base.as_str().map(str::to_owned) else { return };
    let sub = |v: &mut Json| {
        if let Json::String(s) = v {
            if let Some(rest) = s.strip_prefix('~') {
                *s = format!("{base}{rest}");
            }
            if let Some(rest) = s.strip_suffix('~') {
                *s = format!("{rest}{base}");
            }
        }
    };
    for (k, v) in map.iter_mut() {
        if k.ends_with("topic") {
            sub(v);
        }
    }
    match map.get_mut("availability") {
        Some(Json::Array(list)) => {
            for entry in list.iter_mut() {
                if let Some(t) = entry.as_object_mut().and_then(|e| e.get_mut("topic")) {
                    sub(t);
                }
            }
        }
        Some(Json::Object(e)) => {
            if let Some(t) = e.get_mut("topic") {
                sub(t);
            }
        }
        _ => {}
    }
}

/// A single-component payload read from a message: expanded, with `~` applied.
pub fn normalize(mut map: Map<String, Json>) -> EntityConfig {
    expand(&mut map);
    apply_topic_base(&mut map);
    EntityConfig(map)
}

/// One component of a device-based config (`<prefix>/device/<id>/config`).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceComponent {
    /// Its id in `components`.
    pub id: String,
    /// Its platform (`sensor`, `light` …).
    pub platform: String,
    /// Its config with the device, the origin and the shared options merged in; `None` when
    /// the component is listed with its platform only (which removes it).
    pub config: Option<EntityConfig>,
}

/// Splits a device-based config into its components, each with the device block, the origin and
/// the shared options it does not override.
pub fn split_device_config(mut map: Map<String, Json>) -> Result<Vec<DeviceComponent>, String> {
    expand(&mut map);
    let Some(Json::Object(components)) = map.remove("components") else {
        return Err("a device-based config needs `components` (`cmps`), an object of component configs".into());
    };
    let device = match map.get("device") {
        Some(Json::Object(d)) => d.clone(),
        _ => return Err("a device-based config needs a `device` (`dev`) object".into()),
    };
    let origin = map.get("origin").cloned();
    let mut out = Vec::new();
    for (id, c) in components {
        let Json::Object(mut c) = c else {
            return Err(format!("component `{id}` is not an object"));
        };
        expand_keys(&mut c, ABBREVIATIONS);
        expand_availability(&mut c);
        let Some(platform) = c.remove("platform").and_then(|p| p.as_str().map(str::to_owned)) else {
            return Err(format!("component `{id}` needs a `platform` (`p`)"));
        };
        if c.is_empty() {
            out.push(DeviceComponent { id, platform, config: None });
            continue;
        }
        for option in SHARED_OPTIONS {
            if let Some(v) = map.get(*option)
                && !c.contains_key(*option)
            {
                c.insert((*option).to_owned(), v.clone());
            }
        }
        c.insert("device".into(), Json::Object(device.clone()));
        if let Some(o) = &origin {
            c.insert("origin".into(), o.clone());
        }
        apply_topic_base(&mut c);
        out.push(DeviceComponent { id, platform, config: Some(EntityConfig(c)) });
    }
    Ok(out)
}

/// An entity's config, expanded, with typed access.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EntityConfig(pub Map<String, Json>);

/// A payload value as Home Assistant's schema reads it: text as it is, numbers in their decimal
/// form, booleans as Python prints them (`True`).
pub fn payload_text(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(true) => Some("True".into()),
        Json::Bool(false) => Some("False".into()),
        _ => None,
    }
}

impl EntityConfig {
    /// The raw value of a key.
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// A text value (non-empty).
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Json::as_str).filter(|s| !s.is_empty())
    }

    /// A topic: non-empty text.
    pub fn topic(&self, key: &str) -> Option<String> {
        self.str(key).map(str::to_owned)
    }

    /// A payload option (text, number or boolean, as Home Assistant reads it), or `default`.
    pub fn payload(&self, key: &str, default: &str) -> String {
        self.get(key).and_then(payload_text).unwrap_or_else(|| default.to_owned())
    }

    /// A payload option that has no default.
    pub fn payload_opt(&self, key: &str) -> Option<String> {
        self.get(key).and_then(payload_text)
    }

    /// A number (also from text).
    pub fn f64(&self, key: &str) -> Option<f64> {
        match self.get(key)? {
            Json::Number(n) => n.as_f64(),
            Json::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|v: &f64| v.is_finite())
    }

    /// A boolean (also from `"true"`).
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Json::Bool(b) => Some(*b),
            Json::String(s) => match s.to_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Some(true),
                "false" | "no" | "off" | "0" => Some(false),
                _ => None,
            },
            Json::Number(n) => n.as_f64().map(|v| v != 0.0),
            _ => None,
        }
    }

    /// A list of texts (payload-like items; a single text is a list of one).
    pub fn list(&self, key: &str) -> Vec<String> {
        match self.get(key) {
            Some(Json::Array(items)) => items.iter().filter_map(payload_text).collect(),
            Some(v) => payload_text(v).into_iter().collect(),
            None => Vec::new(),
        }
    }

    /// A template option, parsed; `None` when absent.
    pub fn template(&self, key: &str) -> Option<Result<Template, TemplateError>> {
        self.str(key).map(Template::parse)
    }

    /// QoS 0, 1 or 2 (default 0).
    pub fn qos(&self) -> u8 {
        self.f64("qos").map_or(0, |q| q.clamp(0.0, 2.0) as u8)
    }

    /// Whether commands are published retained (default no).
    pub fn retain(&self) -> bool {
        self.bool("retain").unwrap_or(false)
    }

    /// The device block.
    pub fn device(&self) -> Option<DeviceInfo> {
        match self.get("device") {
            Some(Json::Object(d)) => Some(DeviceInfo::read(d)),
            _ => None,
        }
    }

    /// The origin block's name.
    pub fn origin_name(&self) -> Option<&str> {
        self.get("origin").and_then(|o| o.get("name")).and_then(Json::as_str)
    }

    /// The availability configuration.
    pub fn availability(&self) -> AvailabilityConfig {
        let mut entries = Vec::new();
        if let Some(topic) = self.topic("availability_topic") {
            entries.push(AvailabilityEntry {
                topic,
                payload_available: self.payload("payload_available", "online"),
                payload_not_available: self.payload("payload_not_available", "offline"),
                template: self.template("availability_template"),
            });
        }
        let list: Vec<&Json> = match self.get("availability") {
            Some(Json::Array(items)) => items.iter().collect(),
            Some(o @ Json::Object(_)) => vec![o],
            _ => Vec::new(),
        };
        for item in list {
            let Json::Object(e) = item else { continue };
            let e = EntityConfig(e.clone());
            let Some(topic) = e.topic("topic") else { continue };
            entries.push(AvailabilityEntry {
                topic,
                payload_available: e.payload("payload_available", "online"),
                payload_not_available: e.payload("payload_not_available", "offline"),
                template: e.template("value_template"),
            });
        }
        let mode = match self.str("availability_mode") {
            Some("all") => AvailabilityMode::All,
            Some("any") => AvailabilityMode::Any,
            _ => AvailabilityMode::Latest,
        };
        AvailabilityConfig { entries, mode }
    }
}

/// The `device` block of a config.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeviceInfo {
    /// `identifiers` (a text or a list).
    pub identifiers: Vec<String>,
    /// `connections`: `[type, value]` pairs (`["mac", "aa:bb:…"]`).
    pub connections: Vec<(String, String)>,
    /// `name`.
    pub name: Option<String>,
    /// `manufacturer`.
    pub manufacturer: Option<String>,
    /// `model`.
    pub model: Option<String>,
    /// `model_id`.
    pub model_id: Option<String>,
    /// `sw_version`.
    pub sw_version: Option<String>,
    /// `hw_version`.
    pub hw_version: Option<String>,
    /// `suggested_area`.
    pub suggested_area: Option<String>,
    /// `via_device`: an identifier of the device this one hangs from.
    pub via_device: Option<String>,
    /// `configuration_url`.
    pub configuration_url: Option<String>,
}

impl DeviceInfo {
    fn read(d: &Map<String, Json>) -> DeviceInfo {
        let text = |k: &str| d.get(k).and_then(payload_text).filter(|s| !s.is_empty());
        let identifiers = match d.get("identifiers") {
            Some(Json::Array(a)) => a.iter().filter_map(payload_text).filter(|s| !s.is_empty()).collect(),
            Some(v) => payload_text(v).filter(|s| !s.is_empty()).into_iter().collect(),
            None => Vec::new(),
        };
        let connections = match d.get("connections") {
            Some(Json::Array(a)) => a
                .iter()
                .filter_map(|pair| match pair.as_array().map(Vec::as_slice) {
                    Some([t, v]) => Some((payload_text(t)?, payload_text(v)?)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        DeviceInfo {
            identifiers,
            connections,
            name: text("name"),
            manufacturer: text("manufacturer"),
            model: text("model"),
            model_id: text("model_id"),
            sw_version: text("sw_version"),
            hw_version: text("hw_version"),
            suggested_area: text("suggested_area"),
            via_device: text("via_device"),
            configuration_url: text("configuration_url"),
        }
    }

    /// Every identity of the device: its identifiers, then its connections as `<type>_<value>`.
    pub fn identities(&self) -> Vec<String> {
        self.identifiers.iter().cloned().chain(self.connections.iter().map(|(t, v)| format!("{t}_{v}"))).collect()
    }
}

/// One availability source.
#[derive(Debug, Clone, PartialEq)]
pub struct AvailabilityEntry {
    /// The topic.
    pub topic: String,
    /// The payload meaning available (default `online`).
    pub payload_available: String,
    /// The payload meaning not available (default `offline`).
    pub payload_not_available: String,
    /// A template applied to the payload first.
    pub template: Option<Result<Template, TemplateError>>,
}

/// How several availability sources combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AvailabilityMode {
    /// Available only when every source says so.
    All,
    /// Available when any source says so.
    Any,
    /// The latest message on any source decides (the default).
    #[default]
    Latest,
}

/// An entity's availability sources and how they combine.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AvailabilityConfig {
    /// The sources; none means always available.
    pub entries: Vec<AvailabilityEntry>,
    /// How they combine.
    pub mode: AvailabilityMode,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Json) -> Map<String, Json> {
        match v {
            Json::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn abbreviation_tables_have_no_duplicates() {
        for table in [ABBREVIATIONS, DEVICE_ABBREVIATIONS, ORIGIN_ABBREVIATIONS] {
            let mut shorts: Vec<&str> = table.iter().map(|(s, _)| *s).collect();
            shorts.sort_unstable();
            let before = shorts.len();
            shorts.dedup();
            assert_eq!(before, shorts.len());
        }
    }

    #[test]
    fn topics_parse_as_home_assistant_reads_them() {
        let t = DiscoveryTopic::parse("homeassistant", "homeassistant/sensor/0x00158d/temperature/config").unwrap();
        assert_eq!(t.component, "sensor");
        assert_eq!(t.node_id.as_deref(), Some("0x00158d"));
        assert_eq!(t.object_id, "temperature");
        assert_eq!(t.key(), "sensor/0x00158d/temperature");
        let t = DiscoveryTopic::parse("homeassistant", "homeassistant/switch/35EBF6_RL_1/config").unwrap();
        assert_eq!(t.key(), "switch/35EBF6_RL_1");
        for bad in [
            "homeassistant/sensor/config",
            "homeassistant/sensor/a b/config",
            "homeassistant/sensor/a/b/c/config",
            "homeassistant/sensor/x/state",
            "other/sensor/x/config",
            "homeassistant/status",
        ] {
            assert_eq!(DiscoveryTopic::parse("homeassistant", bad), None, "{bad}");
        }
    }

    #[test]
    fn abbreviations_and_base_topic_expand() {
        let c = normalize(obj(json!({
            "~": "tasmota/kitchen/",
            "name": "Relay",
            "stat_t": "~tele/STATE",
            "cmd_t": "~cmnd/POWER",
            "avty_t": "~tele/LWT",
            "pl_avail": "Online",
            "pl_not_avail": "Offline",
            "json_attr_t": "attrs/~",
            "val_tpl": "{{value_json.POWER}}",
            "uniq_id": "X_RL_1",
            "dev": {"ids": ["X"], "mf": "Tasmota", "mdl": "Sonoff", "sw": "13.0", "cns": [["mac", "AA:BB"]],
                    "mdl_id": "S1", "hw": "2", "sa": "Kitchen", "cu": "http://x", "via_device": "bridge"},
            "o": {"name": "Tasmota", "sw": "13.0", "url": "https://tasmota.github.io"},
            "avty": [{"t": "~avail", "pl_avail": "up", "val_tpl": "{{ value }}"}],
        })));
        assert_eq!(c.str("state_topic"), Some("tasmota/kitchen/tele/STATE"));
        assert_eq!(c.str("command_topic"), Some("tasmota/kitchen/cmnd/POWER"));
        assert_eq!(c.str("json_attributes_topic"), Some("attrs/tasmota/kitchen/"));
        assert_eq!(c.str("unique_id"), Some("X_RL_1"));
        assert_eq!(c.str("value_template"), Some("{{value_json.POWER}}"));
        assert!(c.get("~").is_none());
        let d = c.device().unwrap();
        assert_eq!(d.identifiers, ["X"]);
        assert_eq!(d.connections, [("mac".to_owned(), "AA:BB".to_owned())]);
        assert_eq!(d.manufacturer.as_deref(), Some("Tasmota"));
        assert_eq!(d.model.as_deref(), Some("Sonoff"));
        assert_eq!(d.model_id.as_deref(), Some("S1"));
        assert_eq!(d.sw_version.as_deref(), Some("13.0"));
        assert_eq!(d.hw_version.as_deref(), Some("2"));
        assert_eq!(d.suggested_area.as_deref(), Some("Kitchen"));
        assert_eq!(d.configuration_url.as_deref(), Some("http://x"));
        assert_eq!(d.via_device.as_deref(), Some("bridge"));
        assert_eq!(d.identities(), ["X", "mac_AA:BB"]);
        assert_eq!(c.origin_name(), Some("Tasmota"));
        assert_eq!(c.get("origin").unwrap()["support_url"], "https://tasmota.github.io");
        let a = c.availability();
        assert_eq!(a.mode, AvailabilityMode::Latest);
        assert_eq!(a.entries.len(), 2);
        assert_eq!(a.entries[0].topic, "tasmota/kitchen/tele/LWT");
        assert_eq!(a.entries[0].payload_available, "Online");
        assert_eq!(a.entries[0].payload_not_available, "Offline");
        assert_eq!(a.entries[1].topic, "tasmota/kitchen/avail");
        assert_eq!(a.entries[1].payload_available, "up");
        assert_eq!(a.entries[1].payload_not_available, "offline");
        assert!(matches!(a.entries[1].template, Some(Ok(_))));
    }

    #[test]
    fn availability_modes_and_a_single_entry() {
        let c = normalize(obj(json!({"availability": {"topic": "a"}, "availability_mode": "all"})));
        let a = c.availability();
        assert_eq!(a.mode, AvailabilityMode::All);
        assert_eq!(a.entries[0].payload_available, "online");
        let c = normalize(obj(json!({"avty_mode": "any", "avty": [{"topic": "a"}, {"t": "b"}, {"x": 1}, 5]})));
        assert_eq!(c.availability().mode, AvailabilityMode::Any);
        assert_eq!(c.availability().entries.len(), 2);
        assert!(normalize(Map::new()).availability().entries.is_empty());
    }

    #[test]
    fn payload_options_read_as_home_assistant_reads_them() {
        let c = normalize(obj(json!({"payload_on": true, "payload_off": 0, "pl_prs": "GO", "options": ["a", 1]})));
        assert_eq!(c.payload("payload_on", "ON"), "True");
        assert_eq!(c.payload("payload_off", "OFF"), "0");
        assert_eq!(c.payload("payload_press", "PRESS"), "GO");
        assert_eq!(c.payload("state_on", "ON"), "ON");
        assert_eq!(c.list("options"), ["a", "1"]);
    }

    #[test]
    fn device_based_configs_share_options_with_their_components() {
        let comps = split_device_config(obj(json!({
            "dev": {"ids": "ea334450945afc", "name": "Kitchen", "mf": "Bla electronics", "mdl": "xya"},
            "o": {"name": "bla2mqtt", "sw": "2.1"},
            "cmps": {
                "t": {"p": "sensor", "dev_cla": "temperature", "unit_of_meas": "°C",
                      "val_tpl": "{{ value_json.temperature }}", "uniq_id": "temp01ae_t"},
                "h": {"p": "sensor", "device_class": "humidity", "state_topic": "other/state", "unique_id": "temp01ae_h"},
                "gone": {"p": "sensor"}
            },
            "stat_t": "sensorBedroom/state",
            "qos": 2
        })))
        .unwrap();
        assert_eq!(comps.len(), 3);
        let t = comps.iter().find(|c| c.id == "t").unwrap();
        assert_eq!(t.platform, "sensor");
        let tc = t.config.as_ref().unwrap();
        assert_eq!(tc.str("state_topic"), Some("sensorBedroom/state"));
        assert_eq!(tc.qos(), 2);
        assert_eq!(tc.str("device_class"), Some("temperature"));
        assert_eq!(tc.device().unwrap().identifiers, ["ea334450945afc"]);
        assert_eq!(tc.origin_name(), Some("bla2mqtt"));
        let h = comps.iter().find(|c| c.id == "h").unwrap().config.as_ref().unwrap();
        assert_eq!(h.str("state_topic"), Some("other/state"));
        assert_eq!(comps.iter().find(|c| c.id == "gone").unwrap().config, None);
        assert!(split_device_config(obj(json!({"dev": {"ids": "x"}}))).is_err());
        assert!(split_device_config(obj(json!({"cmps": {}}))).is_err());
        assert!(split_device_config(obj(json!({"dev": {"ids": "x"}, "cmps": {"a": {"name": "x"}}}))).is_err());
    }
}
