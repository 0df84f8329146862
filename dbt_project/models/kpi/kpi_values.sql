-- The KPI fact: one row per KPI × area (the six and 'ALL') × grain × period
-- of kpi_periods, with a stable, enforced contract (_kpi__models.yml).
--
-- actual_value  the KPI's measure as of the period's end (month-end values
--               of the kpi_measures_* models; quarter and year rows take
--               the value at their last month end). A missing count or sum
--               is 0; a missing rate (K03 without a base) stays null.
-- target_value  the area's target: the corridor target (seed kpi_targets)
--               split by the kpi_area_allocation weights (default equal,
--               1/6), or the corridor target itself for 'ALL' and for
--               uniform KPIs (K03, a rate). Null for target_kind none and
--               for an area of allocation weight 0 (status no_target).
-- paced_target_value
--               target × the pacing fraction at period_end:
--               window_linear  months elapsed since kpi_window_start (the
--                              period's month included) / months of the
--                              window, capped to [0, 1]: 1/36 .. 36/36, so
--                              year ends pace 1/3, 2/3, 1; after the window
--                              the full target;
--               year_linear    month of the year / 12 (a year row: 12/12);
--               none           the target as is (a rate is not paced).
-- completion_ratio
--               actual / paced target (paced / actual for lower_is_better).
-- Values are rounded to var kpi_value_scale (10) decimals (trailing zeros
-- trimmed); the status compares the rounded ratio, so that a ratio that is
-- 0.95 in exact arithmetic is 0.95.
-- status        from seed kpi_status_thresholds: ahead (≥ 1.05), on_track
--               (≥ 0.95), behind (below); no_target without a target; null
--               when there is a target but no measurable value.

{%- set window_start = var('kpi_window_start') %}
{%- set window_end = var('kpi_window_end') %}

with

periods as (
    select * from {{ ref('dim_period') }}
),

kpi_targets as (
    select * from {{ ref('kpi_targets') }}
),

area_allocation as (
    select * from {{ ref('kpi_area_allocation') }}
),

status_thresholds as (
    select * from {{ ref('kpi_status_thresholds') }}
),

areas as (
    select * from {{ ref('dim_area') }}
),

platform_measures as (
    select * from {{ ref('kpi_measures_platforms') }}
),

certification_measures as (
    select * from {{ ref('kpi_measures_certifications') }}
),

project_measures as (
    select * from {{ ref('kpi_measures_projects') }}
),

talent_measures as (
    select * from {{ ref('kpi_measures_talents') }}
),

contract_measures as (
    select * from {{ ref('kpi_measures_contracts') }}
),

loan_measures as (
    select * from {{ ref('kpi_measures_loans') }}
),

measures as (
    select * from platform_measures
    union all
    select * from certification_measures
    union all
    select * from project_measures
    union all
    select * from talent_measures
    union all
    select * from contract_measures
    union all
    select * from loan_measures
),

scopes as (
    select
        area_code,
        false as is_corridor
    from areas
    union all
    select
        'ALL'::text as area_code,
        true as is_corridor
),

area_shares as (
    select
        kpi_targets.kpi_code,
        areas.area_code,
        coalesce(area_allocation.allocation_weight, 1) as allocation_weight,
        sum(coalesce(area_allocation.allocation_weight, 1)) over (partition by kpi_targets.kpi_code)
            as total_allocation_weight
    from kpi_targets
    cross join areas
    left join area_allocation
        on
            kpi_targets.kpi_code = area_allocation.kpi_code
            and areas.area_code = area_allocation.area_code
),

scope_targets as (
    select
        kpi_targets.kpi_code,
        scopes.area_code,
        kpi_targets.measure_type,
        kpi_targets.pacing,
        kpi_targets.direction,
        case
            when kpi_targets.target_kind = 'none' then null
            when scopes.is_corridor or kpi_targets.area_target_method = 'uniform'
                then kpi_targets.corridor_target
            -- an area of weight 0 (no allocation) has no target of its own: no_target, as when
            -- every weight is 0, never a target of 0 with no status ("no measurable value")
            when area_shares.allocation_weight > 0 and area_shares.total_allocation_weight > 0
                then kpi_targets.corridor_target * area_shares.allocation_weight / area_shares.total_allocation_weight
        end as target_value
    from kpi_targets
    cross join scopes
    left join area_shares
        on
            kpi_targets.kpi_code = area_shares.kpi_code
            and scopes.area_code = area_shares.area_code
),

window_span as (
    select
        (extract(year from date '{{ window_end }}') - extract(year from date '{{ window_start }}')) * 12
        + extract(month from date '{{ window_end }}') - extract(month from date '{{ window_start }}') + 1
            as window_months
),

period_fractions as (
    -- the share of a target due by period_end
    select
        periods.grain,
        periods.period_start,
        periods.period_end,
        least(
            greatest(
                -- months from the window's first month to the period's last, both included
                (extract(year from periods.period_end) - extract(year from date '{{ window_start }}')) * 12
                + extract(month from periods.period_end) - extract(month from date '{{ window_start }}') + 1,
                0
            ),
            window_span.window_months
        ) / window_span.window_months as window_fraction,
        extract(month from periods.period_end) / 12 as year_fraction
    from periods
    cross join window_span
),

thresholds as (
    select
        max(min_completion_ratio) filter (where status = 'ahead') as ahead_from,
        max(min_completion_ratio) filter (where status = 'on_track') as on_track_from
    from status_thresholds
),

paced as (
    select
        scope_targets.kpi_code,
        scope_targets.area_code,
        period_fractions.grain,
        period_fractions.period_start,
        period_fractions.period_end,
        case
            when scope_targets.measure_type = 'rate' then measures.actual_value
            else coalesce(measures.actual_value, 0)
        end as actual_value,
        scope_targets.target_value,
        scope_targets.target_value * case scope_targets.pacing
            when 'window_linear' then period_fractions.window_fraction
            when 'year_linear' then period_fractions.year_fraction
            else 1
        end as paced_target_value,
        scope_targets.direction
    from scope_targets
    cross join period_fractions
    left join measures
        on
            scope_targets.kpi_code = measures.kpi_code
            and scope_targets.area_code = measures.area_code
            and period_fractions.period_end = measures.month_end_date
),

completed as (
    select
        *,
        case
            when actual_value is null or paced_target_value is null then null
            when direction = 'higher_is_better' and paced_target_value > 0
                then actual_value / paced_target_value
            when direction = 'lower_is_better' and actual_value > 0
                then paced_target_value / actual_value
        end as completion_ratio
    from paced
),

rounded as (
    select
        kpi_code,
        area_code,
        grain,
        period_start,
        period_end,
        trim_scale(round(actual_value, {{ var('kpi_value_scale') }})) as actual_value,
        trim_scale(round(target_value, {{ var('kpi_value_scale') }})) as target_value,
        trim_scale(round(paced_target_value, {{ var('kpi_value_scale') }})) as paced_target_value,
        trim_scale(round(completion_ratio, {{ var('kpi_value_scale') }})) as completion_ratio
    from completed
),

final as (
    select
        rounded.kpi_code::text as kpi_code,
        rounded.area_code::text as area_code,
        rounded.grain::text as grain,
        rounded.period_start::date as period_start,
        rounded.period_end::date as period_end,
        rounded.actual_value::numeric as actual_value,
        rounded.target_value::numeric as target_value,
        rounded.paced_target_value::numeric as paced_target_value,
        rounded.completion_ratio::numeric as completion_ratio,
        (case
            when rounded.target_value is null then 'no_target'
            when rounded.completion_ratio is null then null
            when rounded.completion_ratio >= thresholds.ahead_from then 'ahead'
            when rounded.completion_ratio >= thresholds.on_track_from then 'on_track'
            else 'behind'
        end)::text as status
    from rounded
    cross join thresholds
)

select * from final
