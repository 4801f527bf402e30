diesel::table! {
    feedback.feedback (id) {
        id -> BigInt,
        user_id -> Text,
        username -> Text,
        prediction -> Integer,
        correct -> Bool,
        label -> Nullable<Integer>,
        comment -> Text,
        prediction_id -> Nullable<Text>,
        model -> Nullable<Text>,
        model_version -> Nullable<Integer>,
        input -> Nullable<Binary>,
        idempotency_key -> Nullable<Text>,
        request_hash -> Text,
        created_at -> Timestamp,
        trusted -> Bool,
        writer_xid -> BigInt,
    }
}

diesel::table! {
    feedback.label_exclusions (user_id) {
        user_id -> Text,
        excluded_by -> Text,
        excluded_at -> Timestamp,
    }
}

diesel::table! {
    feedback.outbox (id) {
        id -> BigInt,
        event_id -> Text,
        event_type -> Text,
        payload -> Text,
        created_at -> Timestamp,
        attempts -> Integer,
        claimed_until -> Nullable<Timestamp>,
        claim_token -> Nullable<Text>,
        published_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(feedback, label_exclusions, outbox);
