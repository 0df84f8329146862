with

source as (
    select * from {{ source('district', 'platforms') }}
),

final as (
    select
        ledger_id::text || '-' || source_row::text as platform_event_id,
        area_code,
        report_month,
        {{ month_end('report_month') }} as report_month_end_date,
        file_version,
        platform_id,
        area_code || ':' || platform_id as platform_key,
        platform_name,
        platform_category,
        platform_level,
        recognised_date,
        host_name,
        host_uscc,
        change_type,
        incubation_area_m2,
        ledger_id,
        source_row
    from source
)

select * from final
