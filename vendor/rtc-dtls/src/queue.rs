//! A connection's and an endpoint's packet queues.

use std::collections::VecDeque;

/// Pops the front of a queue and, once the queue is empty, gives back what it grew to.
///
/// The queues live as long as the association, and a `VecDeque` keeps the capacity it
/// grew to: a handshake's flights leave a client's outgoing queue with room for a
/// flight's records (~1.5 KiB) that only a rare data-channel message would use again. What passes
/// through after the handshake is data-channel traffic (SRTP does not pass here), so an
/// allocation per record costs nothing beside the encryption it goes to.
pub(crate) fn drain_front<T>(queue: &mut VecDeque<T>) -> Option<T> {
    let front = queue.pop_front();
    if queue.is_empty() && queue.capacity() > 0 {
        queue.shrink_to_fit();
    }
    front
}
