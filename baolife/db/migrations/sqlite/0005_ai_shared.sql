-- The same tables as migrations/mysql/0005_ai_shared.sql. A single SQLite
-- worker keeps its budget in memory (baolife/ai/budget.py); it uses
-- ai_budget only for a day's budget set live by an operator.
CREATE TABLE ai_budget (
    day       TEXT    NOT NULL PRIMARY KEY,
    spent     REAL    NOT NULL DEFAULT 0,
    reserved  REAL    NOT NULL DEFAULT 0,
    calls     INTEGER NOT NULL DEFAULT 0,
    budget    REAL
);

CREATE TABLE ai_reply_cache (
    cache_key   BLOB  NOT NULL PRIMARY KEY,
    reply       TEXT  NOT NULL,
    expires_at  REAL  NOT NULL
);
CREATE INDEX ai_reply_cache_expires ON ai_reply_cache (expires_at);
