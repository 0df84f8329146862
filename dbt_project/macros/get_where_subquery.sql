{#
    Tests of an increment (issue 11): the generic data tests of an
    incremental model read the rows this build wrote, not the whole table.

    dbt wraps the tested relation of every generic test in
    get_where_subquery (this project's version overrides dbt's). In a
    `dbt build` that is not a --full-refresh, for a test attached to an
    incremental model that this build selected (so ran, before its tests),
    the relation becomes the rows written since the build started: rows
    whose xmin (the transaction that wrote them) is later than the
    transaction id that record_build_start (on-run-start) stored for this
    invocation in ops.dbt_invocations. Rows this build did not write are the
    rows that passed the same tests in an earlier build.

    - unique / unique_combination: every row (new or old) whose key is a key
      this build wrote, so that a new row colliding with an old one fails.
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
      `dbt test`, or a build without the start mark (no row in
      ops.dbt_invocations: the filter then keeps every row).
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
        {%- if keys and key_within_the_tested_files(model, written) -%}
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
    {#- age() counts transactions back from now: a row written after the mark is younger than it.
        Without a mark for this invocation, every row is kept. -#}
    {%- do return("age(@.xmin) <= coalesce((select age(xid(invocations.started_xid))"
        ~ " from ops.dbt_invocations as invocations where invocations.invocation_id = '"
        ~ invocation_id ~ "'), 2147483647)") -%}
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


{#- on-run-start of a `dbt build`: the transaction id before any model runs, for
    rows_written_this_build. -#}
{% macro record_build_start() -%}
    {%- if flags.WHICH == 'build' -%}
        create schema if not exists ops;
        create table if not exists ops.dbt_invocations (
            invocation_id text primary key,
            started_xid xid8 not null default pg_current_xact_id(),
            started_at timestamptz not null default now()
        );
        insert into ops.dbt_invocations (invocation_id) values ('{{ invocation_id }}')
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
