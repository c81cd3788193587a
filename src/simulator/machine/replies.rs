//! What the Room answers: the head every reply starts with, failed replies, and the payloads
//! of the getters (`getAppState`, `getLogin`, `getConnected`, `getSystemInfo`,
//! `getConferences`, `getConferenceParticipants`, `getMonitorsInfo`) and of the events that
//! repeat them. Hardware and PTZ payloads live with the devices (`devices`).

use serde_json::{Map, Value, json};

use crate::protocol::{AppState, Participant};

use super::calls::Call;
use super::{Machine, object};

/// The head of every reply: `method`, `requestId` (echoed as given, `""` when absent), `result`.
pub(crate) fn reply_head(method: Value, request_id: Value, result: bool) -> Map<String, Value> {
    let mut reply = Map::new();
    reply.insert("method".into(), method);
    reply.insert("requestId".into(), request_id);
    reply.insert("result".into(), Value::Bool(result));
    reply
}

/// A failed reply: `{"method":…,"requestId":…,"result":false,"error":…}`.
pub(crate) fn error_reply(
    method: Option<Value>,
    request_id: Value,
    error: &str,
) -> Map<String, Value> {
    let mut reply = reply_head(Value::Null, request_id, false);
    match method {
        Some(m) => {
            reply.insert("method".into(), m);
        }
        None => {
            reply.remove("method");
        }
    }
    reply.insert("error".into(), Value::String(error.to_owned()));
    reply
}

/// A participant as listed by getConferenceParticipants / newParticipantInConference.
pub(super) fn participant_json(p: &Participant) -> Map<String, Value> {
    object(json!({
        "peerId": p.peer_id,
        "peerDn": p.peer_dn,
        "mic": 2,
        "video": 2,
        "slideShow": false,
        "role": 1,
        "broadcast": false,
        "audioReceiving": true,
        "videoReceiving": true,
        "extraVideo": 0,
        "leaderType": 0,
        "recordingMe": false,
        "recordingByMe": false,
        "pinned": false,
        "isInWaitingRoom": false,
    }))
}

/// The two monitors of the documented getMonitorsInfo example.
pub(super) fn monitors_payload() -> Map<String, Value> {
    object(json!({
        "monitors": [
            {"name": "PHL 275E1", "primary": true, "index": 0, "ignored": false,
             "geomMonitor": {"x": 0, "y": 0, "width": 2560, "height": 1440},
             "geomWork": {"x": 0, "y": 0, "width": 2560, "height": 1380},
             "deviceInstancePath": r"display\phl2751e\4&16666148&0&uid265988",
             "id": r"display\phl2751e\4&16666148&0&uid265988"},
            {"name": "Generic PnP Monitor", "primary": false, "index": 1, "ignored": false,
             "geomMonitor": {"x": 2560, "y": 0, "width": 1920, "height": 1080},
             "geomWork": {"x": 2560, "y": 0, "width": 1920, "height": 1032},
             "deviceInstancePath": r"display\lgd0457\4&1e135148&0&uid589647",
             "id": r"display\lgd0457\4&1e135148&0&uid589647"},
        ],
        "currentMonitor": 0,
    }))
}

impl Machine {
    pub(super) fn app_state_payload(&self) -> Map<String, Value> {
        let ext_status = match self.app_state {
            AppState::Normal => 2,
            AppState::Wait | AppState::Conference | AppState::Close => 7,
            _ => 0,
        };
        object(json!({
            "appState": self.app_state.wire(),
            "embeddedHttpPort": self.profile.http_port,
            "extStatus": ext_status,
            "additionalStatus": "",
            "desktopSharing": self.desktop_sharing(),
            "broadcastPicture": {"running": false},
            "audioCaptureTest": false,
            "recording": self.panel.recording,
        }))
    }

    pub(super) fn login_payload(&self) -> Map<String, Value> {
        match &self.account {
            Some(a) => {
                object(json!({"isLoggedIn": true, "peerId": a.peer_id, "peerDn": a.peer_dn}))
            }
            None => object(json!({"isLoggedIn": false, "peerId": "", "peerDn": ""})),
        }
    }

    pub(super) fn connected_payload(&self) -> Map<String, Value> {
        let state = match (&self.server, self.app_state) {
            (_, AppState::Connect) => 1,
            (Some(_), _) => 2,
            (None, _) => 0,
        };
        let (server, port) = self
            .server
            .clone()
            .unwrap_or_else(|| (String::new(), self.profile.server_port));
        object(json!({
            "state": state,
            "serverInfo": {"server": server, "service": false, "port": port, "domain": server},
        }))
    }

    pub(super) fn system_info(&self) -> Map<String, Value> {
        let auth_info = match &self.account {
            Some(a) => json!({"peerId": a.peer_id, "peerDn": a.peer_dn}),
            None => json!({}),
        };
        object(json!({
            "authInfo": auth_info,
            "fileInfo": {"major": 5, "minor": 0, "revision": 2, "build": 1043},
            "productInfo": {"major": 5, "minor": 0, "revision": 2, "build": 1043, "name": "TrueConf Room (simulated)"},
            "permissionsInfo": {
                "tariffName": "PRO", "p2p": true, "createMulti": true, "symMaxNumber": 36,
                "asymMaxNumber": 120, "roleMaxNumber": 120, "rlMaxNumber": 120,
                "canUseSlideShow": true, "canUseDesktopSharing": true,
                "canChangeAddressBook": true, "canEditGroups": true, "canUseDialer": true,
            },
            "bitrateLimits": {"max": 10240, "min": 64},
            "systemRating": {
                "videoQuality": {"send": 4, "receiveP2P": 4, "receiveGroup": 4},
                "videoContentLevels": {"send": 4, "receiveP2P": 4, "receiveGroup": 4, "bench": 4},
            },
            "cameraInfo": {
                "cameraFramerate": 30, "cameraHeight": 1080, "cameraWidth": 1920,
                "sendFormat": "I420", "format": 1, "sendFramerate": 30,
                "sendHeight": 720, "sendWidth": 1280, "stereo": false,
            },
        }))
    }

    pub(super) fn conferences_payload(&self) -> Map<String, Value> {
        match &self.call {
            Call::Active(c) => {
                let mut m = object(json!({
                    "confId": c.conf_id,
                    "confType": c.conf_type,
                    "isSmartMeeting": false,
                    "slideShowPresent": false,
                    "duration": c.started.elapsed().as_secs(),
                    "joinUrl": c.join_url,
                    "autoJoin": false,
                    "confTitle": c.title,
                    "conferenceOwner": c.owner,
                    "realTimeConferenceManagmentUrl": c.manage_url,
                    "confState": 1,
                    "isWaitingRoomSwitchingSupported": false,
                    "isWaitingRoomEnabled": false,
                    "maxParticipants": 450,
                    "maxParticipantsOnPodium": 4,
                }));
                if let Some(peer) = &c.p2p_peer {
                    m.insert("type".into(), json!("p2p"));
                    m.insert("direction".into(), json!(c.direction));
                    m.insert("peerId".into(), json!(peer.peer_id));
                    m.insert("peerDn".into(), json!(peer.peer_dn));
                }
                m
            }
            // inferred: catalog note "confState 0 seen for ringing p2p".
            Call::Outgoing { peer, .. } => object(json!({
                "confId": "", "confType": 0, "confState": 0, "type": "p2p",
                "direction": "outgoing", "peerId": peer.peer_id, "peerDn": peer.peer_dn,
            })),
            Call::Incoming { peer, conf_id } => object(json!({
                "confId": conf_id, "confType": 0, "confState": 0, "type": "p2p",
                "direction": "incoming", "peerId": peer.peer_id, "peerDn": peer.peer_dn,
            })),
            Call::Idle => object(json!({"confId": ""})),
        }
    }

    pub(super) fn participants_payload(&self) -> Map<String, Value> {
        let Call::Active(c) = &self.call else {
            return object(json!({"confId": "", "participants": []}));
        };
        // inferred: the documented example lists the owner too, so we list ourselves first.
        let mut list = Vec::with_capacity(c.participants.len() + 1);
        if let Some(a) = &self.account {
            let mut me = participant_json(&Participant {
                peer_id: format!("{}/{}", a.peer_id, self.instance),
                peer_dn: a.peer_dn.clone(),
            });
            me.insert("mic".into(), json!(if self.mic_muted { 1 } else { 2 }));
            me.insert("video".into(), json!(if self.camera_muted { 1 } else { 2 }));
            if c.owner == a.peer_id {
                me.insert("role".into(), json!(2));
            }
            list.push(Value::Object(me));
        }
        list.extend(
            c.participants
                .iter()
                .map(|p| Value::Object(participant_json(p))),
        );
        object(json!({"confId": c.conf_id, "participants": list}))
    }
}
