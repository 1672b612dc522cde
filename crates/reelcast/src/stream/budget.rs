//! The server-wide bound on memory that files can claim: the sample indexes of
//! fragmented files (a few bytes per sample, built when the file is opened) and the
//! fragments being read to build them.
//!
//! Owns: the count of bytes reserved by all streams together, against
//! `vod_index_memory_mb`. Must not: know what the bytes are for. A plain MP4 costs
//! nothing here: its tables stay in the file (`reader`), and its moov is walked in
//! 64 KiB pieces (crate `mp4`).
//!
//! Why a budget and not only a limit per file: a fragmented file can claim millions of
//! samples in a few bytes (`trun` with default sizes), so twenty plays of one crafted
//! file would each build a large index. Each open reserves as its index grows; an open
//! that would take the total past the budget fails with the reason, and streams that are
//! already playing keep what they hold.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes that all streams' file indexes may hold together.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(MemoryBudget {
            limit,
            used: AtomicU64::new(0),
        })
    }

    /// No bound (tools such as `reelcast probe` that open one file).
    pub fn unlimited() -> Arc<Self> {
        Self::new(u64::MAX)
    }

    /// The budget in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes reserved now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// An empty reservation, to be grown with [`Reservation::resize`].
    pub fn reserve(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: self.clone(),
            held: 0,
        }
    }

    fn take(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Bytes one stream holds of a [`MemoryBudget`]; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<MemoryBudget>,
    held: u64,
}

impl Reservation {
    /// Holds `bytes` from now on (more or fewer than before). Fails, holding what it
    /// held, when the budget has not that much left.
    pub fn resize(&mut self, bytes: u64) -> Result<(), BudgetExceeded> {
        if bytes > self.held {
            if !self.budget.take(bytes - self.held) {
                return Err(BudgetExceeded {
                    limit: self.budget.limit,
                });
            }
        } else {
            self.budget.give_back(self.held - bytes);
        }
        self.held = bytes;
        Ok(())
    }

    /// Bytes this reservation holds.
    pub fn held(&self) -> u64 {
        self.held
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.held);
    }
}

/// The budget has no room for what an open needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetExceeded {
    /// The budget in bytes.
    pub limit: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_budget_and_give_back_when_dropped() {
        let budget = MemoryBudget::new(100);
        let mut a = budget.reserve();
        let mut b = budget.reserve();
        a.resize(60).unwrap();
        assert_eq!(b.resize(50), Err(BudgetExceeded { limit: 100 }));
        assert_eq!(b.held(), 0, "a failed resize holds what it held");
        b.resize(40).unwrap();
        assert_eq!(budget.used(), 100);
        a.resize(10).unwrap();
        assert_eq!(budget.used(), 50);
        drop(a);
        drop(b);
        assert_eq!(budget.used(), 0);
    }
}
