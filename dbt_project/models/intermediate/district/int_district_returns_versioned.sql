-- The version of each area-month that counts: the highest file_version
-- loaded (a restatement vN replaces its area-month entirely); if the same
-- version was loaded twice, the later load. One row per area-month.

with

district_returns as (
    select * from {{ ref('stg_district__returns') }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by area_code, report_month
            order by file_version desc, ledger_id desc
        ) as version_rank,
        count(*) over (partition by area_code, report_month) as versions_loaded
    from district_returns
),

final as (
    select
        area_code || ':' || to_char(report_month, 'YYYY-MM') as area_month_id,
        area_code,
        report_month,
        report_month_end_date,
        file_version,
        ledger_id,
        submitted_date,
        versions_loaded,
        versions_loaded > 1 as is_restated
    from ranked
    where version_rank = 1
)

select * from final
