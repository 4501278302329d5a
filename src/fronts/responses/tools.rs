//! Which client tool each upstream function stands for (SPEC §13).
//!
//! Upstream only knows flat functions. A Responses client also offers custom (freeform)
//! tools and `namespace` groups, and expects a call to one of those back in its own shape
//! (`custom_tool_call`, or a `function_call` carrying its namespace). The request
//! translation records here what it offered under which name; the answer translation
//! reads it back.

/// A client tool, as the client named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolOrigin {
    Function {
        name: String,
    },
    /// A freeform tool: upstream sees a function taking `{"input": string}`.
    Custom {
        name: String,
    },
    /// A function inside a `{"type": "namespace"}` group.
    Namespaced {
        namespace: String,
        name: String,
    },
}

impl ToolOrigin {
    /// The name the client gave the tool.
    pub fn name(&self) -> &str {
        match self {
            ToolOrigin::Function { name }
            | ToolOrigin::Custom { name }
            | ToolOrigin::Namespaced { name, .. } => name,
        }
    }
}

/// Upstream function names and the client tools they stand for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolMap {
    entries: Vec<(String, ToolOrigin)>,
    /// Names of the flat tools: a namespaced function never takes one of them.
    reserved: Vec<String>,
}

impl ToolMap {
    /// Keep `names` (the flat tools' own names) for the flat tools.
    pub fn reserve(&mut self, names: impl IntoIterator<Item = String>) {
        self.reserved.extend(names);
    }

    /// Offer `origin` upstream; returns the function name it goes by. Flat tools keep their
    /// name; a namespaced function keeps its own where that is free, else it becomes
    /// `namespace__name`.
    pub fn add(&mut self, origin: ToolOrigin) -> String {
        let upstream = self.natural_name(&origin);
        self.entries.push((upstream.clone(), origin));
        upstream
    }

    fn natural_name(&self, origin: &ToolOrigin) -> String {
        match origin {
            ToolOrigin::Function { name } | ToolOrigin::Custom { name } => name.clone(),
            ToolOrigin::Namespaced { namespace, name } => {
                let taken = self.reserved.contains(name)
                    || self.entries.iter().any(|(upstream, _)| upstream == name);
                if taken {
                    format!("{namespace}__{name}")
                } else {
                    name.clone()
                }
            }
        }
    }

    /// The upstream name `origin` was offered under (for calls in the history); a tool
    /// not offered this turn keeps the name it would have had.
    pub fn upstream_name(&self, origin: &ToolOrigin) -> String {
        self.entries
            .iter()
            .find(|(_, known)| known == origin)
            .map_or_else(
                || self.natural_name(origin),
                |(upstream, _)| upstream.clone(),
            )
    }

    /// The client tool behind an upstream function name; an unknown name is taken as a
    /// flat function of that name (models do call tools they were not offered).
    pub fn origin(&self, upstream: &str) -> ToolOrigin {
        self.entries
            .iter()
            .find(|(name, _)| name == upstream)
            .map_or_else(
                || ToolOrigin::Function {
                    name: upstream.to_string(),
                },
                |(_, origin)| origin.clone(),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(namespace: &str, name: &str) -> ToolOrigin {
        ToolOrigin::Namespaced {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    #[test]
    fn names_round_trip() {
        let mut map = ToolMap::default();
        map.reserve(["shell".to_string()]);
        assert_eq!(map.add(ns("agents", "spawn")), "spawn");
        assert_eq!(map.add(ns("other", "spawn")), "other__spawn");
        assert_eq!(map.add(ns("tools", "shell")), "tools__shell");
        assert_eq!(
            map.add(ToolOrigin::Function {
                name: "shell".into()
            }),
            "shell"
        );
        assert_eq!(
            map.add(ToolOrigin::Custom {
                name: "apply_patch".into()
            }),
            "apply_patch"
        );
        for upstream in [
            "spawn",
            "other__spawn",
            "tools__shell",
            "shell",
            "apply_patch",
        ] {
            let origin = map.origin(upstream);
            assert_eq!(map.upstream_name(&origin), upstream, "{origin:?}");
        }
        assert_eq!(map.origin("other__spawn"), ns("other", "spawn"));
        assert_eq!(
            map.origin("apply_patch"),
            ToolOrigin::Custom {
                name: "apply_patch".into()
            }
        );
        assert_eq!(
            map.origin("never_offered"),
            ToolOrigin::Function {
                name: "never_offered".into()
            }
        );
    }
}
