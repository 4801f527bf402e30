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
        traffic_share -> Double,
    }
}

diesel::table! {
    models.rollouts (id) {
        id -> Text,
        model -> Text,
        candidate_version -> Integer,
        active_version -> Integer,
        stage -> Text,
        share -> Double,
        paused -> Bool,
        verdict -> Nullable<Text>,
        state -> Text,
        job_id -> Nullable<Text>,
        started_at -> Timestamp,
        decided_at -> Nullable<Timestamp>,
        progress_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    models.rollout_transitions (id) {
        id -> BigInt,
        rollout_id -> Text,
        from_stage -> Text,
        to_stage -> Text,
        share -> Double,
        reason -> Text,
        actor -> Nullable<Text>,
        stats -> Text,
        at -> Timestamp,
    }
}

diesel::table! {
    models.rollout_outcomes (seq) {
        seq -> BigInt,
        rollout_id -> Text,
        feedback_id -> BigInt,
        user_id -> Text,
        requested -> Bool,
        active_correct -> Nullable<Bool>,
        candidate_correct -> Nullable<Bool>,
        applied -> Bool,
        excluded -> Bool,
        at -> Timestamp,
    }
}

diesel::table! {
    models.excluded_labellers (user_id) {
        user_id -> Text,
        at -> Timestamp,
    }
}

diesel::joinable!(rollout_transitions -> rollouts (rollout_id));
diesel::joinable!(rollout_outcomes -> rollouts (rollout_id));
diesel::allow_tables_to_appear_in_same_query!(
    model_versions,
    rollouts,
    rollout_transitions,
    rollout_outcomes,
    excluded_labellers
);
