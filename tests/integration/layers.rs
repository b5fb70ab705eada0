//! The import rules of the source tree, checked on the code itself: each crate's modules form
//! layers that import only downward, no file imports another in a circle, and only the
//! engine's device-facing layers (`device`, `segment`, `meta`, `volume`, and `profile` for the
//! device settings it derives) name `device` types.
//!
//! Every `use` and every path of non-test code is resolved against the crate's module tree
//! (parsed with `syn`): `crate::a::b`, `super::`, `self::` and child-module paths name the
//! deepest module they reach; that file imports that module. A `pub use` in a module of its
//! own descendant is the module's facade, not an import. Each file's module doc must say what
//! it must not import (the phrase "must not import"), so a newcomer reads the rule where the
//! code is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// A module path inside one crate (`["auth", "sigv4"]`; the root is empty).
type ModPath = Vec<String>;

struct Module {
    file: PathBuf,
    children: BTreeSet<String>,
    /// Modules this file imports.
    imports: BTreeSet<ModPath>,
    doc: String,
}

/// The crate's module tree from its root file, with what each file imports.
fn load_crate(root_file: &Path) -> BTreeMap<ModPath, Module> {
    let mut modules = BTreeMap::new();
    let mut pending = vec![(Vec::new(), root_file.to_path_buf())];
    let mut parsed = Vec::new();
    while let Some((path, file)) = pending.pop() {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{file:?}: {e}"));
        let dir = if path.is_empty() || file.ends_with("mod.rs") {
            file.parent().unwrap().to_path_buf()
        } else {
            file.with_extension("")
        };
        let mut children = BTreeSet::new();
        for item in &ast.items {
            if let syn::Item::Mod(m) = item {
                if m.content.is_none() && !is_test_only(&m.attrs) {
                    let name = m.ident.to_string();
                    let flat = dir.join(format!("{name}.rs"));
                    let nested = dir.join(&name).join("mod.rs");
                    let child = if flat.exists() { flat } else { nested };
                    let mut child_path = path.clone();
                    child_path.push(name.clone());
                    pending.push((child_path, child));
                    children.insert(name);
                }
            }
        }
        let doc = doc_of(&ast.attrs);
        modules.insert(
            path.clone(),
            Module {
                file: file.clone(),
                children,
                imports: BTreeSet::new(),
                doc,
            },
        );
        parsed.push((path, ast));
    }
    let tree: BTreeMap<ModPath, BTreeSet<String>> = modules
        .iter()
        .map(|(p, m)| (p.clone(), m.children.clone()))
        .collect();
    for (path, ast) in parsed {
        let mut visitor = Imports {
            tree: &tree,
            file_module: path.clone(),
            scope: path.clone(),
            found: BTreeSet::new(),
        };
        for item in &ast.items {
            visitor.item(item);
        }
        let module = modules.get_mut(&path).unwrap();
        module.imports = visitor.found;
    }
    modules
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta
                .require_list()
                .map(|l| l.tokens.to_string() == "test")
                .unwrap_or(false)
    })
}

fn doc_of(attrs: &[syn::Attribute]) -> String {
    let mut doc = String::new();
    for a in attrs {
        if let syn::Meta::NameValue(nv) = &a.meta {
            if nv.path.is_ident("doc") {
                if let syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) = &nv.value
                {
                    doc.push_str(&s.value());
                    doc.push('\n');
                }
            }
        }
    }
    doc
}

/// Collects the modules one file's non-test code names.
struct Imports<'a> {
    tree: &'a BTreeMap<ModPath, BTreeSet<String>>,
    file_module: ModPath,
    /// The module the code being visited is in (the file's, or an inline module of it).
    scope: ModPath,
    found: BTreeSet<ModPath>,
}

impl Imports<'_> {
    fn item(&mut self, item: &syn::Item) {
        match item {
            syn::Item::Mod(m) => {
                if is_test_only(&m.attrs) {
                    return;
                }
                if let Some((_, items)) = &m.content {
                    let saved = self.scope.clone();
                    self.scope.push(m.ident.to_string());
                    for i in items {
                        self.item(i);
                    }
                    self.scope = saved;
                }
            }
            syn::Item::Use(u) => {
                let mut paths = Vec::new();
                flatten_use(&u.tree, &mut Vec::new(), &mut paths);
                let reexport = !matches!(u.vis, syn::Visibility::Inherited);
                for p in paths {
                    if let Some(target) = self.resolve(&p) {
                        let facade = reexport && target.starts_with(&self.file_module);
                        if !facade {
                            self.add(target);
                        }
                    }
                }
            }
            other => {
                if !has_test_attr(other) {
                    self.visit_item(other);
                }
            }
        }
    }

    fn add(&mut self, target: ModPath) {
        if !target.is_empty() && target != self.file_module {
            self.found.insert(target);
        }
    }

    /// The deepest module `segments` reaches from the current scope, if it names one of
    /// this crate's modules.
    fn resolve(&self, segments: &[String]) -> Option<ModPath> {
        let first = segments.first()?;
        let mut base: ModPath;
        let mut rest = &segments[1..];
        match first.as_str() {
            "crate" => base = Vec::new(),
            "self" => base = self.scope.clone(),
            "super" => {
                base = self.scope.clone();
                base.pop();
                while rest.first().map(|s| s == "super").unwrap_or(false) {
                    base.pop();
                    rest = &rest[1..];
                }
            }
            name if self.children_of(&self.scope).contains(name) => {
                base = self.scope.clone();
                base.push(name.to_string());
            }
            _ => return None,
        }
        while let Some(next) = rest.first() {
            if self.children_of(&base).contains(next.as_str()) {
                base.push(next.clone());
                rest = &rest[1..];
            } else {
                break;
            }
        }
        // An inline module belongs to its file.
        while !self.tree.contains_key(&base) {
            base.pop();
        }
        Some(base)
    }

    fn children_of(&self, m: &ModPath) -> BTreeSet<&str> {
        self.tree
            .get(m)
            .map(|c| c.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

fn has_test_attr(item: &syn::Item) -> bool {
    let attrs = match item {
        syn::Item::Fn(f) => &f.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Const(c) => &c.attrs,
        syn::Item::Static(s) => &s.attrs,
        syn::Item::Struct(s) => &s.attrs,
        _ => return false,
    };
    is_test_only(attrs) || attrs.iter().any(|a| a.path().is_ident("test"))
}

impl<'ast> Visit<'ast> for Imports<'_> {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if let Some(target) = self.resolve(&segments) {
            self.add(target);
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut paths = Vec::new();
        flatten_use(&u.tree, &mut Vec::new(), &mut paths);
        for p in paths {
            if let Some(target) = self.resolve(&p) {
                self.add(target);
            }
        }
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        // Paths inside macro calls (`s3_error!(...)` arguments) are tokens; read them as
        // expressions where they parse.
        if let Ok(args) = mac.parse_body_with(
            syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated,
        ) {
            for e in &args {
                self.visit_expr(e);
            }
        }
        self.visit_path(&mac.path);
    }
}

fn flatten_use(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten_use(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let mut p = prefix.clone();
            if n.ident != "self" {
                p.push(n.ident.to_string());
            }
            out.push(p);
        }
        syn::UseTree::Rename(r) => {
            let mut p = prefix.clone();
            if r.ident != "self" {
                p.push(r.ident.to_string());
            }
            out.push(p);
        }
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                flatten_use(t, prefix, out);
            }
        }
    }
}

fn show(m: &ModPath) -> String {
    if m.is_empty() {
        "crate".to_string()
    } else {
        m.join("::")
    }
}

/// The rank of `module` in `layers` (listed bottom first; a module takes the rank of the
/// longest prefix listed).
fn rank(layers: &[&[&str]], module: &ModPath) -> Option<usize> {
    let name = show(module);
    let mut best: Option<(usize, usize)> = None;
    for (i, layer) in layers.iter().enumerate() {
        for prefix in *layer {
            let matches = name == *prefix || name.starts_with(&format!("{prefix}::"));
            if matches && best.map(|(len, _)| prefix.len() > len).unwrap_or(true) {
                best = Some((prefix.len(), i));
            }
        }
    }
    best.map(|(_, i)| i)
}

/// Every violation of the layer order and every import circle of one crate.
fn violations(root_file: &Path, layers: &[&[&str]]) -> Vec<String> {
    let modules = load_crate(root_file);
    let mut out = Vec::new();
    for (path, m) in &modules {
        if path.is_empty() {
            continue;
        }
        if !m.doc.to_lowercase().contains("must not import") {
            out.push(format!(
                "{}: the module doc does not say what it must not import",
                m.file.display()
            ));
        }
        let Some(own) = rank(layers, path) else {
            out.push(format!("{}: module is in no layer", show(path)));
            continue;
        };
        for target in &m.imports {
            match rank(layers, target) {
                Some(r) if r > own => out.push(format!(
                    "{} (layer {own}) imports {} (layer {r}): a lower layer imports a higher one",
                    show(path),
                    show(target)
                )),
                _ => {}
            }
        }
    }
    // Circles, among files that are not each other's folder: a folder's `mod.rs` and the
    // files in it are one unit to the rest of the crate, and may refer to each other.
    let nodes: Vec<&ModPath> = modules.keys().collect();
    let index: BTreeMap<&ModPath, usize> = nodes.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let edges: Vec<Vec<usize>> = nodes
        .iter()
        .map(|m| {
            modules[*m]
                .imports
                .iter()
                .filter(|t| !t.starts_with(m) && !m.starts_with(t))
                .filter_map(|t| index.get(t).copied())
                .collect()
        })
        .collect();
    for circle in strongly_connected(&edges) {
        if circle.len() > 1 {
            let names: Vec<String> = circle.iter().map(|&i| show(nodes[i])).collect();
            out.push(format!("import circle among: {}", names.join(", ")));
        }
    }
    out
}

/// Tarjan's strongly connected components of a graph given as adjacency lists.
fn strongly_connected(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct Walk<'a> {
        edges: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(w: &mut Walk<'_>, v: usize) {
        w.index[v] = Some(w.next);
        w.low[v] = w.next;
        w.next += 1;
        w.stack.push(v);
        w.on_stack[v] = true;
        for &t in &w.edges[v] {
            match w.index[t] {
                None => {
                    visit(w, t);
                    w.low[v] = w.low[v].min(w.low[t]);
                }
                Some(i) if w.on_stack[t] => w.low[v] = w.low[v].min(i),
                _ => {}
            }
        }
        if Some(w.low[v]) == w.index[v] {
            let mut component = Vec::new();
            loop {
                let t = w.stack.pop().expect("v is on the stack");
                w.on_stack[t] = false;
                component.push(t);
                if t == v {
                    break;
                }
            }
            w.out.push(component);
        }
    }
    let n = edges.len();
    let mut w = Walk {
        edges,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if w.index[v].is_none() {
            visit(&mut w, v);
        }
    }
    w.out
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The S3 crate, bottom first. Each layer may import only its own and lower layers, and the
/// files of one layer never import each other in a circle.
const S3_LAYERS: &[&[&str]] = &[
    // What every layer shares: errors, XML, dates, header names, the route table, the
    // engine call helper, TLS configuration, the machine's facts.
    &["error", "xml", "engine", "tls", "host"],
    // S3 as data: the route table, header names, tags, dates, percent-encoding.
    &["protocol"],
    // How errors and documents become HTTP responses.
    &["response"],
    // Who calls and what they may do.
    &["auth"],
    // Per-request services beside the operations, and the background worker.
    &[
        "qos",
        "usage",
        "metrics",
        "lifecycle",
        "body::pump",
        "body::chunked",
        "body::checksum",
    ],
    // What every request shares, then the request itself.
    &["state"],
    &["request"],
    // A request's body, assembled from the readers for the request's operation.
    &["body"],
    // The operations, then the server that runs them.
    &["ops"],
    &["server"],
];

/// The engine, bottom first (the store's data flow: namespace -> placement -> log and
/// metadata -> device).
const ENGINE_LAYERS: &[&[&str]] = &[
    &["error"],
    &["device"],
    // Where shards go, and the arithmetic of a stripe: no I/O.
    &["placement", "protection"],
    &["segment", "meta"],
    // The profile derives every layer's settings (the device backend, the LSM's sizes).
    &["profile"],
    // The metadata keys and records.
    &["schema"],
    // Which devices are one store's members (superblocks, formatting, adoption); the live
    // space of every segment; repair's state, queue and status.
    &["volume", "space", "repair"],
    &["store"],
];

#[test]
fn the_s3_crate_imports_only_downward_and_in_no_circle() {
    let found = violations(&workspace().join("appliance/s3/src/lib.rs"), S3_LAYERS);
    assert!(found.is_empty(), "hoard-s3:\n{}", found.join("\n"));
}

#[test]
fn the_engine_imports_only_downward_and_in_no_circle() {
    let root = workspace().join("engine/src/lib.rs");
    let mut found = violations(&root, ENGINE_LAYERS);
    for (path, m) in load_crate(&root) {
        // The profile names the device layer's settings (its I/O backend, its reserved area).
        let device_facing = ["device", "segment", "meta", "volume", "profile"]
            .iter()
            .any(|l| path.first().map(|p| p == l).unwrap_or(false));
        let names_device = m
            .imports
            .iter()
            .any(|t| t.first().map(|f| f == "device").unwrap_or(false));
        if !path.is_empty() && !device_facing && names_device {
            found.push(format!(
                "{}: names `device` types; only device, segment, meta and volume may",
                show(&path)
            ));
        }
    }
    assert!(found.is_empty(), "hoard:\n{}", found.join("\n"));
}

/// The dependencies `[dependencies]` of `manifest` declares, by the name code uses
/// (`md-5` is `md5`; `-` is `_`).
fn declared_dependencies(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let mut out = Vec::new();
    let mut in_dependencies = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if !in_dependencies || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name = line
            .split(|c: char| c == '.' || c == '=' || c.is_whitespace())
            .next()
            .unwrap();
        out.push(match name {
            "md-5" => "md5".to_string(),
            other => other.replace('-', "_"),
        });
    }
    out
}

/// Every `.rs` file's text below `dir`.
fn sources(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().map(|e| e == "rs").unwrap_or(false) {
            out.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// No crate declares a dependency none of its files names (`name::`, `use name`, `name!`):
/// what is declared is what is built, audited and shipped.
#[test]
fn every_declared_dependency_is_used() {
    let mut unused = Vec::new();
    for (manifest, src) in [
        ("engine/Cargo.toml", "engine/src"),
        ("appliance/Cargo.toml", "appliance/src"),
        ("appliance/s3/Cargo.toml", "appliance/s3/src"),
    ] {
        let mut text = String::new();
        sources(&workspace().join(src), &mut text);
        for dep in declared_dependencies(&workspace().join(manifest)) {
            let named = [format!("{dep}::"), format!("use {dep}"), format!("{dep}!")]
                .iter()
                .any(|p| text.contains(p.as_str()));
            if !named {
                unused.push(format!("{manifest}: {dep}"));
            }
        }
    }
    assert!(
        unused.is_empty(),
        "declared, never used:\n{}",
        unused.join("\n")
    );
}
