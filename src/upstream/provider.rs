//! Where each provider is reached and how it is called (SPEC §12): base URL, the extra
//! request headers, and its [`Quirks`]. OpenRouter (`upstream:`) is index 0.

use std::sync::Arc;

use crate::config::{Config, HttpUrl, OPENROUTER};
use crate::domain::provider::Quirks;

/// One upstream provider, as an attempt needs it.
#[derive(Debug, Clone)]
pub struct Provider {
    pub name: Arc<str>,
    /// `/chat/completions` is appended.
    pub base_url: HttpUrl,
    /// Sent with every request besides auth and content negotiation.
    pub headers: Vec<(String, String)>,
    pub quirks: Quirks,
}

/// Every provider, by [`crate::domain::catalogue::ProviderIndex`].
pub fn providers(config: &Config) -> Vec<Provider> {
    let openrouter = Provider {
        name: Arc::from(OPENROUTER),
        base_url: config.upstream.base_url.clone(),
        // OpenRouter's app attribution header.
        headers: vec![("x-title".to_string(), "free-llm-proxy".to_string())],
        quirks: Quirks::OPENROUTER,
    };
    std::iter::once(openrouter)
        .chain(config.providers.iter().map(|p| Provider {
            name: Arc::from(p.name.as_str()),
            base_url: p.base_url.clone(),
            headers: p.headers.clone(),
            quirks: Quirks::OPENAI_COMPATIBLE,
        }))
        .collect()
}
