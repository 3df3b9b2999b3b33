//! Adversarial tests: state_files (see mod.rs).
