//! Candidate selection (SPEC §4): which models may serve a request, in which order, and
//! with which completion budget. Pure: the snapshot, the request's needs and the cooldown
//! view go in, an ordered plan comes out.

use std::time::{Duration, SystemTime};

use crate::domain::chat::Needs;
use crate::domain::models::{Model, Snapshot};

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub model_id: String,
    /// `Some(n)`: the body sent to this candidate carries the budget lowered to `n`.
    pub budget_clamp: Option<u64>,
    /// The list's `fallback.id`, tried last.
    pub is_list_fallback: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Try(Vec<Candidate>),
    /// No model supports what the request uses; names the missing capabilities.
    NoCapableModel {
        missing: Vec<&'static str>,
    },
    /// Every capable model is cooling; the earliest is usable again after `retry_after`.
    AllCooling {
        retry_after: Duration,
    },
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

/// Plan the attempts for one request. `cooling_until(model_id)` reports a model's
/// cooldown end if it is cooling at `now`.
pub fn plan(
    snapshot: &Snapshot,
    req: &RouteRequest<'_>,
    use_list_fallback: bool,
    now: SystemTime,
    cooling_until: impl Fn(&str) -> Option<SystemTime>,
) -> Plan {
    let mut fitting = Vec::new();
    let mut clamped = Vec::new();
    let mut pinned = None;
    let mut capable_any = false;
    let mut missing_everywhere: Option<Vec<&'static str>> = None;

    for model in &snapshot.list.models {
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
        let candidate = Candidate {
            model_id: model.id.clone(),
            budget_clamp,
            is_list_fallback: false,
        };
        if req.pinned_model == Some(model.id.as_str()) {
            pinned = Some(candidate);
        } else if kind == Fit::Full {
            fitting.push(candidate);
        } else {
            clamped.push(candidate);
        }
    }

    let mut ordered: Vec<Candidate> = pinned.into_iter().chain(fitting).chain(clamped).collect();
    if use_list_fallback {
        if let Some(id) = &snapshot.list.fallback {
            ordered.push(Candidate {
                model_id: id.clone(),
                budget_clamp: None,
                is_list_fallback: true,
            });
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

    let mut earliest: Option<SystemTime> = None;
    ordered.retain(|c| match cooling_until(&c.model_id) {
        Some(until) if until > now => {
            earliest = Some(earliest.map_or(until, |e| e.min(until)));
            false
        }
        _ => true,
    });
    match earliest {
        Some(until) if ordered.is_empty() => Plan::AllCooling {
            retry_after: until.duration_since(now).unwrap_or_default(),
        },
        _ => Plan::Try(ordered),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::models::{parse_list, ListSource, EMBEDDED_LIST};
    use std::collections::HashMap;
    use std::time::UNIX_EPOCH;

    fn snapshot(doc: &str) -> Snapshot {
        Snapshot {
            list: parse_list(doc.as_bytes()).unwrap(),
            source: ListSource::Embedded,
            loaded_at: UNIX_EPOCH,
        }
    }

    fn fixture() -> Snapshot {
        Snapshot {
            list: parse_list(EMBEDDED_LIST).unwrap(),
            source: ListSource::Embedded,
            loaded_at: UNIX_EPOCH,
        }
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

    fn no_cooling(_: &str) -> Option<SystemTime> {
        None
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
                    budget_clamp: Some(8000),
                    is_list_fallback: false
                },
                // small: 1000 + 4000 > 2100 but 1000 + 1024 <= 2100; clamped to 2100 - 1000.
                Candidate {
                    model_id: "small".into(),
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
        let lookup = |c: &HashMap<&str, SystemTime>, id: &str| c.get(id).copied();
        assert_eq!(
            ids(&plan(
                &snap,
                &req(Needs::default()),
                true,
                now,
                |id| lookup(&cooling, id)
            )),
            ["b", "openrouter/free"]
        );
        cooling.insert("b", now + Duration::from_secs(10));
        cooling.insert("openrouter/free", now + Duration::from_secs(20));
        assert_eq!(
            plan(&snap, &req(Needs::default()), true, now, |id| lookup(
                &cooling, id
            )),
            Plan::AllCooling {
                retry_after: Duration::from_secs(10)
            }
        );
        // An expired cooldown is no cooldown.
        cooling.insert("b", now);
        assert_eq!(
            ids(&plan(
                &snap,
                &req(Needs::default()),
                true,
                now,
                |id| lookup(&cooling, id)
            )),
            ["b"]
        );
    }
}
