diesel::table! {
    models.model_versions (id) {
        id -> Text,
        name -> Text,
        version -> Integer,
        artifact -> Binary,
        sha256 -> Text,
        metrics -> Text,
        status -> Text,
        source -> Text,
        source_job_id -> Nullable<Text>,
        created_at -> Timestamp,
        promoted_at -> Nullable<Timestamp>,
    }
}
