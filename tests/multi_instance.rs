//! Several bridge instances on one mosquitto: rooms assigned in each instance's configuration,
//! every instance with its own bridge topics and last will, a room configured twice served by
//! exactly one instance, and a standby taking a room over when its owner stops or crashes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use trueconf2mqtt::bridge::ownership::Ownership;
use trueconf2mqtt::bridge::{self, Bridge, Tasks};
use trueconf2mqtt::mqtt::LinkOptions;
use trueconf2mqtt::simulator::{SimConfig, SimRoom};

use common::{
    Broker, Probe, Proxy, room_entry, test_bridge_options, test_link_options, test_room_options,
    wait_until,
};

const WAIT: Duration = Duration::from_secs(10);

/// One running bridge instance.
struct Instance {
    name: &'static str,
    bridge: Arc<Bridge>,
    tasks: Option<Tasks>,
    shutdown: CancellationToken,
}

impl Instance {
    /// An instance with `mqtt.instance = name`.
    fn start(name: &'static str, broker_port: u16, rooms: &[(&str, &SimRoom)]) -> Instance {
        Instance::launch(name, Some(name), broker_port, rooms)
    }

    /// A bridge without `mqtt.instance` (claims carry its client id) when `instance` is `None`.
    fn launch(
        name: &'static str,
        instance: Option<&str>,
        broker_port: u16,
        rooms: &[(&str, &SimRoom)],
    ) -> Instance {
        let mqtt = test_link_options(broker_port, &format!("trueconf2mqtt-{name}"));
        Instance::launch_with(name, instance, mqtt, rooms)
    }

    /// Like [`Instance::launch`], with chosen broker link options (a proxy's port, a short
    /// keepalive).
    fn launch_with(
        name: &'static str,
        instance: Option<&str>,
        mqtt: LinkOptions,
        rooms: &[(&str, &SimRoom)],
    ) -> Instance {
        let rooms = rooms
            .iter()
            .map(|(id, sim)| {
                room_entry(
                    id,
                    &format!("Room {id}"),
                    test_room_options(sim.http_port()),
                )
            })
            .collect();
        let options = test_bridge_options(mqtt, rooms);
        let shutdown = CancellationToken::new();
        let (bridge, tasks) =
            bridge::start_instance(options, instance.map(str::to_owned), shutdown.clone());
        Instance {
            name,
            bridge,
            tasks: Some(tasks),
            shutdown,
        }
    }

    fn topic(&self, suffix: &str) -> String {
        format!("trueconf/bridge/{}/{suffix}", self.name)
    }

    async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(tasks) = self.tasks.take() {
            self.bridge.clone().stop(tasks).await;
        }
    }
}

async fn sim() -> SimRoom {
    SimRoom::start(SimConfig {
        answer_delay: Duration::from_millis(5),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

/// Responses received so far on `topic`.
fn responses(probe: &Probe, topic: &str) -> Vec<Value> {
    probe
        .on(topic)
        .iter()
        .map(|m| serde_json::from_str(&m.payload).expect("response is JSON"))
        .collect()
}

/// Sends a command and waits for its first response; returns it.
async fn command(probe: &Probe, topic: &str, payload: &str, response: &str) -> Value {
    let before = probe.on(response).len();
    probe.publish(topic, payload).await;
    wait_until(WAIT, &format!("a response on {response}"), || {
        probe.on(response).len() > before
    })
    .await;
    responses(probe, response)[before].clone()
}

/// A bridge-level health check through the instance's own request topic. It also serves as a
/// fence: the instance has handled everything the probe published before it.
async fn health_check(probe: &Probe, instance: &Instance) -> Value {
    command(
        probe,
        &instance.topic("request/health_check"),
        "{}",
        &instance.topic("response/health_check"),
    )
    .await
}

/// The claim the broker now retains for `room`, as the probe saw it: the last message on the
/// owner topic that is not a transient intent (`None` once cleared).
fn claim_of(probe: &Probe, room: &str) -> Option<Value> {
    let last = probe
        .on(&format!("trueconf/{room}/owner"))
        .into_iter()
        .rev()
        .find(|m| !m.payload.contains("\"intent\":true"))?;
    (!last.payload.is_empty()).then(|| serde_json::from_str(&last.payload).expect("claim is JSON"))
}

#[tokio::test]
async fn disjoint_rooms_are_served_by_their_instances_each_with_its_own_availability() {
    let broker = Broker::start();
    let (alpha, beta) = (sim().await, sim().await);
    let probe = Probe::connect(broker.port, &["trueconf/#", "homeassistant/#"]).await;
    let mut east = Instance::start("east", broker.port, &[("alpha", &alpha)]);
    let mut west = Instance::start("west", broker.port, &[("beta", &beta)]);

    probe.wait_value(&east.topic("state"), "online", WAIT).await;
    probe.wait_value(&west.topic("state"), "online", WAIT).await;
    probe
        .wait_value("trueconf/alpha/availability", "online", WAIT)
        .await;
    probe
        .wait_value("trueconf/beta/availability", "online", WAIT)
        .await;
    // The single-bridge topics are not used by instances.
    assert_eq!(probe.latest("trueconf/bridge/state"), None);

    // Each room is claimed by its instance, and its entities follow that instance's state.
    assert_eq!(claim_of(&probe, "alpha").unwrap()["instance"], "east");
    assert_eq!(claim_of(&probe, "beta").unwrap()["instance"], "west");
    let config = probe
        .wait_latest(
            "homeassistant/switch/trueconf2mqtt_alpha/mic_muted/config",
            WAIT,
            |p| !p.is_empty(),
        )
        .await;
    let config: Value = serde_json::from_str(&config).unwrap();
    assert_eq!(
        config["availability"][0]["topic"], "trueconf/bridge/east/state",
        "{config}"
    );
    let info: Value = serde_json::from_str(
        &probe
            .wait_latest(&east.topic("info"), WAIT, |p| p.contains("\"online\""))
            .await,
    )
    .unwrap();
    assert_eq!(info["instance"], "east");
    assert_eq!(info["rooms"]["alpha"]["owner"], "owned");
    assert!(info["rooms"].get("beta").is_none(), "{info}");

    // A command is answered once, by the instance that has the room; the other stays silent
    // instead of answering "unknown room".
    let response = command(
        &probe,
        "trueconf/beta/set/mic_muted",
        "ON",
        "trueconf/beta/response/mic_muted",
    )
    .await;
    assert_eq!(response["status"], "ok", "{response}");
    health_check(&probe, &east).await;
    health_check(&probe, &west).await;
    assert_eq!(
        responses(&probe, "trueconf/beta/response/mic_muted").len(),
        1
    );
    probe
        .wait_value("trueconf/beta/mic_muted", "ON", WAIT)
        .await;

    // Stopping east takes down its bridge and its rooms only, and releases its claim.
    east.stop().await;
    probe
        .wait_value(&east.topic("state"), "offline", WAIT)
        .await;
    probe
        .wait_value("trueconf/alpha/availability", "offline", WAIT)
        .await;
    probe.wait_value("trueconf/alpha/owner", "", WAIT).await;
    health_check(&probe, &west).await;
    assert_eq!(
        probe.latest(&west.topic("state")).as_deref(),
        Some("online")
    );
    assert_eq!(
        probe.latest("trueconf/beta/availability").as_deref(),
        Some("online")
    );
    assert_eq!(claim_of(&probe, "beta").unwrap()["instance"], "west");
    west.stop().await;
}

#[tokio::test]
async fn a_room_configured_in_two_instances_is_served_by_one_and_refused_by_the_other() {
    let broker = Broker::start();
    let shared = sim().await;
    let probe = Probe::connect(broker.port, &["trueconf/#"]).await;
    let mut east = Instance::start("east", broker.port, &[("shared", &shared)]);
    probe
        .wait_value("trueconf/shared/availability", "online", WAIT)
        .await;
    let mut west = Instance::start("west", broker.port, &[("shared", &shared)]);

    // West sees east's earlier, live claim and refuses the room, saying who has it.
    let info: Value = serde_json::from_str(
        &probe
            .wait_latest(&west.topic("info"), WAIT, |p| p.contains("\"refused\""))
            .await,
    )
    .unwrap();
    let room = &info["rooms"]["shared"];
    assert_eq!(room["state"], "refused", "{info}");
    assert_eq!(room["owned_by"]["instance"], "east", "{info}");
    assert!(
        room["reason"].as_str().unwrap().contains("'east'"),
        "{info}"
    );
    assert!(matches!(
        west.bridge.ownership("shared"),
        Some(Ownership::Refused { ref by, .. }) if by == "east"
    ));
    assert_eq!(east.bridge.ownership("shared"), Some(Ownership::Owned));
    let health = health_check(&probe, &west).await;
    assert_eq!(
        health["data"]["ownership"]["shared"], "refused: served by 'east'",
        "{health}"
    );
    // The claim on the broker is still east's, and west never connected to the Room (a Room
    // takes one controller: a second would have pushed east off).
    assert_eq!(claim_of(&probe, "shared").unwrap()["instance"], "east");
    assert_eq!(shared.authenticated_connections(), 1);
    assert!(west.bridge.room("shared").is_none());

    // Exactly one response per command, from east.
    let response = command(
        &probe,
        "trueconf/shared/request/getAppState",
        "{\"transaction\":7}",
        "trueconf/shared/response/getAppState",
    )
    .await;
    assert_eq!(response["status"], "ok", "{response}");
    assert_eq!(response["transaction"], 7, "{response}");
    health_check(&probe, &west).await;
    health_check(&probe, &east).await;
    assert_eq!(
        responses(&probe, "trueconf/shared/response/getAppState").len(),
        1
    );
    west.stop().await;
    // West's stop touches nothing of east's.
    health_check(&probe, &east).await;
    assert_eq!(claim_of(&probe, "shared").unwrap()["instance"], "east");
    assert_eq!(
        probe.latest("trueconf/shared/availability").as_deref(),
        Some("online")
    );
    east.stop().await;
}

#[tokio::test]
async fn a_standby_instance_takes_the_room_over_when_the_owner_stops() {
    let broker = Broker::start();
    let shared = sim().await;
    let probe = Probe::connect(broker.port, &["trueconf/#", "homeassistant/#"]).await;
    let mut east = Instance::start("east", broker.port, &[("shared", &shared)]);
    probe
        .wait_value("trueconf/shared/availability", "online", WAIT)
        .await;
    let mut west = Instance::start("west", broker.port, &[("shared", &shared)]);
    wait_until(WAIT, "west refuses the room", || {
        matches!(
            west.bridge.ownership("shared"),
            Some(Ownership::Refused { .. })
        )
    })
    .await;

    east.stop().await;
    wait_until(WAIT, "west takes the room over", || {
        west.bridge.ownership("shared") == Some(Ownership::Owned)
    })
    .await;
    probe
        .wait_latest("trueconf/shared/owner", WAIT, |p| p.contains("\"west\""))
        .await;
    probe
        .wait_value("trueconf/shared/availability", "online", WAIT)
        .await;
    probe
        .wait_latest(
            "homeassistant/switch/trueconf2mqtt_shared/mic_muted/config",
            WAIT,
            |p| p.contains("trueconf/bridge/west/state"),
        )
        .await;

    // Commands now go to west, once each.
    let response = command(
        &probe,
        "trueconf/shared/set/mic_muted",
        "ON",
        "trueconf/shared/response/mic_muted",
    )
    .await;
    assert_eq!(response["status"], "ok", "{response}");
    health_check(&probe, &west).await;
    assert_eq!(
        responses(&probe, "trueconf/shared/response/mic_muted").len(),
        1
    );
    assert!(
        shared.snapshot().mic_muted,
        "the Room was muted through west"
    );

    // East, restarted, finds west's live, earlier claim and stands by: no flapping.
    let mut east = Instance::start("east", broker.port, &[("shared", &shared)]);
    wait_until(WAIT, "the restarted east refuses the room", || {
        matches!(east.bridge.ownership("shared"), Some(Ownership::Refused { ref by, .. }) if by == "west")
    })
    .await;
    assert_eq!(west.bridge.ownership("shared"), Some(Ownership::Owned));
    assert_eq!(claim_of(&probe, "shared").unwrap()["instance"], "west");
    east.stop().await;
    west.stop().await;
}

/// Messages on `topic` the probe received after the first `mark` messages of its log.
fn since(probe: &Probe, mark: usize, topic: &str) -> Vec<common::Message> {
    probe
        .messages()
        .into_iter()
        .skip(mark)
        .filter(|m| m.topic == topic)
        .collect()
}

#[tokio::test]
async fn a_crashed_owner_is_taken_over_after_its_last_will() {
    let broker = Broker::start();
    let shared = sim().await;
    let probe = Probe::connect(broker.port, &["trueconf/#"]).await;
    // East reaches the broker through a proxy, with a short keepalive: the broker gives up on it
    // (and publishes its last will) about 3 s after it last heard from it.
    let proxy = Proxy::start(broker.port).await;
    let east = Instance::launch_with(
        "east",
        Some("east"),
        LinkOptions {
            keepalive: Duration::from_secs(2),
            ..test_link_options(proxy.port, "trueconf2mqtt-east")
        },
        &[("shared", &shared)],
    );
    probe.wait_value(&east.topic("state"), "online", WAIT).await;
    probe
        .wait_value("trueconf/shared/availability", "online", WAIT)
        .await;
    let mut west = Instance::start("west", broker.port, &[("shared", &shared)]);
    wait_until(WAIT, "west refuses the room", || {
        matches!(
            west.bridge.ownership("shared"),
            Some(Ownership::Refused { ref by, .. }) if by == "east"
        )
    })
    .await;
    assert_eq!(east.bridge.ownership("shared"), Some(Ownership::Owned));
    assert_eq!(claim_of(&probe, "shared").unwrap()["instance"], "east");
    wait_until(WAIT, "east alone connected to the Room", || {
        shared.authenticated_connections() == 1 && east.bridge.room("shared").is_some()
    })
    .await;

    // The crash: the broker stops hearing from east (nothing east sends from now on gets
    // through, on this connection or a new one), and east's WebSocket to the Room dies. No
    // graceful stop: east neither publishes `offline` nor clears its claim.
    let mark = probe.messages().len();
    proxy.blackhole();
    east.bridge
        .room("shared")
        .expect("east serves the room")
        .close()
        .await;
    wait_until(WAIT, "the Room lost its controller", || {
        shared.authenticated_connections() == 0
    })
    .await;

    // The broker publishes east's last will, the claim still standing (a graceful stop would
    // have cleared it before going offline).
    wait_until(WAIT, "east's last will (`offline`)", || {
        since(&probe, mark, &east.topic("state"))
            .iter()
            .any(|m| m.payload == "offline")
    })
    .await;
    assert!(
        since(&probe, mark, "trueconf/shared/owner")
            .iter()
            .all(|m| !m.payload.is_empty()),
        "east's claim was cleared: not a crash"
    );

    // West takes the room over, claims it and serves it.
    wait_until(WAIT, "west takes the room over", || {
        west.bridge.ownership("shared") == Some(Ownership::Owned)
    })
    .await;
    probe
        .wait_latest("trueconf/shared/owner", WAIT, |p| {
            p.contains("\"instance\":\"west\"") && !p.contains("\"intent\":true")
        })
        .await;
    assert_eq!(claim_of(&probe, "shared").unwrap()["instance"], "west");
    wait_until(WAIT, "the room online again, published by west", || {
        since(&probe, mark, "trueconf/shared/availability")
            .last()
            .is_some_and(|m| m.payload == "online")
    })
    .await;
    wait_until(WAIT, "west alone connected to the Room", || {
        shared.authenticated_connections() == 1
            && west
                .bridge
                .room("shared")
                .is_some_and(|c| c.link().borrow().is_online())
    })
    .await;

    // One response per command, from west.
    let response = command(
        &probe,
        "trueconf/shared/request/getAppState",
        "{\"transaction\":11}",
        "trueconf/shared/response/getAppState",
    )
    .await;
    assert_eq!(response["status"], "ok", "{response}");
    assert_eq!(response["transaction"], 11, "{response}");
    health_check(&probe, &west).await;
    assert_eq!(
        responses(&probe, "trueconf/shared/response/getAppState").len(),
        1
    );
    assert_eq!(shared.authenticated_connections(), 1);

    // Nothing of east's got through after the crash but its will; east never learned of it.
    assert!(
        since(&probe, mark, &east.topic("info")).is_empty(),
        "east published after the crash"
    );
    assert_eq!(east.bridge.ownership("shared"), Some(Ownership::Owned));

    // What the broker retains now, as a client connecting afterwards sees it.
    let late = Probe::connect(
        broker.port,
        &[
            "trueconf/shared/owner",
            "trueconf/shared/availability",
            "trueconf/bridge/east/state",
        ],
    )
    .await;
    late.wait_value(&east.topic("state"), "offline", WAIT).await;
    late.wait_latest("trueconf/shared/owner", WAIT, |p| {
        p.contains("\"instance\":\"west\"")
    })
    .await;
    late.wait_value("trueconf/shared/availability", "online", WAIT)
        .await;
    west.stop().await;
    // East stays blackholed until the test ends: it is dropped, never stopped.
}

#[tokio::test]
async fn two_instances_started_together_with_the_same_room_settle_on_one() {
    let broker = Broker::start();
    let shared = sim().await;
    let probe = Probe::connect(broker.port, &["trueconf/#"]).await;
    let mut east = Instance::start("east", broker.port, &[("shared", &shared)]);
    let mut west = Instance::start("west", broker.port, &[("shared", &shared)]);
    let owned = |i: &Instance| i.bridge.ownership("shared") == Some(Ownership::Owned);
    let refused = |i: &Instance| {
        matches!(
            i.bridge.ownership("shared"),
            Some(Ownership::Refused { .. })
        )
    };
    wait_until(WAIT, "one owner and one standby", || {
        (owned(&east) && refused(&west)) || (owned(&west) && refused(&east))
    })
    .await;
    let owner = if owned(&east) { "east" } else { "west" };
    probe
        .wait_latest("trueconf/shared/owner", WAIT, |p| {
            p.contains(&format!("\"{owner}\""))
        })
        .await;
    probe
        .wait_value("trueconf/shared/availability", "online", WAIT)
        .await;
    assert_eq!(shared.authenticated_connections(), 1);
    east.stop().await;
    west.stop().await;
}

#[tokio::test]
async fn a_second_lone_bridge_for_the_same_room_steps_back() {
    // Two bridges without `mqtt.instance` (a second deployment by mistake): each serves its
    // Rooms from the start, without waiting for the broker, and the later one steps back as soon
    // as it sees the earlier one's live claim, so the Room ends up with one controller.
    let broker = Broker::start();
    let room = sim().await;
    let mut first = Instance::launch("first", None, broker.port, &[("r1", &room)]);
    assert_eq!(first.bridge.ownership("r1"), Some(Ownership::Owned));
    wait_until(WAIT, "the first bridge connected to the Room", || {
        room.authenticated_connections() == 1
    })
    .await;
    let mut second = Instance::launch("second", None, broker.port, &[("r1", &room)]);
    wait_until(WAIT, "the second bridge stepped back", || {
        matches!(
            second.bridge.ownership("r1"),
            Some(Ownership::Refused { ref by, .. }) if by == first.bridge.instance()
        )
    })
    .await;
    wait_until(WAIT, "the first bridge serves the Room, alone", || {
        first
            .bridge
            .room("r1")
            .is_some_and(|c| c.link().borrow().is_online())
            && room.authenticated_connections() == 1
            && second.bridge.room("r1").is_none()
    })
    .await;
    assert_eq!(first.bridge.ownership("r1"), Some(Ownership::Owned));
    second.stop().await;
    first.stop().await;
}
