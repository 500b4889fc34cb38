//! The manual pages and shell completions as an operator meets them: a page rendered by
//! man(1) with groff's warnings on, a completion loaded by its shell and asked to complete.
//! For the files `xdpsieve generate` writes and for those the Debian package installs
//! (both in `xdpsieve/tests/package`). Each check says what is wrong
//! as an `Err`; a shell or man(1) that is missing is an error too (`cargo xtask setup`
//! installs them), never a skip.

use std::{
    path::Path,
    process::{Command, Stdio},
};

/// Runs `command` with standard input closed: its standard output and error, or why it
/// could not run or failed.
fn run(command: &mut Command, what: &str) -> Result<(String, String), String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {what} (cargo xtask setup installs it): {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}): {command:?}\n{stderr}{stdout}",
            out.status
        ));
    }
    Ok((stdout, stderr))
}

/// Renders `page` (roff, gzipped or not) as `man -l` does at 80 columns, with groff's
/// warnings on: the text, or what man or groff said. Any warning is an error.
pub fn render_man_page(page: &Path) -> Result<String, String> {
    let (text, warnings) = run(
        Command::new("man")
            .args(["--warnings", "-l"])
            .arg(page)
            .env("MANWIDTH", "80")
            // Plain text, not through a pager, in a known language.
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .env("LC_ALL", "C.UTF-8"),
        "man (man-db)",
    )?;
    if !warnings.trim().is_empty() {
        return Err(format!(
            "man --warnings -l {} warned:\n{warnings}",
            page.display()
        ));
    }
    if text.trim().is_empty() {
        return Err(format!("man -l {} rendered nothing", page.display()));
    }
    Ok(text)
}

/// Loads the bash completion `file` in a bash without start-up files, checks that it
/// registers a function for `xdpsieve` (`complete -p xdpsieve`), and calls that function
/// as bash does on TAB with the command line `words` (the last one being completed):
/// the candidates (`COMPREPLY`).
pub fn bash_complete(file: &Path, words: &[&str]) -> Result<Vec<String>, String> {
    const SCRIPT: &str = r#"
file=$1; shift
source "$file" || exit 3
spec=$(complete -p xdpsieve) || { echo "no completion registered for xdpsieve" >&2; exit 4; }
function=$(printf '%s\n' "$spec" | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
[ -n "$function" ] || { echo "the completion names no function: $spec" >&2; exit 5; }
COMP_WORDS=("$@")
COMP_CWORD=$(( $# - 1 ))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
COMPREPLY=()
"$function" xdpsieve "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let (stdout, _) = run(
        Command::new("bash")
            .args(["--norc", "--noprofile", "-c", SCRIPT, "bash"])
            .arg(file)
            .args(words),
        "bash",
    )?;
    Ok(lines(&stdout))
}

/// Loads the fish completion `file` in a fish without configuration and asks it to
/// complete `line`: the candidates, without their descriptions.
pub fn fish_complete(file: &Path, line: &str) -> Result<Vec<String>, String> {
    let (stdout, _) = run(
        Command::new("fish")
            .args([
                "--no-config",
                "-c",
                "source $argv[1]; and complete -C$argv[2]",
            ])
            .arg(file)
            .arg(line),
        "fish",
    )?;
    Ok(stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap_or(l).to_string())
        .filter(|l| !l.is_empty())
        .collect())
}

/// Loads the zsh completion `file` after `compinit` in a zsh without start-up files: the
/// function it registers for `xdpsieve` (`$_comps[xdpsieve]`).
pub fn zsh_registers(file: &Path) -> Result<String, String> {
    let (stdout, _) = run(
        Command::new("zsh")
            .args([
                "-f",
                "-c",
                "autoload -U compinit && compinit -u -D && source $1 && print -r -- $_comps[xdpsieve]",
                "zsh",
            ])
            .arg(file),
        "zsh",
    )?;
    Ok(stdout.trim().to_string())
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}
