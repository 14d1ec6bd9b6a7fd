-- A step's output is stored as it is, in its own column, rather than as a JSON array of lines
-- inside `data`: the journal is then no bigger than the output it keeps. Older events keep
-- their lines in `data` and are read as before.
ALTER TABLE events ADD COLUMN output TEXT;
