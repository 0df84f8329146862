{#- The ledger ids of the district workbooks loaded that no longer count: an earlier version of an
    area-month that a restatement replaced (int_district_returns_versioned keeps one workbook per
    area-month). Few (one per restatement ever loaded): an incremental model whose rows carry their
    workbook's ledger_id finds the rows a restatement superseded through its ledger_id index. The
    same rule as the int_district_*_versioned pre-hooks' `ledger_id not in (the counting workbooks)`,
    stated as the few ids to look up: those tables have no ledger_id index and scan either way. A
    select of one column, ledger_id. -#}
{% macro district_workbooks_superseded() -%}
    select superseded.ledger_id
    from {{ ref('stg_district__returns') }} as superseded
    where superseded.ledger_id not in (
        select counting.ledger_id from {{ ref('int_district_returns_versioned') }} as counting
    )
{%- endmacro %}
