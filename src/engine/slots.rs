//! A counting semaphore that hands free slots to the waiting step with the highest priority
//! (the longest expected), not to the first that asked: the longest steps start first, so that
//! the short ones fill in around them and the batch ends sooner.

use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Slots handed out by priority.
#[derive(Debug)]
pub struct Slots {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    free: usize,
    /// While above zero, every request waits (see [`Slots::hold`]).
    held: usize,
    waiting: BinaryHeap<Waiter>,
    /// Ties go to the earlier request.
    asked: u64,
}

#[derive(Debug)]
struct Waiter {
    priority: u64,
    order: u64,
    wake: oneshot::Sender<Slot>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        (self.priority, self.order) == (other.priority, other.order)
    }
}

impl Eq for Waiter {}

impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Waiter {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.order.cmp(&self.order))
    }
}

/// A slot held; given back (to the next waiter by priority) when dropped.
#[derive(Debug)]
pub struct Slot {
    /// `None` once handed on (a slot that could not be delivered is disarmed, not dropped).
    state: Option<Arc<Mutex<State>>>,
}

impl Slots {
    /// `count` slots (at least one).
    pub fn new(count: usize) -> Slots {
        Slots {
            state: Arc::new(Mutex::new(State {
                free: count.max(1),
                held: 0,
                waiting: BinaryHeap::new(),
                asked: 0,
            })),
        }
    }

    /// Waits for a slot; among waiters, the highest `priority` is served first.
    pub async fn acquire(&self, priority: u64) -> Slot {
        let receiver = {
            let mut state = lock(&self.state);
            if state.free > 0 && state.waiting.is_empty() && state.held == 0 {
                state.free -= 1;
                return Slot {
                    state: Some(self.state.clone()),
                };
            }
            let (wake, receiver) = oneshot::channel();
            state.asked += 1;
            let order = state.asked;
            state.waiting.push(Waiter {
                priority,
                order,
                wake,
            });
            receiver
        };
        match receiver.await {
            Ok(slot) => slot,
            // The sender lives in the queue until a slot is handed over; it is never dropped
            // unsent while `Slots` lives, and `Slots` outlives its waiters (they borrow it).
            Err(_) => unreachable!("a waiting slot's sender is never dropped unsent"),
        }
    }

    /// Holds every request back until the returned guard is dropped, so that requests made
    /// meanwhile are then served by priority, not by which task happened to ask first.
    pub fn hold(&self) -> Hold {
        lock(&self.state).held += 1;
        Hold {
            state: self.state.clone(),
        }
    }

    /// How many requests are waiting.
    pub fn waiting(&self) -> usize {
        lock(&self.state).waiting.len()
    }
}

/// See [`Slots::hold`].
#[derive(Debug)]
pub struct Hold {
    state: Arc<Mutex<State>>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        state.held -= 1;
        if state.held == 0 {
            while state.free > 0 && hand_on(&self.state, &mut state) {
                state.free -= 1;
            }
        }
    }
}

/// Gives a slot to the best waiter still waiting (one whose future was dropped has closed
/// its receiver: it is skipped); false when no one waits.
fn hand_on(shared: &Arc<Mutex<State>>, state: &mut State) -> bool {
    while let Some(waiter) = state.waiting.pop() {
        let slot = Slot {
            state: Some(shared.clone()),
        };
        match waiter.wake.send(slot) {
            Ok(()) => return true,
            Err(mut unsent) => unsent.state = None,
        }
    }
    false
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(shared) = self.state.take() else {
            return;
        };
        let mut state = lock(&shared);
        if state.held > 0 || !hand_on(&shared, &mut state) {
            state.free += 1;
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_highest_priority_waiting() {
        let slots = Arc::new(Slots::new(1));
        let held = slots.acquire(0).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for priority in [5, 50, 20, 50] {
            let (slots, tx) = (slots.clone(), tx.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = slots.acquire(priority).await;
                tx.send(priority).unwrap();
            }));
            tokio::task::yield_now().await;
        }
        // Every task is queued before the slot is freed.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        let mut order = Vec::new();
        while let Ok(priority) = rx.try_recv() {
            order.push(priority);
        }
        assert_eq!(order, [50, 50, 20, 5]);
    }

    #[tokio::test]
    async fn a_waiter_that_gave_up_does_not_swallow_the_slot() {
        let slots = Slots::new(1);
        let held = slots.acquire(0).await;
        let gave_up =
            tokio::time::timeout(std::time::Duration::from_millis(10), slots.acquire(9)).await;
        assert!(gave_up.is_err());
        drop(held);
        let again =
            tokio::time::timeout(std::time::Duration::from_millis(100), slots.acquire(1)).await;
        assert!(again.is_ok(), "the slot is free again");
    }
}
