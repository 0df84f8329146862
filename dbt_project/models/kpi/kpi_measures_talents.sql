-- KPIs of the talent feed, as of every month end d, per area and for the
-- corridor. A record counts on d when its intake_date ≤ d and it is not
-- withdrawn by d (withdrawn_date, the last day of the withdraw file's
-- month, is after d).
--   K06  distinct persons (category A–E) with such a record with
--        intake_date in [window start, d]; each person counts once, in the
--        area of their earliest such intake (ties: lowest record_id).
--   K12  distinct teams whose first member counting on d (earliest
--        intake_date, ties: lowest record_id) arrived from 1 January of d's
--        year to d; a team counts in its first member's area.
--
-- How it is counted (issue 11: no month × record fan-out, no distinct count
-- over grouping sets): the records of a person (K06) or team (K12) change
-- which of them count only on their intake and withdrawal dates. Between
-- two such consecutive dates of one person or team, the same records count,
-- so the same earliest one decides its area: one segment per such interval
-- (none where no record counts). A segment counts on d when it started by d
-- and ends after d (for K12 also before the first member's next 1 January):
-- +1 at the segment's start, -1 at its end, summed up to each month end.
-- A person or team with a single record has the one segment of that record
-- (issue 11: the intervals' sorts and join are for the few with several;
-- at province 1 k of 47 k persons' records and the teams' 3.5 k).

with

periods as (
    select * from {{ ref('dim_period') }}
),

talent_intake as (
    select * from {{ ref('fct_talent_intake') }}
),

month_ends as (
    select period_end as month_end_date
    from periods
    where grain = 'month'
),

entity_records as (
    select
        'K06' as kpi_code,
        person_key as entity_key,
        record_id,
        area_code,
        intake_date,
        withdrawn_date
    from talent_intake
    where
        person_key is not null
        and talent_category in ('A', 'B', 'C', 'D', 'E')
        and intake_date >= date '{{ var("kpi_window_start") }}'
    union all
    select
        'K12' as kpi_code,
        team_id as entity_key,
        record_id,
        area_code,
        intake_date,
        withdrawn_date
    from talent_intake
    where team_id is not null and intake_date is not null
),

-- how many records each person / team has
record_counts as (
    select
        kpi_code,
        entity_key,
        count(*) as record_count
    from entity_records
    group by kpi_code, entity_key
),

records_counted as (
    select
        entity_records.*,
        record_counts.record_count
    from entity_records
    inner join record_counts
        on
            entity_records.kpi_code = record_counts.kpi_code
            and entity_records.entity_key = record_counts.entity_key
),

-- a person or team with one record (at province 45,946 of 46,486 persons; no team) has
-- one segment: from its intake until its withdrawal (for K12 also before
-- the next 1 January); withdrawn by its intake day, it never counts (its
-- segment ends before it starts, and `changes` leaves it out)
single_record_segments as (
    select
        kpi_code,
        intake_date as segment_from,
        case
            when kpi_code = 'K12'
                then least(withdrawn_date, (date_trunc('year', intake_date) + interval '1 year')::date)
            else withdrawn_date
        end as segment_to,
        area_code
    from records_counted
    where record_count = 1
),

-- the others go through the intervals below
multi_records as materialized (
    select
        kpi_code,
        entity_key,
        record_id,
        area_code,
        intake_date,
        withdrawn_date
    from records_counted
    where record_count > 1
),

-- the days on which the records that count for an entity can change
entity_events as (
    select
        kpi_code,
        entity_key,
        intake_date as event_date
    from multi_records
    union
    select
        kpi_code,
        entity_key,
        withdrawn_date as event_date
    from multi_records
    where withdrawn_date is not null
),

intervals as (
    select
        kpi_code,
        entity_key,
        event_date as interval_from,
        lead(event_date) over (partition by kpi_code, entity_key order by event_date) as interval_to
    from entity_events
),

-- per interval, the earliest record counting in it (intake_date, then record_id)
segments as (
    select distinct on (intervals.kpi_code, intervals.entity_key, intervals.interval_from)
        intervals.kpi_code,
        intervals.interval_from as segment_from,
        case
            when intervals.kpi_code = 'K12'
                then least(
                    intervals.interval_to,
                    (date_trunc('year', multi_records.intake_date) + interval '1 year')::date
                )
            else intervals.interval_to
        end as segment_to,
        multi_records.area_code
    from intervals
    inner join multi_records
        on
            intervals.kpi_code = multi_records.kpi_code
            and intervals.entity_key = multi_records.entity_key
            and intervals.interval_from >= multi_records.intake_date
            and (multi_records.withdrawn_date is null or intervals.interval_from < multi_records.withdrawn_date)
    order by
        intervals.kpi_code, intervals.entity_key, intervals.interval_from,
        multi_records.intake_date, multi_records.record_id
),

all_segments as (
    select
        kpi_code,
        segment_from,
        segment_to,
        area_code
    from segments
    union all
    select
        kpi_code,
        segment_from,
        segment_to,
        area_code
    from single_record_segments
),

scoped_segments as (
    select
        kpi_code,
        area_code as scope_code,
        segment_from,
        segment_to
    from all_segments
    union all
    select
        kpi_code,
        'ALL' as scope_code,
        segment_from,
        segment_to
    from all_segments
),

-- +1 from the month end on or after a start, -1 from the month end on or
-- after an end (an end is the first day the segment no longer counts)
changes as (
    select
        kpi_code,
        scope_code,
        segment_from as change_date,
        1 as change_count
    from scoped_segments
    where segment_to is null or segment_to > segment_from
    union all
    select
        kpi_code,
        scope_code,
        segment_to as change_date,
        -1 as change_count
    from scoped_segments
    where segment_to > segment_from
),

{{ running_totals_at_month_ends() }},

final as (
    select
        kpi_code,
        area_code,
        month_end_date,
        actual_value
    from measures
)

select * from final
