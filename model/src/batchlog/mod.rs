//! batchlog (placeholder until its work lands).
