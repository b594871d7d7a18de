//! (stub, to be written) Estate definitions.

use super::World;

#[derive(Debug, Clone, Default)]
pub struct Estate {}

impl Estate {
    pub fn load(_name_or_path: &str, _apps: Option<usize>, _seed: u64) -> Result<Self, String> {
        Ok(Estate {})
    }
}

pub fn seed_store(_world: &World) -> Result<(), String> {
    Ok(())
}
