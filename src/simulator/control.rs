//! `trueconf2mqtt simulate`: simulated Rooms as a process, steered over stdin.
//!
//! The demo, the Python interop tests and anyone poking at the bridge by hand need Rooms that
//! live in another process. [`run`] starts them, prints one `listening …` line per room (so a
//! parent process can wait for readiness and learn free ports), then reads one command per line
//! from stdin and answers each with one line. Closing stdin does not stop anything — under
//! systemd or docker stdin is often closed from the start — only the shutdown future does.

use std::future::Future;
use std::io::{self, BufRead, Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use super::{DeviceKind, GarbageKind, SimConfig, SimError, SimRoom};

/// Options of `trueconf2mqtt simulate`.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// Web server port (`config.json`) of the first room; 0 picks free ports.
    pub http_port: u16,
    /// WebSocket port of the first room; 0 picks free ports.
    pub ws_port: u16,
    /// PIN for `secured` auth; `None` runs the rooms unsecured.
    pub pin: Option<String>,
    /// Number of rooms. With more than one, room *i* uses the base ports plus *i*−1 (or plus
    /// 2(*i*−1), 3(*i*−1)… when the two port ranges would otherwise overlap, as with the
    /// defaults 8766/8765).
    pub rooms: usize,
    /// Address to listen on.
    pub bind: IpAddr,
    /// Tune the rooms' WebSocket sockets (`TCP_NODELAY`, batched writes); see [`SimConfig::tuned`].
    pub tuned: bool,
}

impl Default for SimulateOptions {
    /// The real Room's default ports (SPEC §2.4), one unsecured room on localhost.
    fn default() -> SimulateOptions {
        SimulateOptions {
            http_port: 8766,
            ws_port: 8765,
            pin: None,
            rooms: 1,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            tuned: false,
        }
    }
}

/// Longest control line read from stdin; longer lines are cut.
const MAX_LINE: u64 = 1 << 20;

const HELP: &str = "commands: incoming <room> <peerId> [name] | giveup <room> | hangup <room> | \
    join <room> <peerId> [name] | leave <room> <peerId> | chat <room> <peerId> <text> | \
    ownermute <room> on|off | plug|unplug <room> camera|mic|speaker <name> | emit <room> <json> | \
    drop <room> | halfopen <room> on|off | delay <room> <ms> | refuseauth <room> on|off | \
    garbage <room> nonjson|binary|huge|unknownid|duplicate | flood <room> <n> | stop <room> | \
    restart <room> | state <room> | preset <room> save|apply <n>|remove <n> | \
    share <room> <source>|stop | slides <room> start|stop|next|prev|<n> | \
    podium <room> <peerId> | camctl <room> <peerId> | recordask <room> <peerId> | \
    recording <room> on|off | help";

/// Runs simulated rooms until `shutdown` completes, printing `listening room=<n> http=<port>
/// ws=<port>` for each and answering control commands read from stdin (see `help`).
pub async fn run(opts: SimulateOptions, shutdown: impl Future<Output = ()>) -> io::Result<()> {
    let (tx, rx) = mpsc::channel(64);
    // A plain thread, not tokio's stdin: a blocking read there would hold up runtime shutdown
    // until the user pressed enter. The thread ends with the process.
    std::thread::Builder::new()
        .name("simulate-stdin".into())
        .spawn(move || read_lines(io::stdin().lock(), &tx))?;
    run_with(opts, rx, io::stdout(), shutdown).await
}

fn read_lines(mut input: impl BufRead, tx: &mpsc::Sender<String>) {
    let mut line = Vec::new();
    loop {
        line.clear();
        match input.by_ref().take(MAX_LINE).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line).trim().to_owned();
                if tx.blocking_send(text).is_err() {
                    return;
                }
            }
        }
    }
}

/// [`run`] with the control lines and the output supplied by the caller (for tests).
pub(crate) async fn run_with(
    opts: SimulateOptions,
    mut lines: mpsc::Receiver<String>,
    mut out: impl Write,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let base = SimConfig {
        pin: opts.pin,
        bind: opts.bind,
        http_port: opts.http_port,
        ws_port: opts.ws_port,
        tuned: opts.tuned,
        ..SimConfig::default()
    };
    let rooms = SimRoom::start_many(opts.rooms.max(1), base).await?;
    for (i, room) in rooms.iter().enumerate() {
        writeln!(
            out,
            "listening room={} http={} ws={}",
            i + 1,
            room.http_port(),
            room.ws_port()
        )?;
    }
    out.flush()?;
    tokio::pin!(shutdown);
    let mut input_open = true;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            line = lines.recv(), if input_open => match line {
                // EOF on stdin: keep running (SPEC of the CLI: only shutdown stops us).
                None => input_open = false,
                Some(line) => {
                    if let Some(answer) = execute(&rooms, &line).await {
                        // A closed stdout must not take the rooms down either.
                        let _ = writeln!(out, "{answer}").and_then(|()| out.flush());
                    }
                }
            },
        }
    }
    for room in &rooms {
        room.stop().await;
    }
    Ok(())
}

/// A parsed control command. Rooms are numbered from 1 in the text, from 0 here.
#[derive(Debug, Clone, PartialEq)]
enum ControlLine {
    Help,
    Incoming(usize, String, String),
    GiveUp(usize),
    Hangup(usize),
    Join(usize, String, String),
    Leave(usize, String),
    Chat(usize, String, String),
    OwnerMute(usize, bool),
    Plug(usize, DeviceKind, String),
    Unplug(usize, DeviceKind, String),
    Emit(usize, Value),
    Drop(usize),
    HalfOpen(usize, bool),
    Delay(usize, Duration),
    RefuseAuth(usize, bool),
    Garbage(usize, GarbageKind),
    Flood(usize, usize),
    Stop(usize),
    Restart(usize),
    State(usize),
    Preset(usize, PresetAction),
    Share(usize, Option<String>),
    Slides(usize, String),
    Podium(usize, String),
    CamCtl(usize, String),
    RecordAsk(usize, String),
    Recording(usize, bool),
}

/// What `preset` does at the Room.
#[derive(Debug, Clone, PartialEq)]
enum PresetAction {
    Save,
    Apply(String),
    Remove(String),
}

/// Splits off the first whitespace-separated word.
fn word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], text[i..].trim_start()),
        None => (text, ""),
    }
}

fn on_off(text: &str) -> Result<bool, String> {
    match text.trim() {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        other => Err(format!("expected on|off, got '{other}'")),
    }
}

fn parse_command(line: &str, rooms: usize) -> Result<ControlLine, String> {
    let (name, rest) = word(line);
    const NAMES: &[&str] = &[
        "incoming",
        "giveup",
        "hangup",
        "join",
        "leave",
        "chat",
        "ownermute",
        "plug",
        "unplug",
        "emit",
        "drop",
        "halfopen",
        "delay",
        "refuseauth",
        "garbage",
        "flood",
        "stop",
        "restart",
        "state",
        "preset",
        "share",
        "slides",
        "podium",
        "camctl",
        "recordask",
        "recording",
    ];
    if name == "help" {
        return Ok(ControlLine::Help);
    }
    if !NAMES.contains(&name) {
        return Err(format!("unknown command '{name}' (try 'help')"));
    }
    let (room_text, rest) = word(rest);
    let room = match room_text.parse::<usize>() {
        Ok(n) if (1..=rooms).contains(&n) => n - 1,
        _ if room_text.is_empty() => return Err(format!("usage: {name} <room> …")),
        _ => return Err(format!("no room '{room_text}' (rooms are 1..={rooms})")),
    };
    let required = |text: &str, what: &str| -> Result<String, String> {
        if text.is_empty() {
            Err(format!("{name}: missing {what}"))
        } else {
            Ok(text.to_owned())
        }
    };
    let device = |rest: &str| -> Result<(DeviceKind, String), String> {
        let (kind, name_text) = word(rest);
        let kind = DeviceKind::parse(kind)
            .ok_or_else(|| format!("expected camera|mic|speaker, got '{kind}'"))?;
        Ok((kind, required(name_text, "device name")?))
    };
    Ok(match name {
        "incoming" => {
            let (peer, display) = word(rest);
            ControlLine::Incoming(room, required(peer, "peerId")?, display.to_owned())
        }
        "giveup" => ControlLine::GiveUp(room),
        "hangup" => ControlLine::Hangup(room),
        "join" => {
            let (peer, display) = word(rest);
            ControlLine::Join(room, required(peer, "peerId")?, display.to_owned())
        }
        "leave" => ControlLine::Leave(room, required(word(rest).0, "peerId")?),
        "chat" => {
            let (peer, text) = word(rest);
            ControlLine::Chat(room, required(peer, "peerId")?, required(text, "text")?)
        }
        "ownermute" => ControlLine::OwnerMute(room, on_off(rest)?),
        "plug" => {
            let (kind, name) = device(rest)?;
            ControlLine::Plug(room, kind, name)
        }
        "unplug" => {
            let (kind, name) = device(rest)?;
            ControlLine::Unplug(room, kind, name)
        }
        "emit" => ControlLine::Emit(
            room,
            serde_json::from_str(rest).map_err(|e| format!("emit: invalid JSON: {e}"))?,
        ),
        "drop" => ControlLine::Drop(room),
        "halfopen" => ControlLine::HalfOpen(room, on_off(rest)?),
        "delay" => ControlLine::Delay(
            room,
            Duration::from_millis(rest.trim().parse().map_err(|_| "delay: expected <ms>")?),
        ),
        "refuseauth" => ControlLine::RefuseAuth(room, on_off(rest)?),
        "garbage" => ControlLine::Garbage(room, rest.trim().parse()?),
        "flood" => ControlLine::Flood(
            room,
            rest.trim().parse().map_err(|_| "flood: expected <n>")?,
        ),
        "stop" => ControlLine::Stop(room),
        "restart" => ControlLine::Restart(room),
        "state" => ControlLine::State(room),
        "preset" => {
            let (verb, which) = word(rest);
            ControlLine::Preset(
                room,
                match verb {
                    "save" | "add" => PresetAction::Save,
                    "apply" => PresetAction::Apply(required(which, "preset number")?),
                    "remove" => PresetAction::Remove(required(which, "preset number")?),
                    other => {
                        return Err(format!("preset: expected save|apply|remove, got '{other}'"));
                    }
                },
            )
        }
        "share" => {
            let source = required(rest, "content source (or stop)")?;
            ControlLine::Share(room, (source != "stop").then_some(source))
        }
        "slides" => ControlLine::Slides(room, required(rest, "start|stop|next|prev|<n>")?),
        "podium" => ControlLine::Podium(room, required(word(rest).0, "peerId")?),
        "camctl" => ControlLine::CamCtl(room, required(word(rest).0, "peerId")?),
        "recordask" => ControlLine::RecordAsk(room, required(word(rest).0, "peerId")?),
        "recording" => ControlLine::Recording(room, on_off(rest)?),
        other => return Err(format!("unknown command '{other}'")),
    })
}

/// Runs one control line; `None` for blank lines and comments.
async fn execute(rooms: &[SimRoom], line: &str) -> Option<String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let command = match parse_command(line, rooms.len()) {
        Ok(command) => command,
        Err(e) => return Some(format!("error: {e}")),
    };
    let ok = |r: Result<(), SimError>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("error: {e}"),
    };
    Some(match command {
        ControlLine::Help => HELP.to_owned(),
        ControlLine::Incoming(r, peer, name) => ok(rooms[r].incoming_call(&peer, &name)),
        ControlLine::GiveUp(r) => ok(rooms[r].caller_gives_up()),
        ControlLine::Hangup(r) => ok(rooms[r].remote_hangup()),
        ControlLine::Join(r, peer, name) => ok(rooms[r].participant_joins(&peer, &name)),
        ControlLine::Leave(r, peer) => ok(rooms[r].participant_leaves(&peer)),
        ControlLine::Chat(r, peer, text) => ok(rooms[r].chat_message(&peer, &text)),
        ControlLine::OwnerMute(r, mute) => ok(rooms[r].owner_mutes_mic(mute)),
        ControlLine::Plug(r, kind, name) => ok(rooms[r].plug_device(kind, &name)),
        ControlLine::Unplug(r, kind, name) => ok(rooms[r].unplug_device(kind, &name)),
        ControlLine::Emit(r, frame) => {
            rooms[r].emit_raw(frame);
            "ok".into()
        }
        ControlLine::Drop(r) => {
            rooms[r].drop_connections();
            "ok".into()
        }
        ControlLine::HalfOpen(r, on) => {
            rooms[r].set_half_open(on);
            "ok".into()
        }
        ControlLine::Delay(r, delay) => {
            rooms[r].set_reply_delay(delay);
            "ok".into()
        }
        ControlLine::RefuseAuth(r, on) => {
            rooms[r].set_refuse_auth(on);
            "ok".into()
        }
        ControlLine::Garbage(r, kind) => {
            rooms[r].send_garbage(kind);
            "ok".into()
        }
        ControlLine::Flood(r, n) => {
            rooms[r].flood_events(n).await;
            "ok".into()
        }
        ControlLine::Stop(r) => {
            rooms[r].stop().await;
            "ok".into()
        }
        ControlLine::Restart(r) => match rooms[r].restart().await {
            Ok(()) => "ok".into(),
            Err(e) => format!("error: {e}"),
        },
        ControlLine::Preset(r, PresetAction::Save) => ok(rooms[r].room_saves_preset()),
        ControlLine::Preset(r, PresetAction::Apply(p)) => ok(rooms[r].room_applies_preset(&p)),
        ControlLine::Preset(r, PresetAction::Remove(p)) => ok(rooms[r].room_removes_preset(&p)),
        ControlLine::Share(r, source) => ok(rooms[r].room_shares(source.as_deref())),
        ControlLine::Slides(r, what) => ok(rooms[r].room_slides(&what)),
        ControlLine::Podium(r, peer) => ok(rooms[r].podium_request(&peer)),
        ControlLine::CamCtl(r, peer) => ok(rooms[r].camera_control_request(&peer)),
        ControlLine::RecordAsk(r, peer) => ok(rooms[r].record_request(&peer)),
        ControlLine::Recording(r, on) => ok(rooms[r].set_recording(on)),
        ControlLine::State(r) => {
            serde_json::to_string(&rooms[r].snapshot()).unwrap_or_else(|e| format!("error: {e}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn parses_commands() {
        assert_eq!(
            parse_command("incoming 2 alice@srv Alice Smith", 3),
            Ok(ControlLine::Incoming(
                1,
                "alice@srv".into(),
                "Alice Smith".into()
            ))
        );
        assert_eq!(
            parse_command("chat 1 bob@srv hello   there", 1),
            Ok(ControlLine::Chat(
                0,
                "bob@srv".into(),
                "hello   there".into()
            ))
        );
        assert_eq!(
            parse_command("halfopen 1 on", 1),
            Ok(ControlLine::HalfOpen(0, true))
        );
        assert_eq!(
            parse_command("plug 1 camera USB Cam", 1),
            Ok(ControlLine::Plug(0, DeviceKind::Camera, "USB Cam".into()))
        );
        assert_eq!(
            parse_command("garbage 1 huge", 1),
            Ok(ControlLine::Garbage(0, GarbageKind::Huge))
        );
        assert_eq!(
            parse_command("delay 1 250", 1),
            Ok(ControlLine::Delay(0, Duration::from_millis(250)))
        );
        assert!(parse_command("state 4", 3).is_err());
        assert!(parse_command("state", 3).is_err());
        assert!(parse_command("state x", 3).is_err());
        assert!(parse_command("dance 1", 3).is_err());
        assert!(parse_command("incoming 1", 3).is_err());
        assert!(parse_command("emit 1 {nope", 3).is_err());
        assert!(parse_command("halfopen 1 maybe", 3).is_err());
        assert_eq!(parse_command("help", 0), Ok(ControlLine::Help));
        assert_eq!(
            parse_command("preset 1 apply 2", 1),
            Ok(ControlLine::Preset(0, PresetAction::Apply("2".into())))
        );
        assert_eq!(
            parse_command("share 1 Screen 2", 1),
            Ok(ControlLine::Share(0, Some("Screen 2".into())))
        );
        assert_eq!(
            parse_command("share 1 stop", 1),
            Ok(ControlLine::Share(0, None))
        );
        assert_eq!(
            parse_command("slides 1 next", 1),
            Ok(ControlLine::Slides(0, "next".into()))
        );
        assert_eq!(
            parse_command("recordask 1 bob@srv/1", 1),
            Ok(ControlLine::RecordAsk(0, "bob@srv/1".into()))
        );
        assert!(parse_command("preset 1 dance", 1).is_err());
        assert!(parse_command("preset 1 apply", 1).is_err());
        assert!(parse_command("recording 1 maybe", 1).is_err());
    }

    #[tokio::test]
    async fn panel_commands_reach_the_room() {
        let rooms = vec![
            SimRoom::start(SimConfig {
                http_port: 0,
                ws_port: 0,
                ..SimConfig::default()
            })
            .await
            .unwrap(),
        ];
        let run = |line: &'static str| execute(&rooms, line);
        assert_eq!(run("preset 1 save").await.as_deref(), Some("ok"));
        assert_eq!(rooms[0].snapshot().presets.len(), 3);
        assert_eq!(run("preset 1 apply 2").await.as_deref(), Some("ok"));
        assert_eq!(rooms[0].snapshot().ptz.pan, -6);
        assert_eq!(run("preset 1 remove 3").await.as_deref(), Some("ok"));
        assert_eq!(rooms[0].snapshot().presets.len(), 2);
        assert!(
            run("preset 1 apply 9")
                .await
                .unwrap()
                .starts_with("error: ")
        );
        // Content, slides, requests and recording need a call.
        for line in [
            "share 1 Screen 1",
            "slides 1 start",
            "podium 1 bob@srv/1",
            "camctl 1 bob@srv/1",
            "recordask 1 bob@srv/1",
            "recording 1 on",
        ] {
            let answer = run(line).await.unwrap();
            assert!(
                answer.starts_with("error: not possible now"),
                "{line}: {answer}"
            );
        }
        rooms[0].stop().await;
    }

    #[test]
    fn reads_lines_until_eof_lossily() {
        let (tx, mut rx) = mpsc::channel(8);
        read_lines(&b"state 1\r\n\xffbad\nlast"[..], &tx);
        assert_eq!(rx.try_recv().unwrap(), "state 1");
        assert_eq!(rx.try_recv().unwrap(), "\u{fffd}bad");
        assert_eq!(rx.try_recv().unwrap(), "last");
        assert!(rx.try_recv().is_err());
    }

    #[derive(Clone, Default)]
    struct Output(Arc<Mutex<Vec<u8>>>);

    impl Write for Output {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Output {
        fn lines(&self) -> Vec<String> {
            String::from_utf8_lossy(&self.0.lock().unwrap())
                .lines()
                .map(str::to_owned)
                .collect()
        }

        async fn wait_lines(&self, n: usize) -> Vec<String> {
            tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    let lines = self.lines();
                    if lines.len() >= n {
                        return lines;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .expect("output lines in time")
        }
    }

    #[tokio::test]
    async fn control_channel_survives_eof_and_stops_on_shutdown() {
        let opts = SimulateOptions {
            http_port: 0,
            ws_port: 0,
            rooms: 2,
            ..SimulateOptions::default()
        };
        let (tx, rx) = mpsc::channel(8);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let out = Output::default();
        let task = tokio::spawn(run_with(opts, rx, out.clone(), async {
            let _ = stop_rx.await;
        }));
        let lines = out.wait_lines(2).await;
        assert!(lines[0].starts_with("listening room=1 http="), "{lines:?}");
        assert!(lines[1].starts_with("listening room=2 http="), "{lines:?}");

        for line in [
            "incoming 2 alice@srv Alice",
            "",
            "# comment",
            "state 2",
            "hangup 1",
            "bogus",
        ] {
            tx.send(line.to_owned()).await.unwrap();
        }
        drop(tx); // EOF on stdin
        let lines = out.wait_lines(6).await;
        assert_eq!(lines[2], "ok");
        let state: Value = serde_json::from_str(&lines[3]).unwrap();
        assert_eq!(state["app_state"], "wait");
        assert_eq!(state["caller"]["peerId"], "alice@srv");
        assert!(lines[4].starts_with("error: not possible now"), "{lines:?}");
        assert!(lines[5].starts_with("error: unknown command"), "{lines:?}");

        let mut task = task;
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut task)
                .await
                .is_err(),
            "EOF on stdin must not stop the simulator"
        );
        stop_tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops on shutdown")
            .unwrap()
            .unwrap();
    }
}
