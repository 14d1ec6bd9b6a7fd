//! What each statement does to the tables that exist before it runs: the lock it takes on each
//! (the level, from PostgreSQL's documentation of `ALTER TABLE`, `CREATE INDEX` and the explicit
//! locking chapter), and whether it rewrites the table or reads it whole while it holds that
//! lock. Each row is verified on a real server by the tests (`tests/lint.rs`): the statement
//! runs in a rolled-back transaction, `pg_locks` shows its lock, and a changed `relfilenode`
//! shows a rewrite.

use std::fmt;

use serde::Serialize;
use squawk_syntax::ast::{self, AstNode};

/// A table-level lock mode, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LockMode {
    /// `SELECT`.
    AccessShare,
    /// `SELECT FOR UPDATE`, a foreign key's validation on the referenced table.
    RowShare,
    /// `INSERT`, `UPDATE`, `DELETE`.
    RowExclusive,
    /// `CREATE INDEX CONCURRENTLY`, `VALIDATE CONSTRAINT`, `VACUUM`: blocks other schema
    /// changes, not reads or writes.
    ShareUpdateExclusive,
    /// `CREATE INDEX`: blocks writes.
    Share,
    /// A foreign key, a trigger: blocks writes.
    ShareRowExclusive,
    /// `REFRESH MATERIALIZED VIEW CONCURRENTLY`: blocks writes and row locks.
    Exclusive,
    /// Most of `ALTER TABLE`, `DROP`, `TRUNCATE`: blocks reads and writes.
    AccessExclusive,
}

impl LockMode {
    /// Every mode, weakest first.
    pub const ALL: [LockMode; 8] = [
        LockMode::AccessShare,
        LockMode::RowShare,
        LockMode::RowExclusive,
        LockMode::ShareUpdateExclusive,
        LockMode::Share,
        LockMode::ShareRowExclusive,
        LockMode::Exclusive,
        LockMode::AccessExclusive,
    ];

    /// The mode `pg_locks.mode` names (`AccessExclusiveLock`).
    pub fn from_pg_locks(mode: &str) -> Option<LockMode> {
        LockMode::ALL
            .into_iter()
            .find(|m| m.pg_locks_mode() == mode)
    }

    /// As the documentation writes it: `ACCESS EXCLUSIVE`.
    pub fn label(self) -> &'static str {
        match self {
            LockMode::AccessShare => "ACCESS SHARE",
            LockMode::RowShare => "ROW SHARE",
            LockMode::RowExclusive => "ROW EXCLUSIVE",
            LockMode::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            LockMode::Share => "SHARE",
            LockMode::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockMode::Exclusive => "EXCLUSIVE",
            LockMode::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// As `pg_locks.mode` shows it: `AccessExclusiveLock`.
    pub fn pg_locks_mode(self) -> &'static str {
        match self {
            LockMode::AccessShare => "AccessShareLock",
            LockMode::RowShare => "RowShareLock",
            LockMode::RowExclusive => "RowExclusiveLock",
            LockMode::ShareUpdateExclusive => "ShareUpdateExclusiveLock",
            LockMode::Share => "ShareLock",
            LockMode::ShareRowExclusive => "ShareRowExclusiveLock",
            LockMode::Exclusive => "ExclusiveLock",
            LockMode::AccessExclusive => "AccessExclusiveLock",
        }
    }

    /// What the application cannot do on the table while it is held.
    pub fn blocks(self) -> &'static str {
        match self {
            LockMode::AccessShare | LockMode::RowShare | LockMode::RowExclusive => {
                "nothing the app does"
            }
            LockMode::ShareUpdateExclusive => {
                "other schema changes and VACUUM, not reads or writes"
            }
            LockMode::Share | LockMode::ShareRowExclusive | LockMode::Exclusive => {
                "writes (reads go on)"
            }
            LockMode::AccessExclusive => "reads and writes",
        }
    }

    /// Whether the app's own queries wait while it is held (writes at least).
    pub fn blocks_the_app(self) -> bool {
        self >= LockMode::Share
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A table (or, for `DROP INDEX`/`REINDEX INDEX`, an index whose table the target knows), as
/// the statement names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Relation {
    /// Its schema, when the statement names one.
    pub schema: Option<String>,
    /// Its name, as the server stores it (unquoted names folded to lower case).
    pub name: String,
    /// It is an index: the lock falls on its table.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub index: bool,
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quote = |name: &str| {
            if name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                name.to_string()
            } else {
                format!("\"{}\"", name.replace('"', "\"\""))
            }
        };
        match &self.schema {
            Some(schema) => write!(f, "{}.{}", quote(schema), quote(&self.name)),
            None => f.write_str(&quote(&self.name)),
        }
    }
}

/// One lock a statement takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableLock {
    /// On what.
    pub relation: Relation,
    /// How strong.
    pub mode: LockMode,
}

/// What a statement does to existing tables while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Effect {
    /// The kind of statement (`ALTER TABLE … ALTER COLUMN … TYPE`).
    pub what: String,
    /// The locks, strongest per relation.
    pub locks: Vec<TableLock>,
    /// It writes a new copy of the table (and its indexes).
    pub rewrite: bool,
    /// It reads every row while holding its lock (an index build, a validation, an update).
    pub scan: bool,
}

impl Effect {
    fn new(what: impl Into<String>) -> Effect {
        Effect {
            what: what.into(),
            locks: Vec::new(),
            rewrite: false,
            scan: false,
        }
    }

    fn lock(&mut self, relation: Option<Relation>, mode: LockMode) {
        let Some(relation) = relation else { return };
        match self.locks.iter_mut().find(|l| l.relation == relation) {
            Some(existing) => existing.mode = existing.mode.max(mode),
            None => self.locks.push(TableLock { relation, mode }),
        }
    }

    /// The strongest lock it takes.
    pub fn strongest(&self) -> Option<LockMode> {
        self.locks.iter().map(|l| l.mode).max()
    }
}

/// A relation from a name as written (`"Summary"`, `public."Summary"`, `summary`).
pub fn relation(text: &str, index: bool) -> Option<Relation> {
    let mut parts: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    let mut chars = text.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                current.push('"');
            }
            '"' => {
                quoted = !quoted;
                was_quoted = true;
            }
            '.' if !quoted => {
                parts.push(finish(&mut current, &mut was_quoted));
            }
            c if !quoted && c.is_whitespace() => {}
            c => current.push(c),
        }
    }
    parts.push(finish(&mut current, &mut was_quoted));
    let name = parts.pop().filter(|n| !n.is_empty())?;
    Some(Relation {
        schema: parts.pop(),
        name,
        index,
    })
}

fn finish(current: &mut String, was_quoted: &mut bool) -> String {
    let part = if *was_quoted {
        current.clone()
    } else {
        current.to_lowercase()
    };
    current.clear();
    *was_quoted = false;
    part
}

fn named(node: Option<impl AstNode>, index: bool) -> Option<Relation> {
    let node = node?;
    let text = node.syntax().text().to_string();
    let text = text
        .trim()
        .trim_start_matches("ONLY")
        .trim_start_matches("only");
    relation(text.trim().trim_end_matches('*'), index)
}

/// Functions whose value changes per row: a column added with one as its default is filled row
/// by row, which rewrites the table (a constant or stable default is stored once, PostgreSQL
/// 11 and later).
const VOLATILE: &[&str] = &[
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v4",
    "uuidv4",
    "uuidv7",
    "random",
    "clock_timestamp",
    "timeofday",
    "nextval",
];

fn has_volatile_default(constraints: impl Iterator<Item = ast::Constraint>) -> bool {
    constraints.into_iter().any(|constraint| match constraint {
        ast::Constraint::DefaultConstraint(default) => {
            let text = default.syntax().text().to_string().to_lowercase();
            VOLATILE.iter().any(|f| text.contains(&format!("{f}(")))
        }
        // A stored generated column is computed for every row.
        ast::Constraint::GeneratedConstraint(generated) => {
            let text = generated.syntax().text().to_string().to_lowercase();
            text.contains("stored")
        }
        _ => false,
    })
}

/// What `stmt` does to the tables that exist before it, or `None` when it takes no lock on
/// any (a new table, a function, a type, a comment).
pub fn effect(stmt: &ast::Stmt) -> Option<Effect> {
    use LockMode::*;
    let effect = match stmt {
        ast::Stmt::CreateIndex(create) => {
            let concurrently = create.concurrently_token().is_some();
            let mut e = Effect::new(if concurrently {
                "CREATE INDEX CONCURRENTLY"
            } else {
                "CREATE INDEX"
            });
            e.lock(
                named(create.table_relation_name(), false),
                if concurrently {
                    ShareUpdateExclusive
                } else {
                    Share
                },
            );
            e.scan = true;
            e
        }
        ast::Stmt::DropIndex(drop) => {
            let concurrently = drop.concurrently_token().is_some();
            let mut e = Effect::new(if concurrently {
                "DROP INDEX CONCURRENTLY"
            } else {
                "DROP INDEX"
            });
            for index in drop.index_refs() {
                e.lock(
                    named(Some(index), true),
                    if concurrently {
                        ShareUpdateExclusive
                    } else {
                        AccessExclusive
                    },
                );
            }
            e
        }
        ast::Stmt::DropTable(drop) => {
            let mut e = Effect::new("DROP TABLE");
            for table in drop.table_name_refs() {
                e.lock(named(Some(table), false), AccessExclusive);
            }
            e
        }
        ast::Stmt::Truncate(truncate) => {
            let mut e = Effect::new("TRUNCATE");
            for table in truncate
                .table_list()
                .into_iter()
                .flat_map(|list| list.table_relation_names())
            {
                e.lock(named(Some(table), false), AccessExclusive);
            }
            e
        }
        ast::Stmt::Update(update) => {
            let mut e = Effect::new("UPDATE");
            e.lock(named(update.relation_name(), false), RowExclusive);
            e.scan = update.where_clause_or_current_of().is_none();
            e
        }
        ast::Stmt::Delete(delete) => {
            let mut e = Effect::new("DELETE");
            e.lock(named(delete.relation_name(), false), RowExclusive);
            e.scan = delete.where_clause_or_current_of().is_none();
            e
        }
        ast::Stmt::Insert(insert) => {
            let mut e = Effect::new("INSERT");
            e.lock(named(insert.relation_name_ref(), false), RowExclusive);
            e
        }
        ast::Stmt::CreateTable(create) => {
            // The new table is empty; the tables its foreign keys reference are locked.
            let mut e = Effect::new("CREATE TABLE … REFERENCES");
            for node in create.syntax().descendants() {
                if let Some(fk) = ast::ForeignKeyConstraint::cast(node.clone()) {
                    e.lock(named(fk.table_name_ref(), false), ShareRowExclusive);
                } else if let Some(fk) = ast::ReferencesConstraint::cast(node) {
                    e.lock(named(fk.table(), false), ShareRowExclusive);
                }
            }
            e
        }
        ast::Stmt::AlterTable(alter) => return alter_table(alter),
        _ => return None,
    };
    (!effect.locks.is_empty()).then_some(effect)
}

fn alter_table(alter: &ast::AlterTable) -> Option<Effect> {
    use LockMode::*;
    let table = named(alter.table_relation_name(), false);
    let mut whats: Vec<&str> = Vec::new();
    let mut e = Effect::new("ALTER TABLE");
    for action in alter.actions() {
        let (what, mode) = match &action {
            ast::AlterTableAction::AddColumn(add) => {
                // A serial or identity column is filled from its sequence row by row.
                let ty = add
                    .ty()
                    .map(|t| t.syntax().text().to_string().to_lowercase())
                    .unwrap_or_default();
                let identity = add
                    .syntax()
                    .text()
                    .to_string()
                    .to_lowercase()
                    .contains("identity");
                if has_volatile_default(add.constraints()) || ty.ends_with("serial") || identity {
                    e.rewrite = true;
                }
                for constraint in add.constraints() {
                    match constraint {
                        ast::Constraint::ReferencesConstraint(fk) => {
                            e.lock(named(fk.table(), false), ShareRowExclusive);
                        }
                        ast::Constraint::PrimaryKeyConstraint(_)
                        | ast::Constraint::UniqueConstraint(_) => e.scan = true,
                        _ => {}
                    }
                }
                ("ADD COLUMN", AccessExclusive)
            }
            ast::AlterTableAction::AddConstraint(add) => match add.constraint() {
                Some(ast::Constraint::ForeignKeyConstraint(fk)) => {
                    let valid = !add.constraint().is_some_and(|c| c.is_not_valid());
                    e.lock(named(fk.table_name_ref(), false), ShareRowExclusive);
                    e.scan |= valid;
                    ("ADD FOREIGN KEY", ShareRowExclusive)
                }
                Some(ast::Constraint::CheckConstraint(_)) => {
                    e.scan |= !add.constraint().is_some_and(|c| c.is_not_valid());
                    ("ADD CHECK", AccessExclusive)
                }
                Some(ast::Constraint::UniqueConstraint(unique)) => {
                    e.scan |= unique.using_index().is_none();
                    ("ADD UNIQUE", AccessExclusive)
                }
                Some(ast::Constraint::PrimaryKeyConstraint(key)) => {
                    e.scan |= key.using_index().is_none();
                    ("ADD PRIMARY KEY", AccessExclusive)
                }
                _ => ("ADD CONSTRAINT", AccessExclusive),
            },
            ast::AlterTableAction::ValidateConstraint(_) => {
                e.scan = true;
                ("VALIDATE CONSTRAINT", ShareUpdateExclusive)
            }
            ast::AlterTableAction::AlterColumn(column) => match column.option() {
                Some(ast::AlterColumnOption::SetType(_)) => {
                    e.rewrite = true;
                    ("ALTER COLUMN … TYPE", AccessExclusive)
                }
                Some(ast::AlterColumnOption::SetNotNull(_)) => {
                    e.scan = true;
                    ("ALTER COLUMN … SET NOT NULL", AccessExclusive)
                }
                Some(ast::AlterColumnOption::SetStatistics(_)) => {
                    ("ALTER COLUMN … SET STATISTICS", ShareUpdateExclusive)
                }
                Some(ast::AlterColumnOption::SetDefault(_)) => {
                    ("ALTER COLUMN … SET DEFAULT", AccessExclusive)
                }
                Some(ast::AlterColumnOption::DropDefault(_)) => {
                    ("ALTER COLUMN … DROP DEFAULT", AccessExclusive)
                }
                Some(ast::AlterColumnOption::DropNotNull(_)) => {
                    ("ALTER COLUMN … DROP NOT NULL", AccessExclusive)
                }
                _ => ("ALTER COLUMN", AccessExclusive),
            },
            ast::AlterTableAction::DropColumn(_) => ("DROP COLUMN", AccessExclusive),
            ast::AlterTableAction::DropConstraint(_) => ("DROP CONSTRAINT", AccessExclusive),
            ast::AlterTableAction::RenameColumn(_) => ("RENAME COLUMN", AccessExclusive),
            ast::AlterTableAction::RenameConstraint(_) => ("RENAME CONSTRAINT", AccessExclusive),
            ast::AlterTableAction::TableRenameTo(_) => ("RENAME TO", AccessExclusive),
            ast::AlterTableAction::SetSchema(_) => ("SET SCHEMA", AccessExclusive),
            ast::AlterTableAction::EnableTrigger(_)
            | ast::AlterTableAction::DisableTrigger(_)
            | ast::AlterTableAction::EnableAlwaysTrigger(_)
            | ast::AlterTableAction::EnableReplicaTrigger(_) => {
                ("ENABLE/DISABLE TRIGGER", ShareRowExclusive)
            }
            ast::AlterTableAction::SetOptions(_) | ast::AlterTableAction::ResetOptions(_) => {
                ("SET (storage parameters)", ShareUpdateExclusive)
            }
            ast::AlterTableAction::ClusterOn(_) | ast::AlterTableAction::SetWithoutCluster(_) => {
                ("CLUSTER ON", ShareUpdateExclusive)
            }
            ast::AlterTableAction::SetTablespace(_)
            | ast::AlterTableAction::SetLogged(_)
            | ast::AlterTableAction::SetUnlogged(_)
            | ast::AlterTableAction::SetAccessMethod(_) => {
                e.rewrite = true;
                (
                    "SET TABLESPACE/LOGGED/UNLOGGED/ACCESS METHOD",
                    AccessExclusive,
                )
            }
            ast::AlterTableAction::AttachPartition(_) => {
                e.scan = true;
                ("ATTACH PARTITION", ShareUpdateExclusive)
            }
            ast::AlterTableAction::DetachPartition(detach) => {
                let concurrently = detach
                    .syntax()
                    .descendants_with_tokens()
                    .any(|t| t.kind() == squawk_syntax::SyntaxKind::CONCURRENTLY_KW);
                if concurrently {
                    ("DETACH PARTITION CONCURRENTLY", ShareUpdateExclusive)
                } else {
                    ("DETACH PARTITION", AccessExclusive)
                }
            }
            _ => ("ALTER TABLE", AccessExclusive),
        };
        if !whats.contains(&what) {
            whats.push(what);
        }
        e.lock(table.clone(), mode);
    }
    if whats.is_empty() {
        return None;
    }
    e.what = format!("ALTER TABLE … {}", whats.join(", "));
    // The altered table first, then the tables its foreign keys reference.
    if let Some(table) = &table
        && let Some(at) = e.locks.iter().position(|l| &l.relation == table)
    {
        let own = e.locks.remove(at);
        e.locks.insert(0, own);
    }
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effects(sql: &str) -> Vec<Effect> {
        squawk_syntax::SourceFile::parse(sql)
            .tree()
            .stmts()
            .filter_map(|s| effect(&s))
            .collect()
    }

    #[test]
    fn names_are_read_as_the_server_reads_them() {
        let r = relation("public.\"Summary\"", false).unwrap();
        assert_eq!(
            (r.schema.as_deref(), r.name.as_str()),
            (Some("public"), "Summary")
        );
        assert_eq!(relation("Summary", false).unwrap().name, "summary");
        assert_eq!(relation("\"a\"\"b\"", false).unwrap().name, "a\"b");
        assert_eq!(r.to_string(), "public.\"Summary\"");
    }

    #[test]
    fn prisma_statements_and_their_locks() {
        let e = effects("CREATE INDEX \"Summary_userId_idx\" ON \"Summary\"(\"userId\");");
        assert_eq!(e[0].locks[0].mode, LockMode::Share);
        assert_eq!(e[0].locks[0].relation.name, "Summary");
        assert!(e[0].scan && !e[0].rewrite);

        let e = effects(
            "ALTER TABLE \"Summary\" ADD CONSTRAINT \"Summary_userId_fkey\" FOREIGN KEY (\"userId\") REFERENCES \"User\"(\"id\") ON DELETE RESTRICT ON UPDATE CASCADE;",
        );
        let locked: Vec<(&str, LockMode)> = e[0]
            .locks
            .iter()
            .map(|l| (l.relation.name.as_str(), l.mode))
            .collect();
        assert_eq!(
            locked,
            [
                ("Summary", LockMode::ShareRowExclusive),
                ("User", LockMode::ShareRowExclusive)
            ]
        );
        assert!(e[0].scan);

        let e = effects("ALTER TABLE \"User\" ALTER COLUMN \"plan\" SET DATA TYPE TEXT;");
        assert!(e[0].rewrite);
        assert_eq!(e[0].strongest(), Some(LockMode::AccessExclusive));

        let e = effects(
            "ALTER TABLE \"User\" ADD COLUMN \"token\" TEXT NOT NULL DEFAULT gen_random_uuid();",
        );
        assert!(e[0].rewrite);
        let e = effects("ALTER TABLE \"User\" ADD COLUMN \"n\" INTEGER NOT NULL DEFAULT 0;");
        assert!(!e[0].rewrite && !e[0].scan);

        // A new table locks only what it references.
        let e = effects(
            "CREATE TABLE \"Progress\" (\"id\" TEXT NOT NULL, \"userId\" TEXT NOT NULL REFERENCES \"User\"(\"id\"), CONSTRAINT \"Progress_pkey\" PRIMARY KEY (\"id\"));",
        );
        assert_eq!(e[0].locks.len(), 1);
        assert_eq!(e[0].locks[0].relation.name, "User");
        assert!(effects("CREATE TABLE t (id int);").is_empty());
    }
}
