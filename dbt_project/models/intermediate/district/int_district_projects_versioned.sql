-- Rows of the projects sheet (重点项目) that belong to the version of their
-- area-month that counts (int_district_returns_versioned): a restatement
-- replaces the area-month entirely, rows of earlier versions drop out.

with

district_projects as (
    select * from {{ ref('stg_district__projects') }}
),

returns_versioned as (
    select * from {{ ref('int_district_returns_versioned') }}
),

final as (
    select
        district_projects.project_row_id,
        district_projects.area_code,
        district_projects.report_month,
        district_projects.report_month_end_date,
        district_projects.file_version,
        district_projects.project_id,
        district_projects.project_key,
        district_projects.project_name,
        district_projects.project_category,
        district_projects.block_name,
        district_projects.start_date,
        district_projects.planned_completion_date,
        district_projects.project_status,
        district_projects.cumulative_investment_10k_yuan,
        district_projects.progress_pct,
        district_projects.ledger_id,
        district_projects.source_row
    from district_projects
    inner join returns_versioned
        on district_projects.ledger_id = returns_versioned.ledger_id
)

select * from final
