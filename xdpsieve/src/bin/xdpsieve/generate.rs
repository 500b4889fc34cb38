//! `xdpsieve generate man DIR` and `xdpsieve generate completions DIR`: the manual pages
//! and the shell completions, made from the command's own definition ([`Cli`]) and from
//! the configuration file's key table ([`xdpsieve::configure::config::keys`]), so that
//! they cannot drift from the binary they ship with. The package build (`cargo xtask
//! package`) runs them on the release binary it packages; anyone with a binary can make
//! them again.
//!
//! Not one of [`Cli`]'s subcommands, even hidden: clap_complete's generators list hidden
//! subcommands too, and a tool of the packaging has no place in the operator's pages and
//! completions. `main` hands `xdpsieve generate ...` here before it parses the command line.
//!
//! - [`man`]: `xdpsieve(8)` and one page per subcommand (`xdpsieve-run(8)`,
//!   `xdpsieve-set-add(8)`, ...), through clap_mangen;
//! - [`config_page`]: `xdpsieve.toml(5)`, from the key table.

mod config_page;
mod man;

use std::{
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use clap::{CommandFactory as _, Parser, Subcommand};
use clap_complete::Shell;

use crate::args::Cli;

/// The first argument that selects this module rather than [`Cli`].
pub(crate) const VERB: &str = "generate";

#[derive(Parser)]
#[command(
    name = "xdpsieve generate",
    version,
    about = "Write xdpsieve's manual pages or shell completions into a directory (for packaging)."
)]
struct GenerateCli {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// The manual pages: xdpsieve.8, one xdpsieve-VERB.8 per subcommand, xdpsieve.toml.5
    /// (roff, uncompressed).
    Man {
        /// Where to write them (made if need be).
        dir: PathBuf,
    },
    /// The shell completions: xdpsieve.bash, _xdpsieve (zsh), xdpsieve.fish.
    Completions {
        /// Where to write them (made if need be).
        dir: PathBuf,
    },
}

/// Parses `xdpsieve generate ...` (`args` without the program's name and the verb) and
/// writes what it asks for, naming each file written.
pub(crate) fn generate(args: impl IntoIterator<Item = OsString>) -> Result<()> {
    let argv = std::iter::once(OsString::from("xdpsieve generate")).chain(args);
    let cli = match GenerateCli::try_parse_from(argv) {
        Ok(cli) => cli,
        // --help, --version, or a usage error: clap says it, as for the other verbs.
        Err(e) => e.exit(),
    };
    let written = match &cli.what {
        What::Man { dir } => {
            make_dir(dir)?;
            let mut written = man::write_pages(dir)?;
            written.push(config_page::write(dir)?);
            written
        }
        What::Completions { dir } => {
            make_dir(dir)?;
            completions(dir)?
        }
    };
    for path in written {
        println!("{}", xdpsieve::base::text::escape_path(&path));
    }
    Ok(())
}

fn make_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// The completions of the public command line for bash, zsh and fish, under the names
/// clap_complete gives them.
fn completions(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut cmd = Cli::command();
    [Shell::Bash, Shell::Zsh, Shell::Fish]
        .into_iter()
        .map(|shell| {
            clap_complete::generate_to(shell, &mut cmd, "xdpsieve", dir)
                .with_context(|| format!("writing the {shell} completion into {}", dir.display()))
        })
        .collect()
}
