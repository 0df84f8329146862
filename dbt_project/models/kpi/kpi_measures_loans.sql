-- KPIs of the bank pledge-loan feed, over the year to every month end d
-- (loans disbursed from 1 January of d's year to d), per borrower area and
-- for the corridor (distinct borrowers over the corridor).
--   K17  知识产权质押融资额: sum of 贷款金额 of 专利权/商标权/著作权 pledges, in 亿元
--   K18  质押融资企业数: distinct borrowers of any pledge type

with

periods as (
    select * from {{ ref('dim_period') }}
),

pledge_loans as (
    select * from {{ ref('fct_pledge_loans') }}
),

month_ends as (
    select period_end as month_end_date
    from periods
    where grain = 'month'
),

year_to_date_loans as (
    select
        month_ends.month_end_date,
        pledge_loans.pledge_loan_id,
        pledge_loans.borrower_uscc,
        pledge_loans.area_code,
        pledge_loans.is_ip_pledge,
        pledge_loans.loan_amount_yuan
    from month_ends
    inner join pledge_loans
        on
            pledge_loans.disbursed_date >= date_trunc('year', month_ends.month_end_date)::date
            and month_ends.month_end_date >= pledge_loans.disbursed_date
),

measures as (
    select
        'K17'::text as kpi_code,
        {{ area_or_all('area_code') }} as area_code,
        month_end_date,
        trim_scale(sum(loan_amount_yuan) / 100000000)::numeric as actual_value
    from year_to_date_loans
    where is_ip_pledge
    group by {{ group_by_area_and_corridor('month_end_date', 'area_code') }}
    union all
    select
        'K18'::text as kpi_code,
        {{ area_or_all('area_code') }} as area_code,
        month_end_date,
        count(distinct borrower_uscc)::numeric as actual_value
    from year_to_date_loans
    group by {{ group_by_area_and_corridor('month_end_date', 'area_code') }}
),

final as (
    select
        kpi_code,
        area_code,
        month_end_date,
        actual_value
    from measures
)

select * from final
