//! `backup.pitr`: WAL archiving is on and working, so the server can be recovered to a point in
//! time. Managed providers keep their own archive; there the engineer confirms by hand.

use serde::Deserialize;

use super::ProbeResult;
use crate::db::Db;
use crate::outcome::Outcome;

/// Parameters of the `pitr` probe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Host name endings of managed providers whose PITR is not visible from SQL.
    pub managed_hosts: Vec<String>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            managed_hosts: [
                "neon.tech",
                "supabase.co",
                "supabase.com",
                "pooler.supabase.com",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// Archiving settings and the archiver's record (failures after the last success mean it is
/// stuck).
const ARCHIVING: &str = "
    SELECT current_setting('wal_level'),
           current_setting('archive_mode'),
           current_setting('archive_command'),
           coalesce(current_setting('archive_library', true), ''),
           archived_count::int8,
           failed_count::int8,
           coalesce(last_archived_wal, ''),
           coalesce(last_failed_wal, ''),
           coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false)
      FROM pg_stat_archiver";

/// Runs the probe.
pub async fn run(db: &Db, params: Params) -> ProbeResult {
    let host = db.target().host().to_ascii_lowercase();
    if let Some(provider) = params
        .managed_hosts
        .iter()
        .find(|h| host.ends_with(h.as_str()))
    {
        return Ok(Outcome::skip(format!(
            "managed provider ({provider}): PITR is not visible from SQL; confirm the restore window in the provider's console"
        )));
    }
    let row: (
        String,
        String,
        String,
        String,
        i64,
        i64,
        String,
        String,
        bool,
    ) = db.read_batch(&[ARCHIVING.to_string()]).await?.one(0)?;
    let (wal_level, mode, command, library, archived, failed, last_ok, last_bad, failing) = row;
    let details = vec![
        format!("wal_level: {wal_level}"),
        format!("archive_mode: {mode}"),
        format!(
            "archiver: {}",
            if library.is_empty() {
                format!("archive_command = {command:?}")
            } else {
                format!("archive_library = {library:?}")
            }
        ),
        format!(
            "archived {archived} WAL file(s), last {last_ok:?}; {failed} failure(s), last {last_bad:?}"
        ),
    ];
    let outcome = if wal_level == "minimal" {
        Outcome::fail("wal_level is minimal: neither archiving nor replicas are possible")
    } else if mode == "off" {
        Outcome::fail(
            "WAL archiving is off (archive_mode = off): no point-in-time recovery from this server; enable archiving or confirm the provider's PITR",
        )
    } else if library.is_empty() && matches!(command.trim(), "" | "(disabled)") {
        Outcome::fail(
            "archive_mode is on but no archive_command or archive_library is set: WAL is not archived",
        )
    } else if failing {
        Outcome::fail(format!(
            "WAL archiving is failing: last failure on {last_bad} after the last success; check the archive destination"
        ))
    } else {
        Outcome::pass(format!(
            "WAL archiving is on ({mode}); {archived} file(s) archived, no failure since the last success"
        ))
    };
    Ok(outcome.with_details(details))
}
