//! The room panel end to end (issue 17): camera presets, content, slides, participants and
//! floor control, recording consent, monitors, the friendly status and the dial box — each
//! round-trips MQTT → Room (the simulator) → state → MQTT, and the Home Assistant entities
//! command the Room through the topics their discovery configs name.

mod common;

use std::time::Duration;

use serde_json::Value;
use trueconf2mqtt::protocol::AppState;
use trueconf2mqtt::simulator::{SimConfig, SimRoom};

use common::{
    Broker, Probe, Running, room_entry, test_bridge_options, test_link_options, test_room_options,
    within,
};

const WAIT: Duration = Duration::from_secs(10);
const ROOM: &str = "huddle";

fn t(suffix: &str) -> String {
    format!("trueconf/{ROOM}/{suffix}")
}

struct Panel {
    _broker: Broker,
    room: SimRoom,
    probe: Probe,
    bridge: Running,
}

impl Panel {
    async fn start() -> Panel {
        let broker = Broker::start();
        let room = SimRoom::start(SimConfig {
            answer_delay: Duration::from_millis(10),
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let probe = Probe::connect(broker.port, &["trueconf/#", "homeassistant/#"]).await;
        let entry = room_entry(ROOM, "Huddle", test_room_options(room.http_port()));
        let bridge = Running::start(test_bridge_options(
            test_link_options(broker.port, "room-panel"),
            vec![entry],
        ));
        probe.wait_value(&t("availability"), "online", WAIT).await;
        Panel {
            _broker: broker,
            room,
            probe,
            bridge,
        }
    }

    /// Publishes on `set/<field>` and returns the response.
    async fn set(&self, field: &str, payload: &str) -> Value {
        self.publish_and_wait(&t(&format!("set/{field}")), payload, field)
            .await
    }

    async fn publish_and_wait(&self, topic: &str, payload: &str, response: &str) -> Value {
        let response_topic = t(&format!("response/{response}"));
        let before = self.probe.on(&response_topic).len();
        self.probe.publish(topic, payload).await;
        within(WAIT, &format!("response on {response_topic}"), async {
            loop {
                let all = self.probe.on(&response_topic);
                if all.len() > before {
                    return serde_json::from_str(&all[before].payload).expect("JSON response");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
    }

    async fn ok(&self, field: &str, payload: &str) {
        let r = self.set(field, payload).await;
        assert_eq!(r["status"], "ok", "{field} = {payload}: {r}");
    }

    async fn error(&self, field: &str, payload: &str) -> String {
        let r = self.set(field, payload).await;
        assert_eq!(r["status"], "error", "{field} = {payload}: {r}");
        r["error"].as_str().unwrap().to_owned()
    }

    /// The JSON state document.
    async fn state_where(&self, check: impl Fn(&Value) -> bool) -> Value {
        let text = self
            .probe
            .wait_latest(&format!("trueconf/{ROOM}"), WAIT, |p| {
                serde_json::from_str::<Value>(p).is_ok_and(|v| check(&v))
            })
            .await;
        serde_json::from_str(&text).unwrap()
    }

    /// The latest discovery config of a Home Assistant entity (per-entity discovery:
    /// `homeassistant/<component>/trueconf2mqtt_<room>/<object>/config`).
    async fn ha_entity(&self, object: &str) -> Value {
        let suffix = format!("/trueconf2mqtt_{ROOM}/{object}/config");
        within(WAIT, &format!("discovery of {object}"), async {
            loop {
                let found =
                    self.probe.messages().into_iter().rev().find(|m| {
                        m.topic.starts_with("homeassistant/") && m.topic.ends_with(&suffix)
                    });
                if let Some(m) = found.filter(|m| !m.payload.is_empty()) {
                    return serde_json::from_str(&m.payload).expect("JSON config");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
    }

    /// Presses a Home Assistant button / sets a select, as Home Assistant would: publishes
    /// the payload to the entity's `command_topic`.
    async fn ha_command(&self, object: &str, payload: Option<&str>) -> Value {
        let entity = self.ha_entity(object).await;
        let topic = entity["command_topic"].as_str().unwrap().to_owned();
        let payload = payload
            .map(str::to_owned)
            .or_else(|| entity["payload_press"].as_str().map(str::to_owned))
            .expect("a payload");
        let field = topic.rsplit('/').next().unwrap().to_owned();
        self.publish_and_wait(&topic, &payload, &field).await
    }

    async fn start_call(&self) {
        self.room
            .incoming_call("bob@sim.trueconf.local", "Bob")
            .unwrap();
        self.probe.wait_value(&t("ringing"), "ON", WAIT).await;
        self.ok("call", "accept").await;
        self.probe.wait_value(&t("in_call"), "ON", WAIT).await;
        self.room
            .participant_joins("carol@sim.trueconf.local/c1", "Carol")
            .unwrap();
        self.probe
            .wait_latest(&t("participant_names"), WAIT, |p| p.contains("Carol"))
            .await;
    }
}

#[tokio::test]
async fn camera_presets_apply_save_and_follow_the_room() {
    let mut p = Panel::start().await;
    // The simulated Room comes with two presets of its PTZ camera.
    let state = p
        .state_where(|s| s["presets"].as_array().is_some_and(|l| l.len() == 2))
        .await;
    assert_eq!(state["presets"][0]["name"], "Preset 1");
    p.probe.wait_value(&t("preset_count"), "2", WAIT).await;
    let select = p.ha_entity("preset").await;
    assert_eq!(
        select["options"],
        serde_json::json!(["Preset 1", "Preset 2"])
    );

    // Apply by label: the camera moves to the stored position, the state says which preset.
    p.ok("preset", "Preset 2").await;
    p.probe.wait_value(&t("preset"), "Preset 2", WAIT).await;
    let ptz = p.room.snapshot().ptz;
    assert_eq!((ptz.pan, ptz.tilt, ptz.zoom), (-6, 3, 3));

    // Moving the camera leaves the preset.
    p.ok("ptz", "left").await;
    p.probe.wait_value(&t("preset"), "", WAIT).await;

    // Save the new position as a preset; the HA select learns it.
    let r = p.ha_command("preset_save", None).await;
    assert_eq!(r["status"], "ok", "{r}");
    assert!(r["data"]["presetId"].is_string(), "{r}");
    p.probe.wait_value(&t("preset_count"), "3", WAIT).await;
    within(WAIT, "select options with Preset 3", async {
        while p.ha_entity("preset").await["options"]
            .as_array()
            .is_none_or(|o| o.len() != 3)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    // Number and id work too; HA's select sends the label.
    p.ok("preset", "1").await;
    p.probe.wait_value(&t("preset"), "Preset 1", WAIT).await;
    assert_eq!(p.room.snapshot().ptz.pan, 0);
    let r = p.ha_command("preset", Some("Preset 3")).await;
    assert_eq!(r["status"], "ok", "{r}");
    p.probe.wait_value(&t("preset"), "Preset 3", WAIT).await;
    assert_eq!(p.room.snapshot().ptz.pan, -7);

    // Overwrite preset 1 with the current position (Preset 3 stands at pan -7, tilt 3).
    p.ok("ptz", "up").await;
    p.ok("preset_save", "Preset 1").await;
    p.ok("preset", "Preset 3").await;
    p.ok("preset", "Preset 1").await;
    p.probe.wait_value(&t("preset"), "Preset 1", WAIT).await;
    assert_eq!(
        (p.room.snapshot().ptz.pan, p.room.snapshot().ptz.tilt),
        (-7, 4)
    );

    // Clear errors.
    let e = p.error("preset", "Preset 9").await;
    assert!(
        e.contains("no preset 'Preset 9' (available: Preset 1, Preset 2, Preset 3)"),
        "{e}"
    );
    let e = p.error("preset_save", "latest").await;
    assert!(
        e.contains("no preset 'latest' (available: Preset 1,"),
        "{e}"
    );

    // The Room's own panel: a preset saved, applied and removed there shows up here.
    p.room.room_saves_preset().unwrap();
    p.probe.wait_value(&t("preset_count"), "4", WAIT).await;
    p.room.room_applies_preset("2").unwrap();
    p.probe.wait_value(&t("preset"), "Preset 2", WAIT).await;
    p.room.room_removes_preset("1").unwrap();
    p.probe.wait_value(&t("preset_count"), "3", WAIT).await;
    // Renumbered: the applied preset is now the first.
    p.probe.wait_value(&t("preset"), "Preset 1", WAIT).await;
    p.bridge.stop().await;
}

#[tokio::test]
async fn content_and_slides_round_trip() {
    let mut p = Panel::start().await;
    let state = p
        .state_where(|s| {
            s["content_sources"]
                .as_array()
                .is_some_and(|l| l.len() == 3)
        })
        .await;
    assert_eq!(state["content_sources"][0], "Screen 1");
    // Not in a call: the Room refuses, and says so.
    let e = p.error("content", "Screen 2").await;
    assert!(e.contains("not available"), "{e}");
    let e = p.error("content", "Nope").await;
    assert!(
        e.contains("no content source 'Nope' (available: Screen 1, Screen 2"),
        "{e}"
    );

    p.start_call().await;
    let r = p
        .ha_command("content", Some("Presentation - PowerPoint"))
        .await;
    assert_eq!(r["status"], "ok", "{r}");
    p.probe
        .wait_value(&t("content"), "Presentation - PowerPoint", WAIT)
        .await;
    p.probe.wait_value(&t("content_active"), "ON", WAIT).await;
    let r = p.ha_command("content_stop", None).await;
    assert_eq!(r["status"], "ok", "{r}");
    p.probe.wait_value(&t("content_active"), "OFF", WAIT).await;
    p.probe.wait_value(&t("content"), "", WAIT).await;
    // Shared at the Room itself.
    p.room.room_shares(Some("Screen 2")).unwrap();
    p.probe.wait_value(&t("content"), "Screen 2", WAIT).await;
    // The default source, and asking a participant to stop sharing.
    p.ok("content", "default Screen 2").await;
    p.state_where(|s| s["content_default"] == "Screen 2").await;
    p.ok("content", "stop carol@sim.trueconf.local/c1").await;
    let e = p.error("content", "stop dave@sim.trueconf.local/d1").await;
    assert!(e.contains("no participant"), "{e}");

    // Slides: five loaded in the simulated Room.
    let e = p.error("slides", "7").await;
    assert!(e.contains("no slide 7: slides are 1..=5"), "{e}");
    let e = p.error("slides", "sideways").await;
    assert!(e.contains("expected start, stop, next, prev"), "{e}");
    let r = p.ha_command("slides_start", None).await;
    assert_eq!(r["status"], "ok", "{r}");
    p.probe.wait_value(&t("slideshow"), "ON", WAIT).await;
    p.probe.wait_value(&t("slide"), "1", WAIT).await;
    p.ok("slides", "next").await;
    p.probe.wait_value(&t("slide"), "2", WAIT).await;
    p.ok("slides", "4").await;
    p.probe.wait_value(&t("slide"), "4", WAIT).await;
    assert_eq!(p.room.snapshot().slide, Some(3));
    let r = p.ha_command("slides_prev", None).await;
    assert_eq!(r["status"], "ok", "{r}");
    p.probe.wait_value(&t("slide"), "3", WAIT).await;
    p.probe.wait_value(&t("slide_count"), "5", WAIT).await;
    // The presenter at the Room.
    p.room.room_slides("5").unwrap();
    p.probe.wait_value(&t("slide"), "5", WAIT).await;
    p.ok("slides", "stop").await;
    p.probe.wait_value(&t("slideshow"), "OFF", WAIT).await;

    // Hanging up ends the sharing.
    p.ok("call", "hangup").await;
    p.probe.wait_value(&t("content_active"), "OFF", WAIT).await;
    p.bridge.stop().await;
}

#[tokio::test]
async fn participants_floor_control_and_recording_consent() {
    let mut p = Panel::start().await;
    let e = p
        .error("remote_mic", "carol@sim.trueconf.local/c1 OFF")
        .await;
    assert!(e.contains("no call is running"), "{e}");
    p.start_call().await;
    let state = p.state_where(|s| s["participant_count"] == 2).await;
    assert_eq!(state["participant_names"], "Bob, Carol");
    let sensor = p.ha_entity("participant_count").await;
    assert!(
        sensor["json_attributes_template"]
            .as_str()
            .unwrap()
            .contains("participants"),
        "{sensor}"
    );

    // Remote mic / camera: validated InstanceIds of the call.
    let e = p.error("remote_mic", "carol@sim.trueconf.local OFF").await;
    assert!(e.contains("expected a participant's InstanceId"), "{e}");
    let e = p
        .error("remote_mic", "dave@sim.trueconf.local/d1 OFF")
        .await;
    assert!(
        e.contains("'dave@sim.trueconf.local/d1' is not in the call"),
        "{e}"
    );
    let e = p
        .error("remote_camera", "carol@sim.trueconf.local/c1 maybe")
        .await;
    assert!(e.contains("`<InstanceId> ON`"), "{e}");
    let before = p.probe.on(&t("event/deviceStatusReceived")).len();
    p.ok("remote_mic", "carol@sim.trueconf.local/c1 OFF").await;
    p.ok("remote_camera", "carol@sim.trueconf.local/c1 OFF")
        .await;
    within(WAIT, "two deviceStatusReceived events", async {
        while p.probe.on(&t("event/deviceStatusReceived")).len() < before + 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let events = p.probe.on(&t("event/deviceStatusReceived"));
    let mic: Value = serde_json::from_str(&events[before].payload).unwrap();
    assert_eq!(
        (mic["mic"].as_i64(), mic["video"].as_i64()),
        (Some(1), Some(2))
    );

    // Podium: a request arrives, the HA button accepts the oldest.
    let e = p.error("podium", "accept").await;
    assert!(e.contains("nobody asks for the podium"), "{e}");
    p.room
        .podium_request("carol@sim.trueconf.local/c1")
        .unwrap();
    p.probe
        .wait_value(&t("podium_request_count"), "1", WAIT)
        .await;
    let r = p.ha_command("podium_accept", None).await;
    assert_eq!(r["status"], "ok", "{r}");
    p.probe
        .wait_value(&t("podium_request_count"), "0", WAIT)
        .await;
    p.room
        .podium_request("carol@sim.trueconf.local/c1")
        .unwrap();
    p.probe
        .wait_value(&t("podium_request_count"), "1", WAIT)
        .await;
    p.ok("podium", "reject carol@sim.trueconf.local/c1").await;
    p.probe
        .wait_value(&t("podium_request_count"), "0", WAIT)
        .await;

    // Camera control requests.
    p.room
        .camera_control_request("carol@sim.trueconf.local/c1")
        .unwrap();
    p.state_where(|s| {
        s["camera_control_requests"]
            .as_array()
            .is_some_and(|l| l.len() == 1)
    })
    .await;
    p.ok("camera_control", "accept").await;
    p.state_where(|s| {
        s["camera_control_requests"]
            .as_array()
            .is_some_and(Vec::is_empty)
    })
    .await;

    // Recording consent.
    let e = p.error("record_consent", "allow").await;
    assert!(e.contains("nobody asks to record"), "{e}");
    p.room
        .record_request("carol@sim.trueconf.local/c1")
        .unwrap();
    p.probe
        .wait_value(&t("record_consent_pending"), "ON", WAIT)
        .await;
    let r = p.ha_command("record_allow", None).await;
    assert_eq!(r["status"], "ok", "{r}");
    p.probe
        .wait_value(&t("record_consent_pending"), "OFF", WAIT)
        .await;
    let reply = p
        .probe
        .wait_message(&t("event/recordRequestReply"), WAIT, |_| true)
        .await;
    assert!(
        reply.payload.contains("\"recordAllowed\":true"),
        "{}",
        reply.payload
    );
    p.room.set_recording(true).unwrap();
    p.probe.wait_value(&t("recording"), "ON", WAIT).await;
    p.ok("call", "hangup").await;
    p.probe.wait_value(&t("recording"), "OFF", WAIT).await;
    p.probe.wait_value(&t("participant_names"), "", WAIT).await;
    p.bridge.stop().await;
}

#[tokio::test]
async fn monitors_status_and_the_dial_box() {
    let mut p = Panel::start().await;
    p.probe.wait_value(&t("status"), "Idle", WAIT).await;
    p.probe.wait_value(&t("monitor"), "PHL 275E1", WAIT).await;
    let select = p.ha_entity("monitor").await;
    assert_eq!(
        select["options"],
        serde_json::json!(["PHL 275E1", "Generic PnP Monitor"])
    );
    let r = p.ha_command("monitor", Some("Generic PnP Monitor")).await;
    assert_eq!(r["status"], "ok", "{r}");
    p.probe
        .wait_value(&t("monitor"), "Generic PnP Monitor", WAIT)
        .await;
    assert_eq!(p.room.snapshot().current_monitor, 1);
    let e = p.error("monitor", "Projector").await;
    assert!(
        e.contains("no monitor 'Projector' (available: PHL 275E1, Generic PnP Monitor)"),
        "{e}"
    );

    // The dial box says what is wrong.
    for (payload, says) in [
        ("bob smith@srv", "contains a space"),
        ("@srv", "the user part before '@' is empty"),
        ("bob@", "the server part after '@' is empty"),
        ("bob@srv@x", "more than one '@'"),
        ("bob@.srv", "is not a valid server name"),
    ] {
        let e = p.error("call", payload).await;
        assert!(e.contains(says), "{payload}: {e}");
    }
    assert_eq!(p.room.snapshot().app_state, AppState::Normal);
    p.ok("call", "alice@sim.trueconf.local").await;
    p.probe.wait_value(&t("status"), "In call", WAIT).await;
    // The HA state sensor shows the friendly names; the raw word is an attribute.
    let sensor = p.ha_entity("app_state").await;
    assert!(
        sensor["options"]
            .as_array()
            .unwrap()
            .contains(&Value::from("In call")),
        "{sensor}"
    );
    p.bridge.stop().await;
}
