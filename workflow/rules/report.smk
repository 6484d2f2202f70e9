rule table:
    input:
        lambda w: table_evals(w.table),
        lambda w: [path(layout.latency_dir, RUN)] if w.table == "1" else [],
        # Table 3's parameter column: what each decoupled variant's detail expert adds
        lambda w: [path(layout.dete_dir, RUN, v) for v in methods.detail_variants(config)] if w.table == "3" else [],
    output:
        report(
            directory(f"{RUN}/tables/table{{table}}"),  # layout.table_dir(RUN, "1" or "3")
            patterns=["{name}.md"],
            caption="../report/tables.rst",
            category="Tables",
        ),
    wildcard_constraints:
        table="1|3",
    params:
        table=lambda w: w.table,
    log:
        f"{RUN}/logs/table{{table}}.log",
    benchmark:
        f"{RUN}/benchmarks/table{{table}}.tsv"
    threads: THREADS
    resources:
        **resources_of("tables"),
    shell:
        dcm("tables") + " --table {params.table} > {log:q} 2>&1"


# Fig. 10 (right) as a table: the sweep's scores at each kappa
use rule table as kappa_table with:
    input:
        [sweep_eval_dir(k) for k in config["kappa_sweep"]["values"]],
    output:
        report(
            directory(path(layout.table_dir, RUN, "kappa")),
            patterns=["{name}.md"],
            caption="../report/tables.rst",
            category="Tables",
        ),
    params:
        table="kappa",
    log:
        f"{RUN}/logs/kappa_sweep.log",
    benchmark:
        f"{RUN}/benchmarks/kappa_sweep.tsv"


rule userstudy:
    input:
        [path(layout.samples_dir, RUN, s) for s in USERSTUDY_SETS],
    output:
        directory(f"{RUN}/userstudy"),
    log:
        f"{RUN}/logs/userstudy.log",
    benchmark:
        f"{RUN}/benchmarks/userstudy.tsv"
    threads: THREADS
    resources:
        **resources_of("userstudy"),
    shell:
        dcm("userstudy") + " > {log:q} 2>&1"


# Not in the default target: it needs the raters' answer files (see README, "User study").
rule table2:
    input:
        f"{RUN}/userstudy",
        ANSWERS_DIR,
    output:
        report(
            directory(path(layout.table_dir, RUN, "2")),
            patterns=["{name}.md"],
            caption="../report/tables.rst",
            category="Tables",
        ),
    log:
        f"{RUN}/logs/table2.log",
    benchmark:
        f"{RUN}/benchmarks/table2.tsv"
    threads: THREADS
    resources:
        **resources_of("tables"),
    shell:
        dcm("table2") + " > {log:q} 2>&1"


rule figures:
    input:
        f"{RUN}/vcm",
        f"{RUN}/weightdiff",
        f"{RUN}/trajdist",
        [path(layout.samples_dir, RUN, s) for s in FIGURE_SETS + TABLE_SETS["1"]],
        [path(layout.table_dir, RUN, "kappa")] if config["kappa_sweep"]["values"] else [],
        [path(layout.table_dir, RUN, table) for table in ("1", "3")],
        # the training-terms figure: the TC SemE's and each GAN DetE's metrics
        [path(layout.seme_dir, RUN, True)] if methods.temporal_coherence_trained(config) else [],
        [path(layout.dete_dir, RUN, v) for v in methods.adversarial_variants(config)],
    output:
        report(
            directory(f"{RUN}/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    log:
        f"{RUN}/logs/figures.log",
    benchmark:
        f"{RUN}/benchmarks/figures.tsv"
    threads: THREADS
    resources:
        **resources_of("figures"),
    shell:
        dcm("figures") + " > {log:q} 2>&1"
