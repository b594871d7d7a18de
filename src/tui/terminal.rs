//! The terminal the console owns: taking it over (raw mode, the alternate screen, a hidden
//! cursor), giving it back on quit, on a termination signal and on a panic, handing it to
//! the shell for a job-control stop (SIGTSTP) and taking it back on SIGCONT.
//!
//! The console enables exactly three things: raw mode, the alternate screen and a hidden
//! cursor. No mouse capture, bracketed paste or keyboard-enhancement flags are pushed, so
//! giving the terminal back undoes exactly those three (and ends a synchronized update, in
//! case a panic struck mid-frame).
//!
//! Why a stop needs care: when a job stops, the shell puts its own (cooked) terminal modes
//! back, and `fg` does not restore the job's. A console that just resumes keeps reading a
//! cooked terminal: keys arrive only after Enter. And crossterm's `enable_raw_mode` does
//! nothing while it believes raw mode is on, so taking the terminal back means leaving raw
//! mode (as crossterm sees it) and entering it again.

use crossterm::{cursor, execute, terminal};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use std::io::{self, IsTerminal};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// The console's terminal: ratatui over crossterm on standard output, through the colour
/// writer that keeps escapes to the terminal's depth.
pub type Tui = Terminal<CrosstermBackend<FrameGate<ColourWriter<io::Stdout>>>>;

use super::colour_out::ColourWriter;
use super::frame_gate::FrameGate;

/// Whether the console holds the terminal (so giving it back twice does nothing).
static HELD: AtomicBool = AtomicBool::new(false);

/// The signal that ended the console, 0 when none did.
static ENDED_BY: AtomicI32 = AtomicI32::new(0);

static PANIC_HOOK: Once = Once::new();

/// Refuse to start `command` (as the operator knows it, quoted) without a terminal: it draws on standard output and reads keys
/// from standard input or `/dev/tty`. The error says what to use instead.
pub fn require(command: &str) -> anyhow::Result<()> {
    let missing = if !io::stdout().is_terminal() {
        Some("standard output is not a terminal")
    } else if !io::stdin().is_terminal()
        && std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .is_err()
    {
        Some("there is no terminal to read keys from")
    } else {
        None
    };
    match missing {
        None => Ok(()),
        Some(why) => Err(anyhow::anyhow!(
            "{command} needs a terminal ({why}). For headless use, run \
             `shipdeck sandbox --state-dir DIR` (it serves the simulated estate and writes \
             DIR/env), source DIR/env, and use the commands `shipdeck status`, `diff`, \
             `history`, `rollout`, `sync`, `rollback` and `build` against it."
        )),
    }
}

/// Take over the terminal. Also installs, once, a panic hook that gives it back, and a
/// watch for the terminal hanging up.
pub fn enter() -> io::Result<Tui> {
    install_panic_hook();
    watch_hangup();
    take()?;
    // Colours at the depth the terminal has (the same reading as the theme's).
    let out = ColourWriter::new(io::stdout(), super::theme::ColorDepth::detect());
    match Terminal::new(CrosstermBackend::new(FrameGate::new(out))) {
        Ok(t) => Ok(t),
        Err(e) => {
            leave();
            Err(e)
        }
    }
}

/// Give the terminal back: leave raw mode, leave the alternate screen, show the cursor.
/// Every step is tried even when one fails; a second call does nothing.
pub fn leave() {
    if !HELD.swap(false, Ordering::SeqCst) {
        return;
    }
    // Raw mode first: it has the most side effects if the rest fails.
    let _ = terminal::disable_raw_mode();
    let _ = execute!(
        io::stdout(),
        terminal::EndSynchronizedUpdate,
        terminal::LeaveAlternateScreen,
        cursor::Show
    );
}

fn take() -> io::Result<()> {
    terminal::enable_raw_mode()?;
    HELD.store(true, Ordering::SeqCst);
    execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)
}

/// SIGTSTP: give the terminal back, stop for real, and take it back once continued.
pub fn suspend() -> io::Result<()> {
    leave();
    stop_self();
    take()
}

/// SIGCONT (also after a plain SIGSTOP, which cannot be caught): the shell may have put its
/// own modes back while the console was stopped, so set raw mode and the alternate screen
/// again. Raw mode goes first: from the background, setting it stops the process with
/// SIGTTOU until it is brought to the foreground, as it should.
pub fn resume() -> io::Result<()> {
    let _ = terminal::disable_raw_mode();
    take()
}

/// Stop this process the way the default SIGTSTP action would: with SIGTSTP's default
/// disposition, so that in an orphaned process group (no shell to `fg` it) the kernel drops
/// the stop instead of leaving the process stopped forever. Returns once continued.
fn stop_self() {
    // SAFETY: plain libc calls on zeroed/initialised `sigaction` structs owned by this
    // frame. The previous disposition (tokio's handler) is put back before returning.
    unsafe {
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut default.sa_mask);
        let mut previous: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGTSTP, &default, &mut previous) != 0 {
            return;
        }
        // Sent to this thread and acted on before `raise` returns: the whole process stops
        // here and carries on from here on SIGCONT.
        libc::raise(libc::SIGTSTP);
        libc::sigaction(libc::SIGTSTP, &previous, std::ptr::null_mut());
    }
}

/// Once the console has given the terminal back, termination and stop signals act as they
/// would on any program again (tokio's handlers otherwise swallow them for good).
pub fn default_signals() {
    for sig in [
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGTSTP,
    ] {
        // SAFETY: resetting a disposition to SIG_DFL has no memory-safety preconditions.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
}

/// A panic anywhere (the loop or a request task) gives the terminal back, prints the panic
/// as usual, and ends the process: a console whose terminal was handed back cannot go on.
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let held = HELD.load(Ordering::SeqCst);
            leave();
            previous(info);
            if held {
                std::process::exit(101);
            }
        }));
    });
}

static HANGUP_WATCH: Once = Once::new();

/// How long a console whose terminal hung up has to end on its own (the SIGHUP path)
/// before the watch ends the process.
const HANGUP_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// When the terminal hangs up (the SSH session dropped, the terminal window or the tmux
/// server went away), make sure the console ends. The kernel sends SIGHUP and the loop ends
/// on it, but crossterm's reader thread then spins on the dead terminal (its read loop only
/// stops on "would block") while holding the event reader's lock, and the loop's next poll
/// of the input blocks on that lock: the console then burns most of a core for good, deaf
/// to SIGTERM (seen after a test run: two consoles on deleted ptys, 146,737 `read` calls in
/// 2 s). A thread blocks in `poll(2)` on the terminal, which wakes only on hang-up (no
/// timer: an idle console still never wakes), raises SIGHUP, and if the process is still
/// there after [`HANGUP_GRACE`], exits with 129 as a SIGHUP would.
fn watch_hangup() {
    HANGUP_WATCH.call_once(|| {
        use std::os::fd::AsRawFd;
        // Where crossterm reads keys: standard input when it is a terminal, else /dev/tty.
        let tty = if io::stdin().is_terminal() {
            None
        } else {
            match std::fs::OpenOptions::new().read(true).open("/dev/tty") {
                Ok(f) => Some(f),
                Err(_) => return,
            }
        };
        let spawned = std::thread::Builder::new()
            .name("hangup-watch".into())
            .spawn(move || {
                let fd = tty.as_ref().map_or(0, |f| f.as_raw_fd());
                loop {
                    let mut p = libc::pollfd {
                        fd,
                        events: 0,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd on this frame; events 0 asks only for
                    // hang-up and error conditions, which poll always reports.
                    let n = unsafe { libc::poll(&mut p, 1, -1) };
                    if n < 0 {
                        if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                            continue;
                        }
                        return;
                    }
                    if p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                        break;
                    }
                }
                // SAFETY: raising a signal at this process has no memory preconditions.
                unsafe {
                    libc::raise(libc::SIGHUP);
                }
                std::thread::sleep(HANGUP_GRACE);
                std::process::exit(128 + libc::SIGHUP);
            });
        if let Err(e) = spawned {
            tracing::warn!("no watch for the terminal hanging up: {e}");
        }
    });
}

/// Remember that `signo` ended the console, for [`exit_status`].
pub fn ended_by(signo: i32) {
    ENDED_BY.store(signo, Ordering::SeqCst);
}

/// The process exit status: 128 + the signal number when a signal ended the console (130
/// for SIGINT, 131 SIGQUIT, 143 SIGTERM, 129 SIGHUP), otherwise `code`.
pub fn exit_status(code: i32) -> i32 {
    match ENDED_BY.load(Ordering::SeqCst) {
        0 => code,
        n => 128 + n,
    }
}
