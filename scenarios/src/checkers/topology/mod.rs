//! Checkers of the topology area (placeholder until this area lands).
