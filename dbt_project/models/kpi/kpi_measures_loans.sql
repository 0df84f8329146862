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

-- each loan with the month end and the year of its disbursement
loans as (
    select
        area_code,
        borrower_uscc,
        is_ip_pledge,
        loan_amount_yuan,
        date_trunc('year', disbursed_date)::date as disbursed_year_start_date,
        {{ month_end('disbursed_date') }} as disbursed_month_end_date
    from pledge_loans
),

-- the month of each borrower's first loan of a year, in its area and in the
-- corridor (area_rollup: the corridor's first loan is over all six areas)
first_loans_of_year as (
    select
        {{ area_or_all('area_code') }} as scope_code,
        min(disbursed_month_end_date) as first_month_end_date
    from loans
    group by {{ group_by_area_and_corridor('borrower_uscc, disbursed_year_start_date') }}
),

-- How it is counted (issue 11: no month × loan fan-out, no distinct count
-- over grouping sets): per scope and month, the IP pledge amount and count
-- disbursed, and the borrowers whose first loan of that year it is; the
-- value at d sums the months of d's year up to d.
monthly_changes as (
    select
        {{ area_or_all('area_code') }} as scope_code,
        disbursed_month_end_date as change_month_end_date,
        sum(loan_amount_yuan) filter (where is_ip_pledge) as ip_amount_yuan,
        count(*) filter (where is_ip_pledge) as ip_loans,
        0 as new_borrowers
    from loans
    group by {{ group_by_area_and_corridor('disbursed_month_end_date') }}
    union all
    select
        scope_code,
        first_month_end_date as change_month_end_date,
        null::numeric as ip_amount_yuan,
        0 as ip_loans,
        count(*) as new_borrowers
    from first_loans_of_year
    group by scope_code, first_month_end_date
),

year_to_date as (
    select
        monthly_changes.scope_code,
        month_ends.month_end_date,
        sum(monthly_changes.ip_amount_yuan) as ip_amount_yuan,
        sum(monthly_changes.ip_loans) as ip_loans,
        sum(monthly_changes.new_borrowers) as borrowers
    from month_ends
    inner join monthly_changes
        on
            month_ends.month_end_date >= monthly_changes.change_month_end_date
            and date_trunc('year', month_ends.month_end_date)::date <= monthly_changes.change_month_end_date
    group by monthly_changes.scope_code, month_ends.month_end_date
),

measures as (
    select
        'K17'::text as kpi_code,
        scope_code::text as area_code,
        month_end_date,
        trim_scale(ip_amount_yuan / 100000000)::numeric as actual_value
    from year_to_date
    where ip_loans > 0
    union all
    select
        'K18'::text as kpi_code,
        scope_code::text as area_code,
        month_end_date,
        borrowers::numeric as actual_value
    from year_to_date
    where borrowers > 0
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
