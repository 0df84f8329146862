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

counting_records as (
    select
        month_ends.month_end_date,
        talent_intake.record_id,
        talent_intake.person_key,
        talent_intake.talent_category,
        talent_intake.area_code,
        talent_intake.intake_date,
        talent_intake.team_id
    from month_ends
    inner join talent_intake
        on
            month_ends.month_end_date >= talent_intake.intake_date
            and (talent_intake.withdrawn_date is null or month_ends.month_end_date < talent_intake.withdrawn_date)
),

persons as (
    select distinct on (month_end_date, person_key)
        month_end_date,
        person_key,
        area_code
    from counting_records
    where
        talent_category in ('A', 'B', 'C', 'D', 'E')
        and intake_date >= date '{{ var("kpi_window_start") }}'
    order by month_end_date, person_key, intake_date, record_id
),

teams as (
    select distinct on (month_end_date, team_id)
        month_end_date,
        team_id,
        area_code,
        intake_date as first_member_intake_date
    from counting_records
    where team_id is not null
    order by month_end_date, team_id, intake_date, record_id
),

measures as (
    select
        'K06'::text as kpi_code,
        {{ area_or_all('area_code') }} as area_code,
        month_end_date,
        count(distinct person_key)::numeric as actual_value
    from persons
    group by {{ group_by_area_and_corridor('month_end_date', 'area_code') }}
    union all
    select
        'K12'::text as kpi_code,
        {{ area_or_all('area_code') }} as area_code,
        month_end_date,
        count(distinct team_id)::numeric as actual_value
    from teams
    where first_member_intake_date >= date_trunc('year', month_end_date)::date
    group by {{ group_by_area_and_corridor('month_end_date', 'area_code') }}
),

final as (
    select
        kpi_code,
        area_code,
        month_end_date,
        actual_value
    from measures
)

select * from final
