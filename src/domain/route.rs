//! Which endpoint a request is for (SPEC §3), and which API shape answers it. Matches the
//! path only; a query string (`?beta=true`) is ignored.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    ChatCompletions,
    /// `POST /v1/responses` (SPEC §13).
    Responses,
    /// `POST /anthropic/v1/messages` (SPEC §10).
    AnthropicMessages,
    /// `POST /anthropic/v1/messages/count_tokens`: answered locally.
    AnthropicCountTokens,
    /// `HEAD/GET /anthropic/api/hello` and `HEAD /anthropic` (the base URL itself): Claude
    /// Code's start-up connectivity probes, answered without auth.
    AnthropicHello,
    Models,
    Health,
    Ready,
    AdminRefresh,
    AdminState,
    AdminKeysReset,
    /// The path exists but not for this method; carries the allowed method.
    WrongMethod(&'static str),
    NotFound,
}

impl Route {
    /// Label used in logs and metrics (bounded set; never the raw path).
    pub fn label(self) -> &'static str {
        match self {
            Route::ChatCompletions => "chat_completions",
            Route::Responses => "responses",
            Route::AnthropicMessages => "anthropic_messages",
            Route::AnthropicCountTokens => "anthropic_count_tokens",
            Route::AnthropicHello => "anthropic_hello",
            Route::Models => "models",
            Route::Health => "health",
            Route::Ready => "ready",
            Route::AdminRefresh => "admin_refresh",
            Route::AdminState => "admin_state",
            Route::AdminKeysReset => "admin_keys_reset",
            Route::WrongMethod(_) => "wrong_method",
            Route::NotFound => "not_found",
        }
    }
}

/// Match on the path only; any query string (`?beta=true`) is ignored.
pub fn route(method: &str, path_and_query: &str) -> Route {
    let path = path_and_query.split('?').next().unwrap_or_default();
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let path = path
        .strip_prefix("/api")
        .filter(|p| p.starts_with("/v1/"))
        .unwrap_or(path);
    let (wanted, route) = match path {
        "/v1/chat/completions" => ("POST", Route::ChatCompletions),
        "/v1/responses" => ("POST", Route::Responses),
        "/anthropic/v1/messages" => ("POST", Route::AnthropicMessages),
        "/anthropic/v1/messages/count_tokens" => ("POST", Route::AnthropicCountTokens),
        "/anthropic/api/hello" | "/anthropic" => ("GET", Route::AnthropicHello),
        "/v1/models" => ("GET", Route::Models),
        "/health" => ("GET", Route::Health),
        "/ready" => ("GET", Route::Ready),
        "/admin/refresh" => ("POST", Route::AdminRefresh),
        "/admin/state" => ("GET", Route::AdminState),
        "/admin/keys/reset" => ("POST", Route::AdminKeysReset),
        _ => return Route::NotFound,
    };
    let method_ok = method == wanted || (wanted == "GET" && method == "HEAD");
    if method_ok {
        route
    } else {
        Route::WrongMethod(wanted)
    }
}

/// Which API shape a request speaks: decides how answers and errors are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontKind {
    OpenAi,
    Anthropic,
    /// OpenAI Responses (SPEC §13): its errors are in the OpenAI shape too.
    Responses,
}

impl FrontKind {
    /// Everything under `/anthropic/` (unknown paths included) answers in the Anthropic
    /// shape, so Claude Code can read every error; `/v1/responses` is the Responses front.
    pub fn of_path(path_and_query: &str) -> FrontKind {
        let path = path_and_query.split('?').next().unwrap_or_default();
        if path == "/anthropic" || path.starts_with("/anthropic/") {
            FrontKind::Anthropic
        } else if matches!(
            path.trim_end_matches('/'),
            "/v1/responses" | "/api/v1/responses"
        ) {
            FrontKind::Responses
        } else {
            FrontKind::OpenAi
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_table() {
        let cases = [
            ("POST", "/v1/chat/completions", Route::ChatCompletions),
            (
                "POST",
                "/api/v1/chat/completions?beta=true",
                Route::ChatCompletions,
            ),
            ("POST", "/v1/chat/completions/", Route::ChatCompletions),
            ("POST", "/v1/responses", Route::Responses),
            ("POST", "/api/v1/responses", Route::Responses),
            ("GET", "/v1/responses", Route::WrongMethod("POST")),
            ("POST", "/v1/responses/resp_1", Route::NotFound),
            ("GET", "/v1/chat/completions", Route::WrongMethod("POST")),
            ("GET", "/v1/models", Route::Models),
            ("GET", "/api/v1/models", Route::Models),
            ("HEAD", "/health", Route::Health),
            ("GET", "/ready", Route::Ready),
            ("POST", "/admin/refresh", Route::AdminRefresh),
            ("GET", "/admin/state", Route::AdminState),
            ("POST", "/admin/keys/reset", Route::AdminKeysReset),
            ("POST", "/anthropic/v1/messages", Route::AnthropicMessages),
            (
                "POST",
                "/anthropic/v1/messages?beta=true",
                Route::AnthropicMessages,
            ),
            (
                "POST",
                "/anthropic/v1/messages/count_tokens?beta=true",
                Route::AnthropicCountTokens,
            ),
            ("GET", "/anthropic/v1/messages", Route::WrongMethod("POST")),
            ("HEAD", "/anthropic/api/hello", Route::AnthropicHello),
            ("GET", "/anthropic/api/hello", Route::AnthropicHello),
            ("HEAD", "/anthropic", Route::AnthropicHello),
            ("HEAD", "/anthropic/", Route::AnthropicHello),
            ("POST", "/v1/messages", Route::NotFound),
            ("GET", "/api/health", Route::NotFound),
            ("GET", "/", Route::NotFound),
            ("GET", "/v1/modelsx", Route::NotFound),
        ];
        for (method, path, want) in cases {
            assert_eq!(route(method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn front_by_path() {
        let cases = [
            ("/anthropic/v1/messages?beta=true", FrontKind::Anthropic),
            ("/anthropic/nope", FrontKind::Anthropic),
            ("/anthropic", FrontKind::Anthropic),
            ("/anthropicx/v1/messages", FrontKind::OpenAi),
            ("/v1/chat/completions?x=/anthropic/", FrontKind::OpenAi),
            ("/v1/responses", FrontKind::Responses),
            ("/api/v1/responses/?stream=1", FrontKind::Responses),
            ("/v1/responses/resp_1", FrontKind::OpenAi),
        ];
        for (path, want) in cases {
            assert_eq!(FrontKind::of_path(path), want, "{path}");
        }
    }
}
