rule evaluate:
    input:
        scored_videos,
        path(layout.samples_dir, RUN, TEACHER_SET),
        f"{RUN}/dataset",
    output:
        directory(path(layout.eval_dir, RUN, "{method}-{steps}")),
    wildcard_constraints:
        method=r"[A-Za-z0-9_+@]+",
        steps=r"\d+",
    params:
        point=point_args,
    log:
        path(layout.log_file, RUN, "evaluate-{method}-{steps}"),
    benchmark:
        path(layout.benchmark_file, RUN, "evaluate-{method}-{steps}")
    threads: THREADS
    resources:
        **resources_of("evaluate"),
    shell:
        dcm("evaluate") + " --method {wildcards.method:q} --steps {wildcards.steps}{params.point} > {log:q} 2>&1"


use rule evaluate as evaluate_at_kappa with:
    output:
        directory(path(layout.eval_dir, layout.point_dir(RUN, "{kappa}"), "{method}-{steps}")),
    log:
        path(layout.log_file, RUN, "evaluate-{method}-{steps}", "{kappa}"),
    benchmark:
        path(layout.benchmark_file, RUN, "evaluate-{method}-{steps}", "{kappa}")


use rule evaluate as evaluate_at_seed with:
    output:
        directory(path(layout.eval_dir, layout.seed_dir(RUN, "{seed}"), "{method}-{steps}")),
    log:
        path(layout.log_file, RUN, "evaluate-{method}-{steps}", None, "{seed}"),
    benchmark:
        path(layout.benchmark_file, RUN, "evaluate-{method}-{steps}", None, "{seed}")


rule trajdist:
    input:
        trajectory_cache,
    output:
        report(
            directory(f"{RUN}/trajdist"),
            patterns=["{name}.png"],
            caption="../report/fig10.rst",
            category="Figures",
        ),
    log:
        f"{RUN}/logs/trajdist.log",
    benchmark:
        f"{RUN}/benchmarks/trajdist.tsv"
    threads: THREADS
    resources:
        **resources_of("trajdist"),
    shell:
        dcm("trajdist") + " > {log:q} 2>&1"
