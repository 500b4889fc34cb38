//! The operator's messages read as sentences: no string literal in the library or the
//! binary holds a run of spaces between two words. Such a run is what a long message split
//! over two source lines without the `\` continuation leaves behind once it is joined
//! again ("give -w FILE,              or rotate ..."), and it reaches the operator's terminal
//! as it is. Layouts are exempt: a literal with a width (`{:<24}`) or a line break (help
//! texts, test input) aligns on purpose.

use std::{fs, path::Path};

/// The values of the string literals of `source` (not raw strings, whose spaces are
/// meant), with the line each starts on; escapes other than the line continuation are
/// kept as written, which is enough to see runs of spaces.
fn string_literals(source: &str) -> Vec<(usize, String)> {
    let bytes = source.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = source[i..].find('\n').map_or(bytes.len(), |n| i + n);
            }
            // A char literal ('"' among them), or a lifetime: step over it either way.
            b'\'' => {
                let rest = &bytes[i + 1..];
                i += match rest {
                    [b'\\', _, b'\'', ..] => 4,
                    [c, b'\'', ..] if *c != b'\\' => 3,
                    _ => 1,
                };
            }
            b'r' if (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'))
                && matches!(bytes.get(i + 1), Some(b'"' | b'#')) =>
            {
                let hashes = bytes[i + 1..].iter().take_while(|&&b| b == b'#').count();
                if bytes.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let body = i + 2 + hashes;
                i = source[body..]
                    .find(&close)
                    .map_or(bytes.len(), |n| body + n + close.len());
            }
            b'"' => {
                let line = source[..i].matches('\n').count() + 1;
                let mut value = String::new();
                let mut j = i + 1;
                while j < bytes.len() && bytes[j] != b'"' {
                    if bytes[j] == b'\\' && bytes.get(j + 1) == Some(&b'\n') {
                        // The continuation: the newline and the next line's indent go.
                        j += 2;
                        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                            j += 1;
                        }
                        continue;
                    }
                    let len = if bytes[j] == b'\\' { 2 } else { 1 };
                    value.push_str(&String::from_utf8_lossy(&bytes[j..j + len]));
                    j += len;
                }
                found.push((line, value));
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    found
}

/// A run of three or more spaces between two characters that are not spaces.
fn has_gap(text: &str) -> bool {
    text.trim().contains("   ")
}

/// A layout rather than a sentence: a width, or more than one line.
fn is_layout(text: &str) -> bool {
    // The literal's value keeps its escapes as written: `\n` is two characters there.
    ["{:<", "{:>", "{:^", "\\n", "\n"]
        .iter()
        .any(|w| text.contains(w))
}

fn check_dir(dir: &Path, gaps: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            check_dir(&path, gaps);
        } else if path.extension().is_some_and(|e| e == "rs") {
            // This file's own examples have the gaps it looks for.
            if path.ends_with("text/messages.rs") {
                continue;
            }
            let source = fs::read_to_string(&path).expect("reading a source file");
            for (line, value) in string_literals(&source) {
                if has_gap(&value) && !is_layout(&value) {
                    gaps.push(format!("{}:{line}: {value:?}", path.display()));
                }
            }
        }
    }
}

#[test]
fn finds_literals_and_their_gaps() {
    let source = "let a = 'x'; // \"not  this\"\nbail!(\"one,              two\");\n\
                  let r = r#\"raw   kept\"#;\nlet c = '\"';\nlet d = \"joined \\\n    well\";\n";
    let found = string_literals(source);
    let values: Vec<&str> = found.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(values, ["one,              two", "joined well"]);
    assert_eq!(found[0].0, 2);
    assert!(has_gap(values[0]) && !has_gap(values[1]));
    assert!(!has_gap("   leading and trailing   "));
}

#[test]
fn no_message_has_a_run_of_spaces_mid_sentence() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut gaps = Vec::new();
    check_dir(&src, &mut gaps);
    assert!(
        gaps.is_empty(),
        "string literals with a run of spaces mid-sentence (a line break without `\\`?):\n{}",
        gaps.join("\n")
    );
}
