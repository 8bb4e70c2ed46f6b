//! Payloads as Tasmota firmware publishes them, for the decode tests. Each notes where it was
//! captured; masked addresses were replaced by made-up ones, nothing else was changed.

/// Sonoff Basic, Tasmota 9.2.0: `tasmota/discovery/84F3EB487D21/config` (captured by openHAB's
/// Tasmota binding, `MockExampleMessages.java`).
pub const SONOFF_BASIC: &str = r#"{"ip":"10.211.10.103","dn":"x3","fn":["Basic-3 x3",null,null,null,null,null,null,null],"hn":"ESP-Basic-3","mac":"84F3EB487D21","md":"Sonoff Basic","ty":0,"if":0,"ofln":"Offline","onln":"Online","state":["OFF","ON","TOGGLE","HOLD"],"sw":"9.2.0","t":"Basic-3","ft":"%prefix%/%topic%/","tp":["cmnd","stat","tele"],"rl":[1,0,0,0,0,0,0,0],"swc":[-1,-1,-1,-1,-1,-1,-1,-1],"swn":[null,null,null,null,null,null,null,null],"btn":[0,0,0,0],"so":{"4":0,"11":0,"13":0,"17":1,"20":0,"30":0,"68":0,"73":0,"82":0,"114":0},"lk":1,"lt_st":0,"sho":[0,0,0,0],"ver":1}"#;
/// Its sensors message (same capture).
pub const SONOFF_BASIC_SENSORS: &str = r#"{"sn":{"Time":"2021-02-24T08:50:09"},"ver":1}"#;
/// Its `tele/Basic-3/STATE` (same capture).
pub const SONOFF_BASIC_STATE: &str = r#"{"Time":"2021-02-24T10:40:12","Uptime":"0T01:52:05","UptimeSec":6725,"Heap":26,"SleepMode":"Dynamic","Sleep":100,"LoadAvg":12,"MqttCount":1,"POWER":"OFF","Wifi":{"AP":1,"SSId":"my-SSID","BSSId":"5C:92:5E:65:43:21","Channel":11,"RSSI":36,"Signal":-82,"LinkCount":1,"Downtime":"0T00:00:07"}}"#;

/// Sonoff T1 2CH, Tasmota 10.0.0: two relays (a comment in the `rxMessageDiscovery` of a Go
/// home automation service).
pub const SONOFF_T1_2CH: &str = r#"{"ip":"192.168.75.224","dn":"Tasmota","fn":["Tasmota","Tasmota2",null,null,null,null,null,null],"hn":"tasmota-B3DB2D-6957","mac":"D8F15BB3DB2D","md":"Sonoff T1 2CH","ty":0,"if":0,"ofln":"Offline","onln":"Online","state":["OFF","ON","TOGGLE","HOLD"],"sw":"10.0.0","t":"tasmota_B3DB2D","ft":"%prefix%/%topic%/","tp":["cmnd","stat","tele"],"rl":[1,1,0,0,0,0,0,0],"swc":[-1,-1,-1,-1,-1,-1,-1,-1],"swn":[null,null,null,null,null,null,null,null],"btn":[0,0,0,0,0,0,0,0],"so":{"4":0,"11":0,"13":0,"17":0,"20":0,"30":0,"68":0,"73":0,"82":0,"114":0,"117":0},"lk":0,"lt_st":0,"sho":[0,0,0,0],"ver":1}"#;
/// A two-relay `tele/.../STATE` (Tasmota 8.x, from a comment in a Python MQTT logger).
pub const TWO_RELAY_STATE: &str = r#"{"Time":"2020-08-30T10:14:45","Uptime":"48T19:42:51","Heap":14,"SleepMode":"Dynamic","Sleep":50,"LoadAvg":19,"POWER1":"OFF","POWER2":"OFF","Wifi":{"AP":1,"SSId":"Cisco52305","BSSId":"68:7F:74:49:E3:7E","Channel":6,"RSSI":42,"LinkCount":10,"Downtime":"0T00:00:56"}}"#;

/// H801 LED controller as RGBCW light (`lt_st` 5, linked), Tasmota 11.0.0 (a comment in
/// SmartHomeNG's Tasmota plugin).
pub const H801_RGBCW: &str = r#"{"ip":"192.168.2.31","dn":"SONOFF_RGBW1","fn":["SONOFF_RGBW",null,null,null,null,null,null,null],"hn":"SONOFF-RGBW1-5742","mac":"6001946F966E","md":"H801","ty":0,"if":0,"ofln":"Offline","onln":"Online","state":["OFF","ON","TOGGLE","HOLD"],"sw":"11.0.0","t":"SONOFF_RGBW1","ft":"%prefix%/%topic%/","tp":["cmnd","stat","tele"],"rl":[2,0,0,0,0,0,0,0],"swc":[-1,-1,-1,-1,-1,-1,-1,-1],"swn":[null,null,null,null,null,null,null,null],"btn":[0,0,0,0,0,0,0,0],"so":{"4":0,"11":0,"13":0,"17":0,"20":0,"30":0,"68":0,"73":0,"82":0,"114":0,"117":0},"lk":1,"lt_st":5,"sho":[0,0,0,0],"ver":1}"#;
/// An RGB+CW+WW light's state in white mode (`StatusSTS` of Tasmota 8.1, a comment in a
/// Tasmota client library).
pub const RGBCW_WHITE_STATE: &str = r#"{"Time":"2020-01-26T12:07:57","Uptime":"0T00:06:58","UptimeSec":418,"Heap":27,"SleepMode":"Dynamic","Sleep":10,"LoadAvg":99,"MqttCount":0,"POWER":"ON","Dimmer":100,"Color":"000000FF62","HSBColor":"0,0,0","Channel":[0,0,0,100,38],"CT":250,"Scheme":0,"Fade":"ON","Speed":10,"LedTable":"ON","Wifi":{"AP":1,"SSId":"network","BSSId":"4A:11:11:12:D9:11","Channel":1,"RSSI":96,"LinkCount":1,"Downtime":"0T00:00:06"}}"#;
/// The answer to `Dimmer 60` on an RGB light (Tasmota's Berry documentation).
pub const RGB_DIMMER_RESULT: &str =
    r#"{"POWER":"ON","Dimmer":60,"Color":"996245","HSBColor":"21,55,60","Channel":[60,38,27]}"#;

/// Single channel dimmer (`rl` 2, `lt_st` 1), Tasmota 9.3.0, from a Tasmota documentation page
/// of discovery examples (MAC masked there).
pub const HUZZAH_DIMMER: &str = r#"{"ip":"10.0.0.12","dn":"Huzzah 1","fn":["Relay 1",null,null,null,null,null,null,null],"hn":"tasmota-huzzah","mac":"A4CF12A1B2C3","md":"Huzzah","ty":0,"if":0,"ofln":"Offline","onln":"Online","state":["OFF","ON","TOGGLE","HOLD"],"sw":"9.3.0","t":"huzzah_1","ft":"%prefix%/%topic%/","tp":["cmnd","stat","tele"],"rl":[2,0,0,0,0,0,0,0],"swc":[-1,-1,-1,-1,-1,-1,-1,-1],"swn":[null,null,null,null,null,null,null,null],"btn":[0,0,0,0,0,0,0,0],"so":{"4":0,"11":0,"13":0,"17":0,"20":0,"30":1,"68":0,"73":0,"82":0,"114":0,"117":0},"lk":1,"lt_st":1,"sho":[0,0,0,0],"ver":1}"#;
/// Its state (same page).
pub const HUZZAH_DIMMER_STATE: &str = r#"{"Time":"2021-03-07T23:12:34","Uptime":"0T00:05:09","UptimeSec":309,"Heap":28,"SleepMode":"Dynamic","Sleep":10,"LoadAvg":99,"MqttCount":1,"POWER":"ON","Dimmer":7,"Fade":"OFF","Speed":1,"LedTable":"ON","Wifi":{"AP":1,"SSId":"xxxx","BSSId":"xx:xx:xx:xx:xx:xx","Channel":11,"RSSI":62,"Signal":-69,"LinkCount":1,"Downtime":"0T00:00:03"}}"#;

/// Sonoff iFan03 on a Huzzah (`if` 1, light on relay 1), Tasmota 9.3.0 (same page).
pub const IFAN03: &str = r#"{"ip":"10.0.0.13","dn":"Huzzah 1","fn":["Relay 1","Tasmota2","Tasmota3","Tasmota4",null,null,null,null],"hn":"tasmota-huzzah","mac":"A4CF12A1B2C4","md":"Huzzah","ty":0,"if":1,"ofln":"Offline","onln":"Online","state":["OFF","ON","TOGGLE","HOLD"],"sw":"9.3.0","t":"huzzah_1","ft":"%prefix%/%topic%/","tp":["cmnd","stat","tele"],"rl":[2,0,0,0,0,0,0,0],"swc":[-1,-1,-1,-1,-1,-1,-1,-1],"swn":[null,null,null,null,null,null,null,null],"btn":[0,0,0,0,0,0,0,0],"so":{"4":0,"11":0,"13":0,"17":0,"20":0,"30":1,"68":0,"73":0,"82":0,"114":0,"117":0},"lk":1,"lt_st":0,"sho":[0,0,0,0],"ver":1}"#;
/// Its state (same page).
pub const IFAN03_STATE: &str = r#"{"Time":"2021-02-24T15:57:44","Uptime":"0T10:15:10","UptimeSec":36910,"Heap":27,"SleepMode":"Dynamic","Sleep":50,"LoadAvg":19,"MqttCount":1,"POWER1":"OFF","FanSpeed":0,"Wifi":{"AP":1,"SSId":"xxxx","BSSId":"xx:xx:xx:xx:xx:xx","Channel":6,"RSSI":70,"Signal":-65,"LinkCount":1,"Downtime":"0T00:00:04"}}"#;

/// A Tasmota 15.4 config with every class at once: a light, a shutter pair, detached switches
/// and a detached button, the reduced CT range (from the tests of FHEM's MQTT2 discovery).
pub const ALL_CLASSES: &str = r#"{"ip":"192.0.2.12","dn":"All Classes","fn":["Color Light","Shutter",""],"hn":"all-classes","mac":"112233445566","md":"ESP32","ofln":"Offline","onln":"Online","state":["OFF","ON","TOGGLE","HOLD"],"sw":"15.4.0","t":"all_classes","ft":"%prefix%/%topic%/","tp":["cmnd","stat","tele"],"rl":[2,3,3],"swc":[5,13],"swn":["Door","Motion"],"btn":[1,0],"so":{"4":0,"11":0,"13":0,"30":0,"68":0,"73":1,"82":1,"114":1},"if":0,"cam":0,"ty":0,"lk":1,"lt_st":5,"sho":[0],"sht":[[0,90,10]],"ver":1}"#;

/// DHT11 sensor board (`tele/DHT-8/SENSOR`, Tasmota 9.2.0, openHAB's capture).
pub const DHT11_SENSOR: &str =
    r#"{"Time":"2021-02-24T10:40:13","DHT11":{"Temperature":19.0,"Humidity":16.0,"DewPoint":-7.5},"TempUnit":"C"}"#;
/// Its `stat/DHT-8/STATUS10` (same capture).
pub const DHT11_STATUS10: &str = r#"{"StatusSNS":{"Time":"2021-02-24T10:40:12","DHT11":{"Temperature":19.0,"Humidity":16.0,"DewPoint":-7.5},"TempUnit":"C"}}"#;
/// A DS18B20 with its id (same capture).
pub const DS18B20_SENSOR: &str =
    r#"{"Time":"2021-02-24T10:40:10","DS18B20":{"Id":"01162E1C14EE","Temperature":24.8},"TempUnit":"C"}"#;

/// A Sonoff POW R2's energy meter (`tele/sonoff_desk/SENSOR`, from the tests of a Tasmota to
/// SQL logger).
pub const POW_SENSOR: &str = r#"{"Time":"2023-05-19T20:52:56","ENERGY":{"TotalStartTime":"2022-03-20T15:20:48","Total":514.153,"Yesterday":1.495,"Today":0.537,"Period":0,"Power":56,"ApparentPower":92,"ReactivePower":73,"Factor":0.61,"Voltage":234,"Current":0.392}}"#;
/// A Sonoff Dual R3 with two metered channels and its meter chip's temperature (captured by the
/// wattson project).
pub const DUAL_R3_SENSOR: &str = r#"{"Time":"2026-09-18T11:19:21","ENERGY":{"TotalStartTime":"2026-09-16T00:00:00","Total":[2.813,0.254],"Yesterday":[1.530,0.125],"Today":[0.772,0.059],"Power":[52,5],"ApparentPower":[66,10],"ReactivePower":[40,9],"Factor":[0.79,0.50],"Voltage":235,"Current":[0.278,0.044],"BL09XX":{"Temperature":46.5}}}"#;
/// A Shelly 2.5 with its switches, its internal temperature in °F and its meter (a comment in a
/// Python MQTT logger).
pub const SHELLY25_SENSOR: &str = r#"{"Time":"2020-08-30T10:15:00","Switch1":"OFF","Switch2":"OFF","ANALOG":{"Temperature":100.1},"ENERGY":{"TotalStartTime":"2019-07-25T22:29:23","Total":0.586,"Yesterday":0.033,"Today":0.000,"Period":0,"Power":0,"ApparentPower":0,"ReactivePower":0,"Factor":0.00,"Voltage":0,"Current":0.000},"TempUnit":"F"}"#;

/// The sensors discovery message of a device whose `SENSOR` payload is `sensor` (Tasmota
/// publishes the same object under `sn`, see `TasDiscovery` in `xdrv_12_discovery.ino`).
pub fn sensors_message(sensor: &str) -> String {
    format!(r#"{{"sn":{sensor},"ver":1}}"#)
}
