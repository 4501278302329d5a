//! The Pingora `ProxyHttp` shell. Every request is answered in `request_filter`: the
//! gateway owns the attempt loop (Pingora's own retry replays at most 64 KiB of body and
//! commits on the first response header), so `upstream_peer` is never reached.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::domain::error::GatewayError;
use crate::domain::route::{route, FrontKind};
use crate::fronts;
use crate::gateway::app::App;
use crate::gateway::ctx::RequestCtx;
use crate::http::{handlers, respond};
use crate::obs::{metrics, request_log};

pub struct Gateway {
    app: Arc<App>,
    next_id: AtomicU64,
}

impl Gateway {
    pub fn new(app: Arc<App>) -> Self {
        Gateway {
            app,
            next_id: AtomicU64::new(1),
        }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.next_id.fetch_add(1, Ordering::Relaxed), Instant::now())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let req = session.req_header();
        let path = req.uri.path_and_query().map_or("/", |p| p.as_str());
        ctx.route = route(req.method.as_str(), path);
        ctx.front = FrontKind::of_path(path);
        let front = fronts::front(ctx.front);
        if let Err(error) = handlers::serve(&self.app, front, session, ctx).await {
            ctx.status = error.status;
            if let Err(e) = respond::error(session, front, &error).await {
                log::debug!("writing an error answer failed: {e}");
            }
        }
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        // Every request is answered in `request_filter`.
        Error::e_explain(
            ErrorType::InternalError,
            "free-llm-proxy answers every request in request_filter",
        )
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let error = match e.etype() {
            ErrorType::HTTPStatus(400) | ErrorType::InvalidHTTPHeader => {
                GatewayError::bad_client_request("malformed HTTP request")
            }
            ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed => {
                ctx.client_disconnected = true;
                return FailToProxy {
                    error_code: 0,
                    can_reuse_downstream: false,
                };
            }
            _ => GatewayError::internal("the gateway could not handle this request"),
        };
        ctx.status = error.status;
        let _ = respond::error(session, fronts::front(ctx.front), &error).await;
        FailToProxy {
            error_code: error.status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, _session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        request_log::emit(ctx);
        metrics::record(&self.app, ctx);
    }
}
