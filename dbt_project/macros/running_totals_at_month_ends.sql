{#- The running total at every month end of +1 / -1 changes (validity starts and ends), as three CTEs:
    daily_changes, monthly_changes (the changes per kpi, scope and month) and measures (kpi_code, area_code,
    month_end_date, actual_value; month ends with a total of 0 are left out). Needs a CTE `changes`
    (kpi_code, scope_code, change_date, change_count) and a CTE `month_ends` (month_end_date).
    The form that scales: one row per change and month end it precedes, summed, instead of one row
    per fact and month end it is valid at, distinct-counted. The changes are summed per day first
    (a few thousand days against ~0.4 M changes at province), so the month end is computed per day
    (issue 11: date_trunc on every change cost ~0.2 s). -#}
{% macro running_totals_at_month_ends() %}
daily_changes as (
    select
        kpi_code,
        scope_code,
        change_date,
        sum(change_count) as change_count
    from changes
    group by kpi_code, scope_code, change_date
),

monthly_changes as (
    select
        kpi_code,
        scope_code,
        {{ month_end('change_date') }} as change_month_end_date,
        sum(change_count) as change_count
    from daily_changes
    group by kpi_code, scope_code, {{ month_end('change_date') }}
),

measures as (
    select
        monthly_changes.kpi_code::text as kpi_code,
        monthly_changes.scope_code::text as area_code,
        month_ends.month_end_date,
        sum(monthly_changes.change_count)::numeric as actual_value
    from month_ends
    inner join monthly_changes
        on month_ends.month_end_date >= monthly_changes.change_month_end_date
    group by monthly_changes.kpi_code, monthly_changes.scope_code, month_ends.month_end_date
    having sum(monthly_changes.change_count) > 0
)
{% endmacro %}
