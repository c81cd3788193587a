//! trueconf2mqtt: a bridge between TrueConf Room and MQTT.
pub mod protocol;
