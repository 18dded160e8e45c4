-- One LLM budget and one reply cache for every worker on this database
-- (baolife/ai/budget.py, baolife/ai/cache.py). Safe to run again.

-- The day's totals, the one row every worker reserves against: a call is
-- admitted by one conditional UPDATE (spent + reserved + its worst case
-- within the budget), so the cluster cannot pass the budget however many
-- workers spend at once. budget: the day's budget set live by an operator
-- (NULL: each worker's BAOLIFE_AI_DAILY_BUDGET).
CREATE TABLE IF NOT EXISTS ai_budget (
    day       DATE    NOT NULL PRIMARY KEY,
    spent     DOUBLE  NOT NULL DEFAULT 0,
    reserved  DOUBLE  NOT NULL DEFAULT 0,
    calls     BIGINT  NOT NULL DEFAULT 0,
    budget    DOUBLE  NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Generic replies to greetings and small talk, shared by the workers.
-- cache_key: a 16-byte hash of the model and the prompt's cache key;
-- expires_at: Unix seconds. Expired rows are deleted in small batches.
CREATE TABLE IF NOT EXISTS ai_reply_cache (
    cache_key   VARBINARY(32)  NOT NULL PRIMARY KEY,
    reply       TEXT           NOT NULL,
    expires_at  DOUBLE         NOT NULL,
    KEY ai_reply_cache_expires (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
