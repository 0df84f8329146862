-- Rows of the certifications sheet (企业认定) that belong to the version of their
-- area-month that counts (int_district_returns_versioned): a restatement
-- replaces the area-month entirely, rows of earlier versions drop out.

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
)

select * from final
