-- The operators' console (issue 16), the same tables as
-- migrations/sqlite/0003_admin.sql; every statement safe to run again.
-- Lookups: bans/mutes/erased/logins by player (primary keys), the audit
-- log newest first (primary key) and by player (admin_audit_player),
-- accounts by name prefix (accounts_name).

CREATE TABLE IF NOT EXISTS bans (
    player_id  BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    reason     VARCHAR(500)    NOT NULL,
    until      BIGINT          NULL,
    by_name    VARCHAR(64)     NOT NULL,
    at         BIGINT          NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS mutes (
    player_id  BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    by_name    VARCHAR(64)     NOT NULL,
    at         BIGINT          NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS notices (
    id         INT             NOT NULL PRIMARY KEY,
    text       VARCHAR(1200)   NOT NULL,
    until      BIGINT          NOT NULL,
    by_name    VARCHAR(64)     NOT NULL,
    at         BIGINT          NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS erased (
    player_id  BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    at         BIGINT          NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS logins (
    player_id  BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    at         BIGINT          NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS admin_audit (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    at         BIGINT          NOT NULL,
    who        VARCHAR(64)     NOT NULL,
    role       VARCHAR(16)     NOT NULL,
    action     VARCHAR(32)     NOT NULL,
    player_id  BIGINT UNSIGNED NULL,
    detail     TEXT            NOT NULL,
    origin     VARCHAR(64)     NOT NULL,
    KEY admin_audit_player (player_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE INDEX IF NOT EXISTS accounts_name ON accounts (name);
