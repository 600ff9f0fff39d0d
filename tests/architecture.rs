//! The rules of the parts (ARCHITECTURE.md), checked by reading the sources: a part is a folder
//! of `src/` or a module file at its top. Each `crate::<part>` named in a part's files is an
//! import of that part.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read src")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&p).expect("read source");
                out.push((p, text));
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out
}

/// The part a source file belongs to: its folder under `src/`, or its module name.
fn part_of(path: &Path) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rel = path.strip_prefix(&src).expect("under src");
    let mut comps = rel.components();
    let first = comps
        .next()
        .expect("a component")
        .as_os_str()
        .to_string_lossy()
        .to_string();
    match comps.next() {
        Some(_) => first,
        None => first.trim_end_matches(".rs").to_string(),
    }
}

/// Every part a file names as `crate::<part>`.
fn imports(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        // `loghost::crate::` cannot occur; a preceding identifier character means another path.
        if text[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let name: String = text[i + 7..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in sources() {
        let part = part_of(&path);
        let entry = g.entry(part.clone()).or_default();
        entry.extend(imports(&text).into_iter().filter(|p| *p != part));
    }
    g
}

#[test]
fn the_ledger_and_the_store_know_nothing_of_how_bytes_arrive() {
    let g = graph();
    for part in ["ledger", "store"] {
        let bad: Vec<_> = g[part]
            .iter()
            .filter(|p| ["pull", "receive", "daemon", "cli", "archive"].contains(&p.as_str()))
            .collect();
        assert!(bad.is_empty(), "{part}/ imports {bad:?}");
    }
    assert!(
        !g["store"].contains("ledger"),
        "the store sits below the ledger"
    );
}

#[test]
fn the_journal_reader_is_pure() {
    // It reads bytes and writes the export format; what to collect, where to store it and how
    // to record it belong to `pull`, `store` and `ledger`.
    let g = graph();
    let allowed = ["hash", "sanitize", "units", "failpoint"];
    let bad: Vec<_> = g["journal"]
        .iter()
        .filter(|p| !allowed.contains(&p.as_str()))
        .collect();
    assert!(bad.is_empty(), "journal/ imports {bad:?}");
}

#[test]
fn search_only_reads() {
    // It reads the ledger, the store and the journal export format for people; collecting,
    // serving and removing belong to other parts.
    let g = graph();
    let bad: Vec<_> = g["search"]
        .iter()
        .filter(|p| ["pull", "receive", "daemon", "archive", "cli", "verify"].contains(&p.as_str()))
        .collect();
    assert!(bad.is_empty(), "search/ imports {bad:?}");
}

#[test]
fn the_inputs_do_not_import_each_other() {
    let g = graph();
    let inputs = ["pull", "receive"];
    for a in inputs {
        for b in inputs {
            assert!(a == b || !g[a].contains(b), "{a}/ imports {b}/");
        }
    }
}

#[test]
fn nothing_below_the_command_line_imports_it() {
    let g = graph();
    for (part, deps) in &g {
        if part != "cli" && part != "lib" && part != "main" {
            assert!(!deps.contains("cli"), "{part} imports cli/");
        }
    }
}

#[test]
fn no_import_cycle_between_parts() {
    let g = graph();
    // Depth-first search for a back edge, reporting the cycle.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            if m == "lib" || m == "main" {
                continue;
            }
            match state.get(m.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|s| s == m).unwrap_or(0);
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, g, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys().filter(|n| *n != "lib" && *n != "main") {
        if !state.contains_key(n.as_str()) {
            let cycle = visit(n, &g, &mut state, &mut Vec::new());
            assert!(
                cycle.is_none(),
                "import cycle: {}",
                cycle.unwrap_or_default().join(" -> ")
            );
        }
    }
}

#[test]
fn only_the_archive_removes_stored_data() {
    // Removals outside `archive`, each reviewed: the store removes a file it created empty (no
    // committed frame in it), keys remove a half-written public key of their own.
    let allowed: BTreeMap<&str, usize> = [("store/mod.rs", 2), ("keys.rs", 1)].into();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (path, text) in sources() {
        let rel = path
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .to_string();
        if rel == "archive.rs" {
            continue;
        }
        let n = ["remove_file(", "remove_dir(", "remove_dir_all("]
            .iter()
            .map(|f| text.matches(f).count())
            .sum::<usize>();
        let ok = allowed.get(rel.as_str()).copied().unwrap_or(0);
        assert!(
            n <= ok,
            "{rel} removes files ({n} calls, {ok} reviewed): only the archive part may remove \
             stored data"
        );
    }
}

#[test]
fn every_part_says_what_it_owns() {
    for (path, text) in sources() {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        if name == "main.rs" {
            continue;
        }
        assert!(
            text.trim_start().starts_with("//!"),
            "{} has no module doc",
            path.display()
        );
        if name == "mod.rs" {
            assert!(
                text.contains("must not") || text.contains("imports nothing"),
                "{}: a part's module doc says what it must not import",
                path.display()
            );
        }
    }
}
