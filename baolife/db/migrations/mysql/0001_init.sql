-- MySQL/MariaDB schema, the same tables as migrations/sqlite/0001_init.sql.
-- DDL commits implicitly here, so every statement is safe to run again
-- (IF NOT EXISTS): a migration cut short is finished by the next run.
-- Lookups the server makes, and the index that serves each:
--   accounts by token hash (login)       accounts_token_hash (unique)
--   accounts/players by id (claim, save) primary keys
--   ai_usage by day (budgets at start)   primary key (day, player_id)
--   schema_migrations by version         primary key

-- Accounts: the token is stored only as its SHA-256.
CREATE TABLE IF NOT EXISTS accounts (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    token_hash  BINARY(32)      NOT NULL,
    name        VARCHAR(64)     NOT NULL,
    created_at  BIGINT          NOT NULL,
    UNIQUE KEY accounts_token_hash (token_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Player state: versioned JSON, owner epoch for fencing across processes.
-- state_codec 0: the JSON as is; 1: compressed in the format of the server's
-- COMPRESS() (SELECT UNCOMPRESS(state) shows the JSON). Compressed states are
-- about a fifth of the size, so most rows fit in their page (no overflow
-- pages) and a flush writes a fifth of the bytes.
CREATE TABLE IF NOT EXISTS players (
    id              BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    state           MEDIUMBLOB      NULL,
    state_codec     TINYINT         NOT NULL DEFAULT 0,
    schema_version  INT             NOT NULL DEFAULT 0,
    epoch           BIGINT          NOT NULL DEFAULT 0,
    updated_at      BIGINT          NOT NULL,
    CONSTRAINT players_account FOREIGN KEY (id) REFERENCES accounts (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- AI usage per UTC day and player, so budgets survive a restart.
CREATE TABLE IF NOT EXISTS ai_usage (
    day        DATE            NOT NULL,
    player_id  BIGINT UNSIGNED NOT NULL,
    calls      INT             NOT NULL DEFAULT 0,
    cost       DOUBLE          NOT NULL DEFAULT 0,
    PRIMARY KEY (day, player_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
