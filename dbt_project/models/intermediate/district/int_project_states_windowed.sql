-- Project state as of a date: the project's row in the latest report month
-- up to that date. Each report month's row holds from the first day of its
-- report month until the day before the project's next report month
-- (valid_to null = still the latest). A project reported twice in the same
-- area-month version keeps its last row.

with

project_rows as (
    select * from {{ ref('int_district_projects_versioned') }}
),

monthly as (
    select distinct on (project_key, report_month) *
    from project_rows
    order by project_key asc, report_month asc, ledger_id desc, source_row desc
),

final as (
    select
        project_key || ':' || to_char(report_month, 'YYYY-MM') as project_state_id,
        project_key,
        area_code,
        project_id,
        project_name,
        project_category,
        block_name,
        start_date,
        planned_completion_date,
        project_status,
        cumulative_investment_10k_yuan,
        progress_pct,
        report_month as valid_from,
        (lead(report_month) over by_project - 1) as valid_to,
        report_month,
        ledger_id,
        source_row
    from monthly
    window by_project as (partition by project_key order by report_month)
)

select * from final
