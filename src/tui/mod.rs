//! The console: ratatui views over the Estate store, keys, themes. It draws and reads keys
//! only: it reads the estate by reference, and everything it wants from the outside world
//! goes out as a [`request::Request`] and comes back as a tagged [`request::Response`].
//! It never decides policy (that is `ops`) and never talks to a server itself.

pub mod adapt;
pub mod app;
pub mod ci;
pub mod colour_out;
pub mod console;
pub mod frame_gate;
pub mod input;
pub mod keymap;
pub mod promote;
pub mod request;
pub mod run;
pub mod terminal;
pub mod theme;
pub mod view;
pub mod views;
pub mod widgets;
