//! MQTT over TLS with server verification and client certificates, and username/password,
//! against a mosquitto configured by the test (certificates generated here with rcgen): the
//! bridge, and `trueconf2mqtt status` reading it with the same configuration.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use trueconf2mqtt::bridge::{Bridge, BridgeOptions, RoomEntry};
use trueconf2mqtt::mqtt::{LinkOptions, TlsOptions};
use trueconf2mqtt::room::RoomOptions;
use trueconf2mqtt::secret::Secret;
use trueconf2mqtt::simulator::{SimConfig, SimRoom};

use common::{Probe, Running, free_port, wait_until, within};

const BIN: &str = env!("CARGO_BIN_EXE_trueconf2mqtt");
const WAIT: Duration = Duration::from_secs(15);
const PASSWORD: &str = "broker-pass-4471";

struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "trueconf2mqtt test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf = |names: Vec<String>, cn: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf(vec!["localhost".into(), "127.0.0.1".into()], "localhost");
    let (client_cert, client_key) = leaf(vec![], "trueconf2mqtt");
    Pki {
        ca: ca.pem(),
        server_cert,
        server_key,
        client_cert,
        client_key,
    }
}

/// mosquitto with a TLS listener (client certificate and password required) and a plain
/// listener for the probe.
struct SecureBroker {
    tls_port: u16,
    plain_port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for SecureBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn secure_broker(pki: &Pki) -> SecureBroker {
    let dir = tempfile::tempdir().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let ca = write(dir.path(), "ca.pem", &pki.ca);
    let cert = write(dir.path(), "server.pem", &pki.server_cert);
    let key = write(dir.path(), "server.key", &pki.server_key);
    let passwd = dir.path().join("passwd");
    let status = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwd)
        .args(["bridge", PASSWORD])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("mosquitto_passwd (package mosquitto) is installed");
    assert!(status.success());
    #[cfg(unix)]
    for path in [&ca, &cert, &key, &passwd] {
        use std::os::unix::fs::PermissionsExt;
        // mosquitto started as root reads these as user `mosquitto`.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let (tls_port, plain_port) = (free_port(), free_port());
    let config = write(
        dir.path(),
        "mosquitto.conf",
        &format!(
            "per_listener_settings true\n\
             listener {tls_port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n\
             cafile {ca}\ncertfile {cert}\nkeyfile {key}\nrequire_certificate true\n\
             listener {plain_port} 127.0.0.1\nallow_anonymous true\n",
            passwd = passwd.display(),
            ca = ca.display(),
            cert = cert.display(),
            key = key.display()
        ),
    );
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto is installed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_err()
        || std::net::TcpStream::connect(("127.0.0.1", plain_port)).is_err()
    {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    SecureBroker {
        tls_port,
        plain_port,
        child,
        _dir: dir,
    }
}

fn options(port: u16, room: &SimRoom, tls: TlsOptions, password: &str) -> BridgeOptions {
    BridgeOptions {
        mqtt: LinkOptions {
            credentials: Some(("bridge".into(), Secret::new(password))),
            tls: Some(tls),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_millis(300),
            ..LinkOptions::new("localhost", port, format!("tls-test-{}", fastrand::u32(..)))
        },
        base_topic: "trueconf".into(),
        discovery_prefix: None,
        homeassistant: Default::default(),
        max_payload_bytes: 65536,
        command_max_age: Duration::from_secs(30),
        rooms: vec![RoomEntry {
            id: "boardroom".into(),
            name: "Boardroom".into(),
            options: RoomOptions::new("127.0.0.1", room.http_port()),
            allow_dangerous: vec![],
        }],
    }
}

/// TLS as the bridge is configured: the broker verified against `ca_pem`, the client
/// certificate of `pki`.
fn client_tls(pki: &Pki, ca_pem: &str) -> TlsOptions {
    let key = Secret::new(pki.client_key.clone());
    TlsOptions::from_pem(
        Some(ca_pem.as_bytes()),
        Some((pki.client_cert.as_bytes(), &key)),
    )
    .unwrap()
}

/// The last error of the bridge's MQTT link, empty while there is none.
fn last_error(bridge: &Bridge) -> String {
    bridge
        .link()
        .stats()
        .last_error
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_default()
}

#[tokio::test]
async fn tls_with_client_certificate_and_password_works() {
    let pki = pki();
    let broker = secure_broker(&pki);
    let room = SimRoom::start(SimConfig::default()).await.unwrap();
    let probe = Probe::connect(broker.plain_port, &["trueconf/#"]).await;
    let tls = client_tls(&pki, &pki.ca);
    let mut running = Running::start(options(broker.tls_port, &room, tls, PASSWORD));
    probe
        .wait_value("trueconf/boardroom/availability", "online", WAIT)
        .await;
    probe
        .publish("trueconf/boardroom/set/mic_muted", "ON")
        .await;
    probe
        .wait_value("trueconf/boardroom/mic_muted", "ON", WAIT)
        .await;
    running.stop().await;
}

#[tokio::test]
async fn a_wrong_ca_or_password_is_a_clear_error() {
    let pki = pki();
    let broker = secure_broker(&pki);
    let room = SimRoom::start(SimConfig::default()).await.unwrap();

    // A CA that did not sign the broker's certificate.
    let tls = client_tls(&pki, &pki_ca_only());
    let mut running = Running::start(options(broker.tls_port, &room, tls, PASSWORD));
    let error = || last_error(&running.bridge);
    wait_until(WAIT, "a certificate error", || !error().is_empty()).await;
    assert!(
        error().to_lowercase().contains("certificate") || error().contains("UnknownIssuer"),
        "{}",
        error()
    );
    assert!(!running.bridge.link().is_connected());
    running.stop().await;

    // The right CA, a wrong password.
    let tls = client_tls(&pki, &pki.ca);
    let mut running = Running::start(options(broker.tls_port, &room, tls, "wrong-password-93"));
    let error = || last_error(&running.bridge);
    wait_until(WAIT, "a refusal", || !error().is_empty()).await;
    assert!(
        error().to_lowercase().contains("refused")
            || error().contains("NotAuthorized")
            || error().contains("BadUserNamePassword"),
        "{}",
        error()
    );
    assert!(!error().contains("wrong-password-93"));
    running.stop().await;
}

#[test]
fn unusable_tls_material_is_refused_up_front() {
    assert!(
        TlsOptions::from_pem(Some(b"not a certificate"), None)
            .unwrap_err()
            .contains("CA file")
    );
    let pki = pki();
    let bad_key = Secret::new("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    let err = TlsOptions::from_pem(
        Some(pki.ca.as_bytes()),
        Some((pki.client_cert.as_bytes(), &bad_key)),
    )
    .unwrap_err();
    assert!(err.contains("client"), "{err}");
}

/// A configuration file for the TLS listener, as a user would write it: the CA in `ca_pem`,
/// the client certificate of `pki`, user `bridge` with `password`, instance `east`, MQTT 5.
fn tls_config(dir: &Path, port: u16, pki: &Pki, ca_pem: &str, password: &str) -> PathBuf {
    let ca = write(dir, "status-ca.pem", ca_pem);
    let cert = write(dir, "client.pem", &pki.client_cert);
    let key = write(dir, "client.key", &pki.client_key);
    let config = format!(
        "[mqtt]\nhost = \"localhost\"\nport = {port}\nclient_id = \"status-test\"\n\
         instance = \"east\"\nversion = \"5\"\nusername = \"bridge\"\npassword = \"{password}\"\n\
         [mqtt.tls]\nca_file = \"{ca}\"\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n\
         [[rooms]]\nid = \"boardroom\"\nhost = \"127.0.0.1\"\n",
        ca = ca.display(),
        cert = cert.display(),
        key = key.display()
    );
    write(dir, "config.toml", &config)
}

/// Runs `trueconf2mqtt status --config <config>` (bounded): success, stdout, stderr.
async fn status(config: &Path) -> (bool, String, String) {
    let out = within(
        WAIT,
        "trueconf2mqtt status",
        tokio::process::Command::new(BIN)
            .args(["status", "--config"])
            .arg(config)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn status_connects_like_the_bridge_over_tls_and_explains_failures() {
    let pki = pki();
    let broker = secure_broker(&pki);
    let room = SimRoom::start(SimConfig::default()).await.unwrap();
    let probe = Probe::connect(broker.plain_port, &["trueconf/#"]).await;
    let tls = client_tls(&pki, &pki.ca);
    let mut running =
        Running::start_instance(options(broker.tls_port, &room, tls, PASSWORD), "east");
    probe
        .wait_value("trueconf/bridge/east/state", "online", WAIT)
        .await;
    probe
        .wait_value("trueconf/boardroom/availability", "online", WAIT)
        .await;
    probe
        .wait_latest("trueconf/boardroom", WAIT, |p| p.contains("normal"))
        .await;
    let dir = tempfile::tempdir().unwrap();

    // The bridge's TLS settings, credentials and instance: its state and the room's.
    let config = tls_config(dir.path(), broker.tls_port, &pki, &pki.ca, PASSWORD);
    let (ok, table, stderr) = status(&config).await;
    assert!(ok, "{stderr}");
    assert!(table.contains("bridge east: online"), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with("boardroom"))
        .unwrap_or_default();
    assert!(row.contains("online") && row.contains("normal"), "{table}");

    // A CA that did not sign the broker's certificate: a certificate error naming mqtt.tls.
    let config = tls_config(dir.path(), broker.tls_port, &pki, &pki_ca_only(), PASSWORD);
    let (ok, _, stderr) = status(&config).await;
    assert!(!ok);
    assert!(
        stderr.contains("mqtt.tls")
            && (stderr.to_lowercase().contains("certificate") || stderr.contains("UnknownIssuer")),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD), "{stderr}");

    // The right CA, a wrong password: a refusal that never repeats the password.
    let config = tls_config(
        dir.path(),
        broker.tls_port,
        &pki,
        &pki.ca,
        "wrong-password-93",
    );
    let (ok, _, stderr) = status(&config).await;
    assert!(!ok);
    assert!(stderr.contains("refused"), "{stderr}");
    assert!(!stderr.contains("wrong-password-93"), "{stderr}");
    running.stop().await;
}

fn pki_ca_only() -> String {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "another CA");
    params.self_signed(&key).unwrap().pem()
}
