//! The layer rule of ARCHITECTURE.md (README "Code map"): a module of `src/` never
//! imports a module of a higher layer. Modules of one layer may use each other.
//! Reads the sources as text, so a new `use crate::…` upward fails here at once.

use std::path::Path;

/// Layers from the bottom up; `main.rs` and `lib.rs` sit above all of them.
const LAYERS: &[&[&str]] = &[
    &["util"],
    &["config", "cli"],
    &["domain"],
    &["state", "upstream"],
    &["gateway"],
    &["fronts"],
    &["obs"],
    &["http"],
    &["services"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every `crate::<module>` named in `text`.
fn crate_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.push(name);
        }
    }
    found
}

fn visit(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            visit(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// Violations in `src/`: `(file, imported module)` pairs that point upward.
fn upward_imports(src: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    visit(src, &mut files);
    let mut violations = Vec::new();
    for file in files {
        let relative = file.strip_prefix(src).expect("under src/");
        let top = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or_default()
            .trim_end_matches(".rs")
            .to_string();
        let Some(own) = layer_of(&top) else {
            continue; // main.rs, lib.rs
        };
        let text = std::fs::read_to_string(&file).expect("a source file is readable");
        for module in crate_paths(&text) {
            if layer_of(&module).is_some_and(|layer| layer > own) {
                violations.push((relative.display().to_string(), module));
            }
        }
    }
    violations.sort();
    violations.dedup();
    violations
}

#[test]
fn no_module_imports_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let violations = upward_imports(&src);
    assert!(
        violations.is_empty(),
        "lower layers import higher ones: {violations:?}"
    );
}

#[test]
fn every_top_level_module_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs");
    for line in lib.lines() {
        if let Some(name) = line.strip_prefix("pub mod ") {
            let name = name.trim_end_matches(';');
            assert!(layer_of(name).is_some(), "{name} is in no layer");
        }
    }
}

#[test]
fn the_check_finds_an_upward_import() {
    // The check itself can fail: a domain file naming the http layer is caught.
    let dir = std::env::temp_dir().join(format!("layers-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("domain")).expect("temp dir");
    std::fs::write(dir.join("domain/x.rs"), "use crate::http::respond;\n").expect("write");
    std::fs::write(dir.join("lib.rs"), "use crate::services::server;\n").expect("write");
    let found = upward_imports(&dir);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(found, [("domain/x.rs".to_string(), "http".to_string())]);
}
