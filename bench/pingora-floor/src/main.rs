//! pingora-floor: the plainest Pingora 0.9 reverse proxy. Every request goes to one
//! upstream (HTTP/1.1, pooled keep-alive connections); no body reading, no logging.
//! bench/run.sh measures it beside nginx and the gateway: what Pingora itself costs.
//!
//! usage: pingora-floor LISTEN_ADDR UPSTREAM_ADDR THREADS

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

struct Floor {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream.as_str(), false, String::new())))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (listen, upstream, threads) = match args.as_slice() {
        [_, l, u, t] => (l.clone(), u.clone(), t.parse().expect("THREADS")),
        _ => {
            eprintln!("usage: pingora-floor LISTEN_ADDR UPSTREAM_ADDR THREADS");
            std::process::exit(2);
        }
    };
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(1),
        pid_file: format!("/tmp/pingora-floor-{}.pid", std::process::id()),
        upgrade_sock: format!("/tmp/pingora-floor-{}.sock", std::process::id()),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, Floor { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
