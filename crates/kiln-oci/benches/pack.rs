//! Packing throughput: `cargo bench -p kiln-oci --bench pack` (set `KILN_BENCH_MB`, default 200).
//!
//! Packs one large generated file, semi-compressible like a Go binary, as gzip (levels 1 and 6, one
//! stream and block-parallel) and zstd layers and prints MB/s next to a plain `std::io::copy` of the
//! same file measured in the same run, so the ratios are comparable across machines, plus the peak
//! RSS (VmHWM) to show layers are streamed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use kiln_oci::{build_layer, BlobStore, BuiltLayer, Compression, LayerEntry, LayerRecipe};

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Half pseudo-random bytes, half repetitive text-like runs, in 4 KiB blocks.
fn generate(path: &Path, mib: usize) -> std::io::Result<()> {
    let mut w = BufWriter::new(File::create(path)?);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = [0u8; 4096];
    for i in 0..mib * 256 {
        if i % 2 == 0 {
            for b in block.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
        } else {
            const TEXT: &[u8] = b"runtime.gopark sync.(*Mutex).Lock main.handler\0";
            for (j, b) in block.iter_mut().enumerate() {
                *b = TEXT[(j + i) % TEXT.len()];
            }
        }
        w.write_all(&block)?;
    }
    w.flush()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; nothing to filter here.
    let mib: usize = std::env::var("KILN_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("input.bin");
    generate(&src, mib)?;
    let size = std::fs::metadata(&src)?.len() as f64 / 1e6;
    println!(
        "input: {size:.1} MB, peak RSS after generation: {} KiB",
        vm_hwm_kib()
    );

    let t = Instant::now();
    std::io::copy(
        &mut File::open(&src)?,
        &mut File::create(dir.path().join("copy.bin"))?,
    )?;
    let copy_s = t.elapsed().as_secs_f64();
    println!("std::io::copy   {:8.1} MB/s (baseline)", size / copy_s);

    let store = BlobStore::open(dir.path().join("store"))?;
    let cases = [
        ("gzip-1", Compression::Gzip { level: 1 }),
        ("gzip-6", Compression::Gzip { level: 6 }),
        ("gzip-1 par", Compression::GzipParallel { level: 1 }),
        ("gzip-6 par", Compression::GzipParallel { level: 6 }),
        (
            "zstd-3 x1",
            Compression::Zstd {
                level: 3,
                workers: 1,
            },
        ),
        (
            "zstd-3 x2",
            Compression::Zstd {
                level: 3,
                workers: 2,
            },
        ),
    ];
    for (name, c) in cases {
        let t = Instant::now();
        let layer: BuiltLayer = build_layer(
            &store,
            &[LayerEntry::executable("app", &src)],
            &LayerRecipe::new(c),
        )?;
        let s = t.elapsed().as_secs_f64();
        println!(
            "{name:<14}  {:8.1} MB/s  {:5.1}x slower than copy  output {:.3} of input  peak RSS {} KiB",
            size / s,
            s / copy_s,
            layer.descriptor.size as f64 / 1e6 / size,
            vm_hwm_kib()
        );
        std::fs::remove_file(store.path(&layer.descriptor.digest))?;
    }
    Ok(())
}
