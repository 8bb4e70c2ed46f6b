//! Alibaba Cloud IoT Platform (物联网平台, formerly Link Platform) over Alink JSON: the pure
//! protocol logic of the hub as a gateway with sub-devices. No I/O here; the MQTT link that
//! uses it lives elsewhere. `hub/src/cloud/ALINK.md` documents the topics, payloads and the
//! capability → TSL table with an example of each message.
//!
//! - Signing: [`hmac_sha256`] over the `sha2` crate, [`hex`], [`sign_content`].
//! - Connecting: [`Credentials`], [`connect_params`], [`public_endpoint`], [`instance_endpoint`].
//! - Topics: the `*_topic` functions, and [`classify`] for what arrives.
//! - Payloads: [`property_post`], [`event_post`], [`topo_add`], [`combine_login`],
//!   [`batch_login`], [`parse_reply`], [`parse_property_set`], [`property_set_reply`],
//!   [`MessageIds`].
//! - The thing model (TSL): [`tsl_identifier`], [`tsl_identifiers`], [`to_tsl`], [`from_tsl`].
//!
//! Sources (Alibaba Cloud documentation): "Establish MQTT connections over TCP" (doc 73742) for
//! the connection signature and endpoint; "Device properties, events, and services" (doc 89301)
//! for property post/set and events; "Manage topological relationships" (doc 89299) for
//! `thing.topo.add`; "Connect or disconnect sub-devices" (doc 89300) for `combine/login` and
//! `combine/batch_login`; "Error codes for devices" (doc 120329) for reply codes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

use hearth_sdk::{Capability, Category, Color, Feature, Value, ValueType};
use serde::Serialize;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

/// The Alink protocol version every request carries.
pub const ALINK_VERSION: &str = "1.0";

/// The `signmethod` of the MQTT client id.
pub const CONNECT_SIGN_METHOD: &str = "hmacsha256";

/// The sign method named in `thing.topo.add` (`signmethod`) and the logins (`signMethod`).
/// The platform takes `hmacSha1`, `hmacSha256`, `hmacMd5` and `Sha256`, case-insensitively.
pub const SUB_SIGN_METHOD: &str = "hmacSha256";

/// The MQTT port of both endpoint forms (TLS is chosen by `securemode=2`, not by the port).
pub const MQTT_PORT: u16 = 1883;

/// The largest TSL identifier, in characters.
pub const MAX_IDENTIFIER_LEN: usize = 50;

// ---------------------------------------------------------------------------------------------
// Signing
// ---------------------------------------------------------------------------------------------

const SHA256_BLOCK: usize = 64;

/// HMAC-SHA256 (RFC 2104) of `message` keyed by `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; SHA256_BLOCK];
    if key.len() > SHA256_BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner);
    let mut mac = [0u8; 32];
    mac.copy_from_slice(&outer.finalize());
    mac
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// What Alink signs: the parameters other than the sign itself, its method and `cleanSession`,
/// sorted by name and written name then value with nothing between:
/// `clientId<clientId>deviceName<deviceName>productKey<productKey>timestamp<ms>`.
///
/// The MQTT password (doc 73742), the `sign` of each `thing.topo.add` entry (doc 89299: "sort
/// all parameters submitted to the server except sign and signMethod alphabetically and splice
/// names and values"; its BatchAddThingTopo example `clientId868575026974305deviceName
/// 868575026974305productKeya1PB5fp1234timestamp1646277090411` is this form) and the `sign` of a
/// sub-device login (doc 89300, which also leaves out `cleanSession`) all sign this string.
pub fn sign_content(client_id: &str, device_name: &str, product_key: &str, timestamp_ms: u64) -> String {
    format!("clientId{client_id}deviceName{device_name}productKey{product_key}timestamp{timestamp_ms}")
}

/// Lowercase hex HMAC-SHA256 of `content` keyed by `secret`.
fn sign(secret: &str, content: &str) -> String {
    hex(&hmac_sha256(secret.as_bytes(), content.as_bytes()))
}

// ---------------------------------------------------------------------------------------------
// Devices and connecting
// ---------------------------------------------------------------------------------------------

/// A device's certificate (the "three-tuple"): ProductKey, DeviceName and DeviceSecret. Its
/// `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The ProductKey of the device's product.
    pub product_key: String,
    /// The DeviceName, unique within the product.
    pub device_name: String,
    /// The DeviceSecret; signs, never travels.
    pub device_secret: String,
}

impl Credentials {
    /// Credentials from their three parts.
    pub fn new(product_key: &str, device_name: &str, device_secret: &str) -> Credentials {
        Credentials {
            product_key: product_key.to_owned(),
            device_name: device_name.to_owned(),
            device_secret: device_secret.to_owned(),
        }
    }

    /// The device these credentials are for.
    pub fn device(&self) -> DeviceRef {
        DeviceRef { product_key: self.product_key.clone(), device_name: self.device_name.clone() }
    }

    /// Whether these credentials are for the device `product_key`/`device_name`.
    pub fn is(&self, product_key: &str, device_name: &str) -> bool {
        self.product_key == product_key && self.device_name == device_name
    }

    /// The `clientId` a gateway gives a sub-device in `thing.topo.add` and the logins:
    /// `<productKey>.<deviceName>`, as Alibaba's Link SDK for C (4.x) does. The platform signs
    /// whatever the payload carries, so any client id works as long as both agree.
    pub fn sub_client_id(&self) -> String {
        format!("{}.{}", self.product_key, self.device_name)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("product_key", &self.product_key)
            .field("device_name", &self.device_name)
            .field("device_secret", &"<redacted>")
            .finish()
    }
}

/// A device on the platform, by ProductKey and DeviceName.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceRef {
    /// The ProductKey of its product.
    pub product_key: String,
    /// Its DeviceName.
    pub device_name: String,
}

/// The MQTT CONNECT fields of a device. Its `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectParams {
    /// `<clientId>|securemode=2,signmethod=hmacsha256,timestamp=<ms>|`.
    pub client_id: String,
    /// `<deviceName>&<productKey>`.
    pub username: String,
    /// Lowercase hex HMAC-SHA256, keyed by the DeviceSecret, of [`sign_content`].
    pub password: String,
}

impl fmt::Debug for ConnectParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectParams")
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The MQTT CONNECT fields for `creds`, with the device's own `client_id` (a MAC or serial
/// number; at most 64 characters, no `|` or `,`) and the time in milliseconds since 1970.
///
/// `securemode=2` is a TLS connection (3 would be plain TCP, which new devices may no longer
/// use since August 2022).
pub fn connect_params(creds: &Credentials, client_id: &str, timestamp_ms: u64) -> ConnectParams {
    ConnectParams {
        client_id: format!("{client_id}|securemode=2,signmethod={CONNECT_SIGN_METHOD},timestamp={timestamp_ms}|"),
        username: format!("{}&{}", creds.device_name, creds.product_key),
        password: sign(
            &creds.device_secret,
            &sign_content(client_id, &creds.device_name, &creds.product_key, timestamp_ms),
        ),
    }
}

/// Where to connect: a host and a port. Displays as `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The host name.
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// The endpoint of the older public instance: `<productKey>.iot-as-mqtt.<regionId>.aliyuncs.com:1883`
/// (`regionId` like `cn-shanghai`).
pub fn public_endpoint(product_key: &str, region_id: &str) -> Endpoint {
    Endpoint { host: format!("{product_key}.iot-as-mqtt.{region_id}.aliyuncs.com"), port: MQTT_PORT }
}

/// The endpoint of an instance (Enterprise Edition, and public instances opened since mid 2021):
/// `<instanceId>.mqtt.iothub.aliyuncs.com:1883`, the instance id like `iot-06z00ax1o4qq8u4` as
/// the console's instance page shows it.
pub fn instance_endpoint(instance_id: &str) -> Endpoint {
    Endpoint { host: format!("{instance_id}.mqtt.iothub.aliyuncs.com"), port: MQTT_PORT }
}

// ---------------------------------------------------------------------------------------------
// Topics
// ---------------------------------------------------------------------------------------------

/// Up: a device reports properties, `/sys/<pk>/<dn>/thing/event/property/post`.
pub fn property_post_topic(product_key: &str, device_name: &str) -> String {
    format!("/sys/{product_key}/{device_name}/thing/event/property/post")
}

/// Down: the answer to [`property_post_topic`].
pub fn property_post_reply_topic(product_key: &str, device_name: &str) -> String {
    format!("{}_reply", property_post_topic(product_key, device_name))
}

/// Down: the cloud sets properties, `/sys/<pk>/<dn>/thing/service/property/set`.
pub fn property_set_topic(product_key: &str, device_name: &str) -> String {
    format!("/sys/{product_key}/{device_name}/thing/service/property/set")
}

/// Up: the device's answer to [`property_set_topic`].
pub fn property_set_reply_topic(product_key: &str, device_name: &str) -> String {
    format!("{}_reply", property_set_topic(product_key, device_name))
}

/// Up: a device reports the TSL event `identifier`, `/sys/<pk>/<dn>/thing/event/<identifier>/post`.
pub fn event_post_topic(product_key: &str, device_name: &str, identifier: &str) -> String {
    format!("/sys/{product_key}/{device_name}/thing/event/{identifier}/post")
}

/// Down: the answer to [`event_post_topic`].
pub fn event_post_reply_topic(product_key: &str, device_name: &str, identifier: &str) -> String {
    format!("{}_reply", event_post_topic(product_key, device_name, identifier))
}

/// Up: the gateway adds sub-devices to its topology, `/sys/<gw_pk>/<gw_dn>/thing/topo/add`.
pub fn topo_add_topic(gateway_product_key: &str, gateway_device_name: &str) -> String {
    format!("/sys/{gateway_product_key}/{gateway_device_name}/thing/topo/add")
}

/// Down: the answer to [`topo_add_topic`].
pub fn topo_add_reply_topic(gateway_product_key: &str, gateway_device_name: &str) -> String {
    format!("{}_reply", topo_add_topic(gateway_product_key, gateway_device_name))
}

/// Up: the gateway brings one sub-device online, `/ext/session/<gw_pk>/<gw_dn>/combine/login`.
pub fn combine_login_topic(gateway_product_key: &str, gateway_device_name: &str) -> String {
    format!("/ext/session/{gateway_product_key}/{gateway_device_name}/combine/login")
}

/// Down: the answer to [`combine_login_topic`].
pub fn combine_login_reply_topic(gateway_product_key: &str, gateway_device_name: &str) -> String {
    format!("{}_reply", combine_login_topic(gateway_product_key, gateway_device_name))
}

/// Up: the gateway brings several sub-devices online (at most 50 at a time, all or none),
/// `/ext/session/<gw_pk>/<gw_dn>/combine/batch_login`.
pub fn batch_login_topic(gateway_product_key: &str, gateway_device_name: &str) -> String {
    format!("/ext/session/{gateway_product_key}/{gateway_device_name}/combine/batch_login")
}

/// Down: the answer to [`batch_login_topic`].
pub fn batch_login_reply_topic(gateway_product_key: &str, gateway_device_name: &str) -> String {
    format!("{}_reply", batch_login_topic(gateway_product_key, gateway_device_name))
}

/// What a message that arrived is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncomingKind {
    /// The cloud sets properties of the device ([`parse_property_set`], answer with
    /// [`property_set_reply`] on [`property_set_reply_topic`]).
    PropertySet,
    /// The answer to a property post ([`parse_reply`]).
    PropertyPostReply,
    /// The answer to the post of the TSL event `identifier` ([`parse_reply`]).
    EventPostReply {
        /// The event's identifier.
        identifier: String,
    },
    /// The answer to `thing.topo.add`; the device is the gateway ([`parse_reply`]).
    TopoAddReply,
    /// The answer to `combine/login`; the device is the gateway ([`parse_reply`]).
    LoginReply,
    /// The answer to `combine/batch_login`; the device is the gateway ([`parse_reply`]).
    BatchLoginReply,
}

/// A message that arrived: for which device, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The device of the topic: the gateway or a sub-device.
    pub device: DeviceRef,
    /// What it is.
    pub kind: IncomingKind,
}

/// Reads a topic the gateway subscribes to: property set and the answers to property and event
/// posts for the gateway or any sub-device (`/sys/<pk>/<dn>/...`, the caller checks that the
/// device is one of its own), and the answers to topology and login requests, which belong to
/// the gateway only. `None` for anything else. A missing leading `/` is tolerated.
pub fn classify(topic: &str, gateway: &Credentials) -> Option<Incoming> {
    let path = topic.strip_prefix('/').unwrap_or(topic);
    let parts: Vec<&str> = path.split('/').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let at = |pk: &str, dn: &str, kind: IncomingKind| {
        Some(Incoming { device: DeviceRef { product_key: pk.to_owned(), device_name: dn.to_owned() }, kind })
    };
    match parts.as_slice() {
        ["sys", pk, dn, "thing", "service", "property", "set"] => at(pk, dn, IncomingKind::PropertySet),
        ["sys", pk, dn, "thing", "event", "property", "post_reply"] => at(pk, dn, IncomingKind::PropertyPostReply),
        ["sys", pk, dn, "thing", "event", identifier, "post_reply"] => {
            at(pk, dn, IncomingKind::EventPostReply { identifier: (*identifier).to_owned() })
        }
        ["sys", pk, dn, "thing", "topo", "add_reply"] if gateway.is(pk, dn) => at(pk, dn, IncomingKind::TopoAddReply),
        ["ext", "session", pk, dn, "combine", "login_reply"] if gateway.is(pk, dn) => {
            at(pk, dn, IncomingKind::LoginReply)
        }
        ["ext", "session", pk, dn, "combine", "batch_login_reply"] if gateway.is(pk, dn) => {
            at(pk, dn, IncomingKind::BatchLoginReply)
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------------------------

/// Message ids: a counter written as a decimal string, from 1, wrapping within `u32` (Alink
/// takes 0 to 4294967295). Ids must be unique per device within a day, so after a restart
/// start where the last run stopped ([`MessageIds::starting_at`]).
#[derive(Debug, Default)]
pub struct MessageIds(AtomicU32);

impl MessageIds {
    /// A counter whose first id is `1`.
    pub fn new() -> MessageIds {
        MessageIds(AtomicU32::new(0))
    }

    /// A counter whose first id is `first`.
    pub fn starting_at(first: u32) -> MessageIds {
        MessageIds(AtomicU32::new(first.wrapping_sub(1)))
    }

    /// The next id.
    pub fn next_id(&self) -> String {
        self.0.fetch_add(1, Ordering::Relaxed).wrapping_add(1).to_string()
    }
}

/// A request: `{"id", "version", "params", "method"}` in this order.
#[derive(Serialize)]
struct Request<'a, P: Serialize> {
    id: &'a str,
    version: &'static str,
    params: P,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<String>,
}

#[derive(Serialize)]
struct Stamped<'a> {
    value: &'a Json,
    time: u64,
}

/// Serialises one of this module's payload structs. They have string keys and derived
/// `Serialize` only, so this cannot fail; the empty string would be the answer if it did.
fn encode<T: Serialize>(payload: &T) -> String {
    serde_json::to_string(payload).unwrap_or_default()
}

/// The property post of a device (on [`property_post_topic`]): each TSL identifier with its
/// value (see [`to_tsl`]) and the time in milliseconds it was measured (the platform refuses
/// times more than 24 hours off):
/// `{"id":"1","version":"1.0","params":{"Prop":{"value":…,"time":…}},"method":"thing.event.property.post"}`.
pub fn property_post(id: &str, params: &BTreeMap<String, (Json, u64)>) -> String {
    let params: BTreeMap<&str, Stamped<'_>> =
        params.iter().map(|(k, (value, time))| (k.as_str(), Stamped { value, time: *time })).collect();
    encode(&Request { id, version: ALINK_VERSION, params, method: Some("thing.event.property.post".to_owned()) })
}

#[derive(Serialize)]
struct EventParams<'a> {
    value: &'a BTreeMap<String, Json>,
    time: u64,
}

/// The post of the TSL event `identifier` with its output parameters (on [`event_post_topic`]):
/// `{"id":"1","version":"1.0","params":{"value":{…},"time":…},"method":"thing.event.<identifier>.post"}`.
pub fn event_post(id: &str, identifier: &str, params: &BTreeMap<String, Json>, time_ms: u64) -> String {
    encode(&Request {
        id,
        version: ALINK_VERSION,
        params: EventParams { value: params, time: time_ms },
        method: Some(format!("thing.event.{identifier}.post")),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TopoEntry<'a> {
    device_name: &'a str,
    product_key: &'a str,
    sign: String,
    signmethod: &'static str,
    timestamp: String,
    client_id: String,
}

/// Adds sub-devices to the gateway's topology (on [`topo_add_topic`], at most 30 at a time):
/// each with its DeviceName, ProductKey, `sign`, `signmethod`, `timestamp` (milliseconds, as a
/// string) and `clientId` ([`Credentials::sub_client_id`]). The sign is the lowercase hex
/// HMAC-SHA256, keyed by the sub-device's secret, of
/// `clientId<pk>.<dn>deviceName<dn>productKey<pk>timestamp<ts>` ([`sign_content`]; doc 89299
/// "Manage topological relationships", the `sign` parameter, and Alibaba's Link SDK for C 4.x,
/// `aiot_subdev_api.c`, which signs exactly this string with HMAC-SHA256).
pub fn topo_add(id: &str, subs: &[(&Credentials, u64)]) -> String {
    let params: Vec<TopoEntry<'_>> = subs
        .iter()
        .map(|(sub, timestamp)| {
            let client_id = sub.sub_client_id();
            TopoEntry {
                device_name: &sub.device_name,
                product_key: &sub.product_key,
                sign: sign(
                    &sub.device_secret,
                    &sign_content(&client_id, &sub.device_name, &sub.product_key, *timestamp),
                ),
                signmethod: SUB_SIGN_METHOD,
                timestamp: timestamp.to_string(),
                client_id,
            }
        })
        .collect();
    encode(&Request { id, version: ALINK_VERSION, params, method: Some("thing.topo.add".to_owned()) })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LoginEntry<'a> {
    product_key: &'a str,
    device_name: &'a str,
    client_id: String,
    timestamp: String,
    sign_method: &'static str,
    sign: String,
    clean_session: &'static str,
}

fn login_entry(sub: &Credentials, timestamp_ms: u64, clean_session: bool) -> LoginEntry<'_> {
    let client_id = sub.sub_client_id();
    LoginEntry {
        product_key: &sub.product_key,
        device_name: &sub.device_name,
        sign: sign(&sub.device_secret, &sign_content(&client_id, &sub.device_name, &sub.product_key, timestamp_ms)),
        client_id,
        timestamp: timestamp_ms.to_string(),
        sign_method: SUB_SIGN_METHOD,
        clean_session: if clean_session { "true" } else { "false" },
    }
}

/// Brings one sub-device online through the gateway (on [`combine_login_topic`]): its
/// ProductKey, DeviceName, `clientId`, `timestamp`, `signMethod`, `sign` (as for
/// [`topo_add`]; `cleanSession` is not signed) and `cleanSession` (`"true"` or `"false"`).
pub fn combine_login(id: &str, sub: &Credentials, timestamp_ms: u64, clean_session: bool) -> String {
    encode(&Request { id, version: ALINK_VERSION, params: login_entry(sub, timestamp_ms, clean_session), method: None })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BatchLoginParams<'a> {
    device_list: Vec<LoginEntry<'a>>,
    sign_method: &'static str,
}

/// Brings several sub-devices online at once (on [`batch_login_topic`], at most 50; all succeed
/// or all fail): `params.deviceList` holds one [`combine_login`] entry per sub-device.
/// `signMethod` is in each entry (as in a single login) and once in `params` (as Alibaba's Link
/// SDK for C sends it); the full documentation of the batch variant was not at hand.
pub fn batch_login(id: &str, subs: &[(&Credentials, u64)], clean_session: bool) -> String {
    let device_list = subs.iter().map(|(sub, timestamp)| login_entry(sub, *timestamp, clean_session)).collect();
    encode(&Request {
        id,
        version: ALINK_VERSION,
        params: BatchLoginParams { device_list, sign_method: SUB_SIGN_METHOD },
        method: None,
    })
}

/// The platform's answer to a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The id of the request it answers.
    pub id: String,
    /// 200 on success, else an error code ([`code_description`]).
    pub code: i64,
    /// The platform's message (`success`, `request parameter error`), empty when absent.
    pub message: String,
    /// What the answer carries (`{}`, the devices added or logged in); `null` when absent.
    pub data: Json,
}

impl Reply {
    /// Whether the request succeeded (code 200).
    pub fn is_success(&self) -> bool {
        self.code == 200
    }

    /// `None` on success, else the error in a sentence: `Alink code 460: request parameter
    /// error` (the platform's message, or the code's known meaning when it sent none).
    pub fn error(&self) -> Option<String> {
        if self.is_success() {
            return None;
        }
        let text = if self.message.is_empty() {
            code_description(self.code).unwrap_or("no message")
        } else {
            self.message.as_str()
        };
        Some(format!("Alink code {}: {text}", self.code))
    }

    /// The reply on success, else its [`Reply::error`].
    pub fn into_result(self) -> Result<Reply, String> {
        match self.error() {
            None => Ok(self),
            Some(e) => Err(e),
        }
    }
}

/// What a reply code means, for the codes the platform documents for devices (doc 120329).
pub fn code_description(code: i64) -> Option<&'static str> {
    Some(match code {
        200 => "success",
        400 => "the platform failed to process the request",
        429 => "too many requests: throttled",
        460 => "request parameter error: empty data, a malformed parameter or too many parameters",
        500 => "unknown error in the platform",
        5005 => "product not found: check the ProductKey",
        5159 => "TSL check: failed to read the property definitions",
        5160 => "TSL check: failed to read the event definitions",
        5161 => "TSL check: failed to read the service definitions",
        5244 => "failed to read the LoRaWAN product's metadata",
        6100 => "device not found: check the device in the console",
        6203 => "failed to parse the topic",
        6204 => "the device is disabled",
        6207 => "the data is not JSON",
        6250 => "product not found: check the ProductKey",
        6300 => "TSL check: the method is missing",
        6450 => "the method is missing after the custom data was parsed",
        6760 => "system error in the platform",
        _ => return None,
    })
}

fn parse_object(payload: &[u8]) -> Result<serde_json::Map<String, Json>, String> {
    match serde_json::from_slice::<Json>(payload) {
        Ok(Json::Object(map)) => Ok(map),
        Ok(_) => Err("the payload is not a JSON object".to_owned()),
        Err(e) => Err(format!("the payload is not JSON: {e}")),
    }
}

/// An id sent as a string (as it should be) or as a number.
fn id_of(map: &serde_json::Map<String, Json>) -> Result<String, String> {
    match map.get("id") {
        Some(Json::String(s)) => Ok(s.clone()),
        Some(Json::Number(n)) => Ok(n.to_string()),
        Some(_) => Err("`id` is neither a string nor a number".to_owned()),
        None => Err("the message has no `id`".to_owned()),
    }
}

/// Reads the platform's answer to a request:
/// `{"id":"1","code":200,"data":{},"message":"success","method":…,"version":"1.0"}`.
/// A well-formed answer is `Ok` whatever its code, so that it can be matched to its request by
/// id; [`Reply::error`] or [`Reply::into_result`] then surface a code other than 200 with its
/// message. `Err` says what is malformed.
pub fn parse_reply(payload: &[u8]) -> Result<Reply, String> {
    let map = parse_object(payload)?;
    let id = id_of(&map)?;
    let code = match map.get("code") {
        Some(Json::Number(n)) => n.as_i64().ok_or_else(|| format!("`code` {n} is not an integer"))?,
        Some(Json::String(s)) => s.trim().parse::<i64>().map_err(|_| format!("`code` \"{s}\" is not an integer"))?,
        Some(_) => return Err("`code` is not a number".to_owned()),
        None => return Err("the reply has no `code`".to_owned()),
    };
    let message = match map.get("message") {
        Some(Json::String(s)) => s.clone(),
        _ => String::new(),
    };
    let data = map.get("data").cloned().unwrap_or(Json::Null);
    Ok(Reply { id, code, message, data })
}

/// Reads a property set from the cloud:
/// `{"id":"1","version":"1.0","params":{"Brightness":40},"method":"thing.service.property.set"}`.
/// Gives the id (for [`property_set_reply`]) and the values by TSL identifier (see [`from_tsl`]).
pub fn parse_property_set(payload: &[u8]) -> Result<(String, BTreeMap<String, Json>), String> {
    let map = parse_object(payload)?;
    let id = id_of(&map)?;
    match map.get("method") {
        None | Some(Json::Null) => {}
        Some(Json::String(m)) if m == "thing.service.property.set" => {}
        Some(m) => return Err(format!("`method` is {m}, not \"thing.service.property.set\"")),
    }
    match map.get("params") {
        Some(Json::Object(params)) => Ok((id, params.iter().map(|(k, v)| (k.clone(), v.clone())).collect())),
        Some(_) => Err("`params` is not an object".to_owned()),
        None => Err("the property set has no `params`".to_owned()),
    }
}

#[derive(Serialize)]
struct DeviceReply<'a> {
    id: &'a str,
    code: i64,
    data: serde_json::Map<String, Json>,
    message: &'a str,
    version: &'static str,
}

/// The device's answer to a property set (on [`property_set_reply_topic`]):
/// `{"id":"1","code":200,"data":{},"message":"success","version":"1.0"}`; for another code the
/// message is its [`code_description`] (or `error`).
pub fn property_set_reply(id: &str, code: i64) -> String {
    let message = if code == 200 { "success" } else { code_description(code).unwrap_or("error") };
    encode(&DeviceReply { id, code, data: serde_json::Map::new(), message, version: ALINK_VERSION })
}

// ---------------------------------------------------------------------------------------------
// The thing model (TSL)
// ---------------------------------------------------------------------------------------------

/// How a feature appears in the product's thing model: its property identifier, TSL data type
/// and unit. The product's TSL must define the property with this identifier and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tsl {
    /// The property identifier: letters, digits and `_`, at most 50 characters, not starting
    /// with a digit.
    pub identifier: String,
    /// The TSL data type: `bool`, `int`, `float`, `double`, `enum`, `text` or `struct`.
    pub data_type: &'static str,
    /// The unit values are in: the capability's canonical unit (or the feature's own, for
    /// `other`); `None` when unitless.
    pub unit: Option<String>,
    /// Whether the identifier is one of Alibaba's standard property identifiers (else it is
    /// made from the feature key).
    pub standard: bool,
}

/// How a model value becomes a TSL value and back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conv {
    /// `true`/`false` as `1`/`0` (TSL `bool`, or a two-valued `enum`).
    Bool01,
    /// A number rounded to a 32-bit integer (TSL `int`).
    Int,
    /// A number as it is (TSL `float` or `double`).
    Float,
    /// An enum value as its index in the feature's `values` (TSL `enum`).
    EnumIndex,
    /// Text as it is (TSL `text`).
    Text,
    /// A color as the struct `{"Hue", "Saturation", "Value"}` (TSL `struct`).
    Hsv,
    /// A list or object as compact JSON text (TSL `text`).
    JsonText,
}

#[derive(Debug)]
struct Plan {
    identifier: String,
    data_type: &'static str,
    conv: Conv,
    standard: bool,
}

/// Alibaba's standard property identifier and data type of a capability, where one exists.
/// See `ALINK.md` for where each one comes from.
fn standard_property(capability: Capability) -> Option<(&'static str, &'static str)> {
    use Capability as C;
    Some(match capability {
        C::OnOff => ("powerstate", "bool"),
        C::Brightness => ("Brightness", "int"),
        C::ColorTemperature => ("ColorTemperature", "int"),
        C::Color => ("HSVColor", "struct"),
        C::Temperature => ("CurrentTemperature", "float"),
        C::Humidity => ("CurrentHumidity", "float"),
        C::Illuminance => ("LightLux", "float"),
        C::Battery => ("BatteryPercentage", "double"),
        C::Contact => ("ContactState", "bool"),
        C::Occupancy => ("MotionAlarmState", "bool"),
        C::WaterLeak => ("WaterSensorState", "enum"),
        C::Smoke => ("SmokeSensorState", "enum"),
        C::Gas => ("GasSensorState", "enum"),
        C::Power => ("ActivePower", "float"),
        C::Pm25 => ("PM25", "int"),
        C::Formaldehyde => ("HCHO", "double"),
        C::CoverPosition => ("CurtainPosition", "int"),
        C::Setpoint => ("TargetTemperature", "float"),
        _ => return None,
    })
}

/// The conversion of a standard property, when the feature's value type fits it.
fn standard_conv(data_type: &str, value_type: &ValueType) -> Option<Conv> {
    match (data_type, value_type) {
        ("bool" | "enum", ValueType::Bool) => Some(Conv::Bool01),
        ("int", ValueType::Number { .. }) => Some(Conv::Int),
        ("float" | "double", ValueType::Number { .. }) => Some(Conv::Float),
        ("struct", ValueType::Color) => Some(Conv::Hsv),
        _ => None,
    }
}

/// The data type and conversion of a feature without a standard property.
fn own_type(value_type: &ValueType) -> (&'static str, Conv) {
    match value_type {
        ValueType::Bool => ("bool", Conv::Bool01),
        ValueType::Number { step: Some(step), .. } if *step >= 1.0 && step.fract() == 0.0 => ("int", Conv::Int),
        ValueType::Number { .. } => ("double", Conv::Float),
        ValueType::Enum { .. } => ("enum", Conv::EnumIndex),
        ValueType::Text { .. } => ("text", Conv::Text),
        ValueType::Color => ("struct", Conv::Hsv),
        ValueType::List | ValueType::Object => ("text", Conv::JsonText),
    }
}

/// Identifiers the platform keeps for itself (the console refuses them for properties).
const RESERVED: &[&str] = &["set", "get", "post", "property", "event", "time", "value"];

/// `s` with every character other than an ASCII letter, digit or `_` replaced by `_`.
fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

/// `s` (ASCII) cut to `max` characters.
fn cut(mut s: String, max: usize) -> String {
    s.truncate(max);
    s
}

/// The TSL identifier made from a feature key: characters other than ASCII letters, digits and
/// `_` become `_`, a leading digit gets `f_` in front, the result is cut to 50 characters, and
/// an identifier the platform reserves (`set`, `get`, `post`, `property`, `event`, `time`,
/// `value`) gets a `_` behind. `state_l2` stays `state_l2`; `2nd-relay` becomes `f_2nd_relay`.
pub fn derived_identifier(key: &str) -> String {
    let mut id = sanitize(key);
    if id.is_empty() {
        id = "feature".to_owned();
    }
    if id.starts_with(|c: char| c.is_ascii_digit()) {
        id.insert_str(0, "f_");
    }
    let id = cut(id, MAX_IDENTIFIER_LEN);
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(&id)) {
        return format!("{id}_");
    }
    id
}

fn plan(feature: &Feature) -> Option<Plan> {
    if feature.capability == Capability::Action {
        return None;
    }
    if feature.category != Category::Config
        && let Some((id, data_type)) = standard_property(feature.capability)
        && let Some(conv) = standard_conv(data_type, &feature.value_type)
    {
        let identifier = match &feature.endpoint {
            None => id.to_owned(),
            Some(endpoint) => cut(format!("{id}_{}", sanitize(endpoint)), MAX_IDENTIFIER_LEN),
        };
        return Some(Plan { identifier, data_type, conv, standard: true });
    }
    let (data_type, conv) = own_type(&feature.value_type);
    Some(Plan { identifier: derived_identifier(&feature.key), data_type, conv, standard: false })
}

/// How `feature` appears in the thing model, or `None` for features that are no property
/// (`action`, whose presses go up as TSL events with [`event_post`]).
///
/// A feature whose capability has one of Alibaba's standard properties (see `ALINK.md`) and
/// whose value type fits it takes the standard identifier, with `_<endpoint>` behind on a
/// multi-channel device (`powerstate_l2`); `config` features and all others take
/// [`derived_identifier`] of their key. Two features of one device may map to the same
/// standard identifier; [`tsl_identifiers`] settles that for a whole device.
pub fn tsl_identifier(feature: &Feature) -> Option<Tsl> {
    let plan = plan(feature)?;
    let unit = match (plan.conv, &feature.value_type) {
        (Conv::Int | Conv::Float, ValueType::Number { .. }) => feature.unit.clone(),
        _ => None,
    };
    Some(Tsl { identifier: plan.identifier, data_type: plan.data_type, unit, standard: plan.standard })
}

/// The thing model of a device's features, by feature key, identifiers unique (compared
/// without case). In feature order, the first feature that claims an identifier keeps it; a
/// later one takes [`derived_identifier`] of its key instead, and `_2`, `_3`… behind if that
/// is taken too. The data type never changes, so [`to_tsl`] and [`from_tsl`] hold for both.
pub fn tsl_identifiers(features: &[Feature]) -> BTreeMap<String, Tsl> {
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut out = BTreeMap::new();
    for feature in features {
        let Some(mut tsl) = tsl_identifier(feature) else { continue };
        if used.contains(&tsl.identifier.to_ascii_lowercase()) {
            let base = derived_identifier(&feature.key);
            tsl.identifier = base.clone();
            tsl.standard = false;
            let mut n = 2u32;
            while used.contains(&tsl.identifier.to_ascii_lowercase()) {
                let suffix = format!("_{n}");
                tsl.identifier = format!("{}{suffix}", cut(base.clone(), MAX_IDENTIFIER_LEN - suffix.len()));
                n += 1;
            }
        }
        used.insert(tsl.identifier.to_ascii_lowercase());
        out.insert(feature.key.clone(), tsl);
    }
    out
}

/// A number as a TSL `int`: rounded, within 32 bits.
fn int_json(n: f64) -> Option<Json> {
    let r = n.round();
    if !r.is_finite() || r < f64::from(i32::MIN) || r > f64::from(i32::MAX) {
        return None;
    }
    Some(Json::from(r as i64))
}

/// A number as a TSL `float`/`double` (written with a fraction, `21.0`, as the platform wants).
fn float_json(n: f64) -> Option<Json> {
    serde_json::Number::from_f64(n).map(Json::Number)
}

fn number_json(conv: Conv, n: f64) -> Option<Json> {
    match conv {
        Conv::Int => int_json(n),
        _ => float_json(n),
    }
}

/// The TSL value of a feature's model value, or `None` when the feature is no property or the
/// value does not fit it. Numbers stay in the model's canonical units. `bool` becomes `1`/`0`;
/// an `int` is rounded; an enum value becomes its index in the feature's `values`; a color
/// becomes `{"Hue": 0-360, "Saturation": 0-100, "Value": 100}` (brightness is a feature of its
/// own); a list or object becomes compact JSON text; a preset name becomes its number.
pub fn to_tsl(feature: &Feature, value: &Value) -> Option<Json> {
    let plan = plan(feature)?;
    match (plan.conv, value) {
        (Conv::Bool01, Value::Bool(b)) => Some(Json::from(u8::from(*b))),
        (Conv::Int | Conv::Float, Value::Number(n)) => number_json(plan.conv, *n),
        (Conv::Int | Conv::Float, Value::Text(name)) => {
            let n = feature.presets.iter().find(|p| &p.name == name)?.value?;
            number_json(plan.conv, n)
        }
        (Conv::EnumIndex, Value::Text(t)) => match &feature.value_type {
            ValueType::Enum { values } => values.iter().position(|v| v == t).map(Json::from),
            _ => None,
        },
        (Conv::Text, Value::Text(t)) => Some(Json::String(t.clone())),
        (Conv::Hsv, Value::Color(c)) => {
            let mut hsv = serde_json::Map::new();
            hsv.insert("Hue".to_owned(), int_json(c.hue)?);
            hsv.insert("Saturation".to_owned(), int_json(c.saturation)?);
            hsv.insert("Value".to_owned(), Json::from(100));
            Some(Json::Object(hsv))
        }
        (Conv::JsonText, Value::List(_) | Value::Object(_)) => serde_json::to_string(value).ok().map(Json::String),
        _ => None,
    }
}

/// A JSON number, or a string holding one (some consoles send `"30.5"`).
fn json_number(json: &Json) -> Option<f64> {
    match json {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse::<f64>().ok().filter(|v| v.is_finite()),
        _ => None,
    }
}

fn shown(json: &Json) -> String {
    let s = json.to_string();
    if s.chars().count() > 60 { format!("{}…", s.chars().take(60).collect::<String>()) } else { s }
}

/// The model value of a TSL value the cloud set on `feature`; the inverse of [`to_tsl`].
/// Takes `0`/`1` (also `true`/`false` and `"0"`/`"1"`) for bools, numbers or numeric strings
/// for numbers, an index or one of the values for enums, `{"Hue", "Saturation"}` for colors
/// (`Value` is ignored), and JSON text (or plain JSON) for lists and objects. Limits are not
/// checked here: the command goes through the hub's validation like any other.
pub fn from_tsl(feature: &Feature, json: &Json) -> Result<Value, String> {
    let plan = plan(feature).ok_or_else(|| format!("feature `{}` is no TSL property", feature.key))?;
    let wrong = |expected: &str| {
        format!(
            "feature `{}` (TSL `{}`, {}) takes {expected}, not {}",
            feature.key,
            plan.identifier,
            plan.data_type,
            shown(json)
        )
    };
    match plan.conv {
        Conv::Bool01 => match json {
            Json::Bool(b) => Ok(Value::Bool(*b)),
            Json::String(s) if s == "true" => Ok(Value::Bool(true)),
            Json::String(s) if s == "false" => Ok(Value::Bool(false)),
            _ => match json_number(json) {
                Some(0.0) => Ok(Value::Bool(false)),
                Some(1.0) => Ok(Value::Bool(true)),
                _ => Err(wrong("0 or 1")),
            },
        },
        Conv::Int | Conv::Float => json_number(json).map(Value::Number).ok_or_else(|| wrong("a number")),
        Conv::EnumIndex => {
            let ValueType::Enum { values } = &feature.value_type else {
                return Err(wrong("an enum value"));
            };
            if let Json::String(s) = json
                && values.contains(s)
            {
                return Ok(Value::Text(s.clone()));
            }
            let expected = format!("an index from 0 to {}", values.len().saturating_sub(1));
            match json_number(json) {
                Some(n) if n >= 0.0 && n.fract() == 0.0 => {
                    values.get(n as usize).map(|v| Value::Text(v.clone())).ok_or_else(|| wrong(&expected))
                }
                _ => Err(wrong(&expected)),
            }
        }
        Conv::Text => match json {
            Json::String(s) => Ok(Value::Text(s.clone())),
            _ => Err(wrong("text")),
        },
        Conv::Hsv => {
            let member = |name: &str| json.get(name).and_then(json_number);
            match (member("Hue"), member("Saturation")) {
                (Some(hue), Some(saturation)) => Ok(Value::Color(Color { hue, saturation })),
                _ => Err(wrong("{\"Hue\": …, \"Saturation\": …}")),
            }
        }
        Conv::JsonText => {
            let parsed = match json {
                Json::String(s) => serde_json::from_str::<Value>(s).ok(),
                Json::Array(_) | Json::Object(_) => serde_json::from_value::<Value>(json.clone()).ok(),
                _ => None,
            };
            match (parsed, &feature.value_type) {
                (Some(v @ Value::List(_)), ValueType::List) => Ok(v),
                (Some(v), ValueType::Object) if is_object_like(&v) => Ok(v),
                (_, ValueType::List) => Err(wrong("a JSON array")),
                _ => Err(wrong("a JSON object")),
            }
        }
    }
}

/// Whether a parsed value came from a JSON object (`Value` reads objects as `Object`, or as
/// `Color` when they have exactly `hue` and `saturation`).
fn is_object_like(v: &Value) -> bool {
    matches!(v, Value::Object(_) | Value::Color(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_sdk::{Access, Preset};
    use serde_json::json;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    // ----- HMAC -------------------------------------------------------------------------------

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let cases: &[(Vec<u8>, Vec<u8>, &str)] = &[
            // Test case 1.
            (vec![0x0b; 20], b"Hi There".to_vec(), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            // Test case 2: a key shorter than the output.
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            // Test case 3: 50 bytes of 0xdd.
            (vec![0xaa; 20], vec![0xdd; 50], "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
            // Test case 4.
            (
                unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
                vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            // Test case 6: a key larger than the block is hashed first.
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            // Test case 7: a large key and large data.
            (
                vec![0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (key, data, expected) in cases {
            assert_eq!(hex(&hmac_sha256(key, data)), *expected);
        }
        // Test case 5 checks the first 128 bits only.
        let mac = hmac_sha256(&[0x0c; 20], b"Test With Truncation");
        assert_eq!(hex(&mac[..16]), "a3b6167473100ee06e0c796c2955552b");
        // A key of exactly one block is used as it is, not hashed. Computed independently:
        // python3 -c 'import hmac,hashlib; print(hmac.new(b"a"*64, b"x", hashlib.sha256).hexdigest())'
        assert_eq!(
            hex(&hmac_sha256(&[b'a'; 64], b"x")),
            "b65ca3a3235f948bc0e6bd747532c54a983b54ddad1a4d1bd8b958e065b1cab4"
        );
    }

    #[test]
    fn hex_is_lowercase_and_padded() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(hex(&[]), "");
    }

    // ----- Connecting -------------------------------------------------------------------------

    fn gateway() -> Credentials {
        Credentials::new("a1GwTest001", "hub-gateway", "gwSecret123")
    }

    fn plug() -> Credentials {
        Credentials::new("a1SubProd01", "kitchen_plug", "subSecret456")
    }

    fn door() -> Credentials {
        Credentials::new("a1SubProd02", "door_sensor", "subSecret789")
    }

    #[test]
    fn connect_params_sign_the_documented_content() {
        let p = connect_params(&gateway(), "hearth-01", 1_700_000_000_000);
        assert_eq!(p.client_id, "hearth-01|securemode=2,signmethod=hmacsha256,timestamp=1700000000000|");
        assert_eq!(p.username, "hub-gateway&a1GwTest001");
        // Computed independently:
        // python3 -c 'import hmac,hashlib; print(hmac.new(b"gwSecret123", b"clientIdhearth-01deviceNamehub-gatewayproductKeya1GwTest001timestamp1700000000000", hashlib.sha256).hexdigest())'
        assert_eq!(p.password, "49698e025cb45633930e24cd401cd53475aace9c087f7f233fdef6b7c228be22");
        assert_eq!(
            sign_content("hearth-01", "hub-gateway", "a1GwTest001", 1_700_000_000_000),
            "clientIdhearth-01deviceNamehub-gatewayproductKeya1GwTest001timestamp1700000000000"
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        let creds = format!("{:?}", gateway());
        assert!(!creds.contains("gwSecret123"), "{creds}");
        assert!(creds.contains("a1GwTest001") && creds.contains("<redacted>"), "{creds}");
        let params = format!("{:?}", connect_params(&gateway(), "hearth-01", 1));
        assert!(
            params.contains("<redacted>") && !params.contains(&connect_params(&gateway(), "hearth-01", 1).password)
        );
    }

    #[test]
    fn endpoints() {
        let public = public_endpoint("a1GwTest001", "cn-shanghai");
        assert_eq!(public.to_string(), "a1GwTest001.iot-as-mqtt.cn-shanghai.aliyuncs.com:1883");
        assert_eq!((public.host.as_str(), public.port), ("a1GwTest001.iot-as-mqtt.cn-shanghai.aliyuncs.com", 1883));
        assert_eq!(
            instance_endpoint("iot-06z00ax1o4qq8u4").to_string(),
            "iot-06z00ax1o4qq8u4.mqtt.iothub.aliyuncs.com:1883"
        );
    }

    // ----- Topics -----------------------------------------------------------------------------

    #[test]
    fn topics() {
        assert_eq!(property_post_topic("pk", "dn"), "/sys/pk/dn/thing/event/property/post");
        assert_eq!(property_post_reply_topic("pk", "dn"), "/sys/pk/dn/thing/event/property/post_reply");
        assert_eq!(property_set_topic("pk", "dn"), "/sys/pk/dn/thing/service/property/set");
        assert_eq!(property_set_reply_topic("pk", "dn"), "/sys/pk/dn/thing/service/property/set_reply");
        assert_eq!(event_post_topic("pk", "dn", "action"), "/sys/pk/dn/thing/event/action/post");
        assert_eq!(event_post_reply_topic("pk", "dn", "action"), "/sys/pk/dn/thing/event/action/post_reply");
        assert_eq!(topo_add_topic("gpk", "gdn"), "/sys/gpk/gdn/thing/topo/add");
        assert_eq!(topo_add_reply_topic("gpk", "gdn"), "/sys/gpk/gdn/thing/topo/add_reply");
        assert_eq!(combine_login_topic("gpk", "gdn"), "/ext/session/gpk/gdn/combine/login");
        assert_eq!(combine_login_reply_topic("gpk", "gdn"), "/ext/session/gpk/gdn/combine/login_reply");
        assert_eq!(batch_login_topic("gpk", "gdn"), "/ext/session/gpk/gdn/combine/batch_login");
        assert_eq!(batch_login_reply_topic("gpk", "gdn"), "/ext/session/gpk/gdn/combine/batch_login_reply");
    }

    fn device(pk: &str, dn: &str) -> DeviceRef {
        DeviceRef { product_key: pk.to_owned(), device_name: dn.to_owned() }
    }

    #[test]
    fn classify_reads_what_the_gateway_subscribes_to() {
        let gw = gateway();
        let cases: Vec<(&str, Option<Incoming>)> = vec![
            (
                "/sys/a1GwTest001/hub-gateway/thing/service/property/set",
                Some(Incoming { device: gw.device(), kind: IncomingKind::PropertySet }),
            ),
            (
                "/sys/a1SubProd01/kitchen_plug/thing/service/property/set",
                Some(Incoming { device: device("a1SubProd01", "kitchen_plug"), kind: IncomingKind::PropertySet }),
            ),
            (
                "/sys/a1SubProd01/kitchen_plug/thing/event/property/post_reply",
                Some(Incoming { device: device("a1SubProd01", "kitchen_plug"), kind: IncomingKind::PropertyPostReply }),
            ),
            (
                "/sys/a1SubProd02/door_sensor/thing/event/action/post_reply",
                Some(Incoming {
                    device: device("a1SubProd02", "door_sensor"),
                    kind: IncomingKind::EventPostReply { identifier: "action".to_owned() },
                }),
            ),
            (
                "/sys/a1GwTest001/hub-gateway/thing/topo/add_reply",
                Some(Incoming { device: gw.device(), kind: IncomingKind::TopoAddReply }),
            ),
            (
                "/ext/session/a1GwTest001/hub-gateway/combine/login_reply",
                Some(Incoming { device: gw.device(), kind: IncomingKind::LoginReply }),
            ),
            (
                "/ext/session/a1GwTest001/hub-gateway/combine/batch_login_reply",
                Some(Incoming { device: gw.device(), kind: IncomingKind::BatchLoginReply }),
            ),
            // Without the leading slash.
            (
                "sys/a1GwTest001/hub-gateway/thing/topo/add_reply",
                Some(Incoming { device: gw.device(), kind: IncomingKind::TopoAddReply }),
            ),
            // Topology and session answers belong to the gateway only.
            ("/sys/a1SubProd01/kitchen_plug/thing/topo/add_reply", None),
            ("/ext/session/a1SubProd01/kitchen_plug/combine/login_reply", None),
            // Up topics, unknown topics, malformed ones.
            ("/sys/a1SubProd01/kitchen_plug/thing/event/property/post", None),
            ("/sys/a1SubProd01/kitchen_plug/thing/service/property/set_reply", None),
            ("/sys/a1SubProd01/kitchen_plug/thing/service/property/get", None),
            ("/sys//kitchen_plug/thing/service/property/set", None),
            ("/sys/a1SubProd01/kitchen_plug/thing/service/property/set/extra", None),
            ("/a1GwTest001/hub-gateway/user/get", None),
            ("", None),
        ];
        for (topic, expected) in cases {
            assert_eq!(classify(topic, &gw), expected, "{topic}");
        }
    }

    // ----- Payloads ---------------------------------------------------------------------------

    #[test]
    fn message_ids_count_as_decimal_strings() {
        let ids = MessageIds::new();
        assert_eq!((ids.next_id(), ids.next_id(), ids.next_id()), ("1".to_owned(), "2".to_owned(), "3".to_owned()));
        let ids = MessageIds::starting_at(4_294_967_295);
        assert_eq!((ids.next_id(), ids.next_id()), ("4294967295".to_owned(), "0".to_owned()));
        assert_eq!(MessageIds::default().next_id(), "1");
    }

    #[test]
    fn property_post_payload() {
        let params = BTreeMap::from([
            ("powerstate".to_owned(), (json!(1), 1_700_000_000_000)),
            ("CurrentTemperature".to_owned(), (json!(21.0), 1_700_000_000_500)),
        ]);
        assert_eq!(
            property_post("7", &params),
            r#"{"id":"7","version":"1.0","params":{"CurrentTemperature":{"value":21.0,"time":1700000000500},"powerstate":{"value":1,"time":1700000000000}},"method":"thing.event.property.post"}"#
        );
        assert_eq!(
            property_post("8", &BTreeMap::new()),
            r#"{"id":"8","version":"1.0","params":{},"method":"thing.event.property.post"}"#
        );
    }

    #[test]
    fn event_post_payload() {
        let params = BTreeMap::from([("event".to_owned(), json!("double"))]);
        assert_eq!(
            event_post("9", "action", &params, 1_700_000_000_000),
            r#"{"id":"9","version":"1.0","params":{"value":{"event":"double"},"time":1700000000000},"method":"thing.event.action.post"}"#
        );
    }

    #[test]
    fn topo_add_payload_signs_each_sub_device() {
        // Computed independently:
        // python3 -c 'import hmac,hashlib; print(hmac.new(b"subSecret456", b"clientIda1SubProd01.kitchen_plugdeviceNamekitchen_plugproductKeya1SubProd01timestamp1700000000123", hashlib.sha256).hexdigest())'
        // python3 -c 'import hmac,hashlib; print(hmac.new(b"subSecret789", b"clientIda1SubProd02.door_sensordeviceNamedoor_sensorproductKeya1SubProd02timestamp1700000000456", hashlib.sha256).hexdigest())'
        let (plug, door) = (plug(), door());
        assert_eq!(
            topo_add("10", &[(&plug, 1_700_000_000_123), (&door, 1_700_000_000_456)]),
            concat!(
                r#"{"id":"10","version":"1.0","params":["#,
                r#"{"deviceName":"kitchen_plug","productKey":"a1SubProd01","#,
                r#""sign":"11648ec777abb3d80a12ca42b0c4ca78c7a7d496573082982f9133be38111659","#,
                r#""signmethod":"hmacSha256","timestamp":"1700000000123","clientId":"a1SubProd01.kitchen_plug"},"#,
                r#"{"deviceName":"door_sensor","productKey":"a1SubProd02","#,
                r#""sign":"9c56d9dc5d0d22d7a028f3e3edac805778105bae6e61408f8270b99e531d2293","#,
                r#""signmethod":"hmacSha256","timestamp":"1700000000456","clientId":"a1SubProd02.door_sensor"}"#,
                r#"],"method":"thing.topo.add"}"#
            )
        );
    }

    #[test]
    fn the_documented_sign_example_has_the_content_form() {
        // BatchAddThingTopo's example: hmacmd5(1234, clientId868575026974305deviceName
        // 868575026974305productKeya1PB5fp1234timestamp1646277090411) = 3BA0DFA4C477B40C007D84D30D6466CC;
        // the content is built the same way here (the platform compares the hash of it).
        assert_eq!(
            sign_content("868575026974305", "868575026974305", "a1PB5fp1234", 1_646_277_090_411),
            "clientId868575026974305deviceName868575026974305productKeya1PB5fp1234timestamp1646277090411"
        );
    }

    #[test]
    fn login_payloads() {
        let (plug, door) = (plug(), door());
        assert_eq!(
            combine_login("11", &plug, 1_700_000_000_123, true),
            concat!(
                r#"{"id":"11","version":"1.0","params":{"productKey":"a1SubProd01","deviceName":"kitchen_plug","#,
                r#""clientId":"a1SubProd01.kitchen_plug","timestamp":"1700000000123","signMethod":"hmacSha256","#,
                r#""sign":"11648ec777abb3d80a12ca42b0c4ca78c7a7d496573082982f9133be38111659","cleanSession":"true"}}"#
            )
        );
        assert_eq!(
            batch_login("12", &[(&plug, 1_700_000_000_123), (&door, 1_700_000_000_456)], false),
            concat!(
                r#"{"id":"12","version":"1.0","params":{"deviceList":["#,
                r#"{"productKey":"a1SubProd01","deviceName":"kitchen_plug","clientId":"a1SubProd01.kitchen_plug","#,
                r#""timestamp":"1700000000123","signMethod":"hmacSha256","#,
                r#""sign":"11648ec777abb3d80a12ca42b0c4ca78c7a7d496573082982f9133be38111659","cleanSession":"false"},"#,
                r#"{"productKey":"a1SubProd02","deviceName":"door_sensor","clientId":"a1SubProd02.door_sensor","#,
                r#""timestamp":"1700000000456","signMethod":"hmacSha256","#,
                r#""sign":"9c56d9dc5d0d22d7a028f3e3edac805778105bae6e61408f8270b99e531d2293","cleanSession":"false"}"#,
                r#"],"signMethod":"hmacSha256"}}"#
            )
        );
    }

    #[test]
    fn replies_parse_and_surface_errors() {
        let ok = parse_reply(
            br#"{"code":200,"data":{},"id":"7","message":"success","method":"thing.event.property.post","version":"1.0"}"#,
        )
        .unwrap();
        assert_eq!(ok, Reply { id: "7".into(), code: 200, message: "success".into(), data: json!({}) });
        assert!(ok.is_success() && ok.error().is_none());
        assert_eq!(ok.clone().into_result(), Ok(ok));

        let failed = parse_reply(
            br#"{"code":460,"data":{},"id":"8","message":"request parameter error","method":"thing.event.property.post","version":"1.0"}"#,
        )
        .unwrap();
        assert_eq!((failed.id.as_str(), failed.code), ("8", 460));
        assert_eq!(failed.error().as_deref(), Some("Alink code 460: request parameter error"));
        assert_eq!(failed.into_result(), Err("Alink code 460: request parameter error".to_owned()));

        // No message: the code's known meaning; a numeric id and a string code are read too.
        let silent = parse_reply(br#"{"id":9,"code":"6100"}"#).unwrap();
        assert_eq!((silent.id.as_str(), silent.code, &silent.data), ("9", 6100, &Json::Null));
        assert_eq!(
            silent.error().as_deref(),
            Some("Alink code 6100: device not found: check the device in the console")
        );
        let unknown = parse_reply(br#"{"id":"9","code":7777}"#).unwrap();
        assert_eq!(unknown.error().as_deref(), Some("Alink code 7777: no message"));

        // A topology answer carries the devices added.
        let topo =
            parse_reply(br#"{"id":"10","code":200,"data":[{"deviceName":"kitchen_plug","productKey":"a1SubProd01"}]}"#)
                .unwrap();
        assert_eq!(topo.data[0]["deviceName"], "kitchen_plug");

        for (payload, error) in [
            (&b"not json"[..], "the payload is not JSON"),
            (b"[1]", "the payload is not a JSON object"),
            (br#"{"code":200}"#, "the message has no `id`"),
            (br#"{"id":"1"}"#, "the reply has no `code`"),
            (br#"{"id":"1","code":2.5}"#, "`code` 2.5 is not an integer"),
            (br#"{"id":true,"code":200}"#, "`id` is neither a string nor a number"),
        ] {
            let e = parse_reply(payload).unwrap_err();
            assert!(e.starts_with(error), "{e}");
        }
        assert_eq!(code_description(200), Some("success"));
        assert_eq!(code_description(1), None);
    }

    #[test]
    fn property_set_parses_and_is_answered() {
        let (id, params) = parse_property_set(
            br#"{"id":"123","version":"1.0","params":{"powerstate":1,"Brightness":40},"method":"thing.service.property.set"}"#,
        )
        .unwrap();
        assert_eq!(id, "123");
        assert_eq!(params, BTreeMap::from([("Brightness".to_owned(), json!(40)), ("powerstate".to_owned(), json!(1))]));
        // Without a method, with a numeric id.
        assert_eq!(parse_property_set(br#"{"id":5,"params":{}}"#).unwrap(), ("5".to_owned(), BTreeMap::new()));
        assert_eq!(
            parse_property_set(br#"{"id":"1","params":{},"method":"thing.service.property.get"}"#).unwrap_err(),
            r#"`method` is "thing.service.property.get", not "thing.service.property.set""#
        );
        assert_eq!(parse_property_set(br#"{"id":"1","params":[1]}"#).unwrap_err(), "`params` is not an object");
        assert_eq!(parse_property_set(br#"{"id":"1"}"#).unwrap_err(), "the property set has no `params`");

        assert_eq!(
            property_set_reply("123", 200),
            r#"{"id":"123","code":200,"data":{},"message":"success","version":"1.0"}"#
        );
        assert_eq!(
            property_set_reply("124", 460),
            r#"{"id":"124","code":460,"data":{},"message":"request parameter error: empty data, a malformed parameter or too many parameters","version":"1.0"}"#
        );
        assert_eq!(
            property_set_reply("125", 9999),
            r#"{"id":"125","code":9999,"data":{},"message":"error","version":"1.0"}"#
        );
    }

    // ----- TSL --------------------------------------------------------------------------------

    fn number(key: &str, capability: Capability) -> Feature {
        Feature::new(key, capability, ValueType::number(), Access::READ_ONLY)
    }

    fn boolean(key: &str, capability: Capability) -> Feature {
        Feature::new(key, capability, ValueType::Bool, Access::READ_ONLY)
    }

    fn tsl(identifier: &str, data_type: &'static str, unit: Option<&str>, standard: bool) -> Option<Tsl> {
        Some(Tsl { identifier: identifier.to_owned(), data_type, unit: unit.map(str::to_owned), standard })
    }

    #[test]
    fn standard_identifiers() {
        let cases = [
            (boolean("state", Capability::OnOff), tsl("powerstate", "bool", None, true)),
            (number("brightness", Capability::Brightness), tsl("Brightness", "int", Some("%"), true)),
            (
                number("color_temperature", Capability::ColorTemperature),
                tsl("ColorTemperature", "int", Some("K"), true),
            ),
            (
                Feature::new("color", Capability::Color, ValueType::Color, Access::READ_WRITE),
                tsl("HSVColor", "struct", None, true),
            ),
            (number("temperature", Capability::Temperature), tsl("CurrentTemperature", "float", Some("°C"), true)),
            (number("humidity", Capability::Humidity), tsl("CurrentHumidity", "float", Some("%"), true)),
            (number("illuminance", Capability::Illuminance), tsl("LightLux", "float", Some("lx"), true)),
            (number("battery", Capability::Battery), tsl("BatteryPercentage", "double", Some("%"), true)),
            (boolean("contact", Capability::Contact), tsl("ContactState", "bool", None, true)),
            (boolean("occupancy", Capability::Occupancy), tsl("MotionAlarmState", "bool", None, true)),
            (boolean("water_leak", Capability::WaterLeak), tsl("WaterSensorState", "enum", None, true)),
            (boolean("smoke", Capability::Smoke), tsl("SmokeSensorState", "enum", None, true)),
            (boolean("gas", Capability::Gas), tsl("GasSensorState", "enum", None, true)),
            (number("power", Capability::Power), tsl("ActivePower", "float", Some("W"), true)),
            (number("pm25", Capability::Pm25), tsl("PM25", "int", Some("µg/m³"), true)),
            (number("formaldehyde", Capability::Formaldehyde), tsl("HCHO", "double", Some("mg/m³"), true)),
            (number("position", Capability::CoverPosition), tsl("CurtainPosition", "int", Some("%"), true)),
            (number("setpoint", Capability::Setpoint), tsl("TargetTemperature", "float", Some("°C"), true)),
        ];
        for (feature, expected) in cases {
            assert_eq!(tsl_identifier(&feature), expected, "{}", feature.key);
        }
    }

    #[test]
    fn derived_identifiers() {
        let cases = [
            // Capabilities without a standard property.
            (number("energy", Capability::Energy), tsl("energy", "double", Some("kWh"), false)),
            (number("voltage", Capability::Voltage), tsl("voltage", "double", Some("V"), false)),
            (number("current", Capability::Current), tsl("current", "double", Some("A"), false)),
            (number("co2", Capability::Co2), tsl("co2", "double", Some("ppm"), false)),
            (number("pressure", Capability::Pressure), tsl("pressure", "double", Some("hPa"), false)),
            (boolean("tamper", Capability::Tamper), tsl("tamper", "bool", None, false)),
            (
                Feature::new("fan_speed", Capability::FanSpeed, ValueType::range(0.0, 100.0, 1.0), Access::READ_WRITE),
                tsl("fan_speed", "int", Some("%"), false),
            ),
            (
                Feature::new("mode", Capability::HvacMode, ValueType::enumeration(["off", "heat"]), Access::READ_WRITE),
                tsl("mode", "enum", None, false),
            ),
            (
                Feature::new("name", Capability::Other, ValueType::Text { max_length: Some(32) }, Access::READ_WRITE),
                tsl("name", "text", None, false),
            ),
            (
                Feature::new("info", Capability::Other, ValueType::Object, Access::READ_ONLY),
                tsl("info", "text", None, false),
            ),
            (number("flow_rate", Capability::Other).unit("L/min"), tsl("flow_rate", "double", Some("L/min"), false)),
            // A standard capability whose value type does not fit the standard property.
            (
                Feature::new(
                    "brightness",
                    Capability::Brightness,
                    ValueType::enumeration(["low", "high"]),
                    Access::READ_WRITE,
                ),
                tsl("brightness", "enum", None, false),
            ),
            // A config feature keeps its own identifier.
            (
                boolean("led_indicator", Capability::OnOff).category(Category::Config),
                tsl("led_indicator", "bool", None, false),
            ),
            // A channel of a multi-channel device.
            (boolean("state_l2", Capability::OnOff).endpoint("l2"), tsl("powerstate_l2", "bool", None, true)),
            (boolean("state_left", Capability::OnOff).endpoint("left-1"), tsl("powerstate_left_1", "bool", None, true)),
        ];
        for (feature, expected) in cases {
            assert_eq!(tsl_identifier(&feature), expected, "{}", feature.key);
        }
        // Button presses are events, not properties.
        let action = Feature::new("action", Capability::Action, ValueType::enumeration(["single"]), Access::EVENT);
        assert_eq!(tsl_identifier(&action), None);
        assert_eq!(to_tsl(&action, &Value::from("single")), None);
        assert!(from_tsl(&action, &json!(0)).is_err());

        assert_eq!(derived_identifier("state_l2"), "state_l2");
        assert_eq!(derived_identifier("2nd-relay"), "f_2nd_relay");
        assert_eq!(derived_identifier("temp.°C"), "temp__C");
        assert_eq!(derived_identifier(""), "feature");
        assert_eq!(derived_identifier("value"), "value_");
        assert_eq!(derived_identifier("Time"), "Time_");
        assert_eq!(derived_identifier(&"x".repeat(80)), "x".repeat(50));
    }

    #[test]
    fn identifiers_of_a_device_are_unique() {
        let features = vec![
            boolean("state", Capability::OnOff),
            number("color_temperature", Capability::ColorTemperature),
            number("color_temp_startup", Capability::ColorTemperature),
            number("temperature", Capability::Temperature),
            number("Temperature-probe", Capability::Other),
            number("temperature_probe", Capability::Other),
            Feature::new("action", Capability::Action, ValueType::enumeration(["single"]), Access::EVENT),
        ];
        let map = tsl_identifiers(&features);
        let ids: Vec<(&str, &str, bool)> =
            map.iter().map(|(k, t)| (k.as_str(), t.identifier.as_str(), t.standard)).collect();
        assert_eq!(
            ids,
            vec![
                ("Temperature-probe", "Temperature_probe", false),
                ("color_temp_startup", "color_temp_startup", false),
                ("color_temperature", "ColorTemperature", true),
                ("state", "powerstate", true),
                ("temperature", "CurrentTemperature", true),
                ("temperature_probe", "temperature_probe_2", false),
            ]
        );
        // The renamed feature keeps its data type.
        assert_eq!(map["color_temp_startup"].data_type, "int");
    }

    #[test]
    fn values_go_to_tsl_and_back() {
        let on_off = boolean("state", Capability::OnOff);
        assert_eq!(to_tsl(&on_off, &Value::Bool(true)), Some(json!(1)));
        assert_eq!(to_tsl(&on_off, &Value::Bool(false)), Some(json!(0)));
        for (sent, expected) in
            [(json!(1), true), (json!(0), false), (json!(true), true), (json!("0"), false), (json!(1.0), true)]
        {
            assert_eq!(from_tsl(&on_off, &sent), Ok(Value::Bool(expected)), "{sent}");
        }
        assert_eq!(
            from_tsl(&on_off, &json!(2)),
            Err("feature `state` (TSL `powerstate`, bool) takes 0 or 1, not 2".to_owned())
        );
        let smoke = boolean("smoke", Capability::Smoke);
        assert_eq!(to_tsl(&smoke, &Value::Bool(true)), Some(json!(1)));

        let brightness =
            Feature::new("brightness", Capability::Brightness, ValueType::range(0.0, 100.0, 1.0), Access::READ_WRITE);
        assert_eq!(to_tsl(&brightness, &Value::Number(40.4)), Some(json!(40)));
        assert_eq!(to_tsl(&brightness, &Value::Number(40.5)).map(|j| j.to_string()), Some("41".to_owned()));
        assert_eq!(to_tsl(&brightness, &Value::Number(1e12)), None);
        assert_eq!(from_tsl(&brightness, &json!(40)), Ok(Value::Number(40.0)));
        assert_eq!(from_tsl(&brightness, &json!("30.5")), Ok(Value::Number(30.5)));
        assert_eq!(
            from_tsl(&brightness, &json!("bright")),
            Err(r#"feature `brightness` (TSL `Brightness`, int) takes a number, not "bright""#.to_owned())
        );

        // Floats keep a fraction, as the platform wants for float and double.
        let temperature = number("temperature", Capability::Temperature);
        assert_eq!(to_tsl(&temperature, &Value::Number(21.0)).map(|j| j.to_string()), Some("21.0".to_owned()));
        assert_eq!(to_tsl(&temperature, &Value::Number(-3.25)).map(|j| j.to_string()), Some("-3.25".to_owned()));
        assert_eq!(to_tsl(&temperature, &Value::Bool(true)), None);

        // A preset name goes up as its number; one without a number does not go up.
        let mut startup = number("color_temp_startup", Capability::ColorTemperature);
        startup.presets = vec![
            Preset { name: "coolest".into(), value: Some(6536.0), description: None },
            Preset { name: "previous".into(), value: None, description: None },
        ];
        assert_eq!(to_tsl(&startup, &Value::from("coolest")), Some(json!(6536)));
        assert_eq!(to_tsl(&startup, &Value::from("previous")), None);

        let mode = Feature::new(
            "mode",
            Capability::HvacMode,
            ValueType::enumeration(["off", "heat", "auto"]),
            Access::READ_WRITE,
        );
        assert_eq!(to_tsl(&mode, &Value::from("heat")), Some(json!(1)));
        assert_eq!(to_tsl(&mode, &Value::from("cool")), None);
        assert_eq!(from_tsl(&mode, &json!(2)), Ok(Value::from("auto")));
        assert_eq!(from_tsl(&mode, &json!("1")), Ok(Value::from("heat")));
        assert_eq!(from_tsl(&mode, &json!("off")), Ok(Value::from("off")));
        assert_eq!(
            from_tsl(&mode, &json!(3)),
            Err("feature `mode` (TSL `mode`, enum) takes an index from 0 to 2, not 3".to_owned())
        );
        assert!(from_tsl(&mode, &json!(1.5)).is_err());

        let name = Feature::new("name", Capability::Other, ValueType::Text { max_length: None }, Access::READ_WRITE);
        assert_eq!(to_tsl(&name, &Value::from("Kitchen")), Some(json!("Kitchen")));
        assert_eq!(from_tsl(&name, &json!("Hall")), Ok(Value::from("Hall")));
        assert!(from_tsl(&name, &json!(5)).is_err());

        let color = Feature::new("color", Capability::Color, ValueType::Color, Access::READ_WRITE);
        let orange = Value::Color(Color { hue: 30.4, saturation: 80.0 });
        assert_eq!(
            to_tsl(&color, &orange).map(|j| j.to_string()),
            Some(r#"{"Hue":30,"Saturation":80,"Value":100}"#.to_owned())
        );
        assert_eq!(
            from_tsl(&color, &json!({"Hue": 120, "Saturation": 50, "Value": 30})),
            Ok(Value::Color(Color { hue: 120.0, saturation: 50.0 }))
        );
        assert!(from_tsl(&color, &json!({"Hue": 120})).is_err());

        let presets = Feature::new("presets", Capability::Other, ValueType::List, Access::READ_ONLY);
        let list = Value::List(vec![Value::from("Evening"), Value::from("Party")]);
        assert_eq!(to_tsl(&presets, &list), Some(json!(r#"["Evening","Party"]"#)));
        assert_eq!(from_tsl(&presets, &json!(r#"["Evening","Party"]"#)), Ok(list.clone()));
        assert_eq!(from_tsl(&presets, &json!(["Evening", "Party"])), Ok(list));
        assert!(from_tsl(&presets, &json!(r#"{"a":1}"#)).is_err());

        let info = Feature::new("info", Capability::Other, ValueType::Object, Access::READ_ONLY);
        let object = Value::Object(BTreeMap::from([("leds".to_owned(), Value::Number(60.0))]));
        assert_eq!(to_tsl(&info, &object), Some(json!(r#"{"leds":60.0}"#)));
        assert_eq!(from_tsl(&info, &json!(r#"{"leds":60}"#)), Ok(object));
        assert!(from_tsl(&info, &json!("[1]")).is_err());
        assert!(from_tsl(&info, &json!("not json")).is_err());
    }
}
