-- The profile 360 reads `events_by_anchor` (004); nothing reads `events_by_profile` any more, and
-- its materialized view cost a second copy of every resolved event at insert time.
DROP VIEW IF EXISTS {db}.events_by_profile_mv;
DROP TABLE IF EXISTS {db}.events_by_profile;
