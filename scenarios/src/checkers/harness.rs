//! Checkers of the harness scenarios.
