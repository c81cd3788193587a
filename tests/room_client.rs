//! The Room client against the simulator over a real WebSocket.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use trueconf2mqtt::protocol::{AppState, EventKind};
use trueconf2mqtt::room::{LinkState, RoomClient, RoomError, RoomOptions};
use trueconf2mqtt::simulator::{GarbageKind, SimConfig, SimRoom};

use common::within;

const PIN: &str = "0123";
const WAIT: Duration = Duration::from_secs(10);

async fn sim() -> SimRoom {
    SimRoom::start(SimConfig {
        pin: Some(PIN.into()),
        answer_delay: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

fn options(room: &SimRoom) -> RoomOptions {
    let mut o = RoomOptions::new("127.0.0.1", room.http_port()).with_pin(PIN);
    o.keepalive = Duration::from_millis(900);
    o.reconnect_min = Duration::from_millis(50);
    o.reconnect_max = Duration::from_millis(400);
    o.request_timeout = Duration::from_secs(3);
    o.auth_retry = Duration::from_millis(300);
    o
}

async fn online(room: &SimRoom) -> RoomClient {
    RoomClient::connect(options(room)).await.expect("connects")
}

async fn wait_link(client: &RoomClient, what: &str, check: impl Fn(&LinkState) -> bool) {
    let mut link = client.link();
    within(WAIT, what, link.wait_for(|s| check(s)))
        .await
        .expect("link watch open");
}

#[tokio::test]
async fn pin_auth_and_resync_fill_the_state() {
    let room = sim().await;
    let client = online(&room).await;
    let state = client.state().borrow().clone();
    assert_eq!(state.app_state, Some(AppState::Normal));
    assert_eq!(state.user.as_deref(), Some("room@sim.trueconf.local"));
    assert_eq!(state.mic_muted, Some(false));
    assert!(!state.cameras.is_empty(), "hardware lists read: {state:?}");
    assert!(state.camera.is_some());
    assert_eq!(state.server_connected, Some(true));
    assert!(client.http_token().is_some(), "tokenForHttpServer kept");
    client.close().await;
}

#[tokio::test]
async fn a_wrong_pin_is_a_distinct_error() {
    let room = sim().await;
    let mut o = options(&room);
    o.pin = Some(trueconf2mqtt::secret::Secret::new("9999"));
    let err = RoomClient::connect(o).await.err().expect("refused");
    assert!(matches!(err, RoomError::AuthRefused { .. }), "{err:?}");
    assert!(
        !err.to_string().contains("9999"),
        "the PIN never appears in errors"
    );
}

#[tokio::test]
async fn unsecured_rooms_accept_unsecured_auth() {
    let room = SimRoom::start(SimConfig::default()).await.unwrap();
    let mut o = options(&room);
    o.pin = None;
    let client = RoomClient::connect(o).await.expect("unsecured auth");
    assert!(client.mic_muted().await.is_ok());
}

#[tokio::test]
async fn a_thousand_concurrent_requests_are_all_matched() {
    let room = sim().await;
    let client = online(&room).await;
    client.set_mic_mute(true).await.unwrap();
    let methods = ["getMicMute", "getVideoMute", "getAppState", "getLogin"];
    let requests = (0..1000).map(|i| {
        let client = client.clone();
        let method = methods[i % methods.len()];
        async move {
            (
                method,
                client.request_unchecked(method, Default::default()).await,
            )
        }
    });
    let results = futures_util::future::join_all(requests).await;
    let mut ids = HashSet::new();
    for (method, result) in results {
        let reply = result.expect("answered");
        assert_eq!(reply.method, method, "reply matched to its own request");
        assert!(
            ids.insert(reply.request_id.clone().expect("id echoed")),
            "each reply once"
        );
        if method == "getMicMute" {
            assert_eq!(reply.fields["mute"], json!(true));
        }
    }
    assert_eq!(ids.len(), 1000);
}

#[tokio::test]
async fn a_slow_reply_times_out_and_the_session_survives() {
    let room = sim().await;
    let mut o = options(&room);
    o.request_timeout = Duration::from_millis(200);
    let client = RoomClient::connect(o).await.unwrap();
    room.set_reply_delay(Duration::from_millis(600));
    let err = client.mic_muted().await.unwrap_err();
    assert!(matches!(err, RoomError::Timeout { .. }), "{err:?}");
    room.set_reply_delay(Duration::ZERO);
    // The Room answers in order, so the delayed reply comes first; then it serves again.
    within(WAIT, "serving again", async {
        while client.mic_muted().await.is_err() {}
    })
    .await;
}

#[tokio::test]
async fn invalid_parameters_never_reach_the_room() {
    let room = sim().await;
    let client = online(&room).await;
    let before = room.requests_received().len();
    let err = client
        .request("setMicMute", json!({"mute": "yes"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("must be bool"), "{err}");
    let err = client
        .request("noSuchMethod", Value::Null)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown method"), "{err}");
    assert_eq!(room.requests_received().len(), before);
    // A method the Room refuses in the current state comes back as a typed rejection.
    let err = client.accept().await.unwrap_err();
    assert!(matches!(err, RoomError::Rejected { .. }), "{err:?}");
}

/// Collects event names from a client until `until` is seen.
async fn events_until(
    rx: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<trueconf2mqtt::protocol::Event>>,
    until: impl Fn(&trueconf2mqtt::protocol::Event) -> bool,
) -> Vec<String> {
    let mut names = Vec::new();
    within(WAIT, "events", async {
        loop {
            let event = rx.recv().await.expect("event stream");
            names.push(event.name.clone());
            if until(&event) {
                break;
            }
        }
    })
    .await;
    names
}

fn is_state(state: AppState) -> impl Fn(&trueconf2mqtt::protocol::Event) -> bool {
    move |e| e.kind == EventKind::AppStateChanged { state: Some(state) }
}

#[tokio::test]
async fn incoming_call_accept_and_hang_up_in_documented_order() {
    let room = sim().await;
    let client = online(&room).await;
    let mut events = client.events();
    room.incoming_call("bob@sim.trueconf.local", "Bob").unwrap();
    let names = events_until(&mut events, is_state(AppState::Wait)).await;
    assert_eq!(names, ["inviteReceived", "appStateChanged"]);
    assert_eq!(
        client.state().borrow().caller.as_ref().unwrap().peer_dn,
        "Bob"
    );

    client.accept().await.unwrap();
    let names = events_until(&mut events, |e| e.name == "newParticipantInConference").await;
    assert_eq!(
        names,
        [
            "conferenceCreated",
            "appStateChanged",
            "newParticipantInConference"
        ]
    );
    let mut state = client.state();
    within(
        WAIT,
        "in call",
        state.wait_for(|s| s.in_call() && s.participant_count() == 1),
    )
    .await
    .unwrap();

    client.hang_up(false).await.unwrap();
    let names = events_until(&mut events, is_state(AppState::Normal)).await;
    assert_eq!(
        names,
        ["appStateChanged", "conferenceDeleted", "appStateChanged"]
    );
    assert!(client.state().borrow().conference.is_none());
}

#[tokio::test]
async fn incoming_call_rejected_and_caller_giving_up() {
    let room = sim().await;
    let client = online(&room).await;
    let mut events = client.events();
    room.incoming_call("eve@sim.trueconf.local", "Eve").unwrap();
    events_until(&mut events, is_state(AppState::Wait)).await;
    client.reject().await.unwrap();
    let names = events_until(&mut events, is_state(AppState::Normal)).await;
    assert_eq!(names, ["rejectSent", "appStateChanged"]);

    room.incoming_call("eve@sim.trueconf.local", "Eve").unwrap();
    events_until(&mut events, is_state(AppState::Wait)).await;
    room.caller_gives_up().unwrap();
    let names = events_until(&mut events, is_state(AppState::Normal)).await;
    assert_eq!(names, ["stopCalling", "appStateChanged"]);
    assert!(!client.state().borrow().ringing());
}

#[tokio::test]
async fn outgoing_calls_answered_and_declined() {
    let room = sim().await;
    let client = online(&room).await;
    let mut events = client.events();
    client.call("alice@sim.trueconf.local").await.unwrap();
    let names = events_until(&mut events, is_state(AppState::Conference)).await;
    assert_eq!(
        names,
        ["appStateChanged", "conferenceCreated", "appStateChanged"]
    );
    client.hang_up(false).await.unwrap();
    events_until(&mut events, is_state(AppState::Normal)).await;

    client.call("busy@sim.trueconf.local").await.unwrap();
    let names = events_until(&mut events, is_state(AppState::Normal)).await;
    assert_eq!(
        names,
        ["appStateChanged", "rejectReceived", "appStateChanged"]
    );
    let reject = client.state().borrow().last_reject.clone().unwrap();
    assert!(reject.contains("busy"), "{reject}");
}

#[tokio::test]
async fn participants_mutes_and_devices_follow_the_room() {
    let room = sim().await;
    let client = online(&room).await;
    client.call("alice@sim.trueconf.local").await.unwrap();
    let mut state = client.state();
    within(WAIT, "in call", state.wait_for(|s| s.in_call()))
        .await
        .unwrap();
    room.participant_joins("carol@sim.trueconf.local/1", "Carol")
        .unwrap();
    within(
        WAIT,
        "carol joined",
        state.wait_for(|s| s.participant_count() == 2),
    )
    .await
    .unwrap();
    room.participant_leaves("carol@sim.trueconf.local/1")
        .unwrap();
    within(
        WAIT,
        "carol left",
        state.wait_for(|s| s.participant_count() == 1),
    )
    .await
    .unwrap();

    client.set_camera_mute(true).await.unwrap();
    client.set_speaker_mute(true).await.unwrap();
    within(
        WAIT,
        "mutes",
        state.wait_for(|s| s.camera_muted == Some(true) && s.speaker_muted == Some(true)),
    )
    .await
    .unwrap();
    assert!(room.snapshot().camera_muted && room.snapshot().speaker_muted);

    let other = client
        .state()
        .borrow()
        .cameras
        .iter()
        .find(|c| Some(*c) != client.state().borrow().camera.as_ref())
        .cloned()
        .expect("two cameras");
    client.select_camera(&other).await.unwrap();
    within(
        WAIT,
        "camera selected",
        state.wait_for(|s| s.camera.as_ref() == Some(&other)),
    )
    .await
    .unwrap();
    assert_eq!(room.snapshot().camera.as_deref(), Some(other.name.as_str()));
}

#[tokio::test]
async fn a_restarted_room_is_reconnected_and_resynced() {
    let room = sim().await;
    let client = online(&room).await;
    client.set_mic_mute(true).await.unwrap();
    let mut state = client.state();
    within(WAIT, "muted", state.wait_for(|s| s.mic_muted == Some(true)))
        .await
        .unwrap();

    room.stop().await;
    wait_link(&client, "offline", |s| {
        matches!(s, LinkState::Offline { .. })
    })
    .await;
    assert!(
        matches!(client.mic_muted().await, Err(RoomError::NotConnected)),
        "refused at once while down"
    );
    room.restart().await.unwrap();
    wait_link(&client, "online again", LinkState::is_online).await;
    // The restarted Room starts unmuted; the resync must have noticed.
    within(
        WAIT,
        "resynced",
        state.wait_for(|s| s.mic_muted == Some(false)),
    )
    .await
    .unwrap();
    assert!(
        client
            .stats()
            .connects
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
}

#[tokio::test]
async fn a_half_open_room_is_detected_and_recovered() {
    let room = sim().await;
    let client = online(&room).await;
    room.set_half_open(true);
    let started = std::time::Instant::now();
    wait_link(&client, "half-open detected", |s| {
        matches!(s, LinkState::Offline { .. })
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "detected within the keepalive"
    );
    room.set_half_open(false);
    wait_link(&client, "back online", LinkState::is_online).await;
    assert!(client.mic_muted().await.is_ok());
}

#[tokio::test]
async fn garbage_from_the_room_is_survived() {
    let room = sim().await;
    let client = online(&room).await;
    for kind in [
        GarbageKind::NotJson,
        GarbageKind::Binary,
        GarbageKind::UnknownRequestId,
        GarbageKind::DuplicateReply,
    ] {
        room.send_garbage(kind);
        assert!(
            client.mic_muted().await.is_ok(),
            "still serving after {kind:?}"
        );
    }
    assert!(
        client
            .stats()
            .bad_frames
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
    // A frame over the size limit breaks that connection; the client reconnects by itself.
    room.send_garbage(GarbageKind::Huge);
    wait_link(&client, "offline after a huge frame", |s| !s.is_online()).await;
    wait_link(&client, "online again", LinkState::is_online).await;
    assert!(client.mic_muted().await.is_ok());
}

#[tokio::test]
async fn a_second_controller_in_the_same_mode_takes_over() {
    let room = sim().await;
    let first = online(&room).await;
    let mut link = first.link();
    let _second = online(&room).await;
    let reason = within(WAIT, "first kicked", async {
        loop {
            link.changed().await.unwrap();
            if let LinkState::Offline { reason } = link.borrow().clone() {
                return reason;
            }
        }
    })
    .await;
    assert!(reason.contains("revoked"), "{reason}");
}

/// Replies without a usable requestId (older Rooms send `""`) are matched by method, in order.
#[tokio::test]
async fn replies_without_request_id_are_matched_by_method() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
        while let Some(Ok(msg)) = ws.next().await {
            let Ok(text) = msg.into_text() else { continue };
            let Ok(request) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            let method = request["method"].as_str().unwrap_or("").to_owned();
            let reply = match method.as_str() {
                "auth" => {
                    json!({"method":"auth","requestId":"","previleges":2,"token":"t","tokenForHttpServer":"h","result":true})
                }
                other => json!({"method": other, "requestId": "", "result": true}),
            };
            if ws
                .send(tokio_tungstenite::tungstenite::Message::text(
                    reply.to_string(),
                ))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let mut o = RoomOptions::new("127.0.0.1", 1);
    o.ws_port = Some(port);
    let client = RoomClient::connect(o).await.unwrap();
    let methods = ["getMicMute", "getVideoMute", "getAppState", "getLogin"];
    let requests = (0..40).map(|i| {
        let client = client.clone();
        let method = methods[i % methods.len()];
        async move {
            (
                method,
                client.request_unchecked(method, Default::default()).await,
            )
        }
    });
    for (method, reply) in futures_util::future::join_all(requests).await {
        let reply = reply.expect("matched although the reply carries no id");
        assert_eq!(reply.method, method);
        assert_eq!(reply.request_id, None);
    }
}

#[tokio::test]
async fn the_event_stream_slows_the_room_down_instead_of_losing_events() {
    const BURST: u64 = 3_000;
    let room = sim().await;
    let client = online(&room).await;
    // A tiny stream, so the client must stop reading the socket many times during the burst;
    // and a broadcast subscriber that never reads, which may lag without holding anyone up.
    let mut stream = client.event_stream(4);
    let mut idle_subscriber = client.events();
    for seq in 0..BURST {
        room.emit_raw(json!({"method": "event", "event": "burstEvent", "seq": seq}));
    }
    receive_in_order(
        &mut stream,
        BURST,
        "the whole burst through the event stream",
    )
    .await;
    assert!(matches!(
        idle_subscriber.try_recv(),
        Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_))
    ));
    assert!(client.link().borrow().is_online());
    client
        .request("getAppState", Default::default())
        .await
        .expect("still serving requests");
}

#[tokio::test]
async fn a_consumer_pausing_longer_than_the_keepalive_keeps_the_session_and_every_event() {
    const EVENTS: u64 = 50;
    let room = sim().await;
    let client = online(&room).await;
    let keepalive = options(&room).keepalive;
    let mut stream = client.event_stream(1);
    for seq in 0..EVENTS {
        room.emit_raw(json!({"method": "event", "event": "burstEvent", "seq": seq}));
    }
    // The consumer stops reading for three keepalives (the scenario itself, not a wait for a
    // condition): the session holds an event and does not read the socket meanwhile, which must
    // not be taken for a silent Room.
    tokio::time::sleep(keepalive * 3).await;
    receive_in_order(&mut stream, EVENTS, "every event after the pause").await;
    assert_eq!(
        client
            .stats()
            .connects
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the pause did not cost the session"
    );
    assert!(client.link().borrow().is_online());
}

/// Reads `burstEvent`s numbered 0..n from a lossless event stream and checks they come in order,
/// none missing.
async fn receive_in_order(
    stream: &mut tokio::sync::mpsc::Receiver<std::sync::Arc<trueconf2mqtt::protocol::Event>>,
    n: u64,
    what: &str,
) {
    within(WAIT, what, async {
        let mut next = 0;
        while next < n {
            let event = stream.recv().await.expect("stream open");
            if event.name == "burstEvent" {
                assert_eq!(event.fields["seq"], json!(next), "in order, none missing");
                next += 1;
            }
        }
    })
    .await;
}
