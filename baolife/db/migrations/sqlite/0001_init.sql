-- Accounts: the token is stored only as its SHA-256.
CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash  BLOB    NOT NULL,
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX accounts_token_hash ON accounts (token_hash);

-- Player state: versioned JSON, owner epoch for fencing across processes.
CREATE TABLE players (
    id              INTEGER PRIMARY KEY REFERENCES accounts (id),
    state           BLOB,
    schema_version  INTEGER NOT NULL DEFAULT 0,
    epoch           INTEGER NOT NULL DEFAULT 0,
    updated_at      INTEGER NOT NULL
);

-- AI usage per UTC day and player, so budgets survive a restart.
CREATE TABLE ai_usage (
    day        TEXT    NOT NULL,
    player_id  INTEGER NOT NULL,
    calls      INTEGER NOT NULL DEFAULT 0,
    cost       REAL    NOT NULL DEFAULT 0,
    PRIMARY KEY (day, player_id)
);
