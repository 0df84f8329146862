{#
    Tests of an increment (issue 11): the generic data tests of an
    incremental model read the rows this build wrote, not the whole table.

    dbt wraps the tested relation of every generic test in
    get_where_subquery (this project's version overrides dbt's). In a
    `dbt build` that is not a --full-refresh, for a test attached to an
    incremental model that this build selected (so ran, before its tests),
    the relation becomes the rows that the model's increment wrote in this
    build: its INSERT recorded their ctids in ops."<model>__rows_written"
    and the invocation in ops.dbt_rows_written (macros/record_rows_written.sql),
    and the test reads them by a TID scan, a cost of the rows written, not of
    the table (the earlier filter on xmin scanned the whole table per test).
    Rows this build did not write are the rows that passed the same tests in
    an earlier successful build: after a dbt command that wrote models
    without ending in one (a failed, killed or partial build, `dbt run`), the
    next whole build by `corridor dbt build` or the build DAG reads every row
    (CORRIDOR_DBT_TEST_EVERY_ROW; src/corridor/transform.py,
    unverified_writes).

    - unique / unique_combination: every row (new or old) whose key is a key
      this build wrote, so that a new row colliding with an old one fails;
      only the written rows when the model's strategy is delete+insert on
      exactly that key (its DELETE removed every old row with a new row's
      key: key_replaced_by_the_increment, below).
    - not_null, accepted_values, relationships (the child side) and the
      project's row-level generic tests: the rows this build wrote.
    - The staging views over the raw feeds (meta tests_read_rows_after_ledger_id):
      in a build by `corridor dbt build` or the build DAG after a successful
      build of the same project, the rows of files loaded since that build
      (ledger_id above the id it recorded; src/corridor/transform.py,
      increment_scope); raw rows are never changed or deleted. Without that
      id (another project, a file committed late, plain dbt), every row.
      A unique / unique_combination test of such a view reads only those
      rows too when its key holds the file (key_within_the_tested_files,
      below); else every row sharing a key with them.
    - Singular tests (tests/*.sql) and tests of tables rebuilt whole read
      everything, as before; so does every test of a --full-refresh build, a
      `dbt test`, and of a model whose node did not record its rows in this
      invocation (it created or rebuilt its table, or another strategy: no
      row for the model and invocation in ops.dbt_rows_written).
    A test's own `where` config still applies on top.
#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- set written = rows_written_this_build(model) -%}
    {%- if not where and not written -%}
        {%- do return(relation) -%}
    {%- endif -%}
    {%- set test_name = (model.test_metadata or {}).get('name') -%}
    {%- set test_kwargs = (model.test_metadata or {}).get('kwargs') or {} -%}
    {%- set conditions = [] -%}
    {%- if where -%}
        {%- do conditions.append('(' ~ where ~ ')') -%}
    {%- endif -%}
    {%- if written -%}
        {%- if test_name == 'unique' and test_kwargs.get('column_name') -%}
            {%- set keys = test_kwargs['column_name'] -%}
        {%- elif test_name == 'unique_combination' and test_kwargs.get('combination_of_columns') -%}
            {%- set keys = test_kwargs['combination_of_columns'] | join(', ') -%}
        {%- else -%}
            {%- set keys = none -%}
        {%- endif -%}
        {%- if keys and (key_replaced_by_the_increment(model) if written.startswith('@.ctid ')
            else key_within_the_tested_files(model, written)) -%}
            {%- set keys = none -%}
        {%- endif -%}
        {%- if keys -%}
            {%- do conditions.append('(' ~ keys ~ ') in (select ' ~ keys ~ ' from ' ~ relation
                ~ ' as written_rows where ' ~ (written | replace('@', 'written_rows')) ~ ')') -%}
        {%- else -%}
            {%- do conditions.append(written | replace('@', 'tested_rows')) -%}
        {%- endif -%}
    {%- endif -%}
    {%- set filtered -%}
        (select * from {{ relation }} as tested_rows where {{ conditions | join(' and ') }}) dbt_subquery
    {%- endset -%}
    {%- do return(filtered) -%}
{%- endmacro %}


{#- A predicate on the rows of the tested model (alias written as @) that keeps the rows this
    build wrote, or '' when the test must read every row (see above). -#}
{% macro rows_written_this_build(test_node) -%}
    {%- if not execute or flags.WHICH != 'build' or flags.FULL_REFRESH -%}
        {%- do return('') -%}
    {%- endif -%}
    {%- set tested = graph.nodes.get(test_node.get('attached_node') or '') -%}
    {%- if not tested or tested.resource_type != 'model' -%}
        {%- do return('') -%}
    {%- endif -%}
    {%- if tested.config.materialized == 'view' and (tested.config.meta or {}).get('tests_read_rows_after_ledger_id') -%}
        {#- set by corridor's `dbt build` (src/corridor/transform.py, increment_scope) only -#}
        {%- set tested_ledger_id = env_var('CORRIDOR_DBT_TESTED_LEDGER_ID', '') -%}
        {%- if tested_ledger_id is string and tested_ledger_id.isdigit() -%}
            {%- do return('@.ledger_id > ' ~ tested_ledger_id) -%}
        {%- endif -%}
        {%- do return('') -%}
    {%- endif -%}
    {%- if tested.unique_id not in selected_resources or tested.config.materialized != 'incremental'
        or tested.config.full_refresh -%}
        {%- do return('') -%}
    {%- endif -%}
    {#- set by corridor's whole builds that follow writes no successful whole build has tested -#}
    {%- if env_var('CORRIDOR_DBT_TEST_EVERY_ROW', '') == '1' -%}
        {%- do return('') -%}
    {%- endif -%}
    {#- The model's node has run (a test runs after its model): did its increment record the rows it
        wrote in this invocation? Not when it created or rebuilt the table, nor by a strategy that
        does not record (record_rows_written): then every row. -#}
    {%- set recorded = run_query("select count(*) from ops.dbt_rows_written where model_name = '"
        ~ tested.name ~ "' and invocation_id = '" ~ invocation_id ~ "'") -%}
    {%- if recorded.columns[0].values()[0] | int != 1 -%}
        {%- do return('') -%}
    {%- endif -%}
    {%- do return('@.ctid = any(array(select row_ctid from ' ~ rows_written_relation(tested.name) ~ '))') -%}
{%- endmacro %}


{#- True when a unique / unique_combination test of a staging view that reads the files loaded since
    (written = '@.ledger_id > <id>') need only read those files' rows: its key includes ledger_id, or
    is a column whose meta says key_holds_ledger_id (ledger_id || '-' || source_row). Rows sharing
    such a key come from one file, so every row sharing a key with a later file's row is itself in a
    later file. Else the test reads every row sharing a key with one of them, which for the views'
    computed keys was a scan of the whole raw table per test (issue 11). -#}
{% macro key_within_the_tested_files(test_node, written) -%}
    {%- if not written.startswith('@.ledger_id > ') -%}
        {%- do return(false) -%}
    {%- endif -%}
    {%- set tested = graph.nodes.get(test_node.get('attached_node') or '') -%}
    {%- set test_kwargs = (test_node.test_metadata or {}).get('kwargs') or {} -%}
    {%- set combination = test_kwargs.get('combination_of_columns') -%}
    {%- if combination -%}
        {%- do return('ledger_id' in combination) -%}
    {%- endif -%}
    {%- set column_name = test_kwargs.get('column_name') -%}
    {%- if column_name == 'ledger_id' -%}
        {%- do return(true) -%}
    {%- endif -%}
    {%- set column = (tested.columns or {}).get(column_name) or {} -%}
    {%- set meta = column.get('meta') or (column.get('config') or {}).get('meta') or {} -%}
    {%- do return(meta.get('key_holds_ledger_id') is true) -%}
{%- endmacro %}


{#- True when a unique / unique_combination test of an incremental model need only read the rows its
    increment wrote (written = '@.ctid = any(…)'): the model's strategy is delete+insert on exactly
    the tested key, without incremental_predicates. The increment's DELETE removed every row whose
    key is the key of a new row, in the same transaction as the INSERT of the new rows
    (record_rows_written.sql), so every row sharing a key with a written row is itself a written row.
    Else the test reads every row sharing a key with one of them (a scan of the model unless an index
    serves the key). -#}
{% macro key_replaced_by_the_increment(test_node) -%}
    {%- set tested = graph.nodes.get(test_node.get('attached_node') or '') -%}
    {%- set test_kwargs = (test_node.test_metadata or {}).get('kwargs') or {} -%}
    {%- set unique_key = tested.config.unique_key -%}
    {%- if tested.config.incremental_strategy != 'delete+insert' or not unique_key
        or tested.config.incremental_predicates or tested.config.predicates -%}
        {%- do return(false) -%}
    {%- endif -%}
    {%- set unique_key = [unique_key] if unique_key is string else unique_key -%}
    {%- set keys = test_kwargs.get('combination_of_columns') or [test_kwargs.get('column_name')] -%}
    {%- do return((keys | map('trim') | sort | list) == (unique_key | map('trim') | sort | list)) -%}
{%- endmacro %}
