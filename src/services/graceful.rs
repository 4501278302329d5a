//! No request lost when a graceful shutdown or upgrade begins.
//!
//! When Pingora 0.9 starts a graceful shutdown (SIGTERM, or the old process of a `-u`
//! upgrade after its 5 s hand-over), each listening service stops accepting and then
//! runs its app's `cleanup`, which for an HTTP proxy drops at once every connection
//! still waiting for a request head: idle keep-alive connections, and connections
//! accepted a moment earlier whose request is still on the wire. A client writing to
//! one of those gets a reset — a failed request in the middle of a "zero-downtime"
//! upgrade (measured by `tests/upgrade.sh`: about one per concurrent keep-alive client,
//! and now and then one with a fresh connection per request).
//!
//! [`Lingering`] waits [`LINGER`] before that `cleanup`. Meanwhile such connections are
//! still served: a request that arrives gets its answer with `Connection: close`
//! (Pingora turns keep-alive off once shutdown started), so busy clients move to new
//! connections, which the listening socket now hands to the new process. Only
//! connections idle for the whole linger are dropped, and a client pool notices such a
//! closed connection before reusing it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::proxy::{HttpProxy, ProxyHttp};
use pingora::server::configuration::ServerConf;
use pingora::server::ShutdownWatch;
use pingora::services::listening::Service;

/// How long connections waiting for a request head are still served after shutdown
/// began: a request head in flight on loopback or a LAN arrives well within it. The
/// process keeps running for `server.grace_period_seconds` anyway; a linger longer than
/// that is cut short by the runtime shutdown, which closes the connections the same way.
pub const LINGER: Duration = Duration::from_secs(2);

/// A [`ServerApp`] that delays its inner app's `cleanup` by `linger`.
pub struct Lingering<A> {
    inner: Arc<A>,
    linger: Duration,
}

impl<A> Lingering<A> {
    pub fn new(inner: A, linger: Duration) -> Self {
        Lingering {
            inner: Arc::new(inner),
            linger,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Lingering<A> {
    async fn process_new(
        self: &Arc<Self>,
        session: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        self.inner.process_new(session, shutdown).await
    }

    async fn cleanup(&self) {
        tokio::time::sleep(self.linger).await;
        self.inner.cleanup().await;
    }
}

/// `pingora::proxy::http_proxy_service_with_name`, with the cleanup delayed by [`LINGER`].
pub fn proxy_service<SV>(
    conf: &Arc<ServerConf>,
    inner: SV,
    name: &str,
) -> Service<Lingering<HttpProxy<SV>>>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    let mut proxy = HttpProxy::new(inner, conf.clone());
    proxy.handle_init_modules();
    Service::new(name.to_string(), Lingering::new(proxy, LINGER))
}
