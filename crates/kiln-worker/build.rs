//! Compiles the vendored Remote Workers API protos (proto/) with protox: no protoc needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/google/devtools/remoteworkers/v1test2/bots.proto"];
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_transport(false)
        // One Status type for both APIs: the REAPI crate's.
        .extern_path(".google.rpc", "::bazel_remote_apis::google::rpc")
        .compile_fds(fds)?;
    Ok(())
}
