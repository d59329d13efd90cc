//! Per-architecture entry point, printing, exit status and instruction counter.
//!
//! On the QEMU boards printing and exiting go through semihosting (QEMU `-semihosting-config
//! enable=on`); the exit code becomes QEMU's exit status. Counters are exact instruction counts
//! under `-icount shift=0`. On wasm32 (see [`wasm`]) the JS host prints, and the exported entry
//! returns the exit code; there is no instruction counter.

pub const TARGET_NAME: &str = env!("EMB_TARGET");
pub const BOARD_NAME: &str = env!("EMB_BOARD");

#[cfg(not(target_arch = "wasm32"))]
pub fn print_fmt(args: core::fmt::Arguments) {
    semihosting::print!("{}", args);
}

#[cfg(not(target_arch = "wasm32"))]
fn finish(code: i32) -> ! {
    semihosting::process::exit(code)
}

#[cfg(target_arch = "wasm32")]
pub use wasm::print_fmt;

// ---- WebAssembly (wasm32-unknown-unknown under a JS runtime: embedded/target-tests/wasm/run.mjs)
#[cfg(target_arch = "wasm32")]
mod wasm {
    use core::fmt::Write;

    // The runner's imports (module "env").
    #[link(wasm_import_module = "env")]
    extern "C" {
        /// Writes `len` UTF-8 bytes at `ptr` (linear memory) to standard output.
        fn host_write(ptr: *const u8, len: usize);
        /// Ends the run with exit status `code`; does not return (the runner throws).
        fn host_exit(code: i32);
    }

    struct Host;
    impl Write for Host {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            // SAFETY: `s` is `len` readable bytes of this module's memory; the host only reads them.
            unsafe { host_write(s.as_ptr(), s.len()) };
            Ok(())
        }
    }

    pub fn print_fmt(args: core::fmt::Arguments) {
        let _ = Host.write_fmt(args);
    }

    /// The entry the runner calls once; returns the exit code (0 all passed, 1 a check failed).
    #[no_mangle]
    pub extern "C" fn target_tests_main() -> i32 {
        crate::run()
    }

    /// Prints the message and exits with status 101, as the semihosting panic handler does.
    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        let _ = writeln!(Host, "panicked: {info}");
        // SAFETY: `host_exit` takes a plain integer; the runner throws, so it does not return.
        unsafe { host_exit(101) };
        core::arch::wasm32::unreachable()
    }
}

// ---- Cortex-M (all thumb targets)
#[cfg(target_arch = "arm")]
mod arch {
    use cortex_m_rt::{entry, exception, ExceptionFrame};

    #[entry]
    fn main() -> ! {
        super::counter::init();
        let code = crate::run();
        super::finish(code)
    }

    /// The default handler would spin forever; report the fault and exit with status 3.
    /// (`unsafe fn` is the signature cortex-m-rt requires; only the hardware calls it.)
    #[exception]
    unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
        semihosting::eprintln!("HardFault at pc={:#010x}", ef.pc());
        super::finish(3)
    }
}

/// SysTick on the core clock. Under -icount shift=0 one tick is a fixed number of instructions
/// (1e9 / f_cpu), calibrated by [`insns_per_tick_x1000`].
#[cfg(target_arch = "arm")]
pub mod counter {
    const CSR: *mut u32 = 0xE000_E010 as *mut u32;
    const RVR: *mut u32 = 0xE000_E014 as *mut u32;
    const CVR: *mut u32 = 0xE000_E018 as *mut u32;

    pub fn init() {
        // SAFETY: SysTick's registers exist at these addresses on every Armv6-M/v7-M/v8-M core;
        // nothing else in this firmware uses SysTick.
        unsafe {
            RVR.write_volatile(0x00FF_FFFF);
            CVR.write_volatile(0);
            CSR.write_volatile(0b101); // enable, core clock, no interrupt
        }
    }
    #[inline(always)]
    pub fn read() -> u64 {
        // SAFETY: reading SysTick's current-value register has no side effect.
        unsafe { CVR.read_volatile() as u64 }
    }
    /// Ticks between two reads of the 24-bit down-counter.
    pub fn elapsed(t0: u64, t1: u64) -> u64 {
        t0.wrapping_sub(t1) & 0x00FF_FFFF
    }
    /// Exactly 2·n instructions.
    pub fn spin(n: u32) {
        // SAFETY: a register-only countdown loop.
        unsafe {
            core::arch::asm!("2:", "subs {0}, {0}, #1", "bne 2b",
                inout(reg) n => _, options(nomem, nostack))
        }
    }
}

// ---- RISC-V (M-mode on QEMU virt)
#[cfg(target_arch = "riscv32")]
mod arch {
    #[riscv_rt::entry]
    fn main() -> ! {
        super::counter::init();
        let code = crate::run();
        super::finish(code)
    }

    /// The default handler would spin forever; report the exception and exit with status 3.
    #[export_name = "ExceptionHandler"]
    fn exception_handler(tf: &riscv_rt::TrapFrame) -> ! {
        let (cause, epc): (usize, usize);
        // SAFETY: reading two machine-mode CSRs in M-mode has no side effect.
        unsafe {
            core::arch::asm!("csrr {0}, mcause", "csrr {1}, mepc", out(reg) cause, out(reg) epc)
        };
        semihosting::eprintln!(
            "exception mcause={cause} mepc={epc:#010x} ra={:#010x}",
            tf.ra
        );
        super::finish(3)
    }
}

/// minstret: the retired-instruction count (exact under -icount).
#[cfg(target_arch = "riscv32")]
pub mod counter {
    pub fn init() {}
    #[inline(always)]
    pub fn read() -> u64 {
        let v: u32;
        // SAFETY: reading minstret in M-mode has no side effect.
        unsafe { core::arch::asm!("csrr {0}, minstret", out(reg) v, options(nomem, nostack)) };
        v as u64
    }
    pub fn elapsed(t0: u64, t1: u64) -> u64 {
        (t1 as u32).wrapping_sub(t0 as u32) as u64
    }
    /// Exactly 2·n instructions.
    pub fn spin(n: u32) {
        // SAFETY: a register-only countdown loop.
        unsafe {
            core::arch::asm!("2:", "addi {0}, {0}, -1", "bnez {0}, 2b",
                inout(reg) n => _, options(nomem, nostack))
        }
    }
}

// ---- AArch64 (EL1 on QEMU virt)
#[cfg(target_arch = "aarch64")]
mod arch {
    use aarch64_rt::{
        entry, exception_handlers, initial_pagetable, ExceptionHandlers, InitialPagetable,
    };
    // Level-1 block descriptors; attribute index 0/1 of aarch64-rt's DEFAULT_MAIR = Device /
    // Normal write-back. RAM must be Normal memory for NEON's unaligned vector loads
    // (the firmware is built with -strict-align).
    const DEVICE: usize = 1 | (1 << 10) | (1 << 54);
    const NORMAL: usize = 1 | (1 << 2) | (3 << 8) | (1 << 10) | (1 << 11);
    initial_pagetable!({
        let mut idmap = [0; 512];
        idmap[0] = DEVICE; // 0..1 GiB: UART, GIC, ...
        idmap[1] = NORMAL | 0x4000_0000; // 1..2 GiB: RAM
        InitialPagetable(idmap)
    });
    struct Exceptions;
    impl ExceptionHandlers for Exceptions {} // defaults panic -> exit 101
    exception_handlers!(Exceptions);
    entry!(main); // also sets CPACR_EL1.FPEN (FP/NEON on)
    fn main(_: u64, _: u64, _: u64, _: u64) -> ! {
        super::counter::init();
        let code = crate::run();
        super::finish(code)
    }
}

/// PMU event counter 0 = INST_RETIRED (0x08): exact under -icount.
#[cfg(target_arch = "aarch64")]
pub mod counter {
    use core::arch::asm;
    pub fn init() {
        // SAFETY: programs PMU counter 0 at EL1; nothing else uses the PMU.
        unsafe {
            asm!("msr pmevtyper0_el0, {e}", "msr pmcntenset_el0, {n}", "msr pmcr_el0, {c}", "isb",
                e = in(reg) 0x08u64, n = in(reg) (1u64 << 31) | 1, c = in(reg) 0b111u64)
        }
    }
    #[inline(always)]
    pub fn read() -> u64 {
        let v: u64;
        // SAFETY: reading a PMU counter at EL1 has no side effect.
        unsafe { asm!("isb", "mrs {0}, pmevcntr0_el0", out(reg) v) };
        v
    }
    pub fn elapsed(t0: u64, t1: u64) -> u64 {
        (t1 as u32).wrapping_sub(t0 as u32) as u64
    }
    /// Exactly 2·n instructions.
    pub fn spin(n: u32) {
        // SAFETY: a register-only countdown loop.
        unsafe { asm!("2:", "subs {0:w}, {0:w}, #1", "b.ne 2b", inout(reg) n => _) }
    }
}

/// Instructions per counter tick (×1000), calibrated with a loop of known length; None if the
/// counter does not run (QEMU without -icount).
#[cfg(not(target_arch = "wasm32"))]
pub fn insns_per_tick_x1000() -> Option<u64> {
    use counter::{elapsed, read, spin};
    const K: u32 = 200_000;
    let (t0, t1) = (read(), read());
    let overhead = elapsed(t0, t1);
    let t0 = read();
    spin(K);
    let t1 = read();
    let ticks = elapsed(t0, t1).saturating_sub(overhead);
    (ticks != 0).then(|| (2 * K as u64 * 1000 + ticks / 2) / ticks)
}
