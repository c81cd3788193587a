//! Who may talk to a Room: `auth` with a PIN or an issued token, the two control modes (admin
//! and user, at most one connection each, a newer one revoking the older), and
//! `setUsedApiVersion`, the one other request allowed before `auth`.

use serde_json::{Map, Value, json};

use crate::protocol::{Event, catalog};
use crate::simulator::machine::{error_reply, error_text};

use super::{ConnId, RoomState, object};

/// The two control modes (SPEC §4.1); at most one authorised connection each (SPEC §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Admin,
    User,
}

impl Mode {
    fn slot(self) -> usize {
        match self {
            Mode::Admin => 0,
            Mode::User => 1,
        }
    }
}

impl RoomState {
    /// `auth` (SPEC §4). Returns the reply and the events for other connections (kicks).
    pub(super) fn auth(
        &mut self,
        id: ConnId,
        request_id: Value,
        params: &Map<String, Value>,
        pin: Option<&str>,
        refuse: bool,
    ) -> (Map<String, Value>, Vec<(ConnId, Event)>) {
        let fail = |text: &str| {
            let mut reply = error_reply(Some(json!("auth")), request_id.clone(), text);
            // inferred: SPEC §4.4 — resultCode 3 on every failed auth.
            reply.insert("resultCode".into(), json!(3));
            (reply, Vec::new())
        };
        if let Err(e) = catalog().validate("auth", params) {
            return fail(&format!("{}: {e}", error_text::INVALID_PARAMETERS));
        }
        let role = match params.get("role").and_then(Value::as_str) {
            None => None,
            Some("admin") => Some(Mode::Admin),
            Some("user") => Some(Mode::User),
            Some(other) => {
                return fail(&format!(
                    "{}: auth: role '{other}' is not admin|user",
                    error_text::INVALID_PARAMETERS
                ));
            }
        };
        let current = self.conns.get(&id).and_then(|c| c.mode);
        let credentials = params
            .get("credentials")
            .and_then(Value::as_str)
            .unwrap_or("");
        let accepted = match params.get("type").and_then(Value::as_str) {
            // inferred: an unsecured Room accepts any credentials.
            Some("secured") => pin.is_none_or(|pin| {
                (!credentials.is_empty() && credentials.eq_ignore_ascii_case(pin))
                    || self.machine.tokens.api_valid(credentials)
            }),
            Some("unsecured") => pin.is_none(),
            // SPEC §4.2: the admin→user switch carries only `role`, on an authorised connection.
            None => {
                current.is_some()
                    && role.is_some()
                    && !(current == Some(Mode::User) && role == Some(Mode::Admin))
            }
            Some(other) => {
                return fail(&format!(
                    "{}: auth: type '{other}' is not secured|unsecured",
                    error_text::INVALID_PARAMETERS
                ));
            }
        };
        if refuse || !accepted {
            return fail(error_text::WRONG_CREDENTIALS);
        }
        // inferred: SPEC §4.2 "without role the Room picks the mode"; it picks admin, since the
        // official clients send no role and use admin commands (connectToServer, login).
        let mode = role.or(current).unwrap_or(Mode::Admin);
        let mut kicks = Vec::new();
        if let Some(old) = current {
            self.owners[old.slot()] = None;
        }
        if let Some(previous) = self.owners[mode.slot()].filter(|p| *p != id) {
            // SPEC §4.6 [D]: the previous connection stays open but loses its authorisation.
            if let Some(conn) = self.conns.get_mut(&previous) {
                conn.mode = None;
            }
            kicks.push((
                previous,
                Event::from_data("authorizationNeeded", json!({"cause": 1})),
            ));
        }
        self.owners[mode.slot()] = Some(id);
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.mode = Some(mode);
        }
        let token = self.machine.tokens.issue_api();
        let http_token = self.machine.tokens.issue_http();
        let reply = json!({
            "method": "auth",
            "requestId": request_id,
            "previleges": 2,
            "token": token,
            "tokenForHttpServer": http_token,
            "result": true,
            "resultCode": 0,
        });
        (object(reply), kicks)
    }

    /// `setUsedApiVersion`, allowed before `auth` (SPEC §1; reply shape inferred there). Both
    /// versions get the v.1 shapes: v.2 only adds fields (SPEC §1), which are not simulated.
    pub(super) fn set_api_version(
        &self,
        request_id: Value,
        params: &Map<String, Value>,
    ) -> Map<String, Value> {
        let method = json!("setUsedApiVersion");
        if let Err(e) = catalog().validate("setUsedApiVersion", params) {
            let text = format!("{}: {e}", error_text::INVALID_PARAMETERS);
            return error_reply(Some(method), request_id, &text);
        }
        match params.get("version").and_then(Value::as_str) {
            Some("1" | "2") => {}
            other => {
                let text = format!(
                    "{}: setUsedApiVersion: unsupported version '{}'",
                    error_text::INVALID_PARAMETERS,
                    other.unwrap_or("")
                );
                return error_reply(Some(method), request_id, &text);
            }
        }
        let mut reply = Map::new();
        reply.insert("method".into(), method);
        reply.insert("requestId".into(), request_id);
        reply.insert("result".into(), json!(true));
        reply
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{conn, params, state};

    #[test]
    fn auth_with_pin_token_and_refusals() {
        let mut st = state(Some("1234"));
        let _rx = conn(&mut st, 1);
        let p = params(json!({"type": "secured", "credentials": "9999"}));
        let (reply, _) = st.auth(1, json!("a"), &p, Some("1234"), false);
        assert_eq!(reply["result"], json!(false));
        assert_eq!(reply["resultCode"], json!(3));
        assert_eq!(reply["error"], json!("Wrong credentials"));
        assert!(!st.is_authorised(1));

        let p = params(json!({"type": "unsecured"}));
        let (reply, _) = st.auth(1, json!(""), &p, Some("1234"), false);
        assert_eq!(reply["result"], json!(false));

        let p = params(json!({"type": "secured", "credentials": "1234"}));
        let (reply, _) = st.auth(1, json!(7), &p, Some("1234"), false);
        assert_eq!(reply["result"], json!(true));
        assert_eq!(reply["requestId"], json!(7));
        assert_eq!(reply["previleges"], json!(2));
        assert_eq!(reply["resultCode"], json!(0));
        assert!(st.is_authorised(1));

        // The issued token works as credentials on another connection.
        let token = reply["token"].as_str().unwrap().to_owned();
        let _rx2 = conn(&mut st, 2);
        let p = params(json!({"type": "secured", "credentials": token}));
        let (reply, kicks) = st.auth(2, json!(""), &p, Some("1234"), false);
        assert_eq!(reply["result"], json!(true));
        assert_eq!(kicks.len(), 1, "same mode: the first connection is kicked");
        assert_eq!(kicks[0].0, 1);
        assert_eq!(kicks[0].1.fields["cause"], json!(1));
        assert!(!st.is_authorised(1));
        assert!(st.is_authorised(2));

        // refuse_auth overrides correct credentials.
        let p = params(json!({"type": "secured", "credentials": "1234"}));
        let (reply, _) = st.auth(1, json!(""), &p, Some("1234"), true);
        assert_eq!(reply["result"], json!(false));
    }

    #[test]
    fn admin_and_user_modes_coexist_and_switch() {
        let mut st = state(None);
        let _a = conn(&mut st, 1);
        let _b = conn(&mut st, 2);
        let admin = params(json!({"type": "unsecured", "role": "admin"}));
        let user = params(json!({"type": "unsecured", "role": "user"}));
        assert!(st.auth(1, json!(""), &admin, None, false).1.is_empty());
        assert!(st.auth(2, json!(""), &user, None, false).1.is_empty());
        assert_eq!(st.authenticated(), 2);
        // Switching the admin connection to user kicks the user connection.
        let switch = params(json!({"role": "user"}));
        let (reply, kicks) = st.auth(1, json!("1"), &switch, None, false);
        assert_eq!(reply["result"], json!(true));
        assert_eq!(kicks[0].0, 2);
        assert_eq!(st.owners, [None, Some(1)]);
        // A role-only auth on an unauthorised connection fails.
        let (reply, _) = st.auth(2, json!(""), &switch, None, false);
        assert_eq!(reply["result"], json!(false));
    }

    #[test]
    fn api_version() {
        let mut st = state(None);
        let _rx = conn(&mut st, 1);
        let ok = st.set_api_version(json!(""), &params(json!({"version": "2"})));
        assert_eq!(ok["result"], json!(true));
        let bad = st.set_api_version(json!(""), &params(json!({"version": "3"})));
        assert_eq!(bad["result"], json!(false));
        assert!(
            bad["error"]
                .as_str()
                .unwrap()
                .starts_with("Invalid parameters")
        );
    }
}
