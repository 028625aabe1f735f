//! The clustersim scenario catalog, checkers and runner.
