//! The Room simulator over real sockets, driven by a bare tokio-tungstenite client.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use trueconf2mqtt::protocol::{AppState, MAX_FRAME_BYTES};
use trueconf2mqtt::simulator::{
    DeviceKind, GarbageKind, SimConfig, SimRoom, StartState, error_text,
};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const STEP: Duration = Duration::from_secs(5);

fn config() -> SimConfig {
    SimConfig {
        pin: Some("1234".into()),
        answer_delay: Duration::from_millis(20),
        ..SimConfig::default()
    }
}

async fn room() -> SimRoom {
    SimRoom::start(config()).await.expect("simulator starts")
}

async fn connect(room: &SimRoom) -> Ws {
    let (ws, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(room.ws_url()))
        .await
        .expect("connect in time")
        .expect("connect");
    ws
}

async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::text(frame.to_string()))
        .await
        .expect("send");
}

/// The next text frame, parsed.
async fn recv(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(STEP, ws.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .expect("frame ok");
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).expect("JSON frame");
        }
    }
}

/// Sends a request and returns its reply, skipping events that arrive before it.
async fn request(ws: &mut Ws, frame: Value) -> Value {
    let method = frame["method"].clone();
    let id = frame.get("requestId").cloned().unwrap_or(json!(""));
    send(ws, frame).await;
    loop {
        let reply = recv(ws).await;
        if reply["method"] == method && reply["requestId"] == id {
            return reply;
        }
    }
}

async fn auth(ws: &mut Ws) -> Value {
    let reply = request(
        ws,
        json!({"method": "auth", "requestId": "a", "type": "secured", "credentials": "1234"}),
    )
    .await;
    assert_eq!(reply["result"], json!(true), "{reply}");
    reply
}

async fn authed(room: &SimRoom) -> Ws {
    let mut ws = connect(room).await;
    auth(&mut ws).await;
    ws
}

/// Names (and appState values) of the next `n` events.
async fn next_events(ws: &mut Ws, n: usize) -> Vec<String> {
    let mut names = Vec::with_capacity(n);
    while names.len() < n {
        let frame = recv(ws).await;
        assert_eq!(
            frame["method"],
            json!("event"),
            "expected an event, got {frame}"
        );
        let name = frame["event"].as_str().unwrap_or("").to_owned();
        names.push(match frame.get("appState") {
            Some(state) if name == "appStateChanged" => format!("appStateChanged({state})"),
            _ => name,
        });
    }
    names
}

/// The next WebSocket message of any kind.
async fn next_message(ws: &mut Ws) -> Message {
    tokio::time::timeout(STEP, ws.next())
        .await
        .expect("a frame in time")
        .expect("socket open")
        .expect("frame ok")
}

/// Asserts that nothing (not even a pong) arrives for `window`.
async fn assert_silent(ws: &mut Ws, window: Duration) {
    if let Ok(frame) = tokio::time::timeout(window, ws.next()).await {
        panic!("expected silence, got {frame:?}");
    }
}

/// Asserts that the server closes the socket (with or without a close frame).
async fn assert_closed(ws: &mut Ws) {
    loop {
        match tokio::time::timeout(STEP, ws.next())
            .await
            .expect("closed in time")
        {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn auth_accepted_and_refused_keeps_socket_open() {
    let room = room().await;
    let mut ws = connect(&room).await;
    let wrong =
        json!({"method": "auth", "requestId": "1", "type": "secured", "credentials": "0000"});
    let reply = request(&mut ws, wrong).await;
    assert_eq!(
        reply,
        json!({"method": "auth", "requestId": "1", "result": false, "resultCode": 3,
               "error": "Wrong credentials"})
    );
    let reply = request(&mut ws, json!({"method": "auth", "type": "unsecured"})).await;
    assert_eq!(reply["result"], json!(false), "unsecured on a secured Room");

    let reply = request(
        &mut ws,
        json!({"method": "auth", "type": "secured", "credentials": "1234"}),
    )
    .await;
    let keys: Vec<&str> = reply
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "method",
        "requestId",
        "previleges",
        "token",
        "tokenForHttpServer",
        "result",
        "resultCode",
    ];
    expected.sort_unstable();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort_unstable();
    assert_eq!(keys_sorted, expected);
    assert_eq!(reply["requestId"], json!(""));
    assert_eq!(reply["previleges"], json!(2));
    assert_eq!(reply["resultCode"], json!(0));
    assert_eq!(room.authenticated_connections(), 1);

    // The token works as credentials on a new connection.
    let mut second = connect(&room).await;
    let token = reply["token"].as_str().unwrap();
    let again =
        json!({"method": "auth", "requestId": "t", "type": "secured", "credentials": token});
    assert_eq!(request(&mut second, again).await["result"], json!(true));

    room.set_refuse_auth(true);
    let mut third = connect(&room).await;
    let reply = request(
        &mut third,
        json!({"method": "auth", "type": "secured", "credentials": "1234"}),
    )
    .await;
    assert_eq!(reply["result"], json!(false));
}

#[tokio::test]
async fn unsecured_room_accepts_unsecured_auth() {
    let room = SimRoom::start(SimConfig::default()).await.unwrap();
    let mut ws = connect(&room).await;
    let reply = request(&mut ws, json!({"method": "auth", "type": "unsecured"})).await;
    assert_eq!(reply["result"], json!(true));
}

#[tokio::test]
async fn before_auth_commands_are_answered_not_executed() {
    let room = room().await;
    let mut ws = connect(&room).await;
    let reply = request(
        &mut ws,
        json!({"method": "setMicMute", "requestId": "1", "mute": true}),
    )
    .await;
    assert_eq!(reply["result"], json!(false));
    assert_eq!(reply["error"], json!(error_text::NOT_AUTHORIZED));
    assert!(!room.snapshot().mic_muted);
    let reply = request(
        &mut ws,
        json!({"method": "setUsedApiVersion", "version": "2"}),
    )
    .await;
    assert_eq!(
        reply,
        json!({"method": "setUsedApiVersion", "requestId": "", "result": true})
    );
    auth(&mut ws).await;
    // No events were queued for the unauthorised connection; the next frame is our reply.
    let reply = request(&mut ws, json!({"method": "getMicMute", "requestId": "2"})).await;
    assert_eq!(reply["mute"], json!(false));
}

#[tokio::test]
async fn bad_input_gets_error_replies_and_the_socket_survives() {
    let room = room().await;
    let mut ws = authed(&room).await;

    let reply = request(&mut ws, json!({"method": "fly", "requestId": "u"})).await;
    assert_eq!(reply["error"], json!(error_text::UNKNOWN_METHOD));
    let reply = request(
        &mut ws,
        json!({"method": "setMicMute", "requestId": "p", "mute": 1}),
    )
    .await;
    assert_eq!(reply["result"], json!(false));
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .starts_with("Invalid parameters: ")
    );
    let reply = request(&mut ws, json!({"method": "accept", "requestId": "s"})).await;
    assert_eq!(reply["error"], json!(error_text::NOT_AVAILABLE));

    for garbage in ["not json", "[1,2,3]", "\"str\"", ""] {
        ws.send(Message::text(garbage)).await.unwrap();
        assert_eq!(
            recv(&mut ws).await,
            json!({"result": false, "error": "Invalid JSON"})
        );
    }
    ws.send(Message::binary(vec![1, 2, 3])).await.unwrap(); // ignored

    // requestId is echoed exactly: strings, numbers, and "" when absent.
    let reply = request(&mut ws, json!({"method": "getMicMute", "requestId": 42})).await;
    assert_eq!(reply["requestId"], json!(42));
    let reply = request(&mut ws, json!({"method": "getMicMute"})).await;
    assert_eq!(reply["requestId"], json!(""));
    let reply = request(&mut ws, json!({"method": "getMicMute", "requestId": "x-1"})).await;
    assert_eq!(reply["requestId"], json!("x-1"));

    // Pings are answered.
    ws.send(Message::Ping(vec![7].into())).await.unwrap();
    let pong = tokio::time::timeout(STEP, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pong, Message::Pong(vec![7].into()));

    let log = room.requests_received();
    assert!(log.iter().any(|r| r["method"] == json!("fly")));
    assert_eq!(
        log[0]["credentials"],
        json!("***"),
        "auth credentials are masked"
    );
}

#[tokio::test]
async fn incoming_call_accepted_gives_conference_events_in_order() {
    let room = room().await;
    let mut ws = authed(&room).await;
    room.incoming_call("alice@srv", "Alice").unwrap();
    let invite = recv(&mut ws).await;
    assert_eq!(invite["event"], json!("inviteReceived"));
    assert_eq!(invite["peerDn"], json!("Alice"));
    assert_eq!(next_events(&mut ws, 1).await, ["appStateChanged(4)"]);

    let reply = request(&mut ws, json!({"method": "accept", "requestId": "1"})).await;
    assert_eq!(reply["result"], json!(true));
    assert_eq!(
        next_events(&mut ws, 3).await,
        [
            "conferenceCreated",
            "appStateChanged(5)",
            "newParticipantInConference"
        ]
    );
    let participants = request(
        &mut ws,
        json!({"method": "getConferenceParticipants", "requestId": "p"}),
    )
    .await;
    assert_eq!(participants["participants"].as_array().unwrap().len(), 2);

    room.participant_joins("bob@srv/0001", "Bob").unwrap();
    assert_eq!(
        next_events(&mut ws, 1).await,
        ["newParticipantInConference"]
    );
    room.participant_leaves("bob@srv/0001").unwrap();
    assert_eq!(next_events(&mut ws, 1).await, ["participantLeftConference"]);

    room.chat_message("alice@srv", "hello").unwrap();
    let chat = recv(&mut ws).await;
    assert_eq!(chat["event"], json!("incomingChatMessage"));
    assert_eq!(chat["message"], json!("hello"));

    room.remote_hangup().unwrap();
    assert_eq!(
        next_events(&mut ws, 3).await,
        [
            "appStateChanged(6)",
            "conferenceDeleted",
            "appStateChanged(3)"
        ]
    );
}

#[tokio::test]
async fn incoming_call_rejected_or_abandoned() {
    let room = room().await;
    let mut ws = authed(&room).await;
    room.incoming_call("alice@srv", "").unwrap();
    assert_eq!(
        next_events(&mut ws, 2).await,
        ["inviteReceived", "appStateChanged(4)"]
    );
    request(&mut ws, json!({"method": "reject", "requestId": "r"})).await;
    assert_eq!(
        next_events(&mut ws, 2).await,
        ["rejectSent", "appStateChanged(3)"]
    );

    room.incoming_call("alice@srv", "").unwrap();
    assert_eq!(
        next_events(&mut ws, 2).await,
        ["inviteReceived", "appStateChanged(4)"]
    );
    room.caller_gives_up().unwrap();
    assert_eq!(
        next_events(&mut ws, 2).await,
        ["stopCalling", "appStateChanged(3)"]
    );
}

#[tokio::test]
async fn outgoing_calls_answered_rejected_busy() {
    let room = room().await;
    let mut ws = authed(&room).await;

    let reply = request(
        &mut ws,
        json!({"method": "call", "requestId": "c", "peerId": "alice@srv"}),
    )
    .await;
    assert_eq!(reply["result"], json!(true));
    assert_eq!(
        next_events(&mut ws, 4).await,
        [
            "appStateChanged(4)",
            "conferenceCreated",
            "appStateChanged(5)",
            "newParticipantInConference"
        ]
    );
    let conferences = request(
        &mut ws,
        json!({"method": "getConferences", "requestId": "g"}),
    )
    .await;
    assert_eq!(conferences["peerId"], json!("alice@srv"));
    let reply = request(
        &mut ws,
        json!({"method": "hangUp", "requestId": "h", "forAll": true}),
    )
    .await;
    assert_eq!(reply["result"], json!(true));
    assert_eq!(
        next_events(&mut ws, 3).await,
        [
            "appStateChanged(6)",
            "conferenceDeleted",
            "appStateChanged(3)"
        ]
    );

    for (callee, cause) in [("reject@srv", 0), ("busy@srv", 2), ("noanswer@srv", 16)] {
        request(
            &mut ws,
            json!({"method": "call", "requestId": "c", "peerId": callee}),
        )
        .await;
        assert_eq!(next_events(&mut ws, 1).await, ["appStateChanged(4)"]);
        let reject = recv(&mut ws).await;
        assert_eq!(reject["event"], json!("rejectReceived"));
        assert_eq!(reject["cause"], json!(cause));
        assert_eq!(next_events(&mut ws, 1).await, ["appStateChanged(3)"]);
    }

    // hangUp while ringing cancels (a callee slow to answer: the hangUp surely comes first,
    // however slow this client's round trips are).
    let slow = SimRoom::start(SimConfig {
        answer_delay: STEP,
        ..config()
    })
    .await
    .expect("simulator starts");
    let mut ws = connect(&slow).await;
    auth(&mut ws).await;
    request(
        &mut ws,
        json!({"method": "call", "requestId": "c", "peerId": "late@srv"}),
    )
    .await;
    assert_eq!(next_events(&mut ws, 1).await, ["appStateChanged(4)"]);
    request(&mut ws, json!({"method": "hangUp", "requestId": "h"})).await;
    assert_eq!(next_events(&mut ws, 1).await, ["appStateChanged(3)"]);
    let snapshot = slow
        .wait_for(|s| s.app_state == AppState::Normal, STEP)
        .await
        .unwrap();
    assert_eq!(snapshot.conference_id, None);
}

#[tokio::test]
async fn mute_and_device_selection() {
    let room = room().await;
    let mut ws = authed(&room).await;
    for (set, event) in [
        ("setMicMute", "audioCapturerMute"),
        ("setVideoMute", "videoCapturerMute"),
        ("setAudioMute", "audioRendererMute"),
    ] {
        let reply = request(
            &mut ws,
            json!({"method": set, "requestId": "m", "mute": true}),
        )
        .await;
        assert_eq!(reply["result"], json!(true));
        let frame = recv(&mut ws).await;
        assert_eq!(frame["event"], json!(event));
        assert_eq!(frame["mute"], json!(true));
    }
    let snapshot = room.snapshot();
    assert!(snapshot.mic_muted && snapshot.camera_muted && snapshot.speaker_muted);

    let hardware = request(&mut ws, json!({"method": "getHardware", "requestId": "h"})).await;
    let mic = &hardware["audioCapturers"][1];
    let select = json!({"method": "setAudioCapturer", "requestId": "s",
                        "name": mic["name"], "description": mic["description"]});
    assert_eq!(request(&mut ws, select).await["result"], json!(true));
    let changed = recv(&mut ws).await;
    assert_eq!(changed["event"], json!("hardwareChanged"));
    assert_eq!(changed["currentAudioCapturerName"], mic["name"]);
    assert_eq!(room.snapshot().microphone.as_deref(), mic["name"].as_str());

    let bogus =
        json!({"method": "setVideoCapturer", "requestId": "b", "name": "x", "description": "y"});
    assert_eq!(request(&mut ws, bogus).await["result"], json!(false));

    room.plug_device(DeviceKind::Camera, "USB Document Camera")
        .unwrap();
    let changed = recv(&mut ws).await;
    assert_eq!(changed["event"], json!("hardwareChanged"));
    assert_eq!(changed["videoCapturers"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn second_auth_in_the_same_mode_kicks_the_first() {
    let room = room().await;
    let mut first = authed(&room).await;
    let mut second = authed(&room).await;
    let kicked = recv(&mut first).await;
    assert_eq!(
        kicked,
        json!({"method": "event", "event": "authorizationNeeded", "cause": 1})
    );
    room.wait_for(|s| s.authenticated_connections == 1, STEP)
        .await
        .unwrap();

    let reply = request(
        &mut first,
        json!({"method": "getAppState", "requestId": "1"}),
    )
    .await;
    assert_eq!(
        reply["error"],
        json!(error_text::NOT_AUTHORIZED),
        "open but unauthorised"
    );

    room.chat_message("x@srv", "only for the second").unwrap();
    assert_eq!(
        recv(&mut second).await["event"],
        json!("incomingChatMessage")
    );
    assert_silent(&mut first, Duration::from_millis(100)).await;

    // A user-mode connection coexists with the admin one.
    let mut user = connect(&room).await;
    let reply = request(
        &mut user,
        json!({"method": "auth", "type": "secured", "credentials": "1234", "role": "user"}),
    )
    .await;
    assert_eq!(reply["result"], json!(true));
    room.wait_for(|s| s.authenticated_connections == 2, STEP)
        .await
        .unwrap();
    assert_silent(&mut second, Duration::from_millis(50)).await;
}

async fn http_get(port: u16, target: &str) -> (u16, Vec<u8>) {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = format!("GET {target} HTTP/1.1\r\nHost: room\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(STEP, tcp.read_to_end(&mut response))
        .await
        .expect("response in time")
        .unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text[9..12].parse().unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (status, response[split..].to_vec())
}

#[tokio::test]
async fn http_config_json_and_frames() {
    let room = room().await;
    let (status, body) = http_get(room.http_port(), "/public/default/config.json").await;
    assert_eq!(status, 200);
    let config: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        config,
        json!({"config": {"websocket": {"hostname": null, "port": room.ws_port()},
                          "http": {"hostname": null, "port": room.http_port()}}})
    );
    assert_eq!(http_get(room.http_port(), "/nothing").await.0, 404);
    assert_eq!(
        http_get(room.http_port(), "/frames/?token=nope").await.0,
        401
    );

    let mut ws = connect(&room).await;
    let token = auth(&mut ws).await["tokenForHttpServer"]
        .as_str()
        .unwrap()
        .to_owned();
    let target = format!("/frames/?peerId=%23self%3A0&token={token}");
    let (status, body) = http_get(room.http_port(), &target).await;
    assert_eq!(status, 200);
    assert_eq!(&body[..2], &[0xFF, 0xD8]);
}

#[tokio::test]
async fn half_open_swallows_everything_until_lifted() {
    let room = room().await;
    let mut ws = authed(&room).await;
    room.set_half_open(true);
    send(
        &mut ws,
        json!({"method": "getAppState", "requestId": "frozen"}),
    )
    .await;
    ws.send(Message::Ping(vec![1].into())).await.unwrap();
    room.chat_message("x@srv", "lost").unwrap();
    assert_silent(&mut ws, Duration::from_millis(300)).await;

    room.set_half_open(false);
    // The request sent while frozen is read now; the chat event was discarded.
    let mut saw_reply = false;
    while !saw_reply {
        let message = tokio::time::timeout(STEP, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            let frame: Value = serde_json::from_str(text.as_str()).unwrap();
            assert_ne!(frame["event"], json!("incomingChatMessage"));
            saw_reply = frame["requestId"] == json!("frozen");
        }
    }
}

#[tokio::test]
async fn reply_delay_holds_replies() {
    let room = room().await;
    let mut ws = authed(&room).await;
    room.set_reply_delay(Duration::from_millis(400));
    send(
        &mut ws,
        json!({"method": "getMicMute", "requestId": "slow"}),
    )
    .await;
    assert_silent(&mut ws, Duration::from_millis(100)).await;
    assert_eq!(recv(&mut ws).await["requestId"], json!("slow"));
}

#[tokio::test]
async fn faults_drop_garbage_and_flood() {
    let room = room().await;
    let mut ws = authed(&room).await;
    request(
        &mut ws,
        json!({"method": "getMicMute", "requestId": "last"}),
    )
    .await;

    room.send_garbage(GarbageKind::NotJson);
    room.send_garbage(GarbageKind::Binary);
    room.send_garbage(GarbageKind::UnknownRequestId);
    room.send_garbage(GarbageKind::DuplicateReply);
    room.send_garbage(GarbageKind::Huge);
    assert_eq!(
        next_message(&mut ws).await,
        Message::text("this is not JSON {")
    );
    assert!(matches!(next_message(&mut ws).await, Message::Binary(_)));
    let unknown = recv(&mut ws).await;
    assert_eq!(unknown["method"], json!("getAppState"));
    assert!(
        unknown["requestId"]
            .as_str()
            .unwrap()
            .starts_with("sim-unknown-")
    );
    assert_eq!(recv(&mut ws).await["requestId"], json!("last"));
    match next_message(&mut ws).await {
        Message::Text(text) => assert!(text.len() > MAX_FRAME_BYTES),
        other => panic!("expected the huge frame, got {other:?}"),
    }

    room.flood_events(2_000).await;
    for i in 0..2_000 {
        let frame = recv(&mut ws).await;
        assert_eq!(frame["data"], json!(format!("flood-{i}")));
    }

    room.drop_connections();
    assert_closed(&mut ws).await;
    assert_eq!(room.authenticated_connections(), 0);
}

#[tokio::test]
async fn stop_and_restart_on_the_same_ports() {
    let room = room().await;
    let (http, ws_port) = (room.http_port(), room.ws_port());
    let mut ws = authed(&room).await;
    request(
        &mut ws,
        json!({"method": "setMicMute", "requestId": "m", "mute": true}),
    )
    .await;

    room.stop().await;
    assert_closed(&mut ws).await;
    assert!(
        TcpStream::connect(("127.0.0.1", ws_port)).await.is_err(),
        "listener closed"
    );
    let snapshot = room.snapshot();
    assert!(!snapshot.running);
    assert!(snapshot.mic_muted, "state kept while stopped");

    room.restart().await.unwrap();
    assert_eq!((room.http_port(), room.ws_port()), (http, ws_port));
    let mut ws = authed(&room).await;
    let reply = request(&mut ws, json!({"method": "getMicMute", "requestId": "m"})).await;
    assert_eq!(
        reply["mute"],
        json!(false),
        "restart resets to the start state"
    );
    assert_eq!(http_get(http, "/public/default/config.json").await.0, 200);
}

#[tokio::test]
async fn three_rooms_in_one_process() {
    let rooms = SimRoom::start_many(3, config()).await.unwrap();
    let mut ports: Vec<u16> = rooms
        .iter()
        .flat_map(|r| [r.http_port(), r.ws_port()])
        .collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 6);
    let mut ids = Vec::new();
    for room in &rooms {
        let mut ws = authed(room).await;
        let login = request(&mut ws, json!({"method": "getLogin", "requestId": "l"})).await;
        ids.push(login["peerId"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        ids,
        [
            "room@sim.trueconf.local",
            "room2@sim.trueconf.local",
            "room3@sim.trueconf.local"
        ]
    );
    rooms[1].incoming_call("a@srv", "").unwrap();
    assert_eq!(rooms[1].snapshot().app_state, AppState::Wait);
    assert_eq!(rooms[0].snapshot().app_state, AppState::Normal);
}

#[tokio::test]
async fn offline_start_connects_and_logs_in() {
    let room = SimRoom::start(SimConfig {
        start: StartState::Offline,
        ..config()
    })
    .await
    .unwrap();
    let mut ws = authed(&room).await;
    let state = request(&mut ws, json!({"method": "getAppState", "requestId": "s"})).await;
    assert_eq!(state["appState"], json!(0));
    request(
        &mut ws,
        json!({"method": "connectToServer", "requestId": "c", "server": "tc.local", "port": 4307}),
    )
    .await;
    assert_eq!(
        next_events(&mut ws, 3).await,
        [
            "appStateChanged(1)",
            "serverConnected",
            "appStateChanged(2)"
        ]
    );
    let login = json!({"method": "login", "requestId": "l", "login": "me", "password": "pw", "encryptPassword": true});
    request(&mut ws, login).await;
    assert_eq!(
        next_events(&mut ws, 2).await,
        ["login", "appStateChanged(3)"]
    );
}

#[tokio::test]
async fn every_documented_request_example_gets_a_reply() {
    let room = room().await;
    let mut ws = authed(&room).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol/examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".request.json") && !name.starts_with("auth.")
        })
        .collect();
    files.sort();
    assert!(files.len() > 30, "examples found: {}", files.len());
    let documented = [error_text::NOT_AVAILABLE, error_text::UNKNOWN_METHOD];
    for file in files {
        let frame: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let reply = request(&mut ws, frame.clone()).await;
        assert_eq!(reply["method"], frame["method"], "{}", file.display());
        if reply["result"] != json!(true) {
            let error = reply["error"].as_str().unwrap_or("");
            assert!(
                documented.contains(&error) || error.starts_with(error_text::INVALID_PARAMETERS),
                "{}: {reply}",
                file.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_all_answered_in_order() {
    let room = SimRoom::start(SimConfig::default()).await.unwrap();
    let mut ws = connect(&room).await;
    request(&mut ws, json!({"method": "auth", "type": "unsecured"})).await;
    let (mut tx, mut rx) = ws.split();
    const N: usize = 20_000;
    let writer = tokio::spawn(async move {
        for i in 0..N {
            let frame = if i % 2 == 0 {
                json!({"method": "getMicMute", "requestId": i.to_string()})
            } else {
                json!({"method": "setMicMute", "requestId": i.to_string(), "mute": i % 4 == 1})
            };
            tx.feed(Message::text(frame.to_string())).await.unwrap();
        }
        tx.flush().await.unwrap();
        tx
    });
    let mut expected = 0;
    while expected < N {
        let message = tokio::time::timeout(STEP, rx.next())
            .await
            .expect("replies keep coming")
            .expect("socket open")
            .expect("frame ok");
        let Message::Text(text) = message else {
            continue;
        };
        let frame: Value = serde_json::from_str(text.as_str()).unwrap();
        if frame["method"] != json!("event") {
            assert_eq!(frame["requestId"], json!(expected.to_string()));
            expected += 1;
        }
    }
    let _tx = writer.await.unwrap();
    assert_eq!(room.snapshot().requests_total, N as u64 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped() {
    let room = room().await;
    let _ws = authed(&room).await; // never read from again
    let frame = json!({"method": "event", "event": "myEvent", "data": "x".repeat(1024)});
    let dropped = async {
        // Kernel buffers take a few MiB, then the queue fills and the Room sheds the client.
        for _ in 0..200_000 {
            room.emit_raw(frame.clone());
            if room.authenticated_connections() == 0 {
                return;
            }
        }
        panic!("the connection was never dropped");
    };
    tokio::time::timeout(Duration::from_secs(30), dropped)
        .await
        .expect("dropped in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_rooms_in_one_process() {
    // Needs ~2,000 listening sockets; skip where the file descriptor limit is lower.
    let rooms = match SimRoom::start_many(1_000, SimConfig::default()).await {
        Ok(rooms) => rooms,
        Err(e) if e.raw_os_error() == Some(24) => {
            eprintln!("skipped: {e} (raise `ulimit -n` to run this test)");
            return;
        }
        Err(e) => panic!("start_many: {e}"),
    };
    let mut tasks = Vec::new();
    for room in rooms.iter().step_by(50) {
        let url = room.ws_url();
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            let auth = json!({"method": "auth", "type": "unsecured"});
            ws.send(Message::text(auth.to_string())).await.unwrap();
            let reply = tokio::time::timeout(STEP, ws.next()).await.unwrap();
            assert!(reply.unwrap().is_ok());
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        rooms[999].snapshot().peer_id.as_deref(),
        Some("room1000@sim.trueconf.local")
    );
}
