//! The layer order the crate's doc gives, kept: every `crate::` path in a layer's files
//! names that layer or one below it. The compiler knows no layers, so this reads the
//! sources: a `use` that reaches up fails here with the file and the path, and a new
//! folder fails until it is given its place.

use std::{
    fs,
    path::{Path, PathBuf},
};

/// The layers, lowest first: a folder may import from itself and the ones before it.
const LAYERS: [&str; 7] = [
    "base",
    "read",
    "configure",
    "instance",
    "write",
    "observe",
    "session",
];

/// Beside the stack: imports from itself only.
const APART: [&str; 1] = ["sandbox"];

/// What the crate's root holds besides its layers: the binary, the root module (with the
/// program's bytes) and this test.
const ROOT_ITEMS: [&str; 3] = ["bin", "lib.rs", "layer_tests.rs"];

/// `source` with its comments and its string and character literals blanked out, so that
/// only code is left to look for paths in (doc comments link upwards freely).
fn code_of(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(c) = rest.chars().next() {
        let skip = if rest.starts_with("//") {
            rest.find('\n').unwrap_or(rest.len())
        } else if rest.starts_with("/*") {
            rest.find("*/").map_or(rest.len(), |n| n + 2)
        } else if let Some(hashes) = raw_string_hashes(rest) {
            let open = rest.find('"').expect("a raw string opens with a quote") + 1;
            let close = format!("\"{}", "#".repeat(hashes));
            rest[open..]
                .find(&close)
                .map_or(rest.len(), |n| open + n + close.len())
        } else if c == '"' {
            string_end(rest)
        } else if c == '\'' {
            char_literal_end(rest).unwrap_or(1)
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        };
        out.push(' ');
        rest = &rest[skip..];
    }
    out
}

/// The `#`s of a raw string literal (`r"`, `r#"`, `br"`) that starts `text`, if one does.
fn raw_string_hashes(text: &str) -> Option<usize> {
    let after = text.strip_prefix("br").or_else(|| text.strip_prefix('r'))?;
    let hashes = after.len() - after.trim_start_matches('#').len();
    after[hashes..].starts_with('"').then_some(hashes)
}

/// Where the string literal that starts `text` (at its quote) ends.
fn string_end(text: &str) -> usize {
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return i + 1,
            _ => escaped = false,
        }
    }
    text.len()
}

/// Where the character literal that starts `text` ends; `None` for a lifetime.
fn char_literal_end(text: &str) -> Option<usize> {
    let mut chars = text.char_indices().skip(1);
    let (_, first) = chars.next()?;
    if first == '\\' {
        // The escaped character, then the closing quote (`'\''`, `'\n'`, `'\u{1b}'`).
        return text[3..].find('\'').map(|n| n + 4);
    }
    let (i, second) = chars.next()?;
    (second == '\'').then_some(i + 1)
}

/// The first segment of every path that `code` starts with `crate::`: for a group
/// (`crate::{a::x, b::{y, z}}`), the first segment of each of its items.
fn crate_roots(code: &str) -> Vec<String> {
    let mut roots = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        if code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = code[at + "crate::".len()..].trim_start();
        let Some(group) = rest.strip_prefix('{') else {
            roots.push(identifier(rest));
            continue;
        };
        let mut depth = 0;
        let mut item_start = true;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => item_start = true,
                c if item_start && !c.is_whitespace() => {
                    roots.push(identifier(&group[i..]));
                    item_start = false;
                }
                _ => {}
            }
        }
    }
    roots
}

fn identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The Rust files of the top-level module `name`: `name.rs` and everything under `name/`.
fn files_of(src: &Path, name: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let file = src.join(format!("{name}.rs"));
    if file.is_file() {
        files.push(file);
    }
    let mut dirs = vec![src.join(name)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.map(|e| e.expect("reading the source tree").path()) {
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn no_layer_imports_from_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for (layer, name) in LAYERS.iter().chain(&APART).enumerate() {
        let allowed: &[&str] = if layer < LAYERS.len() {
            &LAYERS[..=layer]
        } else {
            &[name]
        };
        for file in files_of(&src, name) {
            let code = code_of(&fs::read_to_string(&file).expect("reading a source file"));
            for root in crate_roots(&code) {
                let placed = LAYERS.contains(&root.as_str()) || APART.contains(&root.as_str());
                if placed && !allowed.contains(&root.as_str()) {
                    let file = file.strip_prefix(&src).unwrap_or(&file);
                    wrong.push(format!("src/{}: crate::{root}", file.display()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that reach up the layers ({}, and {} apart):\n{}",
        LAYERS.join(" < "),
        APART.join(", "),
        wrong.join("\n")
    );
}

#[test]
fn every_folder_has_its_place_in_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut unplaced = Vec::new();
    for entry in fs::read_dir(&src).expect("reading src") {
        let name = entry.expect("reading src").file_name();
        let name = name.to_string_lossy();
        let module = name.strip_suffix(".rs").unwrap_or(&name);
        if !(LAYERS.contains(&module) || APART.contains(&module) || ROOT_ITEMS.contains(&&*name)) {
            unplaced.push(name.into_owned());
        }
    }
    assert!(
        unplaced.is_empty(),
        "give these a layer (here and in the crate's doc): {unplaced:?}"
    );
}

#[test]
fn the_reader_of_the_sources_finds_paths_in_code_only() {
    let code = code_of(
        "use crate::{base::text, configure::{loader, rules}};\n\
         // crate::session in a comment\n\
         let s = \"crate::observe\"; let c = '\"'; let q = '\\''; let r = r#\"crate::write\"#;\n\
         fn f<'a>(x: &'a str) { crate::instance::pins::pin_dir(x); }",
    );
    assert_eq!(crate_roots(&code), ["base", "configure", "instance"]);
}
