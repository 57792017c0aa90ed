//! How long a driver polls for an awaited answer before it sleeps.
//!
//! A driver that has just opened a transaction usually gets the answer
//! within microseconds from a nearby peer, and sleeping for it costs more
//! than the wait: the thread leaves the CPU, the CPU idles, and the answer
//! has to wake both again (on a virtual machine with idle cores that costs
//! several microseconds per wakeup, more through `epoll` than through a
//! blocking read). So while an answer is awaited
//! ([`crate::link::Link::awaited_answers`]) the driver first polls its fds
//! without sleeping, yielding the CPU between two polls to whatever else
//! can run there (the peer, when it shares the CPU, answers first), for a
//! window that adapts to how fast answers come, the way KVM's halt
//! polling does:
//!
//! ```text
//!                answer within `max`, but
//!                after the window
//!   +-------+   ----------------------->   +---------------------+
//!   |   0   |                              | start, then doubled |
//!   | (off) |   <-----------------------   | up to `max`         |
//!   +-------+    answer later than `max`   +---------------------+
//!                                            answer within the
//!                                            window: kept as it is
//! ```
//!
//! Polling therefore costs at most `max` of CPU per answer, and only
//! while answers keep coming within `max`; a link whose answers are slower
//! (or that is idle) stops polling after one of them. Nothing is polled
//! for one-way traffic, and `max` of zero turns polling off.
//!
//! In a [`super::session::Session`] the answer goes on to the user thread
//! waiting in `Transaction::recv`: that thread polls its reply channel the
//! same way (one window per session), and the session's driver does not
//! poll.

use std::time::Duration;

/// The first window after an answer came within `max`.
const START: Duration = Duration::from_micros(10);

/// The adaptive polling window; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AnswerPoll {
    window: Duration,
    max: Duration,
}

impl AnswerPoll {
    /// Polling off until an answer comes within `max`.
    pub(crate) fn new(max: Duration) -> AnswerPoll {
        AnswerPoll {
            window: Duration::ZERO,
            max,
        }
    }

    /// How long to poll before sleeping for an awaited answer.
    pub(crate) fn window(&self) -> Duration {
        self.window
    }

    /// An awaited answer came `waited` after the driver started waiting
    /// for it (polling included).
    pub(crate) fn answered_after(&mut self, waited: Duration) {
        if waited <= self.window {
            return;
        }
        self.window = if waited <= self.max {
            (self.window * 2).max(START).min(self.max)
        } else {
            Duration::ZERO
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn starts_off_and_grows_by_doubling_up_to_max_while_answers_come_within_max() {
        let mut p = AnswerPoll::new(us(50));
        assert_eq!(p.window(), Duration::ZERO);
        let mut seen = Vec::new();
        for _ in 0..5 {
            p.answered_after(us(45));
            seen.push(p.window());
        }
        assert_eq!(seen, [us(10), us(20), us(40), us(50), us(50)]);
    }

    #[test]
    fn an_answer_within_the_window_keeps_it() {
        let mut p = AnswerPoll::new(us(50));
        p.answered_after(us(6));
        assert_eq!(p.window(), us(10));
        for _ in 0..100 {
            p.answered_after(us(6));
        }
        assert_eq!(p.window(), us(10));
    }

    #[test]
    fn an_answer_slower_than_max_turns_polling_off_until_a_fast_one() {
        let mut p = AnswerPoll::new(us(50));
        p.answered_after(us(30));
        p.answered_after(us(30));
        assert_eq!(p.window(), us(20));
        p.answered_after(us(51));
        assert_eq!(p.window(), Duration::ZERO);
        p.answered_after(us(500));
        assert_eq!(p.window(), Duration::ZERO);
        p.answered_after(us(3));
        assert_eq!(p.window(), us(10));
    }

    #[test]
    fn a_max_of_zero_never_polls() {
        let mut p = AnswerPoll::new(Duration::ZERO);
        for w in [0, 1, 5, 10, 100] {
            p.answered_after(us(w));
            assert_eq!(p.window(), Duration::ZERO);
        }
    }

    #[test]
    fn a_max_below_the_start_caps_the_window() {
        let mut p = AnswerPoll::new(us(4));
        p.answered_after(us(3));
        assert_eq!(p.window(), us(4));
    }
}
