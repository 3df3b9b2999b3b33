//! `tunerd`: a thin main over the library.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use tunerd::cli::{self, TunerdArgs};
use tunerd::host::sys::Root;
use tunerd::service;

fn main() -> ExitCode {
    let args = TunerdArgs::parse();
    if args.once {
        return match cli::tunerd_apply_once(&args) {
            Ok(out) => {
                let _ = std::io::stderr().write_all(out.text.as_bytes());
                ExitCode::from(out.code)
            }
            Err(fail) => {
                eprintln!("tunerd: {}", fail.message);
                ExitCode::from(fail.code)
            }
        };
    }
    ExitCode::from(service::run(service::Options {
        root: Root::new(&args.root),
        profile: args.profile,
        dbus: !args.no_dbus,
    }))
}
