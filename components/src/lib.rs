//! Pipeline step binaries.
