//! Every TOML example in README.md and docs/*.md, whole, as a user would paste it, passes
//! `tunerctl check-config`: a profile example (it has `description`, `inherits`, `[vm]`,
//! `[[disk]]` or `[[mount]]`) as a drop-in in /etc/tunerd/profiles.d/, anything else as
//! /etc/tunerd/tunerd.toml. A documented example can never be refused again.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use crate::common::{tunerctl, Scratch};

/// (file, first line of the block, the block's text) for every ```toml block.
fn examples() -> Vec<(String, usize, String)> {
    let top = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![top.join("README.md")];
    let mut docs: Vec<PathBuf> = fs::read_dir(top.join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut out = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).expect("read doc");
        let mut block: Option<(usize, String)> = None;
        for (n, line) in text.lines().enumerate() {
            match block.as_mut() {
                None if line.trim_start().starts_with("```toml") => {
                    block = Some((n + 2, String::new()))
                }
                None => {}
                Some(_) if line.trim_start().starts_with("```") => {
                    let (at, body) = block.take().expect("open block");
                    let name = file
                        .strip_prefix(&top)
                        .unwrap_or(&file)
                        .display()
                        .to_string();
                    out.push((name, at, body));
                }
                Some((_, body)) => {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
        assert!(
            block.is_none(),
            "{}: a ```toml block is not closed",
            file.display()
        );
    }
    out
}

fn is_profile(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("description")
            || l.starts_with("inherits")
            || l.starts_with("[vm]")
            || l.starts_with("[[disk]]")
            || l.starts_with("[[mount]]")
    })
}

#[test]
fn every_documented_toml_example_passes_check_config() {
    let all = examples();
    // docs/profiles.md (2), alerts.md, incidents.md and service.md hold at least one each.
    assert!(all.len() >= 5, "found only {} TOML examples", all.len());
    for (file, line, text) in &all {
        let scratch = Scratch::new("doc-example");
        let rel = if is_profile(text) {
            "etc/tunerd/profiles.d/example.toml"
        } else {
            "etc/tunerd/tunerd.toml"
        };
        let path = scratch.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, text).expect("write example");
        let out = Command::new(tunerctl())
            .arg("--root")
            .arg(&scratch.path)
            .arg("check-config")
            .output()
            .expect("run tunerctl check-config");
        assert!(
            out.status.success(),
            "{file}:{line}: the example is refused (exit {:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: "));
    }
}
