-- One row that the store probe (Store.ping) rewrites: readiness tests a
-- write, since saves and a login's claim need one.
CREATE TABLE heartbeat (
    id       INTEGER PRIMARY KEY,
    beat_at  INTEGER NOT NULL
);
INSERT INTO heartbeat (id, beat_at) VALUES (1, 0);
