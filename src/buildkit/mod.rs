//! buildkit (in progress)
