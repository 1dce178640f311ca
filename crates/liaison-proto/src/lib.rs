//! Generated protobuf code for `liaison.v1`, with proto3-JSON serde, and
//! (feature `grpc`) the tonic client and server stubs.
#![allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]

include!(concat!(env!("OUT_DIR"), "/liaison.v1.rs"));
include!(concat!(env!("OUT_DIR"), "/liaison.v1.serde.rs"));

/// Descriptor set of every `.proto` file (and imports), served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/liaison_descriptor.bin"));
