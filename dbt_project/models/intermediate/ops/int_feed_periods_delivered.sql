-- The data's as-of date. Per feed: the latest period delivered and the
-- latest complete month it covers (a monthly file covers its month; a
-- daily techmarket export completes a month only once its last day is
-- exported), with the last successful load. The warehouse's as-of month is
-- the latest complete month over all feeds (kpi_periods).

with

district_returns as (
    select * from {{ ref('stg_district__returns') }}
),

tech_contracts as (
    select * from {{ ref('stg_techmarket__contracts') }}
),

bank_loans as (
    select * from {{ ref('stg_bank__loans') }}
),

hr_talents as (
    select * from {{ ref('stg_hr__talents') }}
),

load_ledger as (
    select * from {{ ref('stg_ops__load_ledger') }}
),

latest_periods as (
    select
        'district'::text as feed,
        max(report_month_end_date) as latest_period_end_date,
        max(report_month_end_date) as latest_complete_month_end_date
    from district_returns
    union all
    select
        'techmarket'::text as feed,
        max(export_date) as latest_period_end_date,
        -- the month of the day after the latest export, minus one day: the
        -- last day of the last month fully exported
        (date_trunc('month', max(export_date) + 1) - interval '1 day')::date as latest_complete_month_end_date
    from tech_contracts
    union all
    select
        'bank'::text as feed,
        {{ month_end('max(report_month)') }} as latest_period_end_date,
        {{ month_end('max(report_month)') }} as latest_complete_month_end_date
    from bank_loans
    union all
    select
        'hr'::text as feed,
        max(file_month_end_date) as latest_period_end_date,
        max(file_month_end_date) as latest_complete_month_end_date
    from hr_talents
),

last_loads as (
    select
        feed,
        max(finished_at) as last_loaded_at
    from load_ledger
    where is_loaded
    group by feed
),

final as (
    select
        latest_periods.feed,
        latest_periods.latest_period_end_date,
        latest_periods.latest_complete_month_end_date,
        last_loads.last_loaded_at
    from latest_periods
    left join last_loads
        on latest_periods.feed = last_loads.feed
)

select * from final
