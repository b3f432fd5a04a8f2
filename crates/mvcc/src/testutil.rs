//! A small data-driven test runner.
//!
//! A test file is a sequence of cases separated by blank lines:
//!
//! ```text
//! # comments and blank lines between cases are kept as they are
//! command args...
//! more command lines...
//! ----
//! expected output, one or more lines, no blank line inside
//! ```
//!
//! The runner hands each case's command lines to a closure and compares what
//! it returns with the expected output. With `UPDATE_GOLDEN=1` in the
//! environment it rewrites the file with the actual outputs instead, so a
//! deliberate behaviour change is one command plus a review of the diff.

use std::fmt::Write as _;
use std::path::PathBuf;

/// One piece of a test file.
enum Chunk {
    /// Comments and blank lines, written back unchanged.
    Verbatim(String),
    /// A case: its command lines, its expected output and its first line number.
    Case {
        input: Vec<String>,
        expected: String,
        line: usize,
    },
}

/// Splits a test file into verbatim chunks and cases.
fn parse(text: &str) -> Vec<Chunk> {
    let lines: Vec<&str> = text.lines().collect();
    let mut chunks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() || line.starts_with('#') {
            chunks.push(Chunk::Verbatim(line.to_string()));
            i += 1;
            continue;
        }
        let start = i;
        let mut input = Vec::new();
        while i < lines.len() && lines[i] != "----" {
            input.push(lines[i].to_string());
            i += 1;
        }
        assert!(i < lines.len(), "line {}: case without ----", start + 1);
        i += 1;
        let mut expected = Vec::new();
        while i < lines.len() && !lines[i].is_empty() {
            expected.push(lines[i]);
            i += 1;
        }
        chunks.push(Chunk::Case {
            input,
            expected: expected.join("\n"),
            line: start + 1,
        });
    }
    chunks
}

/// Runs every case of `testdata/<name>` through `run`, which gets the case's
/// command lines and returns its output.
pub(crate) fn run_file(name: &str, mut run: impl FnMut(&[String]) -> String) {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "testdata", name]
        .iter()
        .collect();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut rewritten = String::new();
    let mut failures = Vec::new();
    for chunk in parse(&text) {
        match chunk {
            Chunk::Verbatim(line) => {
                rewritten.push_str(&line);
                rewritten.push('\n');
            }
            Chunk::Case {
                input,
                expected,
                line,
            } => {
                let actual = run(&input).trim_end().to_string();
                assert!(
                    !actual.split('\n').any(|l| l.is_empty()),
                    "{name}:{line}: output has a blank line:\n{actual}"
                );
                if actual != expected {
                    failures.push(format!(
                        "{name}:{line}: {}\n--- expected\n{expected}\n--- actual\n{actual}\n",
                        input.join(" / ")
                    ));
                }
                for l in &input {
                    let _ = writeln!(rewritten, "{l}");
                }
                let _ = writeln!(rewritten, "----\n{actual}");
            }
        }
    }
    if update {
        std::fs::write(&path, rewritten).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    } else if !failures.is_empty() {
        panic!(
            "{} case(s) differ (UPDATE_GOLDEN=1 rewrites):\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

/// Splits a command line into its words.
pub(crate) fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Finds `name=value` among `args` and parses the value.
pub(crate) fn arg<T: std::str::FromStr>(args: &[&str], name: &str) -> Option<T>
where
    T::Err: std::fmt::Debug,
{
    args.iter().find_map(|a| {
        let (k, v) = a.split_once('=')?;
        (k == name).then(|| {
            v.parse()
                .unwrap_or_else(|e| panic!("bad {name}={v}: {e:?}"))
        })
    })
}

/// Whether the bare flag `name` is among `args`.
pub(crate) fn flag(args: &[&str], name: &str) -> bool {
    args.contains(&name)
}
