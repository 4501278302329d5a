//! The routed models and who serves them (SPEC §12): the ranked list, with every
//! provider's extra models put in their place, and for each model its *endpoints* —
//! (provider, the provider's own id) — in `routing.provider_order`.
//!
//! Built once per list snapshot from the list and the configured providers; requests
//! only read it. Pure: no state, no clock.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{DeclaredCapabilities, ExtraModel, ProviderModel, ProviderSettings};
use crate::domain::models::{Capabilities, Model, ModelList};

/// Index of a provider: 0 is OpenRouter (`upstream:`), `i + 1` is `providers[i]`.
pub type ProviderIndex = usize;

/// OpenRouter's index.
pub const OPENROUTER_INDEX: ProviderIndex = 0;

/// One way to reach a model: a provider and the id that provider knows it by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub provider: ProviderIndex,
    pub provider_model: Arc<str>,
}

/// A model as routing sees it: what it can do (for the capability filter and context
/// fit, §4) and where it is served.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutedModel {
    pub model: Model,
    /// In provider order; never empty.
    pub endpoints: Vec<Endpoint>,
    /// Described by a provider, not by the list.
    pub extra: bool,
}

/// Every routed model in rank order, and the list's fallback.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Catalogue {
    pub models: Vec<RoutedModel>,
    pub fallback: Option<RoutedModel>,
}

impl Catalogue {
    /// The routed model with this id (the fallback included).
    pub fn get(&self, id: &str) -> Option<&RoutedModel> {
        self.models
            .iter()
            .chain(self.fallback.as_ref())
            .find(|m| m.model.id == id)
    }
}

/// The §4 defaults for flags a provider's model entry leaves out: `tool_choice`,
/// `response_format`, `seed` and `stop` count as supported, the rest as not.
pub fn declared_capabilities(declared: &DeclaredCapabilities) -> Capabilities {
    Capabilities {
        tools: declared.tools.unwrap_or(false),
        tool_choice: declared.tool_choice.unwrap_or(true),
        structured_outputs: declared.structured_outputs.unwrap_or(false),
        response_format: declared.response_format.unwrap_or(true),
        reasoning: declared.reasoning.unwrap_or(false),
        seed: declared.seed.unwrap_or(true),
        stop: declared.stop.unwrap_or(true),
    }
}

/// Provider indices in the order `routing.provider_order` names them; providers it
/// leaves out follow in default order (OpenRouter, then file order).
pub fn resolve_order(names: &[String], providers: &[ProviderSettings]) -> Vec<ProviderIndex> {
    let index_of = |name: &str| {
        if name == crate::config::OPENROUTER {
            Some(OPENROUTER_INDEX)
        } else {
            providers.iter().position(|p| p.name == name).map(|i| i + 1)
        }
    };
    let mut order: Vec<ProviderIndex> = Vec::new();
    for index in names
        .iter()
        .filter_map(|n| index_of(n))
        .chain(0..=providers.len())
    {
        if !order.contains(&index) {
            order.push(index);
        }
    }
    order
}

/// Build the catalogue. `order` lists provider indices in `routing.provider_order`;
/// a provider missing from it comes last.
pub fn build(
    list: &ModelList,
    providers: &[ProviderSettings],
    order: &[ProviderIndex],
) -> Catalogue {
    let position = |p: ProviderIndex| order.iter().position(|&o| o == p).unwrap_or(usize::MAX);

    // Listed ids (the fallback included) → the providers naming them in `same_as`.
    let mut same_as: HashMap<&str, Vec<Endpoint>> = HashMap::new();
    // Extra models in file order, grouped by the listed id they follow (`None` = at the end).
    let mut extras: Vec<(Option<&str>, &ExtraModel, Endpoint)> = Vec::new();
    for (i, provider) in providers.iter().enumerate() {
        let index = i + 1;
        for entry in &provider.models {
            match entry {
                ProviderModel::SameAs { listed_id, id, .. } => {
                    same_as.entry(listed_id).or_default().push(Endpoint {
                        provider: index,
                        provider_model: Arc::from(id.as_str()),
                    })
                }
                ProviderModel::Extra(extra) => extras.push((
                    extra.after.as_deref(),
                    extra,
                    Endpoint {
                        provider: index,
                        provider_model: Arc::from(extra.id.as_str()),
                    },
                )),
            }
        }
    }

    let served = |model: &Model, same_as: &HashMap<&str, Vec<Endpoint>>| {
        let mut endpoints = vec![Endpoint {
            provider: OPENROUTER_INDEX,
            provider_model: Arc::from(model.id.as_str()),
        }];
        endpoints.extend(
            same_as
                .get(model.id.as_str())
                .into_iter()
                .flatten()
                .cloned(),
        );
        endpoints.sort_by_key(|e| position(e.provider));
        RoutedModel {
            model: model.clone(),
            endpoints,
            extra: false,
        }
    };

    let listed: Vec<&str> = list.models.iter().map(|m| m.id.as_str()).collect();
    let mut models: Vec<RoutedModel> = Vec::new();
    let add_extra = |models: &mut Vec<RoutedModel>, extra: &ExtraModel, endpoint: &Endpoint| {
        // The same id described twice (or naming a listed model) is one model with
        // more endpoints; the first description wins.
        if let Some(existing) = models.iter_mut().find(|m| m.model.id == extra.id) {
            if !existing.endpoints.contains(endpoint) {
                existing.endpoints.push(endpoint.clone());
                existing.endpoints.sort_by_key(|e| position(e.provider));
            }
            return;
        }
        models.push(RoutedModel {
            model: Model {
                id: extra.id.clone(),
                rank: 0,
                context_length: extra.context_length,
                max_completion_tokens: extra.max_completion_tokens,
                capabilities: declared_capabilities(&extra.capabilities),
            },
            endpoints: vec![endpoint.clone()],
            extra: true,
        });
    };
    for model in &list.models {
        models.push(served(model, &same_as));
        for (_, extra, endpoint) in extras
            .iter()
            .filter(|(after, ..)| *after == Some(model.id.as_str()))
        {
            add_extra(&mut models, extra, endpoint);
        }
    }
    // Without `after`, or after an id the list does not (yet) have: after every listed
    // model, before the fallback.
    for (_, extra, endpoint) in extras
        .iter()
        .filter(|(after, ..)| after.is_none_or(|a| !listed.contains(&a)))
    {
        add_extra(&mut models, extra, endpoint);
    }
    // An extra model has no rank of its own: it shows the rank of the listed model it
    // follows (0 when it comes first), so sorting by rank keeps the routed order.
    let mut previous_rank = 0;
    for routed in models.iter_mut() {
        if routed.extra {
            routed.model.rank = previous_rank;
        } else {
            previous_rank = routed.model.rank;
        }
    }

    let fallback = list.fallback.as_ref().map(|id| {
        let model = Model {
            id: id.clone(),
            rank: u32::MAX,
            context_length: u64::MAX,
            max_completion_tokens: None,
            capabilities: Capabilities::default(),
        };
        served(&model, &same_as)
    });
    Catalogue { models, fallback }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HttpUrl, RateLimits};

    fn model(id: &str, rank: u32) -> Model {
        Model {
            id: id.into(),
            rank,
            context_length: 100_000,
            max_completion_tokens: None,
            capabilities: Capabilities::default(),
        }
    }

    fn list() -> ModelList {
        ModelList {
            models: vec![model("a:free", 1), model("b:free", 2), model("c:free", 3)],
            fallback: Some("openrouter/free".into()),
            updated_at: None,
        }
    }

    fn provider(name: &str, models: Vec<ProviderModel>) -> ProviderSettings {
        ProviderSettings {
            name: name.into(),
            base_url: HttpUrl {
                tls: true,
                host: format!("{name}.example"),
                port: 443,
                path: "/v1".into(),
            },
            api_keys: vec!["k".into()],
            api_keys_file: None,
            api_keys_url: None,
            limits: RateLimits::default(),
            headers: Vec::new(),
            models,
        }
    }

    fn same(listed: &str, id: &str) -> ProviderModel {
        ProviderModel::SameAs {
            listed_id: listed.into(),
            id: id.into(),
            limits: None,
        }
    }

    fn extra(id: &str, after: Option<&str>) -> ProviderModel {
        ProviderModel::Extra(ExtraModel {
            id: id.into(),
            after: after.map(str::to_string),
            context_length: 8192,
            max_completion_tokens: Some(4096),
            capabilities: DeclaredCapabilities {
                tools: Some(true),
                ..DeclaredCapabilities::default()
            },
            limits: None,
        })
    }

    fn routed(c: &Catalogue) -> Vec<(String, Vec<(usize, String)>)> {
        c.models
            .iter()
            .map(|m| {
                (
                    m.model.id.clone(),
                    m.endpoints
                        .iter()
                        .map(|e| (e.provider, e.provider_model.to_string()))
                        .collect(),
                )
            })
            .collect()
    }

    fn ids(c: &Catalogue) -> Vec<String> {
        c.models.iter().map(|m| m.model.id.clone()).collect()
    }

    #[test]
    fn without_providers_every_listed_model_is_served_by_openrouter_alone() {
        let c = build(&list(), &[], &[0]);
        assert_eq!(
            routed(&c),
            [
                ("a:free".to_string(), vec![(0, "a:free".to_string())]),
                ("b:free".to_string(), vec![(0, "b:free".to_string())]),
                ("c:free".to_string(), vec![(0, "c:free".to_string())]),
            ]
        );
        let fallback = c.fallback.expect("the list names a fallback");
        assert_eq!(fallback.endpoints.len(), 1);
    }

    #[test]
    fn provider_order_resolves_names_and_appends_the_rest() {
        let providers = [provider("groq", vec![]), provider("cerebras", vec![])];
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(resolve_order(&[], &providers), [0, 1, 2]);
        assert_eq!(resolve_order(&names(&["cerebras"]), &providers), [2, 0, 1]);
        assert_eq!(
            resolve_order(&names(&["groq", "openrouter", "cerebras"]), &providers),
            [1, 0, 2]
        );
        assert_eq!(resolve_order(&[], &[]), [0]);
    }

    #[test]
    fn endpoints_follow_provider_order() {
        let providers = [
            provider("groq", vec![same("b:free", "b-groq")]),
            provider("cerebras", vec![same("b:free", "b-cb")]),
        ];
        type Case<'a> = (&'a [usize], Vec<(usize, &'a str)>);
        let cases: [Case<'_>; 3] = [
            (&[0, 1, 2], vec![(0, "b:free"), (1, "b-groq"), (2, "b-cb")]),
            (&[2, 0, 1], vec![(2, "b-cb"), (0, "b:free"), (1, "b-groq")]),
            (&[1, 2, 0], vec![(1, "b-groq"), (2, "b-cb"), (0, "b:free")]),
        ];
        for (order, want) in cases {
            let c = build(&list(), &providers, order);
            let got: Vec<(usize, &str)> = c.models[1]
                .endpoints
                .iter()
                .map(|e| (e.provider, &*e.provider_model))
                .collect();
            assert_eq!(got, want, "order {order:?}");
        }
    }

    #[test]
    fn extra_models_are_placed_after_their_anchor_or_at_the_end() {
        let cases: [(Vec<ProviderModel>, Vec<&str>); 4] = [
            (
                vec![extra("x", Some("a:free"))],
                vec!["a:free", "x", "b:free", "c:free"],
            ),
            (
                vec![extra("x", None)],
                vec!["a:free", "b:free", "c:free", "x"],
            ),
            // An anchor the list does not have (yet): at the end.
            (
                vec![extra("x", Some("gone:free"))],
                vec!["a:free", "b:free", "c:free", "x"],
            ),
            // Two after one anchor keep file order.
            (
                vec![extra("x", Some("c:free")), extra("y", Some("c:free"))],
                vec!["a:free", "b:free", "c:free", "x", "y"],
            ),
        ];
        for (models, want) in cases {
            let c = build(&list(), &[provider("groq", models)], &[0, 1]);
            assert_eq!(ids(&c), want);
        }
    }

    #[test]
    fn extra_models_carry_their_declared_capabilities_with_section_4_defaults() {
        let c = build(
            &list(),
            &[provider("groq", vec![extra("x", None)])],
            &[0, 1],
        );
        let x = c.get("x").expect("extra model routed");
        assert!(x.extra);
        assert_eq!(x.model.context_length, 8192);
        assert_eq!(x.model.max_completion_tokens, Some(4096));
        let caps = x.model.capabilities;
        assert!(caps.tools && caps.tool_choice && caps.seed && caps.stop && caps.response_format);
        assert!(!caps.structured_outputs && !caps.reasoning);
        assert_eq!(
            x.endpoints,
            [Endpoint {
                provider: 1,
                provider_model: "x".into()
            }]
        );
    }

    #[test]
    fn one_extra_id_at_two_providers_is_one_model_with_two_endpoints() {
        let providers = [
            provider("groq", vec![extra("x", None)]),
            provider("cerebras", vec![extra("x", None)]),
        ];
        let c = build(&list(), &providers, &[0, 2, 1]);
        assert_eq!(ids(&c).iter().filter(|id| *id == "x").count(), 1);
        let x = c.get("x").expect("routed");
        assert_eq!(
            x.endpoints.iter().map(|e| e.provider).collect::<Vec<_>>(),
            [2, 1]
        );
    }

    #[test]
    fn the_fallback_gains_providers_that_name_it() {
        let c = build(
            &list(),
            &[provider("groq", vec![same("openrouter/free", "groq-free")])],
            &[0, 1],
        );
        let fallback = c.fallback.expect("fallback");
        assert_eq!(fallback.endpoints.len(), 2);
    }
}
