//! The published .proto files pass buf's STANDARD lint rules (buf from npm).

use std::process::Command;

#[test]
fn protos_pass_buf_standard_lint() {
    let root = env!("CARGO_MANIFEST_DIR");
    let install =
        Command::new("bash").arg(format!("{root}/tests/tools/install_buf.sh")).output().expect("run install_buf.sh");
    assert!(install.status.success(), "installing buf failed:\n{}", String::from_utf8_lossy(&install.stderr));
    let buf = String::from_utf8_lossy(&install.stdout).lines().last().unwrap_or_default().trim().to_string();
    let out = Command::new(&buf).arg("lint").current_dir(root).output().expect("run buf lint");
    assert!(
        out.status.success(),
        "buf lint failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
