//! What one instance may use: flowlet's own [`ResourceLimiter`], which remembers the memory
//! growth it refused, so that a trap is explained from that record and not from the text of
//! wasmtime's error.

use wasmtime::ResourceLimiter;

/// Core instances per store, at most (a component is several).
const INSTANCES: usize = 16;

/// The limits of one instance's store.
pub(crate) struct Limits {
    /// Bytes of linear memory per memory, at most.
    memory: usize,
    /// The memory size (bytes) a refused growth asked for, if one was refused.
    refused: Option<usize>,
}

impl Limits {
    pub(crate) fn new(memory: u64) -> Self {
        Self {
            memory: usize::try_from(memory).unwrap_or(usize::MAX),
            refused: None,
        }
    }

    /// The memory size a growth asked for and was refused, if any.
    pub(crate) fn refused(&self) -> Option<usize> {
        self.refused
    }
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory.min(maximum.unwrap_or(usize::MAX)) {
            self.refused = Some(desired);
            // A trap, not a failed `memory.grow`: most guests abort on a failed allocation
            // anyway, and a trap names the limit.
            wasmtime::bail!("memory limit of {} bytes reached", self.memory);
        }
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|m| desired <= m))
    }

    fn instances(&self) -> usize {
        INSTANCES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_past_the_cap_is_refused_and_remembered() {
        let mut l = Limits::new(1 << 20);
        assert!(l.memory_growing(0, 1 << 20, None).unwrap());
        assert_eq!(l.refused(), None);
        assert!(l.memory_growing(1 << 20, (1 << 20) + 65536, None).is_err());
        assert_eq!(l.refused(), Some((1 << 20) + 65536));
        // The memory's own maximum counts too.
        let mut l = Limits::new(1 << 30);
        assert!(l.memory_growing(0, 2 << 20, Some(1 << 20)).is_err());
    }
}
