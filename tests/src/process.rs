//! A child process a test started by hand (not through [`crate::server::Server`]),
//! killed and reaped when the test lets go of it, also when an assertion
//! fails first.

use std::ops::{Deref, DerefMut};
use std::process::Child;

/// Owns a child process; kills and reaps it on drop.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Deref for KillOnDrop {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}
