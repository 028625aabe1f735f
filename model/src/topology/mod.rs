//! topology (placeholder until its work lands).
