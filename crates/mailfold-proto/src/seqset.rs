//! (module under construction: owned by its writer)
