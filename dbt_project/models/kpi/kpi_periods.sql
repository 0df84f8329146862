-- The reporting periods as the scorecards read them (kpi.kpi_periods):
-- the public period spine marts.dim_period, unchanged. Internal (not
-- granted to BI): BI reads marts.dim_period.

with

periods as (
    select * from {{ ref('dim_period') }}
),

final as (
    select
        grain,
        period_start,
        period_end,
        period_label,
        period_year,
        as_of_date
    from periods
)

select * from final
