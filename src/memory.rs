//! Handing freed memory back to the operating system. A relist of a large estate decodes
//! every application, and the allocator keeps what that freed for later, so the console's
//! resident size (what an operator on a shared bastion sees) stays at the burst's peak.
//! After such a burst the console asks the allocator to return it.

/// Return the allocator's free memory to the system (glibc's `malloc_trim`); elsewhere a
/// no-op. Costs a few milliseconds on a large heap: call it after bursts, not per update.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}
