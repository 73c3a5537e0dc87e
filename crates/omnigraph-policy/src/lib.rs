//! Policy bundles: the reference YAML format (`docs/user/operations/policy.md`
//! of ModernRelay/omnigraph) compiled to Cedar policies, and the decisions
//! the server and the engine ask of them.
//!
//! A bundle:
//!
//! ```yaml
//! version: 1
//! kind: server                 # optional; older files carry it
//! groups:
//!   readers: [act-reader, act-analyst]
//! protected_branches: [main]
//! rules:
//!   - id: read-data
//!     allow:                   # or `deny:` (a Cedar `forbid`, which wins)
//!       actors: { group: readers }   # or a list of actor ids, or "*"
//!       actions: [read, export]
//!       branch_scope: any      # any | protected | unprotected
//! ```
//!
//! Each rule becomes one Cedar policy with the rule's `id` as its policy id:
//! the principal is `Omnigraph::Actor::"<id>"` (a member of
//! `Omnigraph::Group::"<group>"`), the action `Omnigraph::Action::"<name>"`,
//! the resource `Omnigraph::Graph::"<graph id>"` or `Omnigraph::Server::"root"`;
//! branch scopes are conditions on `context.branch_protected` /
//! `context.target_branch_protected`. Nothing is allowed unless a rule
//! permits it (Cedar's default deny).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, Policy, PolicyId, PolicySet, Request, RestrictedExpression,
};
use serde::Deserialize;

/// An action a policy rule can name. Per-graph actions bind to
/// `Omnigraph::Graph::"<id>"`; [`Action::GraphList`] and the admin actions
/// bind to `Omnigraph::Server::"root"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Read,
    Export,
    Change,
    SchemaApply,
    BranchCreate,
    BranchDelete,
    BranchMerge,
    InvokeQuery,
    Admin,
    /// Server: `GET /graphs`.
    GraphList,
    /// Server: `GET /admin/graphs`, quarantine and restart (ours).
    GraphAdmin,
}

/// How an action relates to branches, which decides the scopes a rule on it
/// may carry (reference: "Scope kinds").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionScope {
    /// `read`, `export`, `change`: `branch_scope` applies.
    SourceBranch,
    /// `schema_apply`, `branch_*`: `target_branch_scope` applies.
    TargetBranch,
    /// `invoke_query`, `admin`: graph-wide, neither scope.
    Graph,
    /// Server actions: neither scope, resource `Server::"root"`.
    Server,
}

impl Action {
    pub const ALL: [Action; 11] = [
        Action::Read,
        Action::Export,
        Action::Change,
        Action::SchemaApply,
        Action::BranchCreate,
        Action::BranchDelete,
        Action::BranchMerge,
        Action::InvokeQuery,
        Action::Admin,
        Action::GraphList,
        Action::GraphAdmin,
    ];

    /// The name used in bundles and on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Export => "export",
            Action::Change => "change",
            Action::SchemaApply => "schema_apply",
            Action::BranchCreate => "branch_create",
            Action::BranchDelete => "branch_delete",
            Action::BranchMerge => "branch_merge",
            Action::InvokeQuery => "invoke_query",
            Action::Admin => "admin",
            Action::GraphList => "graph_list",
            Action::GraphAdmin => "graph_admin",
        }
    }

    pub fn scope(self) -> ActionScope {
        match self {
            Action::Read | Action::Export | Action::Change => ActionScope::SourceBranch,
            Action::SchemaApply
            | Action::BranchCreate
            | Action::BranchDelete
            | Action::BranchMerge => ActionScope::TargetBranch,
            Action::InvokeQuery | Action::Admin => ActionScope::Graph,
            Action::GraphList | Action::GraphAdmin => ActionScope::Server,
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == s)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A bundle that failed to read, parse or validate. The message names the
/// file and the rule.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("policy file {path}: {reason}")]
    Invalid { path: String, reason: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleFile {
    version: u32,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    protected_branches: Vec<String>,
    #[serde(default)]
    rules: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    id: String,
    #[serde(default)]
    allow: Option<Grant>,
    #[serde(default)]
    deny: Option<Grant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Grant {
    actors: Actors,
    actions: Vec<String>,
    #[serde(default)]
    branch_scope: Option<Scope>,
    #[serde(default)]
    target_branch_scope: Option<Scope>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Actors {
    Group { group: String },
    List(Vec<String>),
    Any(String),
}

/// A rule's branch scope (reference: `any | protected | unprotected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Any,
    Protected,
    Unprotected,
}

/// What a bundle governs: one or more graphs, or the server itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleKind {
    Graph,
    Server,
}

/// A decision with the rules that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Ids of the rules that matched (permits when allowed, forbids when a
    /// deny rule fired); empty for the default deny.
    pub rules: Vec<String>,
}

/// The branch context of a request: which branch it reads or writes
/// (`branch`) and, for branch operations, which it creates, deletes or
/// merges into (`target`).
#[derive(Debug, Clone, Default)]
pub struct BranchCtx<'a> {
    pub branch: Option<&'a str>,
    pub target: Option<&'a str>,
}

/// A compiled bundle, ready to answer decisions. Cheap to share behind an
/// `Arc`.
#[derive(Debug)]
pub struct PolicyEngine {
    path: String,
    kind: BundleKind,
    policies: PolicySet,
    entities: Entities,
    protected: HashSet<String>,
    actors: HashSet<String>,
}

fn euid(ty: &str, id: &str) -> Result<EntityUid, String> {
    let t = EntityTypeName::from_str(ty).map_err(|e| e.to_string())?;
    Ok(EntityUid::from_type_name_and_id(t, EntityId::new(id)))
}

/// Escapes a string for a Cedar string literal.
fn lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl PolicyEngine {
    /// Reads and compiles a bundle file.
    pub fn load(path: &Path) -> Result<PolicyEngine, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        PolicyEngine::compile(&path.display().to_string(), &text)
    }

    /// Compiles bundle YAML; `path` names it in errors.
    ///
    /// Errors: YAML that does not parse (with line and column), an unknown
    /// field, `version` other than 1, an unknown action, a rule without
    /// exactly one of `allow`/`deny`, an unknown group, both scopes on one
    /// rule, a scope on a graph-wide or server action, a scope that does not
    /// fit the action (`branch_scope` on `branch_create`), server and
    /// per-graph actions in one bundle, a `kind: server` line on a per-graph
    /// bundle, duplicate rule ids.
    pub fn compile(path: &str, text: &str) -> Result<PolicyEngine, PolicyError> {
        let bad = |reason: String| PolicyError::Invalid {
            path: path.to_string(),
            reason,
        };
        let file: BundleFile = serde_yaml::from_str(text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!("line {}, column {}: ", l.line(), l.column()))
                .unwrap_or_default();
            bad(format!("{at}{e}"))
        })?;
        if file.version != 1 {
            return Err(bad(format!(
                "`version: {}` is not supported; this release reads `version: 1`",
                file.version
            )));
        }
        let mut server_actions = false;
        let mut graph_actions = false;
        let mut ids = HashSet::new();
        let mut policies = PolicySet::new();
        let mut actors: HashSet<String> = HashSet::new();
        for members in file.groups.values() {
            actors.extend(members.iter().cloned());
        }
        for rule in &file.rules {
            if !ids.insert(rule.id.clone()) {
                return Err(bad(format!("rule id `{}` is used twice", rule.id)));
            }
            let (effect, grant) = match (&rule.allow, &rule.deny) {
                (Some(g), None) => ("permit", g),
                (None, Some(g)) => ("forbid", g),
                _ => {
                    return Err(bad(format!(
                        "rule `{}` needs exactly one of `allow:` or `deny:`",
                        rule.id
                    )));
                }
            };
            if grant.actions.is_empty() {
                return Err(bad(format!("rule `{}` names no actions", rule.id)));
            }
            if grant.branch_scope.is_some() && grant.target_branch_scope.is_some() {
                return Err(bad(format!(
                    "rule `{}` sets both `branch_scope` and `target_branch_scope`; a rule may use at most one",
                    rule.id
                )));
            }
            let mut acts = Vec::new();
            for a in &grant.actions {
                let action = Action::parse(a).ok_or_else(|| {
                    let known: Vec<&str> = Action::ALL.iter().map(|a| a.name()).collect();
                    bad(format!(
                        "rule `{}`: unknown action `{a}`; valid actions: {}",
                        rule.id,
                        known.join(", ")
                    ))
                })?;
                match action.scope() {
                    ActionScope::Server => server_actions = true,
                    _ => graph_actions = true,
                }
                let scope_ok = match action.scope() {
                    ActionScope::SourceBranch => grant.target_branch_scope.is_none(),
                    ActionScope::TargetBranch => grant.branch_scope.is_none(),
                    ActionScope::Graph | ActionScope::Server => {
                        grant.branch_scope.is_none() && grant.target_branch_scope.is_none()
                    }
                };
                if !scope_ok {
                    let which = match action.scope() {
                        ActionScope::SourceBranch => {
                            "takes `branch_scope`, not `target_branch_scope`"
                        }
                        ActionScope::TargetBranch => {
                            "takes `target_branch_scope`, not `branch_scope`"
                        }
                        _ => "takes no branch scope (it is graph-wide or server-wide)",
                    };
                    return Err(bad(format!("rule `{}`: action `{a}` {which}", rule.id)));
                }
                acts.push(action);
            }
            let principal = match &grant.actors {
                Actors::Group { group } => {
                    if !file.groups.contains_key(group) {
                        return Err(bad(format!(
                            "rule `{}` names group `{group}`, which `groups:` does not define",
                            rule.id
                        )));
                    }
                    format!("principal in Omnigraph::Group::{}", lit(group))
                }
                Actors::List(list) => {
                    actors.extend(list.iter().cloned());
                    // Each listed actor is put in a per-rule group below.
                    format!(
                        "principal in Omnigraph::Group::{}",
                        lit(&format!("rule:{}", rule.id))
                    )
                }
                Actors::Any(s) if s == "*" => "principal".to_string(),
                Actors::Any(s) => {
                    return Err(bad(format!(
                        "rule `{}`: `actors: {s}` is not understood; use `{{ group: NAME }}`, a list of actor ids, or \"*\"",
                        rule.id
                    )));
                }
            };
            let action_list: Vec<String> = acts
                .iter()
                .map(|a| format!("Omnigraph::Action::{}", lit(a.name())))
                .collect();
            let mut cond = Vec::new();
            match grant.branch_scope {
                Some(Scope::Protected) => cond.push("context.branch_protected"),
                Some(Scope::Unprotected) => cond.push("!context.branch_protected"),
                _ => {}
            }
            match grant.target_branch_scope {
                Some(Scope::Protected) => cond.push("context.target_branch_protected"),
                Some(Scope::Unprotected) => cond.push("!context.target_branch_protected"),
                _ => {}
            }
            let when = if cond.is_empty() {
                String::new()
            } else {
                format!(" when {{ {} }}", cond.join(" && "))
            };
            let src = format!(
                "{effect}({principal}, action in [{}], resource){when};",
                action_list.join(", ")
            );
            let policy = Policy::parse(Some(PolicyId::new(&rule.id)), &src)
                .map_err(|e| bad(format!("rule `{}` did not compile to Cedar: {e}", rule.id)))?;
            policies
                .add(policy)
                .map_err(|e| bad(format!("rule `{}`: {e}", rule.id)))?;
        }
        if server_actions && graph_actions {
            return Err(bad(
                "a bundle cannot mix server actions (graph_list, graph_admin) with per-graph actions; split it into two files".into(),
            ));
        }
        let kind = if server_actions {
            BundleKind::Server
        } else {
            BundleKind::Graph
        };
        match file.kind.as_deref() {
            None => {}
            Some("server") if kind == BundleKind::Server || file.rules.is_empty() => {}
            Some("server") => {
                return Err(bad(
                    "`kind: server` but the rules grant per-graph actions; remove the line or move the rules".into(),
                ));
            }
            Some("graph") if kind == BundleKind::Graph => {}
            Some(other) => {
                return Err(bad(format!(
                    "`kind: {other}` does not match the rules (they make a {} bundle)",
                    if kind == BundleKind::Server {
                        "server"
                    } else {
                        "graph"
                    }
                )));
            }
        }
        let kind = if file.kind.as_deref() == Some("server") {
            BundleKind::Server
        } else {
            kind
        };
        // Entities: one Group per group (and per listed-actors rule), one
        // Actor per named actor with its groups as parents.
        let mut parents: HashMap<String, HashSet<EntityUid>> = HashMap::new();
        let mut groups: Vec<String> = file.groups.keys().cloned().collect();
        for (g, members) in &file.groups {
            let gid = euid("Omnigraph::Group", g).map_err(&bad)?;
            for m in members {
                parents.entry(m.clone()).or_default().insert(gid.clone());
            }
        }
        for rule in &file.rules {
            let grant = rule.allow.as_ref().or(rule.deny.as_ref());
            if let Some(Grant {
                actors: Actors::List(list),
                ..
            }) = grant
            {
                let g = format!("rule:{}", rule.id);
                let gid = euid("Omnigraph::Group", &g).map_err(&bad)?;
                groups.push(g);
                for m in list {
                    parents.entry(m.clone()).or_default().insert(gid.clone());
                }
            }
        }
        let mut entities = Vec::new();
        for g in &groups {
            let uid = euid("Omnigraph::Group", g).map_err(&bad)?;
            entities.push(Entity::new_no_attrs(uid, HashSet::new()));
        }
        for (actor, ps) in parents {
            let uid = euid("Omnigraph::Actor", &actor).map_err(&bad)?;
            entities.push(Entity::new_no_attrs(uid, ps));
        }
        let entities =
            Entities::from_entities(entities, None).map_err(|e| bad(format!("entities: {e}")))?;
        Ok(PolicyEngine {
            path: path.to_string(),
            kind,
            policies,
            entities,
            protected: file.protected_branches.into_iter().collect(),
            actors,
        })
    }

    /// Where the bundle came from.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn kind(&self) -> BundleKind {
        self.kind
    }

    /// Every actor id the bundle names (in groups or rules).
    pub fn actors(&self) -> impl Iterator<Item = &str> {
        self.actors.iter().map(String::as_str)
    }

    /// Asks Cedar whether `actor` may do `action` on `resource_id` (a graph
    /// id, or ignored for server actions) in branch context `ctx`. A
    /// request Cedar cannot evaluate is denied.
    pub fn decide(
        &self,
        actor: &str,
        action: Action,
        resource_id: &str,
        ctx: &BranchCtx<'_>,
    ) -> Decision {
        let deny = Decision {
            allowed: false,
            rules: Vec::new(),
        };
        let (rtype, rid) = match action.scope() {
            ActionScope::Server => ("Omnigraph::Server", "root"),
            _ => ("Omnigraph::Graph", resource_id),
        };
        let (Ok(p), Ok(a), Ok(r)) = (
            euid("Omnigraph::Actor", actor),
            euid("Omnigraph::Action", action.name()),
            euid(rtype, rid),
        ) else {
            return deny;
        };
        let protected = |b: Option<&str>| b.is_some_and(|b| self.protected.contains(b));
        let Ok(context) = Context::from_pairs([
            (
                "branch_protected".to_string(),
                RestrictedExpression::new_bool(protected(ctx.branch)),
            ),
            (
                "target_branch_protected".to_string(),
                RestrictedExpression::new_bool(protected(ctx.target)),
            ),
        ]) else {
            return deny;
        };
        let Ok(request) = Request::new(p, a, r, context, None) else {
            return deny;
        };
        let response = Authorizer::new().is_authorized(&request, &self.policies, &self.entities);
        let rules = response
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect();
        Decision {
            allowed: response.decision() == CedarDecision::Allow,
            rules,
        }
    }
}

/// The gate every request and every engine write passes: the server's
/// runtime state (reference: "Server runtime states").
#[derive(Debug, Clone)]
pub enum Gate {
    /// No tokens, no policy (`--unauthenticated`): everything is allowed.
    Open,
    /// Tokens but no policy for this scope: only `read` is allowed.
    DefaultDeny,
    /// Cedar decides.
    Policy(std::sync::Arc<PolicyEngine>),
}

impl Gate {
    /// Decides `action` by `actor` on `resource_id` (see
    /// [`PolicyEngine::decide`]). Server actions are never allowed by
    /// [`Gate::Open`] or [`Gate::DefaultDeny`]: they need a server bundle
    /// (reference: "When no bundle binds `cluster`, `GET /graphs` is denied
    /// in every runtime state").
    pub fn decide(
        &self,
        actor: &str,
        action: Action,
        resource_id: &str,
        ctx: &BranchCtx<'_>,
    ) -> Decision {
        let server = action.scope() == ActionScope::Server;
        match self {
            Gate::Open => Decision {
                allowed: !server,
                rules: vec![if server { "no-server-policy" } else { "open" }.to_string()],
            },
            Gate::DefaultDeny => Decision {
                allowed: action == Action::Read,
                rules: vec!["default-deny".to_string()],
            },
            Gate::Policy(p) => p.decide(actor, action, resource_id, ctx),
        }
    }

    /// A short name for logs: `open`, `default_deny` or the bundle's path.
    pub fn describe(&self) -> String {
        match self {
            Gate::Open => "open".into(),
            Gate::DefaultDeny => "default_deny".into(),
            Gate::Policy(p) => format!("policy {}", p.path()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTEL: &str = r#"
version: 1
groups:
  readers: ["act-reader", "act-analyst"]
  analysts: ["act-analyst"]
protected_branches: [main]
rules:
  - id: invoke-stored-queries
    allow:
      actors: { group: readers }
      actions: [invoke_query]
  - id: read-data
    allow:
      actors: { group: readers }
      actions: [read, export]
      branch_scope: any
  - id: analyst-writes
    allow:
      actors: { group: analysts }
      actions: [change]
      branch_scope: unprotected
  - id: nobody-deletes-main
    deny:
      actors: "*"
      actions: [branch_delete]
      target_branch_scope: protected
  - id: ops-branches
    allow:
      actors: [act-ops]
      actions: [branch_create, branch_delete]
"#;

    fn on(b: &str) -> BranchCtx<'_> {
        BranchCtx {
            branch: Some(b),
            target: Some(b),
        }
    }

    #[test]
    fn rules_grant_what_they_say_and_nothing_else() {
        let p = PolicyEngine::compile("intel.yaml", INTEL).unwrap();
        assert_eq!(p.kind(), BundleKind::Graph);
        let d = p.decide("act-reader", Action::Read, "spike", &on("main"));
        assert!(d.allowed);
        assert_eq!(d.rules, vec!["read-data".to_string()]);
        assert!(
            !p.decide("act-reader", Action::Change, "spike", &on("dev"))
                .allowed
        );
        // branch_scope: unprotected — analysts write on dev, not on main.
        assert!(
            p.decide("act-analyst", Action::Change, "spike", &on("dev"))
                .allowed
        );
        assert!(
            !p.decide("act-analyst", Action::Change, "spike", &on("main"))
                .allowed
        );
        assert!(
            p.decide(
                "act-analyst",
                Action::InvokeQuery,
                "spike",
                &BranchCtx::default()
            )
            .allowed
        );
        assert!(
            !p.decide("stranger", Action::Read, "spike", &on("main"))
                .allowed
        );
        // A listed actor; and a deny that wins over an allow.
        assert!(
            p.decide("act-ops", Action::BranchDelete, "spike", &on("dev"))
                .allowed
        );
        let d = p.decide("act-ops", Action::BranchDelete, "spike", &on("main"));
        assert!(!d.allowed);
        assert_eq!(d.rules, vec!["nobody-deletes-main".to_string()]);
    }

    #[test]
    fn server_bundles_and_the_kind_line() {
        let text = "version: 1\nkind: server\ngroups:\n  admins: [\"act-admin\"]\nrules:\n  - id: admin-graph-list\n    allow:\n      actors: { group: admins }\n      actions: [graph_list]\n";
        let p = PolicyEngine::compile("server.yaml", text).unwrap();
        assert_eq!(p.kind(), BundleKind::Server);
        assert!(
            p.decide("act-admin", Action::GraphList, "", &BranchCtx::default())
                .allowed
        );
        assert!(
            !p.decide("act-reader", Action::GraphList, "", &BranchCtx::default())
                .allowed
        );
        let wrong = INTEL.replace("version: 1\n", "version: 1\nkind: server\n");
        let e = PolicyEngine::compile("intel.yaml", &wrong)
            .unwrap_err()
            .to_string();
        assert!(e.contains("kind: server"), "{e}");
    }

    #[test]
    fn bad_bundles_are_refused_with_the_rule_named() {
        let cases = [
            ("version: 2\n", "version: 2"),
            (
                "version: 1\nrules:\n  - id: r\n    allow:\n      actors: \"*\"\n      actions: [reed]\n",
                "unknown action `reed`",
            ),
            (
                "version: 1\nrules:\n  - id: r\n    allow:\n      actors: { group: nope }\n      actions: [read]\n",
                "group `nope`",
            ),
            (
                "version: 1\nrules:\n  - id: r\n    allow:\n      actors: \"*\"\n      actions: [invoke_query]\n      branch_scope: any\n",
                "takes no branch scope",
            ),
            (
                "version: 1\nrules:\n  - id: r\n    allow:\n      actors: \"*\"\n      actions: [read]\n      branch_scope: any\n      target_branch_scope: any\n",
                "both",
            ),
            (
                "version: 1\nrules:\n  - id: r\n    allow:\n      actors: \"*\"\n      actions: [read, graph_list]\n",
                "cannot mix",
            ),
            (
                "version: 1\nrules:\n  - id: r\n    allow:\n      actors: \"*\"\n      actions: [read]\n  - id: r\n    allow:\n      actors: \"*\"\n      actions: [read]\n",
                "used twice",
            ),
            ("version: 1\nrulez: []\n", "rulez"),
            (
                "version: 1\nrules:\n  - id: r\n    allow:\n      actors: \"*\"\n      actions: [branch_create]\n      branch_scope: any\n",
                "target_branch_scope",
            ),
            ("version: 1\nrules: [\n", "line"),
        ];
        for (text, want) in cases {
            let e = PolicyEngine::compile("p.yaml", text)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want) && e.contains("p.yaml"), "{text:?} → {e}");
        }
    }
}
