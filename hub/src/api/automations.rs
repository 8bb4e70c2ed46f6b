//! Automations, scenes and webhooks under `/api/v1`: CRUD, enable/disable, trigger, dry run,
//! traces, versions (with differences and rollback), YAML import/export, scene capture and apply.
//!
//! Bodies are read with the automation crate's text reader (JSON is YAML's flow form), so a bad
//! body says the line, column and path of the field, like a bad import does. A definition is
//! validated against the home as it is now; every fault is returned with its path.

use std::sync::Arc;

use hearth_automations::model::{Automation, Scene};
use hearth_automations::say::Say;
use hearth_automations::validate::{Catalog, Fault, validate, validate_scene};
use hearth_automations::{diff, text};
use hearth_sdk::{CommandRequest, DeviceId, Origin, Timestamp, Value};
use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;

use super::{ApiError, App, Reply, Req};
use crate::automations::Stopped;
use crate::store::automations as db;

impl From<Stopped> for ApiError {
    fn from(e: Stopped) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", e.to_string())
    }
}

impl From<hearth_automations::engine::EngineError> for ApiError {
    fn from(e: hearth_automations::engine::EngineError) -> Self {
        ApiError::not_found(e.to_string())
    }
}

fn text_error(what: &str, e: &text::TextError) -> ApiError {
    let (line, column) = e.position();
    let path = match e {
        text::TextError::Invalid { path, .. } => path.clone(),
        text::TextError::Syntax { .. } => String::new(),
    };
    let mut err = ApiError::bad_request("invalid_body", format!("the {what} cannot be read: {e}"));
    err.details = json!({"line": line, "column": column, "path": path});
    err
}

fn faults_error(what: &str, faults: &[Fault]) -> ApiError {
    let list: Vec<String> = faults.iter().map(ToString::to_string).collect();
    let mut err = ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_definition",
        format!("the {what} is not valid: {}", list.join("; ")),
    );
    err.details = json!({ "faults": faults });
    err
}

fn param(req: &Req, i: usize) -> String {
    req.params.get(i).cloned().unwrap_or_default()
}

fn body_text(req: &Req) -> Result<&str, ApiError> {
    if req.body.is_empty() {
        return Err(ApiError::bad_request("invalid_body", "the request needs a body"));
    }
    std::str::from_utf8(&req.body).map_err(|_| ApiError::bad_request("invalid_body", "the body is not UTF-8 text"))
}

fn now_ms() -> i64 {
    Timestamp::now().as_millis()
}

/// What a definition may refer to, as things are now.
struct Home {
    devices: Vec<hearth_sdk::Device>,
    areas: Vec<hearth_sdk::Area>,
    scenes: Vec<String>,
    automations: Vec<String>,
    location: bool,
}

impl Home {
    async fn load(app: &App) -> Result<Home, ApiError> {
        let snapshot = app.core.snapshot().await?;
        let (scenes, automations) = app
            .readers
            .with(|c| {
                let scenes = db::load_scenes(c)?.into_iter().map(|s| s.id).collect();
                let automations = db::load_automations(c)?.into_iter().map(|a| a.id).collect();
                Ok((scenes, automations))
            })
            .await?;
        Ok(Home { devices: snapshot.devices, areas: snapshot.areas, scenes, automations, location: app.location })
    }

    fn catalog(&self) -> Catalog<'_> {
        Catalog {
            devices: &self.devices,
            areas: &self.areas,
            scenes: &self.scenes,
            automations: &self.automations,
            location: self.location,
        }
    }
}

/// Reads and validates an automation body; `id` is the one in the path, when there is one.
async fn checked(app: &App, req: &Req, id: Option<&str>) -> Result<Automation, ApiError> {
    let a = text::automation_from_yaml(body_text(req)?).map_err(|e| text_error("automation", &e))?;
    if let Some(id) = id
        && a.id != id
    {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!(
                "the body's id `{}` is not the path's `{id}`; to rename, create the new one and delete the old",
                a.id
            ),
        ));
    }
    let home = Home::load(app).await?;
    let faults = validate(&a, home.catalog());
    if !faults.is_empty() {
        return Err(faults_error("automation", &faults));
    }
    Ok(a)
}

async fn save(app: &App, a: &Automation, by: String, note: Option<String>) -> Result<u32, ApiError> {
    let definition = serde_json::to_value(a)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let id = a.id.clone();
    let enabled = a.enabled;
    let now = now_ms();
    let version =
        app.writer.exec(move |c| db::save_automation(c, &id, &definition, enabled, &by, note.as_deref(), now)).await?;
    app.automations.upsert(a.clone(), version).await?;
    Ok(version)
}

fn stored_json(a: &db::StoredAutomation) -> serde_json::Value {
    let mut def = a.definition.clone();
    if let Some(o) = def.as_object_mut() {
        o.insert("enabled".into(), json!(a.enabled));
    }
    json!({"automation": def, "version": a.version, "enabled": a.enabled,
           "created_at": Timestamp::from_millis(a.created_at), "updated_at": Timestamp::from_millis(a.updated_at)})
}

async fn stored(app: &App, id: &str) -> Result<db::StoredAutomation, ApiError> {
    let key = id.to_owned();
    app.readers
        .with(move |c| db::automation(c, &key))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no automation `{id}`")))
}

pub(super) async fn list(app: Arc<App>, _: Req) -> Result<Reply, ApiError> {
    let all = app
        .readers
        .with(|c| {
            let mut out = Vec::new();
            for a in db::load_automations(c)? {
                let last = db::traces(c, &a.id, 1)?.into_iter().next().map(|t| t.record);
                out.push((a, last));
            }
            Ok(out)
        })
        .await?;
    let runs = app.automations.runs().await?;
    let list: Vec<serde_json::Value> = all
        .iter()
        .map(|(a, last)| {
            let mut v = stored_json(a);
            v["running"] = json!(runs.iter().filter(|r| r.automation == a.id).count());
            v["last_run"] = last
                .as_ref()
                .map(|t| json!({"run": t["run"], "started_at": t["started_at"], "ending": t["ending"], "trigger": t["trigger"]["description"]}))
                .unwrap_or(serde_json::Value::Null);
            v
        })
        .collect();
    Reply::json(&list)
}

pub(super) async fn create(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let a = checked(&app, &req, None).await?;
    let id = a.id.clone();
    if app.readers.with(move |c| db::automation(c, &id)).await?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "exists",
            format!("an automation `{}` exists already: change it with PUT /api/v1/automations/{}", a.id, a.id),
        ));
    }
    let version = save(&app, &a, req.user()?.name.clone(), None).await?;
    Reply::status(StatusCode::CREATED, &json!({"automation": a, "version": version}))
}

pub(super) async fn get(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    Reply::json(&stored_json(&stored(&app, &param(&req, 0)).await?))
}

pub(super) async fn yaml(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let a = stored(&app, &param(&req, 0)).await?;
    let mut def: Automation = serde_json::from_value(a.definition).map_err(crate::store::StoreError::from)?;
    def.enabled = a.enabled;
    Ok(Reply::Text("application/yaml; charset=utf-8", text::automation_to_yaml(&def)))
}

pub(super) async fn replace(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = param(&req, 0);
    stored(&app, &id).await?;
    let a = checked(&app, &req, Some(&id)).await?;
    let version = save(&app, &a, req.user()?.name.clone(), None).await?;
    Reply::json(&json!({"automation": a, "version": version}))
}

pub(super) async fn delete(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = param(&req, 0);
    let key = id.clone();
    if !app.writer.exec(move |c| db::delete_automation(c, &key)).await? {
        return Err(ApiError::not_found(format!("no automation `{id}`")));
    }
    app.automations.remove(id).await?;
    Ok(Reply::Empty)
}

async fn set_enabled(app: Arc<App>, req: Req, enabled: bool) -> Result<Reply, ApiError> {
    let id = param(&req, 0);
    let key = id.clone();
    let now = now_ms();
    if !app.writer.exec(move |c| db::set_enabled(c, &key, enabled, now)).await? {
        return Err(ApiError::not_found(format!("no automation `{id}`")));
    }
    app.automations.set_enabled(id.clone(), enabled).await??;
    Reply::json(&json!({"id": id, "enabled": enabled}))
}

pub(super) async fn enable(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    set_enabled(app, req, true).await
}

pub(super) async fn disable(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    set_enabled(app, req, false).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    #[serde(default)]
    skip_conditions: bool,
}

pub(super) async fn trigger(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let body: TriggerBody = if req.body.is_empty() { TriggerBody::default() } else { req.json()? };
    let by = req.user()?.name.clone();
    let run = app.automations.trigger(param(&req, 0), by, body.skip_conditions).await??;
    Reply::status(StatusCode::ACCEPTED, &json!({"run": run}))
}

pub(super) async fn dry_run(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    Reply::json(&app.automations.dry_run(param(&req, 0)).await??)
}

pub(super) async fn traces(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = param(&req, 0);
    stored(&app, &id).await?;
    let list = app.readers.with(move |c| db::traces(c, &id, db::TRACES_KEPT)).await?;
    Reply::json(&list.into_iter().map(|t| t.record).collect::<Vec<_>>())
}

pub(super) async fn trace(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = param(&req, 0);
    let run: u64 = param(&req, 1).parse().map_err(|_| ApiError::not_found("a run id is a number"))?;
    let key = id.clone();
    match app.readers.with(move |c| db::trace(c, &key, run)).await? {
        Some(t) => Reply::json(&t.record),
        None => {
            Err(ApiError::not_found(format!("no trace of run {run} of `{id}` (the last {} are kept)", db::TRACES_KEPT)))
        }
    }
}

pub(super) async fn versions(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = param(&req, 0);
    stored(&app, &id).await?;
    let list = app.readers.with(move |c| db::versions(c, &id)).await?;
    Reply::json(&list
        .into_iter()
        .map(|v| json!({"version": v.version, "saved_at": Timestamp::from_millis(v.saved_at), "saved_by": v.saved_by, "note": v.note}))
        .collect::<Vec<_>>())
}

async fn version_text(app: &App, id: &str, v: u32) -> Result<(serde_json::Value, String), ApiError> {
    let key = id.to_owned();
    let (info, def) = app
        .readers
        .with(move |c| db::version(c, &key, v))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("automation `{id}` has no version {v}")))?;
    let a: Automation = serde_json::from_value(def.clone()).map_err(crate::store::StoreError::from)?;
    let info = json!({"version": info.version, "saved_at": Timestamp::from_millis(info.saved_at), "saved_by": info.saved_by, "note": info.note, "automation": def});
    Ok((info, text::automation_to_yaml(&a)))
}

fn version_param(req: &Req, i: usize) -> Result<u32, ApiError> {
    let raw = param(req, i);
    raw.parse().map_err(|_| ApiError::bad_request("invalid_version", format!("`{raw}` is not a version number")))
}

pub(super) async fn version(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = param(&req, 0);
    let (mut info, yaml) = version_text(&app, &id, version_param(&req, 1)?).await?;
    info["yaml"] = json!(yaml);
    Reply::json(&info)
}

/// `?from=2&to=3`; `to` is the current version and `from` the one before when absent.
pub(super) async fn difference(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = param(&req, 0);
    let current = stored(&app, &id).await?.version;
    let number = |key: &str, default: u32| -> Result<u32, ApiError> {
        match req.query.get(key) {
            Some(raw) => raw.parse().map_err(|_| {
                ApiError::bad_request("invalid_version", format!("`{key}={raw}` is not a version number"))
            }),
            None => Ok(default),
        }
    };
    let to = number("to", current)?;
    let from = number("from", to.saturating_sub(1).max(1))?;
    let (_, old) = version_text(&app, &id, from).await?;
    let (_, new) = version_text(&app, &id, to).await?;
    let lines = diff::diff_lines(&old, &new);
    let unified = diff::unified(&format!("{id} v{from}"), &format!("{id} v{to}"), &lines, 3);
    Reply::json(&json!({"from": from, "to": to, "lines": lines, "unified": unified}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    version: u32,
}

pub(super) async fn rollback(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = param(&req, 0);
    let body: RollbackBody = req.json()?;
    let (info, _) = version_text(&app, &id, body.version).await?;
    let mut a: Automation =
        serde_json::from_value(info["automation"].clone()).map_err(crate::store::StoreError::from)?;
    a.enabled = stored(&app, &id).await?.enabled;
    let home = Home::load(&app).await?;
    let faults = validate(&a, home.catalog());
    if !faults.is_empty() {
        return Err(faults_error(&format!("version {} (against the home as it is now)", body.version), &faults));
    }
    let note = format!("rollback to v{}", body.version);
    let version = save(&app, &a, req.user()?.name.clone(), Some(note)).await?;
    Reply::json(&json!({"automation": a, "version": version}))
}

/// Checks a definition without saving it: `{"valid": bool, "faults": [...]}`.
pub(super) async fn check(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let a = match text::automation_from_yaml(body_text(&req)?) {
        Ok(a) => a,
        Err(e) => {
            let (line, column) = e.position();
            return Reply::json(
                &json!({"valid": false, "faults": [{"path": "", "message": e.to_string(), "line": line, "column": column}]}),
            );
        }
    };
    let home = Home::load(&app).await?;
    let faults = validate(&a, home.catalog());
    Reply::json(&json!({ "valid": faults.is_empty(), "faults": faults }))
}

pub(super) async fn export(app: Arc<App>, _: Req) -> Result<Reply, ApiError> {
    let all = app.readers.with(db::load_automations).await?;
    let mut defs = Vec::new();
    for a in all {
        let mut def: Automation = serde_json::from_value(a.definition).map_err(crate::store::StoreError::from)?;
        def.enabled = a.enabled;
        defs.push(def);
    }
    Ok(Reply::Text("application/yaml; charset=utf-8", text::to_yaml_documents(&defs)))
}

/// Imports automations from YAML (one, a list, or `---` documents): all are checked first, and
/// either all are saved (new ones created, existing ones updated as a new version) or none.
pub(super) async fn import(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let list = text::automations_from_yaml(body_text(&req)?).map_err(|e| text_error("import", &e))?;
    if list.is_empty() {
        return Err(ApiError::bad_request("invalid_body", "the import holds no automation"));
    }
    let mut home = Home::load(&app).await?;
    home.automations.extend(list.iter().map(|a| a.id.clone()));
    let mut faults = Vec::new();
    for (i, a) in list.iter().enumerate() {
        if list[..i].iter().any(|b| b.id == a.id) {
            faults.push(Fault::new(format!("[{i}].id"), Say::TwiceInImport { id: a.id.clone() }));
        }
        faults
            .extend(validate(a, home.catalog()).into_iter().map(|f| Fault { path: format!("[{i}].{}", f.path), ..f }));
    }
    if !faults.is_empty() {
        return Err(faults_error("import", &faults));
    }
    let by = req.user()?.name.clone();
    let mut saved = Vec::new();
    for a in &list {
        let version = save(&app, a, by.clone(), Some("import".into())).await?;
        saved.push(json!({"id": a.id, "version": version}));
    }
    Reply::json(&json!({"saved": saved}))
}

pub(super) async fn runs(app: Arc<App>, _: Req) -> Result<Reply, ApiError> {
    Reply::json(&app.automations.runs().await?)
}

pub(super) async fn webhook(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = param(&req, 0);
    let body = if req.body.is_empty() { None } else { Some(String::from_utf8_lossy(&req.body).into_owned()) };
    match app.automations.webhook(id.clone(), body).await? {
        0 => Err(ApiError::not_found(format!("no enabled automation listens to webhook `{id}`"))),
        n => Reply::status(StatusCode::ACCEPTED, &json!({"reached": n})),
    }
}

// ----- scenes --------------------------------------------------------------------------------

/// A scene body: the scene itself, or `capture` to take the current state of devices.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SceneBody {
    #[serde(default)]
    id: Option<String>,
    name: String,
    #[serde(default)]
    devices: Option<std::collections::BTreeMap<DeviceId, std::collections::BTreeMap<String, Value>>>,
    /// Devices whose settable features' current values make the scene.
    #[serde(default)]
    capture: Vec<DeviceId>,
    /// Only these features when capturing (all settable ones when empty).
    #[serde(default)]
    features: Vec<String>,
}

async fn scene_from_body(app: &App, req: &Req, path_id: Option<&str>) -> Result<Scene, ApiError> {
    let body: SceneBody = req.json()?;
    let snapshot = app.core.snapshot().await?;
    let mut devices = body.devices.unwrap_or_default();
    for id in &body.capture {
        let d = snapshot
            .devices
            .iter()
            .find(|d| &d.id == id)
            .ok_or_else(|| ApiError::bad_request("invalid_body", format!("capture: no device `{id}`")))?;
        let values: std::collections::BTreeMap<String, Value> = d
            .features
            .iter()
            .filter(|f| f.access.set && (body.features.is_empty() || body.features.contains(&f.key)))
            .filter_map(|f| d.value(&f.key).map(|v| (f.key.clone(), v.clone())))
            .collect();
        if values.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_body",
                format!("capture: device `{id}` has no settable feature with a known value to capture"),
            ));
        }
        devices.insert(id.clone(), values);
    }
    let id = match (path_id, body.id) {
        (Some(p), Some(b)) if p != b => {
            return Err(ApiError::bad_request("invalid_body", format!("the body's id `{b}` is not the path's `{p}`")));
        }
        (Some(p), _) => p.to_owned(),
        (None, Some(b)) => b,
        (None, None) => scene_id(&body.name),
    };
    let scene = Scene { id, name: body.name, devices };
    let home = Home::load(app).await?;
    let faults = validate_scene(&scene, home.catalog());
    if !faults.is_empty() {
        return Err(faults_error("scene", &faults));
    }
    Ok(scene)
}

/// An id from a scene's name: lowercase ASCII letters, digits and `_` (`Küche` gives `k_che`;
/// give `id` for a better one).
fn scene_id(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_end_matches('_');
    if out.is_empty() { "scene".to_owned() } else { out.to_owned() }
}

async fn save_scene(app: &App, scene: &Scene) -> Result<bool, ApiError> {
    let definition = serde_json::to_value(scene)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let id = scene.id.clone();
    let now = now_ms();
    let created = app.writer.exec(move |c| db::save_scene(c, &id, &definition, now)).await?;
    app.automations.upsert_scene(scene.clone()).await?;
    Ok(created)
}

async fn stored_scene(app: &App, id: &str) -> Result<Scene, ApiError> {
    let key = id.to_owned();
    let s = app
        .readers
        .with(move |c| db::scene(c, &key))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no scene `{id}`")))?;
    Ok(serde_json::from_value(s.definition).map_err(crate::store::StoreError::from)?)
}

/// Whether the user may see and apply a scene: every device of it must be in its areas. (A
/// scene that reaches beyond them is as absent for a member as a device there.)
fn scene_visible(user: &crate::auth::Principal, devices: &[hearth_sdk::Device], scene: &Scene) -> bool {
    !user.limited()
        || scene.devices.keys().all(|id| devices.iter().any(|d| &d.id == id && user.sees(d.area.as_deref())))
}

async fn check_scene(app: &App, req: &Req, scene: &Scene) -> Result<(), ApiError> {
    let user = req.user()?;
    if user.limited() && !scene_visible(user, &app.core.snapshot().await?.devices, scene) {
        return Err(ApiError::not_found(format!("no scene `{}`", scene.id)));
    }
    Ok(())
}

pub(super) async fn scenes(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let all = app.readers.with(db::load_scenes).await?;
    let user = req.user()?;
    if !user.limited() {
        return Reply::json(&all.into_iter().map(|s| s.definition).collect::<Vec<_>>());
    }
    let devices = app.core.snapshot().await?.devices;
    let visible = |s: &db::StoredScene| {
        serde_json::from_value::<Scene>(s.definition.clone()).is_ok_and(|scene| scene_visible(user, &devices, &scene))
    };
    Reply::json(&all.into_iter().filter(|s| visible(s)).map(|s| s.definition).collect::<Vec<_>>())
}

pub(super) async fn create_scene(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let scene = scene_from_body(&app, &req, None).await?;
    let key = scene.id.clone();
    if app.readers.with(move |c| db::scene(c, &key)).await?.is_some() {
        return Err(ApiError::new(StatusCode::CONFLICT, "exists", format!("a scene `{}` exists already", scene.id)));
    }
    save_scene(&app, &scene).await?;
    Reply::status(StatusCode::CREATED, &scene)
}

pub(super) async fn scene(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let scene = stored_scene(&app, &param(&req, 0)).await?;
    check_scene(&app, &req, &scene).await?;
    Reply::json(&scene)
}

pub(super) async fn replace_scene(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = param(&req, 0);
    stored_scene(&app, &id).await?;
    let scene = scene_from_body(&app, &req, Some(&id)).await?;
    save_scene(&app, &scene).await?;
    Reply::json(&scene)
}

pub(super) async fn delete_scene(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = param(&req, 0);
    let key = id.clone();
    if !app.writer.exec(move |c| db::delete_scene(c, &key)).await? {
        return Err(ApiError::not_found(format!("no scene `{id}`")));
    }
    app.automations.remove_scene(id).await?;
    Ok(Reply::Empty)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApplyBody {
    #[serde(default)]
    transition: Option<f64>,
}

/// Applies a scene as one batch with one context: `{"context": ..., "results": [...]}`.
pub(super) async fn apply_scene(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let scene = stored_scene(&app, &param(&req, 0)).await?;
    check_scene(&app, &req, &scene).await?;
    let body: ApplyBody = if req.body.is_empty() { ApplyBody::default() } else { req.json()? };
    let commands: Vec<(DeviceId, CommandRequest)> = scene
        .devices
        .iter()
        .map(|(d, values)| {
            (d.clone(), CommandRequest { set: values.clone(), transition: body.transition, ..Default::default() })
        })
        .collect();
    let user = req.user()?.name.clone();
    let (context, results) = app.core.batch(commands.clone(), Origin::User { name: user }).await?;
    let results: Vec<serde_json::Value> = commands
        .iter()
        .zip(results)
        .map(|((d, _), r)| match r {
            Ok(()) => json!({"device": d, "ok": true}),
            Err(e) => json!({"device": d, "ok": false, "error": e.to_string()}),
        })
        .collect();
    Reply::json(&json!({"scene": scene.id, "context": context, "results": results}))
}

#[cfg(test)]
mod tests {
    use super::scene_id;

    #[test]
    fn scene_ids_from_names_are_valid_ids() {
        assert_eq!(scene_id("Reading"), "reading");
        assert_eq!(scene_id("Movie night!"), "movie_night");
        assert_eq!(scene_id("Küche hell"), "k_che_hell");
        assert_eq!(scene_id("☀"), "scene");
    }
}
