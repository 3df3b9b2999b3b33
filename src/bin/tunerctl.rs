//! `tunerctl`: a thin main over `tunerd::cli`.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use tunerd::cli::{self, Tunerctl};

fn main() -> ExitCode {
    let args = Tunerctl::parse();
    match cli::run(&args) {
        Ok(out) => {
            // A closed pipe (`tunerctl plan | head`) is not an error worth a panic.
            let _ = std::io::stdout().write_all(out.text.as_bytes());
            ExitCode::from(out.code)
        }
        Err(fail) => {
            eprintln!("tunerctl: {}", fail.message);
            ExitCode::from(fail.code)
        }
    }
}
