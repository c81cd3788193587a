//! Send any catalog method by name, with parameters validated against the method table.
//!
//! ```text
//! cargo run --example any_method -- 127.0.0.1 8766 1234 setMicMute '{"mute":true}'
//! ```

use trueconf2mqtt::room::{RoomClient, RoomOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (host, port, pin, method) = match args.as_slice() {
        [host, port, pin, method, ..] => (host, port.parse::<u16>()?, pin, method),
        _ => {
            eprintln!("usage: any_method <host> <port> <pin> <method> [json params]");
            std::process::exit(2);
        }
    };
    let params = match args.get(4) {
        Some(text) => serde_json::from_str(text)?,
        None => serde_json::Value::Null,
    };
    let room = RoomClient::connect(RoomOptions::new(host, port).with_pin(pin)).await?;
    let reply = room.request(method, params).await?;
    println!("{}", serde_json::Value::Object(reply));
    room.close().await;
    Ok(())
}
