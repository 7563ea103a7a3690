//! The build graph as people read it (`torchkit graph`).
//!
//! [`graph`] is the one adapter from a [`Plan`] to a small view model, [`Graph`]: the steps
//! in order (a dependency step as its two execs, resolve then install), each with its cache
//! rule and the spec line it comes from; the plan's helper nodes (constraints, resolver
//! script, epoch, bust, lock file, build context); the download caches and secrets; and one
//! edge per mount the plan lists, labelled with where it is mounted. It reads nothing but
//! the plan's own data, the same data `lower` turns into LLB, so the drawing shows what the
//! build runs (tests/graph.rs checks it against the LLB). [`Graph::to_dot`] writes it as
//! Graphviz DOT, [`Graph::to_mermaid`] as a Mermaid flowchart. Pure: no IO (the CLI runs
//! Graphviz for SVG).
//!
//! Marks: an exec or op that re-runs on every build (it carries `ignore_cache`, or mounts
//! the bust node) and the bust node itself are drawn with a red fill, a thick dashed border
//! and a `re-runs: <reason>` line, so the mark survives a black-and-white print. See
//! docs/graph.md.

use crate::vocab::Step as StepName;

use super::{CacheRule, Exec, Mount, NodeId, NodeSource, Output, Plan, Run, Step};

/// Longest label line before the renderers wrap it.
const WRAP: usize = 56;

/// What `torchkit graph` draws: nodes and edges, in a stable order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    /// First line of the drawing: spec, profile, platform.
    pub title: String,
    /// Steps first (in build order), then helper nodes, caches and secrets.
    pub nodes: Vec<Node>,
    /// Layers first, then mounts, each in the order of its consumer.
    pub edges: Vec<Edge>,
}

/// What a node is, which decides its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeKind {
    /// The base image.
    Image,
    /// A command whose layer the image keeps: a whole step, or the install half of a
    /// dependency step.
    Exec,
    /// The resolve half of a dependency step: only its output, the resolved set, is used.
    Resolve,
    /// Context files copied into the image.
    Copy,
    /// A small file op on scratch that steps mount read-only (constraints, resolver
    /// script, epoch, bust, lock file).
    File,
    /// The build context (a local source).
    Context,
    /// A download cache mount.
    Cache,
    /// A secret mount.
    Secret,
    /// An exec of the verify stage: it runs on the finished image and is not part of it.
    Verify,
}

impl NodeKind {
    /// A step of the build (an op with a progress title of the form `[torchkit i/n] …`),
    /// as opposed to a helper node, cache or secret.
    pub fn is_step(self) -> bool {
        matches!(
            self,
            NodeKind::Image
                | NodeKind::Exec
                | NodeKind::Resolve
                | NodeKind::Copy
                | NodeKind::Verify
        )
    }
}

/// One node of the drawing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Stable identifier (`step3_resolve`, `constraints`, `cache1`), valid in DOT and Mermaid.
    pub id: String,
    /// Shape.
    pub kind: NodeKind,
    /// First line, bold: `3/6 pip`, `constraints.txt`.
    pub heading: String,
    /// What the node does or holds, one item a line.
    pub details: Vec<String>,
    /// The cache rule in words (`cached`, `cached until the epoch changes`, `ignore_cache`).
    pub rule: Option<String>,
    /// The mark of a node that re-runs or changes on every build: `re-runs: test profile`.
    pub rerun: Option<String>,
    /// The spec line the node comes from: `torchkit.toml:16 (python.packages)`.
    pub source: Option<String>,
    /// The op's name in BuildKit's progress and in the LLB (steps and helper nodes).
    pub title: Option<String>,
}

/// How an edge connects its ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeKind {
    /// The filesystem a step starts from: the layer below it.
    Layer,
    /// A read-only bind mount of a helper node, the context, or the resolved set.
    Bind,
    /// Files copied from the context.
    Copy,
    /// A download cache mount (read-write, shared between builds).
    Cache,
    /// A secret mount.
    Secret,
}

/// One edge: `from` feeds `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// Source node id.
    pub from: String,
    /// Consumer node id.
    pub to: String,
    /// What kind of input it is.
    pub kind: EdgeKind,
    /// Where the consumer mounts it (mounts only).
    pub dest: Option<String>,
    /// The edge's text; None when the source node already says it (one mount point for
    /// all its consumers).
    pub label: Option<String>,
}

/// The view of a plan that `torchkit graph` draws: its steps, helper nodes and mounts as the
/// plan holds them, which is what `lower` builds from it.
pub fn graph(plan: &Plan) -> Graph {
    let mut b = Builder {
        plan,
        steps: vec![],
        caches: vec![],
        secrets: vec![],
        execs: vec![],
        layers: vec![],
        mounts: vec![],
    };
    let n = plan.steps.len();
    let mut below: Option<String> = None;
    for (i, step) in plan.steps.iter().enumerate() {
        let id = format!("step{}", i + 1);
        let at = (i, n);
        let top = match &step.run {
            Run::Exec { mounts, .. } => {
                let own = match &step.resolve {
                    Some(r) => {
                        let rid = format!("{id}_resolve");
                        let kind = NodeKind::Resolve;
                        b.step_node(&rid, kind, step, at, &r.title, r.ignore_cache, &r.mounts);
                        b.layer(&below, &rid);
                        b.execs.push(((step.name, Exec::Resolve), rid.clone()));
                        b.exec_mounts(&rid, &r.mounts);
                        format!("{id}_install")
                    }
                    None => id,
                };
                let kind = NodeKind::Exec;
                b.step_node(&own, kind, step, at, &step.title, step.ignore_cache, mounts);
                b.layer(&below, &own);
                b.execs.push(((step.name, Exec::Run), own.clone()));
                b.exec_mounts(&own, mounts);
                own
            }
            Run::Image => {
                let kind = NodeKind::Image;
                b.step_node(&id, kind, step, at, &step.title, step.ignore_cache, &[]);
                // Planned, but lowering refuses it (a release build on an unpinned base).
                if plan.check_buildable().is_err() {
                    if let Some(node) = b.steps.last_mut() {
                        node.details.push(format!(
                            "unpinned: a {} build needs the base's digest",
                            plan.profile
                        ));
                    }
                }
                b.layer(&below, &id);
                id
            }
            Run::Copy { from, copies, .. } => {
                let kind = NodeKind::Copy;
                b.step_node(&id, kind, step, at, &step.title, step.ignore_cache, &[]);
                b.layer(&below, &id);
                let what: Vec<String> = copies.iter().map(|(s, d)| format!("{s} → {d}")).collect();
                b.mounts.push(Edge {
                    from: from.as_str().to_string(),
                    to: id.clone(),
                    kind: EdgeKind::Copy,
                    dest: None,
                    label: Some(what.join("\n")),
                });
                id
            }
        };
        below = Some(top);
    }
    // The verify stage hangs off the finished image: each exec runs on its root filesystem
    // and carries the report of the one before.
    if let Some(v) = plan.verify.planned() {
        let n = v.steps.len();
        for (i, step) in v.steps.iter().enumerate() {
            let Run::Exec { mounts, .. } = &step.run else {
                continue;
            };
            let id = format!("verify{}", i + 1);
            let kind = NodeKind::Verify;
            b.step_node(
                &id,
                kind,
                step,
                (i, n),
                &step.title,
                step.ignore_cache,
                mounts,
            );
            b.layer(&below, &id);
            b.exec_mounts(&id, mounts);
            // Newest first: a later exec's carried mount is this one's output.
            b.execs.insert(0, ((step.name, Exec::Run), id));
        }
    }
    b.finish()
}

struct Builder<'a> {
    plan: &'a Plan,
    steps: Vec<Node>,
    /// (cache id, node), in the order of first use.
    caches: Vec<(String, Node)>,
    secrets: Vec<(String, Node)>,
    /// The node of each exec, for the mounts of what it writes.
    execs: Vec<((StepName, Exec), String)>,
    layers: Vec<Edge>,
    mounts: Vec<Edge>,
}

impl Builder<'_> {
    #[allow(clippy::too_many_arguments)]
    fn step_node(
        &mut self,
        id: &str,
        kind: NodeKind,
        step: &Step,
        (i, n): (usize, usize),
        title: &str,
        ignore_cache: bool,
        mounts: &[Mount],
    ) {
        let busted = mounts.iter().any(|m| {
            matches!(
                m,
                Mount::Node {
                    node: NodeId::Bust,
                    ..
                }
            )
        });
        let (rule, rerun) = rule_words(
            &step.cache,
            ignore_cache,
            busted,
            self.plan.epoch.as_deref(),
        );
        // The progress title without its `[torchkit i/n] name: ` prefix and its re-run mark,
        // which the heading and the mark line show.
        let mut what = untagged(title, step.name.as_str()).to_string();
        if let Some(r) = &rerun {
            let reason = r.trim_start_matches("re-runs: ");
            if let Some(s) = what.strip_suffix(&format!(" (re-run: {reason})")) {
                what = s.to_string();
            }
        }
        self.steps.push(Node {
            id: id.to_string(),
            kind,
            heading: format!("{}/{n} {}", i + 1, step.name),
            details: vec![short_digests(&what)],
            rule: Some(rule),
            rerun,
            source: Some(format!(
                "{}:{} ({})",
                self.plan.spec, step.span.line, step.origin
            )),
            title: Some(title.to_string()),
        });
    }

    fn layer(&mut self, below: &Option<String>, to: &str) {
        if let Some(from) = below {
            self.layers.push(Edge {
                from: from.clone(),
                to: to.to_string(),
                kind: EdgeKind::Layer,
                dest: None,
                label: None,
            });
        }
    }

    fn edge(&mut self, from: String, to: &str, kind: EdgeKind, dest: &str, label: String) {
        self.mounts.push(Edge {
            from,
            to: to.to_string(),
            kind,
            dest: Some(dest.to_string()),
            label: Some(label),
        });
    }

    /// One edge per mount of an exec, as the plan lists them.
    fn exec_mounts(&mut self, to: &str, mounts: &[Mount]) {
        for m in mounts {
            match m {
                Mount::Cache { dest, id, .. } => {
                    let from = self.cache(id);
                    self.edge(from, to, EdgeKind::Cache, dest, dest.clone());
                }
                Mount::Secret { dest, id, optional } => {
                    let from = self.secret(id, *optional);
                    self.edge(from, to, EdgeKind::Secret, dest, dest.clone());
                }
                Mount::Node {
                    dest, node, path, ..
                } => {
                    // A file node holds one file; of a directory, say which path.
                    let label = match self.plan.node(*node).map(|n| &n.source) {
                        Some(NodeSource::Local { .. }) if path != "/" => {
                            format!("{} → {dest}", path.trim_start_matches('/'))
                        }
                        _ => dest.clone(),
                    };
                    self.edge(node.as_str().into(), to, EdgeKind::Bind, dest, label);
                }
                // What this exec writes: drawn where a later exec reads it.
                Mount::Scratch { .. } => {}
                Mount::Output {
                    dest,
                    step,
                    exec,
                    mount,
                    path,
                    readonly,
                } => {
                    let from = self
                        .execs
                        .iter()
                        .find(|(k, _)| *k == (*step, *exec))
                        .map(|(_, id)| id.clone())
                        .expect("a plan mounts the output of an earlier exec");
                    let label = match (exec, readonly) {
                        (Exec::Resolve, _) => format!("resolved set → {dest}"),
                        (Exec::Run, ro) => {
                            let what = match path.as_str() {
                                "/" => mount.clone(),
                                p => format!("{}{p}", mount.trim_end_matches('/')),
                            };
                            let how = if *ro { "" } else { ", written on" };
                            format!("{step}'s {what}{how} → {dest}")
                        }
                    };
                    self.edge(from, to, EdgeKind::Bind, dest, label);
                }
            }
        }
    }

    fn cache(&mut self, cache_id: &str) -> String {
        if let Some((_, n)) = self.caches.iter().find(|(c, _)| c == cache_id) {
            return n.id.clone();
        }
        let id = format!("cache{}", self.caches.len() + 1);
        self.caches.push((
            cache_id.to_string(),
            Node {
                id: id.clone(),
                kind: NodeKind::Cache,
                heading: "download cache".into(),
                details: vec![format!("id {cache_id}")],
                rule: None,
                rerun: None,
                source: None,
                title: None,
            },
        ));
        id
    }

    fn secret(&mut self, secret_id: &str, optional: bool) -> String {
        if let Some((_, n)) = self.secrets.iter().find(|(s, _)| s == secret_id) {
            return n.id.clone();
        }
        let mut details = vec![format!("id {secret_id}")];
        if optional {
            details.push("optional: used when the build has it".into());
        }
        let id = format!("secret{}", self.secrets.len() + 1);
        self.secrets.push((
            secret_id.to_string(),
            Node {
                id: id.clone(),
                kind: NodeKind::Secret,
                heading: "secret".into(),
                details,
                rule: None,
                rerun: None,
                source: None,
                title: None,
            },
        ));
        id
    }

    fn finish(self) -> Graph {
        let plan = self.plan;
        let mut nodes = self.steps;
        let mut aside: Vec<Node> = helper_nodes(plan);
        aside.extend(self.caches.into_iter().map(|(_, n)| n));
        aside.extend(self.secrets.into_iter().map(|(_, n)| n));
        let mut mounts = self.mounts;
        // A node that every consumer mounts at the same place says where, once; its edges
        // then need no label.
        for node in &mut aside {
            let dests: Vec<&Option<String>> = mounts
                .iter()
                .filter(|e| e.from == node.id)
                .map(|e| &e.dest)
                .collect();
            if let Some(Some(d)) = dests.first() {
                if dests.iter().all(|x| x.as_deref() == Some(d.as_str())) {
                    let how = match node.kind {
                        NodeKind::Cache => "mounted at",
                        _ => "mounted read-only at",
                    };
                    node.details.push(format!("{how} {d}"));
                    for e in mounts.iter_mut().filter(|e| e.from == node.id) {
                        e.label = None;
                    }
                }
            }
        }
        nodes.extend(aside);
        let mut edges = self.layers;
        edges.append(&mut mounts);
        let output = match &plan.output {
            Output::Image(_) => String::new(),
            Output::Directory { dest } => format!(" · output: {dest} of the last step"),
            Output::Verify => " · output: the verify report".to_string(),
        };
        Graph {
            title: format!(
                "{} · profile {} · {}{output}",
                plan.spec, plan.profile, plan.platform
            ),
            nodes,
            edges,
        }
    }
}

/// The plan's helper nodes, in a fixed order (constraints, resolver, epoch, bust, lock,
/// context, …), each with what it holds and, when it has one, its spec line.
fn helper_nodes(plan: &Plan) -> Vec<Node> {
    let mut helpers: Vec<&super::Node> = plan.nodes.iter().collect();
    helpers.sort_by_key(|h| h.id);
    helpers
        .into_iter()
        .map(|h| {
            let short = untagged(&h.name, h.id.as_str());
            let lines = || -> Vec<String> {
                match &h.source {
                    NodeSource::Files { files } => files
                        .iter()
                        .flat_map(|f| f.content.lines())
                        .filter(|l| !l.is_empty())
                        .map(String::from)
                        .collect(),
                    NodeSource::Local { .. } => vec![],
                }
            };
            let (kind, heading, details) = match (&h.source, h.id) {
                (
                    NodeSource::Local {
                        name,
                        exclude_patterns,
                        ..
                    },
                    _,
                ) => {
                    let mut d = vec![format!("local: {name}")];
                    if !exclude_patterns.is_empty() {
                        d.push(format!("{} .dockerignore patterns", exclude_patterns.len()));
                    }
                    (NodeKind::Context, "build context", d)
                }
                (_, NodeId::Constraints) => (NodeKind::File, "constraints.txt", lines()),
                (_, NodeId::Resolver) => (
                    NodeKind::File,
                    "resolver script",
                    vec!["pip install --dry-run --report → exact set".into()],
                ),
                (_, NodeId::Epoch) => (NodeKind::File, "epoch", lines()),
                (_, NodeId::Bust) => {
                    let steps: Vec<&str> = plan.busted.iter().map(|s| s.as_str()).collect();
                    let d = vec![format!("for {}", steps.join(", "))];
                    (NodeKind::File, "bust", d)
                }
                (_, NodeId::Lock) => (NodeKind::File, "torchkit.lock", vec![short_digests(short)]),
                (_, id) => (NodeKind::File, id.as_str(), vec![short_digests(short)]),
            };
            Node {
                id: h.id.as_str().into(),
                kind,
                heading: heading.into(),
                details,
                rule: None,
                rerun: (h.id == NodeId::Bust)
                    .then(|| "changes every build (per-build token)".to_string()),
                source: h
                    .span
                    .map(|s| format!("{}:{} ({})", plan.spec, s.line, h.origin.unwrap_or("spec"))),
                title: Some(h.name.clone()),
            }
        })
        .collect()
}

/// The cache rule of one exec in words, and its re-run mark. What marks an exec is the
/// plan's own data: it carries `ignore_cache`, or it mounts the bust node.
fn rule_words(
    rule: &CacheRule,
    ignore_cache: bool,
    busted: bool,
    epoch: Option<&str>,
) -> (String, Option<String>) {
    let reason = match rule {
        CacheRule::Bust { reason }
        | CacheRule::Reresolve { reason }
        | CacheRule::IgnoreCache { reason } => reason.as_str(),
        CacheRule::Reuse | CacheRule::Epoch => "bust node",
    };
    if ignore_cache {
        return ("ignore_cache".into(), Some(format!("re-runs: {reason}")));
    }
    if busted {
        return (
            "via the bust node; download caches kept".into(),
            Some(format!("re-runs: {reason}")),
        );
    }
    let words = match (rule, epoch) {
        (CacheRule::Epoch, Some(e)) => format!("cached until the epoch changes ({e})"),
        (CacheRule::Reresolve { .. }, Some(_)) => {
            "cached while the resolved set and the epoch are unchanged".into()
        }
        (CacheRule::Reresolve { .. }, None) => "cached while the resolved set is unchanged".into(),
        _ => "cached".into(),
    };
    (words, None)
}

/// A progress name without its `[torchkit …] ` tag and its `name: ` prefix, which the
/// drawing shows apart: `[torchkit 3/6] pip: resolve six` → `resolve six`.
fn untagged<'a>(title: &'a str, name: &str) -> &'a str {
    let rest = match title.split_once("] ") {
        Some((tag, rest)) if tag.starts_with("[torchkit") => rest,
        _ => title,
    };
    rest.strip_prefix(name)
        .and_then(|r| r.strip_prefix(": "))
        .unwrap_or(rest)
}

/// Digests shortened to 12 hex digits (`sha256:0123456789ab…`); `torchkit plan` has them
/// whole.
fn short_digests(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("sha256:") {
        let (head, tail) = rest.split_at(i + "sha256:".len());
        out.push_str(head);
        let hex = tail.chars().take_while(|c| c.is_ascii_hexdigit()).count();
        if hex > 12 {
            out.push_str(&tail[..12]);
            out.push('…');
        } else {
            out.push_str(&tail[..hex]);
        }
        rest = &tail[hex..];
    }
    out.push_str(rest);
    out
}

/// Lines of at most [`WRAP`] characters, broken at spaces, then before `@`, then anywhere.
fn wrap(text: &str) -> Vec<String> {
    let mut out = vec![];
    for para in text.split('\n') {
        let mut line = String::new();
        for word in para.split(' ') {
            for (k, piece) in split_long(word).into_iter().enumerate() {
                // The pieces of one long word join without a space.
                let sep = usize::from(k == 0 && !line.is_empty());
                let len = line.chars().count();
                if len > 0 && len + sep + piece.chars().count() > WRAP {
                    out.push(std::mem::take(&mut line));
                } else if sep == 1 {
                    line.push(' ');
                }
                line.push_str(&piece);
            }
        }
        out.push(line);
    }
    out
}

fn split_long(word: &str) -> Vec<String> {
    if word.chars().count() <= WRAP {
        return vec![word.to_string()];
    }
    if let Some(at) = word.find('@').filter(|&i| i > 0) {
        let mut v = split_long(&word[..at]);
        v.extend(split_long(&word[at..]));
        return v;
    }
    let chars: Vec<char> = word.chars().collect();
    chars.chunks(WRAP).map(|c| c.iter().collect()).collect()
}

/// Colours: one for re-running nodes, greys for everything else (prints in black and white).
const RERUN_FILL: &str = "#fde4e1";
const RERUN_LINE: &str = "#b42318";
const HELPER_FILL: &str = "#f2f2f2";
/// The verify stage: checks run on the image, not kept in it.
const VERIFY_FILL: &str = "#e8f4ea";
const CACHE_FILL: &str = "#e8f0fb";
const MUTED: &str = "#555555";

impl Graph {
    fn kind_of(&self, id: &str) -> Option<NodeKind> {
        self.nodes.iter().find(|n| n.id == id).map(|n| n.kind)
    }

    /// Graphviz DOT (`dot -Tsvg`), with HTML-like labels.
    pub fn to_dot(&self) -> String {
        let mut o = String::new();
        o.push_str("digraph torchkit {\n");
        o.push_str(&format!(
            "  graph [rankdir=TB, nodesep=0.35, ranksep=0.45, fontname=\"Helvetica\", fontsize=13, labelloc=t, label=<<B>{}</B><BR/><FONT POINT-SIZE=\"10\">{}</FONT>>];\n",
            html(&self.title),
            html(LEGEND)
        ));
        o.push_str(&format!(
            "  node [fontname=\"Helvetica\", fontsize=11, shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", color=\"#333333\", margin=\"0.15,0.06\"];\n  edge [fontname=\"Helvetica\", fontsize=9, color=\"{MUTED}\", fontcolor=\"{MUTED}\"];\n"
        ));
        for n in &self.nodes {
            o.push_str(&format!("  {} [{}];\n", n.id, dot_node_attrs(n)));
        }
        for e in &self.edges {
            let mut attrs: Vec<String> = match e.kind {
                // The layers that stay in the image form a straight spine; a resolve half
                // (whose layer is dropped) sits beside it.
                EdgeKind::Layer
                    if matches!(
                        self.kind_of(&e.to),
                        Some(NodeKind::Resolve | NodeKind::Verify)
                    ) =>
                {
                    vec!["penwidth=2.2".into(), "color=\"#222222\"".into()]
                }
                EdgeKind::Layer => vec![
                    "penwidth=2.2".into(),
                    "color=\"#222222\"".into(),
                    "weight=10".into(),
                ],
                EdgeKind::Bind | EdgeKind::Copy | EdgeKind::Secret => {
                    vec!["style=dashed".into()]
                }
                EdgeKind::Cache => vec!["style=dotted".into(), "penwidth=1.4".into()],
            };
            if let Some(l) = &e.label {
                attrs.push(format!("label=<{}>", html_lines(&wrap(l))));
            }
            o.push_str(&format!(
                "  {} -> {} [{}];\n",
                e.from,
                e.to,
                attrs.join(", ")
            ));
        }
        o.push_str("}\n");
        o
    }

    /// A Mermaid flowchart (renders in GitHub, GitLab and the Mermaid live editor).
    pub fn to_mermaid(&self) -> String {
        let mut o = String::new();
        o.push_str("---\n");
        o.push_str(&format!("title: \"{}\"\n", yaml_string(&self.title)));
        o.push_str("---\n");
        o.push_str("flowchart TB\n");
        o.push_str(&format!("  %% {}\n", LEGEND.replace('\n', " ")));
        for n in &self.nodes {
            let label = mermaid_label(n);
            let shaped = match n.kind {
                NodeKind::Image | NodeKind::Exec | NodeKind::Copy => format!("[\"{label}\"]"),
                NodeKind::Resolve | NodeKind::Verify => format!("(\"{label}\")"),
                NodeKind::File => format!("[/\"{label}\"/]"),
                NodeKind::Context => format!("[[\"{label}\"]]"),
                NodeKind::Cache => format!("[(\"{label}\")]"),
                NodeKind::Secret => format!("{{{{\"{label}\"}}}}"),
            };
            o.push_str(&format!("  {}{shaped}\n", n.id));
        }
        for e in &self.edges {
            let arrow = match e.kind {
                EdgeKind::Layer => "==>",
                _ => "-.->",
            };
            match &e.label {
                Some(l) => o.push_str(&format!(
                    "  {} {arrow}|\"{}\"| {}\n",
                    e.from,
                    wrap(l)
                        .iter()
                        .map(|x| mermaid_text(x))
                        .collect::<Vec<_>>()
                        .join("<br/>"),
                    e.to
                )),
                None => o.push_str(&format!("  {} {arrow} {}\n", e.from, e.to)),
            }
        }
        o.push_str(&format!(
            "  classDef rerun fill:{RERUN_FILL},stroke:{RERUN_LINE},stroke-width:3px,stroke-dasharray:6 3\n"
        ));
        o.push_str(&format!(
            "  classDef helper fill:{HELPER_FILL},stroke:#777777\n  classDef cache fill:{CACHE_FILL},stroke:#777777\n  classDef verify fill:{VERIFY_FILL},stroke:#333333\n"
        ));
        let class = |f: &dyn Fn(&Node) -> bool| -> Vec<&str> {
            self.nodes
                .iter()
                .filter(|n| f(n))
                .map(|n| n.id.as_str())
                .collect()
        };
        let helpers =
            class(&|n| n.rerun.is_none() && matches!(n.kind, NodeKind::File | NodeKind::Context));
        let caches =
            class(&|n| n.rerun.is_none() && matches!(n.kind, NodeKind::Cache | NodeKind::Secret));
        let reruns = class(&|n| n.rerun.is_some());
        let verify = class(&|n| n.rerun.is_none() && n.kind == NodeKind::Verify);
        // Mermaid draws every `-.->` alike; caches get a finer, bluer dash.
        let cache_links: Vec<String> = self
            .edges
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kind == EdgeKind::Cache)
            .map(|(i, _)| i.to_string())
            .collect();
        if !cache_links.is_empty() {
            o.push_str(&format!(
                "  linkStyle {} stroke:#4a6fa5,stroke-dasharray:2 3\n",
                cache_links.join(",")
            ));
        }
        for (ids, name) in [
            (helpers, "helper"),
            (caches, "cache"),
            (verify, "verify"),
            (reruns, "rerun"),
        ] {
            if !ids.is_empty() {
                o.push_str(&format!("  class {} {name}\n", ids.join(",")));
            }
        }
        o
    }
}

/// What the marks mean, printed under the title.
const LEGEND: &str = "thick arrows: the layer a step starts from · dashed: read-only mounts · dotted: download caches · red, thick dashed border: re-runs every build · green: the verify stage, run on the image and not part of it";

fn dot_node_attrs(n: &Node) -> String {
    let (shape, fill) = match n.kind {
        NodeKind::Image | NodeKind::Exec | NodeKind::Resolve | NodeKind::Copy => ("box", "#ffffff"),
        NodeKind::Verify => ("box", VERIFY_FILL),
        NodeKind::File => ("note", HELPER_FILL),
        NodeKind::Context => ("folder", HELPER_FILL),
        NodeKind::Cache => ("cylinder", CACHE_FILL),
        NodeKind::Secret => ("hexagon", HELPER_FILL),
    };
    let step = n.kind.is_step();
    let mut style = vec![];
    if step {
        style.push("rounded");
    }
    style.push("filled");
    if n.rerun.is_some() {
        style.push("dashed");
    }
    let mut a = vec![
        format!("shape={shape}"),
        format!("style=\"{}\"", style.join(",")),
    ];
    if n.rerun.is_some() {
        a.push(format!("fillcolor=\"{RERUN_FILL}\""));
        a.push(format!("color=\"{RERUN_LINE}\""));
        a.push("penwidth=3".into());
    } else {
        a.push(format!("fillcolor=\"{fill}\""));
    }
    // The layers the image keeps line up in one column.
    if step && !matches!(n.kind, NodeKind::Resolve | NodeKind::Verify) {
        a.push("group=layers".into());
    }
    a.push(format!("label=<{}>", dot_label(n)));
    if let Some(t) = &n.title {
        a.push(format!("tooltip=\"{}\"", dot_string(t)));
    }
    a.join(", ")
}

fn dot_label(n: &Node) -> String {
    let mut parts = vec![format!("<B>{}</B>", html(&n.heading))];
    if let Some(r) = &n.rerun {
        parts.push(format!(
            "<FONT COLOR=\"{RERUN_LINE}\"><B>{}</B></FONT>",
            html_lines(&wrap(r))
        ));
    }
    for d in &n.details {
        parts.push(html_lines(&wrap(d)));
    }
    if let Some(r) = &n.rule {
        parts.push(format!(
            "<FONT POINT-SIZE=\"10\"><I>{}</I></FONT>",
            html_lines(&wrap(r))
        ));
    }
    if let Some(s) = &n.source {
        parts.push(format!(
            "<FONT POINT-SIZE=\"9\" COLOR=\"{MUTED}\">{}</FONT>",
            html(s)
        ));
    }
    parts.join("<BR/>")
}

fn mermaid_label(n: &Node) -> String {
    let mut parts = vec![format!("<b>{}</b>", mermaid_text(&n.heading))];
    if let Some(r) = &n.rerun {
        parts.push(format!("<b>{}</b>", mermaid_text(r)));
    }
    for d in &n.details {
        parts.extend(wrap(d).iter().map(|l| mermaid_text(l)));
    }
    if let Some(r) = &n.rule {
        parts.push(format!("<i>{}</i>", mermaid_text(r)));
    }
    if let Some(s) = &n.source {
        parts.push(format!("<small>{}</small>", mermaid_text(s)));
    }
    parts.join("<br/>")
}

/// Text for a Graphviz HTML-like label: `&`, `<`, `>`, `"` as entities; no raw newlines.
pub fn html(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\n' => o.push_str("<BR/>"),
            c if c.is_control() => {}
            c => o.push(c),
        }
    }
    o
}

fn html_lines(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| html(l))
        .collect::<Vec<_>>()
        .join("<BR/>")
}

/// A DOT double-quoted string's content: `\` and `"` escaped, newlines as `\n`.
pub fn dot_string(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c if c.is_control() => {}
            c => o.push(c),
        }
    }
    o
}

/// The content of a YAML double-quoted string (the Mermaid front matter's title).
fn yaml_string(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// Text inside a quoted Mermaid label: the characters Mermaid or its HTML would read as
/// syntax become entity codes (`#34;`), newlines `<br/>`.
pub fn mermaid_text(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => o.push_str("#34;"),
            '#' => o.push_str("#35;"),
            '&' => o.push_str("#38;"),
            '<' => o.push_str("#60;"),
            '>' => o.push_str("#62;"),
            '`' => o.push_str("#96;"),
            '\n' => o.push_str("<br/>"),
            c if c.is_control() => {}
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{
        plan, CaSecret, CompileOptions, NoCache, CA_SECRET_ID, CA_SECRET_PATH, CONSTRAINTS_MOUNT,
        EPOCH_MOUNT, LOCK_MOUNT, REQUIREMENTS_MOUNT, RESOLVED_MOUNT, RESOLVE_SCRIPT_MOUNT,
    };
    use crate::resolve::resolve;
    use crate::spec::parse;
    use crate::vocab::{Profile, Step};

    const SPEC: &str = r#"[torch]
version = "2.8.0"
cuda = "12.8"
[system]
apt = ["jq"]
[python]
packages = ["six==1.16.0"]
requirements = "requirements.txt"
[image]
copy = ["src/"]
"#;

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn graph_of(extra: &str, opts: CompileOptions) -> Graph {
        let spec = parse(&format!("{SPEC}{extra}"), "torchkit.toml").unwrap();
        let res = resolve(&spec.request()).unwrap();
        graph(&plan(&spec, &res, &opts).unwrap())
    }

    fn opts(profile: Profile) -> CompileOptions {
        CompileOptions {
            profile: Some(profile),
            build_token: Some("token".into()),
            ..CompileOptions::default()
        }
    }

    fn node<'a>(g: &'a Graph, id: &str) -> &'a Node {
        g.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id} in {:?}", ids(g)))
    }

    fn ids(g: &Graph) -> Vec<&str> {
        g.nodes.iter().map(|n| n.id.as_str()).collect()
    }

    /// The DOT statement of one node.
    fn dot_line<'a>(dot: &'a str, id: &str) -> &'a str {
        dot.lines()
            .find(|l| l.trim_start().starts_with(&format!("{id} [")))
            .unwrap_or_else(|| panic!("no DOT line for {id}"))
    }

    fn inputs(g: &Graph, to: &str) -> Vec<(String, EdgeKind, Option<String>)> {
        g.edges
            .iter()
            .filter(|e| e.to == to)
            .map(|e| (e.from.clone(), e.kind, e.dest.clone()))
            .collect()
    }

    #[test]
    fn html_escapes_markup_quotes_and_newlines() {
        assert_eq!(
            html("a<b> & \"c\"\nd\u{7}"),
            "a&lt;b&gt; &amp; &quot;c&quot;<BR/>d"
        );
    }

    #[test]
    fn dot_strings_escape_backslashes_quotes_and_newlines() {
        assert_eq!(dot_string(r#"say "hi" \n"#), r#"say \"hi\" \\n"#);
        assert_eq!(dot_string("a\nb"), r"a\nb");
    }

    #[test]
    fn mermaid_text_turns_syntax_into_entity_codes() {
        assert_eq!(
            mermaid_text("x<2; y>\"1\" & #z `q`\nnext"),
            "x#60;2; y#62;#34;1#34; #38; #35;z #96;q#96;<br/>next"
        );
    }

    /// Labels with quotes, `<`, `>`, `&` and newlines, everywhere a label can be.
    fn nasty() -> Graph {
        let text = "numpy<2; python_version < \"3.12\" & a>b\nsecond line";
        Graph {
            title: "we\"ird<spec>.toml · profile dev".into(),
            nodes: vec![
                Node {
                    id: "step1".into(),
                    kind: NodeKind::Exec,
                    heading: "1/2 \"pip\" <&>".into(),
                    details: vec![text.into()],
                    rule: Some("cached <always> & \"forever\"".into()),
                    rerun: Some("re-runs: \"because\" <x> & y\nz".into()),
                    source: Some("a\"b<c>.toml:1 (x&y)".into()),
                    title: Some("[torchkit 1/2] pip: \"q\" \\ <x>\nnext".into()),
                },
                Node {
                    id: "context".into(),
                    kind: NodeKind::Context,
                    heading: "ctx".into(),
                    details: vec![],
                    rule: None,
                    rerun: None,
                    source: None,
                    title: None,
                },
            ],
            edges: vec![Edge {
                from: "context".into(),
                to: "step1".into(),
                kind: EdgeKind::Copy,
                dest: None,
                label: Some(text.into()),
            }],
        }
    }

    /// What is left of an HTML-like label once the tags torchkit writes are removed.
    fn strip_tags(label: &str) -> String {
        let mut s = label.to_string();
        for tag in ["<B>", "</B>", "<I>", "</I>", "<BR/>", "</FONT>"] {
            s = s.replace(tag, "");
        }
        while let Some(i) = s.find("<FONT ") {
            let j = i + s[i..].find('>').expect("FONT tag closes");
            s.replace_range(i..=j, "");
        }
        s
    }

    /// The HTML-like labels of a DOT text, delimited as Graphviz does: `<` … the `>` that
    /// balances it. Each must end its attribute (`,` or `]` follows).
    fn html_labels(dot: &str) -> Vec<&str> {
        let mut out = vec![];
        let mut rest = dot;
        while let Some(i) = rest.find("label=<") {
            let start = i + "label=".len();
            let mut depth = 0;
            let mut end = None;
            for (k, c) in rest[start..].char_indices() {
                match c {
                    '<' => depth += 1,
                    '>' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(start + k);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let end = end.expect("every label closes");
            assert!(
                rest[end + 1..].starts_with([',', ']']),
                "label runs on: {}",
                &rest[start..]
            );
            out.push(&rest[start + 1..end]);
            rest = &rest[end + 1..];
        }
        out
    }

    #[test]
    fn labels_with_markup_characters_give_valid_dot() {
        let dot = nasty().to_dot();
        let labels = html_labels(&dot);
        // Graph title, two nodes, one edge.
        assert_eq!(labels.len(), 4, "{dot}");
        for label in labels {
            // Only torchkit's own tags: the text's `<`, `>`, `&` and quotes are entities.
            let text = strip_tags(label);
            assert!(
                !text.contains(['<', '>', '"', '\n']),
                "raw markup in {text:?}"
            );
            for (k, _) in text.match_indices('&') {
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;"]
                        .iter()
                        .any(|e| text[k..].starts_with(e)),
                    "bare & in {text:?}"
                );
            }
        }
        assert!(dot.contains("&quot;3.12&quot; &amp; a&gt;b<BR/>second line"));
        // The tooltip is a quoted string: quotes and backslashes escaped, newline as \n.
        assert!(dot.contains(r#"tooltip="[torchkit 1/2] pip: \"q\" \\ <x>\nnext""#));
        // One statement a line.
        assert!(
            dot.lines().skip(1).all(|l| l == "}" || l.ends_with(';')),
            "{dot}"
        );
    }

    #[test]
    fn labels_with_markup_characters_give_valid_mermaid() {
        let mmd = nasty().to_mermaid();
        assert!(mmd.starts_with("---\ntitle: \"we\\\"ird<spec>.toml · profile dev\"\n---\n"));
        for line in mmd.lines().skip(4) {
            // A node or edge label is one quoted string: no quote inside it.
            if let (Some(a), Some(b)) = (line.find('"'), line.rfind('"')) {
                let inner = &line[a + 1..b];
                assert!(!inner.contains('"'), "quote inside a label: {line}");
                let text = inner
                    .replace("<b>", "")
                    .replace("</b>", "")
                    .replace("<i>", "")
                    .replace("</i>", "")
                    .replace("<small>", "")
                    .replace("</small>", "")
                    .replace("<br/>", "");
                assert!(!text.contains(['<', '>', '&', '`']), "raw markup: {line}");
            }
        }
        assert!(mmd.contains("#34;3.12#34; #38; a#62;b<br/>second line"));
        assert!(mmd.contains("-.->|\"numpy#60;2;"));
    }

    #[test]
    fn a_busted_step_is_marked_and_a_reused_one_is_not() {
        let g = graph_of("[cache]\nbust = [\"user\"]\n", opts(Profile::Test));
        let dot = g.to_dot();
        let mmd = g.to_mermaid();
        // Test profile: the resolve halves re-run; their installs follow the resolved set.
        for id in ["step3_resolve", "step4_resolve"] {
            assert_eq!(node(&g, id).rerun.as_deref(), Some("re-runs: test profile"));
        }
        assert_eq!(
            node(&g, "step5").rerun.as_deref(),
            Some("re-runs: [cache] bust")
        );
        for id in ["step1", "step2", "step3_install", "step4_install", "step6"] {
            assert_eq!(node(&g, id).rerun, None, "{id}");
        }
        assert_eq!(
            node(&g, "step3_install").rule.as_deref(),
            Some("cached while the resolved set is unchanged")
        );
        // Colour, border style and words: the mark reads in black and white too.
        let marked = dot_line(&dot, "step3_resolve");
        assert!(
            marked.contains("style=\"rounded,filled,dashed\""),
            "{marked}"
        );
        assert!(marked.contains("penwidth=3"), "{marked}");
        assert!(
            marked.contains(&format!("color=\"{RERUN_LINE}\"")),
            "{marked}"
        );
        assert!(marked.contains("re-runs: test profile"), "{marked}");
        let plain = dot_line(&dot, "step2");
        assert!(
            !plain.contains("dashed") && !plain.contains("penwidth"),
            "{plain}"
        );
        assert!(!plain.contains("re-runs"), "{plain}");
        let class = mmd
            .lines()
            .find(|l| l.trim_start().starts_with("class ") && l.ends_with(" rerun"))
            .expect("a rerun class line");
        assert_eq!(
            class.trim(),
            "class step3_resolve,step4_resolve,step5,bust rerun"
        );
        // The bust node changes every build and feeds exactly the busted execs.
        assert!(node(&g, "bust").rerun.is_some());
        let fed: Vec<&str> = g
            .edges
            .iter()
            .filter(|e| e.from == "bust")
            .map(|e| e.to.as_str())
            .collect();
        assert_eq!(fed, ["step3_resolve", "step4_resolve", "step5"]);
    }

    #[test]
    fn dev_marks_nothing_and_has_no_bust_node() {
        let g = graph_of("", opts(Profile::Dev));
        assert!(g.nodes.iter().all(|n| n.rerun.is_none()), "{:?}", g.nodes);
        assert!(!ids(&g).contains(&"bust"));
        assert!(!g.to_dot().contains("re-runs:"));
        assert!(!g.to_mermaid().contains("class step"));
    }

    #[test]
    fn release_marks_every_step_with_ignore_cache() {
        let mut o = opts(Profile::Release);
        o.base.digest = Some(DIGEST.into());
        let g = graph_of("", o);
        for n in g.nodes.iter().filter(|n| n.kind.is_step()) {
            assert_eq!(
                n.rerun.as_deref(),
                Some("re-runs: release profile"),
                "{}",
                n.id
            );
            assert_eq!(n.rule.as_deref(), Some("ignore_cache"), "{}", n.id);
        }
        // No download caches under release, and the pinned base shows a short digest.
        assert!(!g.nodes.iter().any(|n| n.kind == NodeKind::Cache));
        assert_eq!(
            node(&g, "step1").details,
            ["docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime@sha256:111111111111…"]
        );
    }

    #[test]
    fn an_unpinned_release_is_drawn_and_says_it_cannot_be_built() {
        let g = graph_of("", opts(Profile::Release));
        assert_eq!(
            node(&g, "step1").details,
            [
                "docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime",
                "unpinned: a release build needs the base's digest"
            ]
        );
        let mut o = opts(Profile::Dev);
        o.base.digest = None;
        assert_eq!(node(&graph_of("", o), "step1").details.len(), 1);
    }

    #[test]
    fn an_epoch_is_a_helper_mounted_by_both_halves() {
        let g = graph_of("[cache]\nepoch = \"2026-11\"\n", opts(Profile::Dev));
        assert_eq!(node(&g, "epoch").details[0], "2026-11");
        // Helper nodes name their spec line and their op, as steps do.
        assert_eq!(
            node(&g, "epoch").source.as_deref(),
            Some("torchkit.toml:12 (cache.epoch)")
        );
        assert_eq!(
            node(&g, "epoch").title.as_deref(),
            Some("[torchkit] epoch 2026-11")
        );
        for id in [
            "step3_resolve",
            "step3_install",
            "step4_resolve",
            "step4_install",
        ] {
            assert!(
                inputs(&g, id).contains(&(
                    "epoch".into(),
                    EdgeKind::Bind,
                    Some(EPOCH_MOUNT.into())
                )),
                "{id}"
            );
            assert_eq!(
                node(&g, id).rule.as_deref(),
                Some("cached until the epoch changes (2026-11)")
            );
        }
        assert!(!inputs(&g, "step2").iter().any(|(f, ..)| f == "epoch"));
    }

    #[test]
    fn resolve_and_install_halves_are_wired_as_lowered() {
        let g = graph_of("", opts(Profile::Dev));
        let resolve = inputs(&g, "step4_resolve");
        for (from, dest) in [
            ("step3_install", None),
            ("constraints", Some(CONSTRAINTS_MOUNT)),
            ("resolver", Some(RESOLVE_SCRIPT_MOUNT)),
            ("context", Some(REQUIREMENTS_MOUNT)),
        ] {
            assert!(
                resolve
                    .iter()
                    .any(|(f, _, d)| f == from && d.as_deref() == dest),
                "{from} → step4_resolve: {resolve:?}"
            );
        }
        let install = inputs(&g, "step4_install");
        assert!(install.contains(&(
            "step4_resolve".into(),
            EdgeKind::Bind,
            Some(RESOLVED_MOUNT.into())
        )));
        // The install of a resolved set needs neither the constraints nor the script.
        assert!(!install
            .iter()
            .any(|(f, ..)| f == "constraints" || f == "resolver" || f == "context"));
        // One mount point per helper: said once in the node, not on each edge.
        assert!(node(&g, "constraints")
            .details
            .contains(&format!("mounted read-only at {CONSTRAINTS_MOUNT}")));
        assert!(g
            .edges
            .iter()
            .filter(|e| e.from == "constraints")
            .all(|e| e.label.is_none()));
        // The context is mounted at one place and copied from: its edges keep labels.
        assert!(g
            .edges
            .iter()
            .filter(|e| e.from == "context")
            .all(|e| e.label.is_some()));
    }

    #[test]
    fn helpers_appear_only_when_a_step_mounts_them() {
        let mut o = opts(Profile::Dev);
        o.target = Some(Step::Apt);
        let g = graph_of("", o);
        assert_eq!(ids(&g), ["step1", "step2", "cache1"]);
    }

    #[test]
    fn a_locked_build_mounts_the_lock_and_resolves_nothing() {
        let mut o = opts(Profile::Dev);
        o.lock = Some(crate::plan::LockedSet {
            reference: "docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime".into(),
            digest: DIGEST.into(),
            apt: vec!["jq=1.6-2.1".into()],
            python: "six==1.16.0 --hash=sha256:00\n".into(),
            python_count: 1,
        });
        o.ca_secret = CaSecret::Required;
        let g = graph_of("", o);
        assert!(!ids(&g).contains(&"resolver"));
        assert!(!g.nodes.iter().any(|n| n.kind == NodeKind::Resolve));
        let pip = inputs(&g, "step3");
        assert!(pip.contains(&("lock".into(), EdgeKind::Bind, Some(LOCK_MOUNT.into()))));
        assert!(pip.contains(&(
            "constraints".into(),
            EdgeKind::Bind,
            Some(CONSTRAINTS_MOUNT.into())
        )));
        assert!(pip.contains(&(
            "secret1".into(),
            EdgeKind::Secret,
            Some(CA_SECRET_PATH.into())
        )));
        assert_eq!(node(&g, "secret1").details[0], format!("id {CA_SECRET_ID}"));
    }

    #[test]
    fn no_cache_busts_whole_steps_and_marks_the_copy_ignore_cache() {
        let mut o = opts(Profile::Dev);
        o.no_cache = NoCache::All;
        let g = graph_of("", o);
        assert_eq!(
            node(&g, "step3_install").rerun.as_deref(),
            Some("re-runs: --no-cache")
        );
        assert_eq!(node(&g, "step6").rule.as_deref(), Some("ignore_cache"));
        assert!(inputs(&g, "step3_install")
            .iter()
            .any(|(f, ..)| f == "bust"));
    }

    #[test]
    fn each_step_names_its_spec_line() {
        let g = graph_of("", opts(Profile::Dev));
        assert_eq!(
            node(&g, "step2").source.as_deref(),
            Some("torchkit.toml:5 (system.apt)")
        );
        assert_eq!(
            node(&g, "step4_resolve").source.as_deref(),
            Some("torchkit.toml:8 (python.requirements)")
        );
        // The mark of the progress title moves to its own line; the prefix to the heading.
        assert_eq!(node(&g, "step4_resolve").heading, "4/6 requirements");
        assert_eq!(
            node(&g, "step4_resolve").details,
            ["resolve -r requirements.txt"]
        );
    }

    #[test]
    fn long_lines_wrap_at_spaces_and_before_a_digest() {
        let long = "a ".repeat(40);
        assert!(wrap(long.trim()).iter().all(|l| l.chars().count() <= WRAP));
        let r = format!("docker.io/x/{}@sha256:{}", "y".repeat(30), "0".repeat(64));
        let lines = wrap(&format!("pull {r} now"));
        assert_eq!(lines[0], format!("pull docker.io/x/{}", "y".repeat(30)));
        assert!(lines[1].starts_with("@sha256:"), "{lines:?}");
        assert!(lines.iter().all(|l| l.chars().count() <= WRAP), "{lines:?}");
        assert_eq!(lines.concat(), format!("pull {r} now"));
        assert_eq!(wrap("a\nb"), ["a", "b"]);
    }
}
