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
    pub fn parse(s: &str) -> Result<HttpUrl, InvalidUrl> {
        let invalid = |problem: UrlProblem| InvalidUrl {
            input: s.to_owned(),
            problem,
        };

        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(UrlProblem::Whitespace));
        }
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| invalid(UrlProblem::NoScheme))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(invalid(UrlProblem::Scheme(scheme.to_owned()))),
        };
        if rest.contains('#') {
            return Err(invalid(UrlProblem::Fragment));
        }

        let (authority, path_and_query) =
            rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        if authority.contains('@') {
            return Err(invalid(UrlProblem::Credentials));
        }
        let (host, port) = split_host_port(authority).map_err(invalid)?;
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
pub(super) fn split_host_port(authority: &str) -> Result<(String, Option<u16>), UrlProblem> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (literal, after) = bracketed.split_once(']').ok_or(UrlProblem::UnclosedIpv6)?;
            let ip: Ipv6Addr = literal
                .parse()
                .map_err(|_| UrlProblem::NotIpv6(literal.to_owned()))?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or(UrlProblem::TextAfterIpv6)?),
            };
            (ip.to_string(), port)
        }
        None => {
            let (name, port) = match authority.split_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (authority, None),
            };
            if port.is_some_and(|p| p.contains(':')) {
                return Err(UrlProblem::UnbracketedIpv6);
            }
            if name.is_empty() {
                return Err(UrlProblem::NoHost);
            }
            let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
            if !name.chars().all(valid) {
                return Err(UrlProblem::HostName(name.to_owned()));
            }
            (name.to_ascii_lowercase(), port)
        }
    };
    let port = port
        .map(|p| match p.parse::<u16>() {
            Ok(port) if port != 0 => Ok(port),
            _ => Err(UrlProblem::Port(p.to_owned())),
        })
        .transpose()?;
    Ok((host, port))
}

/// Why a config value is not an http(s) URL; `Display` quotes the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidUrl {
    pub input: String,
    pub problem: UrlProblem,
}

/// The one thing wrong with a URL, each with the text that is at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlProblem {
    Whitespace,
    NoScheme,
    Scheme(String),
    Fragment,
    Credentials,
    UnclosedIpv6,
    NotIpv6(String),
    TextAfterIpv6,
    UnbracketedIpv6,
    NoHost,
    HostName(String),
    Port(String),
}

impl fmt::Display for UrlProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlProblem::Whitespace => f.write_str("it contains whitespace"),
            UrlProblem::NoScheme => f.write_str("it does not start with http:// or https://"),
            UrlProblem::Scheme(scheme) => write!(f, "unsupported scheme {scheme:?}"),
            UrlProblem::Fragment => f.write_str("fragments (#...) are not supported"),
            // Credentials would have to become an Authorization header; secrets
            // belong in the api_keys settings instead.
            UrlProblem::Credentials => f.write_str("user:password@ in URLs is not supported"),
            UrlProblem::UnclosedIpv6 => f.write_str("the IPv6 address has no closing ']'"),
            UrlProblem::NotIpv6(literal) => write!(f, "{literal:?} is not an IPv6 address"),
            UrlProblem::TextAfterIpv6 => f.write_str("unexpected text after ']'"),
            UrlProblem::UnbracketedIpv6 => {
                f.write_str("IPv6 addresses must be written in brackets, e.g. [::1]")
            }
            UrlProblem::NoHost => f.write_str("it has no host"),
            UrlProblem::HostName(name) => write!(f, "{name:?} is not a valid host name"),
            UrlProblem::Port(port) => write!(f, "{port:?} is not a valid port (1-65535)"),
        }
    }
}

impl fmt::Display for InvalidUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an http(s) URL: {}",
            self.input, self.problem
        )
    }
}

impl std::error::Error for InvalidUrl {}

// ---------------------------------------------------------------------------
