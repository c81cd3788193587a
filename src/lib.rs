//! trueconf2mqtt: a bridge between TrueConf Room and MQTT.
pub mod backoff;
pub mod protocol;
pub mod room;
pub mod secret;
pub mod bridge;
pub mod mqtt;
pub mod config;
pub mod homeassistant;
pub mod simulator;
pub mod app;
pub mod cli;
