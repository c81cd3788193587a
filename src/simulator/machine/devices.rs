//! The Room's devices: the camera, microphone and speaker lists of `getHardware`, selecting
//! one (`setVideoCapturer` & co.), hot-plugging, and the PTZ controls of the selected camera
//! (`getPtzControls`, relative and absolute moves). Every change announces `hardwareChanged`
//! (and `ptzControlsChanged` where the camera is concerned).

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{Effects, Machine, Refusal, int_param, object, str_param};
use crate::simulator::SimError;

/// Which `getHardware` list a device belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// `videoCapturers`.
    Camera,
    /// `audioCapturers`.
    Microphone,
    /// `audioRenderers`.
    Speaker,
}

impl DeviceKind {
    pub(super) fn index(self) -> usize {
        match self {
            DeviceKind::Camera => 0,
            DeviceKind::Microphone => 1,
            DeviceKind::Speaker => 2,
        }
    }

    /// Parses `camera`, `mic`/`microphone` or `speaker` (as used by the stdin control channel).
    pub fn parse(text: &str) -> Option<DeviceKind> {
        match text.to_ascii_lowercase().as_str() {
            "camera" | "video" | "cam" => Some(DeviceKind::Camera),
            "mic" | "microphone" => Some(DeviceKind::Microphone),
            "speaker" | "speakers" | "renderer" => Some(DeviceKind::Speaker),
            _ => None,
        }
    }
}

/// Current pan/tilt/zoom positions of the selected camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PtzPosition {
    /// Pan position (−10..10).
    pub pan: i64,
    /// Tilt position (−10..10).
    pub tilt: i64,
    /// Zoom position (1..5).
    pub zoom: i64,
}

#[derive(Debug, Clone)]
pub(super) struct Device {
    pub(super) name: String,
    pub(super) description: String,
    pub(super) ptz: bool,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Axis {
    pub(super) min: i64,
    pub(super) max: i64,
    pub(super) def: i64,
    pub(super) step: i64,
    pub(super) current: i64,
}

impl Axis {
    pub(super) fn new(min: i64, max: i64, def: i64, step: i64) -> Axis {
        Axis {
            min,
            max,
            def,
            step,
            current: def,
        }
    }

    pub(super) fn json(&self, supported: bool) -> Value {
        if !supported {
            return json!({"support": false});
        }
        json!({
            "isContinuousType": false,
            "support": true,
            "minValue": self.min,
            "maxValue": self.max,
            "currentValue": self.current,
            "defValue": self.def,
            "step": self.step,
            "inverted": false,
        })
    }

    pub(super) fn nudge(&mut self, direction: i64) {
        self.current = (self.current + direction * self.step).clamp(self.min, self.max);
    }

    pub(super) fn set(&mut self, pos: i64) -> Result<(), Refusal> {
        if !(self.min..=self.max).contains(&pos) {
            return Err(Refusal::Invalid(format!(
                "pos {pos} is outside {}..{}",
                self.min, self.max
            )));
        }
        self.current = pos;
        Ok(())
    }
}

pub(super) fn initial_devices() -> [Vec<Device>; 3] {
    let dev = |name: &str, description: &str, ptz: bool| Device {
        name: name.to_owned(),
        description: description.to_owned(),
        ptz,
    };
    [
        vec![
            dev(
                "Logitech PTZ Pro 2",
                r"\\?\usb#vid_046d&pid_085f&mi_00#7&2a1b9c3d&0&0000#{e5323777-f976-4f5b-9b55-b94699c46e44}\global",
                true,
            ),
            dev(
                "Integrated Webcam",
                r"\\?\usb#vid_0c45&pid_6723&mi_00#6&1f3e5a7c&0&0000#{e5323777-f976-4f5b-9b55-b94699c46e44}\global",
                false,
            ),
        ],
        vec![
            dev(
                "Echo Cancelling Speakerphone (Jabra SPEAK 510 USB)",
                "{0.0.1.00000000}.{7c2a4f1e-8b3d-4e6a-9f5c-1d2e3f4a5b6c}",
                false,
            ),
            dev(
                "Microphone (Realtek(R) Audio)",
                "{0.0.1.00000000}.{3b9d8e2f-1a4c-4d7e-8f6a-2c5b7d9e1f3a}",
                false,
            ),
        ],
        vec![
            dev(
                "Echo Cancelling Speakerphone (Jabra SPEAK 510 USB)",
                "{0.0.0.00000000}.{5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9}",
                false,
            ),
            dev(
                "Speakers (Realtek(R) Audio)",
                "{0.0.0.00000000}.{9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d}",
                false,
            ),
        ],
    ]
}

impl Machine {
    pub(super) fn hardware_payload(&self) -> Map<String, Value> {
        let list = |kind: DeviceKind| -> Value {
            self.devices[kind.index()]
                .iter()
                .map(|d| json!({"name": d.name, "description": d.description, "type": 1}))
                .collect()
        };
        // inferred: SPEC §7 — "none"/"none" selects no device; the Room is assumed to report
        // the selection back the same way.
        let current = |kind: DeviceKind| -> (String, String, i64) {
            match &self.current[kind.index()] {
                Some(d) => (d.name.clone(), d.description.clone(), 1),
                None => ("none".into(), "none".into(), 0),
            }
        };
        let (cam_n, cam_d, cam_t) = current(DeviceKind::Camera);
        let (mic_n, mic_d, mic_t) = current(DeviceKind::Microphone);
        let (spk_n, spk_d, spk_t) = current(DeviceKind::Speaker);
        object(json!({
            "audioCapturers": list(DeviceKind::Microphone),
            "currentAudioCapturerName": mic_n,
            "currentAudioCapturerDescription": mic_d,
            "currentAudioCapturerType": mic_t,
            "audioRenderers": list(DeviceKind::Speaker),
            "currentAudioRendererName": spk_n,
            "currentAudioRendererDescription": spk_d,
            "currentAudioRendererType": spk_t,
            "videoCapturers": list(DeviceKind::Camera),
            "currentVideoCapturerName": cam_n,
            "currentVideoCapturerDescription": cam_d,
            "currentVideoCapturerType": cam_t,
            "defaultContentSource": self.panel.default_source,
            "DSCaptureList": self
                .capture_sources()
                .into_iter()
                .map(|(id, name)| json!({"name": name, "id": id}))
                .collect::<Vec<_>>(),
            "comPorts": [],
        }))
    }

    pub(super) fn ptz_supported(&self) -> bool {
        self.current[DeviceKind::Camera.index()]
            .as_ref()
            .is_some_and(|d| d.ptz)
    }

    pub(super) fn ptz_payload(&self) -> Map<String, Value> {
        let supported = self.ptz_supported();
        let (name, description) = match &self.current[DeviceKind::Camera.index()] {
            Some(d) => (d.name.clone(), d.description.clone()),
            None => (String::new(), String::new()),
        };
        object(json!({
            "pan": self.pan.json(supported),
            "tilt": self.tilt.json(supported),
            "zoom": self.zoom.json(supported),
            "videoCapturerName": name,
            "videoCapturerDescription": description,
        }))
    }

    pub(super) fn select_device(
        &mut self,
        kind: DeviceKind,
        p: &Map<String, Value>,
        fx: &mut Effects,
    ) -> Result<Map<String, Value>, Refusal> {
        let name = str_param(p, "name");
        let description = str_param(p, "description");
        let selected = if name == "none" && description == "none" {
            None
        } else {
            // `description` is the unique device id (SPEC §7); the name must match too.
            let found = self.devices[kind.index()]
                .iter()
                .find(|d| d.description == description && d.name == name)
                .cloned();
            match found {
                Some(d) => Some(d),
                None => {
                    return Err(Refusal::Invalid(format!(
                        "no such device '{name}' / '{description}'"
                    )));
                }
            }
        };
        self.current[kind.index()] = selected;
        self.hardware_changed(kind, fx);
        Ok(Map::new())
    }

    /// hardwareChanged with the full getHardware payload; after a camera change also
    /// ptzControlsChanged, since the PTZ controls belong to the camera (inferred).
    pub(super) fn hardware_changed(&mut self, kind: DeviceKind, fx: &mut Effects) {
        fx.emit("hardwareChanged", Value::Object(self.hardware_payload()));
        if kind == DeviceKind::Camera {
            fx.emit("ptzControlsChanged", Value::Object(self.ptz_payload()));
        }
    }

    pub(super) fn ptz(
        &mut self,
        method: &str,
        p: &Map<String, Value>,
        fx: &mut Effects,
    ) -> Result<Map<String, Value>, Refusal> {
        if !self.ptz_supported() {
            return Err(Refusal::NotAvailable);
        }
        // Relative moves "start moving" on a real camera; the simulator moves one step at once
        // and has no running motion to stop, so ptzStop only answers.
        match method {
            "ptzLeft" => self.pan.nudge(-1),
            "ptzRight" => self.pan.nudge(1),
            "ptzUp" => self.tilt.nudge(1),
            "ptzDown" => self.tilt.nudge(-1),
            "ptzZoomInc" => self.zoom.nudge(1),
            "ptzZoomDec" => self.zoom.nudge(-1),
            "setPanPos" => self.pan.set(int_param(p, "pos"))?,
            "setTiltPos" => self.tilt.set(int_param(p, "pos"))?,
            "setZoomPos" => self.zoom.set(int_param(p, "pos"))?,
            "setPtzDefaults" => {
                for axis in [&mut self.pan, &mut self.tilt, &mut self.zoom] {
                    axis.current = axis.def;
                }
            }
            _ => return Ok(Map::new()),
        }
        fx.emit("ptzControlsChanged", Value::Object(self.ptz_payload()));
        Ok(Map::new())
    }

    /// A device is plugged in (it is not selected automatically).
    pub fn plug_device(&mut self, kind: DeviceKind, name: &str) -> Result<Effects, SimError> {
        if name.is_empty() || name == "none" {
            return Err(SimError::Invalid(format!("bad device name '{name}'")));
        }
        if self.devices[kind.index()].iter().any(|d| d.name == name) {
            return Err(SimError::Invalid(format!(
                "device '{name}' is already plugged in"
            )));
        }
        self.plugged += 1;
        let n = self.plugged;
        let description = match kind {
            DeviceKind::Camera => format!(
                r"\\?\usb#vid_1209&pid_{n:04x}&mi_00#sim&{n:08x}&0&0000#{{e5323777-f976-4f5b-9b55-b94699c46e44}}\global"
            ),
            DeviceKind::Microphone => {
                format!("{{0.0.1.00000000}}.{{5151{n:04x}-0000-4000-8000-000000000000}}")
            }
            DeviceKind::Speaker => {
                format!("{{0.0.0.00000000}}.{{5151{n:04x}-0000-4000-8000-000000000000}}")
            }
        };
        self.devices[kind.index()].push(Device {
            name: name.to_owned(),
            description,
            ptz: false,
        });
        let mut fx = Effects::default();
        self.hardware_changed(kind, &mut fx);
        Ok(fx)
    }

    /// A device is unplugged (by name or description). If it was selected, the first remaining
    /// device of its kind is selected instead (or none).
    pub fn unplug_device(&mut self, kind: DeviceKind, name: &str) -> Result<Effects, SimError> {
        let list = &mut self.devices[kind.index()];
        let Some(index) = list
            .iter()
            .position(|d| d.name == name || d.description == name)
        else {
            return Err(SimError::NotFound(format!("no device '{name}'")));
        };
        let removed = list.remove(index);
        let current = &mut self.current[kind.index()];
        if current
            .as_ref()
            .is_some_and(|c| c.description == removed.description)
        {
            *current = list.first().cloned();
        }
        let mut fx = Effects::default();
        self.hardware_changed(kind, &mut fx);
        Ok(fx)
    }
}
