//! Named injection points inside the model. They live in `sim` ([`sim::injection`]), beside the
//! other fault mechanisms, so that an injection enabled as a fault ([`sim::Fault::Injection`])
//! is applied, recorded and undone (at the heal too) like any other; this module keeps the
//! old paths working.

pub use sim::injection::*;
