//! Session services hosted for the daemon (in progress).
