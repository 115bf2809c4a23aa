//! The process's allocator: small blocks from a fast allocator (jemalloc in
//! the `bulwark` binary), large ones from the system's `malloc`.
//!
//! A `tools/call` makes a few hundred small allocations that move between
//! tokio's worker threads, where glibc's malloc is slow (~20% of the
//! gateway's instructions per call, callgrind) and jemalloc and mimalloc are
//! fast. Large blocks (tool results, request bodies, line buffers) are
//! better left to glibc with its mmap threshold pinned (`src/main.rs`): each
//! is mapped on its own, grown in place by `mremap` and unmapped when freed.
//! mimalloc, tried for everything, copied a growing buffer on each
//! reallocation and kept freed memory for its purge delay: a 10 MB result's
//! peak RSS went from 2.5x to 8.4x the payload (hot-path bench).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks of this many bytes or more come from the system allocator: glibc's
/// mmap threshold, so each of them is a mapping of its own.
pub const LARGE_BLOCK: usize = 128 * 1024;

/// Sends each allocation to `Small` or to [`System`] by its size.
///
/// Sound because Rust hands `dealloc` and `realloc` the layout a block was
/// allocated with, so a block's size always says which allocator owns it.
#[derive(Debug, Default)]
pub struct SplitBySize<Small> {
    small: Small,
}

impl<Small> SplitBySize<Small> {
    /// Small blocks from `small`, large ones from the system.
    pub const fn new(small: Small) -> Self {
        Self { small }
    }
}

fn is_large(size: usize) -> bool {
    size >= LARGE_BLOCK
}

// SAFETY: every method forwards to the allocator that owns the block (see
// the type's comment), under the caller's own `GlobalAlloc` contract.
unsafe impl<Small: GlobalAlloc> GlobalAlloc for SplitBySize<Small> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract (non-zero size) is passed on.
        unsafe {
            if is_large(layout.size()) {
                System.alloc(layout)
            } else {
                self.small.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if is_large(layout.size()) {
                System.alloc_zeroed(layout)
            } else {
                self.small.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `layout` is the one `ptr` was allocated with, so its size
        // names the allocator that made it.
        unsafe {
            if is_large(layout.size()) {
                System.dealloc(ptr, layout)
            } else {
                self.small.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match (is_large(layout.size()), is_large(new_size)) {
            // SAFETY: the block stays with the allocator that made it.
            (true, true) => unsafe { System.realloc(ptr, layout, new_size) },
            // SAFETY: as above.
            (false, false) => unsafe { self.small.realloc(ptr, layout, new_size) },
            // Crossing the line: a new block from the other allocator.
            _ => {
                // SAFETY: the caller guarantees `new_size`, rounded up to
                // `layout.align()`, does not overflow `isize`.
                let new_layout =
                    unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
                // SAFETY: `new_size` is non-zero (the caller's contract).
                let new = unsafe { self.alloc(new_layout) };
                if !new.is_null() {
                    // SAFETY: both blocks are valid for the smaller size and
                    // distinct; the old one is freed with its own layout.
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                new
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts what reaches the small allocator.
    #[derive(Default)]
    struct Counting {
        live: std::sync::atomic::AtomicIsize,
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            self.live.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            self.live.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[test]
    fn a_block_keeps_its_bytes_and_its_owner_across_the_line() {
        let split = SplitBySize::new(Counting::default());
        let live = || split.small.live.load(std::sync::atomic::Ordering::SeqCst);
        let small = Layout::from_size_align(1000, 8).unwrap();
        unsafe {
            let ptr = split.alloc(small);
            assert_eq!(live(), 1);
            for i in 0..1000 {
                *ptr.add(i) = (i % 251) as u8;
            }
            // Small to large: moves to the system allocator, bytes kept.
            let big = split.realloc(ptr, small, 3 * LARGE_BLOCK);
            assert_eq!(live(), 0);
            assert!((0..1000).all(|i| *big.add(i) == (i % 251) as u8));
            let big_layout = Layout::from_size_align(3 * LARGE_BLOCK, 8).unwrap();
            // Large to large stays; large to small comes back.
            let bigger = split.realloc(big, big_layout, 4 * LARGE_BLOCK);
            assert_eq!(live(), 0);
            let bigger_layout = Layout::from_size_align(4 * LARGE_BLOCK, 8).unwrap();
            let back = split.realloc(bigger, bigger_layout, 500);
            assert_eq!(live(), 1);
            assert!((0..500).all(|i| *back.add(i) == (i % 251) as u8));
            split.dealloc(back, Layout::from_size_align(500, 8).unwrap());
            assert_eq!(live(), 0);
            let zeroed = split.alloc_zeroed(Layout::from_size_align(LARGE_BLOCK, 64).unwrap());
            assert_eq!(zeroed as usize % 64, 0);
            assert!((0..LARGE_BLOCK).all(|i| *zeroed.add(i) == 0));
            split.dealloc(zeroed, Layout::from_size_align(LARGE_BLOCK, 64).unwrap());
            assert_eq!(live(), 0);
        }
    }
}
