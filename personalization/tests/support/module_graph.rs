//! The import graph between a crate's top-level modules, read from its sources (`crate::a`,
//! `crate::{a, b}`; comments and `#[cfg(test)]` modules left out), and its cycles. Shared by
//! the `module_cycles` tests of `personalization` and `station` (included with `#[path]`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Edges `module -> modules it names`, for every top-level module under `src`.
pub fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    collect(src, &mut files);
    let top_of = |p: &Path| -> Option<String> {
        let rel = p.strip_prefix(src).ok()?;
        let first = rel.components().next()?.as_os_str().to_str()?;
        let name = first.strip_suffix(".rs").unwrap_or(first);
        (!matches!(name, "lib" | "main")).then(|| name.to_string())
    };
    let mut modules: BTreeMap<String, String> = BTreeMap::new();
    for f in &files {
        if let Some(m) = top_of(f) {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            let entry = modules.entry(m).or_default();
            entry.push_str(&without_tests(&without_comments(&text)));
        }
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .iter()
        .map(|(m, text)| {
            let used = named_modules(text)
                .into_iter()
                .filter(|n| n != m && names.contains(n))
                .collect();
            (m.clone(), used)
        })
        .collect()
}

/// The cycles (strongly connected components of more than one module) of `graph`.
pub fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Kosaraju: finish order on the graph, then components on the reversed graph.
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        v: &str,
        seen: &mut BTreeSet<String>,
        out: &mut Vec<String>,
    ) {
        if !seen.insert(v.to_string()) {
            return;
        }
        for w in g.get(v).into_iter().flatten() {
            visit(g, w, seen, out);
        }
        out.push(v.to_string());
    }
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for v in graph.keys() {
        visit(graph, v, &mut seen, &mut order);
    }
    let mut reversed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, bs) in graph {
        for b in bs {
            reversed.entry(b.clone()).or_default().insert(a.clone());
        }
    }
    let mut seen = BTreeSet::new();
    let mut found = Vec::new();
    for v in order.iter().rev() {
        let mut component = Vec::new();
        visit(&reversed, v, &mut seen, &mut component);
        if component.len() > 1 {
            component.sort();
            found.push(component);
        }
    }
    found
}

/// Panics naming every cycle (and its edges) between the top-level modules of `src`.
pub fn assert_acyclic(src: &Path) {
    let g = graph(src);
    let found = cycles(&g);
    let described: Vec<String> = found
        .iter()
        .map(|c| {
            c.iter()
                .map(|m| {
                    let inside: Vec<&String> = g[m].iter().filter(|n| c.contains(n)).collect();
                    format!("{m} -> {inside:?}")
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .collect();
    assert!(
        found.is_empty(),
        "import cycles between the top-level modules of {}: {described:#?}",
        src.display()
    );
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn without_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` without the `#[cfg(test)] mod NAME { … }` blocks (matched braces).
fn without_tests(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        let is_mod = trimmed.starts_with("mod ") || trimmed.starts_with("pub mod ");
        match (is_mod, trimmed.find(['{', ';'])) {
            (true, Some(j)) if trimmed.as_bytes()[j] == b'{' => {
                let body = &trimmed[j + 1..];
                let mut depth = 1;
                let mut end = body.len();
                for (k, c) in body.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    if depth == 0 {
                        end = k + 1;
                        break;
                    }
                }
                rest = &body[end..];
            }
            _ => rest = after,
        }
    }
    out.push_str(rest);
    out
}

/// The first path segment after every `crate::`, including each item of a `crate::{…}` group.
fn named_modules(text: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let after = &text[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name = ident(item.trim());
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name = ident(after);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// The helper finds a cycle when there is one (a crate of three files in a temporary dir).
pub fn check_that_a_cycle_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path();
    std::fs::write(src.join("lib.rs"), "pub mod a;\npub mod b;\npub mod c;\n").expect("lib");
    std::fs::write(src.join("a.rs"), "use crate::{b, c::X};\n").expect("a");
    std::fs::write(
        src.join("b.rs"),
        "// crate::c in a comment does not count\nfn f() { crate::a::g() }\n",
    )
    .expect("b");
    std::fs::write(
        src.join("c.rs"),
        "pub struct X;\n#[cfg(test)]\nmod tests {\n    use crate::a;\n}\n",
    )
    .expect("c");
    let g = graph(src);
    assert_eq!(cycles(&g), vec![vec!["a".to_string(), "b".to_string()]]);
    assert!(
        g["c"].is_empty(),
        "test modules and comments are left out: {g:?}"
    );
}
