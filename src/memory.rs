//! The allocator, and handing freed memory back to the operating system.
//!
//! shipdeck allocates with mimalloc. A large estate arrives as a burst: a source's task
//! decodes every application and the console's loop packs and frees them, so nearly every
//! block is freed by a thread other than the one that allocated it. glibc's malloc serves
//! that badly: the loop waits on the decoding thread's arena lock, and the arena keeps what
//! was freed, fragmented. Measured at 50,000 apps (API mode, list then every app's history,
//! in one process): with glibc 4.6 s of the 7.0 s went to folding the apps into the estate,
//! resident 359 MiB after; with mimalloc 2.2 s of 6.1 s, resident 157 MiB.
//!
//! After such a burst the console asks the allocator to return what it freed
//! ([`give_back`]), and each of the runtime's worker threads does the same the next time it
//! parks ([`on_park`]). A block freed by another thread goes back to the page of the thread
//! that allocated it only when that thread next allocates or collects, so the pages the
//! decoding workers filled stayed resident while they sat idle after the burst.
//!
//! What the estate keeps for good (its entries, their strings, the packed apps) is allocated
//! in a heap of its own ([`long_lived`]). Built in the default heap, each entry's dozen small
//! blocks land in the holes the decoded apps around it leave (an app is some 70 blocks of
//! the same sizes), and once every decoded app is freed those pages stay resident for the
//! few entry blocks on each: measured at 50,000 apps in one process, the estate built from
//! one list held 159 MiB resident against 86 MiB built app by app. mimalloc keeps the
//! pages of each heap apart, so the entries' pages hold entries only.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

/// mimalloc, with a per-thread switch sending allocations to the long-lived heap.
pub struct Allocator;

#[global_allocator]
static ALLOCATOR: Allocator = Allocator;

unsafe extern "C" {
    /// mimalloc's own: free what it can now, and return free pages to the system.
    fn mi_collect(force: bool);
    fn mi_heap_new() -> *mut c_void;
    fn mi_heap_collect(heap: *mut c_void, force: bool);
    fn mi_heap_malloc_aligned(heap: *mut c_void, size: usize, alignment: usize) -> *mut c_void;
    fn mi_heap_zalloc_aligned(heap: *mut c_void, size: usize, alignment: usize) -> *mut c_void;
    fn mi_heap_realloc_aligned(
        heap: *mut c_void,
        p: *mut c_void,
        newsize: usize,
        alignment: usize,
    ) -> *mut c_void;
}

/// The long-lived heap, made on first use and never deleted (mimalloc heaps may be used
/// from any thread).
static LONG: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

thread_local! {
    /// Where this thread allocates now: null for mimalloc's default heap. Const-initialized
    /// with no destructor, so reading it never allocates and never fails.
    static TARGET: Cell<*mut c_void> = const { Cell::new(std::ptr::null_mut()) };
}

fn target() -> *mut c_void {
    TARGET.try_with(Cell::get).unwrap_or(std::ptr::null_mut())
}

fn long_heap() -> *mut c_void {
    let h = LONG.load(Ordering::Acquire);
    if !h.is_null() {
        return h;
    }
    // SAFETY: mi_heap_new takes nothing and allocates its metadata with mimalloc's own
    // internal allocator, not through this global allocator.
    let new = unsafe { mi_heap_new() };
    match LONG.compare_exchange(
        std::ptr::null_mut(),
        new,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => new,
        // Another thread made one first; ours stays empty (a few hundred bytes, once).
        Err(theirs) => theirs,
    }
}

/// Run `f` with this thread's allocations going to the long-lived heap: for what is kept
/// until the app it describes changes, never for temporaries that a burst frees.
pub fn long_lived<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(*mut c_void);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = TARGET.try_with(|t| t.set(self.0));
        }
    }
    let heap = long_heap();
    if heap.is_null() {
        return f();
    }
    let _restore = Restore(
        TARGET
            .try_with(|t| t.replace(heap))
            .unwrap_or(std::ptr::null_mut()),
    );
    f()
}

// SAFETY: every path hands the layout to mimalloc, which honours size and alignment; a
// block from either heap is freed by mi_free (the default path's dealloc), whatever the
// heap or thread.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let heap = target();
        if heap.is_null() {
            // SAFETY: as GlobalAlloc::alloc, same layout.
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        } else {
            // SAFETY: heap came from mi_heap_new and is never deleted.
            unsafe { mi_heap_malloc_aligned(heap, layout.size(), layout.align()).cast() }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let heap = target();
        if heap.is_null() {
            // SAFETY: as GlobalAlloc::alloc_zeroed, same layout.
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        } else {
            // SAFETY: as in alloc.
            unsafe { mi_heap_zalloc_aligned(heap, layout.size(), layout.align()).cast() }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr was allocated by mimalloc (either heap); mi_free finds its page.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let heap = target();
        if heap.is_null() {
            // SAFETY: as GlobalAlloc::realloc, same arguments.
            unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
        } else {
            // SAFETY: ptr is a mimalloc block; mimalloc moves it to `heap` if it must move.
            unsafe { mi_heap_realloc_aligned(heap, ptr.cast(), new_size, layout.align()).cast() }
        }
    }
}

/// Return the allocator's free memory to the system. Costs a few milliseconds on a large
/// heap: call it after bursts, not per update.
pub fn give_back() {
    COLLECTS.fetch_add(1, Ordering::Release);
    // SAFETY: mi_collect and mi_heap_collect take no pointers of ours but the heap, which
    // came from mi_heap_new and is never deleted. The symbols are in the mimalloc library
    // the `mimalloc` crate links.
    unsafe {
        mi_collect(true);
        let long = LONG.load(Ordering::Acquire);
        if !long.is_null() {
            mi_heap_collect(long, true);
        }
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists (what C libraries allocate
    // with it); it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Keep this process off transparent huge pages (`prctl(PR_SET_THP_DISABLE)`), as
/// mimalloc's `allow_thp=0` does. mimalloc advises its arenas for huge pages, so a 2 MiB page
/// stays resident as long as one block on it lives: after a large estate is loaded and the
/// decoded apps freed, that was 60-90 MiB of the console's RSS in huge pages. Measured at
/// 50,000 apps in core mode, VmRSS 14 s after start: 138 MiB as mimalloc is by default,
/// 115 MiB with `MIMALLOC_ALLOW_THP=0`; with this call (and [`on_park`]) 122 MiB 3 s after
/// the load, against 136-156 MiB before. Call it first in `main`: regions faulted in
/// before stay as they are.
pub fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and changes only this process's flag.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// How many times [`give_back`] ran: a worker that has not collected since collects.
static COLLECTS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The [`COLLECTS`] this thread last collected at.
    static COLLECTED: Cell<u64> = const { Cell::new(0) };
}

/// For the runtime's `on_thread_park`: when [`give_back`] ran since this thread last
/// collected, collect this thread's heap (what other threads freed of its blocks, and its
/// empty pages back to the system). One atomic load otherwise.
pub fn on_park() {
    let now = COLLECTS.load(Ordering::Acquire);
    if COLLECTED.try_with(|c| c.replace(now)).unwrap_or(now) != now {
        // SAFETY: mi_collect takes no pointers; it collects this thread's own heap.
        unsafe { mi_collect(true) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lived_blocks_are_usable_grown_and_freed_anywhere() {
        let mut v: Vec<u64> = long_lived(|| (0..1000).collect());
        assert_eq!(target(), std::ptr::null_mut(), "the switch is restored");
        v.extend(0..1000);
        let s = std::thread::spawn(move || {
            let sum: u64 = v.iter().sum();
            drop(v);
            sum
        })
        .join()
        .expect("thread");
        assert_eq!(s, 2 * 499_500);
        #[repr(align(64))]
        struct Aligned([u8; 64]);
        let aligned = long_lived(|| Box::new(Aligned([1; 64])));
        assert_eq!((&*aligned as *const Aligned as usize) % 64, 0);
        assert_eq!(aligned.0[63], 1);
    }

    #[test]
    fn a_panic_inside_restores_the_default_heap() {
        let r = std::panic::catch_unwind(|| long_lived(|| panic!("inside")));
        assert!(r.is_err());
        assert_eq!(target(), std::ptr::null_mut());
    }
}
