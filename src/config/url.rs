//! `HttpUrl`: the http(s) URLs of the config (upstream base, list source, key CSV).

use std::fmt;
use std::net::Ipv6Addr;

// HttpUrl
// ---------------------------------------------------------------------------

/// A parsed http(s) URL: what the gateway needs to open a connection and
/// build a request line.
///
/// Scheme and host are stored lowercase and an explicit default port is not
/// remembered, so `Display` prints the canonical form of the input; parsing
/// that text again gives an equal value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpUrl {
    pub tls: bool,
    /// Lowercase host name or IP literal; IPv6 without brackets.
    pub host: String,
    /// Explicit port, else 443 for https and 80 for http.
    pub port: u16,
    /// Path without trailing `/` (`""` for none), followed by the `?query`
    /// when the URL has one.
    pub path: String,
}

impl HttpUrl {
    /// Parses an absolute `http://` or `https://` URL. The error quotes the
    /// input and says what is wrong with it.
    pub fn parse(s: &str) -> Result<HttpUrl, String> {
        let invalid = |why: &str| format!("{s:?} is not an http(s) URL: {why}");

        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("it contains whitespace"));
        }
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| invalid("it does not start with http:// or https://"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(invalid(&format!("unsupported scheme {scheme:?}"))),
        };
        if rest.contains('#') {
            return Err(invalid("fragments (#...) are not supported"));
        }

        let (authority, path_and_query) =
            rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        if authority.contains('@') {
            // Credentials would have to become an Authorization header; keep
            // secrets in the api_keys settings instead.
            return Err(invalid("user:password@ in URLs is not supported"));
        }
        let (host, port) = split_host_port(authority).map_err(|why| invalid(&why))?;
        let port = port.unwrap_or(if tls { 443 } else { 80 });

        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query).filter(|q| !q.is_empty())),
            None => (path_and_query, None),
        };
        // Callers append to the path ("/chat/completions"), so a trailing
        // slash would double up.
        let path = path.trim_end_matches('/');
        let path = match query {
            // A request target needs a path before the query.
            Some(query) if path.is_empty() => format!("/?{query}"),
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        };

        Ok(HttpUrl {
            tls,
            host,
            port,
            path,
        })
    }

    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    pub(super) fn default_port(&self) -> u16 {
        if self.tls {
            443
        } else {
            80
        }
    }

    /// The `Host` header value: the host, plus `:port` when the port is not
    /// the scheme's default; IPv6 literals in brackets.
    pub fn host_header(&self) -> String {
        if self.port == self.default_port() {
            self.bracketed_host()
        } else {
            self.authority()
        }
    }

    /// `host:port` with the port always present (IPv6 in brackets): the
    /// address to connect to.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.bracketed_host(), self.port)
    }

    /// The path for a request line: `path`, or `/` when it is empty.
    pub fn request_target(&self) -> &str {
        if self.path.is_empty() {
            "/"
        } else {
            &self.path
        }
    }

    pub(super) fn bracketed_host(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme(), self.host_header(), self.path)
    }
}

/// Splits a URL authority into a canonical host (lowercase; IPv6 without
/// brackets) and an optional port.
pub(super) fn split_host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (literal, after) = bracketed
                .split_once(']')
                .ok_or("the IPv6 address has no closing ']'")?;
            let ip: Ipv6Addr = literal
                .parse()
                .map_err(|_| format!("{literal:?} is not an IPv6 address"))?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or("unexpected text after ']'")?),
            };
            (ip.to_string(), port)
        }
        None => {
            let (name, port) = match authority.split_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (authority, None),
            };
            if port.is_some_and(|p| p.contains(':')) {
                return Err("IPv6 addresses must be written in brackets, e.g. [::1]".to_owned());
            }
            if name.is_empty() {
                return Err("it has no host".to_owned());
            }
            let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
            if !name.chars().all(valid) {
                return Err(format!("{name:?} is not a valid host name"));
            }
            (name.to_ascii_lowercase(), port)
        }
    };
    let port = port
        .map(|p| match p.parse::<u16>() {
            Ok(port) if port != 0 => Ok(port),
            _ => Err(format!("{p:?} is not a valid port (1-65535)")),
        })
        .transpose()?;
    Ok((host, port))
}

// ---------------------------------------------------------------------------
