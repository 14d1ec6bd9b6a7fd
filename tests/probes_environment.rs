//! The environment and backup probes, each passing on a healthy server and failing on one the
//! test builds broken.

mod common;

use common::*;
use cutover::cluster::ClusterOptions;
use cutover::outcome::Status;

#[test]
fn connection_passes_and_reports_version_and_round_trip() {
    let url = fresh_database();
    let step = block_on(bundled_step(&url, "environment.connection"));
    assert_status(&step, Status::Pass);
    assert!(step.message.contains("PostgreSQL"), "{}", step.message);
    assert!(step.message.contains("round trip"), "{}", step.message);
}

#[test]
fn connection_fails_when_the_server_is_older_than_required() {
    let url = fresh_database();
    let runbook = probe_runbook("connection", "{ min_server_version = 990000 }");
    let step = block_on(step_of(runbook, &url, "s.p", Default::default()));
    assert_status(&step, Status::Fail);
    assert!(
        step.message.contains("older than the required 99.0"),
        "{}",
        step.message
    );
}

#[test]
fn tls_passes_on_an_encrypted_session() {
    let (_cluster, url) = own_cluster(ClusterOptions {
        tls: true,
        ..ClusterOptions::default()
    });
    assert!(url.ends_with("?sslmode=require"), "{url}");
    let step = block_on(bundled_step(&url, "environment.tls"));
    assert_status(&step, Status::Pass);
    assert!(step.message.contains("TLS"), "{}", step.message);
}

#[test]
fn tls_fails_on_an_unencrypted_session() {
    let url = fresh_database();
    let step = block_on(bundled_step(&url, "environment.tls"));
    assert_status(&step, Status::Fail);
    assert!(step.message.contains("not encrypted"), "{}", step.message);
}

#[test]
fn tls_fails_when_the_url_disables_it_on_a_server_that_offers_it() {
    let (cluster, _) = own_cluster(ClusterOptions {
        tls: true,
        ..ClusterOptions::default()
    });
    let url = format!("{}?sslmode=disable", cluster.url("sightline"));
    let step = block_on(bundled_step(&url, "environment.tls"));
    assert_status(&step, Status::Fail);
}

#[test]
fn pool_passes_when_max_connections_holds_the_pool_and_headroom() {
    let url = fresh_database();
    let step = block_on(bundled_step(&url, "environment.pool"));
    assert_status(&step, Status::Pass);
}

#[test]
fn pool_fails_when_max_connections_is_below_the_pool_plus_headroom() {
    let (_cluster, url) = own_cluster(ClusterOptions::default().setting("max_connections", "20"));
    let step = block_on(bundled_step(&url, "environment.pool"));
    assert_status(&step, Status::Fail);
    assert!(
        step.message.contains("raise max_connections"),
        "{}",
        step.message
    );
}

#[test]
fn replica_passes_with_a_streaming_replica() {
    let (primary, url) = own_cluster(ClusterOptions::default());
    let _replica = primary.start_replica().expect("replica starts");
    wait_until("the standby streams", 30, || {
        primary
            .psql(
                "postgres",
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
            )
            .unwrap()
            == "1"
    });
    let step = block_on(bundled_step(&url, "environment.replica"));
    assert_status(&step, Status::Pass);
    assert!(
        step.message.contains("1 replica(s) streaming"),
        "{}",
        step.message
    );
}

#[test]
fn replica_warns_without_a_replica_because_it_is_optional() {
    let url = fresh_database();
    let step = block_on(bundled_step(&url, "environment.replica"));
    assert_status(&step, Status::Warn);
    assert!(step.message.contains("no replica"), "{}", step.message);
}

#[test]
fn pitr_passes_when_wal_archiving_works() {
    let archive = tempfile::tempdir().unwrap();
    let archive_path = archive.path().to_path_buf();
    // The server (running as postgres when we are root) writes here.
    std::fs::set_permissions(
        &archive_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let (cluster, url) = own_cluster(
        ClusterOptions::default()
            .setting("archive_mode", "on")
            .setting(
                "archive_command",
                &format!("cp %p {}/%f", archive_path.display()),
            ),
    );
    cluster.psql("sightline", "SELECT pg_switch_wal()").unwrap();
    let step = block_on(bundled_step(&url, "backup.pitr"));
    assert_status(&step, Status::Pass);
}

#[test]
fn pitr_fails_when_archiving_is_off() {
    let url = fresh_database();
    let step = block_on(bundled_step(&url, "backup.pitr"));
    assert_status(&step, Status::Fail);
    assert!(
        step.message.contains("archive_mode = off"),
        "{}",
        step.message
    );
}

#[test]
fn pitr_fails_when_the_archive_command_keeps_failing() {
    let (cluster, url) = own_cluster(
        ClusterOptions::default()
            .setting("archive_mode", "on")
            .setting("archive_command", "false"),
    );
    cluster.psql("sightline", "SELECT pg_switch_wal()").unwrap();
    wait_until("the archiver has failed", 30, || {
        cluster
            .psql("postgres", "SELECT failed_count > 0 FROM pg_stat_archiver")
            .unwrap()
            == "t"
    });
    let step = block_on(bundled_step(&url, "backup.pitr"));
    assert_status(&step, Status::Fail);
    assert!(step.message.contains("failing"), "{}", step.message);
}

#[test]
fn url_sslmode_passes_only_for_the_sslmode_prisma_understands() {
    let (cluster, _) = own_cluster(ClusterOptions {
        tls: true,
        ..ClusterOptions::default()
    });
    let run = |query: &str| {
        let url = format!("{}?{query}", cluster.url("sightline"));
        let options = cutover::check::CheckOptions {
            only: vec!["environment.url_sslmode".to_string()],
            allow_shell: true,
            ..Default::default()
        };
        block_on(check_with(bundled(), &url, options))
            .steps
            .remove(0)
    };
    let required = run("sslmode=require");
    assert_status(&required, Status::Pass);
    assert!(
        required
            .details
            .iter()
            .any(|d| d.contains("add sslaccept=strict")),
        "{required:#?}"
    );
    let strict = run("sslmode=require&sslaccept=strict");
    assert_status(&strict, Status::Pass);
    assert!(
        strict
            .details
            .iter()
            .any(|d| d.contains("a valid certificate")),
        "{strict:#?}"
    );
    // Encrypted here, but Prisma would fall back to plain text wherever TLS is refused.
    let preferred = run("sslmode=prefer");
    assert_status(&preferred, Status::Fail);
    assert!(
        preferred.message.contains("does not set sslmode=require"),
        "{}",
        preferred.message
    );
}
