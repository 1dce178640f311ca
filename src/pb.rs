//! Generated protobuf and gRPC code for `liaison.v1`, with proto3-JSON serde.
#![allow(clippy::all, clippy::pedantic, missing_docs)]

tonic::include_proto!("liaison.v1");
include!(concat!(env!("OUT_DIR"), "/liaison.v1.serde.rs"));

/// Descriptor set of every `.proto` file (and imports), served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/liaison_descriptor.bin"));
