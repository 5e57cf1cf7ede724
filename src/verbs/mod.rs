//! The verbs that act (`up`, `repair`, `down`), each a [`crate::session::Verb`] run through
//! the session's one sequence, with its report. The CLI only parses, confirms and calls them.

pub mod down;
pub mod drift;
pub mod repair;
pub mod scheduled;
pub mod up;
