//! `zring generate`: man pages and shell completions from the command
//! line's own definition, for packages (packaging/build-deb). Hidden from
//! `--help`: operators get these files from the package.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{CommandFactory, ValueEnum};

#[derive(Debug, clap::Args)]
pub(crate) struct GenerateArgs {
    /// What to write.
    #[arg(value_enum)]
    what: What,
    /// Directory to write into (created if missing).
    dir: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum What {
    /// zring.1 and zring-SUBCOMMAND.1 for each visible subcommand.
    Man,
    /// zring.bash, _zring (zsh) and zring.fish.
    Completions,
}

pub(crate) fn run(args: GenerateArgs) -> anyhow::Result<std::process::ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let command = crate::Cli::command();
    let written = match args.what {
        What::Man => man_pages(command, &args.dir)?,
        What::Completions => completions(command, &args.dir)?,
    };
    for path in written {
        println!("{}", path.display());
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn man_pages(command: clap::Command, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let command = command.name("zring");
    let page = |command: clap::Command, name: &str| -> anyhow::Result<PathBuf> {
        let path = dir.join(format!("{name}.1"));
        let mut text = Vec::new();
        clap_mangen::Man::new(command).render(&mut text)?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    };
    written.push(page(command.clone(), "zring")?);
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("zring-{}", sub.get_name());
        // The page's title and synopsis name the full command.
        let sub = sub
            .clone()
            .display_name(name.clone())
            .bin_name(format!("zring {}", sub.get_name()));
        written.push(page(sub, &name)?);
    }
    Ok(written)
}

fn completions(mut command: clap::Command, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    use clap_complete::Shell;
    let mut written = Vec::new();
    for (shell, file) in [
        (Shell::Bash, "zring.bash"),
        (Shell::Zsh, "_zring"),
        (Shell::Fish, "zring.fish"),
    ] {
        let path = dir.join(file);
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut command, "zring", &mut text);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
