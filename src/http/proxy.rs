//! The Pingora `ProxyHttp` shell. Every request is answered in `request_filter`: the
//! gateway owns the attempt loop (Pingora's own retry replays at most 64 KiB of body and
//! commits on the first response header), so `upstream_peer` is never reached.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::domain::chat::{ChatRequest, RequestError};
use crate::domain::error::{retry_after_secs, GatewayError};
use crate::fronts::anthropic;
use crate::gateway::app::App;
use crate::gateway::attempts::{self, Answer, AnswerBody, AttemptRecord};
use crate::gateway::stream::{self, LiveStream, StreamEnd};
use crate::http::auth;
use crate::http::local::{self, Front, Route};
use crate::http::respond::{self, Framing};
use crate::obs::metrics;
use crate::obs::request_log;
use crate::state::key_pool::KeyLease;
use crate::util::body::BodyCollector;
use pingora::http::ResponseHeader;

/// Per-request context, filled as the request moves along and logged at the end.
pub struct RequestCtx {
    pub request_id: u64,
    pub started: Instant,
    pub route: Route,
    /// The API shape the client speaks: how answers and errors are written.
    pub front: Front,
    pub client: Option<String>,
    pub stream: bool,
    pub status: u16,
    pub ttfb: Option<Duration>,
    pub chosen_model: Option<String>,
    pub attempts: Vec<AttemptRecord>,
    pub client_disconnected: bool,
    pub bytes_forwarded: u64,
    pub events_forwarded: u64,
    /// How a stream ended when it failed after content had been forwarded.
    pub mid_stream_error: Option<&'static str>,
    /// Estimated prompt tokens of the routed chat body (bytes / 4).
    pub prompt_estimate: u64,
}

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

    async fn serve(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> std::result::Result<(), GatewayError> {
        let now = SystemTime::now();
        match ctx.route {
            Route::Health => {
                self.reply(session, ctx, 200, br#"{"status":"ok"}"#.to_vec())
                    .await
            }
            Route::Ready => {
                let (ready, body) = local::ready_body(&self.app, now);
                if ready {
                    return self
                        .reply(session, ctx, 200, body.to_string().into_bytes())
                        .await;
                }
                // Like every 503 the gateway writes: say when to come back.
                let wait = local::usable_again_in(&self.app, now).map_or(1, retry_after_secs);
                ctx.status = 503;
                let extra = [("retry-after", wait.to_string())];
                if let Err(e) =
                    respond::json(session, 503, body.to_string().into_bytes(), &extra).await
                {
                    log::debug!("writing a local answer failed: {e}");
                }
                Ok(())
            }
            Route::Models => {
                self.authenticate(session, ctx)?;
                let body = local::models_body(&self.app.registry.snapshot());
                self.reply(session, ctx, 200, body.to_string().into_bytes())
                    .await
            }
            Route::AdminState => {
                auth::authenticate_admin(session.req_header(), &self.app.config.auth.admin_keys)?;
                let body = local::state_body(&self.app, now);
                self.reply(session, ctx, 200, body.to_string().into_bytes())
                    .await
            }
            Route::AdminKeysReset => {
                auth::authenticate_admin(session.req_header(), &self.app.config.auth.admin_keys)?;
                self.app.keys.reset(now);
                log::info!("admin: every upstream key reset to active");
                self.reply(session, ctx, 200, br#"{"reset":true}"#.to_vec())
                    .await
            }
            Route::AdminRefresh => {
                auth::authenticate_admin(session.req_header(), &self.app.config.auth.admin_keys)?;
                let (status, body) = self.admin_refresh().await;
                self.reply(session, ctx, status, body.to_string().into_bytes())
                    .await
            }
            Route::ChatCompletions | Route::AnthropicMessages => self.chat(session, ctx).await,
            Route::AnthropicCountTokens => self.count_tokens(session, ctx).await,
            Route::AnthropicHello => {
                self.reply(session, ctx, 200, anthropic::HELLO_BODY.to_vec())
                    .await
            }
            Route::WrongMethod(allowed) => Err(GatewayError::method_not_allowed(
                session.req_header().method.as_str(),
                session.req_header().uri.path(),
                allowed,
            )),
            Route::NotFound => Err(GatewayError::not_found(session.req_header().uri.path())),
        }
    }

    fn authenticate(
        &self,
        session: &Session,
        ctx: &mut RequestCtx,
    ) -> std::result::Result<(), GatewayError> {
        let client =
            auth::authenticate_client(session.req_header(), &self.app.config.auth.client_keys)?;
        ctx.client = client.map(|c| c.name.clone());
        Ok(())
    }

    async fn reply(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        status: u16,
        body: Vec<u8>,
    ) -> std::result::Result<(), GatewayError> {
        ctx.status = status;
        if let Err(e) = respond::json(session, status, body, &[]).await {
            log::debug!("writing a local answer failed: {e}");
        }
        Ok(())
    }

    /// Refetch the list now and clear every model cooldown; report what happened.
    async fn admin_refresh(&self) -> (u16, serde_json::Value) {
        self.app.cooldowns.clear();
        let mut reports = self.app.refresh_reports.subscribe();
        // A fetch already under way started before this request: wait for the next one.
        let wanted = {
            let report = reports.borrow_and_update();
            report.generation + 1 + u64::from(report.running)
        };
        self.app.refresh_now.notify_one();
        let waited = tokio::time::timeout(
            (self.app.config.upstream.timeout + Duration::from_secs(5)) * 2,
            async {
                while reports.changed().await.is_ok() {
                    if reports.borrow().generation >= wanted {
                        break;
                    }
                }
            },
        )
        .await;
        let report = reports.borrow().clone();
        match (waited, report.result) {
            (Ok(()), Some(Ok(count))) => (
                200,
                serde_json::json!({"refreshed": true, "models": count, "cooldowns_cleared": true}),
            ),
            (Ok(()), Some(Err(e))) => (
                502,
                serde_json::json!({"refreshed": false, "error": e, "cooldowns_cleared": true}),
            ),
            _ => (
                202,
                serde_json::json!({"refreshed": false, "error": "refresh still running", "cooldowns_cleared": true}),
            ),
        }
    }

    /// Read the whole request body, at most `limits.max_body_bytes`.
    async fn read_body(&self, session: &mut Session) -> std::result::Result<Bytes, GatewayError> {
        let read = read_bounded_body(session, self.app.config.limits.max_body_bytes).await;
        if read.is_err() {
            // The rest of the body may still be on the wire: the connection cannot be reused.
            session.set_keepalive(None);
        }
        read
    }

    async fn chat(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> std::result::Result<(), GatewayError> {
        self.authenticate(session, ctx)?;
        // Right after auth, before the body is read: an over-budget client costs nothing.
        self.app
            .client_limits
            .check(ctx.client.as_deref(), Instant::now())?;
        let body = self.read_body(session).await?;
        let req = match ctx.front {
            Front::OpenAi => ChatRequest::parse(body).map_err(|e| match e {
                RequestError::InvalidJson(m) => GatewayError::invalid_json(m),
                RequestError::InvalidRequest(m) => GatewayError::invalid_request(m),
            })?,
            // Translated into a chat body, then routed exactly like one.
            Front::Anthropic => anthropic::chat_request(&body)?,
        };
        ctx.stream = req.stream;
        ctx.prompt_estimate = req.body_len() as u64 / 4;

        // Keep watching the client while upstream works: a client that leaves cancels
        // the attempt (dropping it closes the upstream connection).
        let answer = tokio::select! {
            answer = attempts::dispatch(&self.app, &req, &mut ctx.attempts) => answer?,
            _ = session.downstream_session.read_body_or_idle(true) => {
                ctx.client_disconnected = true;
                return Ok(());
            }
        };
        let Answer {
            model,
            key,
            header: upstream,
            body,
        } = answer;
        ctx.chosen_model = Some(model.clone());
        ctx.status = upstream.status.as_u16();
        match body {
            AnswerBody::Complete(body) => {
                self.complete_answer(session, ctx, &model, &upstream, body)
                    .await
            }
            AnswerBody::Stream(live) => {
                self.stream_answer(session, ctx, &model, &key, &upstream, live)
                    .await
            }
        }
        Ok(())
    }

    /// `count_tokens` (SPEC §10): a local estimate, no upstream call, and — unlike chat —
    /// no charge against the client's rpm (Claude Code fires ~27 of these at once).
    async fn count_tokens(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> std::result::Result<(), GatewayError> {
        self.authenticate(session, ctx)?;
        let body = self.read_body(session).await?;
        let answer = anthropic::count_tokens(&body)?;
        self.reply(session, ctx, 200, answer).await
    }

    async fn complete_answer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        model: &str,
        upstream: &ResponseHeader,
        body: Bytes,
    ) {
        let body = match ctx.front {
            Front::OpenAi => body,
            Front::Anthropic => {
                let (status, body) =
                    anthropic::complete_body(ctx.status, model, &body, ctx.prompt_estimate);
                ctx.status = status;
                body
            }
        };
        let header = respond::upstream_header(
            upstream,
            model,
            ctx.attempts.len(),
            Framing::Length(body.len()),
        )
        .and_then(|header| match ctx.front {
            Front::OpenAi => Ok(header),
            Front::Anthropic => anthropic::json_header(header, ctx.status),
        });
        let header = match header {
            Ok(header) => header,
            Err(e) => {
                log::error!("building the response header failed: {e}");
                return;
            }
        };
        ctx.ttfb = Some(ctx.started.elapsed());
        ctx.bytes_forwarded = body.len() as u64;
        let written = async {
            session
                .write_response_header(Box::new(header), false)
                .await?;
            session.write_response_body(Some(body), true).await
        };
        if written.await.is_err() {
            ctx.client_disconnected = true;
        }
    }

    /// Write the stream's header, then forward it; settle the model if it failed midway.
    async fn stream_answer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        model: &str,
        key: &KeyLease,
        upstream: &ResponseHeader,
        live: Box<LiveStream>,
    ) {
        let framing = if session.is_http2() {
            Framing::Streamed
        } else {
            Framing::Chunked
        };
        let header = match respond::upstream_header(upstream, model, ctx.attempts.len(), framing) {
            Ok(header) => header,
            Err(e) => {
                log::error!("building the stream header failed: {e}");
                return;
            }
        };
        if session
            .write_response_header(Box::new(header), false)
            .await
            .is_err()
        {
            ctx.client_disconnected = true;
            return;
        }
        ctx.ttfb = Some(ctx.started.elapsed());
        let idle = self.app.config.upstream.idle_timeout;
        let forwarded = match ctx.front {
            Front::OpenAi => stream::forward(session, live, idle, &self.app.client).await,
            Front::Anthropic => {
                let relay = anthropic::relay(model, ctx.prompt_estimate);
                stream::forward_with(session, live, idle, &self.app.client, relay).await
            }
        };
        ctx.bytes_forwarded = forwarded.bytes;
        ctx.events_forwarded = forwarded.events;
        ctx.client_disconnected = forwarded.end == StreamEnd::ClientGone;
        ctx.mid_stream_error = forwarded.end.label();
        let now = SystemTime::now();
        if let Some(outcome) =
            forwarded
                .end
                .outcome(&upstream.headers, now, &self.app.cooldown_policy())
        {
            attempts::settle(&self.app, model, key, &outcome, now);
        }
    }
}

async fn read_bounded_body(
    session: &mut Session,
    limit: usize,
) -> std::result::Result<Bytes, GatewayError> {
    let declared = session
        .req_header()
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(GatewayError::body_too_large(limit));
    }
    let mut body = BodyCollector::new(limit, declared.unwrap_or(0));
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => body
                .push(chunk)
                .map_err(|_| GatewayError::body_too_large(limit))?,
            Ok(None) => return Ok(body.finish()),
            Err(e) => {
                return Err(GatewayError::bad_client_request(format!(
                    "could not read the request body: {e}"
                )))
            }
        }
    }
}

/// One of the gateway's own errors, in the shape of the API the client speaks.
async fn write_error(session: &mut Session, front: Front, error: &GatewayError) -> Result<()> {
    match front {
        Front::OpenAi => respond::error(session, error).await,
        Front::Anthropic => anthropic::write_error(session, error).await,
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            request_id: self.next_id.fetch_add(1, Ordering::Relaxed),
            started: Instant::now(),
            route: Route::NotFound,
            front: Front::OpenAi,
            client: None,
            stream: false,
            status: 0,
            ttfb: None,
            chosen_model: None,
            attempts: Vec::new(),
            client_disconnected: false,
            bytes_forwarded: 0,
            events_forwarded: 0,
            mid_stream_error: None,
            prompt_estimate: 0,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let req = session.req_header();
        let path = req.uri.path_and_query().map_or("/", |p| p.as_str());
        ctx.route = local::route(req.method.as_str(), path);
        ctx.front = Front::of_path(path);
        if let Err(error) = self.serve(session, ctx).await {
            ctx.status = error.status;
            if let Err(e) = write_error(session, ctx.front, &error).await {
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
        let _ = write_error(session, ctx.front, &error).await;
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
