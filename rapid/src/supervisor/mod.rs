//! Processes: spawning children in their own process groups, the one reaper
//! that owns every `wait`, group kills, and memory accounting.

mod control;
pub mod memory;
mod reaper;
mod spawn;
pub mod vm_init;

pub use control::ProcessControl;
pub use reaper::{ChildExit, ExitReason, Reaper};
pub use spawn::{kill_group, kill_orphans, kill_tree, seal_inherited_fds, SpawnSpec, Spawned};
