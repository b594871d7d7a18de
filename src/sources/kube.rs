//! (stub, to be written)
