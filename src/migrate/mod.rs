//! The migration itself, UI-agnostic like the engine: Prisma Migrate's history read and
//! written natively (no Node), and the deploy that applies pending migrations exactly as
//! `prisma migrate deploy` does. It reports progress as events; it never draws.

pub mod baseline;
pub mod deploy;
pub mod drift;
pub mod history;
pub mod lint;
pub mod rehearse;
pub mod resolve;
pub mod script;
