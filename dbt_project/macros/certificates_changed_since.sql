{#- The certificates (certificate_key) that an incremental run of fct_certifications must recompute:
    every certificate named in any version of a district area-month that received a workbook after
    the watermark (the highest grant ledger_id in the table; ledger ids are committed in order, so
    every workbook loaded since the last run is after it). A certificate's row depends only on the
    events naming it (its grants and the 撤销 of its area), and an event reaches or leaves the
    counting version of an area-month only with a workbook of that area-month: a new grant or
    revocation, or a restatement that drops an earlier version's rows (then the certificate is
    recomputed, or removed when no grant is left). A select of one column, certificate_key. -#}
{% macro certificates_changed_since(relation) -%}
    select distinct
        {{ certificate_key('changed_certifications') }} as certificate_key
    from {{ ref('stg_district__certifications') }} as changed_certifications
    where (changed_certifications.area_code, changed_certifications.report_month) in (
        select changed_returns.area_code, changed_returns.report_month
        from {{ ref('stg_district__returns') }} as changed_returns
        where changed_returns.ledger_id > (select coalesce(max(seen.ledger_id), 0) from {{ relation }} as seen)
    )
{%- endmacro %}
