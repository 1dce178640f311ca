//! Compiles the repository's `proto/` with protox (no system protoc) into prost/tonic code,
//! proto3-JSON serde impls (pbjson) and a descriptor set for reflection.
use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(env::var("OUT_DIR")?);
    // The protos stay at the top of the repository, where integrators find them.
    let proto = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let mut files: Vec<PathBuf> = fs::read_dir(proto.join("liaison/v1"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    files.sort();
    println!("cargo:rerun-if-changed={}", proto.display());
    // Services only with the `grpc` feature: the IO-free core needs messages alone.
    let grpc = env::var_os("CARGO_FEATURE_GRPC").is_some();

    let fds = protox::Compiler::new([&proto])?
        .include_imports(true)
        .include_source_info(true)
        .open_files(&files)?
        .file_descriptor_set();
    let descriptor_path = out.join("liaison_descriptor.bin");
    fs::write(&descriptor_path, prost::Message::encode_to_vec(&fds))?;

    tonic_prost_build::configure()
        .build_server(grpc)
        .build_client(grpc)
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(fds.clone())?;

    let descriptor_bytes = fs::read(&descriptor_path)?;
    pbjson_build::Builder::new().register_descriptors(&descriptor_bytes)?.build(&[".liaison"])?;
    Ok(())
}
