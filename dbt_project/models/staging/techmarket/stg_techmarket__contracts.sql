with

source as (
    select * from {{ source('techmarket', 'contracts') }}
),

final as (
    select
        ledger_id::text || '-' || source_row::text as contract_row_id,
        registration_no,
        export_date,
        file_version,
        registration_date,
        contract_title,
        contract_type,
        tech_field,
        seller_name,
        seller_uscc,
        seller_area_code,
        buyer_name,
        buyer_uscc,
        buyer_location,
        contract_value_10k_yuan,
        tech_value_10k_yuan,
        registration_status,
        row_hash,
        -- fingerprint of the business content (no file, no lineage): two
        -- records with the same fingerprint are exact duplicates
        md5(
            row(
                registration_no,
                registration_date,
                contract_title,
                contract_type,
                tech_field,
                seller_name,
                seller_uscc,
                seller_area_code,
                buyer_name,
                buyer_uscc,
                buyer_location,
                contract_value_10k_yuan,
                tech_value_10k_yuan,
                registration_status
            )::text
        ) as record_fingerprint,
        ledger_id,
        source_row
    from source
)

select * from final
