//! Connect to a Room with its PIN, print its state, then print events as they come.
//!
//! ```text
//! cargo run --example connect_with_pin -- 192.0.2.10 80 1234
//! ```
//! (Try it against the simulator: `cargo run -- simulate --http-port 8766 --pin 1234`, then
//! `cargo run --example connect_with_pin -- 127.0.0.1 8766 1234`.)

use trueconf2mqtt::room::{RoomClient, RoomOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let host = args.next().unwrap_or_else(|| "127.0.0.1".into());
    let port: u16 = args.next().map_or(Ok(80), |p| p.parse())?;
    let pin = args.next();

    let mut options = RoomOptions::new(host, port);
    if let Some(pin) = pin {
        options = options.with_pin(pin);
    }
    let room = RoomClient::connect(options).await?;
    let state = room.state().borrow().clone();
    println!(
        "app state: {:?}, logged in as {:?}",
        state.app_state, state.user
    );
    println!("microphone muted: {}", room.mic_muted().await?);

    let mut events = room.events();
    println!("waiting for events (Ctrl-C to stop)…");
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            event = events.recv() => match event {
                Ok(event) => println!("{}: {:?}", event.name, event.data()),
                Err(_) => break,
            },
        }
    }
    room.close().await;
    Ok(())
}
