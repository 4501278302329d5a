//! Writing the chosen upstream answer downstream, through the client's front (its [`Reply`]): a complete
//! body translated at once, or a stream relayed chunk by chunk (SPEC §6).

use std::time::SystemTime;

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::domain::catalogue::Endpoint;
use crate::fronts::Reply;
use crate::gateway::app::App;
use crate::gateway::attempts;
use crate::gateway::ctx::RequestCtx;
use crate::gateway::stream::{self, LiveStream, StreamEnd};
use crate::http::respond::{self, Framing, Served};
use crate::state::key_pool::KeyLease;

/// A complete upstream answer, translated by the front.
pub async fn complete(
    session: &mut Session,
    ctx: &mut RequestCtx,
    reply: &dyn Reply,
    served: Served<'_>,
    upstream: &ResponseHeader,
    body: Bytes,
) {
    let answer = reply.complete(ctx.status, served.model, body);
    ctx.status = answer.status;
    let header = respond::upstream_header(upstream, served, Framing::Length(answer.body.len()))
        .and_then(|mut header| {
            header.set_status(answer.status)?;
            if let Some(content_type) = answer.content_type {
                header.insert_header("content-type", content_type)?;
            }
            Ok(header)
        });
    let header = match header {
        Ok(header) => header,
        Err(e) => {
            log::error!("building the response header failed: {e}");
            return;
        }
    };
    ctx.ttfb = Some(ctx.started.elapsed());
    ctx.bytes_forwarded = answer.body.len() as u64;
    let written = async {
        session
            .write_response_header(Box::new(header), false)
            .await?;
        session.write_response_body(Some(answer.body), true).await
    };
    if written.await.is_err() {
        ctx.client_disconnected = true;
    }
}

/// Write the stream's header, then relay it; settle the model if it failed midway.
pub async fn stream(
    session: &mut Session,
    ctx: &mut RequestCtx,
    app: &App,
    reply: &dyn Reply,
    (served, endpoint, key): (Served<'_>, &Endpoint, &KeyLease),
    upstream: &ResponseHeader,
    live: Box<LiveStream>,
) {
    let model = served.model;
    let framing = if session.is_http2() {
        Framing::Streamed
    } else {
        Framing::Chunked
    };
    let header = match respond::upstream_header(upstream, served, framing) {
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
    let idle = app.config.upstream.idle_timeout;
    let relay = reply.relay(model);
    let forwarded = stream::forward_with(session, live, idle, &app.client, relay).await;
    ctx.bytes_forwarded = forwarded.bytes;
    ctx.events_forwarded = forwarded.events;
    ctx.client_disconnected = forwarded.end == StreamEnd::ClientGone;
    ctx.mid_stream_error = forwarded.end.label();
    let now = SystemTime::now();
    if let Some(outcome) = forwarded.end.outcome(
        &upstream.headers,
        now,
        &app.cooldown_policy(endpoint.provider),
    ) {
        if let Some(pool) = app.state.pool(endpoint.provider) {
            attempts::settle(
                &app.state.cooldowns,
                pool,
                endpoint,
                served.provider,
                key,
                &outcome,
                now,
            );
        }
    }
}
