//! Scheduling of the calling thread.

use std::io;

/// Puts the calling thread (only it) under SCHED_FIFO at `priority` (1-99): it runs before
/// every ordinary thread as soon as it is runnable. The kernel's real-time throttling still
/// leaves the rest of the box some time should it ever spin.
pub fn realtime(priority: i32) -> io::Result<()> {
    // The kernel's struct sched_param is one int. The system call itself: musl's wrapper
    // refuses with ENOSYS (POSIX means the process, Linux the thread).
    let param: libc::c_int = priority;
    // SAFETY: `param` outlives the call and has the kernel's layout; pid 0 is the calling
    // thread.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_setscheduler,
            0,
            libc::SCHED_FIFO,
            &param as *const libc::c_int,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether the calling thread runs under SCHED_FIFO or SCHED_RR.
pub fn is_realtime() -> bool {
    // SAFETY: no memory arguments; pid 0 is the calling thread.
    let policy = unsafe { libc::syscall(libc::SYS_sched_getscheduler, 0) };
    policy == libc::c_long::from(libc::SCHED_FIFO) || policy == libc::c_long::from(libc::SCHED_RR)
}
