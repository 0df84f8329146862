-- The current state of every talent record (record_id). The latest action
-- wins (latest file month, then the later load, then the later line):
--   new / update  the record counts, with the attributes of that row;
--   withdraw      the record no longer counts from the last day of the
--                 withdraw file's month on (withdrawn_date); its attributes
--                 stay those of the latest new/update row.
-- A later update after a withdraw reinstates the record (latest wins).

-- The rules are in macros/resolved_talent_records.sql (fct_talent_intake's
-- incremental branch applies them to the changed records only).

{{ resolved_talent_records(ref('stg_hr__talents')) }}
