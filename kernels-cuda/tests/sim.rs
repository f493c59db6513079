//! The emulator's rules, each shown on a deliberately wrong toy kernel (`sim/selftest.cu`):
//! misuse is an error naming the kernel, block and thread, memory errors are caught at the
//! faulting access, launches beyond the hardware's limits are refused, blocks run in a seeded
//! order, and correct code (barriers, shuffles, ballots, barrier reductions) computes what it
//! should.

#![cfg(feature = "cuda-sim")]

use gptoss_kernels_cuda::device::{Device, Launch};
use gptoss_kernels_cuda::{KernelArgs, Sim};

/// `SelftestArgs` of `sim/selftest.cu`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Args {
    out: u64,
    n: u32,
    pad: u32,
}

// SAFETY: laid out as `SelftestArgs` (a pointer, two unsigned ints).
unsafe impl KernelArgs for Args {}

/// Runs selftest kernel `name` over `grid` blocks of `threads`, with `out` of `n` floats and
/// `shared` bytes of dynamic shared memory; the error, if any, and `out`.
fn run(name: &str, grid: u32, threads: u32, n: usize, shared: u32) -> (Result<(), String>, Vec<f32>) {
    run_seeded(name, grid, threads, n, shared, 1)
}

fn run_seeded(name: &str, grid: u32, threads: u32, n: usize, shared: u32, seed: u64) -> (Result<(), String>, Vec<f32>) {
    let dev = Sim::with_seed(seed);
    let f = dev.function("selftest", name).unwrap();
    let (mut mem, ptr) = dev.alloc(n * 4).unwrap();
    dev.write(&mut mem, 0, &vec![0u8; n * 4]).unwrap();
    let args = Args { out: ptr, n: n as u32, pad: 0 };
    let cfg = Launch { grid: [grid, 1, 1], block: [threads, 1, 1], shared_bytes: shared };
    // SAFETY: `out` holds n floats; the kernels are the emulator's own test kernels.
    let result = unsafe { dev.launch(&f, cfg, &args) }.map_err(|e| e.to_string());
    let mut bytes = vec![0u8; n * 4];
    dev.read(&mem, 0, &mut bytes).unwrap();
    (result, bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect())
}

fn error_of(name: &str, threads: u32, n: usize, shared: u32) -> String {
    let (result, _) = run(name, 1, threads, n, shared);
    let err = result.expect_err("the emulator should refuse this kernel");
    eprintln!("{err}");
    err
}

#[test]
fn a_divergent_barrier_is_reported() {
    let err = error_of("divergent_barrier", 64, 64, 0);
    assert!(err.contains("kernel divergent_barrier, block (0, 0, 0), thread (") && err.contains("divergent __syncthreads"), "{err}");
}

#[test]
fn a_thread_that_exits_before_a_barrier_is_reported() {
    let err = error_of("exit_before_barrier", 32, 32, 0);
    // Named from either side: the thread that exits while others wait, or a waiter.
    assert!(
        err.contains("thread (3, 0, 0): exited while other threads of the block wait at __syncthreads")
            || err.contains("thread (3, 0, 0) exited before reaching it"),
        "{err}"
    );
}

#[test]
fn a_shuffle_naming_a_lane_that_is_not_there_is_reported() {
    let err = error_of("shuffle_missing_lane", 16, 16, 0);
    assert!(err.contains("names lane 16, which the block of 16 threads does not have"), "{err}");
}

#[test]
fn lanes_at_different_shuffles_are_reported() {
    let err = error_of("divergent_shuffle", 32, 32, 0);
    assert!(err.contains("divergent warp collectives"), "{err}");
}

#[test]
fn an_access_past_the_dynamic_shared_memory_is_caught() {
    let err = error_of("shared_overflow", 32, 16, 16 * 4);
    assert!(err.contains("thread (0, 0, 0)") && err.contains("past the launch's 64 bytes"), "{err}");
    // Within the launch's size the same kernel runs.
    assert!(run("shared_overflow", 1, 32, 16, 17 * 4).0.is_ok());
}

#[test]
fn a_read_past_an_allocation_is_caught() {
    let err = error_of("global_overflow", 32, 16, 0);
    assert!(err.contains("out-of-bounds access 0 bytes past the end of a 64-byte allocation"), "{err}");
}

#[test]
fn launches_beyond_the_hardware_s_limits_are_refused() {
    let err = error_of("barrier_and_shuffles", 1025, 2048, 0);
    assert!(err.contains("a block of 1025 × 1 × 1 threads"), "{err}");
    let err = error_of("barrier_and_shuffles", 32, 32, 48 * 1024 + 16);
    assert!(err.contains("more than the 49152 the kernel may use (raise its limit first"), "{err}");
    // Raised, up to sm_90's 227 KiB.
    let dev = Sim::with_seed(1);
    let f = dev.function("selftest", "barrier_and_shuffles").unwrap();
    dev.allow_shared(&f, 100 * 1024).unwrap();
    let (mut mem, ptr) = dev.alloc(32 * 4).unwrap();
    dev.write(&mut mem, 0, &[0; 128]).unwrap();
    let args = Args { out: ptr, n: 32, pad: 0 };
    let launch = |shared| Launch { grid: [1, 1, 1], block: [32, 1, 1], shared_bytes: shared };
    // SAFETY: `out` holds 32 floats.
    unsafe {
        assert!(dev.launch(&f, launch(100 * 1024), &args).is_ok());
        let err = dev.launch(&f, launch(100 * 1024 + 16), &args).unwrap_err().to_string();
        assert!(err.contains("more than the 102400"), "{err}");
    }
    let err = unsafe { dev.launch(&f, Launch { grid: [0, 1, 1], ..launch(0) }, &args) }.unwrap_err().to_string();
    assert!(err.contains("a grid of 0 × 1 × 1 blocks"), "{err}");
}

#[test]
fn an_argument_struct_of_the_wrong_size_is_refused() {
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Short(u64);
    // SAFETY: only launched to be refused.
    unsafe impl KernelArgs for Short {}
    let dev = Sim::with_seed(1);
    let f = dev.function("selftest", "barrier_and_shuffles").unwrap();
    // SAFETY: refused before it runs.
    let err = unsafe { dev.launch(&f, Launch::linear([1, 1, 1], 32), &Short(0)) }.unwrap_err().to_string();
    assert!(err.contains("an argument struct of 8 bytes; the kernel takes 16"), "{err}");
}

#[test]
fn barriers_shuffles_and_ballots_compute_what_they_should() {
    let (threads, blocks) = (64u32, 3u32);
    let (result, out) = run("barrier_and_shuffles", blocks, threads, (threads * blocks) as usize, 0);
    result.unwrap();
    for b in 0..blocks as usize {
        for t in 0..threads as usize {
            let neighbour = ((t + 1) % threads as usize) as f32;
            let warp = t / 32 * 32;
            let sum: usize = (warp..warp + 32).sum();
            // 16 odd lanes per warp, one thread at n − 1, five below 5.
            let want = neighbour + sum as f32 + 16.0 + 1.0 + 5.0;
            assert_eq!(out[b * threads as usize + t], want, "block {b} thread {t}");
        }
    }
}

#[test]
fn blocks_run_in_a_seeded_shuffled_order() {
    let order = |seed| {
        let (result, out) = run_seeded("block_order", 16, 32, 16 + 1, 0, seed);
        result.unwrap();
        out[..16].iter().map(|&v| v as u32).collect::<Vec<_>>()
    };
    let (a, b, a_again) = (order(1), order(2), order(1));
    let mut sorted = a.clone();
    sorted.sort();
    assert_eq!(sorted, (0..16).collect::<Vec<_>>(), "every block runs once: {a:?}");
    assert_ne!(a, (0..16).collect::<Vec<_>>(), "not in index order");
    assert_ne!(a, b, "another seed, another order");
    assert_eq!(a, a_again, "the same seed, the same order");
}

/// `TileArgs` of `sim/selftest.cu`.
#[repr(C)]
#[derive(Clone, Copy)]
struct TileArgs {
    a: u64,
    b: u64,
    c: u64,
    d: u64,
}

// SAFETY: laid out as `TileArgs` (four pointers).
unsafe impl KernelArgs for TileArgs {}

/// Device memory holding `bytes`.
fn upload(dev: &Sim, bytes: &[u8]) -> (<Sim as Device>::Memory, u64) {
    let (mut mem, ptr) = dev.alloc(bytes.len()).unwrap();
    dev.write(&mut mem, 0, bytes).unwrap();
    (mem, ptr)
}

fn bf16(v: f32) -> u16 {
    half::bf16::from_f32(v).to_bits()
}

/// One warp's mma on random tiles (B stored [n][k], or [k][n] and loaded transposed) against
/// the plain product A·B + C in f64: equal within the f32 sum's rounding.
fn mma_matches_the_product(kernel: &str, transposed: bool) {
    let dev = Sim::with_seed(1);
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        ((seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * 4.0
    };
    let a: Vec<u16> = (0..256).map(|_| bf16(next())).collect();
    let b_nk: Vec<u16> = (0..128).map(|_| bf16(next())).collect();
    let c: Vec<f32> = (0..128).map(|_| next()).collect();
    let b = if transposed { (0..128).map(|i| b_nk[(i % 8) * 16 + i / 8]).collect() } else { b_nk.clone() };
    let bytes = |v: &[u16]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (_ma, pa) = upload(&dev, &bytes(&a));
    let (_mb, pb) = upload(&dev, &bytes(&b));
    let (_mc, pc) = upload(&dev, &c.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>());
    let (md, pd) = upload(&dev, &[0u8; 512]);
    let f = dev.function("selftest", kernel).unwrap();
    // SAFETY: the tiles hold what the kernel reads and writes.
    unsafe { dev.launch(&f, Launch::linear([1, 1, 1], 32), &TileArgs { a: pa, b: pb, c: pc, d: pd }) }.unwrap();
    let mut out = [0u8; 512];
    dev.read(&md, 0, &mut out).unwrap();
    let value = |h: u16| half::bf16::from_bits(h).to_f32() as f64;
    for m in 0..16 {
        for n in 0..8 {
            let want: f64 = c[m * 8 + n] as f64 + (0..16).map(|k| value(a[m * 16 + k]) * value(b_nk[n * 16 + k])).sum::<f64>();
            let magnitude: f64 =
                c[m * 8 + n].abs() as f64 + (0..16).map(|k| (value(a[m * 16 + k]) * value(b_nk[n * 16 + k])).abs()).sum::<f64>();
            let got = f32::from_le_bytes(out[4 * (m * 8 + n)..][..4].try_into().unwrap()) as f64;
            assert!((got - want).abs() <= 16.0 * f32::EPSILON as f64 * magnitude, "{kernel} D[{m}][{n}] = {got}, want {want}");
        }
    }
}

#[test]
fn mma_with_ldmatrix_computes_the_tile_product() {
    mma_matches_the_product("mma_tile", false);
}

#[test]
fn mma_with_transposed_ldmatrix_computes_the_tile_product() {
    mma_matches_the_product("mma_tile_trans", true);
}

/// `CopyArgs` of `sim/selftest.cu`.
#[repr(C)]
#[derive(Clone, Copy)]
struct CopyArgs {
    src: u64,
    out: u64,
    tail: u32,
    pad: u32,
}

// SAFETY: laid out as `CopyArgs`.
unsafe impl KernelArgs for CopyArgs {}

#[test]
fn cp_async_lands_at_the_wait_that_covers_its_group_with_the_tail_zero_filled() {
    let dev = Sim::with_seed(1);
    let src: Vec<u8> = (0..512).map(|i| (i * 7 + 1) as u8).collect();
    let (_ms, ps) = upload(&dev, &src);
    let (mo, po) = upload(&dev, &[0u8; 384 * 4]);
    let f = dev.function("selftest", "cp_async_tile").unwrap();
    let tail = 12u32;
    // SAFETY: src holds 512 bytes, out 384 floats.
    unsafe { dev.launch(&f, Launch::linear([1, 1, 1], 32), &CopyArgs { src: ps, out: po, tail, pad: 0 }) }.unwrap();
    let mut out = vec![0u8; 384 * 4];
    dev.read(&mo, 0, &mut out).unwrap();
    let old = [0x11u8; 512];
    assert_eq!(&out[..512], &old[..], "before the wait, shared memory holds what it held");
    let want: Vec<u8> = (0..512).map(|i| if i % 16 < tail as usize { src[i] } else { 0 }).collect();
    assert_eq!(&out[512..1024], &want[..], "after it, the copy (each 16-byte piece's last 4 zero-filled)");
    assert_eq!(&out[1024..], &old[..], "the second group is not complete after waiting for the first");
}
