diesel::table! {
    retrain.jobs (id) {
        id -> Text,
        model -> Text,
        epochs -> Integer,
        from_scratch -> Bool,
        mnist_sample -> Nullable<Integer>,
        state -> Text,
        progress -> Text,
        metrics -> Nullable<Text>,
        reason -> Nullable<Text>,
        model_version -> Nullable<Integer>,
        requested_by -> Text,
        attempts -> Integer,
        worker -> Nullable<Text>,
        created_at -> Timestamp,
        started_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
    }
}
