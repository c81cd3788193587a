//! The control surface on `[http] listen`: the WebSocket API at `/api` and its description at
//! `/api/schema`, both behind `http.auth_token` ([`super::auth`]). Served by the same HTTP
//! server as `/healthz` ([`crate::health`]), which stays open for probes.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{auth, schema, ws};
use crate::bridge::Bridge;
use crate::secret::Secret;

/// WebSocket clients connected at once; past it a new one is answered 503.
pub const MAX_WS_CLIENTS: usize = 32;

/// What the control routes share.
pub struct Web {
    /// The bridge.
    pub bridge: Arc<Bridge>,
    /// `http.auth_token`; `None` only on a loopback listener.
    pub token: Option<Secret>,
    /// Free WebSocket slots.
    pub(super) slots: Arc<Semaphore>,
    /// Ends every session.
    pub(super) shutdown: CancellationToken,
}

impl Web {
    /// The control surface of `bridge`, with its token.
    pub fn new(
        bridge: Arc<Bridge>,
        token: Option<Secret>,
        shutdown: CancellationToken,
    ) -> Arc<Web> {
        Arc::new(Web {
            bridge,
            token,
            slots: Arc::new(Semaphore::new(MAX_WS_CLIENTS)),
            shutdown,
        })
    }

    /// `Ok` when the request carries the token (or none is needed); else the 401 to answer.
    /// For every control route, the web UI's included.
    #[allow(clippy::result_large_err)]
    pub fn authorize(&self, headers: &HeaderMap, query: Option<&str>) -> Result<(), Response> {
        let given = auth::from_request(headers, query);
        if auth::allowed(self.token.as_ref(), given.as_deref()) {
            return Ok(());
        }
        self.bridge.hub().refused();
        let why = if given.is_some() {
            "wrong token"
        } else {
            "this endpoint needs http.auth_token: send it as ?token=… or Authorization: Bearer …"
        };
        Err((
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            format!("{why}\n"),
        )
            .into_response())
    }
}

/// The control routes, to merge into the HTTP server's router.
pub fn routes(web: Arc<Web>) -> Router {
    Router::new()
        .route("/api", get(api))
        .route("/api/schema", get(schema_route))
        .merge(crate::web::routes(web.clone()))
        .with_state(web)
}

async fn api(State(web): State<Arc<Web>>, request: Request) -> Response {
    if let Err(refused) = web.authorize(request.headers(), request.uri().query()) {
        return refused;
    }
    ws::upgrade(web, request)
}

async fn schema_route(State(web): State<Arc<Web>>, request: Request<Body>) -> Response {
    if let Err(refused) = web.authorize(request.headers(), request.uri().query()) {
        return refused;
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        schema::schema(&web.bridge).to_string(),
    )
        .into_response()
}
