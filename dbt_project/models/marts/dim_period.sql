-- The reporting periods (the KPI period spine), with the data's as-of
-- date: every month from the window start (var kpi_window_start, 2020-01)
-- to the as-of month, the latest complete month over all feeds
-- (int_feed_periods_delivered). Quarters and years are listed only when
-- complete (their last month is at or before the as-of month): the current
-- incomplete quarter or year shows at month grain only. The spine is not
-- capped at kpi_window_end: targets beyond the window are handled by pacing
-- (kpi_values). Every KPI is measured at the period_end of these rows.

with

feed_periods as (
    select * from {{ ref('int_feed_periods_delivered') }}
),

as_of as (
    select max(latest_complete_month_end_date) as as_of_date
    from feed_periods
),

months as (
    select
        generate_series(
            date_trunc('month', date '{{ var("kpi_window_start") }}'),
            date_trunc('month', as_of_date),
            interval '1 month'
        )::date as month_start
    from as_of
),

periods as (
    select distinct
        grains.grain,
        date_trunc(grains.grain, months.month_start)::date as period_start
    from months
    cross join (values ('month'), ('quarter'), ('year')) as grains (grain)
),

bounded as (
    select
        periods.grain,
        periods.period_start,
        (
            periods.period_start
            + case periods.grain
                when 'month' then interval '1 month'
                when 'quarter' then interval '3 months'
                else interval '1 year'
            end
            - interval '1 day'
        )::date as period_end,
        as_of.as_of_date
    from periods
    cross join as_of
),

final as (
    select
        grain || ':' || period_start::text as period_id,
        grain,
        period_start,
        period_end,
        case grain
            when 'month' then to_char(period_start, 'YYYY-MM')
            when 'quarter' then to_char(period_start, 'YYYY"Q"Q')
            else to_char(period_start, 'YYYY')
        end as period_label,
        extract(year from period_start)::integer as period_year,
        as_of_date
    from bounded
    where period_end <= as_of_date
)

select * from final
