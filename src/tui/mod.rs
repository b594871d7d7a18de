//! The console: ratatui views over the Estate store, keys, themes. Draws only; reads the
//! estate by reference and sends actions as messages.
pub mod run;
