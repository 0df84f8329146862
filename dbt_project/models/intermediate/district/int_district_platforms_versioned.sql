{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{% if is_incremental() %}delete from {{ this }} where ledger_id not in ("
            ~ "select ledger_id from {{ ref('int_district_returns_versioned') }}){% endif %}",
    )
}}

-- Rows of the platforms sheet (创新平台) that belong to the version of their
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

district_platforms as (
    select * from {{ ref('stg_district__platforms') }}
),

returns_versioned as (
    select * from {{ ref('int_district_returns_versioned') }}
),

final as (
    select
        district_platforms.platform_event_id,
        district_platforms.area_code,
        district_platforms.report_month,
        district_platforms.report_month_end_date,
        district_platforms.file_version,
        district_platforms.platform_id,
        district_platforms.platform_key,
        district_platforms.platform_name,
        district_platforms.platform_category,
        district_platforms.platform_level,
        district_platforms.recognised_date,
        district_platforms.host_name,
        district_platforms.host_uscc,
        district_platforms.change_type,
        district_platforms.incubation_area_m2,
        district_platforms.ledger_id,
        district_platforms.source_row
    from district_platforms
    inner join returns_versioned
        on district_platforms.ledger_id = returns_versioned.ledger_id
    {%- if is_incremental() %}
        where returns_versioned.ledger_id not in (select loaded.ledger_id from {{ this }} as loaded)
    {%- endif %}
)

select * from final
