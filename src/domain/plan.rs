//! Candidate selection (SPEC §4, §12): which models may serve a request, at which of
//! their endpoints, in which order, and with which completion budget. Pure: the
//! catalogue, the request's needs and each endpoint's readiness go in, an ordered plan
//! comes out.

use std::time::{Duration, SystemTime};

use crate::domain::catalogue::{Catalogue, Endpoint};
use crate::domain::chat::Needs;
use crate::domain::models::Model;

/// Completion budget assumed when the client sets none, and the floor a clamped
/// candidate must still be able to give.
pub const DEFAULT_BUDGET: u64 = 1024;

/// What routing needs to know about one request.
#[derive(Debug, Clone, Copy)]
pub struct RouteRequest<'a> {
    pub pinned_model: Option<&'a str>,
    pub needs: Needs,
    /// Estimated prompt tokens: bytes of the upstream body / 4.
    pub prompt_tokens: u64,
    pub requested_budget: Option<u64>,
}

/// One planned attempt target: a model at one of its endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The routed model's id (listed, or a provider's extra model).
    pub model_id: String,
    /// Where it is tried; the body carries `endpoint.provider_model`.
    pub endpoint: Endpoint,
    /// `Some(n)`: the body sent to this candidate carries the budget lowered to `n`.
    pub budget_clamp: Option<u64>,
    /// The list's `fallback.id`, tried last.
    pub is_list_fallback: bool,
}

/// Whether an endpoint can take an attempt now (SPEC §12 "Order").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Usable, but live health put it behind every healthy candidate.
    Demoted,
    /// Cooling, or every key of it is resting or at a known limit, until then.
    NotBefore(SystemTime),
    /// Its provider has no usable key (none configured, or all disabled).
    NoUsableKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Healthy candidates in rank order, then demoted ones in rank order.
    Try(Vec<Candidate>),
    /// No model supports what the request uses; names the missing capabilities.
    NoCapableModel { missing: Vec<&'static str> },
    /// Every capable endpoint is cooling or out of quota; the earliest is usable again
    /// after `retry_after`.
    AllCooling { retry_after: Duration },
    /// No endpoint of any capable model has a usable key.
    NoUsableKey,
}

const CAPABILITY_NAMES: [&str; 7] = [
    "tools",
    "tool_choice",
    "json_schema",
    "json_object",
    "seed",
    "stop",
    "reasoning",
];

/// The capabilities `needs` asks for that `model` lacks, by name.
fn missing_capabilities(model: &Model, needs: &Needs) -> Vec<&'static str> {
    let caps = model.capabilities;
    let checks = [
        (needs.tools, caps.tools),
        (needs.tool_choice, caps.tool_choice),
        (needs.json_schema, caps.structured_outputs),
        (
            needs.json_object,
            caps.response_format || caps.structured_outputs,
        ),
        (needs.seed, caps.seed),
        (needs.stop, caps.stop),
        (needs.reasoning, caps.reasoning),
    ];
    CAPABILITY_NAMES
        .iter()
        .zip(checks)
        .filter(|(_, (needed, has))| *needed && !*has)
        .map(|(name, _)| *name)
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    Full,
    Clamped,
}

/// Context fit per SPEC §4 step 4, and the budget this model's body must carry.
fn fit(model: &Model, req: &RouteRequest<'_>) -> Option<(Fit, Option<u64>)> {
    let p = req.prompt_tokens;
    let ctx = model.context_length;
    let cap = model.max_completion_tokens.unwrap_or(u64::MAX);
    let wanted = req.requested_budget.unwrap_or(DEFAULT_BUDGET).min(cap);
    let kind = if p.saturating_add(wanted) <= ctx {
        Fit::Full
    } else if p.saturating_add(wanted.min(DEFAULT_BUDGET)) <= ctx {
        Fit::Clamped
    } else {
        return None;
    };
    // Only a budget the client actually asked for is ever rewritten.
    let clamp = req.requested_budget.and_then(|asked| {
        let can_give = cap.min(ctx - p).max(1);
        (asked > can_give).then_some(can_give)
    });
    Some((kind, clamp))
}

/// Plan the attempts for one request. `readiness(endpoint)` reports whether an
/// endpoint can take an attempt at `now`.
pub fn plan(
    catalogue: &Catalogue,
    req: &RouteRequest<'_>,
    use_list_fallback: bool,
    now: SystemTime,
    readiness: impl Fn(&Endpoint) -> Readiness,
) -> Plan {
    let mut fitting = Vec::new();
    let mut clamped = Vec::new();
    let mut pinned = None;
    let mut capable_any = false;
    let mut missing_everywhere: Option<Vec<&'static str>> = None;

    for routed in &catalogue.models {
        let model = &routed.model;
        let missing = missing_capabilities(model, &req.needs);
        if !missing.is_empty() {
            // Track the capabilities that no model has at all, for the error message.
            missing_everywhere = Some(match missing_everywhere {
                None => missing,
                Some(prev) => prev.into_iter().filter(|m| missing.contains(m)).collect(),
            });
            continue;
        }
        capable_any = true;
        let Some((kind, budget_clamp)) = fit(model, req) else {
            continue;
        };
        let entry = (routed, budget_clamp, false);
        if req.pinned_model == Some(model.id.as_str()) {
            pinned = Some(entry);
        } else if kind == Fit::Full {
            fitting.push(entry);
        } else {
            clamped.push(entry);
        }
    }

    let mut ordered: Vec<_> = pinned.into_iter().chain(fitting).chain(clamped).collect();
    if use_list_fallback {
        if let Some(fallback) = &catalogue.fallback {
            ordered.push((fallback, None, true));
        }
    }
    if ordered.is_empty() {
        let missing = if capable_any {
            vec!["context_length"]
        } else {
            missing_everywhere
                .filter(|m| !m.is_empty())
                .unwrap_or_default()
        };
        return Plan::NoCapableModel { missing };
    }

    let mut healthy = Vec::new();
    let mut demoted = Vec::new();
    let mut earliest: Option<SystemTime> = None;
    for (routed, budget_clamp, is_list_fallback) in ordered {
        for endpoint in &routed.endpoints {
            let candidate = || Candidate {
                model_id: routed.model.id.clone(),
                endpoint: endpoint.clone(),
                budget_clamp,
                is_list_fallback,
            };
            match readiness(endpoint) {
                Readiness::Ready => healthy.push(candidate()),
                Readiness::Demoted => demoted.push(candidate()),
                Readiness::NotBefore(until) if until > now => {
                    earliest = Some(earliest.map_or(until, |e| e.min(until)));
                }
                Readiness::NotBefore(_) => healthy.push(candidate()),
                Readiness::NoUsableKey => {}
            }
        }
    }
    healthy.extend(demoted);
    match earliest {
        _ if !healthy.is_empty() => Plan::Try(healthy),
        Some(until) => Plan::AllCooling {
            retry_after: until.duration_since(now).unwrap_or_default(),
        },
        None => Plan::NoUsableKey,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalogue;
    use crate::domain::models::{parse_list, EMBEDDED_LIST};
    use std::collections::HashMap;
    use std::time::UNIX_EPOCH;

    fn snapshot(doc: &str) -> Catalogue {
        catalogue::build(&parse_list(doc.as_bytes()).unwrap(), &[], &[0])
    }

    fn fixture() -> Catalogue {
        catalogue::build(&parse_list(EMBEDDED_LIST).unwrap(), &[], &[0])
    }

    fn req(needs: Needs) -> RouteRequest<'static> {
        RouteRequest {
            pinned_model: None,
            needs,
            prompt_tokens: 100,
            requested_budget: None,
        }
    }

    fn ids(plan: &Plan) -> Vec<&str> {
        match plan {
            Plan::Try(c) => c.iter().map(|c| c.model_id.as_str()).collect(),
            other => panic!("expected candidates, got {other:?}"),
        }
    }

    const NOW: SystemTime = UNIX_EPOCH;

    fn no_cooling(_: &Endpoint) -> Readiness {
        Readiness::Ready
    }

    fn openrouter(id: &str) -> Endpoint {
        Endpoint {
            provider: 0,
            provider_model: id.into(),
        }
    }

    #[test]
    fn capability_filter_table() {
        let snap = fixture();
        let all = [
            "inclusionai/ling-2.6-flash:free",
            "inclusionai/ling-2.6-1t:free",
            "minimax/minimax-m2.5:free",
            "openai/gpt-oss-120b:free",
            "openai/gpt-oss-20b:free",
            "nvidia/nemotron-3-super-120b-a12b:free",
            "openrouter/free",
        ];
        let structured = [all[0], all[1], all[5], all[6]];
        let reasoning = [all[2], all[3], all[4], all[5], all[6]];
        let structured_reasoning = [all[5], all[6]];
        let cases: Vec<(Needs, &[&str])> = vec![
            (Needs::default(), &all),
            (
                Needs {
                    tools: true,
                    ..Needs::default()
                },
                &all,
            ),
            // Absent supportsToolChoice/ResponseFormat/Seed/Stop count as true.
            (
                Needs {
                    tool_choice: true,
                    seed: true,
                    stop: true,
                    ..Needs::default()
                },
                &all,
            ),
            (
                Needs {
                    json_object: true,
                    ..Needs::default()
                },
                &all,
            ),
            (
                Needs {
                    json_schema: true,
                    ..Needs::default()
                },
                &structured,
            ),
            (
                Needs {
                    reasoning: true,
                    ..Needs::default()
                },
                &reasoning,
            ),
            (
                Needs {
                    reasoning: true,
                    json_schema: true,
                    ..Needs::default()
                },
                &structured_reasoning,
            ),
        ];
        for (needs, want) in cases {
            assert_eq!(
                ids(&plan(&snap, &req(needs), true, NOW, no_cooling)),
                want,
                "{needs:?}"
            );
        }
    }

    #[test]
    fn json_object_accepts_structured_outputs_when_response_format_is_false() {
        let snap = snapshot(
            r#"{"models":[
              {"rank":1,"id":"a","contextLength":9000,"supportsResponseFormat":false,"supportsStructuredOutputs":false},
              {"rank":2,"id":"b","contextLength":9000,"supportsResponseFormat":false,"supportsStructuredOutputs":true}]}"#,
        );
        let needs = Needs {
            json_object: true,
            ..Needs::default()
        };
        assert_eq!(ids(&plan(&snap, &req(needs), true, NOW, no_cooling)), ["b"]);
    }

    #[test]
    fn no_capable_model_names_what_is_missing_and_fallback_prevents_it() {
        let snap = fixture();
        let needs = Needs {
            json_schema: true,
            ..Needs::default()
        };
        let only_reasoning = snapshot(
            r#"{"models":[{"rank":1,"id":"a","contextLength":1000,"supportsReasoning":true}]}"#,
        );
        assert_eq!(
            plan(&only_reasoning, &req(needs), true, NOW, no_cooling),
            Plan::NoCapableModel {
                missing: vec!["json_schema"]
            }
        );
        // With the list's fallback it is always routable...
        assert_eq!(
            ids(&plan(
                &snap,
                &req(Needs {
                    json_schema: true,
                    reasoning: true,
                    ..Needs::default()
                }),
                true,
                NOW,
                no_cooling
            ))
            .last(),
            Some(&"openrouter/free")
        );
        // ...without it, a combination nobody has is refused.
        let tools_and_reasoning_nowhere = snapshot(
            r#"{"models":[
              {"rank":1,"id":"a","contextLength":1000,"supportsTools":true},
              {"rank":2,"id":"b","contextLength":1000,"supportsReasoning":true}]}"#,
        );
        let both = Needs {
            tools: true,
            reasoning: true,
            ..Needs::default()
        };
        assert_eq!(
            plan(
                &tools_and_reasoning_nowhere,
                &req(both),
                false,
                NOW,
                no_cooling
            ),
            Plan::NoCapableModel { missing: vec![] }
        );
    }

    #[test]
    fn context_fit_orders_fitting_before_clamped_and_drops_the_rest() {
        let snap = snapshot(
            r#"{"models":[
              {"rank":1,"id":"small","contextLength":2100,"maxCompletionTokens":4000},
              {"rank":2,"id":"big","contextLength":100000,"maxCompletionTokens":8000},
              {"rank":3,"id":"tiny","contextLength":500}]}"#,
        );
        let mut r = req(Needs::default());
        r.prompt_tokens = 1000;
        r.requested_budget = Some(32000);
        let Plan::Try(c) = plan(&snap, &r, false, NOW, no_cooling) else {
            panic!()
        };
        assert_eq!(
            c,
            vec![
                // big: W = min(32000, 8000) = 8000 fits in 100000; clamped to its cap.
                Candidate {
                    model_id: "big".into(),
                    endpoint: openrouter("big"),
                    budget_clamp: Some(8000),
                    is_list_fallback: false
                },
                // small: 1000 + 4000 > 2100 but 1000 + 1024 <= 2100; clamped to 2100 - 1000.
                Candidate {
                    model_id: "small".into(),
                    endpoint: openrouter("small"),
                    budget_clamp: Some(1100),
                    is_list_fallback: false
                },
            ]
        );
    }

    #[test]
    fn budget_is_never_invented_when_absent_or_within_limits() {
        let snap = snapshot(
            r#"{"models":[{"rank":1,"id":"a","contextLength":100000,"maxCompletionTokens":8000}]}"#,
        );
        let mut r = req(Needs::default());
        let Plan::Try(c) = plan(&snap, &r, false, NOW, no_cooling) else {
            panic!()
        };
        assert_eq!(c[0].budget_clamp, None);
        r.requested_budget = Some(8000);
        let Plan::Try(c) = plan(&snap, &r, false, NOW, no_cooling) else {
            panic!()
        };
        assert_eq!(c[0].budget_clamp, None);
    }

    #[test]
    fn prompt_too_big_for_every_model() {
        let snap = fixture();
        let mut r = req(Needs::default());
        r.prompt_tokens = 300_000;
        assert_eq!(
            ids(&plan(&snap, &r, true, NOW, no_cooling)),
            ["openrouter/free"]
        );
        assert_eq!(
            plan(&snap, &r, false, NOW, no_cooling),
            Plan::NoCapableModel {
                missing: vec!["context_length"]
            }
        );
    }

    #[test]
    fn pinned_model_goes_first_then_rank_order() {
        let snap = fixture();
        let mut r = req(Needs::default());
        r.pinned_model = Some("openai/gpt-oss-20b:free");
        let planned = plan(&snap, &r, true, NOW, no_cooling);
        let got = ids(&planned);
        assert_eq!(got[0], "openai/gpt-oss-20b:free");
        assert_eq!(got[1], "inclusionai/ling-2.6-flash:free");
        assert_eq!(got.len(), 7);
        // An unknown or virtual id routes by rank.
        r.pinned_model = Some("auto");
        assert_eq!(
            ids(&plan(&snap, &r, true, NOW, no_cooling))[0],
            "inclusionai/ling-2.6-flash:free"
        );
    }

    #[test]
    fn cooling_models_are_skipped_and_all_cooling_reports_the_earliest() {
        let snap = snapshot(
            r#"{"models":[{"rank":1,"id":"a","contextLength":9000},{"rank":2,"id":"b","contextLength":9000}],
                "fallback":{"id":"openrouter/free"}}"#,
        );
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let mut cooling: HashMap<&str, SystemTime> = HashMap::new();
        cooling.insert("a", now + Duration::from_secs(30));
        let lookup = |c: &HashMap<&str, SystemTime>, e: &Endpoint| {
            c.get(&*e.provider_model)
                .map_or(Readiness::Ready, |&t| Readiness::NotBefore(t))
        };
        assert_eq!(
            ids(&plan(&snap, &req(Needs::default()), true, now, |e| lookup(
                &cooling, e
            ))),
            ["b", "openrouter/free"]
        );
        cooling.insert("b", now + Duration::from_secs(10));
        cooling.insert("openrouter/free", now + Duration::from_secs(20));
        assert_eq!(
            plan(&snap, &req(Needs::default()), true, now, |e| lookup(
                &cooling, e
            )),
            Plan::AllCooling {
                retry_after: Duration::from_secs(10)
            }
        );
        // An expired cooldown is no cooldown.
        cooling.insert("b", now);
        assert_eq!(
            ids(&plan(&snap, &req(Needs::default()), true, now, |e| lookup(
                &cooling, e
            ))),
            ["b"]
        );
    }
}
