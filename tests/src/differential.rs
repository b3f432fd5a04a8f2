//! Differential runs: the same etcdctl script against the reference etcd and
//! against ours, compared after masking.
//!
//! A script is a list of [`Step`]s, each one etcdctl invocation (arguments and
//! optional stdin). Both servers start fresh with the same flags, every step
//! runs on both, and the masked stdout, stderr and exit code of every step
//! must be identical. A mismatch panics with every differing step shown side
//! by side. The reference's transcript is returned so a test can also pin the
//! few outputs that prove the script did what it meant (both servers failing
//! the same way is not a pass).

use std::fmt::Write as _;

use crate::etcdctl::CtlOutput;
use crate::mask::mask;
use crate::server::Server;

/// One etcdctl invocation.
#[derive(Debug, Clone)]
pub struct Step {
    /// Arguments after `--endpoints`.
    pub args: Vec<String>,
    /// Bytes piped to stdin, if any.
    pub stdin: Option<Vec<u8>>,
}

impl Step {
    /// Parses a command line with shell-like quoting (`put '' x`).
    pub fn new(command_line: &str) -> Step {
        Step {
            args: split_words(command_line),
            stdin: None,
        }
    }

    /// A step from already split arguments.
    pub fn from_args(args: &[&str]) -> Step {
        Step {
            args: args.iter().map(|s| s.to_string()).collect(),
            stdin: None,
        }
    }

    /// The same step with `stdin` piped in.
    pub fn stdin(mut self, stdin: impl Into<Vec<u8>>) -> Step {
        self.stdin = Some(stdin.into());
        self
    }

    /// How the step reads in a transcript.
    pub fn display(&self) -> String {
        let mut shown = format!("etcdctl {}", self.args.join(" "));
        if let Some(stdin) = &self.stdin {
            let text = String::from_utf8_lossy(stdin);
            let preview: String = text.chars().take(200).collect();
            let _ = write!(shown, " <<< {preview:?}");
        }
        shown
    }

    /// Runs the step against `server`, unmasked.
    pub fn run(&self, server: &Server) -> CtlOutput {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        match &self.stdin {
            Some(stdin) => server.etcdctl_stdin(&args, stdin),
            None => server.etcdctl(&args),
        }
    }
}

/// Shorthand for [`Step::new`].
pub fn step(command_line: &str) -> Step {
    Step::new(command_line)
}

/// The reference's masked outputs, one per step.
#[derive(Debug)]
pub struct Transcript {
    /// Steps and their masked outputs, in order.
    pub entries: Vec<(Step, CtlOutput)>,
}

impl Transcript {
    /// Masked output of step `i`.
    pub fn output(&self, i: usize) -> &CtlOutput {
        &self.entries[i].1
    }

    /// Masked stdout of step `i`.
    pub fn stdout(&self, i: usize) -> &str {
        &self.entries[i].1.stdout
    }

    /// Panics, showing the step and its stderr, unless step `i`'s masked
    /// stderr contains `text`.
    #[track_caller]
    pub fn assert_stderr_contains(&self, i: usize, text: &str) {
        let (step, output) = &self.entries[i];
        assert!(
            output.stderr.contains(text),
            "step {i} ({}): stderr lacks {text:?}:\n{}",
            step.display(),
            output.stderr
        );
    }
}

/// Runs `steps` on fresh reference and our servers with default flags and
/// asserts identical masked results.
pub fn run_differential(steps: &[Step]) -> Transcript {
    run_differential_with(&[], steps)
}

/// Like [`run_differential`], both servers started with `extra_args`.
pub fn run_differential_with(extra_args: &[&str], steps: &[Step]) -> Transcript {
    let (reference, ours) = Server::pair(extra_args);
    compare_on(&reference, &ours, steps)
}

/// Runs `steps` on two running servers and asserts identical masked results.
pub fn compare_on(reference: &Server, ours: &Server, steps: &[Step]) -> Transcript {
    let mut entries = Vec::with_capacity(steps.len());
    let mut mismatches = String::new();
    for (i, step) in steps.iter().enumerate() {
        let want = masked(step.run(reference));
        let got = masked(step.run(ours));
        assert_reaches_server(step, &want);
        // Captured by the test runner; shown when the test fails.
        eprintln!(
            "step {i}: {} (exit {})\n{}{}",
            step.display(),
            want.code,
            section("stdout", &want.stdout),
            section("stderr", &want.stderr)
        );
        if want != got {
            let _ = writeln!(
                mismatches,
                "step {i}: {}\n--- reference (exit {})\n{}{}--- ours (exit {})\n{}{}",
                step.display(),
                want.code,
                section("stdout", &want.stdout),
                section("stderr", &want.stderr),
                got.code,
                section("stdout", &got.stdout),
                section("stderr", &got.stderr),
            );
        }
        entries.push((step.clone(), want));
    }
    assert!(
        mismatches.is_empty(),
        "ours differs from the reference:\n{mismatches}"
    );
    Transcript { entries }
}

/// Panics unless the reference's etcdctl got as far as the server: exit 0 or
/// 1 (etcdctl's code for a server error) and no Go panic. Exit 2 and above are
/// etcdctl's own argument, input and feature errors, which would make both
/// sides "agree" without testing a server.
fn assert_reaches_server(step: &Step, reference: &CtlOutput) {
    assert!(
        matches!(reference.code, 0 | 1) && !reference.stderr.contains("panic:"),
        "script error: the reference's etcdctl rejected `{}` itself (exit {}):\n{}",
        step.display(),
        reference.code,
        reference.stderr
    );
}

/// The output with [`mask`] applied to both streams.
fn masked(output: CtlOutput) -> CtlOutput {
    CtlOutput {
        stdout: mask(&output.stdout),
        stderr: mask(&output.stderr),
        code: output.code,
    }
}

/// A labelled block of output for a mismatch report.
fn section(label: &str, text: &str) -> String {
    if text.is_empty() {
        format!("[{label}: empty]\n")
    } else {
        format!(
            "[{label}]\n{text}{}",
            if text.ends_with('\n') { "" } else { "\n" }
        )
    }
}

/// Splits a command line into words; `'...'` and `"..."` quote (no escapes).
fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    assert!(quote.is_none(), "unterminated quote in {line:?}");
    if in_word {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::split_words;

    #[test]
    fn splits_with_quotes() {
        assert_eq!(split_words("put '' x"), vec!["put", "", "x"]);
        assert_eq!(
            split_words(r#"get "a b" --prefix"#),
            vec!["get", "a b", "--prefix"]
        );
        assert_eq!(split_words("  get   foo "), vec!["get", "foo"]);
    }
}
