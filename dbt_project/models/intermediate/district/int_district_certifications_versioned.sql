{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{% if is_incremental() %}delete from {{ this }} where ledger_id not in ("
            ~ "select ledger_id from {{ ref('int_district_returns_versioned') }}){% endif %}",
    )
}}

-- Rows of the certifications sheet (企业认定) that belong to the version of their
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

district_certifications as (
    select * from {{ ref('stg_district__certifications') }}
),

returns_versioned as (
    select * from {{ ref('int_district_returns_versioned') }}
),

final as (
    select
        district_certifications.certification_event_id,
        district_certifications.area_code,
        district_certifications.report_month,
        district_certifications.report_month_end_date,
        district_certifications.file_version,
        district_certifications.uscc,
        district_certifications.enterprise_name,
        district_certifications.certification_type,
        district_certifications.certificate_no,
        district_certifications.granted_date,
        district_certifications.valid_until,
        district_certifications.change_type,
        district_certifications.ledger_id,
        district_certifications.source_row
    from district_certifications
    inner join returns_versioned
        on district_certifications.ledger_id = returns_versioned.ledger_id
    {%- if is_incremental() %}
        where returns_versioned.ledger_id not in (select loaded.ledger_id from {{ this }} as loaded)
    {%- endif %}
)

select * from final
