//! diesel's `schema.rs` files are written by hand: nothing but this check holds them to the
//! migrations. Each service's PostgreSQL migrations are applied to a fresh database, and every
//! table and column they create (name, SQL type, nullability) must be what the service's
//! `src/db/schema.rs` declares, and nothing more or less.

use common::testing::{TestDatabase, repo_root};
use diesel::RunQueryDsl;
use diesel::sql_types::Text;
use std::collections::BTreeMap;

/// `schema.table` → column → (PostgreSQL type, nullable).
type Tables = BTreeMap<String, BTreeMap<String, (String, bool)>>;

#[tokio::test]
async fn every_schema_rs_declares_what_the_postgres_migrations_create() {
    let services = [
        ("auth-svc", auth_svc::db::SCHEMA),
        ("predict-svc", predict_svc::db::SCHEMA),
        ("feedback-svc", feedback_svc::db::SCHEMA),
        ("retrain-worker", retrain_worker::db::SCHEMA),
    ];
    let mut drift = Vec::new();
    for (service, schema) in services {
        let database = TestDatabase::create();
        let name = schema.name;
        common::db::Db::migrate_service(
            &database.url,
            name,
            common::config::Mode::Development,
            schema.postgres,
            schema.sqlite,
        )
        .await
        .unwrap_or_else(|e| panic!("migrating {service}: {e}"));
        let url = database.url.clone();
        let migrated = tokio::task::spawn_blocking(move || migrated_tables(&url, name))
            .await
            .unwrap();
        let path = repo_root().join(service).join("src/db/schema.rs");
        let declared = declared_tables(&std::fs::read_to_string(&path).unwrap());
        assert!(!declared.is_empty(), "no table! in {}", path.display());
        drift.extend(
            differences(&migrated, &declared)
                .into_iter()
                .map(|line| format!("{service}/src/db/schema.rs: {line}")),
        );
    }
    assert!(
        drift.is_empty(),
        "schema.rs and the migrations disagree:\n{}",
        drift.join("\n")
    );
}

#[derive(diesel::QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Text)]
    is_nullable: String,
}

/// What the migrated database holds in `schema`, diesel's own bookkeeping left out.
fn migrated_tables(url: &str, schema: &str) -> Tables {
    let mut conn = common::db::establish_postgres(url).unwrap();
    let columns: Vec<Column> = diesel::sql_query(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text \
         FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name <> '__diesel_schema_migrations'",
    )
    .bind::<Text, _>(schema)
    .load(&mut conn)
    .unwrap();
    let mut tables = Tables::new();
    for c in columns {
        tables
            .entry(format!("{schema}.{}", c.table_name))
            .or_default()
            .insert(c.column_name, (c.data_type, c.is_nullable == "YES"));
    }
    tables
}

/// The tables of a `schema.rs`: each `diesel::table! { schema.name (key) { column -> Type, } }`.
fn declared_tables(source: &str) -> Tables {
    let mut tables = Tables::new();
    let mut current: Option<String> = None;
    for line in source.lines().map(str::trim) {
        if let Some((name, _key)) = line.split_once(" (").filter(|_| line.ends_with('{')) {
            current = Some(name.trim().to_owned());
            tables.entry(name.trim().to_owned()).or_default();
        } else if line == "}" {
            current = None;
        } else if let (Some(table), Some((column, sql_type))) = (&current, line.split_once("->")) {
            let sql_type = sql_type.trim().trim_end_matches(',');
            let (sql_type, nullable) = match sql_type
                .strip_prefix("Nullable<")
                .and_then(|inner| inner.strip_suffix('>'))
            {
                Some(inner) => (inner, true),
                None => (sql_type, false),
            };
            if let Some(columns) = tables.get_mut(table) {
                columns.insert(
                    column.trim().to_owned(),
                    (postgres_type(sql_type), nullable),
                );
            }
        }
    }
    tables
}

/// The `information_schema` name of a diesel SQL type.
fn postgres_type(diesel: &str) -> String {
    match diesel {
        "Text" | "VarChar" => "text",
        "SmallInt" => "smallint",
        "Integer" => "integer",
        "BigInt" => "bigint",
        "Float" => "real",
        "Double" => "double precision",
        "Bool" => "boolean",
        "Binary" => "bytea",
        "Timestamp" => "timestamp without time zone",
        "Timestamptz" => "timestamp with time zone",
        "Date" => "date",
        "Uuid" => "uuid",
        "Jsonb" => "jsonb",
        "Json" => "json",
        other => other,
    }
    .to_owned()
}

/// One line per table or column the two sides disagree on.
fn differences(migrated: &Tables, declared: &Tables) -> Vec<String> {
    let mut lines = Vec::new();
    let describe = |(sql_type, nullable): &(String, bool)| {
        format!(
            "{sql_type}{}",
            if *nullable { " NULL" } else { " NOT NULL" }
        )
    };
    for (table, columns) in migrated {
        let Some(declared_columns) = declared.get(table) else {
            lines.push(format!(
                "table {table} is created by the migrations but not declared"
            ));
            continue;
        };
        for (column, found) in columns {
            match declared_columns.get(column) {
                None => lines.push(format!(
                    "{table}.{column} ({}) is created by the migrations but not declared",
                    describe(found)
                )),
                Some(said) if said != found => lines.push(format!(
                    "{table}.{column} is declared {} but the migrations make it {}",
                    describe(said),
                    describe(found)
                )),
                Some(_) => {}
            }
        }
        for column in declared_columns
            .keys()
            .filter(|c| !columns.contains_key(*c))
        {
            lines.push(format!(
                "{table}.{column} is declared but no migration creates it"
            ));
        }
    }
    for table in declared.keys().filter(|t| !migrated.contains_key(*t)) {
        lines.push(format!(
            "table {table} is declared but no migration creates it"
        ));
    }
    lines
}

#[test]
fn a_column_missing_from_either_side_or_of_another_type_is_reported() {
    let declared = declared_tables(
        "diesel::table! {\n    s.t (id) {\n        id -> BigInt,\n        note -> Nullable<Text>,\n        \
         gone -> Integer,\n    }\n}\n",
    );
    let column = |t: &str, n: bool| (t.to_owned(), n);
    let migrated: Tables = [(
        "s.t".to_owned(),
        [
            ("id".to_owned(), column("bigint", false)),
            ("note".to_owned(), column("text", false)),
            ("added".to_owned(), column("integer", true)),
        ]
        .into(),
    )]
    .into();
    assert_eq!(
        differences(&migrated, &declared),
        [
            "s.t.added (integer NULL) is created by the migrations but not declared",
            "s.t.note is declared text NULL but the migrations make it text NOT NULL",
            "s.t.gone is declared but no migration creates it",
        ]
    );
}
