with

source as (
    select * from {{ source('district', 'returns') }}
),

final as (
    select
        ledger_id,
        area_code,
        report_month,
        {{ month_end('report_month') }} as report_month_end_date,
        file_version,
        reporting_unit,
        report_period,
        submitted_date,
        source_row
    from source
)

select * from final
