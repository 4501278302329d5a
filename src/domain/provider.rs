//! What differs between upstream providers, as data (SPEC §12): whose free limit a
//! request spends, and how a 429 is read. The attempt loop and the classifier consult a
//! [`Quirks`] value; nothing branches on a provider's name.

/// Whose free limit a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    /// One account across all models (OpenRouter: keys of one account share it). A
    /// 429 that is not the daily cap is the model's shared capacity: the endpoint cools.
    Account,
    /// One key and one model (Groq, Cerebras, Gemini …): any 429 rests that key for
    /// that endpoint only.
    KeyAndModel,
}

/// A provider's behaviour, as the gateway needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quirks {
    pub limit_scope: LimitScope,
    /// Learn the daily limit from `GET {base_url}/key` (OpenRouter).
    pub learns_daily_limit: bool,
}

impl Quirks {
    pub const OPENROUTER: Quirks = Quirks {
        limit_scope: LimitScope::Account,
        learns_daily_limit: true,
    };
    /// Any other OpenAI-compatible free tier.
    pub const OPENAI_COMPATIBLE: Quirks = Quirks {
        limit_scope: LimitScope::KeyAndModel,
        learns_daily_limit: false,
    };
}
