with

source as (
    select * from {{ source('hr', 'talents') }}
),

final as (
    select
        ledger_id::text || '-' || source_row::text as talent_row_id,
        record_id,
        file_month,
        {{ month_end('file_month') }} as file_month_end_date,
        file_version,
        person_key,
        category as talent_category,
        title,
        employer_name,
        employer_uscc,
        area_code,
        intake_date,
        intake_type,
        is_overseas,
        team_id,
        action as record_action,
        ledger_id,
        source_row
    from source
)

select * from final
