-- K03 技术交易额年增速, as of every month end d, per seller area and for
-- the corridor: the sum of 技术交易额 of valid contracts (latest state, not
-- 撤销) registered from 1 January of d's year to d, over the same sum for
-- the same span one year earlier (1 January of the previous year to
-- d - 1 year), minus 1. Null (no row) when the earlier sum is zero or there
-- is none: a growth rate needs a base.

with

periods as (
    select * from {{ ref('dim_period') }}
),

tech_contracts as (
    select * from {{ ref('fct_tech_contracts') }}
),

month_ends as (
    select period_end as month_end_date
    from periods
    where grain = 'month'
),

spans as (
    select
        month_end_date,
        date_trunc('year', month_end_date)::date as year_start_date,
        (date_trunc('year', month_end_date) - interval '1 year')::date as prior_year_start_date,
        (month_end_date - interval '1 year')::date as prior_span_end_date
    from month_ends
),

daily_values as (
    select
        seller_area_code as area_code,
        registration_date,
        sum(tech_value_10k_yuan) as tech_value_10k_yuan
    from tech_contracts
    where not is_cancelled
    group by seller_area_code, registration_date
),

span_sums as (
    select
        spans.month_end_date,
        {{ area_or_all('daily_values.area_code') }} as area_code,
        coalesce(
            sum(daily_values.tech_value_10k_yuan) filter (
                where daily_values.registration_date >= spans.year_start_date
            ),
            0
        ) as year_to_date_value,
        sum(daily_values.tech_value_10k_yuan) filter (
            where daily_values.registration_date <= spans.prior_span_end_date
        ) as prior_year_to_date_value
    from spans
    inner join daily_values
        on
            spans.prior_year_start_date <= daily_values.registration_date
            and spans.month_end_date >= daily_values.registration_date
    group by {{ group_by_area_and_corridor('spans.month_end_date', 'daily_values.area_code') }}
),

measures as (
    select
        'K03'::text as kpi_code,
        area_code,
        month_end_date,
        trim_scale(year_to_date_value / prior_year_to_date_value - 1)::numeric as actual_value
    from span_sums
    where prior_year_to_date_value > 0
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
