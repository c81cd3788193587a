//! Docs are tests: every shell block in README.md and docs/*.md that a user is told to run is
//! run here, against the demo, the simulator and a real mosquitto on free 127.0.0.1 ports, and
//! what the text says will happen is checked.
//!
//! Each block is either claimed by a check below (found by a line it contains) or marked in the
//! Markdown with `<!-- doc-test: skip (why) -->` on the line before it (real hardware, installing
//! into the system, another network). A block that is neither fails the test, and so does a
//! check whose block is gone: a new or changed command cannot slip past. The runner prints what it
//! ran and what it skipped. Commands are run as written with only these substitutions: the
//! binary's path for `trueconf2mqtt` (and for `cargo run --release --`), the test's broker port
//! (`-h 127.0.0.1 -p <port>` added where the text relies on the default broker), the simulated
//! Room's address for the documentation's example address, and `-W`/`-C` so a subscriber ends.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use trueconf2mqtt::simulator::{SimConfig, SimRoom};

use common::{Broker, Probe};

const BIN: &str = env!("CARGO_BIN_EXE_trueconf2mqtt");
/// Bound for each awaited outcome; the whole file runs in well under a minute.
const WAIT: Duration = Duration::from_secs(15);
/// How long a documented `mosquitto_sub` runs before `-W` ends it.
const SUB_SECONDS: u32 = 3;
/// The documentation's example Room address (TEST-NET-1), replaced by the simulator's.
const DOC_ROOM_HOST: &str = "192.0.2.10";

/// One fenced shell block.
#[derive(Debug, Clone)]
struct Block {
    file: String,
    line: usize,
    text: String,
    skip: Option<String>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every ```sh / ```bash / ```shell / ```console block of README.md and docs/*.md.
fn blocks() -> Vec<Block> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut found = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.strip_prefix(root()).unwrap().display().to_string();
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let fence = lines[i].trim_start();
            let lang = fence.strip_prefix("```").map(str::trim);
            if let Some(lang) = lang.filter(|l| !l.is_empty()) {
                let start = i;
                let mut body = Vec::new();
                i += 1;
                while i < lines.len() && !lines[i].trim_start().starts_with("```") {
                    body.push(lines[i]);
                    i += 1;
                }
                if ["sh", "bash", "shell", "console"].contains(&lang) {
                    let skip = (0..start)
                        .rev()
                        .map(|k| lines[k].trim())
                        .find(|l| !l.is_empty())
                        .and_then(|l| l.strip_prefix("<!-- doc-test: skip"))
                        .map(|rest| rest.trim_end_matches("-->").trim().to_owned());
                    found.push(Block {
                        file: name.clone(),
                        line: start + 1,
                        text: body.join("\n"),
                        skip,
                    });
                }
            }
            i += 1;
        }
    }
    found
}

/// Runs one shell command line (`sh -c`), bounded by `-W` in subscribers and `timeout`.
fn sh(line: &str) -> (bool, String) {
    let out = Command::new("timeout")
        .arg("20")
        .args(["sh", "-c", line])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// A documented command line made runnable here (see the module comment).
fn adapt(line: &str, broker_port: u16) -> String {
    let line = line.split(" # ").next().unwrap_or(line).trim();
    let mut line = line
        .replace("cargo run --release -- ", &format!("{BIN} "))
        .replace("<port>", &broker_port.to_string());
    if line.starts_with("trueconf2mqtt ") {
        line = format!("{BIN}{}", &line["trueconf2mqtt".len()..]);
    }
    for tool in ["mosquitto_sub", "mosquitto_pub"] {
        if line.starts_with(tool) && !line.contains(" -p ") {
            line = line.replacen(tool, &format!("{tool} -h 127.0.0.1 -p {broker_port}"), 1);
        }
    }
    if line.starts_with("mosquitto_sub") {
        line = line.replacen(
            "mosquitto_sub",
            &format!("mosquitto_sub -W {SUB_SECONDS}"),
            1,
        );
    }
    line
}

/// A subscriber's `-W` ends it with status 27: that is the documented command working.
fn sub(line: &str) -> String {
    let (_, out) = sh(line);
    out
}

fn assert_has(out: &str, needle: &str, what: &str) {
    assert!(
        out.contains(needle),
        "{what}: expected '{needle}' in:\n{out}"
    );
}

/// The checks, each claiming the block that contains its needle.
struct Check {
    needle: &'static str,
    what: &'static str,
}

const CHECKS: &[Check] = &[
    Check {
        needle: "cargo run --release -- demo",
        what: "README: demo prints how to watch it; its mosquitto lines work",
    },
    Check {
        needle: "check-config --config config/trueconf2mqtt.example.toml",
        what: "README: check-config explains the example configuration",
    },
    Check {
        needle: "mosquitto_pub -t trueconf/boardroom/set/mic_muted -m ON",
        what: "README: the command examples reach the Room and are answered",
    },
    Check {
        needle: "room --host 192.0.2.10 --pin 1234 call getAppState",
        what: "README: `room` calls methods and prints events",
    },
    Check {
        needle: "set/mic_muted -m TOGGLE",
        what: "panels.md: Try it first against the demo",
    },
    Check {
        needle: "trueconf/bridge/+/state",
        what: "scaling.md: which instances are up and which serves each room",
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_shell_block_runs_or_is_marked_skipped() {
    let started = Instant::now();
    let blocks = blocks();
    let mut report = Vec::new();
    let mut claimed = vec![false; CHECKS.len()];
    for block in &blocks {
        let at = format!("{}:{}", block.file, block.line);
        if let Some(why) = &block.skip {
            report.push(format!("skipped {at} {why}"));
            continue;
        }
        let Some(index) = CHECKS.iter().position(|c| block.text.contains(c.needle)) else {
            panic!(
                "{at}: a shell block no check runs; run it in tests/docs.rs or mark it \
                 `<!-- doc-test: skip (why) -->`:\n{}",
                block.text
            );
        };
        claimed[index] = true;
        let notes = match index {
            0 => two_commands(block).await,
            1 => check_config(block),
            2 => command_examples(block).await,
            3 => room_command(block).await,
            4 => try_it_first(block).await,
            5 => scaling(block).await,
            _ => unreachable!(),
        };
        report.push(format!("ran     {at} {}{notes}", CHECKS[index].what));
    }
    for (check, claimed) in CHECKS.iter().zip(claimed) {
        assert!(
            claimed,
            "no documented block contains '{}' any more ({}): update the check",
            check.needle, check.what
        );
    }
    println!("documentation blocks:\n  {}", report.join("\n  "));
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "the doc tests took {:?}",
        started.elapsed()
    );
}

/// A running `trueconf2mqtt demo` (the binary, as `cargo run -- demo` runs it).
struct Demo {
    child: std::process::Child,
    output: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Demo {
    async fn start() -> Demo {
        let mut child = Command::new(BIN)
            .args(["demo", "--pace", "3"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = output.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        let demo = Demo { child, output };
        common::wait_until(WAIT, "the demo is running", || {
            demo.text().contains("Scripted life")
        })
        .await;
        demo
    }

    fn text(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// The broker port the demo printed (`broker  127.0.0.1:<port> (…)`).
    fn port(&self) -> u16 {
        let text = self.text();
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("broker"))
            .unwrap_or_else(|| panic!("no broker line in:\n{text}"));
        let address = line.split_whitespace().nth(1).unwrap();
        address.rsplit_once(':').unwrap().1.parse().unwrap()
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + WAIT;
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the demo did not stop on Ctrl-C");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_has(&self.text(), "stopped", "the demo says it stopped");
    }
}

/// README "Two commands": `demo` prints the `mosquitto_sub` line to watch it and the Home
/// Assistant settings; the printed commands work as printed.
async fn two_commands(block: &Block) -> String {
    assert!(block.text.contains("scripts/test"));
    let demo = Demo::start().await;
    let text = demo.text();
    let port = demo.port();
    assert_has(&text, "Home Assistant: Settings", "HA settings printed");
    let printed: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("mosquitto_"))
        .map(str::to_owned)
        .collect();
    assert!(printed.len() >= 3, "{text}");
    let watch = &printed[0];
    assert!(
        watch.starts_with("mosquitto_sub") && watch.contains(&format!("-p {port} ")),
        "{text}"
    );
    // The printed commands as printed (a subscriber bounded by -W).
    let subscriber = std::thread::spawn({
        let watch = watch.replacen("mosquitto_sub", "mosquitto_sub -W 4", 1);
        move || sub(&watch)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    for command in &printed[1..] {
        let (ok, out) = sh(command);
        assert!(ok, "{command}: {out}");
    }
    let seen = subscriber.join().unwrap();
    assert_has(
        &seen,
        "trueconf/demo-room/availability online",
        "watch line",
    );
    assert_has(
        &seen,
        "trueconf/demo-room/response/mic_muted",
        "command answered",
    );
    demo.stop();
    " (scripts/test itself not run: it is the suite this test belongs to)".into()
}

/// README "Running it for real": check-config explains the example configuration.
fn check_config(block: &Block) -> String {
    let line = block
        .text
        .lines()
        .find(|l| l.contains("check-config"))
        .unwrap();
    let (ok, out) = sh(&format!("cd {} && {}", root().display(), adapt(line, 1883)));
    assert!(ok, "{line}: {out}");
    assert_has(&out, "configuration is valid", line);
    " (cargo install and `run --config /etc/…` not run: they install into and read from the \
     system)"
        .into()
}

/// A bridge (`trueconf2mqtt run`) serving the simulated Room `boardroom`, on a fresh mosquitto.
struct Daemon {
    broker: Broker,
    room: SimRoom,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Daemon {
    async fn start(instance: Option<&str>, room_pin: Option<&str>) -> Daemon {
        let broker = Broker::start();
        let room = SimRoom::start(SimConfig {
            pin: room_pin.map(str::to_owned),
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let instance = instance
            .map(|i| format!("instance = \"{i}\"\n"))
            .unwrap_or_default();
        std::fs::write(
            &path,
            format!(
                "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"docs-{}\"\n{instance}\
                 [[rooms]]\nid = \"boardroom\"\nname = \"Boardroom\"\nhost = \"127.0.0.1\"\n\
                 port = {}\n",
                broker.port,
                fastrand::u32(..),
                room.http_port()
            ),
        )
        .unwrap();
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let probe = Probe::connect(broker.port, &["trueconf/boardroom/availability"]).await;
        probe
            .wait_value("trueconf/boardroom/availability", "online", WAIT)
            .await;
        Daemon {
            broker,
            room,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// README's command examples: each one reaches the Room or is answered as the text says.
async fn command_examples(block: &Block) -> String {
    let daemon = Daemon::start(None, None).await;
    let port = daemon.broker.port;
    let lines: Vec<&str> = block.text.lines().collect();
    let watch = adapt(lines[0], port);
    let subscriber = std::thread::spawn(move || sub(&watch));
    tokio::time::sleep(Duration::from_millis(500)).await;
    for line in &lines[1..] {
        let (ok, out) = sh(&adapt(line, port));
        assert!(ok, "{line}: {out}");
    }
    let seen = subscriber.join().unwrap();
    // set/mic_muted ON: the Room's microphone is muted.
    daemon
        .room
        .wait_for(|s| s.mic_muted, WAIT)
        .await
        .expect("mic muted by the documented command");
    // The JSON `set` with a transaction: applied, and the transaction echoed.
    daemon
        .room
        .wait_for(|s| s.camera_muted, WAIT)
        .await
        .expect("camera muted by the JSON set");
    assert_has(&seen, "trueconf/boardroom/availability online", "state");
    assert_has(&seen, "\"transaction\":42", "transaction echoed");
    assert_has(&seen, "trueconf/boardroom/response/call", "call answered");
    assert_has(
        &seen,
        "trueconf/boardroom/response/getCallHistory",
        "request answered",
    );
    String::new()
}

/// README's `room` lines against a simulated Room with PIN 1234.
async fn room_command(block: &Block) -> String {
    let room = SimRoom::start(SimConfig {
        pin: Some("1234".into()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let at = format!("127.0.0.1 --port {}", room.http_port());
    let runnable = |line: &str| adapt(line, 0).replace(DOC_ROOM_HOST, &at);
    for line in block.text.lines() {
        if line.contains(" events") {
            // Runs until stopped: one JSON line per event while the Room does something.
            let mut child = Command::new("sh")
                .args(["-c", &format!("exec {}", runnable(line))])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // Lines of both streams, read on threads and awaited here (the simulated Room runs
            // on this runtime).
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(bool, String)>();
            for (is_stdout, stream) in [
                (
                    true,
                    Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
                ),
                (false, Box::new(child.stderr.take().unwrap())),
            ] {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    use std::io::BufRead;
                    for line in std::io::BufReader::new(stream)
                        .lines()
                        .map_while(Result::ok)
                    {
                        let _ = tx.send((is_stdout, line));
                    }
                });
            }
            let mut next = async |want_stdout: bool| loop {
                match tokio::time::timeout(WAIT, rx.recv()).await {
                    Ok(Some((is_stdout, text))) if is_stdout == want_stdout => break text,
                    Ok(Some(_)) => continue,
                    _ => panic!("{line}: nothing more from `room events`"),
                }
            };
            // Online (it says so on stderr) before the Room does something.
            let said = next(false).await;
            assert!(said.contains("connected"), "{line}: {said}");
            room.incoming_call("bob@sim.local", "Bob").unwrap();
            let first = next(true).await;
            let _ = child.kill();
            let _ = child.wait();
            assert!(
                serde_json::from_str::<serde_json::Value>(&first)
                    .is_ok_and(|v| v["event"].is_string()),
                "{line}: {first}"
            );
        } else {
            let (ok, out) = sh(&runnable(line));
            assert!(ok, "{line}: {out}");
            assert!(
                serde_json::from_str::<serde_json::Value>(out.trim()).is_ok(),
                "{line}: not JSON: {out}"
            );
        }
    }
    assert!(room.snapshot().mic_muted, "setMicMute reached the Room");
    room.stop().await;
    String::new()
}

/// docs/panels.md "Try it first", with the port and room id the demo prints.
async fn try_it_first(block: &Block) -> String {
    let demo = Demo::start().await;
    let port = demo.port();
    assert_has(&demo.text(), "room id demo-room", "the demo's room id");
    let lines: Vec<String> = block
        .text
        .lines()
        .map(|l| adapt(&l.replace("boardroom", "demo-room"), port))
        .collect();
    let watch = lines[0].clone();
    let subscriber = std::thread::spawn(move || sub(&watch));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ok, out) = sh(&lines[1]);
    assert!(ok, "{}: {out}", lines[1]);
    let seen = subscriber.join().unwrap();
    assert_has(&seen, "trueconf/demo-room/mic_muted ", "state topics");
    assert_has(
        &seen,
        "trueconf/demo-room/owner {",
        "owner JSON, as the text says",
    );
    assert_has(
        &seen,
        "trueconf/demo-room/response/mic_muted",
        "TOGGLE answered",
    );
    assert!(
        !seen.lines().any(|l| l.starts_with("trueconf/demo-room {")),
        "the JSON document is not matched, as the text says:\n{seen}"
    );
    demo.stop();
    String::new()
}

/// docs/scaling.md: bridge state per instance and the owner of each room.
async fn scaling(block: &Block) -> String {
    let daemon = Daemon::start(Some("east"), None).await;
    let line = adapt(block.text.lines().next().unwrap(), daemon.broker.port);
    let seen = sub(&line);
    assert_has(&seen, "trueconf/bridge/east/state online", "instance up");
    assert_has(&seen, "trueconf/boardroom/owner {", "room owner");
    assert_has(&seen, "\"instance\":\"east\"", "served by east");
    String::new()
}
