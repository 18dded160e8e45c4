-- Workers sharing this database (issue 13; docs/SCALING.md), the same
-- tables as migrations/sqlite/0004_cluster.sql; every statement safe to run
-- again. Times are milliseconds of the database's clock, so workers on
-- different hosts never compare their own clocks.
-- Lookups: a worker by id (primary key: renewal, a claim's liveness check),
-- a player's owner (primary key), the players of a worker
-- (player_owners_worker), bus events after an id (primary key) and older
-- than a time (bus_events_at, trimming).

-- One row per running worker: its lease on every player it owns lasts until
-- expires_at, renewed every quarter lease. instance tells two processes
-- that claim one worker id apart.
CREATE TABLE IF NOT EXISTS workers (
    id          VARCHAR(128)    NOT NULL PRIMARY KEY,
    instance    CHAR(32)        NOT NULL,
    store_kind  VARCHAR(16)     NOT NULL,
    bus         VARCHAR(16)     NOT NULL,
    address     VARCHAR(255)    NOT NULL,
    started_at  BIGINT          NOT NULL,
    expires_at  BIGINT          NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Which worker runs (or last ran) a player. Written only by a transaction
-- holding the player's row lock in players (a claim, a registration, a
-- release), so it moves in step with the epoch.
CREATE TABLE IF NOT EXISTS player_owners (
    player_id   BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    worker      VARCHAR(128)    NOT NULL,
    KEY player_owners_worker (worker)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The cluster bus (baolife.cluster.dbbus): every worker polls for ids above
-- the last it read; rows older than a minute are trimmed.
CREATE TABLE IF NOT EXISTS bus_events (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    at          BIGINT          NOT NULL,
    origin      VARCHAR(128)    NOT NULL,
    kind        VARCHAR(64)     NOT NULL,
    player      BIGINT UNSIGNED NULL,
    body        TEXT            NOT NULL,
    KEY bus_events_at (at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
