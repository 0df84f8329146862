{{
    config(
        materialized='incremental',
        unique_key='record_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['ledger_id']}],
    )
}}

-- depends_on: {{ ref('stg_hr__talents') }}
-- (the incremental branch finds the records named since the watermark)

-- One row per talent record in its current state. The person is the keyed
-- pseudonym person_key only: no ID number, no name. person_intake_seq and
-- team_member_seq order the records that count today (not withdrawn) by
-- intake date: 1 = the person's earliest intake, the team's first member.
-- The KPIs recompute these as of every period end (withdrawals move them).
--
-- Incremental (issue 11; a province month names ~1.3 k of ~65 k records).
-- The watermark is the highest ledger_id in the table (the latest action's
-- file: never above the last hr file, so it can only include more). A run
-- resolves again, from all their rows, the records named by an hr row loaded
-- after it (int_talent_records_resolved's rules,
-- macros/resolved_talent_records.sql, applied to those records' rows only);
-- a record's resolution reads its own rows only, so the other records keep
-- their rows. The sequences do not: person_intake_seq numbers
-- a person's records, team_member_seq a team's, so the run rewrites every
-- record of each person and team that a changed record has or had (its old
-- row's person and team too), numbering them again over all their records
-- (the changed ones as resolved now, the others as the table holds them).
-- Records are never removed (raw rows are never deleted; else
-- --full-refresh), as for the other incremental models.

with

{% if is_incremental() %}
changed_records as (
    select distinct changed_rows.record_id
    from {{ ref('stg_hr__talents') }} as changed_rows
    where changed_rows.ledger_id > (select coalesce(max(seen.ledger_id), 0) from {{ this }} as seen)
),
{% endif %}

talent_records as (
    {%- if is_incremental() %}
        {{ resolved_talent_records(
            "(select changed_rows.* from " ~ ref('stg_hr__talents') ~ " as changed_rows"
            ~ " where changed_rows.record_id in (select changed_records.record_id from changed_records))"
        ) | indent(8) }}
    {%- else %}
        select * from {{ ref('int_talent_records_resolved') }}
    {%- endif %}
),

{% if is_incremental() %}
old_records as (
    select old.*
    from {{ this }} as old
    where old.record_id in (select changed_records.record_id from changed_records)
),

touched_persons as (
    select talent_records.person_key from talent_records
    union
    select old_records.person_key from old_records
),

touched_teams as (
    select talent_records.team_id from talent_records where talent_records.team_id is not null
    union
    select old_records.team_id from old_records where old_records.team_id is not null
),

-- every record of a touched person or team: the changed ones as resolved
-- now, the others as the table holds them (with their old sequences)
records_in_scope as (
    select
        talent_records.*,
        null::bigint as old_person_intake_seq,
        null::bigint as old_team_member_seq
    from talent_records
    union all
    select
        unchanged.record_id,
        unchanged.person_key,
        unchanged.talent_category,
        unchanged.title,
        unchanged.employer_name,
        unchanged.employer_uscc,
        unchanged.area_code,
        unchanged.intake_date,
        unchanged.intake_type,
        unchanged.is_overseas,
        unchanged.team_id,
        unchanged.latest_action,
        unchanged.is_withdrawn,
        unchanged.withdrawn_date,
        unchanged.first_file_month,
        unchanged.last_file_month,
        unchanged.actions_received,
        unchanged.ledger_id,
        unchanged.source_row,
        unchanged.person_intake_seq as old_person_intake_seq,
        unchanged.team_member_seq as old_team_member_seq
    from {{ this }} as unchanged
    where
        (
            unchanged.person_key in (select touched_persons.person_key from touched_persons)
            or unchanged.team_id in (select touched_teams.team_id from touched_teams)
        )
        and unchanged.record_id not in (select changed_records.record_id from changed_records)
),
{% endif %}

final as (
    select
        record_id,
        person_key,
        talent_category,
        title,
        employer_name,
        employer_uscc,
        area_code,
        intake_date,
        intake_type,
        is_overseas,
        team_id,
        team_id is not null as is_team_member,
        latest_action,
        is_withdrawn,
        withdrawn_date,
        -- in an increment, a person (team) not touched keeps its numbers:
        -- its records are not all in scope
        case
        {%- if is_incremental() %}
            when person_key not in (select touched_persons.person_key from touched_persons)
                then old_person_intake_seq
        {%- endif %}
            when not is_withdrawn then
                row_number() over (
                    partition by person_key, is_withdrawn
                    order by intake_date, record_id
                )
        end as person_intake_seq,
        case
        {%- if is_incremental() %}
            when team_id not in (select touched_teams.team_id from touched_teams)
                then old_team_member_seq
        {%- endif %}
            when not is_withdrawn and team_id is not null then
                row_number() over (
                    partition by team_id, is_withdrawn
                    order by intake_date, record_id
                )
        end as team_member_seq,
        first_file_month,
        last_file_month,
        actions_received,
        ledger_id,
        source_row
    from {{ "records_in_scope" if is_incremental() else "talent_records" }}
)

select * from final
