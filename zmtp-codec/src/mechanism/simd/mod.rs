//! Which kernel CURVE's boxes run on, chosen once per process: the Salsa20
//! key stream and the Poly1305 path alike. And the code of it that needs
//! `unsafe`: Salsa20 on eight blocks at once in AVX2 registers
//! (`avx2`), Poly1305 on eight blocks at once in AVX2 registers
//! (`poly1305`), and scalar code compiled for AVX2 and BMI2
//! ([`Avx2::run`]).
//!
//! The codec denies `unsafe`; this module alone allows it, for the AVX2
//! intrinsics and for calling functions compiled for AVX2 and BMI2. That
//! is sound only on a processor that has both, so that code can be reached
//! only through an [`Avx2`] token, and the only way to make one is a
//! run-time check that the processor has them ([`Avx2::detect`]).
//!
//! The choice ([`Kernel::chosen`]): AVX2 where the processor has AVX2 and
//! BMI2, else SSE2 (the `wide` crate's vectors, on any x86-64) or, off
//! x86-64, the same code in portable form.
//! `ZRING_CURVE_KERNEL=portable|sse2|avx2` forces one, for tests and
//! bisecting; a kernel the processor lacks is not taken (the note says
//! so). It is made once and copied into each key, whose boxes' Poly1305
//! follows it too, so no block pays a branch for it.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod poly1305;

use std::sync::OnceLock;

/// The environment variable that forces a kernel.
pub const KERNEL_ENV: &str = "ZRING_CURVE_KERNEL";

/// Proof that this processor has AVX2: only [`Avx2::detect`] makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Avx2 {
    _private: (),
}

impl Avx2 {
    /// A token if this processor has AVX2 (and BMI2, which every AVX2
    /// processor has and the Poly1305 path uses: x86-64-v3).
    pub(crate) fn detect() -> Option<Avx2> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("bmi2")
        {
            return Some(Avx2 { _private: () });
        }
        None
    }

    /// Runs `f` compiled for AVX2 and BMI2 where it is inlined: for scalar
    /// code that gains from them (BMI2's `mulx` in Poly1305's limb
    /// products) without intrinsics of its own.
    #[inline(always)]
    pub(crate) fn run<T>(self, f: impl FnOnce() -> T) -> T {
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2,bmi2")]
            unsafe fn with_v3<T>(f: impl FnOnce() -> T) -> T {
                f()
            }
            // SAFETY: `self` exists only if the processor has AVX2 and
            // BMI2 (`detect`), which is all `with_v3` was compiled for.
            unsafe { with_v3(f) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        f()
    }

    /// XORs one block per lane into `out`, one after the other, each of its
    /// own nonce and counter: the AVX2 form of the `wide8` kernel.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn xor8(self, key: &[u32; 8], blocks: [([u32; 2], u64); 8], out: &mut [u8; 512]) {
        // SAFETY: `self` exists only if `is_x86_feature_detected!("avx2")`
        // returned true on this processor (`detect`), which is what calling
        // a function compiled with `target_feature(enable = "avx2")` needs.
        unsafe { avx2::xor8(key, blocks, out) }
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(crate) fn xor8(self, _: &[u32; 8], _: [([u32; 2], u64); 8], _: &mut [u8; 512]) {
        unreachable!("no AVX2 token off x86-64")
    }

    /// The Poly1305 accumulator, from zero, over `data` (whole 128-byte
    /// pieces, at least one), eight blocks at a time, as five 26-bit limbs.
    /// `powers`: r¹ to r⁸, in 26-bit limbs under 2^26.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn poly1305_blocks(self, powers: &[[u32; 5]; 8], data: &[u8]) -> [u64; 5] {
        assert!(!data.is_empty() && data.len().is_multiple_of(128));
        // SAFETY: `self` exists only if the processor has AVX2 (`detect`),
        // which is what `poly1305::blocks` was compiled for; it reads only
        // whole 128-byte pieces of `data`, as asserted.
        unsafe { poly1305::blocks(powers, data) }
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(crate) fn poly1305_blocks(self, _: &[[u32; 5]; 8], _: &[u8]) -> [u64; 5] {
        unreachable!("no AVX2 token off x86-64")
    }
}

/// An implementation of CURVE's boxes: the Salsa20 kernel, and with it
/// the Poly1305 path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurveKernel {
    /// Salsa20 one block at a time, in scalar code; scalar Poly1305.
    Portable,
    /// Salsa20 four or eight blocks at once in SSE2 registers (x86-64;
    /// elsewhere the same code as the target's vectors allow); scalar
    /// Poly1305.
    Sse2,
    /// Salsa20 eight blocks at once in AVX2 registers; Poly1305 eight
    /// blocks at once in AVX2 registers from 512 bytes on, below that
    /// scalar code compiled for AVX2 and BMI2. Needs both.
    Avx2,
}

/// Every kernel, slowest first.
const KERNELS: [CurveKernel; 3] = [CurveKernel::Portable, CurveKernel::Sse2, CurveKernel::Avx2];

impl CurveKernel {
    /// As `ZRING_CURVE_KERNEL` and start-up lines name it.
    pub fn name(self) -> &'static str {
        match self {
            CurveKernel::Portable => "portable",
            CurveKernel::Sse2 => "sse2",
            CurveKernel::Avx2 => "avx2",
        }
    }
}

/// The kernel a key runs on, its Salsa20 and its boxes' Poly1305.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    Portable,
    Sse2,
    Avx2(Avx2),
}

impl Kernel {
    pub(crate) fn public(self) -> CurveKernel {
        match self {
            Kernel::Portable => CurveKernel::Portable,
            Kernel::Sse2 => CurveKernel::Sse2,
            Kernel::Avx2(_) => CurveKernel::Avx2,
        }
    }

    /// The fastest this processor has.
    fn best() -> Kernel {
        match Avx2::detect() {
            Some(token) => Kernel::Avx2(token),
            None => Kernel::Sse2,
        }
    }

    /// `wanted` if this processor can run it.
    pub(crate) fn available(wanted: CurveKernel) -> Option<Kernel> {
        match wanted {
            CurveKernel::Portable => Some(Kernel::Portable),
            CurveKernel::Sse2 => Some(Kernel::Sse2),
            CurveKernel::Avx2 => Avx2::detect().map(Kernel::Avx2),
        }
    }

    /// The process's kernel: chosen on first use, then fixed.
    pub(crate) fn chosen() -> Kernel {
        choice().0
    }
}

fn choice() -> &'static (Kernel, Option<String>) {
    static CHOICE: OnceLock<(Kernel, Option<String>)> = OnceLock::new();
    CHOICE.get_or_init(|| choose(std::env::var(KERNEL_ENV).ok().as_deref()))
}

/// The kernel for a `ZRING_CURVE_KERNEL` of `forced`, and a note when it
/// cannot be the one asked for.
fn choose(forced: Option<&str>) -> (Kernel, Option<String>) {
    let best = Kernel::best();
    let Some(value) = forced else {
        return (best, None);
    };
    let Some(wanted) = KERNELS.into_iter().find(|kernel| kernel.name() == value) else {
        let names = KERNELS.map(CurveKernel::name);
        let (last, others) = names.split_last().expect("kernels");
        let note = format!(
            "{KERNEL_ENV}={value:?} is not {} or {last}; using {}",
            others.join(", "),
            best.public().name()
        );
        return (best, Some(note));
    };
    match Kernel::available(wanted) {
        Some(kernel) => (kernel, None),
        None => {
            let note = format!(
                "{KERNEL_ENV}={} asks for a kernel this processor cannot run; using {}",
                wanted.name(),
                best.public().name()
            );
            (best, Some(note))
        }
    }
}

/// Every kernel this processor can run, for tests that compare them.
#[cfg(test)]
pub(crate) fn runnable_kernels() -> Vec<Kernel> {
    KERNELS.into_iter().filter_map(Kernel::available).collect()
}

/// The kernel CURVE's boxes run on in this process: their Salsa20 and
/// their Poly1305 path.
pub fn curve_kernel() -> CurveKernel {
    choice().0.public()
}

/// Why the kernel is not the one `ZRING_CURVE_KERNEL` asked for, if it
/// is not: for a warning at start-up.
pub fn curve_kernel_note() -> Option<&'static str> {
    choice().1.as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_kernel_unless_one_is_forced_and_runnable() {
        let best = Kernel::best();
        assert_eq!(choose(None), (best, None));
        assert_eq!(choose(Some("portable")), (Kernel::Portable, None));
        assert_eq!(choose(Some("sse2")), (Kernel::Sse2, None));
        let (kernel, note) = choose(Some("avx512"));
        assert_eq!(kernel, best);
        assert!(note.unwrap().contains("is not portable, sse2 or avx2"));
        match Avx2::detect() {
            Some(token) => assert_eq!(choose(Some("avx2")), (Kernel::Avx2(token), None)),
            None => {
                let (kernel, note) = choose(Some("avx2"));
                assert_eq!(kernel, best);
                assert!(note.unwrap().contains("cannot run"));
            }
        }
    }
}
