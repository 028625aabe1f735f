//! Checkers of the batchlog area (placeholder until this area lands).
