{{ config(severity='warn') }}

-- Unreported projects: an active (谋划 / 在建) project absent from its
-- area's return for a month in which the area did report (fct_projects
-- is_unreported). 完成 and 终止 are final. The warning names every such
-- project with its last reported state and the months it was missing.

with

projects as (
    select * from {{ ref('fct_projects') }}
),

final as (
    select
        area_code,
        project_key,
        project_name,
        project_status as last_reported_status,
        state_report_month as last_reported_month,
        count(*) as months_unreported,
        min(snapshot_month) as first_unreported_month,
        max(snapshot_month) as last_unreported_month,
        bool_or(is_current) as is_unreported_now
    from projects
    where is_unreported
    group by area_code, project_key, project_name, project_status, state_report_month
)

select * from final
