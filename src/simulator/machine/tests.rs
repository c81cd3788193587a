//! The machine's flows, request by request: every catalog method's reply shape, calls,
//! conferences, devices, PTZ, settings, login, and the shape of tokens.

use super::tokens::{MAX_TOKENS, new_token};
use super::*;
use crate::protocol::EventKind;

fn machine(start: StartState) -> Machine {
    Machine::new(Profile {
        server: "sim.trueconf.local".into(),
        server_port: 4307,
        peer_id: "room@sim.trueconf.local".into(),
        peer_dn: "Meeting Room".into(),
        start,
        answer_delay: Duration::from_millis(10),
        http_port: 8766,
        secured: true,
    })
}

fn req(m: &mut Machine, method: &str, params: Value) -> (Map<String, Value>, Effects) {
    m.request(method, json!("7"), &object(params))
}

fn names(fx: &Effects) -> Vec<&str> {
    fx.events.iter().map(|e| e.name.as_str()).collect()
}

fn states(fx: &Effects) -> Vec<i64> {
    fx.events
        .iter()
        .filter(|e| e.name == "appStateChanged")
        .map(|e| e.fields["appState"].as_i64().unwrap())
        .collect()
}

fn ok(reply: &Map<String, Value>) {
    assert_eq!(reply["result"], json!(true), "{reply:?}");
}

fn refused(reply: &Map<String, Value>, text: &str) {
    assert_eq!(reply["result"], json!(false), "{reply:?}");
    assert!(
        reply["error"].as_str().unwrap().starts_with(text),
        "{reply:?}"
    );
}

/// A value of the given type, for calling every catalog method.
fn sample(ty: ValueType) -> Value {
    match ty {
        ValueType::String | ValueType::Any => json!("x"),
        ValueType::Int | ValueType::Number => json!(1),
        ValueType::Bool => json!(false),
        ValueType::Object => json!({}),
        ValueType::Array | ValueType::ArrayOfStrings | ValueType::ArrayOfObjects => json!([]),
    }
}

#[test]
fn every_catalog_method_answers_with_its_shape() {
    for start in [
        StartState::Offline,
        StartState::Connected,
        StartState::LoggedIn,
    ] {
        for spec in catalog().methods() {
            if spec.name == "auth" || spec.name == "setUsedApiVersion" {
                continue; // handled per connection, not by the machine
            }
            let mut m = machine(start);
            let params: Map<String, Value> = spec
                .params
                .iter()
                .filter(|p| p.required)
                .map(|p| (p.name.clone(), sample(p.ty)))
                .collect();
            let (reply, _) = m.request(&spec.name, json!(""), &params);
            assert_eq!(reply["method"], json!(spec.name));
            assert_eq!(reply["requestId"], json!(""));
            if reply["result"] == json!(true) {
                for field in spec
                    .response_fields
                    .iter()
                    .filter(|f| f.python_handler_requires)
                {
                    assert!(
                        reply.contains_key(&field.name),
                        "{}: missing {}",
                        spec.name,
                        field.name
                    );
                }
            } else {
                let error = reply["error"].as_str().unwrap();
                assert!(
                    error == error_text::NOT_AVAILABLE
                        || error.starts_with(error_text::INVALID_PARAMETERS),
                    "{}: {error}",
                    spec.name
                );
            }
        }
    }
}

#[test]
fn get_app_state_has_what_the_python_client_needs() {
    let mut m = machine(StartState::LoggedIn);
    let (reply, fx) = req(&mut m, "getAppState", json!({}));
    ok(&reply);
    assert!(fx.events.is_empty());
    assert_eq!(reply["appState"], json!(3));
    assert_eq!(reply["embeddedHttpPort"], json!(8766));
    assert_eq!(reply["requestId"], json!("7"));
}

#[test]
fn unknown_and_invalid_requests() {
    let mut m = machine(StartState::LoggedIn);
    refused(&req(&mut m, "danceTheTango", json!({})).0, "Unknown method");
    refused(
        &req(&mut m, "setMicMute", json!({"mute": "yes"})).0,
        "Invalid parameters: setMicMute: parameter 'mute' must be bool",
    );
    refused(
        &req(&mut m, "setMicMute", json!({})).0,
        "Invalid parameters",
    );
    refused(
        &req(&mut m, "accept", json!({})).0,
        error_text::NOT_AVAILABLE,
    );
    refused(
        &req(&mut m, "hangUp", json!({})).0,
        error_text::NOT_AVAILABLE,
    );
}

#[test]
fn outgoing_call_answered_then_hung_up() {
    let mut m = machine(StartState::LoggedIn);
    let (reply, fx) = req(&mut m, "call", json!({"peerId": "alice@srv"}));
    ok(&reply);
    assert_eq!(states(&fx), [4]);
    assert_eq!(fx.timers.len(), 1);
    assert_eq!(m.snapshot().callee.as_deref(), Some("alice@srv"));
    refused(
        &req(&mut m, "call", json!({"peerId": "bob@srv"})).0,
        error_text::NOT_AVAILABLE,
    );

    let fx = m.fire(&fx.timers[0]);
    assert_eq!(
        names(&fx),
        [
            "conferenceCreated",
            "appStateChanged",
            "newParticipantInConference"
        ]
    );
    let created = &fx.events[0];
    assert_eq!(created.fields["confType"], json!(0));
    assert_eq!(created.fields["peerId"], json!("alice@srv"));
    assert!(matches!(created.kind, EventKind::ConferenceCreated { .. }));
    assert_eq!(states(&fx), [5]);
    let snap = m.snapshot();
    assert_eq!(snap.app_state, AppState::Conference);
    assert_eq!(snap.participants.len(), 1);

    let (reply, _) = req(&mut m, "getConferenceParticipants", json!({}));
    let list = reply["participants"].as_array().unwrap();
    assert_eq!(list.len(), 2, "ourselves plus alice");
    assert_eq!(list[1]["peerId"], json!("alice@srv"));
    let (reply, _) = req(&mut m, "getConferences", json!({}));
    assert_eq!(reply["confId"], json!(snap.conference_id.unwrap()));
    assert_eq!(reply["type"], json!("p2p"));

    let (reply, fx) = req(&mut m, "hangUp", json!({"forAll": false}));
    ok(&reply);
    assert_eq!(
        names(&fx),
        ["appStateChanged", "conferenceDeleted", "appStateChanged"]
    );
    assert_eq!(states(&fx), [6, 3]);
    assert_eq!(m.snapshot().conference_id, None);
}

#[test]
fn callees_that_decline() {
    for (callee, cause) in [("reject1@srv", 0), ("busy@srv", 2), ("noanswer@srv", 16)] {
        let mut m = machine(StartState::LoggedIn);
        let (_, fx) = req(&mut m, "call", json!({"peerId": callee}));
        let fx = m.fire(&fx.timers[0]);
        assert_eq!(names(&fx), ["rejectReceived", "appStateChanged"]);
        assert_eq!(fx.events[0].fields["cause"], json!(cause));
        assert_eq!(fx.events[0].fields["peerId"], json!(callee));
        assert_eq!(states(&fx), [3]);
    }
}

#[test]
fn hang_up_while_ringing_cancels_and_stale_timers_are_ignored() {
    let mut m = machine(StartState::LoggedIn);
    let (_, first) = req(&mut m, "call", json!({"peerId": "alice@srv"}));
    let (reply, fx) = req(&mut m, "hangUp", json!({}));
    ok(&reply);
    assert_eq!(states(&fx), [3]);
    let (_, second) = req(&mut m, "call", json!({"peerId": "bob@srv"}));
    assert!(m.fire(&first.timers[0]).events.is_empty(), "stale timer");
    let fx = m.fire(&second.timers[0]);
    assert_eq!(fx.events[0].fields["peerId"], json!("bob@srv"));
}

#[test]
fn incoming_call_accepted_rejected_or_abandoned() {
    let mut m = machine(StartState::LoggedIn);
    let fx = m.incoming_call("carol@srv", "Carol").unwrap();
    assert_eq!(names(&fx), ["inviteReceived", "appStateChanged"]);
    let invite = &fx.events[0].fields;
    assert_eq!(invite["type"], json!(0));
    let conf_id = invite["confId"].clone();
    assert_eq!(m.snapshot().caller.unwrap().peer_dn, "Carol");
    assert!(m.incoming_call("dave@srv", "").is_err(), "already ringing");
    let (reply, fx) = req(&mut m, "accept", json!({}));
    ok(&reply);
    assert_eq!(
        names(&fx),
        [
            "conferenceCreated",
            "appStateChanged",
            "newParticipantInConference"
        ]
    );
    assert_eq!(fx.events[0].fields["confId"], conf_id);
    let fx = m.remote_hangup().unwrap();
    assert_eq!(states(&fx), [6, 3]);

    m.incoming_call("carol@srv", "Carol").unwrap();
    let (reply, fx) = req(&mut m, "reject", json!({}));
    ok(&reply);
    assert_eq!(names(&fx), ["rejectSent", "appStateChanged"]);
    assert_eq!(fx.events[0].fields["recordAllowed"], json!(false));
    assert_eq!(fx.events[0].fields["cause"], json!(0));

    m.incoming_call("carol@srv", "").unwrap();
    let fx = m.caller_gives_up().unwrap();
    assert_eq!(names(&fx), ["stopCalling", "appStateChanged"]);
    assert_eq!(states(&fx), [3]);
    assert!(m.caller_gives_up().is_err());
}

#[test]
fn auto_accept_setting_answers_incoming_calls() {
    let mut m = machine(StartState::LoggedIn);
    let (_, fx) = req(
        &mut m,
        "setSettings",
        json!({"settings": {"autoAccept": true}}),
    );
    assert_eq!(names(&fx), ["settingsChanged"]);
    let fx = m.incoming_call("carol@srv", "Carol").unwrap();
    assert_eq!(states(&fx), [4, 5]);
}

#[test]
fn conference_with_invitees_and_participants() {
    let mut m = machine(StartState::LoggedIn);
    let params = json!({"title": "Weekly", "confType": "symmetric", "autoAccept": false,
                        "inviteList": ["a@srv", "busy-b@srv"]});
    let (reply, fx) = req(&mut m, "createConference", params);
    ok(&reply);
    assert_eq!(names(&fx), ["conferenceCreated", "appStateChanged"]);
    assert_eq!(fx.events[0].fields["confType"], json!(1));
    assert_eq!(fx.events[0].fields["confTitle"], json!("Weekly"));
    let fx = m.fire(&fx.timers[0]);
    assert_eq!(names(&fx), ["newParticipantInConference", "rejectReceived"]);

    m.participant_joins("x@srv/1234", "X").unwrap();
    assert!(m.participant_joins("x@srv/1234", "X").is_err());
    let fx = m.participant_leaves("x@srv").unwrap();
    assert_eq!(fx.events[0].fields["peerId"], json!("x@srv/1234"));
    assert!(m.participant_leaves("nobody@srv").is_err());
    assert_eq!(m.snapshot().participants.len(), 1);
    assert_eq!(m.snapshot().conference_title.as_deref(), Some("Weekly"));

    let fx = m.owner_mutes_mic(true).unwrap();
    assert_eq!(
        names(&fx),
        ["micStateChangedByConferenceOwner", "audioCapturerMute"]
    );
    assert!(m.snapshot().mic_muted);
    let fx = m.chat_message("a@srv", "hi");
    assert_eq!(
        fx.events[0].fields["confId"],
        json!(m.snapshot().conference_id.unwrap())
    );
}

#[test]
fn mute_commands_and_getters() {
    let mut m = machine(StartState::LoggedIn);
    for (set, get, event) in [
        ("setMicMute", "getMicMute", "audioCapturerMute"),
        ("setVideoMute", "getVideoMute", "videoCapturerMute"),
        ("setAudioMute", "getAudioMute", "audioRendererMute"),
    ] {
        let (reply, fx) = req(&mut m, set, json!({"mute": true}));
        ok(&reply);
        assert_eq!(names(&fx), [event]);
        assert_eq!(fx.events[0].fields["mute"], json!(true));
        assert_eq!(req(&mut m, get, json!({})).0["mute"], json!(true));
    }
    let s = m.snapshot();
    assert!(s.mic_muted && s.camera_muted && s.speaker_muted);
}

#[test]
fn devices_selection_and_hotplug() {
    let mut m = machine(StartState::LoggedIn);
    let (hw, _) = req(&mut m, "getHardware", json!({}));
    let cams = hw["videoCapturers"].as_array().unwrap().clone();
    assert_eq!(cams.len(), 2);
    assert_eq!(hw["audioCapturers"].as_array().unwrap().len(), 2);
    assert_eq!(hw["audioRenderers"].as_array().unwrap().len(), 2);
    assert_eq!(hw["currentVideoCapturerName"], cams[0]["name"]);

    let second = json!({"name": cams[1]["name"], "description": cams[1]["description"]});
    let (reply, fx) = req(&mut m, "setVideoCapturer", second);
    ok(&reply);
    assert_eq!(names(&fx), ["hardwareChanged", "ptzControlsChanged"]);
    assert_eq!(
        fx.events[0].fields["currentVideoCapturerName"],
        cams[1]["name"]
    );
    assert_eq!(m.snapshot().camera.as_deref(), cams[1]["name"].as_str());
    // The integrated webcam has no PTZ.
    refused(
        &req(&mut m, "ptzLeft", json!({})).0,
        error_text::NOT_AVAILABLE,
    );

    let bogus = json!({"name": "Nope", "description": "nope"});
    refused(
        &req(&mut m, "setAudioCapturer", bogus).0,
        "Invalid parameters",
    );
    let none = json!({"name": "none", "description": "none"});
    let (reply, fx) = req(&mut m, "setAudioRenderer", none);
    ok(&reply);
    assert_eq!(
        fx.events[0].fields["currentAudioRendererName"],
        json!("none")
    );
    assert_eq!(m.snapshot().speaker, None);

    let fx = m.plug_device(DeviceKind::Microphone, "USB Mic").unwrap();
    assert_eq!(names(&fx), ["hardwareChanged"]);
    assert_eq!(
        fx.events[0].fields["audioCapturers"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(m.plug_device(DeviceKind::Microphone, "USB Mic").is_err());
    let first_mic = m.snapshot().microphone.unwrap();
    m.unplug_device(DeviceKind::Microphone, &first_mic).unwrap();
    assert_ne!(
        m.snapshot().microphone.unwrap(),
        first_mic,
        "falls back to another mic"
    );
    assert!(m.unplug_device(DeviceKind::Camera, "ghost").is_err());
}

#[test]
fn ptz_moves_within_limits() {
    let mut m = machine(StartState::LoggedIn);
    let (reply, _) = req(&mut m, "getPtzControls", json!({}));
    assert_eq!(reply["pan"]["support"], json!(true));
    let (reply, fx) = req(&mut m, "ptzRight", json!({}));
    ok(&reply);
    assert_eq!(names(&fx), ["ptzControlsChanged"]);
    assert_eq!(fx.events[0].fields["pan"]["currentValue"], json!(1));
    ok(&req(&mut m, "setZoomPos", json!({"pos": 3})).0);
    refused(
        &req(&mut m, "setPanPos", json!({"pos": 99})).0,
        "Invalid parameters",
    );
    let (_, fx) = req(&mut m, "ptzStop", json!({}));
    assert!(fx.events.is_empty());
    assert_eq!(
        m.snapshot().ptz,
        PtzPosition {
            pan: 1,
            tilt: 0,
            zoom: 3
        }
    );
    req(&mut m, "setPtzDefaults", json!({}));
    assert_eq!(
        m.snapshot().ptz,
        PtzPosition {
            pan: 0,
            tilt: 0,
            zoom: 1
        }
    );
}

#[test]
fn settings_window_and_misc() {
    let mut m = machine(StartState::LoggedIn);
    let (reply, fx) = req(
        &mut m,
        "setSettings",
        json!({"settings": {"audioPlayLevel": 0.55, "language": "de"}}),
    );
    ok(&reply);
    assert_eq!(names(&fx), ["settingsChanged", "settingsChanged"]);
    let (reply, _) = req(&mut m, "getSettings", json!({}));
    let list = reply["settings"].as_array().unwrap();
    assert!(list.contains(&json!({"name": "language", "value": "de"})));

    let (_, fx) = req(
        &mut m,
        "changeWindowState",
        json!({"windowState": 1, "stayOnTop": true}),
    );
    assert_eq!(names(&fx), ["windowStateChanged"]);
    assert_eq!(m.snapshot().window_state, 1);

    refused(
        &req(
            &mut m,
            "sendMessage",
            json!({"peerId": "a@srv/12", "message": "x"}),
        )
        .0,
        "Invalid parameters",
    );
    ok(&req(
        &mut m,
        "sendMessage",
        json!({"peerId": "a@srv", "message": "x"}),
    )
    .0);
    let (_, fx) = req(&mut m, "fireMyEvent", json!({"data": "hello"}));
    assert_eq!(fx.events[0].fields["data"], json!("hello"));

    let (reply, _) = req(&mut m, "getTokenForHttpServer", json!({}));
    assert!(m.tokens.http_valid(reply["token"].as_str().unwrap()));
    let (reply, _) = req(&mut m, "getAuthInfo", json!({}));
    assert_eq!(reply["userAuth"], json!("pin"));
    // Generic methods echo parameters with the same name as a reply field.
    let (reply, _) = req(&mut m, "block", json!({"peerId": "spam@srv"}));
    assert_eq!(reply["peerId"], json!("spam@srv"));
}

#[test]
fn connect_login_logout_flow() {
    let mut m = machine(StartState::Offline);
    refused(
        &req(&mut m, "call", json!({"peerId": "a@srv"})).0,
        error_text::NOT_AVAILABLE,
    );
    let (reply, fx) = req(
        &mut m,
        "connectToServer",
        json!({"server": "tc.example.com"}),
    );
    ok(&reply);
    assert_eq!(
        names(&fx),
        ["appStateChanged", "serverConnected", "appStateChanged"]
    );
    assert_eq!(states(&fx), [1, 2]);
    assert_eq!(fx.events[1].fields["port"], json!(4307));

    let login = json!({"login": "user1", "password": "wrong", "encryptPassword": false});
    let (reply, fx) = req(&mut m, "login", login);
    ok(&reply);
    assert_eq!(fx.events[0].fields["result"], json!(3));
    assert_eq!(m.snapshot().app_state, AppState::Login);

    let login = json!({"login": "user1", "password": "secret", "encryptPassword": false});
    let (reply, fx) = req(&mut m, "login", login);
    ok(&reply);
    assert_eq!(names(&fx), ["login", "appStateChanged"]);
    assert_eq!(fx.events[0].fields["peerId"], json!("user1@tc.example.com"));
    assert_eq!(states(&fx), [3]);
    assert_eq!(
        req(&mut m, "getLogin", json!({})).0["isLoggedIn"],
        json!(true)
    );

    let (reply, fx) = req(&mut m, "logout", json!({}));
    ok(&reply);
    assert_eq!(names(&fx), ["logout", "appStateChanged"]);
    assert_eq!(states(&fx), [2]);

    // Auto-login with the remembered account on the next connect.
    let (_, fx) = req(
        &mut m,
        "connectToServer",
        json!({"server": "tc.example.com"}),
    );
    assert_eq!(
        names(&fx),
        [
            "serverDisconnected",
            "appStateChanged",
            "serverConnected",
            "login",
            "appStateChanged"
        ]
    );
    assert_eq!(states(&fx), [1, 3]);
    let (reply, _) = req(&mut m, "getConnected", json!({}));
    assert_eq!(reply["state"], json!(2));
    assert_eq!(reply["serverInfo"]["server"], json!("tc.example.com"));
}

#[test]
fn tokens_look_like_the_documented_ones() {
    let token = new_token(1);
    let parts: Vec<&str> = token.split('*').collect();
    assert_eq!(parts.len(), 4);
    assert_eq!(parts[0], "1");
    assert_eq!(parts[1].len(), 16);
    assert_eq!(parts[2].len(), 8);
    assert_eq!(parts[3].len(), 64);
    let mut tokens = Tokens::default();
    let first = tokens.issue_api();
    for _ in 0..MAX_TOKENS {
        tokens.issue_api();
    }
    assert!(
        !tokens.api_valid(&first),
        "bounded: the oldest token is forgotten"
    );
}

#[test]
fn presets_belong_to_a_camera_and_restore_its_position_and_mute() {
    let mut m = machine(StartState::LoggedIn);
    let (reply, _) = req(&mut m, "getAllVideoCapturerPresets", json!({}));
    let presets = reply["presets"].as_array().unwrap().clone();
    assert_eq!(presets.len(), 2);
    assert_eq!(presets[1]["pan"], json!({"isPresent": true, "value": -6}));
    let ptz_camera = presets[0]["videoCapturerName"].clone();

    // Switch to the camera without PTZ, mute it, then apply preset 2: back to the PTZ camera,
    // at the stored position, unmuted, announced in this order.
    let (cams, _) = req(&mut m, "getHardware", json!({}));
    let other = cams["videoCapturers"][1].clone();
    ok(&req(
        &mut m,
        "setVideoCapturer",
        json!({"name": other["name"], "description": other["description"]}),
    )
    .0);
    ok(&req(&mut m, "setVideoMute", json!({"mute": true})).0);
    let (reply, fx) = req(
        &mut m,
        "applyVideoCapturerPreset",
        json!({"presetId": presets[1]["presetId"]}),
    );
    ok(&reply);
    assert_eq!(
        names(&fx),
        [
            "hardwareChanged",
            "ptzControlsChanged",
            "videoCapturerMute",
            "videoCapturerPresetApplied"
        ]
    );
    let snap = m.snapshot();
    assert_eq!(snap.camera.as_deref(), ptz_camera.as_str());
    assert_eq!((snap.ptz.pan, snap.ptz.tilt, snap.ptz.zoom), (-6, 3, 3));
    assert!(!snap.camera_muted);

    // Save, update, remove; unknown ids are refused.
    ok(&req(&mut m, "ptzRight", json!({})).0);
    let (reply, fx) = req(&mut m, "addPresetFromCurrentVideoCapturer", json!({}));
    ok(&reply);
    assert_eq!(reply["pan"], json!({"isPresent": true, "value": -5}));
    assert_eq!(names(&fx), ["videoCapturerPresetAdded"]);
    let id = reply["presetId"].as_str().unwrap().to_owned();
    assert_eq!(m.snapshot().presets.len(), 3);
    ok(&req(&mut m, "ptzRight", json!({})).0);
    let (reply, fx) = req(
        &mut m,
        "updatePresetFromCurrentVideoCapturer",
        json!({"presetId": id}),
    );
    ok(&reply);
    assert_eq!(reply["pan"]["value"], json!(-4));
    assert_eq!(names(&fx), ["videoCapturerPresetUpdated"]);
    let (reply, fx) = req(&mut m, "removeVideoCapturerPreset", json!({"presetId": id}));
    ok(&reply);
    assert_eq!(fx.events[0].fields["presetId"], json!(id));
    refused(
        &req(&mut m, "applyVideoCapturerPreset", json!({"presetId": id})).0,
        error_text::INVALID_PARAMETERS,
    );
}

#[test]
fn content_slides_and_requests_live_in_a_call() {
    let mut m = machine(StartState::LoggedIn);
    refused(
        &req(&mut m, "startCapture", json!({"captureId": 65537})).0,
        error_text::NOT_AVAILABLE,
    );
    refused(
        &req(&mut m, "startSlideShow", json!({})).0,
        error_text::NOT_AVAILABLE,
    );
    assert!(m.podium_request("bob@srv/1").is_err());
    let fx = m.incoming_call("bob@srv", "Bob").unwrap();
    assert!(!fx.events.is_empty());
    ok(&req(&mut m, "accept", json!({})).0);
    m.participant_joins("carol@srv/c1", "Carol").unwrap();

    let (reply, fx) = req(&mut m, "startCapture", json!({"captureId": 65538}));
    ok(&reply);
    assert_eq!(
        fx.events[0].fields["desktopSharing"],
        json!({"running": true, "sourceType": 1, "id": 65538, "windowName": "Screen 2"})
    );
    let (reply, fx) = req(&mut m, "startSlideShow", json!({"title": "Q4"}));
    ok(&reply);
    assert_eq!(names(&fx), ["mySlideShowStarted"]);
    let (_, fx) = req(&mut m, "showSlide", json!({"idx": 3}));
    assert_eq!(fx.events[0].fields["currentIdx"], json!(3));
    let (info, _) = req(&mut m, "getSlideShowInfo", json!({}));
    assert_eq!(info["currentSlideIdx"], json!(3));
    assert_eq!(info["slides"].as_array().unwrap().len(), 5);

    let fx = m.record_request("carol@srv/c1").unwrap();
    assert_eq!(names(&fx), ["recordRequest"]);
    refused(
        &req(&mut m, "allowRecord", json!({"peerId": "bob@srv/9"})).0,
        error_text::NOT_AVAILABLE,
    );
    let (_, fx) = req(&mut m, "denyRecord", json!({"peerId": "carol@srv/c1"}));
    assert_eq!(fx.events[0].fields["recordAllowed"], json!(false));

    let fx = m.podium_request("carol@srv/c1").unwrap();
    assert_eq!(fx.events[0].fields["role"], json!(3));
    m.camera_control_request("carol@srv/c1").unwrap();
    m.set_recording(true).unwrap();

    // Hanging up ends all of it, the slideshow with its own event first.
    let (_, fx) = req(&mut m, "hangUp", json!({}));
    assert_eq!(names(&fx)[0], "mySlideShowStopped");
    let snap = m.snapshot();
    assert_eq!(snap.content, None);
    assert_eq!(snap.slide, None);
    assert!(!snap.recording);
    assert!(snap.podium_requests.is_empty() && snap.camera_control_requests.is_empty());
}
