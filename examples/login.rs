//! Connect to a server and log in when the Room asks for it (`appState` 2), as in the official
//! Python library's README.
//!
//! ```text
//! cargo run --example login -- <host> <port> <pin> <server> <login> <password>
//! ```

use std::time::Duration;

use trueconf2mqtt::protocol::AppState;
use trueconf2mqtt::room::{RoomClient, RoomOptions};
use trueconf2mqtt::secret::Secret;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, port, pin, server, login, password] = args.as_slice() else {
        eprintln!("usage: login <host> <port> <pin> <server> <login> <password>");
        std::process::exit(2);
    };
    let room = RoomClient::connect(RoomOptions::new(host, port.parse()?).with_pin(pin)).await?;
    let state = room.state();

    if state.borrow().app_state == Some(AppState::None) {
        room.connect_to_server(server, None).await?;
        println!("connecting to {server}…");
    }
    let watch = state.clone();
    let wait = |wanted: fn(Option<AppState>) -> bool| {
        let mut state = watch.clone();
        async move {
            tokio::time::timeout(
                Duration::from_secs(30),
                state.wait_for(|s| wanted(s.app_state)),
            )
            .await
            .map(|_| ())
        }
    };
    wait(|s| matches!(s, Some(AppState::Login | AppState::Normal))).await?;
    if state.borrow().app_state == Some(AppState::Login) {
        room.login(login, &Secret::new(password.clone()), true)
            .await?;
        wait(|s| s == Some(AppState::Normal)).await?;
    }
    println!("logged in as {:?}", state.borrow().user);
    room.close().await;
    Ok(())
}
