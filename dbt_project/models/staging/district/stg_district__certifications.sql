with

source as (
    select * from {{ source('district', 'certifications') }}
),

final as (
    select
        ledger_id::text || '-' || source_row::text as certification_event_id,
        area_code,
        report_month,
        {{ month_end('report_month') }} as report_month_end_date,
        file_version,
        uscc,
        enterprise_name,
        certification_type,
        certificate_no,
        granted_date,
        valid_until,
        change_type,
        ledger_id,
        source_row
    from source
)

select * from final
