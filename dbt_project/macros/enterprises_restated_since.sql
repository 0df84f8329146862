{#- The enterprises (USCCs) named in any version of a restated district area-month: one with more
    than one workbook, the latest loaded after the watermark (the highest ledger_id the table has
    seen, its max_ledger_id). A restatement can drop an enterprise's rows of the earlier version, so
    dim_enterprise deletes these (pre-hook) and recomputes them from all their observations (or
    leaves them out, when nothing else names them). The test does not depend on which versions were
    loaded before the watermark: after the pre-hook's deletion (which may lower the watermark) the
    model lists at least the enterprises the pre-hook deleted. A select of one column, uscc. -#}
{% macro enterprises_restated_since(relation) -%}
    {%- set watermark = "(select coalesce(max(seen.max_ledger_id), 0) from " ~ relation ~ " as seen)" -%}
    select restated_certifications.uscc
    from {{ ref('stg_district__certifications') }} as restated_certifications
    where (restated_certifications.area_code, restated_certifications.report_month) in (
        select restated_returns.area_code, restated_returns.report_month
        from {{ ref('stg_district__returns') }} as restated_returns
        group by restated_returns.area_code, restated_returns.report_month
        having count(*) > 1 and max(restated_returns.ledger_id) > {{ watermark }}
    )
    union
    select restated_platforms.host_uscc as uscc
    from {{ ref('stg_district__platforms') }} as restated_platforms
    where
        restated_platforms.host_uscc is not null
        and (restated_platforms.area_code, restated_platforms.report_month) in (
            select restated_returns.area_code, restated_returns.report_month
            from {{ ref('stg_district__returns') }} as restated_returns
            group by restated_returns.area_code, restated_returns.report_month
            having count(*) > 1 and max(restated_returns.ledger_id) > {{ watermark }}
        )
{%- endmacro %}
