//! BuildKit client edge: transports, the Control API, the session, progress and exporters.
//! All network IO of the driver lives here. (In progress.)

pub mod session;
