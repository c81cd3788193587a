//! Answer every incoming call automatically and report when calls start and end.
//!
//! ```text
//! cargo run --example answer_incoming_call -- <host> <port> <pin>
//! ```

use trueconf2mqtt::protocol::{AppState, EventKind};
use trueconf2mqtt::room::{RoomClient, RoomOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let host = args.next().unwrap_or_else(|| "127.0.0.1".into());
    let port: u16 = args.next().map_or(Ok(80), |p| p.parse())?;
    let mut options = RoomOptions::new(host, port);
    if let Some(pin) = args.next() {
        options = options.with_pin(pin);
    }
    let room = RoomClient::connect(options).await?;
    let mut events = room.events();
    println!("answering incoming calls (Ctrl-C to stop)…");
    loop {
        let event = tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            event = events.recv() => event?,
        };
        match &event.kind {
            EventKind::InviteReceived {
                peer_id, peer_dn, ..
            } => {
                println!("{peer_dn} ({peer_id}) is calling: accepting");
                if let Err(e) = room.accept().await {
                    eprintln!("could not accept: {e}");
                }
            }
            EventKind::AppStateChanged {
                state: Some(AppState::Conference),
            } => println!("in a call"),
            EventKind::ConferenceDeleted => println!("call ended"),
            _ => {}
        }
    }
    room.close().await;
    Ok(())
}
