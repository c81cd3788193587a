//! Scripted life: what happens to a Room without a request — someone calls, a caller gives up,
//! the remote side hangs up, participants come and go, a chat message arrives, the owner mutes
//! our microphone. Tests and the control channel inject these; each returns the [`Effects`]
//! the shell delivers, or a [`SimError`] when the Room is not in a state where it can happen.
//! (Plugging and unplugging devices is in `devices`.)

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::protocol::AppState;
use crate::simulator::SimError;

use super::calls::{Call, display_name_of};
use super::{Effects, Machine};

pub(super) fn unix_time() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Machine {
    pub(super) fn not_available(&self, what: &str) -> SimError {
        SimError::NotAvailable(format!("{what} (appState {})", self.app_state.wire()))
    }

    /// Someone calls the Room: inviteReceived, appStateChanged 4 (and, with the `autoAccept`
    /// setting, the accept sequence at once).
    pub fn incoming_call(&mut self, peer_id: &str, peer_dn: &str) -> Result<Effects, SimError> {
        if !self.is_idle_and_ready() {
            return Err(self.not_available("an incoming call needs an idle, logged-in Room"));
        }
        let mut fx = Effects::default();
        let peer = Machine::participant(peer_id, peer_dn);
        let conf_id = self.new_conf_id();
        fx.emit(
            "inviteReceived",
            json!({"peerId": peer.peer_id, "peerDn": peer.peer_dn, "type": 0, "confId": conf_id}),
        );
        self.call = Call::Incoming {
            peer: peer.clone(),
            conf_id: conf_id.clone(),
        };
        self.set_state(AppState::Wait, &mut fx);
        if self.settings.get("autoAccept") == Some(&Value::Bool(true)) {
            self.start_p2p(peer, conf_id, "incoming", &mut fx);
        }
        Ok(fx)
    }

    /// The caller of a pending incoming call hangs up: stopCalling, appStateChanged 3.
    pub fn caller_gives_up(&mut self) -> Result<Effects, SimError> {
        let Call::Incoming { peer, .. } = &self.call else {
            return Err(self.not_available("no incoming call is ringing"));
        };
        let mut fx = Effects::default();
        // inferred: `side` is undocumented; 1 is used for "the remote side".
        fx.emit("stopCalling", json!({"peerId": peer.peer_id, "side": 1}));
        self.call = Call::Idle;
        self.set_state(AppState::Normal, &mut fx);
        Ok(fx)
    }

    /// The remote side ends the call: the same tail as a local hangUp.
    pub fn remote_hangup(&mut self) -> Result<Effects, SimError> {
        if !matches!(self.call, Call::Active(_)) {
            return Err(self.not_available("no call is running"));
        }
        let mut fx = Effects::default();
        self.end_conference(&mut fx);
        Ok(fx)
    }

    /// A participant joins the running conference.
    pub fn participant_joins(&mut self, peer_id: &str, peer_dn: &str) -> Result<Effects, SimError> {
        let Call::Active(c) = &self.call else {
            return Err(self.not_available("no conference is running"));
        };
        if c.participants.iter().any(|p| p.peer_id == peer_id) {
            return Err(SimError::Invalid(format!(
                "{peer_id} is already in the conference"
            )));
        }
        let mut fx = Effects::default();
        let peer = Machine::participant(peer_id, peer_dn);
        self.add_participant(peer, &mut fx);
        Ok(fx)
    }

    /// A participant leaves (matched by exact id, or by PeerId for an InstanceId entry).
    pub fn participant_leaves(&mut self, peer_id: &str) -> Result<Effects, SimError> {
        let Call::Active(c) = &mut self.call else {
            return Err(self.not_available("no conference is running"));
        };
        let position = c
            .participants
            .iter()
            .position(|p| p.peer_id == peer_id)
            .or_else(|| {
                c.participants
                    .iter()
                    .position(|p| p.peer_id.split('/').next() == Some(peer_id))
            });
        let Some(index) = position else {
            return Err(SimError::NotFound(format!(
                "{peer_id} is not in the conference"
            )));
        };
        let peer = c.participants.remove(index);
        let mut fx = Effects::default();
        // inferred: catalog note "confId may also be present".
        fx.emit(
            "participantLeftConference",
            json!({"peerId": peer.peer_id, "confId": c.conf_id}),
        );
        Ok(fx)
    }

    /// A chat message arrives.
    pub fn chat_message(&mut self, peer_id: &str, text: &str) -> Effects {
        let (peer_dn, conf_id) = match &self.call {
            Call::Active(c) => (
                c.participants
                    .iter()
                    .find(|p| p.peer_id == peer_id)
                    .map(|p| p.peer_dn.clone())
                    .unwrap_or_else(|| display_name_of(peer_id)),
                c.conf_id.clone(),
            ),
            _ => (display_name_of(peer_id), String::new()),
        };
        let mut fx = Effects::default();
        fx.emit(
            "incomingChatMessage",
            json!({"peerId": peer_id, "peerDn": peer_dn, "message": text,
                   "time": unix_time(), "confId": conf_id}),
        );
        fx
    }

    /// The conference owner mutes or unmutes our microphone.
    pub fn owner_mutes_mic(&mut self, mute: bool) -> Result<Effects, SimError> {
        let Call::Active(c) = &self.call else {
            return Err(self.not_available("no conference is running"));
        };
        let mut fx = Effects::default();
        fx.emit(
            "micStateChangedByConferenceOwner",
            json!({"mute": mute, "confId": c.conf_id}),
        );
        // inferred: the local mute state follows, announced like a local change.
        self.mic_muted = mute;
        fx.emit("audioCapturerMute", json!({"mute": mute}));
        Ok(fx)
    }
}
