//! The planted bug scripts/asan.sh expects AddressSanitizer to report.

/// Reads the element just past the end of `v` (out of bounds by exactly one element).
#[inline(never)]
pub fn read_one_past_end(v: &[u32]) -> u32 {
    let p = v.as_ptr();
    // SAFETY: none: this is the deliberate out-of-bounds read the memory checker must catch
    // (`p.add(len)` is one past the end; reading it is undefined behaviour).
    unsafe { p.add(std::hint::black_box(v.len())).read() }
}

#[cfg(test)]
mod tests {
    /// Only `scripts/asan.sh` runs this (by name, `--ignored`), expecting ASan to abort it.
    #[test]
    #[ignore]
    fn planted_heap_overread() {
        // 7 elements: 28 bytes, so the read at offset 28 falls in the allocation's redzone.
        let v: Vec<u32> = std::hint::black_box((0..7).collect());
        let x = super::read_one_past_end(&v);
        println!("read past the end without a report: {x}");
    }
}
