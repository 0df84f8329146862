{{
    config(
        materialized='incremental',
        unique_key='pledge_loan_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['max_ledger_id']}],
    )
}}

-- Index on max_ledger_id: an incremental run reads its watermark,
-- max(max_ledger_id), from the index instead of scanning the table.

-- depends_on: {{ ref('stg_bank__loans') }}
-- (the incremental branch reads the raw records to find the changed keys)

-- One row per pledge loan (bank + 贷款编号): its disbursement and its
-- current status (the latest 报告期).
--
-- Incremental: every loan with a record loaded after the watermark (the
-- highest ledger_id already processed, kept per loan as max_ledger_id) is
-- recomputed from all its records and replaced (delete+insert on
-- pledge_loan_id), so an incremental run equals a full refresh (ledger ids
-- committed in order; after a purge of raw rows, run --full-refresh).

with

loans_resolved as (
    select * from {{ ref('int_pledge_loans_resolved') }}
),

{% if is_incremental() %}
loan_rows as (
    select * from {{ ref('stg_bank__loans') }}
),

watermark as (
    select coalesce(max(max_ledger_id), 0) as max_ledger_id
    from {{ this }}
),

changed_loans as (
    select distinct loan_rows.pledge_loan_id
    from loan_rows
    cross join watermark
    where loan_rows.ledger_id > watermark.max_ledger_id
),
{% endif %}

final as (
    select
        loans_resolved.pledge_loan_id,
        loans_resolved.bank_code,
        loans_resolved.loan_id,
        loans_resolved.borrower_name,
        loans_resolved.borrower_uscc,
        loans_resolved.area_code,
        loans_resolved.collateral_type,
        loans_resolved.is_ip_pledge,
        loans_resolved.pledge_registration_no,
        loans_resolved.ip_numbers,
        loans_resolved.ip_number_count,
        loans_resolved.loan_amount_yuan,
        loans_resolved.disbursed_date,
        loans_resolved.due_date,
        loans_resolved.annual_rate_pct,
        loans_resolved.loan_status,
        loans_resolved.status_report_month,
        loans_resolved.first_report_month,
        loans_resolved.reports_received,
        loans_resolved.ledger_id,
        loans_resolved.source_row,
        loans_resolved.max_ledger_id
    from loans_resolved
    {%- if is_incremental() %}
    inner join changed_loans
        on loans_resolved.pledge_loan_id = changed_loans.pledge_loan_id
    {%- endif %}
)

select * from final
