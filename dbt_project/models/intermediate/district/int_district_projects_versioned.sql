{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{% if is_incremental() %}delete from {{ this }} where ledger_id not in ("
            ~ "select ledger_id from {{ ref('int_district_returns_versioned') }}){% endif %}",
    )
}}

-- Rows of the projects sheet (重点项目) that belong to the version of their
-- area-month that counts (int_district_returns_versioned): a restatement
-- replaces the area-month entirely, rows of earlier versions drop out.
--
-- Incremental (issue 11): the table holds the rows of exactly the workbooks
-- that count. A run first deletes the rows of workbooks that no longer count
-- (a restatement superseded them: the pre-hook), then adds the rows of the
-- workbooks that count and are not in the table yet, so a restatement of an
-- old month rewrites that area-month only. Raw rows are never deleted or
-- added to a loaded workbook (else --full-refresh).

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
    {%- if is_incremental() %}
        where returns_versioned.ledger_id not in (select loaded.ledger_id from {{ this }} as loaded)
    {%- endif %}
)

select * from final
