//! What a room panel shows beyond calls and mutes: camera presets, content sharing, the
//! slideshow, recording and its consent, podium and camera-control requests, monitors.
//!
//! Part of the pure reducer of [`super::RoomState`]: [`Panel::apply_event`] and
//! [`Panel::apply_response`] change the struct and report whether anything changed.
//!
//! Shapes, from the protocol notes (`protocol/SPEC.md`, `catalog.json`, TrueConf's pages):
//!
//! * Presets (Room 4.2+): `addPresetFromCurrentVideoCapturer`, `updatePresetFromCurrentVideoCapturer`
//!   and the events `videoCapturerPresetAdded` / `videoCapturerPresetUpdated` carry one preset
//!   `{presetId, videoCapturerName, videoCapturerDescription, isMuted, pan, tilt, zoom, preview}`
//!   with `pan`/`tilt`/`zoom` as `{isPresent, value?}` (documented). A preset has **no name** in
//!   the API: the bridge labels them `Preset 1`, `Preset 2`, … in the Room's order. Inferred (the
//!   pages do not show them): `getAllVideoCapturerPresets` answers `{presets: [<preset>…]}` (the
//!   event pages list a `presets` member), `videoCapturerPresetRemoved` and
//!   `videoCapturerPresetApplied` carry the `presetId`.
//! * Content: `appState.desktopSharing {running, sourceType?, id?, windowName?}` (documented);
//!   the sources are `getHardware.DSCaptureList [{name, id}]` (documented).
//! * Slideshow: `getSlideShowInfo {available, started, slides, currentSlideIdx}` and the events
//!   `mySlideShowStarted {title, currentSlideIndex}`, `mySlideShowStopped`,
//!   `currentSlideIndexChanged {currentIdx}`, `slideShowAvailabilityChanged {available}`,
//!   `slideAdded`, `slideRemoved`, `allSlidesRemoved` (official client's tables; indexes are
//!   0-based there, inferred).
//! * Recording: `appState.recording` (documented); someone asking to record us:
//!   `recordRequest {peerId, peerDn, confId}`, answered with `allowRecord` / `denyRecord {peerId}`.
//! * Podium: `roleEventOccured {peerId, peerDn, role, …}` with role 3 ("asked for the floor",
//!   catalog `participant_roles`) is taken as a request to the podium (inferred), answered with
//!   `acceptRequestToPodium` / `rejectRequestToPodium {peerId}`; `incomingRequestToPodiumAnswered`
//!   closes it.
//! * Camera control: `requestCameraControlReceived {callId}`, answered with
//!   `acceptRequestCameraControl {callId}` / `rejectRequestCameraControl`;
//!   `incomingRequestCameraControlAccepted` / `…Rejected {callId}` close it.

use serde::Serialize;
use serde_json::{Map, Value};

use super::state::{set, str_of};
use crate::protocol::Participant;

/// Most presets, content sources, slides or requests kept (a hostile Room cannot grow them).
pub const MAX_PANEL_ITEMS: usize = 256;

/// A camera preset as the Room reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Preset {
    /// `presetId` (a millisecond timestamp in TrueConf's examples; opaque here).
    pub id: String,
    /// The camera it belongs to (`videoCapturerName`).
    pub camera: String,
    /// Pan position, when the preset has one.
    pub pan: Option<i64>,
    /// Tilt position, when the preset has one.
    pub tilt: Option<i64>,
    /// Zoom position, when the preset has one.
    pub zoom: Option<i64>,
}

/// A content source (`DSCaptureList` entry): a screen or a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContentSource {
    /// Display name.
    pub name: String,
    /// `id`, the `captureId` of `startCapture`.
    pub id: i64,
}

/// The slideshow of this Room.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Slideshow {
    /// Slides can be shown now (`available`).
    pub available: bool,
    /// The slideshow runs.
    pub started: bool,
    /// Number of slides loaded.
    pub count: usize,
    /// The slide shown (0-based).
    pub current: Option<usize>,
}

/// Panel state of a Room; `None`/empty means "not known" or "none".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Panel {
    /// Camera presets, in the Room's order.
    pub presets: Vec<Preset>,
    /// The id of the preset last applied, while the camera still stands where it put it.
    pub active_preset: Option<String>,
    /// Content being shared: `Some(source name)` while sharing (the name may be empty).
    pub sharing: Option<String>,
    /// Content sources the Room offers.
    pub content_sources: Vec<ContentSource>,
    /// The default content source (`defaultContentSource`).
    pub default_content_source: Option<String>,
    /// The slideshow.
    pub slideshow: Slideshow,
    /// The Room records the conference (`appState.recording`).
    pub recording: Option<bool>,
    /// Someone asks for consent to record us.
    pub record_request: Option<Participant>,
    /// Participants asking for the podium, oldest first.
    pub podium_requests: Vec<Participant>,
    /// Call ids asking to control our camera, oldest first.
    pub camera_control_requests: Vec<String>,
}

fn int_of(map: &Map<String, Value>, key: &str) -> Option<i64> {
    map.get(key)
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
}

/// `{isPresent, value}` → the value when present.
fn axis(map: &Map<String, Value>, key: &str) -> Option<i64> {
    let a = map.get(key)?.as_object()?;
    if a.get("isPresent").and_then(Value::as_bool) == Some(false) {
        return None;
    }
    int_of(a, "value")
}

/// A preset from its wire shape; `None` without a `presetId`.
pub fn preset_of(map: &Map<String, Value>) -> Option<Preset> {
    let id = match map.get("presetId")? {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Some(Preset {
        id,
        camera: str_of(map, "videoCapturerName").unwrap_or_default(),
        pan: axis(map, "pan"),
        tilt: axis(map, "tilt"),
        zoom: axis(map, "zoom"),
    })
}

fn participant_of(map: &Map<String, Value>) -> Option<Participant> {
    Some(Participant {
        peer_id: str_of(map, "peerId").filter(|p| !p.is_empty())?,
        peer_dn: str_of(map, "peerDn").unwrap_or_default(),
    })
}

/// The label a preset is shown with: `Preset <n>` by its 1-based position.
pub fn preset_label(index: usize) -> String {
    format!("Preset {}", index + 1)
}

impl Panel {
    /// The labels of the presets, in order.
    pub fn preset_labels(&self) -> Vec<String> {
        (0..self.presets.len()).map(preset_label).collect()
    }

    /// The position of the preset a payload names: its label (`Preset 2`, any case), its
    /// number (`2`) or its id.
    pub fn find_preset(&self, wanted: &str) -> Option<usize> {
        let wanted = wanted.trim();
        if wanted.is_empty() {
            return None;
        }
        if let Some(i) = self.presets.iter().position(|p| p.id == wanted) {
            return Some(i);
        }
        let number = wanted
            .to_ascii_lowercase()
            .strip_prefix("preset")
            .map(|n| n.trim().to_owned())
            .unwrap_or_else(|| wanted.to_owned());
        let n: usize = number.parse().ok()?;
        (1..=self.presets.len()).contains(&n).then(|| n - 1)
    }

    /// The label of the active preset.
    pub fn active_label(&self) -> Option<String> {
        let id = self.active_preset.as_ref()?;
        self.presets
            .iter()
            .position(|p| &p.id == id)
            .map(preset_label)
    }

    /// The name of the content source being shared, if any.
    pub fn content(&self) -> Option<&str> {
        self.sharing.as_deref()
    }

    fn upsert_preset(&mut self, preset: Preset) -> bool {
        let full = self.presets.len() >= MAX_PANEL_ITEMS;
        match self.presets.iter_mut().find(|p| p.id == preset.id) {
            Some(slot) => set(slot, preset),
            None if !full => {
                self.presets.push(preset);
                true
            }
            None => false,
        }
    }

    fn set_presets(&mut self, list: &Value) -> bool {
        let presets: Vec<Preset> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .filter_map(preset_of)
            .take(MAX_PANEL_ITEMS)
            .collect();
        let mut changed = false;
        if let Some(active) = &self.active_preset
            && !presets.iter().any(|p| &p.id == active)
        {
            changed |= set(&mut self.active_preset, None);
        }
        changed | set(&mut self.presets, presets)
    }

    /// `appState` members: `desktopSharing` and `recording`.
    pub fn apply_app_state(&mut self, f: &Map<String, Value>) -> bool {
        let mut changed = false;
        if let Some(sharing) = f.get("desktopSharing").and_then(Value::as_object) {
            let running = sharing.get("running").and_then(Value::as_bool) == Some(true);
            let name = running.then(|| {
                str_of(sharing, "windowName")
                    .filter(|n| !n.is_empty())
                    .or_else(|| {
                        let id = int_of(sharing, "id")?;
                        self.content_sources
                            .iter()
                            .find(|s| s.id == id)
                            .map(|s| s.name.clone())
                    })
                    .unwrap_or_default()
            });
            changed |= set(&mut self.sharing, name);
        }
        if let Some(recording) = f.get("recording").and_then(Value::as_bool) {
            changed |= set(&mut self.recording, Some(recording));
        }
        changed
    }

    /// `getHardware` / `hardwareChanged`: the content sources.
    pub fn apply_hardware(&mut self, f: &Map<String, Value>) -> bool {
        let sources: Vec<ContentSource> = f
            .get("DSCaptureList")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .filter_map(|s| {
                Some(ContentSource {
                    name: str_of(s, "name")?,
                    id: int_of(s, "id")?,
                })
            })
            .take(MAX_PANEL_ITEMS)
            .collect();
        let mut changed = set(&mut self.content_sources, sources);
        if let Some(default) = str_of(f, "defaultContentSource") {
            changed |= set(
                &mut self.default_content_source,
                Some(default).filter(|d| !d.is_empty()),
            );
        }
        changed
    }

    /// `ptzControlsChanged` / `getPtzControls`: the camera moved away from the active preset?
    pub fn apply_ptz(&mut self, f: &Map<String, Value>) -> bool {
        let Some(active) = &self.active_preset else {
            return false;
        };
        let Some(preset) = self.presets.iter().find(|p| &p.id == active) else {
            return set(&mut self.active_preset, None);
        };
        let current = |key: &str| {
            f.get(key)
                .and_then(Value::as_object)
                .and_then(|a| int_of(a, "currentValue"))
        };
        let moved = [
            (preset.pan, current("pan")),
            (preset.tilt, current("tilt")),
            (preset.zoom, current("zoom")),
        ]
        .iter()
        .any(|(want, now)| want.is_some() && now.is_some() && want != now);
        if moved {
            set(&mut self.active_preset, None)
        } else {
            false
        }
    }

    /// The call ended: the requests belonging to it are gone.
    pub fn call_ended(&mut self) -> bool {
        let mut changed = set(&mut self.record_request, None);
        changed |= set(&mut self.podium_requests, Vec::new());
        changed |= set(&mut self.camera_control_requests, Vec::new());
        changed
    }

    fn slideshow_info(&mut self, f: &Map<String, Value>) -> bool {
        let count = f
            .get("slides")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let started = f.get("started").and_then(Value::as_bool).unwrap_or(false);
        let current = int_of(f, "currentSlideIdx")
            .and_then(|i| usize::try_from(i).ok())
            .filter(|i| *i < count);
        set(
            &mut self.slideshow,
            Slideshow {
                available: f.get("available").and_then(Value::as_bool).unwrap_or(false),
                started,
                count,
                current,
            },
        )
    }

    /// A notification, by name; returns whether anything changed.
    pub fn apply_event(&mut self, name: &str, f: &Map<String, Value>) -> bool {
        match name {
            "videoCapturerPresetAdded" | "videoCapturerPresetUpdated" => {
                preset_of(f).is_some_and(|p| self.upsert_preset(p))
            }
            "videoCapturerPresetRemoved" => {
                let Some(id) = preset_of(f).map(|p| p.id) else {
                    return false;
                };
                let before = self.presets.len();
                self.presets.retain(|p| p.id != id);
                let mut changed = before != self.presets.len();
                if self.active_preset.as_deref() == Some(id.as_str()) {
                    changed |= set(&mut self.active_preset, None);
                }
                changed
            }
            "videoCapturerPresetApplied" => {
                let Some(preset) = preset_of(f) else {
                    return false;
                };
                let id = preset.id.clone();
                let mut changed = false;
                if preset.camera.is_empty() {
                    // Only the id (inferred shape): keep what we know of the preset.
                    if !self.presets.iter().any(|p| p.id == id) {
                        changed |= self.upsert_preset(preset);
                    }
                } else {
                    changed |= self.upsert_preset(preset);
                }
                changed | set(&mut self.active_preset, Some(id))
            }
            "mySlideShowStarted" => {
                let current = int_of(f, "currentSlideIndex").and_then(|i| usize::try_from(i).ok());
                let mut show = self.slideshow.clone();
                show.started = true;
                show.current = current.or(show.current);
                set(&mut self.slideshow, show)
            }
            "mySlideShowStopped" => {
                let mut show = self.slideshow.clone();
                show.started = false;
                set(&mut self.slideshow, show)
            }
            "currentSlideIndexChanged" | "slidePositionChanged" => {
                let key = if name == "currentSlideIndexChanged" {
                    "currentIdx"
                } else {
                    "newIdx"
                };
                let Some(i) = int_of(f, key).and_then(|i| usize::try_from(i).ok()) else {
                    return false;
                };
                let mut show = self.slideshow.clone();
                show.current = Some(i);
                set(&mut self.slideshow, show)
            }
            "slideShowAvailabilityChanged" => {
                let mut show = self.slideshow.clone();
                show.available = f.get("available").and_then(Value::as_bool).unwrap_or(false);
                set(&mut self.slideshow, show)
            }
            "slideAdded" => {
                let mut show = self.slideshow.clone();
                show.count = (show.count + 1).min(MAX_PANEL_ITEMS * 64);
                set(&mut self.slideshow, show)
            }
            "slideRemoved" => {
                let mut show = self.slideshow.clone();
                show.count = show.count.saturating_sub(1);
                if show.current.is_some_and(|c| c >= show.count) {
                    show.current = show.count.checked_sub(1);
                }
                set(&mut self.slideshow, show)
            }
            "allSlidesRemoved" | "slideShowCleared" => {
                let mut show = self.slideshow.clone();
                show.count = 0;
                show.current = None;
                set(&mut self.slideshow, show)
            }
            "recordRequest" => set(&mut self.record_request, participant_of(f)),
            "recordRequestReply" => {
                // Our answer went out (or another client answered).
                let peer = str_of(f, "peerId");
                if self.record_request.as_ref().map(|p| Some(&p.peer_id)) == Some(peer.as_ref()) {
                    set(&mut self.record_request, None)
                } else {
                    false
                }
            }
            "roleEventOccured" => {
                let Some(p) = participant_of(f) else {
                    return false;
                };
                let asking = int_of(f, "role") == Some(3);
                let known = self
                    .podium_requests
                    .iter()
                    .position(|r| r.peer_id == p.peer_id);
                match (asking, known) {
                    (true, None) if self.podium_requests.len() < MAX_PANEL_ITEMS => {
                        self.podium_requests.push(p);
                        true
                    }
                    (false, Some(i)) => {
                        self.podium_requests.remove(i);
                        true
                    }
                    _ => false,
                }
            }
            "incomingRequestToPodiumAnswered" => {
                let peer = str_of(f, "peerId").unwrap_or_default();
                let before = self.podium_requests.len();
                self.podium_requests.retain(|r| r.peer_id != peer);
                before != self.podium_requests.len()
            }
            "requestCameraControlReceived" => match str_of(f, "callId") {
                Some(id)
                    if !id.is_empty()
                        && !self.camera_control_requests.contains(&id)
                        && self.camera_control_requests.len() < MAX_PANEL_ITEMS =>
                {
                    self.camera_control_requests.push(id);
                    true
                }
                _ => false,
            },
            "incomingRequestCameraControlAccepted" | "incomingRequestCameraControlRejected" => {
                let id = str_of(f, "callId").unwrap_or_default();
                let before = self.camera_control_requests.len();
                self.camera_control_requests.retain(|r| *r != id);
                before != self.camera_control_requests.len()
            }
            _ => false,
        }
    }

    /// A successful reply, by method; returns whether anything changed.
    pub fn apply_response(&mut self, method: &str, f: &Map<String, Value>) -> bool {
        match method {
            "getAllVideoCapturerPresets" => match f.get("presets") {
                Some(list) => self.set_presets(list),
                None => false,
            },
            "addPresetFromCurrentVideoCapturer" | "updatePresetFromCurrentVideoCapturer" => {
                preset_of(f).is_some_and(|p| self.upsert_preset(p))
            }
            "getSlideShowInfo" => self.slideshow_info(f),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn preset(id: &str, pan: i64) -> Value {
        json!({"presetId": id, "videoCapturerName": "Cam", "isMuted": false,
               "pan": {"isPresent": true, "value": pan}, "tilt": {"isPresent": false},
               "zoom": {"isPresent": true, "value": 1}, "preview": {"isPresent": true}})
    }

    #[test]
    fn presets_are_listed_found_applied_and_left() {
        let mut p = Panel::default();
        assert!(p.apply_response(
            "getAllVideoCapturerPresets",
            &map(json!({"presets": [preset("100", 0), preset("200", 5)]}))
        ));
        assert_eq!(p.preset_labels(), ["Preset 1", "Preset 2"]);
        assert_eq!(p.find_preset("preset 2"), Some(1));
        assert_eq!(p.find_preset("2"), Some(1));
        assert_eq!(p.find_preset("100"), Some(0));
        assert_eq!(p.find_preset("3"), None);
        assert_eq!(p.find_preset("Preset"), None);
        assert_eq!(p.presets[0].tilt, None);
        assert!(p.apply_event(
            "videoCapturerPresetApplied",
            &map(json!({"presetId": "200"}))
        ));
        assert_eq!(p.active_label().as_deref(), Some("Preset 2"));
        // The camera still stands there: still active.
        let at = |pan: i64| map(json!({"pan": {"currentValue": pan}, "zoom": {"currentValue": 1}}));
        assert!(!p.apply_ptz(&at(5)));
        assert!(p.apply_ptz(&at(4)));
        assert_eq!(p.active_preset, None);
        assert!(p.apply_event("videoCapturerPresetAdded", &map(preset("300", 1))));
        assert!(p.apply_event(
            "videoCapturerPresetRemoved",
            &map(json!({"presetId": "100"}))
        ));
        assert_eq!(p.presets.len(), 2);
        assert_eq!(p.presets[1].id, "300");
    }

    #[test]
    fn content_slides_and_requests() {
        let mut p = Panel::default();
        p.apply_hardware(&map(
            json!({"DSCaptureList": [{"name": "Screen 1", "id": 65537}], "defaultContentSource": ""}),
        ));
        assert!(p.apply_app_state(&map(
            json!({"desktopSharing": {"running": true, "sourceType": 1, "id": 65537}, "recording": true})
        )));
        assert_eq!(p.content(), Some("Screen 1"));
        assert_eq!(p.recording, Some(true));
        assert!(p.apply_app_state(&map(json!({"desktopSharing": {"running": false}}))));
        assert_eq!(p.content(), None);

        assert!(p.apply_response(
            "getSlideShowInfo",
            &map(json!({"available": true, "started": false, "slides": [{}, {}, {}], "currentSlideIdx": 0}))
        ));
        assert!(p.apply_event(
            "mySlideShowStarted",
            &map(json!({"title": "", "currentSlideIndex": 0}))
        ));
        assert!(p.apply_event("currentSlideIndexChanged", &map(json!({"currentIdx": 2}))));
        assert_eq!(p.slideshow.current, Some(2));
        assert!(p.apply_event("mySlideShowStopped", &Map::new()));
        assert!(!p.slideshow.started);

        assert!(p.apply_event(
            "recordRequest",
            &map(json!({"peerId": "a@s/1", "peerDn": "A", "confId": "c"}))
        ));
        assert!(p.apply_event(
            "roleEventOccured",
            &map(json!({"peerId": "b@s/2", "peerDn": "B", "role": 3}))
        ));
        assert!(p.apply_event(
            "requestCameraControlReceived",
            &map(json!({"callId": "c@s/3"}))
        ));
        assert!(p.apply_event(
            "incomingRequestToPodiumAnswered",
            &map(json!({"peerId": "b@s/2", "allow": true}))
        ));
        assert!(p.podium_requests.is_empty());
        assert!(p.call_ended());
        assert!(p.record_request.is_none() && p.camera_control_requests.is_empty());
    }
}
