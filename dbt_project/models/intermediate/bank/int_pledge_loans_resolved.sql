{{
    config(
        materialized='incremental',
        unique_key='pledge_loan_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['max_ledger_id']}, {'columns': ['pledge_loan_id'], 'unique': true}],
    )
}}

-- The current state of every pledge loan (bank + 贷款编号): the record of
-- the latest 报告期 (then the later load, then the later line) gives the
-- loan's status and its disbursement facts (a later report corrects them).
--
-- Incremental (issue 11; a province month touches ~2 k of ~48 k loans): a
-- run resolves again, from all their records, only the loans with a record
-- loaded after the watermark (the highest ledger_id already resolved, read
-- from the index on max_ledger_id) and replaces their rows (delete+insert
-- on pledge_loan_id): the same table as a full refresh, given ledger ids
-- committed in order and raw rows never deleted (else --full-refresh), as
-- int_tech_contracts_resolved.

with

loan_rows as not materialized (
    select * from {{ ref('stg_bank__loans') }}
),

loans_in_scope as (
    select loan_rows.*
    from loan_rows
    {%- if is_incremental() %}
        where loan_rows.pledge_loan_id in (
            select changed_rows.pledge_loan_id
            from loan_rows as changed_rows
            where changed_rows.ledger_id > (select coalesce(max(resolved.max_ledger_id), 0) from {{ this }} as resolved)
        )
    {%- endif %}
),

ranked as (
    select
        *,
        row_number() over (
            partition by pledge_loan_id
            order by report_month desc, ledger_id desc, source_row desc
        ) as recency_rank,
        min(report_month) over (partition by pledge_loan_id) as first_report_month,
        count(*) over (partition by pledge_loan_id) as reports_received,
        max(ledger_id) over (partition by pledge_loan_id) as max_ledger_id
    from loans_in_scope
),

final as (
    select
        pledge_loan_id,
        bank_code,
        loan_id,
        borrower_name,
        borrower_uscc,
        area_code,
        collateral_type,
        is_ip_pledge,
        pledge_registration_no,
        ip_numbers,
        coalesce(cardinality(ip_numbers), 0) as ip_number_count,
        loan_amount_yuan,
        disbursed_date,
        due_date,
        annual_rate_pct,
        loan_status,
        report_month as status_report_month,
        first_report_month,
        reports_received,
        ledger_id,
        source_row,
        max_ledger_id
    from ranked
    where recency_rank = 1
)

select * from final
