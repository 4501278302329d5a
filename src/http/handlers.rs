//! One handler per route (SPEC §3): the gateway's own endpoints answered locally, and the
//! chat routes run through the client's front and the attempt loop.

use std::time::{Duration, Instant, SystemTime};

use pingora::proxy::Session;

use crate::domain::error::{retry_after_secs, GatewayError};
use crate::domain::route::Route;
use crate::fronts::{anthropic, Front, Translated};
use crate::gateway::app::App;
use crate::gateway::attempts::{self, Answer, AnswerBody};
use crate::gateway::ctx::RequestCtx;
use crate::http::respond::Served;
use crate::http::{answer, auth, body, local, respond};

/// Answer the request of `ctx.route`. An `Err` is written by the shell in the front's shape.
pub async fn serve(
    app: &App,
    front: &dyn Front,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<(), GatewayError> {
    let now = SystemTime::now();
    let admin_keys = &app.config.auth.admin_keys;
    match ctx.route {
        Route::Health => reply(session, ctx, 200, br#"{"status":"ok"}"#.to_vec(), &[]).await,
        Route::Ready => {
            let (ready, body) = local::ready_body(app, now);
            let body = body.to_string().into_bytes();
            if ready {
                return reply(session, ctx, 200, body, &[]).await;
            }
            // Like every 503 the gateway writes: say when to come back.
            let wait = app.state.usable_again_in(now).map_or(1, retry_after_secs);
            reply(
                session,
                ctx,
                503,
                body,
                &[("retry-after", wait.to_string())],
            )
            .await
        }
        Route::Models => {
            authenticate(app, session, ctx)?;
            let names: Vec<&str> = app.providers.iter().map(|p| &*p.name).collect();
            let body = local::models_body(
                &app.state.registry.snapshot(),
                &app.state.registry.catalogue(),
                &names,
            );
            reply(session, ctx, 200, body.to_string().into_bytes(), &[]).await
        }
        Route::AdminState => {
            auth::authenticate_admin(session.req_header(), admin_keys)?;
            let body = local::state_body(app, now);
            reply(session, ctx, 200, body.to_string().into_bytes(), &[]).await
        }
        Route::AdminKeysReset => {
            auth::authenticate_admin(session.req_header(), admin_keys)?;
            for pool in &app.state.pools {
                pool.reset(now);
            }
            log::info!("admin: every upstream key reset to active");
            reply(session, ctx, 200, br#"{"reset":true}"#.to_vec(), &[]).await
        }
        Route::AdminRefresh => {
            auth::authenticate_admin(session.req_header(), admin_keys)?;
            let (status, body) = admin_refresh(app).await;
            reply(session, ctx, status, body.to_string().into_bytes(), &[]).await
        }
        Route::ChatCompletions | Route::AnthropicMessages | Route::Responses => {
            chat(app, front, session, ctx).await
        }
        Route::AnthropicCountTokens => {
            // A local estimate, no upstream call, and — unlike chat — no charge against
            // the client's rpm (SPEC §10: Claude Code fires ~27 of these at once).
            authenticate(app, session, ctx)?;
            let body = body::read(session, app.config.limits.max_body_bytes).await?;
            let answer = anthropic::count_tokens(&body)?;
            reply(session, ctx, 200, answer, &[]).await
        }
        Route::AnthropicHello => {
            reply(session, ctx, 200, anthropic::HELLO_BODY.to_vec(), &[]).await
        }
        Route::WrongMethod(allowed) => Err(GatewayError::method_not_allowed(
            session.req_header().method.as_str(),
            session.req_header().uri.path(),
            allowed,
        )),
        Route::NotFound => Err(GatewayError::not_found(session.req_header().uri.path())),
    }
}

fn authenticate(app: &App, session: &Session, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    let client = auth::authenticate_client(session.req_header(), &app.config.auth.client_keys)?;
    ctx.client = client.map(|c| c.name.clone());
    Ok(())
}

/// One of the gateway's own JSON answers; a client gone meanwhile is only logged.
async fn reply(
    session: &mut Session,
    ctx: &mut RequestCtx,
    status: u16,
    body: Vec<u8>,
    extra: &[(&'static str, String)],
) -> Result<(), GatewayError> {
    ctx.status = status;
    if let Err(e) = respond::json(session, status, body, extra).await {
        log::debug!("writing a local answer failed: {e}");
    }
    Ok(())
}

/// A chat request of any front: auth, rpm, body, the attempt loop, the answer.
async fn chat(
    app: &App,
    front: &dyn Front,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<(), GatewayError> {
    authenticate(app, session, ctx)?;
    // Right after auth, before the body is read: an over-budget client costs nothing.
    app.state
        .client_limits
        .check(ctx.client.as_deref(), Instant::now())?;
    let body = body::read(session, app.config.limits.max_body_bytes).await?;
    let Translated { chat: req, reply } = front.parse(body)?;
    ctx.stream = req.stream;
    ctx.prompt_estimate = req.prompt_estimate();

    // Keep watching the client while upstream works: a client that leaves cancels
    // the attempt (dropping it closes the upstream connection).
    let answer = tokio::select! {
        answer = attempts::dispatch(app, &req, &mut ctx.attempts) => answer?,
        _ = session.downstream_session.read_body_or_idle(true) => {
            ctx.client_disconnected = true;
            return Ok(());
        }
    };
    let Answer {
        model,
        endpoint,
        key,
        header: upstream,
        body,
    } = answer;
    let provider = app.provider_name(endpoint.provider).to_string();
    ctx.chosen_model = Some(model.clone());
    ctx.chosen_provider = Some(provider.as_str().into());
    ctx.status = upstream.status.as_u16();
    let served = Served {
        model: &model,
        provider: &provider,
        attempts: ctx.attempts.len(),
    };
    match body {
        AnswerBody::Complete(body) => {
            answer::complete(session, ctx, &*reply, served, &upstream, body).await
        }
        AnswerBody::Stream(live) => {
            let settle_against = (served, &endpoint, &key);
            answer::stream(session, ctx, app, &*reply, settle_against, &upstream, live).await
        }
    }
    Ok(())
}

/// Refetch the list now and clear every model cooldown; report what happened.
async fn admin_refresh(app: &App) -> (u16, serde_json::Value) {
    app.state.cooldowns.clear();
    let mut reports = app.state.refresh_reports.subscribe();
    // A fetch already under way started before this request: wait for the next one.
    let wanted = {
        let report = reports.borrow_and_update();
        report.generation + 1 + u64::from(report.running)
    };
    app.state.refresh_now.notify_one();
    let waited = tokio::time::timeout(
        (app.config.upstream.timeout + Duration::from_secs(5)) * 2,
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
            serde_json::json!({"refreshed": false, "error": e.to_string(), "cooldowns_cleared": true}),
        ),
        _ => (
            202,
            serde_json::json!({"refreshed": false, "error": "refresh still running", "cooldowns_cleared": true}),
        ),
    }
}
