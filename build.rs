//! Build-time documents, generated from the definitions that parse, never written by hand:
//! - man pages tunerd(8) and tunerctl(8) from the clap definitions in src/cli/args.rs
//!   (clap_mangen), and shell completions for both (clap_complete: bash, zsh, fish);
//! - tunerd.toml(5) from packaging/tunerd.toml, the packaged configuration, which a unit test
//!   keeps in step with the parser (every key it takes appears there, with a valid value).
//!
//! They go to `$OUT_DIR` and, for the packages (Cargo.toml `[package.metadata.deb]` and
//! `generate-rpm`), to `target/<profile>/assets/`: cargo-deb and cargo-generate-rpm take
//! assets by path, and OUT_DIR's hash is not known to them.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

#[allow(dead_code)]
#[path = "src/cli/args.rs"]
mod args;

fn main() -> io::Result<()> {
    println!("cargo:rerun-if-changed=src/cli/args.rs");
    println!("cargo:rerun-if-changed=packaging/tunerd.toml");
    println!("cargo:rerun-if-changed=build.rs");
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").ok_or_else(|| io::Error::other("no OUT_DIR"))?);
    let dir = out.join("assets");
    fs::create_dir_all(dir.join("man"))?;
    fs::create_dir_all(dir.join("completions"))?;
    let version = env!("CARGO_PKG_VERSION");
    for mut cmd in [args::Tunerctl::command(), args::TunerdArgs::command()] {
        cmd = cmd.version(version);
        let name = cmd.get_name().to_string();
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd.clone())
            .section("8")
            .manual("tunerd")
            .source(format!("tunerd {version}"))
            .render(&mut page)?;
        write_man(&dir.join("man").join(format!("{name}.8")), &page)?;
        for (shell, file) in [
            (Shell::Bash, name.clone()),
            (Shell::Zsh, format!("_{name}")),
            (Shell::Fish, format!("{name}.fish")),
        ] {
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut cmd, name.clone(), &mut text);
            fs::write(dir.join("completions").join(file), text)?;
        }
    }
    let config = fs::read_to_string("packaging/tunerd.toml")?;
    write_man(
        &dir.join("man/tunerd.toml.5"),
        config_page(&config, version).as_bytes(),
    )?;
    // <target>/<profile>/build/tunerd-HASH/out -> <target>/<profile>/assets
    if let Some(profile_dir) = out.ancestors().nth(3) {
        copy_dir(&dir, &profile_dir.join("assets"))?;
    }
    Ok(())
}

/// tunerd.toml(5): the packaged file's tables and options, each with the comment above it.
fn config_page(config: &str, version: &str) -> String {
    use roff::{bold, italic, roman, Roff};
    let mut page = Roff::new();
    page.control(
        "TH",
        [
            "TUNERD.TOML",
            "5",
            "",
            &format!("tunerd {version}"),
            "tunerd",
        ],
    );
    page.control("SH", ["NAME"]);
    page.text([roman(
        "tunerd.toml - configuration of the tunerd storage service",
    )]);
    page.control("SH", ["SYNOPSIS"]);
    page.text([bold("/etc/tunerd/tunerd.toml")]);
    page.control("SH", ["DESCRIPTION"]);
    let mut intro = Vec::new();
    let mut lines = config.lines().peekable();
    while let Some(l) = lines.peek() {
        if l.trim().is_empty() {
            break;
        }
        intro.push(l.trim_start_matches('#').trim().to_string());
        lines.next();
    }
    page.text([roman(intro.join(" "))]);
    page.text([
        roman("Profiles are described in "),
        italic("/usr/share/doc/tunerd/profiles.md"),
        roman("; "),
        bold("tunerctl check-config"),
        roman(" validates this file and every profile."),
    ]);
    let mut comment: Vec<String> = Vec::new();
    for line in lines {
        let body = line.strip_prefix("# ").unwrap_or(line).trim();
        let is_table = body.starts_with('[');
        let is_key = body.split_once(" = ").is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        });
        if is_table {
            page.control("SH", [body]);
            if !comment.is_empty() {
                page.text([roman(comment.join(" "))]);
            }
            comment.clear();
        } else if is_key {
            page.control("TP", []);
            page.text([bold(body)]);
            page.text([roman(comment.join(" "))]);
            comment.clear();
        } else if body.is_empty() {
            if !comment.is_empty() {
                page.control("PP", []);
                page.text([roman(comment.join(" "))]);
            }
            comment.clear();
        } else {
            comment.push(body.to_string());
        }
    }
    page.control("SH", ["SEE ALSO"]);
    page.text([roman("tunerd(8), tunerctl(8)")]);
    page.render()
}

/// A man page as it is, for `man -l`, and gzipped, for the packages.
fn write_man(path: &Path, page: &[u8]) -> io::Result<()> {
    use std::io::Write;
    fs::write(path, page)?;
    let mut gz = path.as_os_str().to_owned();
    gz.push(".gz");
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(fs::File::create(gz)?, flate2::Compression::best());
    enc.write_all(page)?;
    enc.finish()?;
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
