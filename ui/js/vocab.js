// Closed vocabularies of the API whose values are shown translated through `tv(group, value)`.
// `node ui/check-i18n.mjs` checks that every `group.value` key exists in every dictionary. A value
// not listed here (from a newer hub) is shown as it is.

export const VOCAB = {
  cap: ["on_off", "brightness", "color_temperature", "color", "effect", "temperature", "humidity", "pressure",
    "illuminance", "battery", "battery_low", "contact", "occupancy", "water_leak", "smoke", "gas",
    "carbon_monoxide", "tamper", "vibration", "power", "energy", "voltage", "current", "co2", "pm25", "pm10",
    "voc", "formaldehyde", "moisture", "lock", "cover_position", "cover_state", "tilt", "hvac_mode",
    "hvac_action", "setpoint", "fan_mode", "fan_speed", "action", "signal_strength", "link_quality",
    "duration", "other"],
  avail: ["online", "offline", "unknown"],
  adapter_state: ["starting", "running", "degraded", "unavailable", "stopped", "failed"],
  // A plugin's state (GET /api/v1/plugins).
  plugin_state: ["disabled", "starting", "running", "restarting", "quarantined", "refused", "failed", "stopped"],
  power_source: ["mains", "battery", "dc", "unknown"],
  category: ["primary", "config", "diagnostic"],
  role: ["admin", "member"],
  origin: ["device", "user", "automation", "cloud", "system"],
  history_kind: ["state", "event"],
  trigger: ["state", "event", "availability", "time", "interval", "sun", "start", "mqtt", "webhook", "manual", "catch_up"],
  condition: ["state", "time", "sun", "trigger", "and", "or", "not"],
  action: ["set", "scene", "delay", "wait", "if", "choose", "repeat", "parallel", "mqtt", "webhook", "notify",
    "enable", "disable", "stop"],
  ending: ["finished", "conditions_failed", "ignored", "dropped", "restarted", "stopped", "timeout", "loop",
    "cancelled", "error"],
  mode: ["single", "restart", "queued", "parallel"],
  weekday: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
  sun_event: ["sunrise", "sunset", "dawn", "dusk"],
  value_type: ["bool", "number", "enum", "text", "color", "list", "object"],
  // The audit log's actions (hub/src/audit.rs ACTIONS; a test there checks both catalogs).
  audit: ["adapter_action", "area_create", "area_remove", "area_update", "auth_lockout", "auth_login", "auth_login_failed", "auth_logout", "auth_onboarding", "auth_password", "auth_password_failed", "automation_create", "automation_delete", "automation_disable", "automation_enable", "automation_import", "automation_rollback", "automation_trigger", "automation_update", "backup", "backup_restore", "device_remove", "device_update", "inbox_accept", "inbox_forget", "inbox_ignore", "plugin_config", "plugin_disable", "plugin_enable", "scene_create", "scene_delete", "scene_update", "secret_delete", "secret_set", "token_create", "token_revoke", "user_add", "user_change", "user_remove"],
  scope: ["account", "address"],
  transport: ["wifi", "ble", "zigbee", "other"],
  // Codes of adapters' and devices' reasons (the model's `code` beside `reason`).
  reason: ["no_broker", "waiting_for_bridge", "bridge_offline", "device_offline", "broker_unreachable", "disabled", "failed", "adapter_stopped", "adapter_failed", "no_advertisement", "no_bluetooth", "replay_finished", "unreachable", "no_network"],
  token_kind: ["api", "session"],
  // Enum values of well-known capabilities: `val.<capability>.<value>`.
  "val.hvac_mode": ["off", "heat", "cool", "auto", "dry", "fan_only", "heat_cool", "emergency_heating", "sleep"],
  "val.hvac_action": ["idle", "heat", "cool", "off", "fan", "drying", "preheating"],
  "val.cover_state": ["open", "close", "stop", "opening", "closing", "stopped"],
  "val.lock": ["locked", "unlocked", "locking", "unlocking", "jammed"],
  "val.fan_mode": ["off", "low", "medium", "high", "auto", "on", "smart"],
  "val.action": ["single", "double", "triple", "quadruple", "hold", "release", "long", "short", "many", "shake",
    "tap", "slide", "flip90", "flip180", "fall", "rotate_left", "rotate_right", "on", "off", "toggle",
    "brightness_up", "brightness_down", "brightness_stop"],
};

// API error codes with a translated text (`err.<code>`); others show the hub's message.
VOCAB.err = ["invalid_secret", "network", "timeout", "forbidden", "unauthorized", "login_failed", "too_many_attempts", "already_onboarded",
  "exists", "invalid_account", "invalid_definition", "invalid_body", "invalid_params", "invalid_name", "not_found",
  "adapter_not_running", "adapter_busy", "adapter_timeout", "adapter_unavailable", "adapter_error", "state_unknown",
  "shutting_down", "storage_error", "wrong_password", "weak_password", "body_too_large", "method_not_allowed",
  "cross_site", "last_admin"];
