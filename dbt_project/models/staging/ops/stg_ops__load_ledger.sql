with

source as (
    select * from {{ source('ops', 'load_ledger') }}
),

final as (
    select
        ledger_id,
        feed,
        file_name,
        sha256 as file_sha256,
        bytes as file_bytes,
        rows_received,
        rows_loaded,
        rows_quarantined,
        status as load_status,
        status = 'loaded' as is_loaded,
        started_at,
        finished_at,
        message
    from source
)

select * from final
