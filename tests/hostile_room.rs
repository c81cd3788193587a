//! A hostile or broken Room (issue 12): its web page and its WebSocket cannot kill, wedge or
//! mislead the Room client. Fake Rooms here are real TCP/WebSocket servers on 127.0.0.1 that
//! misbehave on purpose; the rest is the simulator.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use trueconf2mqtt::room::{LinkState, RoomClient, RoomError, RoomOptions};
use trueconf2mqtt::simulator::{SimConfig, SimRoom};

use common::within;

const WAIT: Duration = Duration::from_secs(10);

fn options(http_port: u16) -> RoomOptions {
    let mut o = RoomOptions::new("127.0.0.1", http_port);
    o.keepalive = Duration::from_secs(3);
    o.connect_timeout = Duration::from_secs(4);
    o.reconnect_min = Duration::from_millis(50);
    o.reconnect_max = Duration::from_millis(200);
    o.request_timeout = Duration::from_secs(2);
    o
}

/// A web server answering every request with the bytes in `response` (changeable while it
/// runs). With `keep_alive` it never closes a connection itself, as HTTP/1.1 servers may.
async fn web_page(keep_alive: bool) -> (u16, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let response = Arc::new(Mutex::new(Vec::new()));
    let shared = response.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let response = shared.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match tcp.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let bytes = response.lock().unwrap().clone();
                let _ = tcp.write_all(&bytes).await;
                if keep_alive {
                    // Hold the connection until the client goes.
                    let _ = tcp.read(&mut byte).await;
                }
            });
        }
    });
    (port, response)
}

fn http_200(body: &str, close: bool) -> Vec<u8> {
    let connection = if close { "close" } else { "keep-alive" };
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: {connection}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn config_json(ws_port: &str) -> String {
    format!(
        r#"{{"config":{{"websocket":{{"hostname":null,"port":{ws_port}}},"http":{{"port":8766}}}}}}"#
    )
}

/// The next `Offline` reason of `client`'s link.
async fn offline_reason(client: &RoomClient) -> String {
    let mut link = client.link();
    within(WAIT, "the link reports offline", async {
        loop {
            if let LinkState::Offline { reason } = link.borrow_and_update().clone() {
                return reason;
            }
            link.changed().await.expect("link watch open");
        }
    })
    .await
}

/// Issue 12 case 5: `} {` on `200 OK` used to panic the session task (the room stayed
/// "connecting" for good). Now it is a discovery error, and the room comes online as soon as
/// the page is fixed.
#[tokio::test]
async fn a_config_json_that_is_not_json_is_an_error_and_the_room_recovers() {
    let room = SimRoom::start(SimConfig::default()).await.unwrap();
    let (port, page) = web_page(false).await;
    *page.lock().unwrap() = http_200("} {", true);
    let client = RoomClient::start(options(port));
    let reason = offline_reason(&client).await;
    assert!(reason.contains("config.json"), "{reason}");

    *page.lock().unwrap() = http_200(&config_json(&room.ws_port().to_string()), true);
    let mut link = client.link();
    within(
        WAIT,
        "online once the page is fixed",
        link.wait_for(LinkState::is_online),
    )
    .await
    .expect("link watch open");
    client.close().await;
}

/// Issue 12 case 10: discovery used to read until the server closed, so a keep-alive server
/// made it time out and fall back to the default port.
#[tokio::test]
async fn discovery_honours_content_length_on_a_keep_alive_server() {
    let room = SimRoom::start(SimConfig::default()).await.unwrap();
    let (port, page) = web_page(true).await;
    *page.lock().unwrap() = http_200(&config_json(&room.ws_port().to_string()), false);
    let mut o = options(port);
    o.connect_timeout = Duration::from_secs(6);
    let started = std::time::Instant::now();
    let client = RoomClient::connect(o)
        .await
        .expect("online through discovery");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "discovery waited for the server to close: {:?}",
        started.elapsed()
    );
    client.close().await;
}

/// Issue 12 case 10: a port that is not a port is named, not reported as "missing".
#[tokio::test]
async fn a_bad_port_in_config_json_is_named() {
    for bad in ["0", "65536", "\"27771\"", "-1"] {
        let (port, page) = web_page(false).await;
        *page.lock().unwrap() = http_200(&config_json(bad), true);
        let client = RoomClient::start(options(port));
        let reason = offline_reason(&client).await;
        assert!(
            reason.contains(&format!("config.websocket.port is {bad}")),
            "{bad}: {reason}"
        );
        client.close().await;
    }
}

/// Replies to requests the client never sent (a foreign id, one of ours already answered, or
/// no id with nothing of that method waiting) change nothing and are counted.
#[tokio::test]
async fn replies_to_requests_never_sent_change_nothing() {
    let room = SimRoom::start(SimConfig::default()).await.unwrap();
    let mut o = options(room.http_port());
    o.ws_port = Some(room.ws_port());
    let client = RoomClient::connect(o).await.expect("online");
    assert_eq!(client.state().borrow().mic_muted, Some(false));
    let unmatched = client.stats().unmatched_replies.load(Ordering::Relaxed);
    let mut events = client.events();
    for id in [json!("somebody-else-7"), json!("t2m-999999"), json!("")] {
        room.emit_raw(
            json!({"method": "getMicMute", "requestId": id, "mute": true, "result": true}),
        );
    }
    room.emit_raw(json!({"method": "setMicMute", "mute": true, "result": true}));
    // The Room's frames arrive in order: once this event is seen, the replies were handled.
    room.emit_raw(json!({"method": "event", "event": "myEvent", "data": "marker"}));
    within(WAIT, "the marker event", async {
        while events.recv().await.expect("events").name != "myEvent" {}
    })
    .await;
    assert_eq!(
        client.state().borrow().mic_muted,
        Some(false),
        "unsolicited replies must not change the state"
    );
    assert_eq!(
        client.stats().unmatched_replies.load(Ordering::Relaxed) - unmatched,
        4
    );
    // The real thing still works.
    client.set_mic_mute(true).await.unwrap();
    assert!(client.mic_muted().await.unwrap());
    client.close().await;
}

/// A fake Room WebSocket: runs `script` on the first connection (the second, if any, is held
/// open and never answered).
async fn fake_room<F, Fut>(script: F) -> u16
where
    F: FnOnce(tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        tokio::spawn(script(ws));
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    port
}

async fn next_request(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
) -> Option<Value> {
    while let Some(Ok(message)) = ws.next().await {
        if let Ok(text) = message.into_text() {
            return serde_json::from_str(&text).ok();
        }
    }
    None
}

/// An `auth` success that is not the answer to our `auth` (sent before we asked, with an id we
/// never used) is ignored and counted; the real answer decides.
#[tokio::test]
async fn an_auth_success_we_did_not_ask_for_is_ignored() {
    let port = fake_room(|mut ws| async move {
        let early = json!({"method": "auth", "requestId": "1", "result": true, "previleges": 2});
        let _ = ws.send(Message::text(early.to_string())).await;
        let request = next_request(&mut ws).await.expect("our auth");
        assert_eq!(request["method"], "auth");
        let refusal = json!({"method": "auth", "requestId": request["requestId"], "result": false,
            "resultCode": 3, "error": "Wrong credentials"});
        let _ = ws.send(Message::text(refusal.to_string())).await;
        while ws.next().await.is_some() {}
    })
    .await;
    let mut o = options(port).with_pin("1234");
    o.ws_port = Some(port);
    o.auth_retry = Duration::from_secs(60);
    let error = RoomClient::connect(o).await.err().expect("refused");
    assert!(matches!(error, RoomError::AuthRefused { .. }), "{error:?}");
}

/// Issue 12 case 10: a text frame that is not UTF-8 used to end the session; now it is one
/// counted bad frame and the next frame is read on the same connection.
#[tokio::test]
async fn invalid_utf8_in_a_text_frame_is_one_bad_frame() {
    let port = fake_room(|mut ws| async move {
        let request = next_request(&mut ws).await.expect("our auth");
        let ok = json!({"method": "auth", "requestId": request["requestId"], "result": true});
        let _ = ws.send(Message::text(ok.to_string())).await;
        let bad = Frame::message(
            b"{\"method\":\"event\",\"event\":\"myEvent\",\"data\":\"\xff\xfe\"}".to_vec(),
            OpCode::Data(Data::Text),
            true,
        );
        let _ = ws.send(Message::Frame(bad)).await;
        let good = json!({"method": "event", "event": "myEvent", "data": "after"});
        let _ = ws.send(Message::text(good.to_string())).await;
        while ws.next().await.is_some() {}
    })
    .await;
    let mut o = options(port);
    o.ws_port = Some(port);
    let client = RoomClient::start(o);
    let mut events = client.events();
    let event = within(WAIT, "the event after the bad frame", async {
        loop {
            let event = events.recv().await.expect("events");
            if event.name == "myEvent" {
                return event;
            }
        }
    })
    .await;
    assert_eq!(event.fields["data"], "after");
    assert_eq!(client.stats().connects.load(Ordering::Relaxed), 1);
    assert_eq!(client.stats().bad_frames.load(Ordering::Relaxed), 1);
    client.close().await;
}
