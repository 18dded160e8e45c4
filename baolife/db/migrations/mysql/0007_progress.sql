-- Progress saves (issue 15; baolife.db.store.Progress): what time alone moves
-- in a life (age, money, lowest money), saved apart from the state document
-- while nothing else changed. A save of the whole state deletes the row in
-- its transaction; a claim reads it with the state and lays it over.
-- Safe to run again.
CREATE TABLE IF NOT EXISTS player_progress (
    player_id   BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    age_days    BIGINT  NOT NULL,
    money       BIGINT  NOT NULL,
    low_money   BIGINT  NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
