CREATE SCHEMA IF NOT EXISTS auth;

CREATE TABLE auth.users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    -- lower-cased name: user names are unique case-insensitively
    username_key  TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at    TIMESTAMP NOT NULL
);

CREATE TABLE auth.refresh_tokens (
    id          TEXT PRIMARY KEY,
    -- every token issued from one login shares a family; reuse of a spent token revokes it
    family_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    expires_at  TIMESTAMP NOT NULL,
    used_at     TIMESTAMP,
    revoked_at  TIMESTAMP,
    created_at  TIMESTAMP NOT NULL
);

CREATE INDEX refresh_tokens_family_idx ON auth.refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON auth.refresh_tokens (user_id);
