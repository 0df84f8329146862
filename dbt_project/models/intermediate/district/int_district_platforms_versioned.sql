-- Rows of the platforms sheet (创新平台) that belong to the version of their
-- area-month that counts (int_district_returns_versioned): a restatement
-- replaces the area-month entirely, rows of earlier versions drop out.

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
)

select * from final
