-- SQLite: one process owns the file, so there is nobody to tell; the
-- gateway polls instead (src/control/credentials.rs). Kept as a step so
-- both backends share one version history.
SELECT 1;
