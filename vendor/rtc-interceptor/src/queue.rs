//! The interceptors' pass-through queues.

use std::collections::VecDeque;

/// Pops the front of an interceptor's queue and, once the queue is empty, gives back what
/// it grew to.
///
/// An interceptor's `read_queue` and `write_queue` hold a packet only between its
/// `handle_*` and the chain's `poll_*` right after, yet they live as long as the
/// connection, and a `VecDeque` keeps the capacity it grew to: four packets from its first
/// push. With the two report interceptors and the terminus, a connection that had sent and
/// received held ~7 KiB of empty queues. A packet passing through now costs an allocation
/// per queue instead.
pub(crate) fn drain_front<T>(queue: &mut VecDeque<T>) -> Option<T> {
    let front = queue.pop_front();
    if queue.is_empty() && queue.capacity() > 0 {
        queue.shrink_to_fit();
    }
    front
}
