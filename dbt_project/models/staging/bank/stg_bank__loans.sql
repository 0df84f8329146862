with

source as (
    select * from {{ source('bank', 'loans') }}
),

final as (
    select
        ledger_id::text || '-' || source_row::text as loan_row_id,
        bank_code || ':' || loan_id as pledge_loan_id,
        bank_code,
        loan_id,
        report_month,
        file_version,
        borrower_name,
        borrower_uscc,
        area_code,
        collateral_type,
        collateral_type in ('专利权', '商标权', '著作权') as is_ip_pledge,
        pledge_registration_no,
        ip_numbers,
        loan_amount_yuan,
        disbursed_date,
        due_date,
        annual_rate_pct,
        loan_status,
        ledger_id,
        source_row
    from source
)

select * from final
