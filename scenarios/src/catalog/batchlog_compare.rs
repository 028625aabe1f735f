//! The batchlog v1/v2 comparison table (placeholder until the batchlog area lands).
