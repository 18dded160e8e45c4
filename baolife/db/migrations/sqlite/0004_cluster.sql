-- Workers sharing this database (issue 13; docs/SCALING.md), the same
-- tables as migrations/mysql/0004_cluster.sql. Times are milliseconds.

-- One row per running worker: its lease on every player it owns lasts until
-- expires_at. instance tells two processes that claim one worker id apart.
CREATE TABLE workers (
    id          TEXT    PRIMARY KEY,
    instance    TEXT    NOT NULL,
    store_kind  TEXT    NOT NULL,
    bus         TEXT    NOT NULL,
    address     TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

-- Which worker runs (or last ran) a player; written in the transactions
-- that change the player's epoch (claim, registration) or release it.
CREATE TABLE player_owners (
    player_id   INTEGER PRIMARY KEY,
    worker      TEXT    NOT NULL
);
CREATE INDEX player_owners_worker ON player_owners (worker);

-- The cluster bus (baolife.cluster.dbbus): polled by id, trimmed by age.
CREATE TABLE bus_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    origin      TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    player      INTEGER,
    body        TEXT    NOT NULL
);
CREATE INDEX bus_events_at ON bus_events (at);
