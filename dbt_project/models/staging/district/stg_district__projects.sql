with

source as (
    select * from {{ source('district', 'projects') }}
),

final as (
    select
        ledger_id::text || '-' || source_row::text as project_row_id,
        area_code,
        report_month,
        {{ month_end('report_month') }} as report_month_end_date,
        file_version,
        project_id,
        area_code || ':' || project_id as project_key,
        project_name,
        project_category,
        block_name,
        start_date,
        planned_completion_date,
        project_status,
        cumulative_investment_10k_yuan,
        progress_pct,
        ledger_id,
        source_row
    from source
)

select * from final
