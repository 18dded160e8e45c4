-- Progress saves (issue 15; baolife.db.store.Progress): what time alone moves
-- in a life (age, money, lowest money), saved apart from the state document
-- while nothing else changed. A save of the whole state deletes the row in
-- its transaction; a claim reads it with the state and lays it over.
CREATE TABLE player_progress (
    player_id   INTEGER PRIMARY KEY,
    age_days    INTEGER NOT NULL,
    money       INTEGER NOT NULL,
    low_money   INTEGER NOT NULL
);
