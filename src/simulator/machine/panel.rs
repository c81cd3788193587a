//! What a room panel drives: camera presets (per camera, restoring the PTZ position and the
//! camera mute), content sharing from the `DSCaptureList` sources, a slideshow, podium and
//! camera-control requests, recording and its consent, the monitor of the main window.
//!
//! Shapes follow the protocol notes; where they are silent the choice is marked *inferred*
//! (see also `crate::room::panel`, which reads them):
//! * a preset is `{presetId, videoCapturerName, videoCapturerDescription, isMuted, comPort, pan,
//!   tilt, zoom, preview}` with `{isPresent, value?}` axes (documented); `getAllVideoCapturerPresets`
//!   answers `{presets: [...]}`, `videoCapturerPresetApplied` / `…Removed` carry the preset /
//!   its `presetId` (inferred);
//! * content sharing: `startCapture {captureId}` / `stopCapture` (official client) change
//!   `appState.desktopSharing` (documented shape), announced with `appStateChanged` (inferred);
//!   only in a call (inferred);
//! * slides: `getSlideShowInfo {available, started, slides: [{name, fileId}], currentSlideIdx}`
//!   (slide shape inferred from `slideAdded`), 0-based indexes (inferred);
//! * a podium request arrives as `roleEventOccured` with role 3 (inferred from the catalog's
//!   participant roles); answering it sends `incomingRequestToPodiumAnswered`;
//! * a record request is `recordRequest {peerId, peerDn, confId}`; answering it sends
//!   `recordRequestReply {peerId, recordAllowed, confId}` (inferred pairing).

use serde_json::{Map, Value, json};

use crate::protocol::{AppState, Participant};
use crate::simulator::SimError;

use super::calls::Call;
use super::devices::{Device, DeviceKind};
use super::replies::monitors_payload;
use super::{Effects, Machine, Refusal, int_param, object, str_param};

/// Most presets a simulated Room keeps.
const MAX_PRESETS: usize = 64;

#[derive(Debug, Clone)]
pub(super) struct SimPreset {
    id: String,
    camera: Device,
    muted: bool,
    pan: Option<i64>,
    tilt: Option<i64>,
    zoom: Option<i64>,
}

/// The slides loaded in the simulated Room (names as a presenter's files would be).
pub(super) fn initial_slides() -> Vec<String> {
    (1..=5)
        .map(|i| format!("Quarterly review {i}.png"))
        .collect()
}

/// Panel state of the machine.
#[derive(Debug, Clone, Default)]
pub(super) struct PanelState {
    pub(super) presets: Vec<SimPreset>,
    next_id: u64,
    /// `(captureId, name)` while sharing.
    pub(super) sharing: Option<(i64, String)>,
    pub(super) slides: Vec<String>,
    pub(super) slideshow: Option<usize>,
    pub(super) recording: bool,
    pub(super) record_request: Option<Participant>,
    pub(super) podium_requests: Vec<Participant>,
    pub(super) camera_requests: Vec<String>,
    pub(super) current_monitor: i64,
    /// `defaultContentSource` (empty: none).
    pub(super) default_source: String,
}

fn axis_json(value: Option<i64>) -> Value {
    match value {
        Some(v) => json!({"isPresent": true, "value": v}),
        None => json!({"isPresent": false}),
    }
}

impl SimPreset {
    pub(super) fn id(&self) -> &str {
        &self.id
    }

    fn json(&self) -> Map<String, Value> {
        object(json!({
            "presetId": self.id,
            "videoCapturerName": self.camera.name,
            "videoCapturerDescription": self.camera.description,
            "isMuted": self.muted,
            "comPort": "",
            "pan": axis_json(self.pan),
            "tilt": axis_json(self.tilt),
            "zoom": axis_json(self.zoom),
            "preview": {"isPresent": false},
        }))
    }
}

impl PanelState {
    /// Two presets of the PTZ camera `camera` (wide and a close-up), as an installer leaves them.
    pub(super) fn new(camera: Option<&Device>) -> PanelState {
        let presets = camera
            .filter(|c| c.ptz)
            .map(|camera| {
                [
                    (1_667_476_138_528_u64, 0, 0, 1),
                    (1_667_476_138_529, -6, 3, 3),
                ]
                .into_iter()
                .map(|(id, pan, tilt, zoom)| SimPreset {
                    id: id.to_string(),
                    camera: camera.clone(),
                    muted: false,
                    pan: Some(pan),
                    tilt: Some(tilt),
                    zoom: Some(zoom),
                })
                .collect()
            })
            .unwrap_or_default();
        PanelState {
            presets,
            // Millisecond timestamps, like the ids in TrueConf's examples.
            next_id: 1_667_476_138_600,
            slides: initial_slides(),
            ..PanelState::default()
        }
    }
}

impl Machine {
    fn preset_from_current(&mut self, id: Option<String>) -> Result<SimPreset, Refusal> {
        let camera = self.current[DeviceKind::Camera.index()]
            .clone()
            .ok_or(Refusal::NotAvailable)?;
        let ptz = camera.ptz;
        let id = id.unwrap_or_else(|| {
            self.panel.next_id += 1;
            self.panel.next_id.to_string()
        });
        Ok(SimPreset {
            id,
            muted: self.camera_muted,
            pan: ptz.then_some(self.pan.current),
            tilt: ptz.then_some(self.tilt.current),
            zoom: ptz.then_some(self.zoom.current),
            camera,
        })
    }

    fn preset_index(&self, id: &str) -> Result<usize, Refusal> {
        self.panel
            .presets
            .iter()
            .position(|p| p.id == id)
            .ok_or_else(|| Refusal::Invalid(format!("no preset '{id}'")))
    }

    fn add_preset(
        &mut self,
        preset: SimPreset,
        fx: &mut Effects,
    ) -> Result<Map<String, Value>, Refusal> {
        if self.panel.presets.len() >= MAX_PRESETS {
            return Err(Refusal::Invalid(format!("at most {MAX_PRESETS} presets")));
        }
        let payload = preset.json();
        self.panel.presets.push(preset);
        fx.emit("videoCapturerPresetAdded", Value::Object(payload.clone()));
        Ok(payload)
    }

    fn apply_preset(&mut self, index: usize, fx: &mut Effects) -> Result<(), Refusal> {
        let preset = self.panel.presets[index].clone();
        // The preset's camera must still be there.
        let Some(camera) = self.devices[DeviceKind::Camera.index()]
            .iter()
            .find(|d| d.description == preset.camera.description)
            .cloned()
        else {
            return Err(Refusal::NotAvailable);
        };
        let selected = self.current[DeviceKind::Camera.index()]
            .as_ref()
            .is_some_and(|c| c.description == camera.description);
        if !selected {
            self.current[DeviceKind::Camera.index()] = Some(camera.clone());
            fx.emit("hardwareChanged", Value::Object(self.hardware_payload()));
        }
        if camera.ptz {
            for (axis, value) in [
                (&mut self.pan, preset.pan),
                (&mut self.tilt, preset.tilt),
                (&mut self.zoom, preset.zoom),
            ] {
                if let Some(v) = value {
                    axis.current = v.clamp(axis.min, axis.max);
                }
            }
        }
        fx.emit("ptzControlsChanged", Value::Object(self.ptz_payload()));
        if self.camera_muted != preset.muted {
            self.camera_muted = preset.muted;
            fx.emit("videoCapturerMute", json!({"mute": self.camera_muted}));
        }
        fx.emit("videoCapturerPresetApplied", Value::Object(preset.json()));
        Ok(())
    }

    fn in_conference(&self) -> Result<(), Refusal> {
        if self.app_state == AppState::Conference && matches!(self.call, Call::Active(_)) {
            Ok(())
        } else {
            Err(Refusal::NotAvailable)
        }
    }

    fn conf_id(&self) -> String {
        match &self.call {
            Call::Active(c) => c.conf_id.clone(),
            _ => String::new(),
        }
    }

    fn has_participant(&self, peer_id: &str) -> bool {
        matches!(&self.call, Call::Active(c) if c.participants.iter().any(|p| p.peer_id == peer_id))
    }

    fn announce_app_state(&self, fx: &mut Effects) {
        fx.emit("appStateChanged", Value::Object(self.app_state_payload()));
    }

    fn show_slide(&mut self, index: usize, fx: &mut Effects) {
        self.panel.slideshow = Some(index);
        fx.emit("currentSlideIndexChanged", json!({"currentIdx": index}));
    }

    fn slideshow_payload(&self) -> Map<String, Value> {
        let slides: Vec<Value> = self
            .panel
            .slides
            .iter()
            .enumerate()
            .map(|(i, name)| json!({"name": name, "fileId": 1000 + i}))
            .collect();
        object(json!({
            "available": self.app_state == AppState::Conference,
            "started": self.panel.slideshow.is_some(),
            "slides": slides,
            "currentSlideIdx": self.panel.slideshow.map_or(-1, |i| i as i64),
        }))
    }

    /// The call ended or never was: what belongs to it goes (before the `appStateChanged` that
    /// announces the new state, so its payload already says so).
    pub(super) fn leave_call_panel(&mut self, fx: &mut Effects) {
        self.panel.sharing = None;
        if self.panel.slideshow.take().is_some() {
            fx.emit("mySlideShowStopped", json!({}));
        }
        self.panel.record_request = None;
        self.panel.recording = false;
        self.panel.podium_requests.clear();
        self.panel.camera_requests.clear();
    }

    /// Requests of the panel's concern; `None` when `method` is not one of them.
    pub(super) fn panel_request(
        &mut self,
        method: &str,
        p: &Map<String, Value>,
        fx: &mut Effects,
    ) -> Option<Result<Map<String, Value>, Refusal>> {
        let result = (|| -> Result<Map<String, Value>, Refusal> {
            match method {
                "getAllVideoCapturerPresets" => {
                    let list: Vec<Value> = self
                        .panel
                        .presets
                        .iter()
                        .map(|p| Value::Object(p.json()))
                        .collect();
                    Ok(object(json!({"presets": list})))
                }
                "addPresetFromCurrentVideoCapturer" => {
                    let preset = self.preset_from_current(None)?;
                    self.add_preset(preset, fx)
                }
                "addVideoCapturerPreset" => {
                    let name = str_param(p, "videoCapturerName");
                    let description = str_param(p, "videoCapturerDescription");
                    let camera = self.devices[DeviceKind::Camera.index()]
                        .iter()
                        .find(|d| {
                            d.name == name
                                && (description.is_empty() || d.description == description)
                        })
                        .cloned()
                        .ok_or_else(|| Refusal::Invalid(format!("no camera '{name}'")))?;
                    let axis = |key: &str| {
                        p.get(key)
                            .and_then(Value::as_object)
                            .filter(|a| a.get("isPresent").and_then(Value::as_bool) == Some(true))
                            .and_then(|a| a.get("value")?.as_i64())
                    };
                    self.panel.next_id += 1;
                    let preset = SimPreset {
                        id: self.panel.next_id.to_string(),
                        muted: p.get("isMuted").and_then(Value::as_bool).unwrap_or(false),
                        pan: axis("pan"),
                        tilt: axis("tilt"),
                        zoom: axis("zoom"),
                        camera,
                    };
                    let added = self.add_preset(preset, fx)?;
                    Ok(object(json!({"presetId": added["presetId"]})))
                }
                "updatePresetFromCurrentVideoCapturer" => {
                    let index = self.preset_index(str_param(p, "presetId"))?;
                    let id = self.panel.presets[index].id.clone();
                    let preset = self.preset_from_current(Some(id))?;
                    let payload = preset.json();
                    self.panel.presets[index] = preset;
                    fx.emit("videoCapturerPresetUpdated", Value::Object(payload.clone()));
                    Ok(payload)
                }
                "applyVideoCapturerPreset" => {
                    let index = self.preset_index(str_param(p, "presetId"))?;
                    self.apply_preset(index, fx)?;
                    Ok(Map::new())
                }
                "removeVideoCapturerPreset" => {
                    let index = self.preset_index(str_param(p, "presetId"))?;
                    let removed = self.panel.presets.remove(index);
                    fx.emit(
                        "videoCapturerPresetRemoved",
                        json!({"presetId": removed.id}),
                    );
                    Ok(Map::new())
                }
                "startCapture" => {
                    self.in_conference()?;
                    let id = int_param(p, "captureId");
                    let Some(name) = self.capture_sources().into_iter().find(|s| s.0 == id) else {
                        return Err(Refusal::Invalid(format!("no capture source {id}")));
                    };
                    self.panel.sharing = Some(name);
                    self.announce_app_state(fx);
                    Ok(Map::new())
                }
                "stopCapture" => {
                    if self.panel.sharing.take().is_none() {
                        return Err(Refusal::NotAvailable);
                    }
                    self.announce_app_state(fx);
                    Ok(Map::new())
                }
                "sendStopContentSharing" => {
                    // Asks a participant to stop sharing; what the far end does is not the
                    // Room's to announce (inferred: nothing follows here).
                    self.in_conference()?;
                    let peer = str_param(p, "peerId");
                    if !self.has_participant(peer) {
                        return Err(Refusal::Invalid(format!("no participant '{peer}'")));
                    }
                    Ok(Map::new())
                }
                "setDefaultContentSource" => {
                    let name = str_param(p, "name");
                    if !self.capture_sources().iter().any(|s| s.1 == name) {
                        return Err(Refusal::Invalid(format!("no content source '{name}'")));
                    }
                    self.panel.default_source = name.to_owned();
                    // Part of the getHardware payload (defaultContentSource), so announced
                    // like a device change (inferred).
                    fx.emit("hardwareChanged", Value::Object(self.hardware_payload()));
                    Ok(Map::new())
                }
                "getSlideShowInfo" => Ok(self.slideshow_payload()),
                "startSlideShow" => {
                    self.in_conference()?;
                    if self.panel.slides.is_empty() {
                        return Err(Refusal::NotAvailable);
                    }
                    let start = p
                        .get("startingIdx")
                        .and_then(Value::as_u64)
                        .map_or(0, |i| i as usize);
                    if start >= self.panel.slides.len() {
                        return Err(Refusal::Invalid(format!("no slide {start}")));
                    }
                    self.panel.slideshow = Some(start);
                    fx.emit(
                        "mySlideShowStarted",
                        json!({"title": str_param(p, "title"), "currentSlideIndex": start}),
                    );
                    Ok(Map::new())
                }
                "stopSlideShow" => {
                    if self.panel.slideshow.take().is_none() {
                        return Err(Refusal::NotAvailable);
                    }
                    fx.emit("mySlideShowStopped", json!({}));
                    Ok(Map::new())
                }
                "showNextSlide" | "showPrevSlide" | "showFirstSlide" | "showLastSlide"
                | "showSlide" => {
                    let Some(current) = self.panel.slideshow else {
                        return Err(Refusal::NotAvailable);
                    };
                    let last = self.panel.slides.len().saturating_sub(1);
                    let next = match method {
                        "showNextSlide" => (current + 1).min(last),
                        "showPrevSlide" => current.saturating_sub(1),
                        "showFirstSlide" => 0,
                        "showLastSlide" => last,
                        _ => {
                            let idx = int_param(p, "idx");
                            match usize::try_from(idx) {
                                Ok(i) if i <= last => i,
                                _ => return Err(Refusal::Invalid(format!("no slide {idx}"))),
                            }
                        }
                    };
                    if next != current {
                        self.show_slide(next, fx);
                    }
                    Ok(Map::new())
                }
                "turnRemoteMic" | "turnRemoteCamera" => {
                    self.in_conference()?;
                    let peer = str_param(p, "peerId");
                    if !self.has_participant(peer) {
                        return Err(Refusal::Invalid(format!("no participant '{peer}'")));
                    }
                    let on = p.get("on").and_then(Value::as_bool).unwrap_or(false);
                    let state = if on { 2 } else { 1 };
                    let (mic, video) = if method == "turnRemoteMic" {
                        (state, 2)
                    } else {
                        (2, state)
                    };
                    // SPEC §7.1: a participant's device change is announced with
                    // deviceStatusReceived (0 none, 1 muted, 2 on).
                    fx.emit(
                        "deviceStatusReceived",
                        json!({"peerId": peer, "mic": mic, "video": video, "confId": self.conf_id()}),
                    );
                    Ok(Map::new())
                }
                "acceptRequestToPodium" | "rejectRequestToPodium" => {
                    let peer = str_param(p, "peerId");
                    let Some(index) = self
                        .panel
                        .podium_requests
                        .iter()
                        .position(|r| r.peer_id == peer)
                    else {
                        return Err(Refusal::NotAvailable);
                    };
                    let request = self.panel.podium_requests.remove(index);
                    let allow = method == "acceptRequestToPodium";
                    fx.emit(
                        "incomingRequestToPodiumAnswered",
                        json!({"peerId": request.peer_id, "allow": allow, "confId": self.conf_id()}),
                    );
                    Ok(Map::new())
                }
                "allowRecord" | "denyRecord" => {
                    let peer = str_param(p, "peerId");
                    match &self.panel.record_request {
                        Some(r) if r.peer_id == peer => {}
                        _ => return Err(Refusal::NotAvailable),
                    }
                    self.panel.record_request = None;
                    fx.emit(
                        "recordRequestReply",
                        json!({"peerId": peer, "recordAllowed": method == "allowRecord", "confId": self.conf_id()}),
                    );
                    Ok(Map::new())
                }
                "acceptRequestCameraControl" => {
                    let call_id = str_param(p, "callId");
                    let Some(index) = self.panel.camera_requests.iter().position(|c| c == call_id)
                    else {
                        return Err(Refusal::NotAvailable);
                    };
                    self.panel.camera_requests.remove(index);
                    fx.emit(
                        "incomingRequestCameraControlAccepted",
                        json!({"callId": call_id}),
                    );
                    Ok(Map::new())
                }
                "rejectRequestCameraControl" => {
                    if self.panel.camera_requests.is_empty() {
                        return Err(Refusal::NotAvailable);
                    }
                    let call_id = self.panel.camera_requests.remove(0);
                    fx.emit(
                        "incomingRequestCameraControlRejected",
                        json!({"callId": call_id, "reason": 0}),
                    );
                    Ok(Map::new())
                }
                "changeCurrentMonitor" => {
                    let index = int_param(p, "monitorIndex");
                    let count = monitors_payload()["monitors"]
                        .as_array()
                        .map_or(0, Vec::len);
                    if !(0..count as i64).contains(&index) {
                        return Err(Refusal::Invalid(format!("no monitor {index}")));
                    }
                    self.panel.current_monitor = index;
                    fx.emit(
                        "monitorsInfoUpdated",
                        Value::Object(self.monitors_payload()),
                    );
                    Ok(Map::new())
                }
                _ => Err(Refusal::UnknownMethod),
            }
        })();
        match result {
            Err(Refusal::UnknownMethod) => None,
            other => Some(other),
        }
    }

    /// `getMonitorsInfo` with the current monitor.
    pub(super) fn monitors_payload(&self) -> Map<String, Value> {
        let mut payload = monitors_payload();
        payload.insert("currentMonitor".into(), json!(self.panel.current_monitor));
        payload
    }

    /// The `DSCaptureList` entries: `(id, name)`.
    pub(super) fn capture_sources(&self) -> Vec<(i64, String)> {
        vec![
            (65537, "Screen 1".to_owned()),
            (65538, "Screen 2".to_owned()),
            (66910, "Presentation - PowerPoint".to_owned()),
        ]
    }

    /// `appState.desktopSharing`.
    pub(super) fn desktop_sharing(&self) -> Value {
        match &self.panel.sharing {
            // sourceType: 1 screen, 2 window (inferred from the documented example, where a
            // window has 2).
            Some((id, name)) => json!({
                "running": true,
                "sourceType": if name.starts_with("Screen") { 1 } else { 2 },
                "id": id,
                "windowName": name,
            }),
            None => json!({"running": false}),
        }
    }

    // === Room-side life (tests and the control channel) ===

    fn preset_by_text(&self, text: &str) -> Result<usize, SimError> {
        let text = text.trim();
        if let Some(i) = self.panel.presets.iter().position(|p| p.id == text) {
            return Ok(i);
        }
        match text.parse::<usize>() {
            Ok(n) if (1..=self.panel.presets.len()).contains(&n) => Ok(n - 1),
            _ => Err(SimError::NotFound(format!("no preset '{text}'"))),
        }
    }

    /// Someone at the Room saves the camera position as a preset.
    pub fn room_saves_preset(&mut self) -> Result<Effects, SimError> {
        let mut fx = Effects::default();
        let preset = self
            .preset_from_current(None)
            .map_err(|_| self.not_available("no camera is selected"))?;
        self.add_preset(preset, &mut fx)
            .map_err(|_| SimError::Invalid(format!("at most {MAX_PRESETS} presets")))?;
        Ok(fx)
    }

    /// Someone at the Room applies preset `text` (its number from 1 or its id).
    pub fn room_applies_preset(&mut self, text: &str) -> Result<Effects, SimError> {
        let index = self.preset_by_text(text)?;
        let mut fx = Effects::default();
        self.apply_preset(index, &mut fx)
            .map_err(|_| self.not_available("the preset's camera is not plugged in"))?;
        Ok(fx)
    }

    /// Someone at the Room removes preset `text`.
    pub fn room_removes_preset(&mut self, text: &str) -> Result<Effects, SimError> {
        let index = self.preset_by_text(text)?;
        let removed = self.panel.presets.remove(index);
        let mut fx = Effects::default();
        fx.emit(
            "videoCapturerPresetRemoved",
            json!({"presetId": removed.id}),
        );
        Ok(fx)
    }

    /// Someone at the Room starts sharing `source` (a `DSCaptureList` name) or stops (`None`).
    pub fn room_shares(&mut self, source: Option<&str>) -> Result<Effects, SimError> {
        if self.app_state != AppState::Conference {
            return Err(self.not_available("content is shared in a call"));
        }
        self.panel.sharing = match source {
            None => None,
            Some(name) => Some(
                self.capture_sources()
                    .into_iter()
                    .find(|s| s.1.eq_ignore_ascii_case(name))
                    .ok_or_else(|| SimError::NotFound(format!("no content source '{name}'")))?,
            ),
        };
        let mut fx = Effects::default();
        self.announce_app_state(&mut fx);
        Ok(fx)
    }

    /// The presenter at the Room drives the slideshow: `start`, `stop`, `next`, `prev` or a
    /// slide number from 1.
    pub fn room_slides(&mut self, what: &str) -> Result<Effects, SimError> {
        let method = match what.trim() {
            "start" => "startSlideShow".to_owned(),
            "stop" => "stopSlideShow".to_owned(),
            "next" => "showNextSlide".to_owned(),
            "prev" => "showPrevSlide".to_owned(),
            n => {
                let n: usize = n.parse().map_err(|_| {
                    SimError::Invalid(format!("expected start|stop|next|prev|<n>, got '{n}'"))
                })?;
                let mut fx = Effects::default();
                let mut p = Map::new();
                p.insert("idx".into(), json!(n.wrapping_sub(1)));
                return match self.panel_request("showSlide", &p, &mut fx) {
                    Some(Ok(_)) => Ok(fx),
                    _ => Err(self.not_available("no such slide, or no slideshow running")),
                };
            }
        };
        let mut fx = Effects::default();
        match self.panel_request(&method, &Map::new(), &mut fx) {
            Some(Ok(_)) => Ok(fx),
            _ => Err(self.not_available("not possible with the slideshow as it is")),
        }
    }

    fn require_participant(&self, peer_id: &str) -> Result<Participant, SimError> {
        match &self.call {
            Call::Active(c) if self.app_state == AppState::Conference => c
                .participants
                .iter()
                .find(|p| p.peer_id == peer_id)
                .cloned()
                .ok_or_else(|| SimError::NotFound(format!("no participant '{peer_id}'"))),
            _ => Err(self.not_available("nobody is in a call with the Room")),
        }
    }

    /// Participant `peer_id` asks for the podium (`roleEventOccured`, role 3).
    pub fn podium_request(&mut self, peer_id: &str) -> Result<Effects, SimError> {
        let peer = self.require_participant(peer_id)?;
        if !self
            .panel
            .podium_requests
            .iter()
            .any(|r| r.peer_id == peer.peer_id)
        {
            self.panel.podium_requests.push(peer.clone());
        }
        let mut fx = Effects::default();
        fx.emit(
            "roleEventOccured",
            json!({"peerId": peer.peer_id, "peerDn": peer.peer_dn, "role": 3, "type": 0,
                   "result": true, "broadcast": false, "confId": self.conf_id()}),
        );
        Ok(fx)
    }

    /// Participant `call_id` asks to control our camera (`requestCameraControlReceived`).
    pub fn camera_control_request(&mut self, call_id: &str) -> Result<Effects, SimError> {
        let peer = self.require_participant(call_id)?;
        if !self.panel.camera_requests.contains(&peer.peer_id) {
            self.panel.camera_requests.push(peer.peer_id.clone());
        }
        let mut fx = Effects::default();
        fx.emit(
            "requestCameraControlReceived",
            json!({"callId": peer.peer_id}),
        );
        Ok(fx)
    }

    /// Participant `peer_id` asks for consent to record (`recordRequest`).
    pub fn record_request(&mut self, peer_id: &str) -> Result<Effects, SimError> {
        let peer = self.require_participant(peer_id)?;
        self.panel.record_request = Some(peer.clone());
        let mut fx = Effects::default();
        fx.emit(
            "recordRequest",
            json!({"peerId": peer.peer_id, "peerDn": peer.peer_dn, "confId": self.conf_id()}),
        );
        Ok(fx)
    }

    /// The Room starts or stops recording (`appState.recording`).
    pub fn set_recording(&mut self, on: bool) -> Result<Effects, SimError> {
        if on && self.app_state != AppState::Conference {
            return Err(self.not_available("recording needs a call"));
        }
        self.panel.recording = on;
        let mut fx = Effects::default();
        self.announce_app_state(&mut fx);
        Ok(fx)
    }
}
