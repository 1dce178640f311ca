//! Fuzz targets for what a peer, an operator or a file can hand the node.
//!
//! `cargo test --test fuzz` runs each target on random inputs for about a
//! second (bolero's default on stable; `BOLERO_RANDOM_TEST_TIME_MS` or
//! `BOLERO_RANDOM_ITERATIONS` run longer) and replays every input kept in
//! `tests/fuzz/corpus/<target>/`, the regression inputs among them.
//! `fuzz/run.sh` runs the same functions under libFuzzer where a nightly
//! toolchain is available (see `fuzz/README.md`).

mod input;
mod targets;

use std::path::Path;

/// Runs every kept input of `name`, by name, so a regression fails with
/// the file that shows it.
fn replay(name: &str, target: fn(&[u8])) {
    // fuzz/Cargo.toml builds this same file for libFuzzer, one level down.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = if env!("CARGO_PKG_NAME") == "liaison-fuzz" { root.join("..") } else { root.to_path_buf() };
    let dir = root.join("tests/fuzz/corpus").join(name);
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    for f in files {
        let data = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        eprintln!("replaying {}", f.display());
        target(&data);
    }
}

/// One test per target: kept inputs, then bolero's inputs. `check!` must be
/// expanded inside the test function: cargo-bolero finds a target by the
/// path of the function that calls it.
macro_rules! fuzz_target {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            replay(stringify!($name), targets::$name);
            bolero::check!().for_each(|data: &[u8]| targets::$name(data));
        }
    )*};
}

fuzz_target!(
    envelope_open,
    card_verify,
    agreement_toml,
    scenario_toml,
    record_validate,
    identifier_normalize,
    seal_open,
    request_steps,
);
