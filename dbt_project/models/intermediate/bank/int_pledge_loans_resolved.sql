-- The current state of every pledge loan (bank + 贷款编号): the record of
-- the latest 报告期 (then the later load, then the later line) gives the
-- loan's status and its disbursement facts (a later report corrects them).

with

loan_rows as (
    select * from {{ ref('stg_bank__loans') }}
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
    from loan_rows
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
