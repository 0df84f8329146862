-- The reporting periods (the KPI period spine), with the data's as-of
-- date: every month from the window start (var kpi_window_start, 2020-01)
-- to the as-of month, the latest complete month over all feeds
-- (int_feed_periods_delivered). Quarters and years are listed only when
-- complete (their last month is at or before the as-of month): the current
-- incomplete quarter or year shows at month grain only. The spine is not
-- capped at kpi_window_end: targets beyond the window are handled by pacing
-- (kpi_values). Every KPI is measured at the period_end of these rows.
--
-- A period is complete when every delivery each of its months needs was
-- read by this build; else its KPI values are provisional and
-- missing_deliveries names what is missing. The rule is the quality gate's
-- and the scorecards' (corridor.quality.completeness, which names them in
-- Chinese; tests/test_bi_contract.py holds the two to the same months):
-- each area's district return; each of the six banks' files (a file may
-- list no loans, so the ledger says it came); the month's talent file; the
-- contract exports up to the month's last working day (Monday to Friday).

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

-- the deliveries (corridor.feeds.AREAS and BANKS; the ledger's loaded files)
areas as (
    select area_code from {{ ref('corridor_areas') }}
),

banks as (
    select banks.bank_code
    from (values ('ICBC'), ('ABC'), ('BOC'), ('CCB'), ('WZB'), ('OHRCB')) as banks (bank_code)
),

loaded_files as (
    select
        feed,
        file_name
    from {{ ref('stg_ops__load_ledger') }}
    where is_loaded
),

district_returns as (
    select distinct
        area_code,
        report_month
    from {{ ref('stg_district__returns') }}
),

bank_files as (
    select distinct
        substring(file_name from '^([A-Z]+)_[0-9]+[.]csv$') as bank_code,
        to_date(substring(file_name from '^[A-Z]+_([0-9]+)[.]csv$'), 'YYYYMM') as month_start
    from loaded_files
    where feed = 'bank'
),

talent_files as (
    select distinct to_date(substring(file_name from '^talent_([0-9]{6})[.]jsonl$'), 'YYYYMM') as month_start
    from loaded_files
    where feed = 'hr'
),

last_export as (
    select max(to_date(substring(file_name from '^tech_contracts_([0-9]+)[.]csv$'), 'YYYYMMDD')) as last_export_date
    from loaded_files
    where feed = 'techmarket'
),

spine_months as (
    select
        period_start as month_start,
        {{ month_end('period_start') }} as month_end_date
    from bounded
    where grain = 'month' and period_end <= as_of_date
),

missing_district as (
    select
        spine_months.month_start,
        'district' as feed,
        'district:' || areas.area_code || ':' || to_char(spine_months.month_start, 'YYYY-MM') as item
    from spine_months
    cross join areas
    left join district_returns
        on
            areas.area_code = district_returns.area_code
            and spine_months.month_start = district_returns.report_month
    where district_returns.area_code is null
),

missing_bank as (
    select
        spine_months.month_start,
        'bank' as feed,
        'bank:' || banks.bank_code || ':' || to_char(spine_months.month_start, 'YYYY-MM') as item
    from spine_months
    cross join banks
    left join bank_files
        on
            banks.bank_code = bank_files.bank_code
            and spine_months.month_start = bank_files.month_start
    where bank_files.bank_code is null
),

missing_hr as (
    select
        spine_months.month_start,
        'hr' as feed,
        'hr:' || to_char(spine_months.month_start, 'YYYY-MM') as item
    from spine_months
    left join talent_files
        on spine_months.month_start = talent_files.month_start
    where talent_files.month_start is null
),

-- exports up to the month's last working day (Monday to Friday: a month
-- ending on a Saturday or Sunday is complete with the Friday's export)
missing_techmarket as (
    select
        spine_months.month_start,
        'techmarket' as feed,
        'techmarket:' || to_char(spine_months.month_start, 'YYYY-MM') as item
    from spine_months
    cross join last_export
    where
        last_export.last_export_date is null
        or last_export.last_export_date < spine_months.month_end_date
        - case extract(isodow from spine_months.month_end_date)::integer
            when 6 then 1
            when 7 then 2
            else 0
        end
),

missing as (
    select * from missing_district
    union all
    select * from missing_bank
    union all
    select * from missing_hr
    union all
    select * from missing_techmarket
),

period_gaps as (
    select
        bounded.grain,
        bounded.period_start,
        string_agg(missing.item, ' ' order by missing.month_start, missing.feed, missing.item) as missing_deliveries
    from bounded
    inner join missing
        on missing.month_start between bounded.period_start and bounded.period_end
    group by bounded.grain, bounded.period_start
),

final as (
    select
        bounded.grain || ':' || bounded.period_start::text as period_id,
        bounded.grain,
        bounded.period_start,
        bounded.period_end,
        case bounded.grain
            when 'month' then to_char(bounded.period_start, 'YYYY-MM')
            when 'quarter' then to_char(bounded.period_start, 'YYYY"Q"Q')
            else to_char(bounded.period_start, 'YYYY')
        end as period_label,
        extract(year from bounded.period_start)::integer as period_year,
        bounded.as_of_date,
        period_gaps.missing_deliveries is null as is_complete,
        period_gaps.missing_deliveries
    from bounded
    left join period_gaps
        on bounded.grain = period_gaps.grain and bounded.period_start = period_gaps.period_start
    where bounded.period_end <= bounded.as_of_date
)

select * from final
