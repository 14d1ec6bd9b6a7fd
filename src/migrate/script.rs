//! What a migration file is made of, read before it runs: its statements (parsed with
//! squawk's PostgreSQL parser), which of them cannot run inside a transaction block, and
//! whether the file manages transactions itself. Prisma sends a whole `migration.sql` as one
//! simple-protocol query, so a file of several statements runs as one implicit transaction.

use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::{SourceFile, SyntaxKind};

/// The shape of one migration script.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// How many statements it has.
    pub statements: usize,
    /// Statements that PostgreSQL refuses inside a transaction block (25001), as
    /// `line N: CREATE INDEX CONCURRENTLY`.
    pub outside_transactions: Vec<String>,
    /// It has `BEGIN`, `COMMIT`, `ROLLBACK`, `SAVEPOINT` or the like of its own.
    pub transaction_control: bool,
    /// squawk's parser read it without errors (when not, the counts above may be short, and
    /// nothing is concluded from them: the server has the last word).
    pub parsed: bool,
}

impl Shape {
    /// Whether running it as one simple-protocol query fails with 25001 before it starts.
    pub fn fails_in_one_transaction(&self) -> bool {
        self.parsed && self.statements > 1 && !self.outside_transactions.is_empty()
    }

    /// Whether it is one `CREATE INDEX`, `DROP INDEX` or `REINDEX` `CONCURRENTLY` and nothing
    /// else: a statement that waits for older transactions without blocking the app.
    pub fn only_concurrent_index(&self) -> bool {
        self.parsed
            && self.statements == 1
            && matches!(self.outside_transactions.as_slice(), [what] if what.contains("INDEX CONCURRENTLY"))
    }

    /// Whether a failed run of it left nothing behind, so that running it again is safe: a
    /// file of ordinary statements runs in one transaction (implicit when several), which the
    /// failure rolled back. A file that commits on its own, or a statement that runs outside
    /// any transaction (`CREATE INDEX CONCURRENTLY` can leave an INVALID index behind), is not.
    pub fn failure_leaves_nothing(&self) -> bool {
        self.parsed && !self.transaction_control && self.outside_transactions.is_empty()
    }
}

/// Reads `sql` into its [`Shape`].
pub fn shape(sql: &str) -> Shape {
    let parse = SourceFile::parse(sql);
    let parsed = parse.errors().is_empty();
    let mut shape = Shape {
        parsed,
        ..Shape::default()
    };
    for stmt in parse.tree().stmts() {
        shape.statements += 1;
        if let Some(what) = outside_transaction(&stmt) {
            let line = line_of(sql, stmt.syntax().text_range().start().into());
            shape
                .outside_transactions
                .push(format!("line {line}: {what}"));
        }
        if matches!(
            stmt,
            ast::Stmt::Begin(_)
                | ast::Stmt::Commit(_)
                | ast::Stmt::Rollback(_)
                | ast::Stmt::SavepointCreate(_)
                | ast::Stmt::ReleaseSavepoint(_)
                | ast::Stmt::PrepareTransaction(_)
        ) {
            shape.transaction_control = true;
        }
    }
    shape
}

/// What `stmt` is when PostgreSQL runs it only outside a transaction block.
fn outside_transaction(stmt: &ast::Stmt) -> Option<&'static str> {
    let concurrently = || {
        stmt.syntax()
            .descendants_with_tokens()
            .any(|element| element.kind() == SyntaxKind::CONCURRENTLY_KW)
    };
    match stmt {
        ast::Stmt::CreateIndex(_) if concurrently() => Some("CREATE INDEX CONCURRENTLY"),
        ast::Stmt::DropIndex(_) if concurrently() => Some("DROP INDEX CONCURRENTLY"),
        ast::Stmt::Reindex(_) if concurrently() => Some("REINDEX CONCURRENTLY"),
        ast::Stmt::AlterTable(_) if concurrently() => Some("DETACH PARTITION CONCURRENTLY"),
        ast::Stmt::Vacuum(_) => Some("VACUUM"),
        ast::Stmt::CreateDatabase(_) => Some("CREATE DATABASE"),
        ast::Stmt::DropDatabase(_) => Some("DROP DATABASE"),
        ast::Stmt::CreateTablespace(_) => Some("CREATE TABLESPACE"),
        ast::Stmt::DropTablespace(_) => Some("DROP TABLESPACE"),
        ast::Stmt::AlterSystem(_) => Some("ALTER SYSTEM"),
        _ => None,
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_concurrent_index_runs_but_not_beside_other_statements() {
        let lone = shape("CREATE INDEX CONCURRENTLY \"a_idx\" ON \"A\" (\"b\");\n");
        assert_eq!(lone.statements, 1);
        assert!(!lone.fails_in_one_transaction());
        assert!(!lone.failure_leaves_nothing());
        assert!(lone.only_concurrent_index());
        assert!(shape("DROP INDEX CONCURRENTLY \"a_idx\";").only_concurrent_index());
        assert!(!shape("VACUUM \"A\";").only_concurrent_index());
        assert!(!shape("CREATE INDEX \"a_idx\" ON \"A\" (\"b\");").only_concurrent_index());

        let mixed = shape(
            "-- two things\nALTER TABLE \"A\" ADD COLUMN \"c\" int;\n\nCREATE INDEX CONCURRENTLY \"a_c_idx\" ON \"A\" (\"c\");\n",
        );
        assert_eq!(mixed.statements, 2);
        assert!(mixed.fails_in_one_transaction());
        assert!(!mixed.only_concurrent_index());
        assert_eq!(
            mixed.outside_transactions,
            vec!["line 4: CREATE INDEX CONCURRENTLY".to_string()]
        );
    }

    #[test]
    fn ordinary_statements_roll_back_together() {
        let plain = shape(
            "CREATE TABLE \"T\" (id int PRIMARY KEY);\nCREATE INDEX \"T_idx\" ON \"T\" (id);\nREFRESH MATERIALIZED VIEW CONCURRENTLY mv;\n",
        );
        assert_eq!(plain.statements, 3);
        assert!(plain.failure_leaves_nothing());
        assert!(!plain.fails_in_one_transaction());
        let committing = shape("BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\n");
        assert!(committing.transaction_control);
        assert!(!committing.failure_leaves_nothing());
    }

    #[test]
    fn an_unparsable_file_concludes_nothing() {
        let odd = shape("CREATE INDEX CONCURRENTLY x ON t (a); THIS IS NOT SQL;");
        assert!(!odd.parsed);
        assert!(!odd.fails_in_one_transaction());
        assert!(!odd.failure_leaves_nothing());
    }
}
