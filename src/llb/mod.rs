//! llb (in progress)
