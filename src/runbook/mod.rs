//! The checklist as data: types, loading from TOML with located errors, validation, and the
//! bundled Sightline runbook.

mod load;
mod model;
mod raw;
pub mod vars;

pub use load::{Diagnostic, ProbeCatalog, RunbookError, load_file, load_str};
pub use model::{
    Action, Expectation, HttpAction, Kind, MigrateAction, MigrateOp, Runbook, Section, Severity,
    ShellAction, Step, Thresholds, Variable,
};

/// The bundled runbook's TOML text (`cutover runbook export` prints it).
pub const BUNDLED: &str = include_str!("../../assets/runbooks/sightline.toml");

/// Loads the bundled runbook.
pub fn bundled(catalog: &dyn ProbeCatalog) -> Result<Runbook, RunbookError> {
    load_str(BUNDLED, "<bundled runbook>", catalog)
}
