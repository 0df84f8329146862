{#- The enterprises (USCCs) that an incremental run of dim_enterprise must recompute: every
    enterprise named in a record loaded after the watermark (the highest ledger_id the table has
    seen, its max_ledger_id), and, for the district sheets, every enterprise named in any version
    of an area-month that received a workbook after the watermark: a restatement can drop an
    enterprise's rows of the earlier version, so those enterprises are recomputed too (or
    removed, when nothing else names them). A select of one column, uscc. -#}
{% macro enterprises_changed_since(relation) -%}
    {%- set watermark = "(select coalesce(max(seen.max_ledger_id), 0) from " ~ relation ~ " as seen)" -%}
    select changed_contracts.seller_uscc as uscc
    from {{ ref('stg_techmarket__contracts') }} as changed_contracts
    where changed_contracts.ledger_id > {{ watermark }}
    union
    select changed_contracts.buyer_uscc as uscc
    from {{ ref('stg_techmarket__contracts') }} as changed_contracts
    where changed_contracts.ledger_id > {{ watermark }} and changed_contracts.buyer_uscc is not null
    union
    select changed_loans.borrower_uscc as uscc
    from {{ ref('stg_bank__loans') }} as changed_loans
    where changed_loans.ledger_id > {{ watermark }}
    union
    select changed_talents.employer_uscc as uscc
    from {{ ref('stg_hr__talents') }} as changed_talents
    where changed_talents.ledger_id > {{ watermark }} and changed_talents.employer_uscc is not null
    union
    select changed_certifications.uscc
    from {{ ref('stg_district__certifications') }} as changed_certifications
    where (changed_certifications.area_code, changed_certifications.report_month) in (
        select changed_returns.area_code, changed_returns.report_month
        from {{ ref('stg_district__returns') }} as changed_returns
        where changed_returns.ledger_id > {{ watermark }}
    )
    union
    select changed_platforms.host_uscc as uscc
    from {{ ref('stg_district__platforms') }} as changed_platforms
    where
        changed_platforms.host_uscc is not null
        and (changed_platforms.area_code, changed_platforms.report_month) in (
            select changed_returns.area_code, changed_returns.report_month
            from {{ ref('stg_district__returns') }} as changed_returns
            where changed_returns.ledger_id > {{ watermark }}
        )
{%- endmacro %}
