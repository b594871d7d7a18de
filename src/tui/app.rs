//! The console loop: one `tokio::select!` over terminal input (taken first, so a key never
//! waits behind a batch of updates), source updates (drained in batches with `recv_many`),
//! answers to requests, signals, and a spinner tick that runs only while something is in
//! progress. It draws only when something changed, inside a
//! synchronized update, so an idle console writes nothing to the terminal.
//!
//! Signals: SIGINT, SIGQUIT, SIGTERM and SIGHUP end the loop with [`Exit::Signal`] (the
//! caller gives the terminal back and exits 128 + the number). In raw mode Ctrl-C and
//! Ctrl-Z are keys, so these come from outside (`kill`). SIGTSTP hands the terminal to the
//! shell and stops; SIGCONT takes it back and redraws everything.

use super::console::Console;
use super::request::{Provider, Response, Ticket};
use crate::model::Update;
use crossterm::event::{Event, EventStream};
use futures::StreamExt;
use ratatui::Terminal;
use ratatui::backend::Backend;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{Signal, SignalKind};
use tokio::sync::mpsc;

/// How many source updates one frame may absorb before drawing (a burst is coalesced). Kept
/// small so that a key pressed meanwhile waits behind one short batch (keys are taken first
/// at the next turn of the loop).
const BATCH: usize = 1_024;

/// The shortest time between two frames that only source updates asked for. Under a storm
/// of updates the loop would otherwise draw after every few (hundreds of frames a second);
/// keys, answers and resizes still draw at once.
const UPDATE_FRAME: Duration = Duration::from_millis(33);

/// The same while a list comes in parts (see `Estate::listing`): each part changes the
/// board's shape and redraws it whole, on the core the list's decoding needs (the parts of
/// 50,000 apps arrive within a second), so such frames wait longer. Never forever: a list
/// that stalls midway must not hold back what other sources report until its request
/// times out.
const LISTING_FRAME: Duration = Duration::from_millis(500);

/// Something that can wrap a frame in a synchronized update (real terminals); the test
/// backend does nothing.
pub trait FrameSync {
    fn begin(&mut self) {}
    fn end(&mut self) {}
}

impl<W: Write> FrameSync for ratatui::backend::CrosstermBackend<W> {
    fn begin(&mut self) {
        let _ = crossterm::execute!(self, crossterm::terminal::BeginSynchronizedUpdate);
    }
    fn end(&mut self) {
        let _ = crossterm::execute!(self, crossterm::terminal::EndSynchronizedUpdate);
    }
}

impl FrameSync for ratatui::backend::TestBackend {}

/// Something that can hand the terminal over for a job-control stop and take it back; the
/// test backend does nothing.
pub trait JobControl {
    /// SIGTSTP: give the terminal back, stop, and return once continued with it taken back.
    fn suspend(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    /// SIGCONT: take the terminal back (the shell may have reset its modes meanwhile).
    fn resume(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl JobControl
    for ratatui::backend::CrosstermBackend<
        super::frame_gate::FrameGate<super::colour_out::ColourWriter<std::io::Stdout>>,
    >
{
    fn suspend(&mut self) -> std::io::Result<()> {
        super::terminal::suspend()
    }
    fn resume(&mut self) -> std::io::Result<()> {
        super::terminal::resume()
    }
}

impl JobControl for ratatui::backend::TestBackend {}

/// The signals the loop handles. Create them before taking over the terminal, so that no
/// signal in between finds the default action (which would leave the terminal raw).
pub struct Signals {
    int: Option<Signal>,
    quit: Option<Signal>,
    term: Option<Signal>,
    hup: Option<Signal>,
    tstp: Option<Signal>,
    cont: Option<Signal>,
}

impl Signals {
    pub fn new() -> Self {
        let s = |n: i32| tokio::signal::unix::signal(SignalKind::from_raw(n)).ok();
        Signals {
            int: s(libc::SIGINT),
            quit: s(libc::SIGQUIT),
            term: s(libc::SIGTERM),
            hup: s(libc::SIGHUP),
            tstp: s(libc::SIGTSTP),
            cont: s(libc::SIGCONT),
        }
    }
}

impl Default for Signals {
    fn default() -> Self {
        Self::new()
    }
}

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Quit,
    /// Ended by this signal number (SIGINT, SIGQUIT, SIGTERM or SIGHUP).
    Signal(i32),
    InputClosed,
}

/// Run the console until the operator quits, the input ends, or a signal arrives.
pub async fn run_loop<B>(
    terminal: &mut Terminal<B>,
    console: &mut Console,
    provider: Arc<dyn Provider>,
    mut updates: mpsc::Receiver<Update>,
    mut signals: Signals,
) -> std::io::Result<Exit>
where
    B: Backend + FrameSync + JobControl,
    std::io::Error: From<B::Error>,
{
    let (resp_tx, mut resp_rx) = mpsc::channel::<Response>(1024);
    let mut tasks: HashMap<Ticket, tokio::task::AbortHandle> = HashMap::new();
    let mut input = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_millis(120));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut buf: Vec<Update> = Vec::with_capacity(BATCH);
    // Background warnings (undelivered notifications) are looked for once a second, and
    // only when a notifier is configured: an idle console without one never wakes.
    let notices_on = provider.has_notices();
    let mut notices = tokio::time::interval(Duration::from_secs(1));
    notices.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut updates_open = true;
    // Large lists are packed after the frame that shows them (see `Estate::pack_later`).
    let (packed_tx, mut packed_rx) = mpsc::unbounded_channel();
    console.estate.pack_later(packed_tx);
    let mut dirty = true;
    // Updates applied and not drawn yet, and when the last frame was drawn.
    let mut updated = false;
    let mut drawn = tokio::time::Instant::now();
    // A whole list folded and not drawn yet (a start-up milestone in the debug log).
    let mut relist_undrawn = false;
    submit(console, &provider, &resp_tx, &mut tasks);
    let exit = loop {
        let gap = if console.estate.listing() {
            LISTING_FRAME
        } else {
            UPDATE_FRAME
        };
        if dirty || (updated && drawn.elapsed() >= gap) {
            console.react();
            terminal.backend_mut().begin();
            terminal.draw(|f| console.render(f))?;
            terminal.backend_mut().end();
            if std::mem::take(&mut relist_undrawn) {
                tracing::debug!(at_ms = %crate::logging::uptime_ms(), cpu_ms = %crate::logging::cpu_ms(), "frame drawn after a whole list");
            }
            dirty = false;
            updated = false;
            drawn = tokio::time::Instant::now();
            console.estate.start_packing();
            // What the frame drew may ask for loads (history images of the cells on screen).
            submit(console, &provider, &resp_tx, &mut tasks);
        }
        if console.quit_requested() {
            break Ok::<Exit, std::io::Error>(Exit::Quit);
        }
        let busy = console.busy();
        tokio::select! {
            // Ending signals first: a hung-up terminal can leave the input unable to answer
            // (see `terminal::watch_hangup`), and SIGHUP must still end the loop. Then
            // keys: under a storm of updates a pressed key never waits behind another
            // batch (each branch is otherwise picked at random).
            biased;
            _ = recv(&mut signals.int) => break Ok(Exit::Signal(libc::SIGINT)),
            _ = recv(&mut signals.quit) => break Ok(Exit::Signal(libc::SIGQUIT)),
            _ = recv(&mut signals.term) => break Ok(Exit::Signal(libc::SIGTERM)),
            _ = recv(&mut signals.hup) => break Ok(Exit::Signal(libc::SIGHUP)),
            ev = input.next() => match ev {
                Some(Ok(Event::Key(k))) => dirty |= console.key(k),
                Some(Ok(Event::Resize(..))) => {
                    terminal.autoresize()?;
                    dirty = true;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!("terminal input failed: {e}");
                    break Ok(Exit::InputClosed);
                }
                None => break Ok(Exit::InputClosed),
            },
            n = updates.recv_many(&mut buf, BATCH), if updates_open => {
                if n == 0 {
                    updates_open = false;
                    tracing::info!("every source stopped sending updates");
                } else {
                    relist_undrawn |= console.fold(buf.drain(..));
                    updated = true;
                }
            }
            Some(done) = packed_rx.recv() => console.packed(done),
            // The frame the updates wait for.
            _ = tokio::time::sleep_until(drawn + gap), if updated => {}
            Some(resp) = resp_rx.recv() => {
                let t = resp.ticket;
                dirty |= console.respond(resp);
                // A stream sends many answers; a finished one-shot task cleans itself up.
                if tasks.get(&t).is_some_and(|h| h.is_finished()) {
                    tasks.remove(&t);
                }
            }
            _ = tick.tick(), if busy => {
                console.tick();
                dirty = true;
            }
            _ = notices.tick(), if notices_on => {
                let n = provider.notices();
                if !n.is_empty() {
                    console.notice(n);
                    dirty = true;
                }
            }
            _ = recv(&mut signals.tstp) => {
                terminal.backend_mut().suspend()?;
                redraw_all(terminal)?;
                dirty = true;
            }
            // Also after our own stop above: taking the terminal back twice is harmless.
            _ = recv(&mut signals.cont) => {
                terminal.backend_mut().resume()?;
                redraw_all(terminal)?;
                dirty = true;
            }
        }
        submit(console, &provider, &resp_tx, &mut tasks);
    };
    for (_, h) in tasks.drain() {
        h.abort();
    }
    exit
}

/// Clear the screen and forget what is on it, so the next draw paints every cell. Not
/// `Terminal::clear`: that asks the terminal for the cursor position, a reply the input
/// thread of the `EventStream` may read first.
fn redraw_all<B: Backend>(terminal: &mut Terminal<B>) -> std::io::Result<()>
where
    std::io::Error: From<B::Error>,
{
    let size = terminal.size()?;
    terminal.resize(ratatui::layout::Rect::new(0, 0, size.width, size.height))?;
    Ok(())
}

async fn recv(s: &mut Option<Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// Start the tasks for queued requests and stop those whose screens went away.
fn submit(
    console: &mut Console,
    provider: &Arc<dyn Provider>,
    tx: &mpsc::Sender<Response>,
    tasks: &mut HashMap<Ticket, tokio::task::AbortHandle>,
) {
    for t in console.take_cancelled() {
        if let Some(h) = tasks.remove(&t) {
            h.abort();
        }
    }
    let background = console.take_background_requests();
    for out in console.take_requests().into_iter().chain(background) {
        tracing::debug!(ticket = out.ticket.0, request = ?out.request, "request");
        if let Some(h) = provider.submit(out.ticket, out.request, out.app, tx.clone()) {
            tasks.insert(out.ticket, h);
        }
    }
    tasks.retain(|_, h| !h.is_finished());
}

/// The console without a terminal: the same state machine and provider, pumped by the
/// caller. Key-driven flow tests and the render benchmark use it; it never draws unless
/// asked.
pub struct Headless {
    pub console: Console,
    provider: Arc<dyn Provider>,
    updates: mpsc::Receiver<Update>,
    resp_tx: mpsc::Sender<Response>,
    resp_rx: mpsc::Receiver<Response>,
    tasks: HashMap<Ticket, tokio::task::AbortHandle>,
}

impl Headless {
    pub fn new(
        console: Console,
        provider: Arc<dyn Provider>,
        updates: mpsc::Receiver<Update>,
    ) -> Self {
        let (resp_tx, resp_rx) = mpsc::channel(1024);
        let mut h = Headless {
            console,
            provider,
            updates,
            resp_tx,
            resp_rx,
            tasks: HashMap::new(),
        };
        h.submit();
        h
    }

    fn submit(&mut self) {
        submit(
            &mut self.console,
            &self.provider,
            &self.resp_tx,
            &mut self.tasks,
        );
    }

    pub fn key(&mut self, key: crossterm::event::KeyEvent) {
        self.console.key(key);
        self.submit();
    }

    /// Type characters one key at a time.
    pub fn type_str(&mut self, s: &str) {
        for c in s.chars() {
            self.key(crossterm::event::KeyEvent::new(
                crossterm::event::KeyCode::Char(c),
                crossterm::event::KeyModifiers::NONE,
            ));
        }
    }

    /// Take whatever arrives (updates, answers) for at most `wait`.
    pub async fn step(&mut self, wait: Duration) {
        let mut buf = Vec::new();
        tokio::select! {
            n = self.updates.recv_many(&mut buf, BATCH) => {
                if n > 0 {
                    self.console.apply(buf.drain(..));
                }
            }
            Some(r) = self.resp_rx.recv() => { self.console.respond(r); }
            _ = tokio::time::sleep(wait) => {}
        }
        self.console.notice(self.provider.notices());
        self.console.tick();
        self.submit();
    }

    /// Pump until `cond` holds or the deadline passes; returns whether it held.
    pub async fn until(&mut self, deadline: Duration, cond: impl Fn(&Console) -> bool) -> bool {
        let end = tokio::time::Instant::now() + deadline;
        while tokio::time::Instant::now() < end {
            if cond(&self.console) {
                return true;
            }
            self.step(Duration::from_millis(30)).await;
        }
        cond(&self.console)
    }

    /// Draw into a fresh test buffer and return its text, one line per row.
    pub fn screen(&self, width: u16, height: u16) -> String {
        let Ok(mut t) = Terminal::new(ratatui::backend::TestBackend::new(width, height));
        if t.draw(|f| self.console.render(f)).is_err() {
            return String::new();
        }
        let buf = t.backend().buffer();
        let mut out = String::new();
        for y in 0..buf.area.height {
            let mut line = String::new();
            for x in 0..buf.area.width {
                line.push_str(buf[(x, y)].symbol());
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

impl Drop for Headless {
    fn drop(&mut self) {
        for (_, h) in self.tasks.drain() {
            h.abort();
        }
    }
}
