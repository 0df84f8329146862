-- kpi_values has exactly one row per KPI × area (six + ALL) × period of
-- kpi_periods: no KPI, area or period is missing. Returns the gaps.

with

kpi_values as (
    select * from {{ ref('kpi_values') }}
),

kpi_catalogue as (
    select * from {{ ref('kpi_catalogue') }}
),

areas as (
    select * from {{ ref('dim_area') }}
),

periods as (
    select * from {{ ref('dim_period') }}
),

scopes as (
    select area_code from areas
    union all
    select 'ALL' as area_code
),

expected as (
    select
        kpi_catalogue.kpi_code,
        scopes.area_code,
        periods.grain,
        periods.period_start
    from kpi_catalogue
    cross join scopes
    cross join periods
),

final as (
    select
        coalesce(expected.kpi_code, kpi_values.kpi_code) as kpi_code,
        coalesce(expected.area_code, kpi_values.area_code) as area_code,
        coalesce(expected.grain, kpi_values.grain) as grain,
        coalesce(expected.period_start, kpi_values.period_start) as period_start,
        case when kpi_values.kpi_code is null then 'missing' else 'unexpected' end as problem
    from expected
    full outer join kpi_values
        on
            expected.kpi_code = kpi_values.kpi_code
            and expected.area_code = kpi_values.area_code
            and expected.grain = kpi_values.grain
            and expected.period_start = kpi_values.period_start
    where expected.kpi_code is null or kpi_values.kpi_code is null
)

select * from final
