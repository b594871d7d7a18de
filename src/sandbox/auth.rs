//! (stub, to be written) Sandbox users and their tokens.

#[derive(Debug, Clone, Default)]
pub struct Users {}

impl Users {
    pub fn generate(_seed: u64) -> Self {
        Users {}
    }
}
