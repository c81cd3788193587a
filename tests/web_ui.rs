//! The web UI at `/` as the daemon serves it: embedded assets with their content types and
//! cache and security headers, and a real browser (headless Chromium driven by
//! `tests/browser/ui.cjs`) running a simulated Room through it: a mute toggle, a PTZ button,
//! dialling and hanging up, a catalog request, the phone width; then the Room itself is
//! checked, not only the page.
//!
//! The same in Firefox, shorter (`tests/browser/firefox.cjs`: the page connects, a toggle
//! reaches the Room, the phone width fits).
//!
//! The browser parts need `node`, Debian's `chromium` and `firefox-esr`, and `playwright-core`
//! and `puppeteer-core` installed under `target/browser-test` (scripts/test does all of it).
//! Without them they are skipped, loudly, unless `TRUECONF2MQTT_REQUIRE_BROWSER` is set
//! (scripts/test sets it), when they fail.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{self, HeaderMap};
use hyper::{Request, StatusCode};
use serde_json::Value;
use trueconf2mqtt::simulator::{SimConfig, SimRoom};

use common::{Broker, free_port, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_trueconf2mqtt");
const WAIT: Duration = Duration::from_secs(15);
/// The browser script's whole run: two pages, about ten steps of at most 10 s each.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);
/// `http.auth_token` of the daemon under test.
const TOKEN: &str = "web-ui-test-token-0123";
/// A room name with markup in it: the page must show it as text.
const ROOM_NAME: &str = r#"Board <b>room</b> & "Co""#;

/// The daemon binary with one simulated Room, a private broker and `http.listen` on a free
/// port; killed when dropped.
struct Daemon {
    child: std::process::Child,
    http: u16,
    room: SimRoom,
    _broker: Broker,
    _dir: tempfile::TempDir,
}

impl Daemon {
    async fn start() -> Daemon {
        let broker = Broker::start();
        let room = SimRoom::start(SimConfig::default()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let http = free_port();
        let config = format!(
            r#"
[mqtt]
host = "127.0.0.1"
port = {broker}
client_id = "web-ui-test-{id}"
keepalive_secs = 5
[http]
listen = "127.0.0.1:{http}"
auth_token = "{TOKEN}"
[[rooms]]
id = "boardroom"
name = '{ROOM_NAME}'
host = "127.0.0.1"
port = {room_port}
keepalive_secs = 3
"#,
            broker = broker.port,
            id = fastrand::u32(..),
            room_port = room.http_port(),
        );
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).unwrap();
        let child = std::process::Command::new(BIN)
            .args(["run", "--config"])
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let daemon = Daemon {
            child,
            http,
            room,
            _broker: broker,
            _dir: dir,
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(response) = get(http, "/readyz", &[]).await
                && response.0 == StatusCode::OK
            {
                break daemon;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the daemon did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/?token={TOKEN}", self.http)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 GET through hyper: status, headers, body.
async fn get(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(StatusCode, HeaderMap, Bytes), Box<dyn std::error::Error + Send + Sync>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
    tokio::spawn(connection);
    let mut request = Request::get(path).header(header::HOST, "127.0.0.1");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = tokio::time::timeout(
        WAIT,
        sender.send_request(request.body(Empty::<Bytes>::new())?),
    )
    .await??;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok((parts.status, parts.headers, body))
}

fn header_of(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(&name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_is_embedded_and_served_with_types_and_cache_headers() {
    let daemon = Daemon::start().await;
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web/assets");
    // The page takes the API's token; a browser cannot add it to the files the page loads,
    // which are the same for everyone and hold nothing.
    for (query, status) in [
        ("", StatusCode::UNAUTHORIZED),
        ("?token=wrong-token-0123456", StatusCode::UNAUTHORIZED),
        (&format!("?token={TOKEN}") as &str, StatusCode::OK),
    ] {
        let (got, _, body) = get(daemon.http, &format!("/{query}"), &[]).await.unwrap();
        assert_eq!(got, status, "/{query}: {body:?}");
        assert!(!String::from_utf8_lossy(&body).contains(TOKEN));
    }
    let page = format!("/?token={TOKEN}");
    for (path, file, content_type) in [
        (&page as &str, "index.html", "text/html; charset=utf-8"),
        ("/assets/app.js", "app.js", "text/javascript; charset=utf-8"),
        ("/assets/style.css", "style.css", "text/css; charset=utf-8"),
        ("/assets/icon.svg", "icon.svg", "image/svg+xml"),
    ] {
        let (status, headers, body) = get(daemon.http, path, &[]).await.unwrap();
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(header_of(&headers, header::CONTENT_TYPE), content_type);
        // The bytes compiled in are the files in the repository.
        assert_eq!(body, std::fs::read(assets.join(file)).unwrap(), "{path}");
        assert_eq!(header_of(&headers, header::CACHE_CONTROL), "no-cache");
        assert_eq!(
            header_of(&headers, header::X_CONTENT_TYPE_OPTIONS),
            "nosniff"
        );
        // The page's address carries the token: it must not leak as a Referer.
        assert_eq!(header_of(&headers, header::REFERRER_POLICY), "no-referrer");
        let csp = header_of(&headers, header::CONTENT_SECURITY_POLICY);
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{csp}"
        );

        // Revalidation: the same ETag gives 304 without a body.
        let etag = header_of(&headers, header::ETAG).to_owned();
        let (status, _, body) = get(daemon.http, path, &[("if-none-match", &etag)])
            .await
            .unwrap();
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{path}");
        assert!(body.is_empty());
        let (status, _, _) = get(daemon.http, path, &[("if-none-match", "\"other\"")])
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{path} with a stale tag");
    }
    let (status, _, _) = get(daemon.http, "/assets/nothing.js", &[]).await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The health endpoints are still there beside the UI.
    let (status, _, _) = get(daemon.http, "/healthz", &[]).await.unwrap();
    assert_eq!(status, StatusCode::OK);
}

/// Where `playwright-core` is installed (scripts/test: `npm ci` in target/browser-test).
fn browser_modules() -> PathBuf {
    std::env::var_os("TRUECONF2MQTT_BROWSER_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-test/node_modules")
        })
}

/// A browser's executable: `$<VAR>`, else the Debian package's path.
fn browser_path(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// What is missing to run `browser` with the npm `module` driving it, if anything.
fn browser_missing(browser: &Path, module: &str) -> Option<String> {
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node {
        return Some("node is not installed".into());
    }
    if !browser.exists() {
        return Some(format!("{} does not exist", browser.display()));
    }
    let modules = browser_modules();
    if !modules.join(module).join("package.json").exists() {
        return Some(format!(
            "{module} is not installed in {}",
            modules.display()
        ));
    }
    None
}

/// Whether the test can run; a skip is loud, and a failure when the browser is required.
fn can_run(test: &str, browser: &Path, module: &str) -> bool {
    let Some(missing) = browser_missing(browser, module) else {
        return true;
    };
    assert!(
        std::env::var_os("TRUECONF2MQTT_REQUIRE_BROWSER").is_none(),
        "{test} cannot run: {missing}"
    );
    let bar = "!".repeat(78);
    // Straight to stderr: the harness shows eprintln! only for failed tests.
    let _ = writeln!(
        std::io::stderr(),
        "\n{bar}\n!! SKIPPED {test}: {missing}\n!! (scripts/test installs chromium, \
         firefox-esr, node, playwright-core and puppeteer-core)\n{bar}\n"
    );
    false
}

/// Runs a script of tests/browser against the daemon's page; panics with its output unless
/// every step passed.
async fn run_script(daemon: &Daemon, script: &str, env: &[(&str, &Path)]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/browser")
        .join(script);
    let mut command = tokio::process::Command::new("node");
    command
        .arg(&path)
        .arg(daemon.url())
        .arg("boardroom")
        .env("NODE_PATH", browser_modules())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::time::timeout(BROWSER_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within {BROWSER_TIMEOUT:?}"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("browser: all steps passed"),
        "{script} failed:\n{stdout}\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_runs_the_room_through_the_ui() {
    let chromium = browser_path("CHROMIUM", "/usr/bin/chromium");
    if !can_run(
        "chromium_runs_the_room_through_the_ui",
        &chromium,
        "playwright-core",
    ) {
        return;
    }
    let daemon = Daemon::start().await;
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    run_script(
        &daemon,
        "ui.cjs",
        &[("CHROMIUM", &chromium), ("SCREENSHOTS", &shots)],
    )
    .await;

    // The page showed every change; now the Room itself.
    let room = &daemon.room;
    wait_until(WAIT, "the Room's microphone and camera muted", || {
        let s = room.snapshot();
        s.mic_muted && s.camera_muted
    })
    .await;
    let requests = room.requests_received();
    let sent = |method: &str, check: &dyn Fn(&Value) -> bool| {
        requests.iter().any(|r| r["method"] == method && check(r))
    };
    assert!(sent("setMicMute", &|r| r["mute"] == true), "{requests:#?}");
    assert!(sent("ptzRight", &|_| true), "{requests:#?}");
    assert!(
        sent("call", &|r| r["peerId"] == "alice@video.example.com"),
        "{requests:#?}"
    );
    assert!(sent("hangUp", &|_| true), "{requests:#?}");
    assert!(
        sent("getCallHistory", &|r| r["count"] == 3),
        "{requests:#?}"
    );
    let snapshot = room.snapshot();
    assert_eq!(snapshot.ptz.pan, 1, "one step right: {:?}", snapshot.ptz);
    assert!(snapshot.conference_id.is_none(), "hung up: {snapshot:?}");
    for shot in ["desktop.png", "phone.png"] {
        let size = std::fs::metadata(shots.join(shot)).map_or(0, |m| m.len());
        assert!(size > 10_000, "{shot} written ({size} bytes)");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_shows_the_ui_and_a_toggle_reaches_the_room() {
    let firefox = browser_path("FIREFOX", "/usr/bin/firefox-esr");
    if !can_run(
        "firefox_shows_the_ui_and_a_toggle_reaches_the_room",
        &firefox,
        "puppeteer-core",
    ) {
        return;
    }
    let daemon = Daemon::start().await;
    run_script(&daemon, "firefox.cjs", &[("FIREFOX", &firefox)]).await;
    wait_until(WAIT, "the Room's speaker muted", || {
        daemon.room.snapshot().speaker_muted
    })
    .await;
    assert!(
        daemon
            .room
            .requests_received()
            .iter()
            .any(|r| r["method"] == "setAudioMute" && r["mute"] == true)
    );
}
