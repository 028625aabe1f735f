//! Injection points, faults as data, nemesis, swarm generator, shrinker.
