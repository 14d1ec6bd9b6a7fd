//! One module per command that has more to it than a call into the library.

pub mod deploy;
