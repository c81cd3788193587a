//! trueconf2mqtt: a bridge between TrueConf Room and MQTT.
pub mod backoff;
pub mod protocol;
pub mod room;
pub mod secret;
pub mod homeassistant;
