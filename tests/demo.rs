//! The sample Sightline database: its migrations are recorded as Prisma records them.

mod common;

use std::collections::BTreeMap;

use common::*;
use cutover::demo;

#[test]
fn every_migration_folder_is_applied_and_recorded_with_its_checksum() {
    let url = fresh_database();
    let folder =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/prisma/migrations");
    let mut on_disk = BTreeMap::new();
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let sql = std::fs::read_to_string(path.join("migration.sql")).unwrap();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            on_disk.insert(name, cutover::migrate::history::checksum(&sql));
        }
    }
    let embedded: Vec<&str> = demo::MIGRATIONS.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        embedded,
        on_disk.keys().map(String::as_str).collect::<Vec<_>>()
    );

    let recorded: BTreeMap<String, String> = psql(
        &url,
        "SELECT migration_name || ' ' || checksum FROM _prisma_migrations \
         WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL AND applied_steps_count = 1",
    )
    .lines()
    .map(|line| {
        let (name, sum) = line.split_once(' ').unwrap();
        (name.to_string(), sum.to_string())
    })
    .collect();
    assert_eq!(recorded, on_disk);
}

#[test]
fn the_checksum_is_lowercase_hex_sha256() {
    assert_eq!(
        cutover::migrate::history::checksum(""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        cutover::migrate::history::checksum("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}
