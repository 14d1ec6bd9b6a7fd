//! One module per command that has more to it than a call into the library.

use std::io::{BufRead, IsTerminal, Write};

use cutover::target::Target;

pub mod baseline;
pub mod deploy;
pub mod drift;
pub mod lint;
pub mod rehearse;
pub mod resolve;

/// The typed confirmation of a command that writes to the target: `--confirm DATABASE`, else
/// the database's name typed on the terminal after `question` and `items` are shown. Refused
/// outright when `--confirm` names another database, or when there is no terminal to ask on.
pub fn confirmed(
    target: &Target,
    flag: Option<&str>,
    question: &str,
    items: &[String],
) -> anyhow::Result<bool> {
    if let Some(typed) = flag {
        if !target.confirms(typed) {
            anyhow::bail!(
                "--confirm `{typed}` is not the target database's name (`{}`): nothing was changed",
                target.database()
            );
        }
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "this writes to database `{}`: pass --confirm {} (stdin is not a terminal, so it cannot ask)",
            target.database(),
            target.database()
        );
    }
    let mut err = std::io::stderr();
    writeln!(
        err,
        "{question} on database `{}` at {}:",
        target.database(),
        target.address()
    )?;
    for item in items {
        writeln!(err, "  {item}")?;
    }
    write!(err, "type the database name to go ahead: ")?;
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(target.confirms(line.trim_end_matches(['\r', '\n'])))
}
